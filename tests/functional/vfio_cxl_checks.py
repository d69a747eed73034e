"""How a test judges what the guest saw: the report that
vfio-cxl-guest.c prints, against the simulator (its memory file and
counters) and QEMU's memory tree.  Shared by the functional test
(x86_64/test_vfio_cxl.py) and the libvirt test (tests/libvirt/), which
boot the same guest in different ways.

The checks follow what the guest's CXL core means (which root decoder
covers the window, which port leads to the device), not one kernel's
names, so that every guest kernel series in vfio_cxl_boot.KERNELS is
judged fairly; under a kernel with the Type-2 driver API they also judge
what its CXL core gave our driver (memdev, endpoint decoder, region).

GuestReportChecks is a mixin for a unittest.TestCase that provides
  self.sim       the vfio_cxl_boot.Simulator serving the device,
  self.hmp(cmd)  a human monitor command's output, from the running QEMU,
  self.say(msg)  progress for the person running the test,
  self.log       a logging.Logger.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import re
import time

from vfio_cxl_boot import (HOST_LEN, HOST_OFF, KERNELS, MEM_SIZE, PAGE,
                           REPORT_BEGIN, REPORT_END, WINDOW_SIZE,
                           booted_kernel, fnv1a, num, pattern_page)

# The pages the guest writes (mem.<n> before the FLR, a fresh one after
# each reset), by their report name.
WRITTEN_PAGE = re.compile(r'(mem\.\d+|(?:flr|cxlr)\.mem\.new)\.offset')


class GuestReportChecks:

    # The kernel release /init printed (vfio_cxl_boot.booted_kernel).
    guest_kernel = None

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

    def write_host_pattern(self):
        """Random bytes written into device memory at HOST_OFF by the
        host, for the guest to read back."""
        host_bytes = os.urandom(HOST_LEN)
        self.ctl(f'mem-write {HOST_OFF:#x} {host_bytes.hex()}')
        self.assertEqual(self.ctl(f'mem-read {HOST_OFF:#x} {HOST_LEN}')['hex'],
                         host_bytes.hex(), 'mem-write did not reach device '
                         'memory')
        return host_bytes

    def keep_written_pages(self, report):
        """Copies, from the simulator's memory file, the pages the guest
        has written so far and that are not kept yet.  Called while the
        guest waits before each reset and at the report's end: a v4 host
        clears the memory at every reset and at close."""
        for key, value in report.items():
            page = WRITTEN_PAGE.fullmatch(key)
            if page and page.group(1) not in self.written_pages:
                self.written_pages[page.group(1)] = \
                    self.device_memory(num(value), PAGE)

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
        seconds; notes the kernel /init says it booted and snapshots the
        simulator's counters at the report's start and before the guest's
        FLR and CXL Reset, and the pages the guest wrote (before each reset
        and at the end).  console_line(seconds) returns the next console
        line without its end, or None when the console closed."""
        deadline = time.monotonic() + timeout
        report, inside = {}, False
        self.stats_before_flr = self.stats_before_cxl_reset = None
        self.written_pages = {}
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
            if booted_kernel(line):
                self.guest_kernel = booted_kernel(line)
            if line == REPORT_BEGIN:
                inside = True
                self.t_report = time.monotonic()
                self.stats_begin = self.stats()
                self.mtree = self.window_from_mtree()
            elif line == REPORT_END:
                self.keep_written_pages(report)
                return report
            elif inside and '=' in line:
                key, value = line.split('=', 1)
                report[key] = value
                if key == 'reset.pending':
                    self.stats_before_flr = self.stats()
                    self.keep_written_pages(report)
                elif key == 'cxl_reset.pending':
                    self.stats_before_cxl_reset = self.stats()
                    self.keep_written_pages(report)

    def check_booted(self, series):
        """The guest runs Linux @series (as /init said, from uname -r)."""
        kernel = self.guest_kernel
        self.assertIsNotNone(kernel, 'the guest never said which kernel it '
                             'runs')
        self.assertTrue(kernel.startswith(series + '.'),
                        f'booted {kernel}, not Linux {series}')

    def check_report(self, r, host_bytes, hb_hdm, series):
        """The whole report of a guest running Linux @series; @hb_hdm: the
        host bridge has HDM decoders."""
        type2 = KERNELS[series]
        self.check_booted(series)
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
        if self.sim.clears_memory:
            # The host's reset cleared the memory: zeroes where the guest
            # and the host wrote.
            zeroes = fnv1a(bytes(PAGE))
            for page in pages:
                self.assertEqual(num(r[f'{p}mem.{page}.checksum']), zeroes,
                                 f'page at {r[f"mem.{page}.offset"]} not '
                                 f'cleared by the {reset} (uAPI '
                                 f'{self.sim.uapi})')
            self.assertEqual(r[f'{p}host_pattern.hex'], '00' * HOST_LEN)
        else:
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
        """The page the guest wrote as @name holds its pattern, in the
        guest's reading and in device memory (as kept while the guest
        ran)."""
        off = num(r[f'{name}.offset'])
        data = self.written_pages.get(name)
        self.assertIsNotNone(data, f'{name} was not read from device memory')
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
        # The CXL root (uport ACPI0017) has that host bridge as a dport.
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
