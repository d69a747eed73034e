#!/usr/bin/env python3
#
# The kit's --guest step: boots the functional test's Linux guest
# (mk/guest-image.sh; tests/functional/vfio-cxl-guest.c prints a key=value
# report on the serial console) with the device under test, and judges
# what the guest itself reports: the device, the locked DVSEC, decoder 0
# committed and locked at the window base, its writes read back, and the
# same after its FLR.  Unlike the functional test it has no simulator to
# compare device memory with, so it checks the guest's view only.
#
# SPDX-License-Identifier: GPL-2.0-or-later

import argparse
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'functional'))

from vfio_cxl_boot import (GiB, PAGE, REPORT_BEGIN, REPORT_END, TARGETS,  # noqa: E402
                           fnv1a, guest_image, num, pattern_page, qemu_args)

# The kit's machines (vfio-cxl-validate guest-view --machine) and the
# functional test's targets that boot them.
MACHINE_TARGETS = {'q35': TARGETS['x86_64'], 'virt': TARGETS['aarch64']}

BOOT_TIMEOUT = 480


def device_arg(args):
    if args.socket:
        return json.dumps({'driver': 'vfio-user-cxl', 'id': 'acc', 'bus': 'rp0',
                           'socket': {'type': 'unix', 'path': args.socket}})
    where = f'host={args.host}' if args.host else f'sysfsdev={args.sysfsdev}'
    return f'vfio-cxl,id=acc,bus=rp0,{where}'


def uses_iommufd(args):
    """As the kit decides: the function's VFIO cdev, when /dev/iommu exists."""
    sysfs = args.sysfsdev or f'/sys/bus/pci/devices/{args.host}'
    return (os.path.isdir(os.path.join(sysfs, 'vfio-dev')) and
            os.path.exists('/dev/iommu'))


