"""What the benchmarks of bench/run.py share: the simulator as a process,
QEMU's CXL topology, statistics of repeated measurements."""

import json
import os
import statistics
import subprocess
import sys

# The functional test's helpers: the simulator's control protocol.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'tests', 'functional'))
from vfio_cxl_boot import sim_control  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30

# q35 with CXL, one pxb-cxl and one root port; a window of @window bytes
# whose only target is that host bridge.  44 physical address bits: a
# 1 TiB device needs a 2 TiB window above 4 GiB.
def cxl_machine(window='4G'):
    return ['-machine', 'q35,cxl=on',
            '-M', f'cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size={window}',
            '-device', 'pxb-cxl,id=cxl.1,bus=pcie.0,bus_nr=12',
            '-device', 'cxl-rp,id=rp0,bus=cxl.1,chassis=0,slot=0,port=0']


def device_json(driver, bus, sock, dev_id='acc'):
    return json.dumps({'driver': driver, 'id': dev_id, 'bus': bus,
                       'socket': {'type': 'unix', 'path': sock}})


class Simulator:
    """A vfio-user-cxl-sim serving @size of device memory on a socket in
    @directory.  With @huge_tmpfs the memory is a file on a tmpfs mounted
    with huge=within_size in a mount namespace of the simulator's own
    (root only), so that it is made of 2 MiB pages even where the host's
    shmem_enabled gives memfds none; the mount goes with the process."""

    def __init__(self, binary, directory, tag, size='256M', huge_tmpfs=False):
        self.sock = os.path.join(directory, f'{tag}.sock')
        self.ctl = os.path.join(directory, f'{tag}.ctl')
        args = [binary, '--socket', self.sock, '--control', self.ctl,
                '--memory-size', size]
        if huge_tmpfs:
            mnt = os.path.join(directory, f'{tag}.mnt')
            os.mkdir(mnt)
            # unshare and sh exec: the PID is the simulator's.
            script = ('mount -t tmpfs -o huge=within_size,size="$1" none "$2" && '
                      'shift 2 && exec "$@" --memory-file "$0/mem"')
            args = ['unshare', '--mount', '--propagation', 'private',
                    'sh', '-c', script, mnt, size, mnt, *args]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        if 'listening' not in line:
            self.stop()
            raise RuntimeError(f'the simulator did not start: {line.strip()}')

    def messages(self):
        """vfio-user messages served so far (the control socket's stats)."""
        return sim_control(self.ctl, 'stats')['messages']

    def stop(self):
        stop_process(self.proc)
        self.proc.stdout.close()


def stop_process(proc, timeout=10):
    """Stops @proc by its PID (TERM, then KILL)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Figure:
    """One row of the table: a ratio measured in several repetitions
    (@ratios, their median is the figure unless @value gives it).
    @higher_is_better says which way @target points (None: no target)."""

    def __init__(self, name, accel, ratios, target=None, higher_is_better=True,
                 note='', value=None):
        self.name, self.accel, self.ratios = name, accel, list(ratios)
        self.target, self.higher, self.note = target, higher_is_better, note
        self.value = value

    def median(self):
        return statistics.median(self.ratios) if self.value is None else self.value

    def verdict(self):
        if self.target is None:
            return ''
        m = self.median()
        ok = m >= self.target if self.higher else m <= self.target
        return 'met' if ok else 'NOT MET'

