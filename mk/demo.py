#!/usr/bin/env python3
"""The README's demo: a Linux guest uses a CXL Type-2 accelerator passed
through by vfio-user-cxl from the simulator, and we say what it saw.

Usage: mk/demo.py QEMU SIMULATOR KERNEL INITRD [TARGET]
       (mk/demo.sh finds them; TARGET: x86_64, the default, boots q35,
       aarch64 virt with its UEFI firmware)
"""

import os
import selectors
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'tests', 'functional'))
import vfio_cxl_boot as boot  # noqa: E402

BOOT_TIMEOUT = 420


def boot_guest(qemu, machine, args):
    """Runs QEMU on @machine, showing progress, and returns the guest's
    report."""
    proc = subprocess.Popen([qemu, '-machine', machine, '-display', 'none',
                             '-serial', 'stdio', *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    report, inside, buf = {}, False, b''
    booted = None
    start = last = time.monotonic()
    milestones = {'Linux version': 'kernel started',
                  'cxl_acpi': 'CXL drivers loading',
                  boot.REPORT_BEGIN: 'guest checks running'}
    while time.monotonic() - start < BOOT_TIMEOUT:
        if time.monotonic() - last >= 10:
            print(f'  ... {time.monotonic() - start:.0f} s', flush=True)
            last = time.monotonic()
        if not sel.select(timeout=1):
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b'\n')
        for raw in lines:
            line = raw.decode(errors='replace').rstrip('\r')
            for marker, what in list(milestones.items()):
                if marker in line:
                    print(f'  {time.monotonic() - start:5.1f} s  {what}', flush=True)
                    del milestones[marker]
            if line.startswith('qemu-system'):
                print('  ' + line)
            if boot.booted_kernel(line):
                booted = boot.booted_kernel(line)
                print(f'  {time.monotonic() - start:5.1f} s  guest runs Linux '
                      f'{booted}', flush=True)
            if line == boot.REPORT_BEGIN:
                inside = True
            elif line == boot.REPORT_END:
                inside = False
            elif inside and '=' in line:
                key, value = line.split('=', 1)
                report[key] = value
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    return report, booted, time.monotonic() - start


def main():
    qemu, sim, kernel, initrd = sys.argv[1:5]
    target = boot.TARGETS[sys.argv[5] if len(sys.argv) > 5 else 'x86_64']
    results = []

    def check(ok, text):
        results.append(ok)
        print(f"  [{'ok' if ok else 'FAILED'}] {text}")

    with tempfile.TemporaryDirectory(prefix='vfio-cxl-demo-') as tmp:
        sock, ctl = os.path.join(tmp, 'sim.sock'), os.path.join(tmp, 'ctl.sock')
        mem = os.path.join(tmp, 'device-memory')
        simproc = subprocess.Popen(
            [sim, '--socket', sock, '--control', ctl, '--memory-file', mem,
             '--memory-size', f'{boot.MEM_SIZE // boot.MiB}M'],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        print(f'simulator: {simproc.stdout.readline().strip()}')
        host_bytes = os.urandom(boot.HOST_LEN)
        boot.sim_control(ctl, f'mem-write {boot.HOST_OFF:#x} {host_bytes.hex()}')
        print(f'host: wrote {boot.HOST_LEN} random bytes into device memory '
              f'at {boot.HOST_OFF:#x}')

        # mk/guest-image.sh writes which kernel package it put there.
        version = os.path.join(os.path.dirname(kernel), 'kernel-version')
        try:
            with open(version) as f:
                package = f.read().split()[0]
        except OSError:
            package = os.path.basename(kernel)
        print(f'booting {package} on {target.machine} under TCG with '
              f'-device vfio-user-cxl ...', flush=True)
        args = boot.qemu_args('tcg', sock, kernel, initrd, target=target,
                              directory=tmp)
        r, booted, elapsed = boot_guest(qemu, target.machine, args)
        stats = boot.sim_control(ctl, 'stats')
        with open(mem, 'rb') as f:
            def device_memory(off, length):
                f.seek(off)
                return f.read(length)

            print(f'\nWhat the guest (Linux {booted or "that never started"}) '
                  f'saw ({elapsed:.0f} s, TCG):')
            if 'device' not in r:
                check(False, 'the guest did not report the device')
            else:
                check(True, f"device {r['device']}: {r.get('device.vendor')}:"
                      f"{r.get('device.device')} class {r.get('device.class')}")
                check(r.get('dvsec.locked') == '1' and
                      r.get('dvsec.mem_enable') == '1' and
                      r.get('dvsec_write.control.stuck') == '0',
                      f"CXL Device DVSEC locked, Mem_Enable set; a guest write "
                      f"to Control did not stick (control {r.get('dvsec.control')})")
                base = boot.num(r.get('hdm.d0.base', '0'))
                size = boot.num(r.get('hdm.d0.size', '0'))
                check(r.get('hdm.d0.committed') == '1' and
                      r.get('hdm.d0.lock_on_commit') == '1' and size == boot.MEM_SIZE,
                      f"HDM decoder 0 committed and locked: {size // boot.MiB} MiB "
                      f"at {base:#x}")
                root = boot.num(r.get('cxl.decoder0.0.start', '-1'))
                check(root == base and boot.num(r.get('mem.base', '-1')) == base,
                      f"the guest's CXL core has root decoder decoder0.0 at "
                      f"{root:#x} ({r.get('iomem.0', '?')}); device memory "
                      f"is there")
                pages = boot.report_pages(r)
                same = [boot.fnv1a(device_memory(off, boot.PAGE)) == csum
                        for _, off, csum in pages]
                check(bool(pages) and all(same),
                      f'guest -> device: {len(pages)} pages the guest wrote '
                      f'(first to last) are byte for byte in the host\'s '
                      f'memory file')
                check(r.get('host_pattern.hex') == host_bytes.hex(),
                      f'device -> guest: the {boot.HOST_LEN} host bytes read '
                      f'back by the guest')
                kept = all(r.get(f'flr.mem.{p}.checksum') == r.get(f'mem.{p}.checksum')
                           for p, _, _ in pages)
                check(r.get('reset.result') == 'ok' and kept and
                      r.get('flr.hdm.d0.ctrl') == r.get('hdm.d0.ctrl') and
                      r.get('flr.dvsec.locked') == '1',
                      f"FLR from the guest: decoder, DVSEC and data unchanged")
                kept = all(r.get(f'cxlr.mem.{p}.checksum') == r.get(f'mem.{p}.checksum')
                           for p, _, _ in pages)
                check(r.get('cxl_reset.result') == 'ok' and kept and
                      r.get('cxlr.hdm.d0.ctrl') == r.get('hdm.d0.ctrl'),
                      f"CXL Reset from the guest (DVSEC Control2): decoder and "
                      f"data unchanged; host resets seen: {stats.get('resets')} "
                      f"(machine start, FLR, CXL Reset)")
                check(r.get('errors') == '0',
                      f"guest errors: {r.get('errors', 'no report')}")
        simproc.terminate()
        simproc.wait(timeout=10)
    ok = bool(results) and all(results)
    print(f"\ndemo: {'all checks passed' if ok else 'some checks FAILED'}; "
          'QEMU and the simulator are stopped.')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
