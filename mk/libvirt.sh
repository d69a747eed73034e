#!/usr/bin/env bash
# Run the libvirt test (tests/libvirt/test_vfio_cxl_libvirt.py) for each
# target: the documented domain (docs/system/devices/
# vfio-cxl-libvirt-vfio-user.xml on x86_64 q35, vfio-cxl-libvirt-virt.xml
# on aarch64 virt) under a libvirt daemon of the test's own; the guest's
# checks of the functional test; cxl-status, hot-plug and removal through
# virsh; nothing left after destroy, undefine and the daemon's stop.
#
# Installs Debian's libvirt daemon, its QEMU driver and virsh when missing
# (no service is set up or started: the test starts libvirtd itself, in a
# private mount namespace), builds the guest image and the simulator.
# QEMU itself must already be built (mk/build.sh).  Needs root; without
# root it is skipped, except under CI=true, where that fails.
#
# Environment: VFIO_CXL_ACCEL=kvm to try KVM instead of TCG;
# VFIO_CXL_LIBVIRT_LOGS=DIR keeps the daemon's, QEMU's, the console's and
# the simulators' logs there.
set -euo pipefail
source "$(dirname "$0")/env.sh"

start=$(date +%s)
if [ "$(id -u)" != 0 ]; then
    [ "${CI:-}" = true ] && die "the libvirt test needs root (CI=true: not skipped)"
    echo "libvirt test: skipped: it needs root (the privileged libvirtd, a mount namespace)"
    exit 0
fi

ensure_debs libvirt libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients util-linux python3
# shellcheck disable=SC2206
targets=($VFIO_CXL_TARGETS)
for target in "${targets[@]}"; do
    "$PROJECT_ROOT/mk/guest-image.sh" --arch "$(guest_arch "$target")" 6.1
done
build_simulator

status=0 times=()
for target in "${targets[@]}"; do
    need_built_qemu "$target"
    say "Running tests/libvirt/test_vfio_cxl_libvirt.py on $target (libvirt $(virsh --version))"
    t0=$(date +%s)
    VFIO_CXL_LIBVIRT_TARGET="$target" VFIO_CXL_QEMU="$QEMU_BIN" VFIO_CXL_SIM="$SIM" \
        VFIO_CXL_REQUIRE_LIBVIRT=1 \
        /usr/bin/python3 "$PROJECT_ROOT/tests/libvirt/test_vfio_cxl_libvirt.py" ||
        { status=$?; echo "libvirt test on $target failed (status $status)"; }
    times+=("$target $(( $(date +%s) - t0 )) s")
done
end=$(date +%s)
printf -v per_target '%s, ' "${times[@]}"
echo "elapsed: ${per_target}total $((end - start)) s"
[ "$status" = 0 ] || die "the libvirt test failed"
say "libvirt test passed"
