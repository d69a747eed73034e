#!/usr/bin/env python3
#
# A Linux guest on virt (arm64, UEFI firmware from Debian's
# qemu-efi-aarch64, CXL described by ACPI) uses a CXL Type-2 accelerator
# passed through with vfio-user-cxl from the vfio-user-cxl-sim simulator:
# the same guests and checks as on q35 (Debian's arm64 6.1 and 7.2, built
# by mk/guest-image.sh --arch arm64).  The test itself, its inputs and
# what it checks: tests/functional/vfio_cxl_guest_test.py.
#
# SPDX-License-Identifier: GPL-2.0-or-later

from qemu_test import QemuSystemTest

from vfio_cxl_guest_test import VfioCxlGuestTest, add_tests


class VfioCxlGuest(VfioCxlGuestTest):

    target_name = 'aarch64'


add_tests(VfioCxlGuest)

if __name__ == '__main__':
    QemuSystemTest.main()
