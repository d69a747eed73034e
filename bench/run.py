#!/usr/bin/env python3
"""`make bench`: the device's performance as ratios to its baselines, each
measured side by side in one run in interleaved repetitions, printed as
one table (median and spread of the per-repetition ratios) with the
targets of issue 13 checked.

  P1  guest streaming bandwidth (8-byte loads and stores, 256 MiB passes)
      through the vfio-cxl window over the same guest's RAM, steady state
      and first touch, under TCG (Linux guest) and KVM (bare-metal guest,
      if a KVM guest runs here); the device memory as the simulator makes
      it (of hugetlb pages: as root the run grows the host's pool for it
      and gives the pages back at the end; else a memfd) and as a file on
      a huge-page tmpfs; over the RAM of the same guest preallocated (as
      a vfio-pci guest's RAM is: pinned at start-up), against which first
      touch is judged; and over QEMU's cxl-type3 memory behind the same
      kind of window
  P2  a trapped HDM decoder register read over a config read that
      vfio-pci emulates (BAR 0), on the same device, guest-timed
  P3  start-up to the first QMP answer: how much it grows from 1 GiB to
      1 TiB of device memory, over how much it grows for a plain memory
      backend (QEMU's own RAMBlock bookkeeping)
  P4  guest FLR to usable window over a plain vfio-user-pci FLR on the
      same simulator (release build)

Usage: bench/run.py --qemu QEMU --sim SIMULATOR --kernel VMLINUZ
                    [--boots N] [--cache DIR]
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flr          # noqa: E402
import memory       # noqa: E402
import realize      # noqa: E402
from common import Figure  # noqa: E402

P1_TARGET, P2_TARGET, P3_TARGET, P4_TARGET = 0.95, 1.5, 1.1, 2.0


def host_pages():
    """What the host gives shared memory (memfds) and anonymous memory."""
    def selected(path):
        try:
            with open(path) as f:
                return f.read().split('[')[1].split(']')[0]
        except (OSError, IndexError):
            return '?'
    thp = '/sys/kernel/mm/transparent_hugepage'
    return (f'THP for anonymous memory (guest RAM): {selected(thp + "/enabled")}; '
            f'for shmem (memfds): {selected(thp + "/shmem_enabled")}; '
            f'hugetlb pool: {huge_pool_bytes() >> 20} MiB free')


def meminfo():
    info = {}
    with open('/proc/meminfo') as f:
        for line in f:
            k, v = line.split(':', 1)
            info[k] = int(v.split()[0])
    return info


def huge_pool_bytes():
    """Free bytes in the host's default hugetlb pool: the simulator makes
    device memory of it when it covers all of it."""
    info = meminfo()
    free = info.get('HugePages_Free', 0) - info.get('HugePages_Rsvd', 0)
    return max(free, 0) * info.get('Hugepagesize', 0) * 1024


NR_HUGEPAGES = '/proc/sys/vm/nr_hugepages'


def grow_huge_pool(need):
    """As root, grows the default hugetlb pool until @need bytes of it are
    free, as a host with the kernel series backs its CXL region with 2 MiB
    and 1 GiB pages; returns the pool size to give back afterwards (None
    when nothing changed)."""
    short = need - huge_pool_bytes()
    page = meminfo().get('Hugepagesize', 0) * 1024
    if short <= 0 or os.geteuid() != 0 or not page:
        return None
    with open(NR_HUGEPAGES) as f:
        before = int(f.read())
    with open(NR_HUGEPAGES, 'w') as f:
        f.write(str(before + -(-short // page)))
    return before


def restore_huge_pool(before):
    if before is not None:
        with open(NR_HUGEPAGES, 'w') as f:
            f.write(str(before))


# What guest RAM's first touch does when nothing allocated it up front.
LAZY_RAM_FIRST_TOUCH = {
    'load': 'not judged: RAM nobody allocated reads the shared zero page, '
            'which stays in the cache',
    'store': 'not judged: RAM nobody allocated allocates and clears each page',
}


def p1_figures(accel, setup, per_boot):
    """Rows of P1 for one accelerator and memory setup.  First touch is
    held to the target against preallocated RAM only, the RAM a guest with
    a vfio-pci device has (its DMA mapping pins all of it at start-up)."""
    rows = []
    ram_label = 'preallocated guest RAM' if setup.prealloc_ram else 'guest RAM'
    for what, label in (('load', 'loads'), ('store', 'stores')):
        for phase, suffix in (('steady state', ''), ('first touch', '.first')):
            ram, cxl = per_boot[f'ram.{what}{suffix}'], per_boot[f'cxl.{what}{suffix}']
            judged = suffix == '' or setup.prealloc_ram
            rows.append(Figure(f'P1 {label}, {phase}: window / {ram_label} ({setup.label})',
                               accel, [c / r for c, r in zip(cxl, ram)],
                               P1_TARGET if judged else None,
                               note='' if judged else LAZY_RAM_FIRST_TOUCH[what]))
    if not setup.huge_tmpfs and not setup.prealloc_ram:
        for what, label in (('load', 'loads'), ('store', 'stores')):
            t3, cxl = per_boot[f't3.{what}'], per_boot[f'cxl.{what}']
            rows.append(Figure(f'P1 {label}, steady state: window / cxl-type3',
                               accel, [c / t for c, t in zip(cxl, t3)]))
        hdm, cfg = per_boot['p2.hdm'], per_boot['p2.cfg']
        # Reads per cycle: time per read is the inverse.
        rows.append(Figure('P2 HDM decoder read / emulated config read (time)',
                           accel, [c / h for h, c in zip(hdm, cfg)], P2_TARGET,
                           higher_is_better=False))
    return rows


def print_table(rows):
    head = ('figure', 'accel', 'median', 'spread (min-max)', 'n', 'target', '')
    cells = []
    for f in rows:
        target = '' if f.target is None else \
            (f'>= {f.target:g}x' if f.higher else f'<= {f.target:g}x')
        cells.append((f.name, f.accel, f'{f.median():.3g}x',
                      f'{min(f.ratios):.3g}-{max(f.ratios):.3g}', str(len(f.ratios)),
                      target, f.verdict()))
    widths = [max(len(r[i]) for r in [head, *cells]) for i in range(len(head))]
    for r in [head, *cells]:
        print('  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    notes = [f'{f.name} ({f.accel}): {f.note}' for f in rows if f.note]
    for n in notes:
        print(f'  note: {n}')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--qemu', required=True)
    ap.add_argument('--sim', required=True, help='release-built vfio-user-cxl-sim')
    ap.add_argument('--kernel', required=True, help="the Linux guest's vmlinuz")
    ap.add_argument('--boots', type=int, default=5, help='boots per P1 case')
    ap.add_argument('--cache', default=os.path.expanduser('~/.cache/vfio-cxl/bench'))
    a = ap.parse_args()

    initrd, metal = memory.build_guests(a.cache)
    kvm_ok, kvm_why = memory.probe_kvm(a.qemu, metal)
    huge_ok = os.geteuid() == 0 and shutil.which('unshare') is not None
    guests = [memory.Guest('tcg', a.kernel, initrd)]
    if kvm_ok:
        guests.append(memory.Guest('kvm', metal))
    print(f'accelerators: tcg (Linux guest {os.path.basename(a.kernel)})'
          + (', kvm (bare-metal guest, ring 3)' if kvm_ok
             else f'; kvm did not run: {kvm_why}'))
    pool_before = grow_huge_pool(memory.REGION)
    if pool_before is not None:
        print(f'hugetlb pool grown from {pool_before} pages for the run '
              f'(given back at the end)')
    try:
        run(a, guests, huge_ok)
    finally:
        restore_huge_pool(pool_before)


def run(a, guests, huge_ok):
    print(host_pages())
    memfd = 'memfd, hugetlb' if huge_pool_bytes() >= memory.REGION else 'memfd'
    setups = [memory.Setup(memfd, huge_tmpfs=False, prealloc_ram=False),
              memory.Setup(memfd, huge_tmpfs=False, prealloc_ram=True)]
    if huge_ok:
        setups.append(memory.Setup('huge tmpfs', huge_tmpfs=True, prealloc_ram=False))
    else:
        print('device memory on a huge-page tmpfs: skipped (needs root and unshare)')

    rows = []
    with tempfile.TemporaryDirectory(prefix='vfio-cxl-bench-') as tmp:
        for guest in guests:
            # Setups alternate boot by boot, so that a load change on the
            # machine hits all alike.
            per = {s: {} for s in setups}
            for i in range(a.boots):
                for s in setups:
                    ram = ', RAM preallocated' if s.prealloc_ram else ''
                    print(f'P1/P2: {guest.accel} boot {i + 1}/{a.boots}, {s.label}{ram}',
                          flush=True)
                    got = memory.measure(a.qemu, a.sim, tmp, guest, 1, s, first_index=i)
                    for k, v in got.items():
                        per[s].setdefault(k, []).extend(v)
            for s in setups:
                rows += p1_figures(guest.accel, s, per[s])

        print('P3: start-up', flush=True)
        times = realize.measure(a.qemu, a.sim, tmp)
        parts = realize.groups(times)
        rows.append(Figure('P3 start-up growth 1 GiB -> 1 TiB: device / plain backend', 'none',
                           [realize.device_share(g) for g in parts], P3_TARGET,
                           higher_is_better=False, value=realize.device_share(times),
                           note='medians of all rounds, spread over groups of 5: '
                                + realize.summary(times)))
        for kind, label in (('dev', 'the device'), ('mb', 'a plain memory backend')):
            rows.append(Figure(f'P3 whole start-up with {label}, 1 TiB / 1 GiB', 'none',
                               [realize.whole(g, kind) for g in parts],
                               value=realize.whole(times, kind)))

        print('P4: FLR', flush=True)
        flrs, messages = flr.measure(a.qemu, a.sim, tmp)
        rows.append(Figure('P4 FLR to usable: vfio-user-cxl / vfio-user-pci', 'qtest',
                           [c / p for c, p in zip(flrs['vfio-user-cxl'], flrs['vfio-user-pci'])],
                           P4_TARGET, higher_is_better=False,
                           note=', '.join(f'{n} {statistics.median(t) * 1e3:.3f} ms, '
                                          f'{messages[n]:g} vfio-user messages'
                                          for n, t in flrs.items())))
    print()
    print_table(rows)
    missed = [f for f in rows if f.verdict() == 'NOT MET']
    print(f'\ntargets: {sum(f.verdict() == "met" for f in rows)} met, {len(missed)} not met')


if __name__ == '__main__':
    main()
