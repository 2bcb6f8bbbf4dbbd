#!/bin/sh
# Container entry point: `nst-bot <command>` for run, worker, stylize, fetch-assets, presets, options and
# healthcheck (`run` when no command is given; flags such as --help go to nst-bot too); any other program (a
# shell, python) runs as given. Baked-in weights (BAKE_WEIGHTS=1) are first copied into a cache volume
# that has none, so the checksum-verified cache is the one place weights are read from.
set -eu
[ "$#" -gt 0 ] || set -- run
cache="${NST_CACHE_DIR:-/cache}"
baked="${NST_BAKED_DIR:-/nonexistent}"

if [ -f "$baked/vgg19-features.pth" ] && [ ! -f "$cache/vgg19-features.pth" ]; then
    mkdir -p "$cache"
    cp "$baked/vgg19-features.pth" "$baked/vgg19-features.json" "$cache/"
    echo "nst-bot: copied the baked-in VGG19 weights into $cache" >&2
fi

# A missing config would otherwise be one line naming config.example.toml, repeated by every restart. The
# usual cause: ./config bind-mounted empty over the image's /config, hiding its config.toml.
explain_missing_config() {
    config="${NST_CONFIG:-}"
    [ -n "$config" ] && [ ! -e "$config" ] || return 0
    folder=$(dirname "$config")
    if [ -d "$folder" ] && [ -z "$(ls -A "$folder")" ]; then
        echo "nst-bot: error: $folder is empty: a mounted folder (./config in docker-compose.yml) hides the" \
             "image's config; on the host run: mkdir -p config && cp docker/config.toml config/config.toml" >&2
    else
        echo "nst-bot: error: no config file at $config; on the host run: cp docker/config.toml" \
             "config/config.toml (the template for containers), or set NST_CONFIG to yours" >&2
    fi
    exit 2
}

case "$1" in
    run|worker|stylize|fetch-assets|presets|options|healthcheck) explain_missing_config; exec nst-bot "$@" ;;
    -*) exec nst-bot "$@" ;;
    *) exec "$@" ;;
esac
