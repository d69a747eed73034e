#!/usr/bin/env python3
#
# A Linux guest uses a CXL Type-2 accelerator passed through with
# vfio-user-cxl from the vfio-user-cxl-sim simulator.
#
# The guests (Debian's kernels 6.1 and 7.2, each with an initramfs, built
# by mk/guest-image.sh from Debian packages; nothing is downloaded here) run
# /bin/vfio-cxl-guest (tests/functional/vfio-cxl-guest.c), which prints a
# key=value report on the serial console.  The test checks it against the
# simulator: its device memory file, its control socket, and QEMU's memory
# tree.  Under 7.2 our Type-2 driver (tests/functional/cxl-type2-driver)
# asks the guest's own CXL core for the device memory, so the kernel judges
# what the device presents: memdev, endpoint decoder, region.
#
# One test per guest kernel and uAPI version (KERNELS x UAPIS), and one per
# kernel with a host bridge that has its own HDM decoders.
#
# Inputs (the test is skipped when one is missing, or fails with
# VFIO_CXL_REQUIRE_GUEST=1):
#   VFIO_CXL_GUEST_DIR                 default: $VFIO_CXL_CACHE/guest; holds
#                                      linux-<series>/{vmlinuz,
#                                      initramfs.cpio.gz,kernel-version}
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

# Guest kernel series (mk/guest-image.sh builds one image per series) and
# whether its CXL core has the Type-2 driver API our driver uses.
KERNELS = {'6.1': False, '7.2': True}
# uAPI versions of the simulator (vfio-user-cxl-sim --uapi).
UAPIS = ('v3', 'v2')


