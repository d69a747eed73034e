#!/usr/bin/env python3
"""Realize + machine-done time of vfio-user-cxl for 1 GiB vs 1 TiB of
device memory, measured side by side in one run.

For each case QEMU starts paused (-S) with the CXL topology; the time from
exec to the answer to the first QMP command covers machine creation, every device's realize
and machine-init-done.  The baseline runs the same topology without the
device.  Usage: bench/realize.py QEMU SIMULATOR [RUNS]
"""

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TOPOLOGY = [
    "-nodefaults", "-display", "none", "-S",
    "-machine", "q35,cxl=on",
    # A 1 TiB window above 4 GiB needs more than 40 physical address bits.
    "-cpu", "qemu64,phys-bits=44",
    "-device", "pxb-cxl,id=cxl.1,bus=pcie.0,bus_nr=12",
    "-device", "cxl-rp,id=rp0,bus=cxl.1,chassis=0,slot=0,port=0",
]


def start_sim(sim, tmp, size):
    sock = os.path.join(tmp, f"sim-{size}.sock")
    proc = subprocess.Popen([sim, "--socket", sock, "--memory-size", size],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if "listening" not in proc.stdout.readline():
        sys.exit(f"simulator did not start for {size}")
    return proc, sock


def qemu_startup(qemu, extra):
    start = time.monotonic()
    proc = subprocess.Popen([qemu, *TOPOLOGY, *extra, "-qmp", "stdio"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # Commands are answered by the main loop, which runs only after every
    # device is realized and machine-init-done has run.
    proc.stdin.write('{"execute":"qmp_capabilities"}\n')
    proc.stdin.flush()
    greeting = proc.stdout.readline()
    reply = proc.stdout.readline()
    elapsed = time.monotonic() - start
    proc.stdin.write('{"execute":"quit"}\n')
    proc.stdin.flush()
    proc.wait(timeout=30)
    if '"QMP"' not in greeting or '"return"' not in reply:
        sys.exit(f"QEMU failed: {proc.stderr.read().strip()}")
    return elapsed


def main():
    qemu, sim = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("no device", None, "0")]
        cases += [(f"{s} device memory", s, s) for s in ("1G", "1T")]
        medians = {}
        for label, size, _ in cases:
            extra = []
            sim_proc = None
            if size:
                sim_proc, sock = start_sim(sim, tmp, size)
                window = "2T" if size == "1T" else "4G"
                extra = ["-M", f"cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size={window}",
                         "-device", '{"driver":"vfio-user-cxl","id":"acc","bus":"rp0",'
                         f'"socket":{{"type":"unix","path":"{sock}"}}}}']
            else:
                extra = ["-M", "cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G"]
            times = [qemu_startup(qemu, extra) for _ in range(runs)]
            if sim_proc:
                sim_proc.send_signal(signal.SIGTERM)
                sim_proc.wait(timeout=10)
            medians[label] = statistics.median(times)
            print(f"{label:22s} median {medians[label] * 1000:7.1f} ms "
                  f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}, {runs} runs)")
        one_g, one_t = medians["1G device memory"], medians["1T device memory"]
        base = medians["no device"]
        print(f"device cost: 1G {(one_g - base) * 1000:.1f} ms, 1T {(one_t - base) * 1000:.1f} ms")
        print(f"ratio 1T/1G (whole start-up): {one_t / one_g:.2f}")


if __name__ == "__main__":
    main()
