#!/usr/bin/env bash
# Run the functional test on each QEMU target: Linux guests (Debian's
# kernels 6.1 and 7.2, booted with TCG; under 7.2 with our Type-2 driver)
# use a CXL Type-2 accelerator passed through by vfio-user-cxl from the
# simulator, and under 7.2 also three of them beside a cxl-type3; on
# x86_64 (q35, amd64 guests) and on aarch64 (virt with UEFI firmware,
# arm64 guests).  Builds what it needs (guest images, simulator, the test
# framework's Python packages), then runs
# tests/functional/TARGET/test_vfio_cxl.py for each target with
# VFIO_CXL_REQUIRE_GUEST=1, so a missing input is a failure, not a skip,
# and prints each target's time.  QEMU itself must already be built for
# both (mk/build.sh).
#
# Environment: VFIO_CXL_TARGETS="x86_64 aarch64" (the default) names the
# targets; VFIO_CXL_ACCEL=kvm to try KVM instead of TCG (the nested KVM of
# the test machines cannot boot Linux).
set -euo pipefail
source "$(dirname "$0")/env.sh"

start=$(date +%s)
# shellcheck disable=SC2206
targets=($VFIO_CXL_TARGETS)

for target in "${targets[@]}"; do
    "$PROJECT_ROOT/mk/guest-image.sh" --arch "$(guest_arch "$target")"
done

build_simulator
sim=$SIM
[ -f "$QEMU_SRC/tests/functional/qemu_test/__init__.py" ] ||
    die "no QEMU functional test framework in $QEMU_SRC: run mk/build.sh first"

# The framework runs in the build's pyvenv and needs qemu.qmp (QEMU's
# python/ tree has it too) and pycotap (the TAP runner), from PyPI.
py="$QEMU_BUILD/pyvenv/bin/python3"
[ -x "$py" ] || die "no pyvenv in $QEMU_BUILD: run mk/build.sh first"
# The project's own helpers (vfio_cxl_*.py) first: the overlay in $QEMU_SRC
# may link those of another checkout.
export PYTHONPATH="$PROJECT_ROOT/tests/functional:$QEMU_SRC/python:$QEMU_SRC/tests/functional"
if ! "$py" -c 'import pycotap, qemu.qmp, qemu.machine' 2>/dev/null; then
    say "Installing the functional tests' Python packages into $QEMU_BUILD/pyvenv"
    "$py" -m pip install -q --disable-pip-version-check 'pycotap>=1.1.0' 'qemu.qmp>=0.0.3' ||
        die "pip install pycotap qemu.qmp failed"
fi

accel="${VFIO_CXL_ACCEL:-tcg}"
failed=() times=()
t_tests=$(date +%s)
for target in "${targets[@]}"; do
    need_built_qemu "$target"
    test="tests/functional/$target/test_vfio_cxl.py"
    say "Running $test (accelerator: $accel)"
    t0=$(date +%s)
    status=0
    (cd "$QEMU_BUILD" &&
        QEMU_TEST_QEMU_BINARY="$QEMU_BIN" QEMU_BUILD_ROOT="$QEMU_BUILD" \
        VFIO_CXL_CACHE="$VFIO_CXL_CACHE" VFIO_CXL_SIM="$sim" VFIO_CXL_ACCEL="$accel" \
        VFIO_CXL_REQUIRE_GUEST=1 \
        "$py" "$PROJECT_ROOT/$test") || status=$?
    times+=("$target $(($(date +%s) - t0)) s")
    [ "$status" = 0 ] || failed+=("$target (status $status)")
    echo "logs: $QEMU_BUILD/tests/functional/$target/test_vfio_cxl.VfioCxlGuest.*/"
done
end=$(date +%s)

echo "accelerator: $accel"
printf -v per_target '%s, ' "${times[@]}"
echo "elapsed: ${per_target}tests $((end - t_tests)) s, total $((end - start)) s"
[ ${#failed[@]} = 0 ] || die "the functional test failed on ${failed[*]}"
say "Functional test passed (${targets[*]})"
