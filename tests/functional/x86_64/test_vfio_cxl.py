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
import re
import subprocess
import sys
import time
import unittest

from qemu_test import QemuSystemTest

from vfio_cxl_boot import (HOST_LEN, HOST_OFF, MEM_SIZE, MiB, PAGE,
                           REPORT_BEGIN, REPORT_END, WINDOW_SIZE, fnv1a, num,
                           pattern_page, qemu_args, sim_control)

BOOT_TIMEOUT = 420


class VfioCxlGuest(QemuSystemTest):

    timeout = 540

    def say(self, msg):
        self.log.info(msg)
        print(f'# {msg}', file=sys.stderr, flush=True)

    def inputs(self):
        cache = os.environ.get('VFIO_CXL_CACHE') or \
            os.path.expanduser('~/.cache/vfio-cxl')
        kernel = os.environ.get('VFIO_CXL_KERNEL') or \
            os.path.join(cache, 'guest', 'vmlinuz')
        initrd = os.environ.get('VFIO_CXL_INITRD') or \
            os.path.join(cache, 'guest', 'initramfs.cpio.gz')
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
    # The simulator
    # ------------------------------------------------------------------

    def start_sim(self, sim, uapi):
        d = self.socket_dir().name
        self.sim_sock = os.path.join(d, 'sock')
        self.sim_ctl = os.path.join(d, 'ctl')
        self.sim_mem = os.path.join(d, 'mem')
        log_path = self.log_file('sim.log')
        self.sim_log = open(log_path, 'w')
        args = [sim, '--socket', self.sim_sock, '--control', self.sim_ctl,
                '--memory-file', self.sim_mem,
                '--memory-size', f'{MEM_SIZE // MiB}M', '--uapi', uapi]
        self.log.info('starting %s', ' '.join(args))
        self.sim = subprocess.Popen(args, stdout=self.sim_log,
                                    stderr=subprocess.STDOUT)
        self.addCleanup(self.stop_sim)
        deadline = time.monotonic() + 20
        while True:
            with open(log_path) as f:
                out = f.read()
            if 'listening on' in out:
                return
            if self.sim.poll() is not None:
                self.fail(f'the simulator exited with {self.sim.returncode}:'
                          f' {out}')
            if time.monotonic() > deadline:
                self.fail(f'the simulator did not listen in 20 s: {out}')
            time.sleep(0.05)

    def stop_sim(self):
        if self.sim.poll() is None:
            self.sim.terminate()
            try:
                self.sim.wait(10)
            except subprocess.TimeoutExpired:
                self.sim.kill()
                self.sim.wait()
        self.sim_log.close()

    def sim_gone(self):
        """Why the simulator is not there any more, or None."""
        if self.sim.poll() is None:
            return None
        self.sim_log.flush()
        with open(self.log_file('sim.log')) as f:
            return f'the simulator exited with status {self.sim.returncode}' \
                f' (its log: {f.read().strip()!r})'

    def ctl(self, command):
        gone = self.sim_gone()
        if gone:
            self.fail(f"control command '{command}': {gone}")
        answer = sim_control(self.sim_ctl, command)
        self.assertTrue(answer.get('ok'), f"'{command}' failed: {answer}")
        return answer

    def stats(self):
        return self.ctl('stats')

    def device_memory(self, off, length):
        with open(self.sim_mem, 'rb') as f:
            f.seek(off)
            return f.read(length)

    # ------------------------------------------------------------------
    # The guest
    # ------------------------------------------------------------------

    def window_from_mtree(self):
        """The CXL fixed memory window and the device memory, as QEMU
        maps them (independent of what the guest reports)."""
        mtree = self.vm.cmd('human-monitor-command', command_line='info mtree')
        win = re.search(r'([0-9a-f]+)-([0-9a-f]+) \(prio \d+, i/o\): '
                        r'cxl-fixed-memory-region', mtree)
        self.assertIsNotNone(win, 'no cxl-fixed-memory-region in info mtree')
        start, end = int(win.group(1), 16), int(win.group(2), 16)
        ramd = re.search(r'([0-9a-f]+)-([0-9a-f]+) \(prio \d+, ramd\): '
                         r'vfio-cxl-memory[^\n]*', mtree)
        self.assertIsNotNone(ramd, 'the device memory is not mapped as a '
                             'ram device region in info mtree')
        self.log.info('mtree: window %x-%x, device memory %s', start, end,
                      ramd.group(0))
        return start, end - start + 1, int(ramd.group(1), 16), \
            int(ramd.group(2), 16) - int(ramd.group(1), 16) + 1

    def read_report(self, deadline):
        """Reads the console up to the end of the report; snapshots the
        simulator's counters at its start and before the guest's FLR."""
        console = logging.getLogger('console')
        sock = self.vm.console_socket
        report, inside = {}, False
        self.stats_before_flr = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail(f'no {REPORT_END} on the console in '
                          f'{BOOT_TIMEOUT} s')
            sock.settimeout(left)
            raw = self.vm.console_file.readline()
            if not raw:
                self.fail('the console closed before the report ended' +
                          (f'; {self.sim_gone()}' if self.sim_gone() else ''))
            line = raw.decode(errors='replace').rstrip('\r\n')
            console.debug(line)
            if 'Kernel panic' in line:
                self.fail(f'guest kernel panic: {line}')
            if line == REPORT_BEGIN:
                inside = True
                self.t_report = time.monotonic()
                self.stats_begin = self.stats()
                self.mtree = self.window_from_mtree()
            elif line == REPORT_END:
                return report
            elif inside and '=' in line:
                key, value = line.split('=', 1)
                report[key] = value
                if key == 'reset.pending':
                    self.stats_before_flr = self.stats()

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
        self.vm.add_args(*qemu_args(accel, self.sim_sock, kernel, initrd,
                                    hb_hdm))
        t0 = time.monotonic()
        self.vm.launch()
        r = self.read_report(t0 + BOOT_TIMEOUT)
        t_end = time.monotonic()
        self.vm.wait(60)
        self.stats_after = self.stats()
        self.say(f'boot to report {self.t_report - t0:.1f} s, report '
                 f'{t_end - self.t_report:.1f} s, total '
                 f'{time.monotonic() - t0:.1f} s')

        self.check_report(r, host_bytes, hb_hdm)

    def check_report(self, r, host_bytes, hb_hdm):
        errors = {k: v for k, v in r.items() if v.startswith('error:')}
        self.assertEqual(errors, {}, 'the guest reported errors')
        self.assertEqual(r.get('errors'), '0')
        win_base, win_size, mem_base, mem_size = self.mtree
        self.say(f'window {win_base:#x}+{win_size:#x}, device memory '
                 f'{mem_base:#x}+{mem_size:#x} (QEMU memory tree)')
        self.assertEqual(win_size, WINDOW_SIZE)
        self.assertEqual((mem_base, mem_size), (win_base, MEM_SIZE),
                         'device memory is not at the window base')

        # The device.
        self.assertIn('device', r, 'the guest did not find the device')
        self.assertEqual((r['device.vendor'], r['device.device'],
                          r['device.class']), ('0x1234', '0xc202', '0x120000'))
        self.assertEqual(r['device.driver'], 'none')

        # CXL Device DVSEC: locked, memory enabled, range 1 = the memory.
        self.assertEqual(r['dvsec.locked'], '1')
        self.assertEqual(r['dvsec.mem_enable'], '1')
        self.assertEqual(num(r['dvsec.range1_size']), MEM_SIZE)
        self.assertEqual(num(r['dvsec.range1_base']), win_base)
        for reg in ('control', 'lock'):
            self.assertIn(f'dvsec_write.{reg}.wrote', r)
            self.assertEqual(r[f'dvsec_write.{reg}.stuck'], '0',
                             f'a guest write to the locked DVSEC {reg} stuck')

        # HDM decoder 0: committed and locked at the window base.
        self.assertEqual(r['hdm.d0.committed'], '1')
        self.assertEqual(r['hdm.d0.lock_on_commit'], '1')
        self.assertEqual(num(r['hdm.d0.base']), win_base)
        self.assertEqual(num(r['hdm.d0.size']), MEM_SIZE)
        for reg in ('base_lo', 'size_lo', 'ctrl'):
            self.assertEqual(num(r[f'hdm_write.{reg}.stuck']), 0,
                             f'a guest write to locked decoder 0 {reg} '
                             f'stuck: {r[f"hdm_write.{reg}.stuck"]}')

        self.check_cxl_core(r, '', win_base, win_size)
        self.check_host_bridge(r, win_base, win_size, hb_hdm)

        # The guest's writes are in device memory, at the same offsets.
        self.assertEqual(num(r['mem.base']), win_base)
        pages = sorted({k.split('.')[1] for k in r
                        if re.fullmatch(r'mem\.\d+\.offset', k)})
        self.assertEqual(len(pages), 5)
        offsets = [num(r[f'mem.{p}.offset']) for p in pages]
        self.assertIn(0, offsets)
        self.assertIn(MEM_SIZE - PAGE, offsets)
        for p in pages:
            self.check_page(r, f'mem.{p}', 1)
        self.assertEqual(r['host_pattern.hex'], host_bytes.hex(),
                         'the guest did not read the host pattern')

        # After the FLR: the same DVSEC, decoder, CXL view and data.
        self.assertEqual(r['reset.result'], 'ok')
        for key in [k for k in r
                    if re.match(r'(dvsec|hdm|cxl|pci|hb\.hdm)\.', k)]:
            self.assertEqual(r.get(f'flr.{key}'), r[key],
                             f'{key} changed across the FLR')
        for p in pages:
            self.assertEqual(r[f'flr.mem.{p}.checksum'],
                             r[f'mem.{p}.checksum'],
                             f'page at {r[f"mem.{p}.offset"]} changed '
                             f'across the FLR')
            self.assertEqual(r[f'flr.mem.{p}.mismatched_words'], '0')
        self.assertEqual(r['flr.host_pattern.hex'], host_bytes.hex())
        self.check_page(r, 'flr.mem.new', 2)

        # The host saw exactly the guest's FLR.
        before, after = self.stats_before_flr, self.stats_after
        self.assertIsNotNone(before, 'the guest never announced its FLR')
        self.say(f"host resets: {self.stats_begin['resets']} when the "
                 f"report began, {before['resets']} before the FLR, "
                 f"{after['resets']} after")
        self.assertEqual(self.stats_begin['resets'], before['resets'])
        self.assertEqual(after['resets'], before['resets'] + 1,
                         'the simulator did not see exactly one reset')
        self.assertEqual(after['reset_failures'], 0)

    def check_host_bridge(self, r, win_base, win_size, hb_hdm):
        """The ACPI CEDT names the host bridge that the window targets; its
        component registers (read by the guest through /dev/mem, since 6.1
        shows no host-bridge decoder for a single root port) either have
        no HDM decoder (passthrough) or decoder 0 committed over the
        device memory, targeting the device's root port."""
        self.assertIn(f'base {win_base:#x} size {win_size:#x} ways 1',
                      r['cedt.cfmws.0'])
        self.assertEqual(r['hb.uid'], r['cxl.decoder0.0.target_list'])
        port = num(r['root_port.port_number'])
        self.assertEqual(r.get(f'cxl.port1.dport{port}'),
                         r['device.sysfs'].split('/')[-2],
                         'the CXL core names the root port by another id')
        if not hb_hdm:
            self.assertIn('none', r['hb.hdm'])
            return
        self.assertEqual(r['hb.hdm.d0.committed'], '1')
        self.assertEqual(num(r['hb.hdm.d0.base']), win_base)
        self.assertEqual(num(r['hb.hdm.d0.size']), MEM_SIZE)
        self.assertEqual(num(r['hb.hdm.d0.target_list_lo']) & 0xff, port)
        self.say(f"host bridge {r['hb.uid']} decoder 0: "
                 f"{r['hb.hdm.d0.base']}+{r['hb.hdm.d0.size']} ctrl "
                 f"{r['hb.hdm.d0.ctrl']} -> port {port}")

    def check_page(self, r, name, seed):
        off = num(r[f'{name}.offset'])
        data = self.device_memory(off, PAGE)
        self.assertEqual(r[f'{name}.mismatched_words'], '0',
                         f'{name}: the guest read back other data')
        self.assertTrue(data == pattern_page(seed, off),
                        f'{name}: the guest pattern at {off:#x} is not in '
                        f'the simulator memory file')
        self.assertEqual(num(r[f'{name}.checksum']), fnv1a(data),
                         f'{name}: guest checksum differs from the file')

    def check_cxl_core(self, r, prefix, win_base, win_size):
        """What Linux 6.1's CXL core shows: a root decoder for the window
        whose target is the host bridge above the device, and that host
        bridge's port with the device's root port as its dport.  (6.1 sets
        up a pass-through decoder for a single-dport host bridge and does
        not bind an endpoint for a device that is not a CXL memory
        device, so the path ends at the root port.)"""
        cxl = {k[len(prefix) + 4:]: v for k, v in r.items()
               if k.startswith(prefix + 'cxl.')}
        devices = cxl['devices'].split(',')
        roots = [d for d in devices if cxl.get(f'{d}.devtype') ==
                 'cxl_decoder_root' and num(cxl[f'{d}.start']) <= win_base
                 and win_base + MEM_SIZE <=
                 num(cxl[f'{d}.start']) + num(cxl[f'{d}.size'])]
        self.assertEqual(len(roots), 1,
                         f'no single root decoder covers {win_base:#x}: {cxl}')
        root = roots[0]
        self.assertEqual((num(cxl[f'{root}.start']), num(cxl[f'{root}.size'])),
                         (win_base, win_size))
        self.assertEqual(cxl[f'{root}.cap_type2'], '1')
        targets = cxl[f'{root}.target_list'].split(',')
        self.assertEqual(len(targets), 1)
        # root0's dport with that id is the host bridge (ACPI0016).
        bridge = cxl.get(f'root0.dport{targets[0]}')
        self.assertIsNotNone(bridge, f'root0 has no dport{targets[0]}')
        self.assertTrue(bridge.startswith('ACPI0016'), bridge)
        # The host bridge's port has the device's parent (the root port)
        # as its dport.
        parent = r['device.sysfs'].split('/')[-2]
        ports = [d for d in devices if cxl.get(f'{d}.uport') == bridge]
        self.assertEqual(len(ports), 1, f'no port for {bridge}: {cxl}')
        dports = [v for k, v in cxl.items()
                  if k.startswith(f'{ports[0]}.dport')]
        self.assertEqual(dports, [parent],
                         f'{ports[0]} dports {dports}, device below {parent}')
        self.say(f'CXL core: {root} {cxl[f"{root}.start"]}+'
                 f'{cxl[f"{root}.size"]} -> root0.dport{targets[0]} = '
                 f'{bridge} -> {ports[0]}.dport = {parent} -> '
                 f'{r["device"]}')


if __name__ == '__main__':
    QemuSystemTest.main()
