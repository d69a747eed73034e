#!/usr/bin/env python3
#
# A Linux guest uses a CXL Type-2 accelerator passed through with
# vfio-user-cxl from the vfio-user-cxl-sim simulator.
#
# The guest (Debian bookworm's kernel 6.1 and an initramfs, both built by
# mk/guest-image.sh from Debian packages; nothing is downloaded here) runs
# /bin/vfio-cxl-guest (tests/functional/vfio-cxl-guest.c), which prints a
# key=value report on the serial console.  The test checks it against the
# simulator: its device memory file, its control socket, and QEMU's memory
# tree.
#
# Inputs (the test is skipped when one is missing, or fails with
# VFIO_CXL_REQUIRE_GUEST=1):
#   VFIO_CXL_KERNEL, VFIO_CXL_INITRD   default: $VFIO_CXL_CACHE/guest/
#                                      {vmlinuz,initramfs.cpio.gz}
#   VFIO_CXL_SIM                       the vfio-user-cxl-sim binary
#   VFIO_CXL_ACCEL                     accelerator (default tcg: the nested
#                                      KVM of the test machines cannot
#                                      boot Linux)
#
# SPDX-License-Identifier: GPL-2.0-or-later

import logging
import os
import sys
import time
import unittest

from qemu_test import QemuSystemTest

from vfio_cxl_boot import (HOST_LEN, HOST_OFF, Simulator, guest_image,
                           qemu_args)
from vfio_cxl_checks import GuestReportChecks

BOOT_TIMEOUT = 420


class VfioCxlGuest(GuestReportChecks, QemuSystemTest):

    timeout = 540

    def say(self, msg):
        self.log.info(msg)
        print(f'# {msg}', file=sys.stderr, flush=True)

    def inputs(self):
        kernel, initrd = guest_image()
        sim = os.environ.get('VFIO_CXL_SIM')
        for what, path in (('guest kernel', kernel), ('initramfs', initrd)):
            if not os.path.isfile(path):
                self.skipTest(f'no {what} at {path}: run mk/guest-image.sh '
                             f'or set VFIO_CXL_KERNEL/VFIO_CXL_INITRD')
        if not sim:
            self.skipTest('VFIO_CXL_SIM is not set: point it at the '
                         'vfio-user-cxl-sim binary')
        if not os.access(sim, os.X_OK):
            self.skipTest(f'VFIO_CXL_SIM={sim} is not an executable')
        return kernel, initrd, sim

    # ------------------------------------------------------------------
    # The simulator and the guest
    # ------------------------------------------------------------------

    def start_sim(self, sim, uapi):
        self.sim = Simulator(sim, self.socket_dir().name,
                             self.log_file('sim.log'), uapi)
        self.addCleanup(self.sim.stop)
        self.log.info('starting %s', sim)
        try:
            self.sim.start()
        except RuntimeError as e:
            self.fail(str(e))

    def hmp(self, command):
        return self.vm.cmd('human-monitor-command', command_line=command)

    def console_line(self, timeout):
        self.vm.console_socket.settimeout(timeout)
        raw = self.vm.console_file.readline()
        if not raw:
            return None
        line = raw.decode(errors='replace').rstrip('\r\n')
        logging.getLogger('console').debug(line)
        return line

    # ------------------------------------------------------------------
    # The test
    # ------------------------------------------------------------------

    def test_uapi_v3(self):
        self.guest_uses_device('v3')

    def test_uapi_v2(self):
        """The v2 series' region numbering and reset behaviour (the host
        deactivates the memory region across the reset)."""
        self.guest_uses_device('v2')

    def test_host_bridge_hdm(self):
        """A host bridge with HDM decoders although it has a single root
        port (pxb-cxl hdm_for_passthrough=on): the device must commit its
        decoder 0 over the window, targeting the root port."""
        self.guest_uses_device('v3', hb_hdm=True)

    def guest_uses_device(self, uapi, hb_hdm=False):
        accel = os.environ.get('VFIO_CXL_ACCEL', 'tcg')
        try:
            kernel, initrd, sim = self.inputs()
            self.set_machine('q35')
            self.require_device('vfio-user-cxl')
            self.require_accelerator(accel)
        except unittest.SkipTest as e:
            if os.environ.get('VFIO_CXL_REQUIRE_GUEST') == '1':
                self.fail(f'VFIO_CXL_REQUIRE_GUEST=1, but: {e}')
            raise
        self.say(f'accelerator: {accel}' + (
            ' (Linux guests do not boot under this nested KVM)'
            if accel == 'tcg' else ''))

        self.start_sim(sim, uapi)
        host_bytes = os.urandom(HOST_LEN)
        self.ctl(f'mem-write {HOST_OFF:#x} {host_bytes.hex()}')
        self.assertEqual(self.device_memory(HOST_OFF, HOST_LEN), host_bytes,
                         'mem-write did not reach the memory file')

        self.vm.set_console()
        self.vm.add_args(*qemu_args(accel, self.sim.sock, kernel, initrd,
                                    hb_hdm))
        t0 = time.monotonic()
        self.vm.launch()
        r = self.read_report(self.console_line, BOOT_TIMEOUT)
        t_end = time.monotonic()
        self.vm.wait(60)
        self.stats_after = self.stats()
        self.say(f'boot to report {self.t_report - t0:.1f} s, report '
                 f'{t_end - self.t_report:.1f} s, total '
                 f'{time.monotonic() - t0:.1f} s')

        self.check_report(r, host_bytes, hb_hdm)


if __name__ == '__main__':
    QemuSystemTest.main()
