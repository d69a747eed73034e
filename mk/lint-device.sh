#!/usr/bin/env bash
# Lint what only builds inside QEMU: the device crate (rustfmt, and clippy
# with QEMU's lint set through meson's clippy target) and our C files
# (checkpatch).  Upstream crates may warn under a newer
# clippy; any diagnostic that points into our crates fails the step.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"

rustfmt --check --edition 2021 rust/hw/vfio/cxl/src/lib.rs

# Our C glue and qtest, in QEMU's style.
"$QEMU_SRC/scripts/checkpatch.pl" --no-tree --terse -f \
    hw/vfio/*.[ch] hw/vfio-user/*.h tests/qtest/vfio-cxl-*.c

log="$QEMU_BUILD/vfio-cxl-clippy.log"
# QEMU's clippy.toml (doc idents, msrv) lives at its source root.
CLIPPY_CONF_DIR="$QEMU_SRC" ninja -C "$QEMU_BUILD" clippy > "$log" 2>&1 ||
    { tail -n 40 "$log"; die "clippy failed (log: $log)"; }
ours=$(grep -E -- '--> .*rust/hw/vfio/' "$log" || true)
if [ -n "$ours" ]; then
    grep -E -B4 -A12 -- '--> .*rust/hw/vfio/' "$log"
    die "clippy reports $(echo "$ours" | wc -l) diagnostic(s) in the vfio-cxl crates"
fi
echo "clippy: no diagnostics in rust/hw/vfio/"

# The crate's own manifest: rustdoc through cargo, from QEMU's workspace.
(cd "$QEMU_SRC/rust" &&
    MESON_BUILD_ROOT="$QEMU_BUILD" CARGO_TARGET_DIR="$VFIO_CXL_CACHE/target-qemu-rust" \
    RUSTDOCFLAGS="-D warnings" cargo doc -q -p vfio-cxl --no-deps) ||
    die "cargo doc -p vfio-cxl failed"
echo "cargo doc: the device crate documents cleanly"
