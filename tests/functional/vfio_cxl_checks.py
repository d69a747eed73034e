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
  self.sim       the vfio_cxl_boot.Simulator serving the device (with
                 several devices: one of them, watched while the report is
                 read),
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

    def ctl(self, command, sim=None):
        """@command's answer from the control socket of @sim (default:
        self.sim)."""
        sim = sim or self.sim
        gone = sim.gone()
        if gone:
            self.fail(f"control command '{command}': {gone}")
        answer = sim.control(command)
        self.assertTrue(answer.get('ok'), f"'{command}' failed: {answer}")
        return answer

    def stats(self):
        return self.ctl('stats')

    def device_memory(self, off, length):
        return self.sim.memory(off, length)

    def write_host_pattern(self, sim=None):
        """Random bytes written into device memory at HOST_OFF by the
        host (@sim, default self.sim), for the guest to read back."""
        host_bytes = os.urandom(HOST_LEN)
        self.ctl(f'mem-write {HOST_OFF:#x} {host_bytes.hex()}', sim)
        self.assertEqual(self.ctl(f'mem-read {HOST_OFF:#x} {HOST_LEN}',
                                  sim)['hex'],
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

    def mtree_layout(self):
        """The CXL fixed memory windows and the device memories (ram
        device regions), as QEMU maps them (independent of what the guest
        reports): two lists of (base, size) in address order."""
        mtree = self.hmp('info mtree')

        def ranges(kind, name):
            found = {(int(a, 16), int(b, 16) - int(a, 16) + 1)
                     for a, b in re.findall(
                         rf'([0-9a-f]+)-([0-9a-f]+) \(prio \d+, {kind}\): '
                         rf'{name}', mtree)}
            return sorted(found)
        windows = ranges('i/o', 'cxl-fixed-memory-region')
        memories = ranges('ramd', 'vfio-cxl-memory')
        self.log.info('mtree: windows %s, device memories %s',
                      [f'{b:#x}+{s:#x}' for b, s in windows],
                      [f'{b:#x}+{s:#x}' for b, s in memories])
        self.assertNotEqual(windows, [],
                            'no cxl-fixed-memory-region in info mtree')
        self.assertNotEqual(memories, [], 'the device memory is not mapped '
                            'as a ram device region in info mtree')
        return windows, memories

    def window_from_mtree(self, layout):
        """The CXL fixed memory window that holds the (first) device
        memory of @layout (mtree_layout()), and that memory: window base
        and size, memory base and size."""
        windows, memories = layout
        mem_base, mem_size = memories[0]
        holding = [w for w in windows if w[0] <= mem_base < w[0] + w[1]]
        win_base, win_size = holding[0] if holding else windows[0]
        return win_base, win_size, mem_base, mem_size

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
                self.layout = self.mtree_layout()
                self.mtree = self.window_from_mtree(self.layout)
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
        self.check_no_errors(r)
        win_base, win_size, mem_base, mem_size = self.mtree
        self.say(f'window {win_base:#x}+{win_size:#x}, device memory '
                 f'{mem_base:#x}+{mem_size:#x} (QEMU memory tree)')
        self.assertEqual(win_size, WINDOW_SIZE)
        self.assertEqual((mem_base, mem_size), (win_base, MEM_SIZE),
                         'device memory is not at the window base')

        self.check_device(r, win_base, MEM_SIZE, type2)
        hb_port = self.check_cxl_core(r, '', win_base, win_size, type2)
        self.check_host_bridge(r, win_base, win_size, hb_hdm, hb_port)
        if type2:
            self.check_type2(r, '', win_base)
            self.assertEqual(r.get('mem.via'), 'driver',
                             'the memory checks did not use the driver')

        # The guest's writes are in device memory, at the same offsets.
        self.assertEqual(num(r['mem.base']), win_base)
        pages = self.written_page_numbers(r, MEM_SIZE)
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

    def check_no_errors(self, r):
        errors = {k: v for k, v in r.items() if v.startswith('error:')}
        self.assertEqual(errors, {}, 'the guest reported errors')
        self.assertEqual(r.get('errors'), '0')

    def check_device(self, r, base, size, type2):
        """The device the report @r is about: found, bound to our Type-2
        driver if @type2, its DVSEC and HDM decoder 0 locked over its
        memory, at @base of @size bytes."""
        self.assertIn('device', r, 'the guest did not find the device')
        self.assertEqual((r['device.vendor'], r['device.device'],
                          r['device.class']), ('0x1234', '0xc202', '0x120000'))
        self.assertEqual(r['device.driver'], 'cxl_type2' if type2 else 'none',
                         'the CXL core refused the device; guest errors: ' +
                         ' | '.join(self.kernel_errors(r)))

        # CXL Device DVSEC: locked, memory enabled, range 1 = the memory.
        self.assertEqual(r['dvsec.locked'], '1')
        self.assertEqual(r['dvsec.mem_enable'], '1')
        self.assertEqual(num(r['dvsec.range1_size']), size)
        self.assertEqual(num(r['dvsec.range1_base']), base)
        for reg in ('control', 'lock'):
            self.assertIn(f'dvsec_write.{reg}.wrote', r)
            self.assertEqual(r[f'dvsec_write.{reg}.stuck'], '0',
                             f'a guest write to the locked DVSEC {reg} stuck')

        # HDM decoder 0: committed and locked over the memory.
        self.assertEqual(r['hdm.d0.committed'], '1')
        self.assertEqual(r['hdm.d0.lock_on_commit'], '1')
        self.assertEqual(num(r['hdm.d0.base']), base)
        self.assertEqual(num(r['hdm.d0.size']), size)
        for reg in ('base_lo', 'size_lo', 'ctrl'):
            self.assertEqual(num(r[f'hdm_write.{reg}.stuck']), 0,
                             f'a guest write to locked decoder 0 {reg} '
                             f'stuck: {r[f"hdm_write.{reg}.stuck"]}')

    def written_page_numbers(self, r, size):
        """The numbers n of the pages mem.<n> the guest wrote into device
        memory of @size bytes: five, the first and the last among them."""
        pages = sorted({k.split('.')[1] for k in r
                        if re.fullmatch(r'mem\.\d+\.offset', k)}, key=int)
        self.assertEqual(len(pages), 5)
        offsets = [num(r[f'mem.{p}.offset']) for p in pages]
        self.assertIn(0, offsets)
        self.assertIn(size - PAGE, offsets)
        return pages

    @staticmethod
    def device_reports(r):
        """A report on several devices split per device: each one's keys
        (dev<N>.*, without the prefix) with the report's own (the CXL
        core, the kernel log, ...), in the guest's order."""
        shared = {k: v for k, v in r.items() if not re.match(r'dev\d+\.', k)}
        return [{**shared, **{k[len(p):]: v for k, v in r.items()
                              if k.startswith(p)}}
                for p in (f'dev{n}.' for n in range(num(r['devices'])))]

    def check_several_report(self, r, accels, series):
        """The report of a guest running Linux @series with several
        devices, @accels: each with its id, sim (its Simulator), host_bridge
        (id), port (its root port's number), the place cxl-status gave it
        (base, size, window) and host_bytes (what its host wrote at
        HOST_OFF).  Every device is judged as a single one is, at its own
        range; the host bridge decoders route every range to its root
        port; and each device's memory is its own: the pages the guest
        wrote through its range are in its simulator's memory and in no
        other, and the host pattern it reads is its own host's."""
        type2 = KERNELS[series]
        self.check_booted(series)
        self.check_no_errors(r)
        windows, memories = self.layout
        self.assertEqual(memories, sorted((a.base, a.size) for a in accels),
                         'QEMU maps other device memories than cxl-status '
                         'says')
        guest = self.device_reports(r)
        self.assertEqual(len(guest), len(accels),
                         f'the guest found {[d["device"] for d in guest]}')
        self.assertEqual(len({d['mem.seed'] for d in guest}), len(guest),
                         'two devices were written with the same pattern')
        # Which guest device is which: the one whose decoder 0 is where
        # cxl-status says.
        found = {}
        for a in accels:
            mine = [d for d in guest if d.get('hdm.d0.base') == f'{a.base:#x}']
            self.assertEqual(len(mine), 1, f'{a.id}: not one guest device '
                             f'has decoder 0 at {a.base:#x}')
            found[a.id] = mine[0]
        parent = {a.id: found[a.id]['device.sysfs'].split('/')[-2]
                  for a in accels}
        for a in accels:
            d = found[a.id]
            others = [b for b in accels if b is not a]
            siblings = sorted((b for b in accels
                               if b.host_bridge == a.host_bridge),
                              key=lambda b: b.base)
            win_base, win_size = windows[a.window]
            self.say(f'{a.id}: guest device {d["device"]} below '
                     f'{parent[a.id]} (port {d["root_port.port_number"]}), '
                     f'memory {a.base:#x}+{a.size:#x} in window {a.window} '
                     f'({win_base:#x}+{win_size:#x})')
            self.check_device(d, a.base, a.size, type2)
            self.assertEqual(num(d['root_port.port_number']), a.port,
                             f'{a.id} is below another root port')
            for b in others:
                same = b.host_bridge == a.host_bridge
                self.assertEqual(found[b.id]['hb.uid'] == d['hb.uid'], same,
                                 f'{a.id} and {b.id}: the CEDT gives them '
                                 f'{"other" if same else "the same"} host '
                                 f'bridges')
            # Every host bridge of this topology has HDM decoders.
            hb_port = self.check_cxl_core(
                d, '', win_base, win_size, type2, base=a.base, size=a.size,
                parents=[parent[b.id] for b in siblings])
            self.check_host_bridge(d, win_base, win_size, True, hb_port,
                                   [(b.base, b.size, b.port)
                                    for b in siblings])
            if type2:
                self.check_type2(d, '', a.base, a.size)
                self.assertEqual(d.get('mem.via'), 'driver',
                                 'the memory checks did not use the driver')

            # Its memory is its own.
            self.assertEqual(num(d['mem.base']), a.base)
            seed = num(d['mem.seed'])
            for n in self.written_page_numbers(d, a.size):
                off = num(d[f'mem.{n}.offset'])
                self.check_page(d, f'mem.{n}', seed, a.sim.memory(off, PAGE))
                for b in others:
                    self.assertNotEqual(b.sim.memory(off, PAGE),
                                        pattern_page(seed, off),
                                        f'what the guest wrote through '
                                        f'{a.id} at {off:#x} is in the '
                                        f'memory of {b.id}')
            self.assertEqual(d['host_pattern.hex'], a.host_bytes.hex(),
                             f'the guest did not read the pattern of '
                             f'{a.id}\'s host at {a.base + HOST_OFF:#x}')
            for b in others:
                self.assertNotEqual(d['host_pattern.hex'], b.host_bytes.hex(),
                                    f'the guest read the pattern of '
                                    f'{b.id}\'s host through {a.id}')

    def check_type3(self, r, win_base):
        """QEMU's own cxl-type3 memory beside our devices: the guest's
        CXL core has a root decoder at @win_base, the type3's window, and
        a memory device of its own, bound to cxl_mem, that is none of our
        devices'."""
        cxl = {k[4:]: v for k, v in r.items() if k.startswith('cxl.')}
        devices = cxl['devices'].split(',')
        self.assertTrue(any(cxl.get(f'{d}.devtype') == 'cxl_decoder_root' and
                            num(cxl[f'{d}.start']) == win_base
                            for d in devices),
                        f'no root decoder at {win_base:#x}')
        ours = {v for k, v in r.items() if k.endswith('type2.memdev')}
        memdevs = [d for d in devices if re.fullmatch(r'mem\d+', d) and
                   d not in ours and cxl.get(f'{d}.driver') == 'cxl_mem']
        self.assertEqual(len(memdevs), 1, f'no single memory device beside '
                         f'ours ({sorted(ours)}): {devices}')
        self.say(f'cxl-type3: {memdevs[0]}, root decoder at {win_base:#x}')

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

    def check_host_bridge(self, r, win_base, win_size, hb_hdm, hb_port,
                          routes=None):
        """The ACPI CEDT names the host bridge that the window targets; its
        component registers (read by the guest through /dev/mem, since 6.1
        shows no host-bridge decoder for a single root port) either have
        no HDM decoder (passthrough) or one decoder committed per device
        below it, in address order: @routes, [(base, size, root port
        number)] (default: the device's memory at the window base, of
        MEM_SIZE bytes, to its root port); the other decoders are not
        committed."""
        cfmws = [v for k, v in r.items() if re.fullmatch(r'cedt\.cfmws\.\d+', k)
                 and v.startswith(f'base {win_base:#x} ')]
        self.assertEqual(len(cfmws), 1, f'no single CEDT window at '
                         f'{win_base:#x}')
        self.assertIn(f'base {win_base:#x} size {win_size:#x} ways 1',
                      cfmws[0])
        self.assertTrue(cfmws[0].endswith(f' targets {r["hb.uid"]}'),
                        f'{cfmws[0]}: not host bridge {r["hb.uid"]}')
        port = num(r['root_port.port_number'])
        # The CXL core names a dport by its port number.
        parent = r['device.sysfs'].split('/')[-2]
        dports = {k: v for k, v in r.items()
                  if k.startswith(f'cxl.{hb_port}.dport')}
        if dports:
            self.assertEqual(dports.get(f'cxl.{hb_port}.dport{port}'), parent,
                             f'the CXL core names the root port by another '
                             f'id: {dports}')
        if not hb_hdm:
            self.assertIn('none', r['hb.hdm'])
            return
        if routes is None:
            routes = [(win_base, MEM_SIZE, port)]
        for n in range(num(r['hb.hdm.decoder_count'])):
            d = f'hb.hdm.d{n}.'
            if n >= len(routes):
                self.assertEqual(r[d + 'committed'], '0',
                                 f'host bridge decoder {n} is committed, for '
                                 f'{len(routes)} device(s)')
                continue
            base, size, target = routes[n]
            self.assertEqual(r[d + 'committed'], '1',
                             f'host bridge decoder {n} is not committed')
            self.assertEqual((num(r[d + 'base']), num(r[d + 'size']),
                              num(r[d + 'target_list_lo']) & 0xff),
                             (base, size, target),
                             f'host bridge decoder {n} routes another range '
                             f'or to another root port')
            self.say(f"host bridge {r['hb.uid']} decoder {n}: "
                     f"{r[d + 'base']}+{r[d + 'size']} ctrl {r[d + 'ctrl']} "
                     f"-> port {target}")

    def check_page(self, r, name, seed, data=None):
        """The page the guest wrote as @name holds its pattern, in the
        guest's reading and in device memory: @data, else as kept while
        the guest ran."""
        off = num(r[f'{name}.offset'])
        if data is None:
            data = self.written_pages.get(name)
        self.assertIsNotNone(data, f'{name} was not read from device memory')
        self.assertEqual(r[f'{name}.mismatched_words'], '0',
                         f'{name}: the guest read back other data')
        self.assertTrue(data == pattern_page(seed, off),
                        f'{name}: the guest pattern at {off:#x} is not in '
                        f'the simulator memory file')
        self.assertEqual(num(r[f'{name}.checksum']), fnv1a(data),
                         f'{name}: guest checksum differs from the file')

    def check_cxl_core(self, r, prefix, win_base, win_size, type2,
                       base=None, size=MEM_SIZE, parents=None):
        """What any CXL core from 6.1 on shows, whatever it names things:
        one root decoder covering the window, device-coherent (Type-2)
        capable, whose single target is a dport of the CXL root that is
        the host bridge the CEDT names for the window; and that host
        bridge's port, bound to cxl_port, which leads to the device: its
        dports, if it has
        any yet, are exactly the root ports of the devices below it,
        @parents (default: the device's).  (6.1 adds dports up front; 7.x
        only once a memory device attaches below, which under 6.1 never
        happens for a Type-2 device.)  The device memory is @size bytes at
        @base (default: the window base).  Returns the host bridge port."""
        base = win_base if base is None else base
        cxl = {k[len(prefix) + 4:]: v for k, v in r.items()
               if k.startswith(prefix + 'cxl.')}
        devices = cxl['devices'].split(',')
        roots = [d for d in devices if cxl.get(f'{d}.devtype') ==
                 'cxl_decoder_root' and num(cxl[f'{d}.start']) <= base
                 and base + size <=
                 num(cxl[f'{d}.start']) + num(cxl[f'{d}.size'])]
        self.assertEqual(len(roots), 1,
                         f'no single root decoder covers {base:#x}: {cxl}')
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
        # Bound: the CXL core took its decoders (passthrough or real).
        self.assertEqual(cxl.get(f'{ports[0]}.driver'), 'cxl_port',
                         f'the CXL core did not take host bridge port '
                         f'{ports[0]}; guest errors: ' +
                         ' | '.join(self.kernel_errors(r)))
        if parents is None:
            parents = [r['device.sysfs'].split('/')[-2]]
        dports = sorted(v for k, v in cxl.items()
                        if k.startswith(f'{ports[0]}.dport'))
        allowed = [sorted(parents)] if type2 else [sorted(parents), []]
        self.assertIn(dports, allowed,
                      f'{ports[0]} dports {dports}, devices below {parents}')
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

    def check_type2(self, r, prefix, base, size=MEM_SIZE):
        """What the guest's CXL core gave our Type-2 driver: a memdev, its
        endpoint port with a decoder committed over the whole device
        memory (@size bytes at @base), and the region assembled over that
        decoder, whose range the driver maps."""
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
                         (base, size),
                         f'{dec} is not at {base:#x} with the size of the '
                         f'device memory')
        self.assertEqual(cxl[f'{dec}.target_type'], 'accelerator')
        self.assertEqual(cxl[f'{dec}.mode'], 'ram')
        self.assertEqual(num(cxl[f'{dec}.dpa_size']), size)
        region = cxl[f'{dec}.region']
        self.assertEqual((num(cxl[f'{region}.resource']),
                          num(cxl[f'{region}.size'])), (base, size),
                         f'{region} does not span the device memory')
        self.assertEqual(cxl.get(f'{region}.target0'), dec)
        self.assertEqual(cxl.get(f'{region}.commit'), '1')
        self.assertEqual(cxl.get(f'{region}.driver'), 'cxl_region')
        self.assertEqual((num(r[prefix + 'type2.hpa_start']),
                          num(r[prefix + 'type2.hpa_size'])),
                         (base, size),
                         'the driver got another range than the region')
        self.say(f'Type-2 driver: {memdev} -> {ep}/{dec} {cxl[f"{dec}.start"]}'
                 f'+{cxl[f"{dec}.size"]} -> {region}, mapped by the driver')
