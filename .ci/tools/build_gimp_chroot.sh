#!/bin/sh
# Build (once) a Debian trixie chroot holding GIMP 3 and its Python bindings, for the headless plug-in test.
# Usage: build_gimp_chroot.sh [DIR]   (default /var/cache/nst-bot-ci/gimp-trixie; needs root and debootstrap)
# A finished chroot carries a stamp file, so later runs return at once; a half-built one is started over.
set -eu
ROOT=${1:-/var/cache/nst-bot-ci/gimp-trixie}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
STAMP="$ROOT/.nst-bot-gimp-ready"
PACKAGES="gimp python3-gi gir1.2-gimp-3.0 gir1.2-gegl-0.4"

if [ -f "$STAMP" ]; then
    echo "GIMP chroot ready at $ROOT"
    exit 0
fi
rm -rf "$ROOT"
mkdir -p "$(dirname "$ROOT")"
debootstrap --variant=minbase trixie "$ROOT" "$MIRROR"
# Policy: no daemons start inside the chroot while packages install.
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
chmod +x "$ROOT/usr/sbin/policy-rc.d"
mount -t proc proc "$ROOT/proc"
trap 'umount "$ROOT/proc"' EXIT
chroot "$ROOT" apt-get update -q
DEBIAN_FRONTEND=noninteractive chroot "$ROOT" apt-get install -y -q --no-install-recommends $PACKAGES
chroot "$ROOT" apt-get clean
chroot "$ROOT" gimp-console-3.0 --version
touch "$STAMP"
echo "GIMP chroot ready at $ROOT"
