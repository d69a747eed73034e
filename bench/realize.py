"""P3: QEMU start-up to the first QMP answer with vfio-user-cxl of 1 GiB
and 1 TiB device memory, next to the same machine without the device and
with a plain memory backend of each size, in interleaved rounds.

QEMU starts paused (-S); QMP answers only from the main loop, which runs
after every device is realized and machine-init-done ran.  The device's
memory becomes a RAMBlock, as a memory backend's does, and QEMU's
bookkeeping for a RAMBlock (dirty bitmaps marked all dirty) grows with
its size.  The device's share is what its start-up grows by from 1 GiB
to 1 TiB, next to what a plain backend's grows by: a ratio of two growths
of tens of milliseconds, which start-up noise on a busy machine does not
swamp as it would a difference of a few."""

import statistics
import subprocess
import time

from common import Simulator, cxl_machine, device_json, stop_process

SIZES = ('1G', '1T')
CPU = ['-cpu', 'qemu64,phys-bits=44']


def startup(qemu, extra):
    """Seconds from exec to the answer to qmp_capabilities."""
    start = time.monotonic()
    proc = subprocess.Popen([qemu, '-nodefaults', '-display', 'none', '-S', *CPU,
                             *extra, '-qmp', 'stdio'],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write('{"execute":"qmp_capabilities"}\n')
        proc.stdin.flush()
        greeting = proc.stdout.readline()
        reply = proc.stdout.readline()
        took = time.monotonic() - start
        proc.stdin.write('{"execute":"quit"}\n')
        proc.stdin.flush()
        proc.wait(timeout=30)
    finally:
        stop_process(proc)
    if '"QMP"' not in greeting or '"return"' not in reply:
        raise RuntimeError(f'QEMU failed to start: {proc.stderr.read().strip()}')
    return took


def cases(sims):
    """{case: QEMU arguments}; 'mb S' is the plain memory backend."""
    out = {'base': cxl_machine('4G')}
    for size in SIZES:
        window = '2T' if size == '1T' else '4G'
        out[f'dev {size}'] = [*cxl_machine(window), '-device',
                              device_json('vfio-user-cxl', 'rp0', sims[size].sock)]
        out[f'mb {size}'] = [*cxl_machine(window), '-object',
                             f'memory-backend-memfd,id=plain,size={size},share=on']
    return out


def measure(qemu, sim_bin, tmp, rounds=35):
    """{case: [seconds per round]}, cases in a rotating order per round."""
    sims = {}
    try:
        for size in SIZES:
            sims[size] = Simulator(sim_bin, tmp, f'p3-{size}', size=size)
        todo = cases(sims)
        names = list(todo)
        times = {n: [] for n in names}
        for r in range(rounds):
            for i in range(len(names)):
                name = names[(i + r) % len(names)]
                times[name].append(startup(qemu, todo[name]))
        return times
    finally:
        for sim in sims.values():
            sim.stop()


def device_share(times):
    """How much the start-up grows from 1 GiB to 1 TiB with the device,
    over how much it grows with a plain backend (QEMU's RAMBlock
    bookkeeping): 1.0 when the device adds nothing that grows with its
    memory; from the medians of @times."""
    m = {n: statistics.median(t) for n, t in times.items()}
    return (m['dev 1T'] - m['dev 1G']) / (m['mb 1T'] - m['mb 1G'])


def whole(times, kind):
    """Whole start-up with @kind ('dev' or 'mb') at 1 TiB over 1 GiB."""
    return statistics.median(times[f'{kind} 1T']) / statistics.median(times[f'{kind} 1G'])


def groups(times, size=5):
    """@times cut into groups of @size consecutive rounds: start-up costs
    of a few milliseconds are differences of noisy numbers, so the spread
    is that of the statistic over groups, not over single rounds."""
    rounds = len(times['base'])
    return [{n: t[g:g + size] for n, t in times.items()}
            for g in range(0, rounds - size + 1, size)]


def summary(times):
    return ', '.join(f'{n} {statistics.median(t) * 1e3:.1f} ms'
                     for n, t in times.items())


if __name__ == '__main__':
    import sys
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        t = measure(sys.argv[1], sys.argv[2], d)
    print(summary(t))
    print(device_share(t), [device_share(g) for g in groups(t)])
