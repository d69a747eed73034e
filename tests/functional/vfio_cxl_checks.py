"""How a test judges what the guest saw: the report that
vfio-cxl-guest.c prints, against the simulator (its memory file and
counters) and QEMU's memory tree.  Shared by the functional test
(x86_64/test_vfio_cxl.py) and the libvirt test (tests/libvirt/), which
boot the same guest in different ways.

GuestReportChecks is a mixin for a unittest.TestCase that provides
  self.sim       the vfio_cxl_boot.Simulator serving the device,
  self.hmp(cmd)  a human monitor command's output, from the running QEMU,
  self.say(msg)  progress for the person running the test,
  self.log       a logging.Logger.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import re
import time

from vfio_cxl_boot import (MEM_SIZE, PAGE, REPORT_BEGIN, REPORT_END,
                           WINDOW_SIZE, fnv1a, num, pattern_page)


class GuestReportChecks:

    def ctl(self, command):
        gone = self.sim.gone()
        if gone:
            self.fail(f"control command '{command}': {gone}")
        answer = self.sim.control(command)
        self.assertTrue(answer.get('ok'), f"'{command}' failed: {answer}")
        return answer

    def stats(self):
        return self.ctl('stats')

    def device_memory(self, off, length):
        return self.sim.memory(off, length)

    def window_from_mtree(self):
        """The CXL fixed memory window and the device memory, as QEMU
        maps them (independent of what the guest reports)."""
        mtree = self.hmp('info mtree')
        ramd = re.search(r'([0-9a-f]+)-([0-9a-f]+) \(prio \d+, ramd\): '
                         r'vfio-cxl-memory[^\n]*', mtree)
        self.assertIsNotNone(ramd, 'the device memory is not mapped as a '
                             'ram device region in info mtree')
        # With several windows, the one that holds the device memory.
        windows = [(int(a, 16), int(b, 16)) for a, b in re.findall(
            r'([0-9a-f]+)-([0-9a-f]+) \(prio \d+, i/o\): '
            r'cxl-fixed-memory-region', mtree)]
        self.assertNotEqual(windows, [],
                            'no cxl-fixed-memory-region in info mtree')
        mem_start = int(ramd.group(1), 16)
        holding = [w for w in windows if w[0] <= mem_start <= w[1]]
        start, end = holding[0] if holding else windows[0]
        self.log.info('mtree: window %x-%x, device memory %s', start, end,
                      ramd.group(0))
        return start, end - start + 1, int(ramd.group(1), 16), \
            int(ramd.group(2), 16) - int(ramd.group(1), 16) + 1

    def read_report(self, console_line, timeout):
        """Reads the console up to the end of the report, at most @timeout
        seconds; snapshots the simulator's counters at its start and
        before the guest's FLR.  console_line(seconds) returns the next
        console line without its end, or None when the console closed."""
        deadline = time.monotonic() + timeout
        report, inside = {}, False
        self.stats_before_flr = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail(f'no {REPORT_END} on the console in {timeout} s')
            line = console_line(left)
            if line is None:
                gone = self.sim.gone()
                self.fail('the console closed before the report ended' +
                          (f'; {gone}' if gone else ''))
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

        hb_port = self.check_cxl_core(r, '', win_base, win_size)
        self.check_host_bridge(r, win_base, win_size, hb_hdm, hb_port)

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

    def check_host_bridge(self, r, win_base, win_size, hb_hdm, hb_port):
        """The ACPI CEDT names the host bridge that the window targets; its
        component registers (read by the guest through /dev/mem, since 6.1
        shows no host-bridge decoder for a single root port) either have
        no HDM decoder (passthrough) or decoder 0 committed over the
        device memory, targeting the device's root port."""
        self.assertIn(f'base {win_base:#x} size {win_size:#x} ways 1',
                      r['cedt.cfmws.0'])
        self.assertEqual(r['hb.uid'], r['cxl.decoder0.0.target_list'])
        port = num(r['root_port.port_number'])
        self.assertEqual(r.get(f'cxl.{hb_port}.dport{port}'),
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
        device, so the path ends at the root port.)  Returns the host
        bridge's port (which of port1, port2... depends on the order the
        CXL core found the host bridges in)."""
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
        return ports[0]
