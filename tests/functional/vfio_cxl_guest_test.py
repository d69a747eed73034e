"""The functional test's body, shared by its targets
(x86_64/test_vfio_cxl.py on q35, aarch64/test_vfio_cxl.py on virt): a
Linux guest uses a CXL Type-2 accelerator passed through with
vfio-user-cxl from the vfio-user-cxl-sim simulator.

The guests (Debian's kernels 6.1 and 7.2, each with an initramfs, built
by mk/guest-image.sh from Debian packages; nothing is downloaded here) run
/bin/vfio-cxl-guest (tests/functional/vfio-cxl-guest.c), which prints a
key=value report on the serial console.  The test checks it against the
simulator: its device memory file, its control socket, and QEMU's memory
tree (the checks are tests/functional/vfio_cxl_checks.py, shared with the
libvirt test).  Under 7.2 our Type-2 driver
(tests/functional/cxl-type2-driver) asks the guest's own CXL core for the
device memory, so the kernel judges what the device presents: memdev,
endpoint decoder, region.  Nothing here depends on the machine: what the
firmware or the machine decides (addresses, bus numbers, the host
bridge's UID) is read from the guest's report and QEMU's memory tree.

A target's test is a subclass of VfioCxlGuestTest naming its target
(vfio_cxl_boot.TARGETS) and adding its tests with add_tests(): one test
per guest kernel and uAPI version (KERNELS x UAPIS), see add_tests() for
the host bridge each one has; and one with several devices
(vfio_cxl_boot.SEVERAL: two sharing a window below one host bridge, one
in a window of its own, a cxl-type3 in another), each device's memory
checked on its own.

Inputs (the test is skipped when one is missing, or fails with
VFIO_CXL_REQUIRE_GUEST=1):
  VFIO_CXL_GUEST_DIR                 default: $VFIO_CXL_CACHE/guest; holds
                                     [arm64/]linux-<series>/{vmlinuz,
                                     initramfs.cpio.gz,kernel-version}
  VFIO_CXL_SIM                       the vfio-user-cxl-sim binary
  VFIO_CXL_ACCEL                     accelerator (default tcg: the nested
                                     KVM of the test machines cannot
                                     boot Linux)
  the target's firmware              aarch64: /usr/share/AAVMF (Debian's
                                     qemu-efi-aarch64)

SPDX-License-Identifier: GPL-2.0-or-later
"""

import logging
import os
import queue
import re
import sys
import threading
import time
import unittest
from types import SimpleNamespace

from qemu_test import QemuSystemTest

from vfio_cxl_boot import (KERNELS, SEVERAL, TARGETS, TYPE3_WINDOW,
                           Simulator, guest_image, qemu_args,
                           several_qemu_args)
from vfio_cxl_checks import GuestReportChecks

BOOT_TIMEOUT = 420

# uAPI versions of the simulator (vfio-user-cxl-sim --uapi).
UAPIS = ('v3', 'v2', 'v4')


