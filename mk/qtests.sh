#!/usr/bin/env bash
# Build and run the QEMU qtests that cover the vfio-cxl types: QEMU's own
# qom-test and device-introspect-test (every type created and destroyed
# unrealized) and our vfio-cxl-test, on every target of the build
# ($VFIO_CXL_TARGETS: q35 for x86_64, virt for aarch64).
set -euo pipefail
source "$(dirname "$0")/env.sh"

tests=(qom-test device-introspect-test vfio-cxl-test)

# vfio-cxl-test drives the simulator; it must not skip here.
cargo build --quiet -p vfio-user-cxl-sim
export VFIO_CXL_SIM="$CARGO_TARGET_DIR/debug/vfio-user-cxl-sim"
export VFIO_CXL_REQUIRE_SIM=1
targets=()
for t in "${tests[@]}"; do targets+=("tests/qtest/$t"); done
ninja -C "$QEMU_BUILD" "${targets[@]}"

suites=()
for target in $VFIO_CXL_TARGETS; do
    for t in "${tests[@]}"; do
        # qom-test walks every machine of the target, not the device, and
        # aarch64 has boards whose ROMs Debian's source leaves out
        # (npcm7xx_bootrom.bin): device-introspect-test covers the
        # device's types there.
        [ "$target:$t" = aarch64:qom-test ] && continue
        suites+=("qtest-$target/$t")
    done
done
# --no-rebuild: meson test would otherwise build every default target.
# vfio-cxl-test runs a storm of 1,000,000 guest accesses per uAPI version
# on x86_64, 250,000 on aarch64 (about two minutes in all, the two targets
# side by side): more than meson's default 60 s per qtest.
meson test -C "$QEMU_BUILD" --no-rebuild --print-errorlogs --timeout-multiplier 6 "${suites[@]}"
