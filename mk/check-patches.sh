#!/usr/bin/env bash
# `make check-patches`: the patch series (mk/patches.sh) applies, builds at
# every patch and passes QEMU's checks.  .ci/run runs it after the other
# checks.
#
#  1. A fresh tree: the base commit of the series (Debian's unpacked
#     source, $VFIO_CXL_CACHE/patches/check), nothing else in it but the
#     crate subprojects, which stay outside git (mk/vendor-crates.sh).
#  2. Each patch in turn with git am, then an incremental build in one
#     build directory of its own ($VFIO_CXL_CACHE/patches/build, x86_64
#     only, configured as mk/build.sh configures, through ccache): that
#     every patch builds is what makes the series bisectable.  A patch
#     that touches only docs/ is not built (the build has --disable-docs;
#     mk/check-docs.sh checks the pages), and says so.  The patches before
#     the first one that touches a Kconfig file are compiled, not linked
#     (VFIO_CXL_PATCHES_LINK_ALL=1 links them too): see below.
#  3. QEMU's scripts/checkpatch.pl on every patch: no ERROR.
#  4. The qtests (mk/qtests.sh, with the simulator) on the final tree.
#
#   mk/check-patches.sh [SERIES_DIR]
#
# SERIES_DIR checks a series already written there instead of writing
# one (the way to see a broken series fail).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"

start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - start )) s"; }

