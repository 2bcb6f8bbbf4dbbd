#!/bin/sh
# Container entry point: `nst-bot <command>` by default (`run` when no command is given); any other program
# (a shell, python) runs as given. Baked-in weights (BAKE_WEIGHTS=1) are first copied into a cache volume
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

case "$1" in
    run|stylize|fetch-assets|presets|options|healthcheck|-*) exec nst-bot "$@" ;;
    *) exec "$@" ;;
esac
