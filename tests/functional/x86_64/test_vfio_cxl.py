#!/usr/bin/env python3
#
# A Linux guest on q35 uses a CXL Type-2 accelerator passed through with
# vfio-user-cxl from the vfio-user-cxl-sim simulator: Debian's 6.1 and 7.2
# for each uAPI version, 6.1 also with host-bridge HDM decoders, and
# several devices beside a cxl-type3 under both.  The test itself, its
# inputs and what it checks: tests/functional/vfio_cxl_guest_test.py.
#
# SPDX-License-Identifier: GPL-2.0-or-later

from qemu_test import QemuSystemTest

from vfio_cxl_guest_test import VfioCxlGuestTest, add_tests


class VfioCxlGuest(VfioCxlGuestTest):

    target_name = 'x86_64'


add_tests(VfioCxlGuest)

if __name__ == '__main__':
    QemuSystemTest.main()
