#!/usr/bin/env bash
# `make patches`: write the overlay as a git format-patch series against the
# pinned QEMU source, into OUTDIR (default $VFIO_CXL_CACHE/patches/series).
#
# The base is a git tree of its own, $VFIO_CXL_CACHE/patches/qemu: Debian's
# source package unpacked again (with Debian's patches applied), committed
# once and tagged debian-base.  mk/patches.py then builds the series on a
# branch there, from the overlay (see its PLAN), and runs git format-patch.
# The shared $QEMU_SRC, which has the overlay linked in, is never touched.
set -euo pipefail
source "$(dirname "$0")/env.sh"

outdir=$(realpath -m "${1:-$VFIO_CXL_CACHE/patches/series}")
case "$outdir/" in
    "$PROJECT_ROOT"/*) die "the series goes outside the work tree, not in $outdir" ;;
esac
PATCHES_TREE="$VFIO_CXL_CACHE/patches/qemu"

# The base commit of a series: Debian's unpacked source, once per version.
base_subject="QEMU $QEMU_UPSTREAM_VERSION, Debian source package $QEMU_DEB_VERSION"
if [ "$(git -C "$PATCHES_TREE" log -1 --format=%s debian-base 2>/dev/null)" != "$base_subject" ]; then
    # Fetches the source package once; a no-op when $QEMU_SRC is current.
    "$PROJECT_ROOT/mk/qemu-source.sh"
    dsc="$VFIO_CXL_CACHE/src/qemu_${QEMU_DEB_VERSION#*:}.dsc"
    [ -f "$dsc" ] || die "no $dsc: remove $QEMU_SRC/.vfio-cxl-debian-version and run mk/qemu-source.sh"
    say "Making the base tree of the series in $PATCHES_TREE"
    rm -rf "$PATCHES_TREE"
    mkdir -p "$(dirname "$PATCHES_TREE")"
    dpkg-source -x "$dsc" "$PATCHES_TREE" >/dev/null || die "dpkg-source could not unpack $dsc"
    # quilt's bookkeeping of Debian's patches is no part of the source.
    rm -rf "$PATCHES_TREE/.pc"
    date=$(cd "$PATCHES_TREE" && dpkg-parsechangelog -S Date)
    git -C "$PATCHES_TREE" init -q -b base
    # Every file Debian ships, also those QEMU's .gitignore names.
    git -C "$PATCHES_TREE" add -A -f
    GIT_AUTHOR_NAME=Debian GIT_AUTHOR_EMAIL=qemu@packages.debian.org \
    GIT_COMMITTER_NAME=Debian GIT_COMMITTER_EMAIL=qemu@packages.debian.org \
    GIT_AUTHOR_DATE="$date" GIT_COMMITTER_DATE="$date" \
        git -C "$PATCHES_TREE" commit -q --no-verify -m "$base_subject" \
            -m "Debian's source package as dpkg-source unpacks it, Debian's patches applied."
    git -C "$PATCHES_TREE" tag debian-base
fi

python3 "$PROJECT_ROOT/mk/patches.py" "$PROJECT_ROOT" "$PATCHES_TREE" "$outdir"
