#!/usr/bin/env bash
# Build and run the QEMU qtests that cover the vfio-cxl types: QEMU's own
# qom-test and device-introspect-test (every type created and destroyed
# unrealized) and our vfio-cxl-test.
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
for t in "${tests[@]}"; do suites+=("qtest-x86_64/$t"); done
# --no-rebuild: meson test would otherwise build every default target.
# vfio-cxl-test runs a storm of 1,000,000 guest accesses per uAPI version
# (about two minutes in all): more than meson's default 60 s per qtest.
meson test -C "$QEMU_BUILD" --no-rebuild --print-errorlogs --timeout-multiplier 6 "${suites[@]}"
