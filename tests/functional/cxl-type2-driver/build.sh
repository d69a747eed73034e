#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Build the cxl_type2 module for Debian kernel KVER (e.g. 7.2.13+deb14-amd64)
# into OUTDIR.
#
# Debian's linux-headers-KVER need a newer C library and compiler than the
# host may have (7.2's kbuild tools do not run on bookworm), so the module
# is built in a Debian unstable chroot made by debootstrap from the host's
# Debian mirror and cached in $VFIO_CXL_CACHE/sid-chroot.  Only Debian
# packages go into it (linux-headers-KVER, gcc, make); nothing else is
# downloaded.  Rebuilt only when the source or the headers change.
#
# Usage: build.sh KVER OUTDIR            (called by mk/guest-image.sh)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/../../../mk/env.sh"

[ $# -eq 2 ] || die "usage: $0 KVER OUTDIR"
kver=$1
out=$2
chroot_dir="$VFIO_CXL_CACHE/sid-chroot"
log="$VFIO_CXL_CACHE/sid-chroot.log"
src=(cxl_type2.c cxl_core.h Kbuild)
# apt inside the chroot: a mirror snapshot's unstable Release file may be
# past its Valid-Until date.
apt_in=(apt-get -o Acquire::Check-Valid-Until=false -qq)

[ "$(id -u)" = 0 ] || die "building the guest driver needs root (debootstrap, chroot)"
ensure_debs guest-driver debootstrap

mirror="$(debian_mirror)"

if [ ! -f "$chroot_dir/.complete" ]; then
    [ -n "$mirror" ] ||
        die "no Debian mirror in /etc/apt/sources.list{,.d} for debootstrap"
    say "Making a Debian unstable chroot for the guest driver (debootstrap, $mirror)"
    rm -rf "$chroot_dir"
    debootstrap --variant=minbase sid "$chroot_dir" "$mirror" > "$log" 2>&1 ||
        { tail -n 10 "$log"; die "debootstrap sid $chroot_dir failed (log: $log)"; }
    touch "$chroot_dir/.complete"
fi

# /proc is needed by objtool; unmounted however this script ends.
mount -t proc proc "$chroot_dir/proc"
trap 'umount "$chroot_dir/proc"' EXIT

headers="/usr/src/linux-headers-$kver"
if [ ! -f "$chroot_dir$headers/Makefile" ]; then
    say "Installing linux-headers-$kver, gcc and make in the chroot"
    { chroot "$chroot_dir" "${apt_in[@]}" update &&
      chroot "$chroot_dir" env DEBIAN_FRONTEND=noninteractive "${apt_in[@]}" install -y \
          --no-install-recommends "linux-headers-$kver" gcc make; } >> "$log" 2>&1 ||
        { tail -n 10 "$log"
          die "installing linux-headers-$kver in $chroot_dir failed (log: $log)"; }
fi

key="$( (cd "$HERE" && sha256sum "${src[@]}")
        sha256sum < "$chroot_dir$headers/Module.symvers")"
if [ -f "$out/cxl_type2.ko" ] &&
   [ "$(cat "$out/cxl_type2.ko.stamp" 2>/dev/null)" = "$key" ]; then
    exit 0
fi
say "Building cxl_type2.ko against linux-headers-$kver (in the chroot)"
work="$chroot_dir/tmp/cxl-type2-driver"
rm -rf "$work"
mkdir -p "$work" "$out"
(cd "$HERE" && cp "${src[@]}" "$work/")
chroot "$chroot_dir" make -C "$headers" M=/tmp/cxl-type2-driver modules \
    > "$work.log" 2>&1 ||
    { cat "$work.log"; die "building cxl_type2.ko for $kver failed"; }
# Warnings fail the build: the module is small enough to have none.
if grep -q 'warning:' "$work.log"; then
    grep 'warning:' "$work.log"
    die "building cxl_type2.ko for $kver gave warnings"
fi
cp "$work/cxl_type2.ko" "$out/cxl_type2.ko"
echo "$key" > "$out/cxl_type2.ko.stamp"
rm -rf "$work" "$work.log"
