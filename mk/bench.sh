#!/usr/bin/env bash
# `make bench`: build what is missing (QEMU, the release simulator, the
# Linux guest's kernel, the benchmark's guests), then run bench/run.py,
# which prints one table of ratios with the targets checked.  Not part of
# `make check`: a benchmark, not a test.
#
# Environment: VFIO_CXL_QEMU=PATH uses that QEMU binary instead of
# building one; VFIO_CXL_KERNEL=PATH that guest kernel; BENCH_BOOTS=N
# boots per P1 case (default 5).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"

ensure_debs bench gcc libc6-dev binutils util-linux
if [ -n "${VFIO_CXL_QEMU:-}" ]; then
    qemu=$VFIO_CXL_QEMU
else
    bash mk/build.sh
    need_built_qemu
    qemu=$QEMU_BIN
fi
if [ -n "${VFIO_CXL_KERNEL:-}" ]; then
    kernel=$VFIO_CXL_KERNEL
else
    bash mk/guest-image.sh >/dev/null
    # The newer cache layout keeps one directory per guest kernel.
    kernel="$VFIO_CXL_CACHE/guest/linux-6.1/vmlinuz"
    [ -f "$kernel" ] || kernel="$VFIO_CXL_CACHE/guest/vmlinuz"
fi
[ -f "$kernel" ] || die "no guest kernel at $kernel"
say "Building the simulator (release)"
cargo build -q --release -p vfio-user-cxl-sim || die "building vfio-user-cxl-sim failed"
say "Running the benchmarks (a few minutes)"
exec python3 bench/run.py --qemu "$qemu" --sim "$CARGO_TARGET_DIR/release/vfio-user-cxl-sim" \
    --kernel "$kernel" --boots "${BENCH_BOOTS:-5}" --cache "$VFIO_CXL_CACHE/bench"