class VfioCxlGuestTest(GuestReportChecks, QemuSystemTest):

    timeout = 540
    # The target's name in vfio_cxl_boot.TARGETS (a subclass's).
    target_name = None

    @property
    def target(self):
        return TARGETS[self.target_name]

    def say(self, msg):
        self.log.info(msg)
        print(f'# {msg}', file=sys.stderr, flush=True)

    def inputs(self, series):
        kernel, initrd = guest_image(series, self.target)
        sim = os.environ.get('VFIO_CXL_SIM')
        arch = f'--arch {self.target.guest_dir} ' if self.target.guest_dir \
            else ''
        for what, path in (('guest kernel', kernel), ('initramfs', initrd)):
            if not os.path.isfile(path):
                self.skipTest(f'no {what} at {path}: run mk/guest-image.sh '
                             f'{arch}{series} or set VFIO_CXL_GUEST_DIR')
        if self.target.missing():
            self.skipTest(self.target.missing())
        if not sim:
            self.skipTest('VFIO_CXL_SIM is not set: point it at the '
                         'vfio-user-cxl-sim binary')
        if not os.access(sim, os.X_OK):
            self.skipTest(f'VFIO_CXL_SIM={sim} is not an executable')
        return kernel, initrd, sim

    # ------------------------------------------------------------------
    # The simulator and the guest
    # ------------------------------------------------------------------

    def start_sim(self, sim, uapi, name=None, memory_size=None):
        """Starts simulator @sim, with its files in the socket directory
        (in its subdirectory @name, if given); returns it."""
        directory = self.socket_dir().name
        if name:
            directory = os.path.join(directory, name)
            os.mkdir(directory)
        extra = {'memory_size': memory_size} if memory_size else {}
        started = Simulator(sim, directory,
                            self.log_file(f'sim-{name}.log' if name
                                          else 'sim.log'), uapi, **extra)
        self.addCleanup(started.stop)
        self.log.info('starting %s', sim)
        try:
            started.start()
        except RuntimeError as e:
            self.fail(str(e))
        return started

    def hmp(self, command):
        return self.vm.cmd('human-monitor-command', command_line=command)

    def launch(self):
        """Launches the VM and reads its console from then on, in a thread,
        into self.console_lines (None once it closes): a QMP command must
        never wait for a guest that waits for the console to be read.
        virt's PL011 holds the BQL while a write waits for its chardev, so
        a guest printing its report while the test waits for QMP would
        hang both (q35's UART does not wait)."""
        self.vm.launch()
        self.console_lines = queue.Queue()
        console = self.vm.console_file

        def read():
            try:
                for raw in iter(console.readline, b''):
                    line = raw.decode(errors='replace').rstrip('\r\n')
                    logging.getLogger('console').debug(line)
                    self.console_lines.put(line)
            except (OSError, ValueError):
                pass    # closed when the VM shut down
            self.console_lines.put(None)
        threading.Thread(target=read, daemon=True).start()

    def console_line(self, timeout):
        """The next console line, None when the console closed, '' when
        none came in @timeout s (read_report's deadline then fails)."""
        try:
            return self.console_lines.get(timeout=timeout)
        except queue.Empty:
            return ''

    # ------------------------------------------------------------------
    # The test
    # ------------------------------------------------------------------

    def prepare(self, series):
        """The accelerator, guest kernel, initramfs and simulator to use;
        skips (fails with VFIO_CXL_REQUIRE_GUEST=1) when one is missing."""
        accel = os.environ.get('VFIO_CXL_ACCEL', 'tcg')
        try:
            kernel, initrd, sim = self.inputs(series)
            self.set_machine(self.target.machine)
            self.require_device('vfio-user-cxl')
            self.require_accelerator(accel)
        except unittest.SkipTest as e:
            if os.environ.get('VFIO_CXL_REQUIRE_GUEST') == '1':
                self.fail(f'VFIO_CXL_REQUIRE_GUEST=1, but: {e}')
            raise
        return accel, kernel, initrd, sim

    @staticmethod
    def accel_note(accel):
        return f'accelerator: {accel}' + (
            ' (Linux guests do not boot under this nested KVM)'
            if accel == 'tcg' else '')

    def guest_uses_device(self, series, uapi, hb_hdm):
        accel, kernel, initrd, sim = self.prepare(series)
        self.say(f'Linux {series}, uAPI {uapi}, host bridge ' +
                 ('with HDM decoders' if hb_hdm else 'passthrough') +
                 f', {self.accel_note(accel)}')

        self.sim = self.start_sim(sim, uapi)
        if not self.sim.clears_memory:
            # Device memory keeps what the host wrote before QEMU opened
            # the device.
            host_bytes = self.write_host_pattern()

        self.vm.set_console()
        self.vm.add_args(*qemu_args(accel, self.sim.sock, kernel, initrd,
                                    hb_hdm, self.target, self.scratch_file()))
        t0 = time.monotonic()
        self.launch()
        if self.sim.clears_memory:
            # The resets at open and at machine start (done once QMP
            # answers) cleared device memory: the host writes now, long
            # before the guest's report reads it.
            host_bytes = self.write_host_pattern()
        r = self.read_report(self.console_line, BOOT_TIMEOUT)
        t_end = time.monotonic()
        self.vm.wait(60)
        self.stats_after = self.stats()
        self.say(f'Linux {self.guest_kernel}: boot to '
                 f'report {self.t_report - t0:.1f} s, report '
                 f'{t_end - self.t_report:.1f} s, total '
                 f'{time.monotonic() - t0:.1f} s')

        self.check_report(r, host_bytes, hb_hdm, series)

    def cxl_status(self, dev_id):
        return self.vm.cmd('qom-get', path=f'/machine/peripheral/{dev_id}',
                           property='cxl-status')

    def guest_uses_several(self, series, uapi='v3'):
        """Several devices (SEVERAL) and a cxl-type3: each device lies
        where the placement rule and its cxl-status say, and the guest
        finds each there, with its own memory."""
        accel, kernel, initrd, sim = self.prepare(series)
        self.say(f'Linux {series}, uAPI {uapi}, {len(SEVERAL)} devices '
                 f'and a cxl-type3, {self.accel_note(accel)}')
        accels = []
        for a in SEVERAL:
            started = self.start_sim(sim, uapi, a.id, a.memory_size)
            # uAPI v3 keeps device memory across the resets at open and
            # at machine start: the host writes before QEMU starts.
            accels.append(SimpleNamespace(
                **a._asdict(), sim=started,
                host_bytes=self.write_host_pattern(started)))
        # The report is read while the first simulator is watched.
        self.sim = accels[0].sim

        self.vm.set_console()
        self.vm.add_args(*several_qemu_args(
            accel, {a.id: a.sim.sock for a in accels}, kernel, initrd,
            self.target, self.scratch_file()))
        t0 = time.monotonic()
        self.launch()
        # Each device is where the placement rule puts it (the lowest free
        # aligned range of its window, in command-line order), and its
        # cxl-status says so.
        windows = self.mtree_layout()[0]
        for a in accels:
            status = self.cxl_status(a.id)
            self.say(f'{a.id} cxl-status: {status}')
            m = re.fullmatch(r'mapped: (0x[0-9a-f]+) bytes at (0x[0-9a-f]+) '
                             r'in CXL fixed memory window (\d+), host uAPI '
                             + uapi, status)
            self.assertIsNotNone(m, f'{a.id}: {status}')
            a.size, a.base = int(m.group(1), 16), int(m.group(2), 16)
            self.assertEqual((int(m.group(3)), a.base, a.size),
                             (a.window, windows[a.window][0] + a.offset,
                              a.memory_size),
                             f'{a.id} is not where the placement rule puts '
                             f'it')
        r = self.read_report(self.console_line, BOOT_TIMEOUT)
        t_end = time.monotonic()
        self.vm.wait(60)
        self.say(f'Linux {self.guest_kernel}: boot to '
                 f'report {self.t_report - t0:.1f} s, report '
                 f'{t_end - self.t_report:.1f} s, total '
                 f'{time.monotonic() - t0:.1f} s')

        self.check_several_report(r, accels, series)
        self.check_type3(r, windows[TYPE3_WINDOW][0])


