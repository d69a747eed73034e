#!/usr/bin/env bash
# Fetch QEMU's pinned Debian source package and unpack it (with Debian's
# patches applied) into $QEMU_SRC.
#
# The machine's apt sources list binary packages only; the deb-src entry is
# derived at run time from the first Debian mirror already configured, for
# the suite that carries the pinned version, and kept in a private apt
# state directory so that the system's apt configuration is never changed.
set -euo pipefail
source "$(dirname "$0")/env.sh"

stamp="$QEMU_SRC/.vfio-cxl-debian-version"
if [ "$(cat "$stamp" 2>/dev/null)" = "$QEMU_DEB_VERSION" ]; then
    exit 0
fi

aptdir="$VFIO_CXL_CACHE/apt"
mkdir -p "$aptdir/lists/partial" "$VFIO_CXL_CACHE/src"

mirror="$(debian_mirror)"
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d}: cannot derive a deb-src entry for qemu $QEMU_DEB_VERSION"

printf 'Types: deb-src\nURIs: %s\nSuites: sid\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" > "$aptdir/deb-src.sources"
apt_opts=(-o "Dir::Etc::SourceList=/dev/null"
          -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::Etc::sourcelist=$aptdir/deb-src.sources"
          -o "Dir::State::Lists=$aptdir/lists"
          -o "APT::Sandbox::User=root")

say "Fetching QEMU source package qemu=$QEMU_DEB_VERSION (deb-src from $mirror)"
apt-get "${apt_opts[@]}" -qq update ||
    die "apt-get update of the derived deb-src index failed"
cd "$VFIO_CXL_CACHE/src"
if ! apt-get "${apt_opts[@]}" -qq source --download-only "qemu=$QEMU_DEB_VERSION"; then
    available=$(apt-cache "${apt_opts[@]}" showsrc qemu 2>/dev/null |
                sed -n 's/^Version: //p' | tr '\n' ' ')
    die "Debian source package qemu=$QEMU_DEB_VERSION cannot be had (index lists: ${available:-nothing})"
fi

dsc="qemu_${QEMU_DEB_VERSION#*:}.dsc"
rm -rf "$QEMU_SRC" "$QEMU_BUILD"
# dpkg-source checks the orig and debian tarballs against the .dsc.
dpkg-source -x "$dsc" "$QEMU_SRC" >/dev/null ||
    die "dpkg-source could not unpack $dsc"
echo "$QEMU_DEB_VERSION" > "$stamp"
say "QEMU source ready in $QEMU_SRC"
