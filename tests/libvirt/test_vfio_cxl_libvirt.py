#!/usr/bin/env python3
#
# A documented libvirt domain (docs/system/devices/
# vfio-cxl-libvirt-vfio-user.xml on x86_64, vfio-cxl-libvirt-virt.xml on
# aarch64) under a real libvirt daemon: virsh
# defines and starts it, the Linux guest of the functional test boots and
# its report passes the functional test's checks, virsh reads the device's
# cxl-status, hot-plugs a second vfio-user-cxl device into the spare root
# port and removes it, and destroy, undefine and the daemon's stop leave
# nothing behind.  Run by mk/libvirt.sh, which installs what it needs.
#
# Inputs (the test is skipped when one is missing, or fails with
# VFIO_CXL_REQUIRE_LIBVIRT=1):
#   VFIO_CXL_LIBVIRT_TARGET            x86_64 (default) or aarch64
#   VFIO_CXL_QEMU                      the qemu-system-TARGET to use
#   VFIO_CXL_SIM                       the vfio-user-cxl-sim binary
#   VFIO_CXL_GUEST_DIR                 default: $VFIO_CXL_CACHE/guest; the
#                                      guest is its linux-6.1/ (vmlinuz,
#                                      initramfs.cpio.gz), arm64/linux-6.1/
#                                      on aarch64
#   VFIO_CXL_ACCEL                     tcg (default) or kvm
#   VFIO_CXL_LIBVIRT_LOGS              a directory to keep the logs in
#
# SPDX-License-Identifier: GPL-2.0-or-later

import json
import logging
import os
import re
import select
import shutil
import stat
import sys
import tempfile
import time
import tty
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, os.path.join(PROJECT, 'tests', 'functional')]

import domain_xml  # noqa: E402
from private_libvirtd import PrivateLibvirtd  # noqa: E402
from vfio_cxl_boot import (BOOTED_PREFIX, HOST_LEN,  # noqa: E402
                           HOST_OFF, MEM_SIZE, TARGETS, Simulator,
                           booted_kernel, guest_image)
from vfio_cxl_checks import GuestReportChecks  # noqa: E402

TARGET_NAME = os.environ.get('VFIO_CXL_LIBVIRT_TARGET', 'x86_64')
# The documented domain of each target, and what its guest needs (the
# functional test's: console, guest image, the CPU model under TCG).
DOMAIN_XML = os.path.join(PROJECT, 'docs', 'system', 'devices', {
    'x86_64': 'vfio-cxl-libvirt-vfio-user.xml',
    'aarch64': 'vfio-cxl-libvirt-virt.xml',
}[TARGET_NAME])
TARGET = TARGETS[TARGET_NAME]
BOOT_TIMEOUT = 420
# The guest kernel (mk/guest-image.sh): the fast one.  The domain's host
# bridges have HDM decoders, which 7.x would need as well.
GUEST_SERIES = '6.1'
# What /init prints before it starts the shell (mk/guest-image.sh).
SHELL_READY = 'vfio-cxl-guest: /bin/vfio-cxl-guest prints the report'
SIM_VENDOR_DEVICE = ('0x1234', '0xc202')
HOTPLUG_ID, HOTPLUG_BUS = 'accel1', 'rp1'


