#!/usr/bin/env bash
# The README's demo: build what is missing (QEMU with the overlay, the
# simulator, a Debian-kernel guest image), start the simulated CXL Type-2
# accelerator, boot a Linux guest with it under TCG, and print what the
# guest saw.  Everything is stopped at the end.
set -euo pipefail
source "$(dirname "$0")/env.sh"

bash "$PROJECT_ROOT/mk/build.sh"
bash "$PROJECT_ROOT/mk/guest-image.sh"
say "Building the simulator"
(cd "$PROJECT_ROOT" && cargo build -q -p vfio-user-cxl-sim)

say "Demo"
python3 "$PROJECT_ROOT/mk/demo.py" "$QEMU_BUILD/qemu-system-x86_64" \
    "$CARGO_TARGET_DIR/debug/vfio-user-cxl-sim" \
    "$VFIO_CXL_CACHE/guest/vmlinuz" "$VFIO_CXL_CACHE/guest/initramfs.cpio.gz"