if [ $# -gt 0 ]; then
    series=$(realpath "$1")
else
    series="$VFIO_CXL_CACHE/patches/check-series"
    bash mk/patches.sh "$series"
fi
patches=()
for p in "$series"/[0-9][0-9][0-9][0-9]-*.patch; do
    [ "$(basename "$p")" = 0000-cover-letter.patch ] || patches+=("$p")
done
[ ${#patches[@]} -gt 0 ] || die "no patches in $series"

base_tree="$VFIO_CXL_CACHE/patches/qemu"
tree="$VFIO_CXL_CACHE/patches/check"
build="$VFIO_CXL_CACHE/patches/build"
git -C "$base_tree" rev-parse -q --verify debian-base >/dev/null ||
    die "no base tree in $base_tree: run mk/patches.sh"

say "Fresh tree at the series' base commit: $tree"
if [ ! -d "$tree/.git" ]; then
    git clone -q --no-checkout "$base_tree" "$tree"
fi
git -C "$tree" am --abort >/dev/null 2>&1 || true
git -C "$tree" fetch -q -f origin "refs/tags/debian-base:refs/tags/debian-base"
# Files git already has as the base has them keep their times, so a warm
# run rebuilds only what the series changes.  The crate subprojects are
# the only untracked files kept; mk/vendor-crates.sh checks them.
git -C "$tree" checkout -q -f --detach debian-base
git -C "$tree" clean -q -ffdx -e /subprojects/

# The build follows mk/build.sh, on this tree and its own directory.
# The simulator for the qtests comes from $CARGO_TARGET_DIR, as in make
# check, which has built it already on CI.
export QEMU_SRC="$tree" QEMU_BUILD="$build" VFIO_CXL_TARGETS=x86_64 VFIO_CXL_PATCHED_TREE=1
# The build runs the compiler as `cc` from PATH: ccache's links put
# ccache in front (mk/build.sh's own builds do not use it).
[ -d /usr/lib/ccache ] && export PATH="/usr/lib/ccache:$PATH"
export GIT_COMMITTER_NAME="vfio-cxl check" GIT_COMMITTER_EMAIL="check@example.com"

# A patch that adds a Kconfig symbol (the first that touches a Kconfig
# file) changes config-poison.h, which every file includes: QEMU then
# rebuilds nearly all of itself (1402 of 1875 steps).  A full build before
# that patch would be thrown away, so the patches before it are compiled
# instead: every C file they change, in every object this build makes of
# it, with what that needs (generated headers); linking is checked from
# that patch on.  A new header needs nothing more (only a file the same
# patch changes can include it); any other change builds in full.
link_from=1
if [ "${VFIO_CXL_PATCHES_LINK_ALL:-}" != 1 ]; then
    for i in "${!patches[@]}"; do
        if grep -qE '^diff --git a/([^ ]*/)?Kconfig[^/ ]* ' "${patches[$i]}"; then
            link_from=$((i + 1))
            break
        fi
    done
fi

# The objects to compile for the last patch, one a line; fails if the
# patch changes anything a compile of objects does not cover.
objects_of_patch() {
    local status path targets
    VFIO_CXL_CONFIGURE_ONLY=1 nice bash mk/build.sh >> "$log" 2>&1 || return 1
    ninja -C "$build" build.ninja >> "$log" 2>&1 || return 1
    targets=$(ninja -C "$build" -t targets all | cut -d: -f1)
    while read -r status path; do
        case "$status:$path" in
            *:docs/*|A:*.h) ;;
            *:*.c) grep -F "/${path//\//_}.o" <<< "$targets" || true ;;
            *) return 1 ;;
        esac
    done < <(git -C "$tree" diff --no-renames --name-status HEAD~1 HEAD)
}

built=0 compiled=0 skipped=0 n=0
for p in "${patches[@]}"; do
    n=$((n + 1))
    git -C "$tree" am -q "$p" ||
        die "patch $n ($(basename "$p")) does not apply to the tree of the patches before it"
    say "[$n/${#patches[@]}] $(git -C "$tree" log -1 --format=%s)"
    if ! git -C "$tree" diff --name-only HEAD~1 HEAD | grep -qv '^docs/'; then
        echo "not built: patch $n changes only docs/ (the build has --disable-docs)"
        skipped=$((skipped + 1))
        continue
    fi
    log="$build.log"
    : > "$log"
    if [ "$n" -lt "$link_from" ] && objects=$(objects_of_patch); then
        # shellcheck disable=SC2086
        [ -z "$objects" ] || nice ninja -C "$build" $objects >> "$log" 2>&1 ||
            { tail -n 40 "$log"; die "patch $n ($(basename "$p")) does not compile; log: $log"; }
        compiled=$((compiled + 1))
        echo "compiled after patch $n: $(echo "$objects" | grep -c . || true) object(s), not linked" \
             "(patch $link_from adds a Kconfig symbol) ($(elapsed) since the start)"
        continue
    fi
    if ! nice bash mk/build.sh >> "$log" 2>&1 ||
       { grep -q '^build tests/qtest/vfio-cxl-test:' "$build/build.ninja" &&
         ! nice ninja -C "$build" tests/qtest/vfio-cxl-test >> "$log" 2>&1; }; then
        tail -n 40 "$log"
        die "the tree does not build after patch $n ($(basename "$p")); log: $log"
    fi
    built=$((built + 1))
    echo "built after patch $n ($(elapsed) since the start)"
done
echo "bisect: ${#patches[@]} patches applied, $built built and linked, $compiled compiled," \
     "$skipped not built (docs only)"

say "checkpatch.pl on every patch"
errors=0 warnings=0
for p in "${patches[@]}"; do
    out=$("$tree/scripts/checkpatch.pl" "$p" 2>&1) || true
    total=$(echo "$out" | sed -n 's/^total: \([0-9]*\) errors, \([0-9]*\) warnings.*/\1 \2/p')
    [ -n "$total" ] || { echo "$out" | tail -n 20; die "checkpatch.pl gave no total for $(basename "$p")"; }
    read -r e w <<< "$total"
    errors=$((errors + e)) warnings=$((warnings + w))
    echo "$(basename "$p"): $e errors, $w warnings"
    if [ "$e" -ne 0 ] || [ "$w" -ne 0 ]; then
        echo "$out" | grep -E -A3 '^(ERROR|WARNING):' | sed 's/^/    /'
    fi
done
echo "checkpatch: $errors errors, $warnings warnings in ${#patches[@]} patches"
[ "$errors" -eq 0 ] || die "checkpatch.pl reports errors"

say "qtests on the tree of the whole series"
# The storm runs at full length in make check and make check-sanitizers;
# here it only has to pass on the tree the series makes.
VFIO_CXL_STORM_ACCESSES="${VFIO_CXL_STORM_ACCESSES:-100000}" bash mk/qtests.sh
echo "check-patches: ok ($(elapsed))"