class VfioCxlGuest(QemuSystemTest):

    timeout = 540

    def say(self, msg):
        self.log.info(msg)
        print(f'# {msg}', file=sys.stderr, flush=True)

    def inputs(self, series):
        cache = os.environ.get('VFIO_CXL_CACHE') or \
            os.path.expanduser('~/.cache/vfio-cxl')
        guest = os.path.join(os.environ.get('VFIO_CXL_GUEST_DIR') or
                             os.path.join(cache, 'guest'), f'linux-{series}')
        kernel = os.path.join(guest, 'vmlinuz')
        initrd = os.path.join(guest, 'initramfs.cpio.gz')
        sim = os.environ.get('VFIO_CXL_SIM')
        for what, path in (('guest kernel', kernel), ('initramfs', initrd)):
            if not os.path.isfile(path):
                self.skipTest(f'no {what} at {path}: run mk/guest-image.sh '
                             f'{series} or set VFIO_CXL_GUEST_DIR')
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
        self.stats_before_flr = self.stats_before_cxl_reset = None
        self.guest_kernel = None
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
            if line.startswith('vfio-cxl-guest: Linux '):
                self.guest_kernel = line.split()[-1]
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
                elif key == 'cxl_reset.pending':
                    self.stats_before_cxl_reset = self.stats()

    # ------------------------------------------------------------------
    # The test
    # ------------------------------------------------------------------

    def guest_uses_device(self, series, uapi, hb_hdm=False):
        accel = os.environ.get('VFIO_CXL_ACCEL', 'tcg')
        try:
            kernel, initrd, sim = self.inputs(series)
            self.set_machine('q35')
            self.require_device('vfio-user-cxl')
            self.require_accelerator(accel)
        except unittest.SkipTest as e:
            if os.environ.get('VFIO_CXL_REQUIRE_GUEST') == '1':
                self.fail(f'VFIO_CXL_REQUIRE_GUEST=1, but: {e}')
            raise
        self.say(f'Linux {series}, uAPI {uapi}, host bridge ' +
                 ('with HDM decoders' if hb_hdm else 'passthrough') +
                 f', accelerator: {accel}' +
                 (' (Linux guests do not boot under this nested KVM)'
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
        self.say(f'Linux {self.guest_kernel}: boot to report '
                 f'{self.t_report - t0:.1f} s, report '
                 f'{t_end - self.t_report:.1f} s, total '
                 f'{time.monotonic() - t0:.1f} s')
        self.assertIsNotNone(self.guest_kernel, 'the guest never said which '
                             'kernel it runs')
        self.assertTrue(self.guest_kernel.startswith(series + '.'),
                        f'booted {self.guest_kernel}, not Linux {series}')

        self.check_report(r, host_bytes, hb_hdm, KERNELS[series])

    def check_report(self, r, host_bytes, hb_hdm, type2):
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
        self.assertEqual(r['device.driver'], 'cxl_type2' if type2 else 'none',
                         'the CXL core refused the device; guest errors: ' +
                         ' | '.join(self.kernel_errors(r)))

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

        hb_port = self.check_cxl_core(r, '', win_base, win_size, type2)
        self.check_host_bridge(r, win_base, win_size, hb_hdm, hb_port)
        if type2:
            self.check_type2(r, '', win_base)
            self.assertEqual(r.get('mem.via'), 'driver',
                             'the memory checks did not use the driver')

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

        # After the FLR and after the CXL Reset: the same DVSEC, decoder,
        # CXL view, driver state and data, and fresh writes land.
        for reset, p in (('FLR', 'flr.'), ('CXL Reset', 'cxlr.')):
            self.check_after_reset(r, reset, p, pages, host_bytes)
        self.assertEqual(r['reset.result'], 'ok')
        self.assertEqual(r['cxl_reset.result'], 'ok')

        # The host saw exactly one reset for each.
        begin, flr = self.stats_begin, self.stats_before_flr
        cxlr, after = self.stats_before_cxl_reset, self.stats_after
        self.assertIsNotNone(flr, 'the guest never announced its FLR')
        self.assertIsNotNone(cxlr, 'the guest never announced its CXL Reset')
        self.say(f"host resets: {begin['resets']} when the report began, "
                 f"{flr['resets']} before the FLR, {cxlr['resets']} before "
                 f"the CXL Reset, {after['resets']} after")
        self.assertEqual(begin['resets'], flr['resets'])
        self.assertEqual(cxlr['resets'], flr['resets'] + 1,
                         'the simulator did not see exactly one reset for '
                         'the FLR')
        self.assertEqual(after['resets'], cxlr['resets'] + 1,
                         'the simulator did not see exactly one reset for '
                         'the CXL Reset')
        self.assertEqual(after['reset_failures'], 0)

    def check_after_reset(self, r, reset, p, pages, host_bytes):
        for key in [k for k in r
                    if re.match(r'(dvsec|hdm|cxl|pci|hb\.hdm|type2)\.', k)]:
            self.assertEqual(r.get(p + key), r[key],
                             f'{key} changed across the {reset}')
        for page in pages:
            self.assertEqual(r[f'{p}mem.{page}.checksum'],
                             r[f'mem.{page}.checksum'],
                             f'page at {r[f"mem.{page}.offset"]} changed '
                             f'across the {reset}')
            self.assertEqual(r[f'{p}mem.{page}.mismatched_words'], '0')
        self.assertEqual(r[f'{p}host_pattern.hex'], host_bytes.hex())
        self.check_page(r, f'{p}mem.new', {'flr.': 2, 'cxlr.': 3}[p])

    def check_host_bridge(self, r, win_base, win_size, hb_hdm, hb_port):
        """The ACPI CEDT names the host bridge that the window targets; its
        component registers (read by the guest through /dev/mem, since 6.1
        shows no host-bridge decoder for a single root port) either have
        no HDM decoder (passthrough) or decoder 0 committed over the
        device memory, targeting the device's root port."""
        self.assertIn(f'base {win_base:#x} size {win_size:#x} ways 1',
                      r['cedt.cfmws.0'])
        port = num(r['root_port.port_number'])
        # The CXL core names a dport by its port number.
        parent = r['device.sysfs'].split('/')[-2]
        dports = {k: v for k, v in r.items()
                  if k.startswith(f'cxl.{hb_port}.dport')}
        if dports:
            self.assertEqual(dports, {f'cxl.{hb_port}.dport{port}': parent},
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

    def check_cxl_core(self, r, prefix, win_base, win_size, type2):
        """What any CXL core from 6.1 on shows, whatever it names things:
        one root decoder covering the window, device-coherent (Type-2)
        capable, whose single target is a dport of the CXL root that is
        the host bridge the CEDT names for the window; and that host
        bridge's port, which leads to the device: its dports, if it has
        any yet, are exactly the device's root port.  (6.1 adds dports up
        front; 7.x only once a memory device attaches below, which under
        6.1 never happens for a Type-2 device.)  Returns the host bridge
        port."""
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
        self.assertEqual(cxl[f'{root}.cap_type2'], '1',
                         f'root decoder {root} is not device-coherent capable')
        targets = cxl[f'{root}.target_list'].split(',')
        self.assertEqual(targets, [r['hb.uid']],
                         f'{root} targets {targets}, the CEDT window the '
                         f'host bridge {r["hb.uid"]}')
        # The root port (uport ACPI0017) has that host bridge as dport.
        cxl_roots = [d for d in devices if cxl.get(f'{d}.uport', '')
                     .startswith('ACPI0017')]
        self.assertEqual(len(cxl_roots), 1, f'no single CXL root: {cxl}')
        bridge = cxl.get(f'{cxl_roots[0]}.dport{targets[0]}')
        self.assertIsNotNone(bridge,
                             f'{cxl_roots[0]} has no dport{targets[0]}')
        ports = [d for d in devices if cxl.get(f'{d}.uport') == bridge]
        self.assertEqual(len(ports), 1, f'no port for {bridge}: {cxl}')
        parent = r['device.sysfs'].split('/')[-2]
        dports = [v for k, v in cxl.items()
                  if k.startswith(f'{ports[0]}.dport')]
        allowed = [[parent]] if type2 else [[parent], []]
        self.assertIn(dports, allowed,
                      f'{ports[0]} dports {dports}, device below {parent}')
        self.say(f'CXL core: {root} {cxl[f"{root}.start"]}+'
                 f'{cxl[f"{root}.size"]} (Type-2 capable) -> '
                 f'{cxl_roots[0]}.dport{targets[0]} = {bridge} -> '
                 f'{ports[0]}.dports {dports or "(none yet)"} -> '
                 f'{r["device"]}')
        return ports[0]

    @staticmethod
    def kernel_errors(r):
        """The guest kernel's CXL messages of level warning or worse."""
        return [v.split('] ', 1)[-1] for k, v in r.items()
                if k.startswith('dmesg.') and v[:3] in ('<3>', '<4>')]

    def check_type2(self, r, prefix, win_base):
        """What the guest's CXL core gave our Type-2 driver: a memdev, its
        endpoint port with a decoder committed at the window base over the
        whole device memory, and the region assembled over that decoder,
        whose range the driver maps."""
        cxl = {k[len(prefix) + 4:]: v for k, v in r.items()
               if k.startswith(prefix + 'cxl.')}
        devices = cxl['devices'].split(',')
        memdev = r.get(prefix + 'type2.memdev')
        self.assertIsNotNone(memdev, 'the Type-2 driver has no memdev; '
                             'guest errors: ' +
                             ' | '.join(self.kernel_errors(r)))
        self.assertIn(memdev, devices)
        self.assertEqual(cxl.get(f'{memdev}.driver'), 'cxl_mem')
        endpoints = [d for d in devices if cxl.get(f'{d}.uport') == memdev]
        self.assertEqual(len(endpoints), 1, f'no endpoint port for {memdev}')
        ep = endpoints[0]
        self.assertEqual(cxl.get(f'{ep}.driver'), 'cxl_port')
        # An endpoint port's decoders are decoder<port id>.<n>.
        ep_id = re.fullmatch(r'endpoint(\d+)', ep).group(1)
        decoders = [d for d in devices if d.startswith(f'decoder{ep_id}.')
                    and cxl.get(f'{d}.devtype') == 'cxl_decoder_endpoint']
        used = [d for d in decoders if cxl.get(f'{d}.region')]
        self.assertEqual(len(used), 1, f'{ep} decoders {decoders}: not one '
                         f'in a region')
        dec = used[0]
        self.assertEqual((num(cxl[f'{dec}.start']), num(cxl[f'{dec}.size'])),
                         (win_base, MEM_SIZE),
                         f'{dec} is not at the window base with the size of '
                         f'the device memory')
        self.assertEqual(cxl[f'{dec}.target_type'], 'accelerator')
        self.assertEqual(cxl[f'{dec}.mode'], 'ram')
        self.assertEqual(num(cxl[f'{dec}.dpa_size']), MEM_SIZE)
        region = cxl[f'{dec}.region']
        self.assertEqual((num(cxl[f'{region}.resource']),
                          num(cxl[f'{region}.size'])), (win_base, MEM_SIZE),
                         f'{region} does not span the device memory')
        self.assertEqual(cxl.get(f'{region}.target0'), dec)
        self.assertEqual(cxl.get(f'{region}.commit'), '1')
        self.assertEqual(cxl.get(f'{region}.driver'), 'cxl_region')
        self.assertEqual((num(r[prefix + 'type2.hpa_start']),
                          num(r[prefix + 'type2.hpa_size'])),
                         (win_base, MEM_SIZE),
                         'the driver got another range than the region')
        self.say(f'Type-2 driver: {memdev} -> {ep}/{dec} {cxl[f"{dec}.start"]}'
                 f'+{cxl[f"{dec}.size"]} -> {region}, mapped by the driver')


def add_tests():
    """One test per kernel and uAPI version, and one per kernel with a host
    bridge that has its own HDM decoders (pxb-cxl hdm_for_passthrough=on,
    a single root port): the device must commit its decoder 0 over the
    window, targeting the root port."""
    def make(series, uapi, hb_hdm):
        return lambda self: self.guest_uses_device(series, uapi, hb_hdm)
    for series in KERNELS:
        tag = series.replace('.', '_')
        for uapi in UAPIS:
            setattr(VfioCxlGuest, f'test_linux_{tag}_uapi_{uapi}',
                    make(series, uapi, False))
        setattr(VfioCxlGuest, f'test_linux_{tag}_host_bridge_hdm',
                make(series, UAPIS[0], True))


add_tests()

if __name__ == '__main__':
    QemuSystemTest.main()