class Console:
    """The guest's serial console: the pty libvirt gives it."""

    def __init__(self, path, log):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.buf = b''
        self.log = log
        self.seq = 0

    def close(self):
        os.close(self.fd)

    def line(self, timeout):
        """The next line, without its end; None if the console closed;
        raises TimeoutError after @timeout s."""
        deadline = time.monotonic() + timeout
        while b'\n' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f'no console line in {timeout:.0f} s')
            if not select.select([self.fd], [], [], left)[0]:
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:     # EIO: QEMU closed the pty
                chunk = b''
            if not chunk:
                return None
            self.buf += chunk
        raw, self.buf = self.buf.split(b'\n', 1)
        line = raw.decode(errors='replace').rstrip('\r')
        self.log.write(line + '\n')
        self.log.flush()
        return line

    def wait_for(self, text, timeout):
        """Reads lines until one contains @text; returns it, or None if
        the console closed first."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(max(deadline - time.monotonic(), 0.01))
            if line is None or text in line:
                return line

    def send(self, command):
        os.write(self.fd, command.encode() + b'\n')

    def run(self, command, timeout=60):
        """Runs @command in the guest's shell; returns (status, output
        lines)."""
        self.seq += 1
        mark = f'END-{self.seq}'
        self.send(f'{command}; echo {mark} $?')
        out = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(max(deadline - time.monotonic(), 0.01))
            if line is None:
                raise RuntimeError(f'the console closed during {command!r}')
            m = re.fullmatch(rf'{mark} (\d+)', line.strip())
            if m:
                return int(m.group(1)), out
            out.append(line)


class LibvirtDomain(GuestReportChecks, unittest.TestCase):

    log = logging.getLogger('vfio-cxl-libvirt')

    def say(self, msg):
        print(f'# {msg}', file=sys.stderr, flush=True)

    # ------------------------------------------------------------------
    # Set-up and tear-down
    # ------------------------------------------------------------------

    def inputs(self):
        qemu = os.environ.get('VFIO_CXL_QEMU')
        sim = os.environ.get('VFIO_CXL_SIM')
        kernel, initrd = guest_image(GUEST_SERIES, TARGET)
        missing = [f'{what} ({how})' for what, ok, how in (
            ('root', os.geteuid() == 0, 'the privileged daemon needs it'),
            ('libvirtd', os.access('/usr/sbin/libvirtd', os.X_OK),
             'Debian package libvirt-daemon'),
            ('virsh', shutil.which('virsh'), 'Debian package libvirt-clients'),
            ('unshare', shutil.which('unshare'), 'util-linux'),
            (f'QEMU {qemu}', qemu and os.access(qemu, os.X_OK),
             'set VFIO_CXL_QEMU'),
            (f'simulator {sim}', sim and os.access(sim, os.X_OK),
             'set VFIO_CXL_SIM'),
            (f'guest kernel {kernel}', os.path.isfile(kernel),
             f'run mk/guest-image.sh --arch ARCH {GUEST_SERIES}'),
            (f'initramfs {initrd}', os.path.isfile(initrd),
             f'run mk/guest-image.sh --arch ARCH {GUEST_SERIES}'),
        ) if not ok]
        if missing:
            why = 'missing: ' + ', '.join(missing)
            if os.environ.get('VFIO_CXL_REQUIRE_LIBVIRT') == '1':
                self.fail(f'VFIO_CXL_REQUIRE_LIBVIRT=1, but {why}')
            self.skipTest(why)
        return qemu, sim, kernel, initrd

    def setUp(self):
        self.qemu, self.sim_bin, self.kernel, self.initrd = self.inputs()
        self.accel = os.environ.get('VFIO_CXL_ACCEL', 'tcg')
        # Short: UNIX socket paths live below it.
        self.tmp = tempfile.mkdtemp(prefix='vfio-cxl-libvirt-', dir='/tmp')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.addCleanup(self.keep_logs)
        self.console_log = open(os.path.join(self.tmp, 'console.log'), 'w')
        self.addCleanup(self.console_log.close)
        self.sims = []
        self.addCleanup(self.stop_sims)
        self.daemon = PrivateLibvirtd(os.path.join(self.tmp, 'libvirt'))
        self.addCleanup(self.daemon.stop)
        self.qemu_pid = None
        self.addCleanup(self.kill_qemu)
        self.console = None
        self.addCleanup(self.close_console)

    def start_sim(self, name):
        d = os.path.join(self.tmp, name)
        os.mkdir(d)
        sim = Simulator(self.sim_bin, d, os.path.join(self.tmp, f'{name}.log'))
        self.sims.append(sim)
        try:
            sim.start()
        except RuntimeError as e:
            self.fail(str(e))
        return sim

    def stop_sims(self):
        for sim in self.sims:
            sim.stop()

    def kill_qemu(self):
        """QEMU is libvirt's to stop; if the test left it running (it
        failed before virsh destroy), it is killed by its PID."""
        if self.qemu_pid and pid_alive(self.qemu_pid):
            self.virsh('destroy', self.name, check=False)
            if pid_alive(self.qemu_pid):
                os.kill(self.qemu_pid, 9)

    def close_console(self):
        if self.console:
            self.console.close()

    def failed(self):
        """Whether the test has failed so far.  (A cleanup cannot ask
        unittest's outcome: it counts as a success while each cleanup
        runs; the result already holds the failure.)"""
        result = self._outcome.result
        return any(test is self for test, _ in result.failures + result.errors)

    def keep_logs(self):
        """On failure, prints the daemon's and QEMU's logs (and the
        console and simulators'); with VFIO_CXL_LIBVIRT_LOGS, copies them
        there."""
        keep = os.environ.get('VFIO_CXL_LIBVIRT_LOGS')
        logs = [os.path.join(self.tmp, f) for f in os.listdir(self.tmp)
                if f.endswith('.log')]
        if keep:
            os.makedirs(keep, exist_ok=True)
            for f in logs:
                shutil.copy(f, keep)
            with open(os.path.join(keep, 'libvirt.log'), 'w') as f:
                f.write(self.daemon.logs())
        if self.failed():
            print(self.daemon.logs(), file=sys.stderr)
            for f in sorted(logs):
                with open(f, errors='replace') as fh:
                    print(f'==== {f}\n{fh.read()[-20000:]}', file=sys.stderr)

    # ------------------------------------------------------------------
    # libvirt
    # ------------------------------------------------------------------

    def virsh(self, *args, check=True):
        try:
            return self.daemon.virsh(*args, check=check).stdout
        except RuntimeError as e:
            self.fail(str(e))

    def qmp(self, command, **arguments):
        """A QMP command through virsh qemu-monitor-command; its return
        value (fails the test on an error answer)."""
        cmd = {'execute': command}
        if arguments:
            cmd['arguments'] = arguments
        answer = json.loads(self.virsh('qemu-monitor-command', self.name,
                                       json.dumps(cmd)))
        self.assertIn('return', answer, f'{command}: {answer}')
        return answer['return']

    def hmp(self, command):
        return self.virsh('qemu-monitor-command', '--hmp', self.name, command)

    def cxl_status(self, dev_id):
        return self.qmp('qom-get', path=f'/machine/peripheral/{dev_id}',
                        property='cxl-status')

    def peripherals(self):
        return {p['name'] for p in self.qmp('qom-list',
                                            path='/machine/peripheral')}

    # ------------------------------------------------------------------
    # The test
    # ------------------------------------------------------------------

    def test_domain_lifecycle(self):
        t0 = time.monotonic()
        try:
            self.daemon.start()
        except RuntimeError as e:
            self.fail(f'{e}\n{self.daemon.logs()}')
        self.say(f'libvirtd {self.daemon.proc.pid} up, socket '
                 f'{self.daemon.socket}')
        before = tree(self.daemon.root)

        self.sim = self.start_sim('sim0')
        host_bytes = self.write_host_pattern()

        self.name = domain_xml.name(DOMAIN_XML)
        xml = domain_xml.concrete_domain(
            DOMAIN_XML, self.qemu, self.kernel, self.initrd,
            f'console={TARGET.console} iomem=relaxed panic=-1 '
            f'vfio_cxl_host={HOST_OFF:#x},{HOST_LEN}',
            {'accel0': self.sim.sock}, self.accel, TARGET.cpu)
        xml_path = os.path.join(self.tmp, 'domain.xml')
        with open(xml_path, 'w') as f:
            f.write(xml)
        self.virsh('define', xml_path)
        self.virsh('start', self.name)
        pid_file = self.daemon.path(f'/run/libvirt/qemu/{self.name}.pid')
        with open(pid_file) as f:
            self.qemu_pid = int(f.read())
        self.say(f'domain {self.name} started (QEMU {self.qemu_pid}, '
                 f'accelerator {self.accel}) in {time.monotonic() - t0:.1f} s')
        self.console = Console(self.virsh('ttyconsole', self.name).strip(),
                               self.console_log)

        self.guest_report(host_bytes)
        self.say(f'guest report checked {time.monotonic() - t0:.1f} s '
                 f'after the daemon started')

        status = self.cxl_status('accel0')
        self.say(f'accel0 cxl-status: {status}')
        self.assertTrue(status.startswith('mapped: '), status)
        self.assertIn(f'at {self.mtree[0]:#x} in CXL fixed memory window 0',
                      status)

        self.hotplug_and_remove()
        self.destroy_and_undefine(before)
        self.stop_daemon()
        self.say(f'total {time.monotonic() - t0:.1f} s')

    def guest_report(self, host_bytes):
        """The functional test's guest checks, the report program started
        from the guest's shell.  The documented domain's host bridge has
        HDM decoders (pxb-cxl hdm_for_passthrough=on)."""
        line = self.console.wait_for(BOOTED_PREFIX, BOOT_TIMEOUT)
        self.assertIsNotNone(line, 'the console closed before /init ran')
        self.guest_kernel = booted_kernel(line)
        line = self.console.wait_for(SHELL_READY, BOOT_TIMEOUT)
        self.assertIsNotNone(line, 'the console closed before the guest '
                             'shell started')
        self.console.send('dmesg -n 1; /bin/vfio-cxl-guest; '
                          'echo report-status $?')
        r = self.read_report(self.console.line, BOOT_TIMEOUT)
        self.assertIsNotNone(self.console.wait_for('report-status', 60))
        self.stats_after = self.stats()
        self.check_report(r, host_bytes, hb_hdm=True, series=GUEST_SERIES)

    def sim_devices(self):
        """The guest's PCI devices that are the simulated accelerator."""
        status, out = self.console.run(
            'for d in /sys/bus/pci/devices/*; do '
            'echo "dev $d $(cat $d/vendor) $(cat $d/device)"; done')
        self.assertEqual(status, 0, out)
        return sorted(f[1] for f in (ln.split() for ln in out)
                      if len(f) == 4 and f[0] == 'dev' and
                      tuple(f[2:]) == SIM_VENDOR_DEVICE)

    def wait_sim_devices(self, count, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            found = self.sim_devices()
            if len(found) == count or time.monotonic() > deadline:
                return found
            time.sleep(1)

    def hotplug_and_remove(self):
        """device_add of a second vfio-user-cxl into the spare root port
        (window 1) through virsh, the guest finds it and reads device
        memory the host wrote; device_del, the guest lets it go, QEMU
        deletes it and releases the simulator."""
        first = self.sim_devices()
        self.assertEqual(len(first), 1, first)
        sim1 = self.start_sim('sim1')
        word = os.urandom(8)
        sim1.control(f'mem-write 0 {word.hex()}')

        self.qmp('device_add', driver='vfio-user-cxl', id=HOTPLUG_ID,
                 bus=HOTPLUG_BUS, socket={'type': 'unix', 'path': sim1.sock})
        status = self.cxl_status(HOTPLUG_ID)
        self.say(f'{HOTPLUG_ID} cxl-status after device_add: {status}')
        m = re.match(rf'mapped: {MEM_SIZE:#x} bytes at (0x[0-9a-f]+) in '
                     r'CXL fixed memory window 1\b', status)
        self.assertIsNotNone(m, status)
        base = int(m.group(1), 16)

        # The guest's pciehp powers the slot and enumerates the device.
        both = self.wait_sim_devices(2)
        self.assertEqual(len(both), 2, f'the guest does not see the '
                         f'hot-plugged device: {both}')
        status, out = self.console.run(f'devmem {base:#x} 64')
        self.assertEqual(status, 0, out)
        got = int(out[-1].strip(), 16)
        self.assertEqual(got, int.from_bytes(word, 'little'),
                         f'the guest read {got:#x} at {base:#x}, the host '
                         f'wrote {word.hex()} (little endian)')
        self.say(f'{HOTPLUG_ID}: the guest sees {both[-1]} and reads the '
                 f'host\'s word at {base:#x}')

        # Removal: device_del presses the attention button, the guest's
        # pciehp powers the slot off, QEMU deletes the device.
        self.qmp('device_del', id=HOTPLUG_ID)
        deadline = time.monotonic() + 60
        while HOTPLUG_ID in self.peripherals():
            self.assertLess(time.monotonic(), deadline,
                            f'{HOTPLUG_ID} still there 60 s after device_del')
            time.sleep(0.5)
        self.assertEqual(self.wait_sim_devices(1), first,
                         'the guest still sees the removed device')
        self.assertTrue(sim1.takes_new_client(),
                        'QEMU still holds its connection to the second '
                        'simulator after device_del')
        self.assertTrue(self.cxl_status('accel0').startswith('mapped: '))
        self.say(f'{HOTPLUG_ID} removed; the guest sees {first} only')

    def destroy_and_undefine(self, before):
        """virsh destroy and undefine leave no QEMU, socket or file (the
        domain's log, which libvirt keeps, aside)."""
        self.virsh('destroy', self.name)
        deadline = time.monotonic() + 30
        while pid_alive(self.qemu_pid):
            self.assertLess(time.monotonic(), deadline,
                            f'QEMU {self.qemu_pid} alive 30 s after destroy')
            time.sleep(0.1)
        # A domain with UEFI variables is undefined with them.
        self.virsh('undefine', self.name,
                   *(['--nvram'] if domain_xml.has_nvram(DOMAIN_XML) else []))
        self.assertNotIn(self.name, self.virsh('list', '--all', '--name'))
        self.assertTrue(self.sim.takes_new_client(),
                        'QEMU still holds its connection to the simulator')
        # The daemon keeps the domain's log and its cache of the
        # emulator's capabilities, and the directories it made for its
        # drivers' state; everything else that is new is the domain's.
        kept = [self.daemon.path('/var/log/libvirt/qemu'),
                self.daemon.path('/var/cache/libvirt/qemu')]
        left = {p: kind for p, kind in tree(self.daemon.root).items()
                if p not in before and
                not any(p == k or p.startswith(k + '/') for k in kept) and
                (kind != 'dir' or self.name in p or os.listdir(p))}
        self.assertEqual(left, {}, 'left behind by the domain')
        self.say(f'destroy + undefine: QEMU {self.qemu_pid} gone, no file '
                 f'or socket left (kept: the domain log, the capability '
                 f'cache)')

    def stop_daemon(self):
        pid = self.daemon.proc.pid
        status = self.daemon.stop()
        self.assertEqual(status, 0, 'libvirtd did not exit cleanly on '
                         'SIGTERM')
        self.assertFalse(pid_alive(pid))
        sockets = [p for p, kind in tree(self.daemon.root).items()
                   if kind == 'socket']
        self.assertEqual(sockets, [], 'sockets left by libvirtd')
        self.say(f'libvirtd {pid} stopped (status 0), no socket left')


def pid_alive(pid):
    """Whether @pid runs (a zombie does not count)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def tree(root):
    """Every path under @root: 'socket', 'dir' or 'file'."""
    found = {}
    for d, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.join(d, name)] = 'dir'
        for name in files:
            p = os.path.join(d, name)
            found[p] = 'socket' if stat_is_socket(p) else 'file'
    return found


def stat_is_socket(path):
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


if __name__ == '__main__':
    unittest.main(verbosity=2)
