# nst-bot: self-hosted neural style transfer for Discord.
#
#   docker build -t nst-bot .                                              # CPU image (CPU-only torch)
#   docker build -t nst-bot:cuda --build-arg TORCH_INDEX_URL=https://pypi.org/simple .   # CUDA torch from PyPI
#
# Build arguments:
#   BASE_IMAGE       a Debian-based image with python3 (3.11+) and venv, e.g. a mirror of python:3.11-slim
#   TORCH_INDEX_URL  where torch comes from: the CPU wheel index by default; PyPI's Linux wheels are CUDA builds
#   TORCH_PACKAGES   the torch requirements to install from that index (pin versions here)
#   BAKE_WEIGHTS=1   download the VGG19 weights at build time: from NST_WEIGHTS_URL when set, else from
#                    [engine] weights_url in docker/config.toml (the image's config)
ARG BASE_IMAGE=python:3.11-slim-bookworm

# Stage 1: a virtualenv with torch and the project's dependencies, which change rarely (cached layers).
FROM ${BASE_IMAGE} AS deps
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_PACKAGES="torch torchvision"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH
# torch first, in its own layer: it is by far the largest part.
# DL3013 (pin versions): the versions are the TORCH_PACKAGES build argument's to pin (.env.example shows how).
# hadolint ignore=DL3013
RUN python3 -m venv /opt/venv \
    && pip install --index-url "${TORCH_INDEX_URL}" ${TORCH_PACKAGES}
# The dependencies as pyproject.toml states them, without the source, so code changes keep this layer.
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --requirement /tmp/requirements.txt

# Stage 2: the project as a wheel.
FROM deps AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY nst_engine nst_engine
COPY bot bot
RUN pip wheel --no-deps --wheel-dir /wheels .

# Stage 3: the runtime image: the virtualenv, the project installed into it, an unprivileged user. What
# changes with the code comes last, so a code change rebuilds only the last few layers.
FROM ${BASE_IMAGE} AS runtime
ARG NST_UID=10001
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NST_CONFIG=/config/config.toml \
    NST_CACHE_DIR=/cache \
    NST_BAKED_DIR=/opt/nst-bot/baked
# /cache (weights, fetched presets) and /data (job store, results) belong to the user; /config is read-only.
RUN useradd --uid "${NST_UID}" --user-group --home-dir /home/nst --create-home --shell /usr/sbin/nologin nst \
    && mkdir -p /cache /data /config \
    && chown nst:nst /cache /data
COPY --from=deps /opt/venv /opt/venv
COPY docker/entrypoint.sh /usr/local/bin/nst-bot-entrypoint
COPY docker/config.toml /config/config.toml
WORKDIR /home/nst
# The bot's event loop rewrites /data/heartbeat.json every 2 s; a stuck loop or a dead bot goes stale in 30 s.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 CMD ["nst-bot", "healthcheck"]
ENTRYPOINT ["nst-bot-entrypoint"]
CMD ["run"]

ARG BAKE_WEIGHTS=0
ARG NST_WEIGHTS_URL=""
COPY --from=build /wheels /tmp/wheels
# The project, checked importable. With BAKE_WEIGHTS=1, also the weights inside the image (52 MB), copied into
# the /cache volume on start when it has none. The download reads the image's config (/config/config.toml,
# from docker/config.toml) for [engine] weights_url; NST_WEIGHTS_URL, when given, wins.
RUN pip install --no-cache-dir --no-deps --no-index /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && python -c "import bot.cli, nst_engine.transfer" \
    && if [ "${BAKE_WEIGHTS}" = "1" ]; then \
        NST_CACHE_DIR="${NST_BAKED_DIR}" NST_WEIGHTS_URL="${NST_WEIGHTS_URL}" nst-bot fetch-assets \
        && chmod -R a+rX "${NST_BAKED_DIR}"; \
    fi
USER ${NST_UID}
VOLUME ["/cache", "/data"]
