#!/usr/bin/env bash
# The README's demo: build what is missing (QEMU with the overlay, the
# simulator, a Debian-kernel guest image), start the simulated CXL Type-2
# accelerator, boot a Linux guest with it under TCG, and print what the
# guest saw.  Everything is stopped at the end.
set -euo pipefail
source "$(dirname "$0")/env.sh"

bash "$PROJECT_ROOT/mk/build.sh"
# Linux 6.1 by default (report after about 6 s under TCG, 7.2 after about
# 9 s): on the demo's topology, a host bridge without HDM decoders, 7.2's
# CXL core cannot assemble a region yet (see the functional test), so its
# Type-2 driver would not bind.  VFIO_CXL_DEMO_KERNEL=7.2 boots 7.2.
series="${VFIO_CXL_DEMO_KERNEL:-6.1}"
bash "$PROJECT_ROOT/mk/guest-image.sh" "$series"
say "Building the simulator"
(cd "$PROJECT_ROOT" && cargo build -q -p vfio-user-cxl-sim)

say "Demo"
python3 "$PROJECT_ROOT/mk/demo.py" "$QEMU_BUILD/qemu-system-x86_64" \
    "$CARGO_TARGET_DIR/debug/vfio-user-cxl-sim" \
    "$VFIO_CXL_CACHE/guest/linux-$series/vmlinuz" \
    "$VFIO_CXL_CACHE/guest/linux-$series/initramfs.cpio.gz"
