"""P4: guest FLR to usable device, vfio-user-cxl next to a plain
vfio-user-pci on the same simulator binary and options, both QEMUs
running at once and measured in alternating batches.

QEMU runs with the qtest accelerator, driven over the qtest protocol.  An
FLR is the Device Control write (it returns once the device finished its
reset) and the first access after it: for vfio-user-cxl a read of device
memory at the CXL window base, for vfio-user-pci a config read of its
vendor ID.  The simulator counts the vfio-user messages of each FLR."""

import statistics
import subprocess
import time

from common import Simulator, cxl_machine, device_json, stop_process

WINDOW_BASE = 0x110000000    # first CXL window of cxl_machine()


class Qtest:
    def __init__(self, qemu, args):
        self.proc = subprocess.Popen(
            [qemu, '-nodefaults', '-display', 'none', '-accel', 'qtest',
             '-qtest', 'stdio', *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)

    def cmd(self, line):
        self.proc.stdin.write(line + '\n')
        self.proc.stdin.flush()
        while True:
            reply = self.proc.stdout.readline()
            if not reply:
                raise RuntimeError(f'QEMU exited during {line!r}')
            if reply.startswith('OK') or reply.startswith('ERR'):
                return reply.split()

    def cfg_read(self, bus, dev, off, size):
        self.cmd(f'outl 0xcf8 {0x80000000 | bus << 16 | dev << 11 | (off & 0xfc):#x}')
        width = {1: 'b', 2: 'w', 4: 'l'}[size]
        return int(self.cmd(f'in{width} {0xcfc + (off & 3):#x}')[1], 16)

    def cfg_write(self, bus, dev, off, size, value):
        self.cmd(f'outl 0xcf8 {0x80000000 | bus << 16 | dev << 11 | (off & 0xfc):#x}')
        width = {1: 'b', 2: 'w', 4: 'l'}[size]
        self.cmd(f'out{width} {0xcfc + (off & 3):#x} {value:#x}')

    def devctl(self, bus, dev):
        """Offset of Device Control in the PCIe capability."""
        pos = self.cfg_read(bus, dev, 0x34, 1)
        while pos:
            if self.cfg_read(bus, dev, pos, 1) == 0x10:
                return pos + 8
            pos = self.cfg_read(bus, dev, pos + 1, 1)
        raise RuntimeError('no PCIe capability')

    def close(self):
        stop_process(self.proc, 30)


class Target:
    """One QEMU with one device: how to FLR it and how to use it after."""

    def __init__(self, q, bus, dev, usable):
        self.q, self.bus, self.dev, self.usable = q, bus, dev, usable
        self.ctl = q.devctl(bus, dev)

    def flrs(self, n):
        times = []
        for _ in range(n):
            value = self.q.cfg_read(self.bus, self.dev, self.ctl, 2)
            start = time.monotonic()
            self.q.cfg_write(self.bus, self.dev, self.ctl, 2, value | 0x8000)
            self.usable()
            times.append(time.monotonic() - start)
        return times


def measure(qemu, sim_bin, tmp, rounds=7, per_round=20):
    """{'vfio-user-pci'|'vfio-user-cxl': [median seconds per round]} and
    the vfio-user messages per FLR of each."""
    sims, qemus = {}, []
    try:
        for name in ('pci', 'cxl'):
            sims[name] = Simulator(sim_bin, tmp, f'p4-{name}')
        q = Qtest(qemu, ['-machine', 'q35', '-device',
                         device_json('vfio-user-pci', 'pcie.0', sims['pci'].sock)])
        qemus.append(q)
        slot = next(d for d in range(1, 32) if q.cfg_read(0, d, 0, 2) != 0xffff)
        plain = Target(q, 0, slot, lambda q=q: q.cfg_read(0, slot, 0, 2))
        q = Qtest(qemu, [*cxl_machine('4G'), '-device',
                         device_json('vfio-user-cxl', 'rp0', sims['cxl'].sock)])
        qemus.append(q)
        # No firmware: give the root port (12:00.0) its secondary bus.
        q.cfg_write(12, 0, 0x18, 4, 0x000d0d0c)
        cxl = Target(q, 13, 0, lambda q=q: q.cmd(f'readq {WINDOW_BASE:#x}'))
        targets = {'vfio-user-pci': (plain, sims['pci']),
                   'vfio-user-cxl': (cxl, sims['cxl'])}
        times = {n: [] for n in targets}
        messages = {}
        for r in range(rounds):
            order = list(targets) if r % 2 == 0 else list(targets)[::-1]
            for name in order:
                target, sim = targets[name]
                before = sim.messages()
                times[name].append(statistics.median(target.flrs(per_round)))
                messages[name] = (sim.messages() - before) / per_round
        return times, messages
    finally:
        for q in qemus:
            q.close()
        for sim in sims.values():
            sim.stop()
