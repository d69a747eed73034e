#!/usr/bin/env bash
# Build qemu-system-x86_64 and qemu-system-aarch64 with Rust and the
# vfio-cxl overlay, from nothing or incrementally: install tools, fetch
# QEMU's source, supply the crate subprojects, lay the overlay in,
# configure once, then ninja.
set -euo pipefail
source "$(dirname "$0")/env.sh"

"$PROJECT_ROOT/mk/tools.sh"
# A tree the patch series made (mk/check-patches.sh) has our files in it
# already and needs only the crate subprojects.
[ "${VFIO_CXL_PATCHED_TREE:-}" = 1 ] || "$PROJECT_ROOT/mk/qemu-source.sh"
"$PROJECT_ROOT/mk/vendor-crates.sh"
[ "${VFIO_CXL_PATCHED_TREE:-}" = 1 ] ||
    python3 "$PROJECT_ROOT/mk/overlay.py" "$PROJECT_ROOT" "$QEMU_SRC"

binaries=() softmmu=()
for t in $VFIO_CXL_TARGETS; do
    binaries+=("qemu-system-$t")
    softmmu+=("$t-softmmu")
done
configure_args=(
    "--target-list=$(IFS=,; echo "${softmmu[*]}")"
    --enable-rust
    --disable-docs --disable-user --disable-tools
    --disable-install-blobs --disable-download
    --python="$TOOLS_VENV/bin/python3"
)
# A second build (mk/check-sanitizers.sh) sets QEMU_BUILD to its own
# directory and adds its options here.
# shellcheck disable=SC2206
configure_args+=(${VFIO_CXL_CONFIGURE_EXTRA:-})
stamp="$QEMU_BUILD/.vfio-cxl-configure"
# Re-run configure (in place, so the next ninja stays incremental) when the
# arguments changed or when it could not set up the option ROM build, which
# needs a multilib compiler.
if [ ! -f "$QEMU_BUILD/build.ninja" ] ||
   [ ! -f "$QEMU_BUILD/pc-bios/optionrom/config.mak" ] ||
   [ "$(cat "$stamp" 2>/dev/null)" != "${configure_args[*]}" ]; then
    say "Configuring QEMU in $QEMU_BUILD"
    mkdir -p "$QEMU_BUILD"
    (cd "$QEMU_BUILD" && "$QEMU_SRC/configure" "${configure_args[@]}") > "$QEMU_BUILD/configure.log" 2>&1 ||
        { tail -n 30 "$QEMU_BUILD/configure.log"; die "configure failed (log: $QEMU_BUILD/configure.log)"; }
    echo "${configure_args[*]}" > "$stamp"
fi
# mk/check-patches.sh configures here and builds only what it needs.
[ "${VFIO_CXL_CONFIGURE_ONLY:-}" = 1 ] && exit 0

say "Building ${binaries[*]} (the first build takes several minutes)"
ninja -C "$QEMU_BUILD" "${binaries[@]}" "$@"

# Debian strips the firmware blobs: SeaBIOS and its VGA BIOSes come from
# Debian's seabios package, the NIC boot ROMs from ipxe-qemu, and the
# option ROMs are built from QEMU's source.
# An uninstalled QEMU looks for them in its build tree's qemu-bundle.
make -s -C "$QEMU_BUILD/pc-bios/optionrom" >/dev/null ||
    die "building the option ROMs failed"
datadir="$QEMU_BUILD/qemu-bundle/usr/local/share/qemu"
mkdir -p "$datadir"
for blob in "$QEMU_BUILD"/pc-bios/optionrom/*.bin /usr/share/seabios/*.bin \
            /usr/lib/ipxe/qemu/*.rom; do
    ln -sf "$blob" "$datadir/$(basename "$blob")"
done
say "Built ${binaries[*]} in $QEMU_BUILD"
