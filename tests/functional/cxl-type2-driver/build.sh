#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Build the cxl_type2 module for Debian kernel KVER (e.g. 7.2.13+deb14-amd64)
# into OUTDIR.  For a kernel of another architecture (7.2.13+deb14-arm64)
# the caller passes its headers package, HEADERS_DEB: it is unpacked with
# dpkg -x into the chroot, beside what it needs there for this build host
# (the common headers, linux-kbuild and the cross compiler its
# .kernelvariables names), and the module is cross-built.
#
# Debian's linux-headers-KVER need a newer C library and compiler than the
# host may have (7.2's kbuild tools do not run on bookworm), so the module
# is built in the Debian unstable chroot of mk/sid-chroot.sh.  Only Debian
# packages go into it (linux-headers-KVER, gcc, make); nothing else is
# downloaded.  Rebuilt only when the source or the headers change.
#
# Usage: build.sh KVER OUTDIR [HEADERS_DEB]     (called by mk/guest-image.sh)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/../../../mk/env.sh"
source "$HERE/../../../mk/sid-chroot.sh"

[ $# -eq 2 ] || [ $# -eq 3 ] || die "usage: $0 KVER OUTDIR [HEADERS_DEB]"
kver=$1
out=$2
headers_deb=${3:-}
chroot_dir="$SID_CHROOT"
src=(cxl_type2.c cxl_core.h Kbuild)

sid_chroot "the guest driver"

# /proc is needed by objtool; unmounted however this script ends.
mount -t proc proc "$chroot_dir/proc"
trap 'umount "$chroot_dir/proc"' EXIT

headers="/usr/src/linux-headers-$kver"
if [ -z "$headers_deb" ]; then
    [ -f "$chroot_dir$headers/Makefile" ] ||
        sid_chroot_install "linux-headers-$kver, gcc and make" \
            "linux-headers-$kver" gcc make
elif [ "$(cat "$chroot_dir$headers/.from-deb" 2>/dev/null)" != \
       "$(basename "$headers_deb")" ]; then
    # The headers package's dependencies for the build host: the common
    # headers (all architectures), kbuild (the host's build of the
    # scripts) and, for gcc-N-for-host, the cross compiler gcc-N-TRIPLET.
    deps="$(dpkg-deb -f "$headers_deb" Depends | tr ',' '\n' | awk '{print $1}')"
    common="$(grep -E '^linux-headers-.*-common$' <<<"$deps")" ||
        die "$headers_deb depends on no linux-headers-*-common"
    kbuild="$(grep -E '^linux-kbuild-' <<<"$deps")" ||
        die "$headers_deb depends on no linux-kbuild-*"
    gcc_n="$(sed -n 's/^gcc-\([0-9]*\)-for-host$/\1/p' <<<"$deps")"
    [ -n "$gcc_n" ] || die "$headers_deb depends on no gcc-N-for-host"
    tmp="$chroot_dir/tmp/headers-unpack"
    rm -rf "$tmp" "$chroot_dir$headers"
    dpkg -x "$headers_deb" "$tmp" || die "dpkg -x $headers_deb failed"
    vars="$tmp$headers/.kernelvariables"
    [ -f "$vars" ] || die "$headers_deb has no $headers/.kernelvariables"
    triplet="$(sed -n 's/^override CROSS_COMPILE = \(.*\)-$/\1/p' "$vars")"
    [ -n "$triplet" ] || die "$headers/.kernelvariables names no CROSS_COMPILE"
    sid_chroot_install "$common, $kbuild, gcc-$gcc_n-$triplet and make" \
        "$common" "$kbuild" "gcc-$gcc_n-$triplet" make
    mv "$tmp$headers" "$chroot_dir$headers"
    rm -rf "$tmp"
    basename "$headers_deb" > "$chroot_dir$headers/.from-deb"
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