def command_line(args, kernel, initrd, target, directory):
    window = max(4 * GiB, -(-args.memory_size // (256 << 20)) * (256 << 20))
    out = []
    for a in qemu_args(args.accel, '/unused', kernel, initrd, target=target,
                       directory=directory):
        if a.startswith('cxl-fmw.0.targets.0='):
            a = f'cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size={window}'
        elif out and out[-1] == '-device' and 'vfio-user-cxl' in a:
            a = device_arg(args)
            if not args.socket and uses_iommufd(args):
                a += ',iommufd=iommufd0'
                out[-1:-1] = ['-object', 'iommufd,id=iommufd0']
        out.append(a)
    return [args.qemu, '-machine', target.machine, '-display', 'none',
            '-serial', 'stdio', '-monitor', 'none'] + out


def read_report(proc, timeout):
    """The key=value lines between the report markers."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    report, inside, buf = {}, False, b''
    while time.monotonic() < deadline:
        if not sel.select(timeout=1):
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        while b'\n' in buf:
            raw, buf = buf.split(b'\n', 1)
            line = raw.decode(errors='replace').rstrip('\r')
            if line == REPORT_BEGIN:
                inside = True
            elif line == REPORT_END:
                return report, None
            elif 'Kernel panic' in line:
                return report, f'guest kernel panic: {line}'
            elif inside and '=' in line:
                k, v = line.split('=', 1)
                report[k] = v
    if proc.poll() is not None:
        return report, f'QEMU exited (status {proc.returncode}) before {REPORT_END}'
    return report, f'no {REPORT_END} on the console in {timeout} s'


def judge(r, mem_size, uapi):
    """(name, ok, detail) for each guest-side check."""
    def get(k):
        return r.get(k, '(missing)')
    errors = {k: v for k, v in r.items() if v.startswith('error:')}
    yield ('guest_report', not errors and r.get('errors') == '0',
           f'{len(r)} keys, errors={get("errors")} {errors or ""}')
    yield ('guest_found_device', 'device' in r,
           f'{get("device")} vendor {get("device.vendor")} device {get("device.device")}')
    try:
        size = num(get('dvsec.range1_size'))
        base = num(get('dvsec.range1_base'))
    except ValueError:
        size = base = -1
    yield ('guest_dvsec', get('dvsec.locked') == '1' and get('dvsec.mem_enable') == '1'
           and size == mem_size,
           f'locked {get("dvsec.locked")} mem_enable {get("dvsec.mem_enable")} '
           f'range 1 {get("dvsec.range1_base")}+{get("dvsec.range1_size")}')
    try:
        d0 = (num(get('hdm.d0.base')), num(get('hdm.d0.size')))
    except ValueError:
        d0 = (-1, -1)
    yield ('guest_decoder', get('hdm.d0.committed') == '1' and
           get('hdm.d0.lock_on_commit') == '1' and d0 == (base, mem_size),
           f'committed {get("hdm.d0.committed")} lock {get("hdm.d0.lock_on_commit")} '
           f'base {get("hdm.d0.base")} size {get("hdm.d0.size")}')
    pages = sorted({k.split('.')[1] for k in r
                    if k.startswith('mem.') and k.endswith('.offset')
                    and k.split('.')[1].isdigit()}, key=int)
    bad = [p for p in pages
           if r.get(f'mem.{p}.mismatched_words') != '0' or
           num(r[f'mem.{p}.checksum']) !=
           fnv1a(pattern_page(1, num(r[f'mem.{p}.offset'])))]
    yield ('guest_memory', bool(pages) and not bad,
           f'{len(pages)} pages of {PAGE} bytes written and read back; wrong: {bad}')
    changed = [k for k in r if k.split('.')[0] in ('dvsec', 'hdm')
               and r.get(f'flr.{k}') != r[k]]
    if uapi != 'v4':
        changed += [f'mem.{p}' for p in pages
                    if r.get(f'flr.mem.{p}.checksum') != r[f'mem.{p}.checksum']]
    yield ('guest_flr', get('reset.result') == 'ok' and not changed,
           f'reset {get("reset.result")}; changed across it: {changed or "nothing"}'
           + (' (v4 clears memory: not compared)' if uapi == 'v4' else ''))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--qemu', required=True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument('--host')
    g.add_argument('--sysfsdev')
    g.add_argument('--socket')
    p.add_argument('--memory-size', type=lambda s: int(s, 0), required=True)
    p.add_argument('--uapi', required=True, choices=('v2', 'v3', 'v4'))
    p.add_argument('--accel', default=os.environ.get('VFIO_CXL_ACCEL', 'tcg'))
    p.add_argument('--machine', choices=sorted(MACHINE_TARGETS), default='q35')
    p.add_argument('--series', default=os.environ.get('VFIO_CXL_GUEST_SERIES', '6.1'),
                   help='guest kernel series (where mk/guest-image.sh builds several)')
    args = p.parse_args()

    target = MACHINE_TARGETS[args.machine]
    arch = f' --arch {target.guest_dir}' if target.guest_dir else ''
    kernel, initrd = guest_image(args.series, target)
    for what, path in (('guest kernel', kernel), ('initramfs', initrd)):
        if not os.path.isfile(path):
            print(f'FAIL guest_boot                 no {what} at {path}: '
                  f'run mk/guest-image.sh{arch}')
            return 1
    missing = target.missing()
    if missing:
        print(f'FAIL guest_boot                 {missing}')
        return 1
    with tempfile.TemporaryDirectory(prefix='vfio-cxl-guest-') as directory:
        return boot(args, command_line(args, kernel, initrd, target, directory))


def boot(args, cmd):
    """Runs QEMU with @cmd and judges the guest's report."""
    print('qemu: ' + ' '.join(cmd), flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        report, problem = read_report(proc, BOOT_TIMEOUT)
    finally:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode(errors='replace')
    failed = 0
    ok = problem is None
    print(f'{"PASS" if ok else "FAIL"} guest_boot                 '
          f'{problem or "report read"} after {time.monotonic() - t0:.0f} s, '
          f'QEMU exit {proc.returncode}', flush=True)
    failed += not ok
    if report:
        for name, good, detail in judge(report, args.memory_size, args.uapi):
            print(f'{"PASS" if good else "FAIL"} {name:<26} {detail}')
            failed += not good
    print(f'QEMU\'s messages ({len(err.splitlines())} lines):')
    for line in err.splitlines():
        print(f'  qemu: {line}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
