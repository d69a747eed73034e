#!/usr/bin/env bash
# A second QEMU build with AddressSanitizer and UndefinedBehaviorSanitizer
# (its own build directory under the cache) runs the vfio-cxl qtests,
# among them the guest-access storm and repeated hot-plug/unplug cycles,
# and fails on any sanitizer report, and on any leak report that involves
# the device's own code.  `make check-sanitizers`; .ci/run runs it after
# `make check`.
#
# Environment: VFIO_CXL_STORM_ACCESSES (default here 300000 per uAPI
# version: QEMU runs about twice as slowly), VFIO_CXL_REPLUG_CYCLES
# (default 100).
set -euo pipefail
source "$(dirname "$0")/env.sh"

export QEMU_BUILD="$VFIO_CXL_CACHE/build-asan"
export VFIO_CXL_CONFIGURE_EXTRA="--enable-asan --enable-ubsan"
# The sanitizers judge the device's code, which is the same on both
# targets: one target keeps this build affordable.
export VFIO_CXL_TARGETS=x86_64
bash "$PROJECT_ROOT/mk/build.sh"
ninja -C "$QEMU_BUILD" tests/qtest/vfio-cxl-test >/dev/null

build_simulator
logs=$(mktemp -d "${TMPDIR:-/tmp}/vfio-cxl-sanitizers.XXXXXX")
# Every sanitized process (QEMU and the qtest binary) writes its reports
# to $logs/san.<pid>.  ASan and UBSan errors also make it exit non-zero,
# which fails the qtest; leaks do not (QEMU leaks at exit by design), they
# are judged below by whose code allocated them.
export ASAN_OPTIONS="detect_leaks=1:log_path=$logs/san:abort_on_error=1"
export LSAN_OPTIONS="exitcode=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/san"
export VFIO_CXL_SIM="$SIM" VFIO_CXL_REQUIRE_SIM=1
export VFIO_CXL_STORM_ACCESSES="${VFIO_CXL_STORM_ACCESSES:-300000}"
export VFIO_CXL_REPLUG_CYCLES="${VFIO_CXL_REPLUG_CYCLES:-100}"

say "vfio-cxl qtests under ASan and UBSan (storm: $VFIO_CXL_STORM_ACCESSES accesses per version, $VFIO_CXL_REPLUG_CYCLES replug cycles)"
status=0
(cd "$QEMU_BUILD" && QTEST_QEMU_BINARY=./qemu-system-x86_64 \
    ./tests/qtest/vfio-cxl-test --tap -k) > "$logs/tap" 2>&1 || status=$?
grep -E '^(ok|not ok) ' "$logs/tap" | sed 's/^/  /' | tail -n 5
passed=$(grep -c '^ok ' "$logs/tap" || true)
failed=$(grep -c '^not ok ' "$logs/tap" || true)

# Sanitizer reports other than leaks fail the run; so does a leak whose
# allocation stack passes through the device's code.
reports=0
for f in "$logs"/san.*; do
    [ -e "$f" ] || continue
    if grep -qE 'ERROR: AddressSanitizer|runtime error:' "$f"; then
        echo "sanitizer report in $(basename "$f"):"; head -n 40 "$f"
        reports=$((reports + 1))
    fi
    ours=$(awk '/^(Direct|Indirect) leak/ {block = $0 "\n"; next}
                block != "" && /^$/ {if (block ~ /vfio_cxl|cxl_model|cxl-topology|cxl-reset|cxl-host/) print block; block = ""; next}
                block != "" {block = block $0 "\n"}' "$f")
    if [ -n "$ours" ]; then
        echo "leak in the device's code ($(basename "$f")):"; echo "$ours" | head -n 40
        reports=$((reports + 1))
    fi
done
leaks=$(cat "$logs"/san.* 2>/dev/null | grep -cE '^(Direct|Indirect) leak' || true)
echo "sanitizer reports: $reports (leak records at exit, all QEMU's own: $leaks)"
ok=0
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$reports" -eq 0 ] || ok=1
if [ $ok -eq 0 ]; then
    rm -rf "$logs"
else
    tail -n 30 "$logs/tap"
    # An abort ends the qtest binary: the test it was in did not finish.
    [ "$status" -eq 0 ] || failed=$((failed + 1))
    echo "logs kept in $logs"
fi
echo "sanitizers: $passed passed, $((failed + reports)) failed"
exit $ok
