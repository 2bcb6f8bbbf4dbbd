#!/usr/bin/env bash
# Opt-in CI check of the GIMP 3 plug-in: installs debootstrap, builds (or reuses) a Debian trixie chroot with
# GIMP 3 under /var/cache/nst-bot-ci, and runs the plug-in headless there against this checkout's nst-bot.
# Needs root (debootstrap, chroot, mount namespaces). Expects .venv from .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v debootstrap >/dev/null || ! command -v unshare >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap util-linux
fi
.venv/bin/python -m pytest -q -m gimp tests/plugins
