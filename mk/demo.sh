#!/usr/bin/env bash
# The README's demo: build what is missing (QEMU with the overlay, the
# simulator, a Debian-kernel guest image), start the simulated CXL Type-2
# accelerator, boot a Linux guest with it under TCG, and print what the
# guest saw.  Everything is stopped at the end.
#
# Environment: VFIO_CXL_DEMO_KERNEL=7.2 boots Linux 7.2 (default 6.1);
# VFIO_CXL_DEMO_TARGET=aarch64 boots an arm64 guest on virt, with UEFI
# firmware from Debian's qemu-efi-aarch64 (default x86_64, q35).
set -euo pipefail
source "$(dirname "$0")/env.sh"

bash "$PROJECT_ROOT/mk/build.sh"
# Linux 6.1 by default: its image comes from bookworm alone, 7.2's needs
# an unstable chroot the first time (our Type-2 driver is built there);
# warm, both report after about 7 s under TCG.  VFIO_CXL_DEMO_KERNEL=7.2
# boots 7.2, whose Type-2 driver then gets a region from its CXL core.
series="${VFIO_CXL_DEMO_KERNEL:-6.1}"
target="${VFIO_CXL_DEMO_TARGET:-x86_64}"
arch=$(guest_arch "$target")
guest=$(guest_dir "$target" "$series")
bash "$PROJECT_ROOT/mk/guest-image.sh" --arch "$arch" "$series"
build_simulator
need_built_qemu "$target"

say "Demo"
python3 "$PROJECT_ROOT/mk/demo.py" "$QEMU_BIN" "$SIM" \
    "$guest/vmlinuz" "$guest/initramfs.cpio.gz" "$target"
