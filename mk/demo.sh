#!/usr/bin/env bash
# The README's demo command.  Until the guest demo exists it builds QEMU
# and shows what the build contains.
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$PROJECT_ROOT/mk/build.sh"
qemu="$QEMU_BUILD/qemu-system-x86_64"
say "What the build contains"
"$qemu" --version | head -n 1
echo "rustc: $(rustc --version)"
echo "Devices of this project:"
"$qemu" -device help | grep -E '"vfio-(user-)?cxl"'
echo "Properties of vfio-cxl (inherited from vfio-pci):"
"$qemu" -device vfio-cxl,help | head -n 12