def add_tests(cls):
    """Adds to @cls, a VfioCxlGuestTest, one test per kernel and uAPI
    version.  A kernel whose CXL core has
    the Type-2 driver API (7.x) gets the documented host bridge, with HDM
    decoders (pxb-cxl hdm_for_passthrough=on): it assembles a region only
    below a committed host-bridge decoder whose range is the endpoint's.
    6.1 gets the passthrough host bridge, and one test with host-bridge
    decoders (a single root port): the device must commit decoder 0 over
    the window, targeting the root port."""
    def make(series, uapi, hb_hdm):
        return lambda self: self.guest_uses_device(series, uapi, hb_hdm)
    for series, type2 in KERNELS.items():
        tag = series.replace('.', '_')
        for uapi in UAPIS:
            setattr(cls, f'test_linux_{tag}_uapi_{uapi}',
                    make(series, uapi, type2))
        if not type2:
            setattr(cls, f'test_linux_{tag}_host_bridge_hdm',
                    make(series, UAPIS[0], True))
    # Several devices under every kernel (7.x's CXL core also judges every
    # device's memdev, decoders and region).  6.1 reads a host bridge's
    # HDM decoders 8 bytes at a time, which QEMU's component registers get
    # right with the build's fix to hw/cxl (mk/overlay.py, FIXES).
    for series in KERNELS:
        setattr(cls,
                f'test_linux_{series.replace(".", "_")}_several_devices',
                lambda self, s=series: self.guest_uses_several(s))
