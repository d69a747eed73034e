#!/usr/bin/env python3
"""Guest FLR to device usable again: vfio-user-cxl next to a plain
vfio-user-pci, against the same simulator, in one run.

QEMU runs with the qtest accelerator, driven over the qtest protocol.  For
each FLR the timer covers the guest's Device Control write (which returns
once the device finished its reset) and the first access after it: for
vfio-user-cxl a read of the device memory at the CXL window base, for
vfio-user-pci a config read of its vendor ID.
Usage: bench/flr.py QEMU SIMULATOR [FLRS]
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

CXL_TOPOLOGY = [
    "-machine", "q35,cxl=on",
    "-M", "cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G",
    "-device", "pxb-cxl,id=cxl.1,bus=pcie.0,bus_nr=12",
    "-device", "cxl-rp,id=rp0,bus=cxl.1,chassis=0,slot=0,port=0",
]


class Qtest:
    def __init__(self, qemu, args):
        self.proc = subprocess.Popen(
            [qemu, "-nodefaults", "-display", "none", "-accel", "qtest",
             "-qtest", "stdio", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        while True:
            reply = self.proc.stdout.readline()
            if not reply:
                sys.exit(f"QEMU exited during {line!r}")
            if reply.startswith("OK") or reply.startswith("ERR"):
                return reply.split()

    def cfg_addr(self, bus, dev, off):
        return 0x80000000 | bus << 16 | dev << 11 | (off & 0xfc)

    def cfg_read(self, bus, dev, off, size):
        self.cmd(f"outl 0xcf8 {self.cfg_addr(bus, dev, off):#x}")
        width = {1: "b", 2: "w", 4: "l"}[size]
        return int(self.cmd(f"in{width} {0xcfc + (off & 3):#x}")[1], 16)

    def cfg_write(self, bus, dev, off, size, value):
        self.cmd(f"outl 0xcf8 {self.cfg_addr(bus, dev, off):#x}")
        width = {1: "b", 2: "w", 4: "l"}[size]
        self.cmd(f"out{width} {0xcfc + (off & 3):#x} {value:#x}")

    def pcie_devctl(self, bus, dev):
        pos = self.cfg_read(bus, dev, 0x34, 1)
        while pos:
            if self.cfg_read(bus, dev, pos, 1) == 0x10:
                return pos + 8
            pos = self.cfg_read(bus, dev, pos + 1, 1)
        sys.exit("no PCIe capability")

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def measure(q, bus, dev, flrs, usable):
    devctl = q.pcie_devctl(bus, dev)
    times = []
    for _ in range(flrs):
        value = q.cfg_read(bus, dev, devctl, 2)
        start = time.monotonic()
        q.cfg_write(bus, dev, devctl, 2, value | 0x8000)
        usable()
        times.append(time.monotonic() - start)
    return times


def main():
    qemu, sim = sys.argv[1], sys.argv[2]
    flrs = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "sim.sock")
        sim_proc = subprocess.Popen([sim, "--socket", sock, "--memory-size", "256M"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    text=True)
        if "listening" not in sim_proc.stdout.readline():
            sys.exit("simulator did not start")
        dev_json = '{{"driver":"{}","id":"acc","bus":"{}","socket":{{"type":"unix","path":"%s"}}}}' % sock

        q = Qtest(qemu, ["-machine", "q35",
                         "-device", dev_json.format("vfio-user-pci", "pcie.0")])
        slot = next(d for d in range(1, 32) if q.cfg_read(0, d, 0, 2) != 0xffff)
        plain = measure(q, 0, slot, flrs, lambda: q.cfg_read(0, slot, 0, 2))
        q.close()

        q = Qtest(qemu, [*CXL_TOPOLOGY, "-device", dev_json.format("vfio-user-cxl", "rp0")])
        # No firmware: give the root port (12:00.0) its secondary bus.
        q.cfg_write(12, 0, 0x18, 4, 0x000d0d0c)
        cxl = measure(q, 13, 0, flrs, lambda: q.cmd("readq 0x110000000"))
        q.close()
        sim_proc.terminate()
        sim_proc.wait(timeout=10)

    for label, times in (("vfio-user-pci", plain), ("vfio-user-cxl", cxl)):
        print(f"{label:14s} FLR to usable: median {statistics.median(times) * 1e3:6.3f} ms "
              f"(min {min(times) * 1e3:.3f}, max {max(times) * 1e3:.3f}, {flrs} FLRs)")
    print(f"ratio vfio-user-cxl/vfio-user-pci: {statistics.median(cxl) / statistics.median(plain):.2f}")


if __name__ == "__main__":
    main()
