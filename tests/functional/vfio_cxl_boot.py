# SPDX-License-Identifier: GPL-2.0-or-later
"""What booting a Linux guest with vfio-user-cxl needs, shared by the
functional tests (x86_64/ and aarch64/test_vfio_cxl.py) and the README's
demo (mk/demo.py): the QEMU arguments for each target, the report's
format, and the checks of guest data against device memory."""

import json
import os
from collections import namedtuple
import shutil
import socket
import subprocess
import time

MiB = 1 << 20
GiB = 1 << 30
PAGE = 4096
MEM_SIZE = 256 * MiB
WINDOW_SIZE = 4 * GiB
# Where the host writes its pattern: a page no guest write touches.
HOST_OFF = 0x3040
HOST_LEN = 32
REPORT_BEGIN = 'VFIO-CXL-REPORT-BEGIN'
REPORT_END = 'VFIO-CXL-REPORT-END'
MASK64 = (1 << 64) - 1


def pattern_word(seed, at):
    """The guest's pattern (pattern_word() in vfio-cxl-guest.c)."""
    x = ((at + seed) * 0x9e3779b97f4a7c15) & MASK64
    return x ^ (x >> 29) ^ 0x5a5a0000c3c30000


def pattern_page(seed, off):
    return b''.join(pattern_word(seed, off + 8 * i).to_bytes(8, 'little')
                    for i in range(PAGE // 8))


def fnv1a(data):
    """The checksum the guest reports for a page (fnv1a() in the guest)."""
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & MASK64
    return h


def num(value):
    """A report number: '0x..' or decimal, possibly followed by text."""
    return int(value.split()[0], 0)


# Guest kernel series (mk/guest-image.sh builds one image per series in
# $VFIO_CXL_CACHE/guest/linux-<series>/) and whether its CXL core has the
# Type-2 driver API our driver (tests/functional/cxl-type2-driver) uses.
KERNELS = {'6.1': False, '7.2': True}
# What /init prints first (mk/guest-image.sh).
BOOTED_PREFIX = 'vfio-cxl-guest: Linux '


class Target(namedtuple('Target', 'machine cpu console guest_dir firmware')):
    """What a QEMU target's guest needs: the machine type (the caller
    selects it, with -machine or the test framework's set_machine), the
    CPU model for TCG (None: the machine's default), the console the kernel
    writes to, where mk/guest-image.sh puts its guests (a subdirectory of
    the guest directory, '' for amd64's) and its UEFI firmware (None, or
    the code and the variable store template)."""

    def missing(self):
        """Why this target's guests cannot boot here, or None."""
        for path in self.firmware or ():
            if not os.path.isfile(path):
                return f'no firmware at {path}: install Debian\'s ' \
                    f'qemu-efi-aarch64 (mk/guest-image.sh --arch arm64 does)'
        return None

    def boot_args(self, directory):
        """The CPU and firmware arguments; the firmware's variable store is
        a writable copy in @directory, one per boot."""
        args = ['-cpu', self.cpu] if self.cpu else []
        if self.firmware:
            code, template = self.firmware
            store = os.path.join(directory, 'efivars.fd')
            shutil.copyfile(template, store)
            args += ['-drive', f'if=pflash,format=raw,readonly=on,file={code}',
                     '-drive', f'if=pflash,format=raw,file={store}']
        return args


# q35 boots the kernel with SeaBIOS.  virt describes CXL (the CEDT) only
# in ACPI, which a guest sees only when UEFI firmware boots it: AAVMF from
# Debian's qemu-efi-aarch64, which loads -kernel and -initrd through
# fw_cfg.  cortex-a57 boots these guests as fast as max (with
# pauth-impdef=on or not) under TCG, or faster, and emulates less.
AAVMF = '/usr/share/AAVMF'
TARGETS = {
    'x86_64': Target('q35', None, 'ttyS0', '', None),
    'aarch64': Target('virt', 'cortex-a57', 'ttyAMA0', 'arm64',
                      (f'{AAVMF}/AAVMF_CODE.fd', f'{AAVMF}/AAVMF_VARS.fd')),
}
X86_64 = TARGETS['x86_64']


def guest_image(series, target=X86_64):
    """The guest kernel and initramfs of Linux @series for @target
    (mk/guest-image.sh), under VFIO_CXL_GUEST_DIR, else
    $VFIO_CXL_CACHE/guest."""
    cache = os.environ.get('VFIO_CXL_CACHE') or \
        os.path.expanduser('~/.cache/vfio-cxl')
    guest = os.path.join(os.environ.get('VFIO_CXL_GUEST_DIR') or
                         os.path.join(cache, 'guest'), target.guest_dir,
                         f'linux-{series}')
    return (os.path.join(guest, 'vmlinuz'),
            os.path.join(guest, 'initramfs.cpio.gz'))


def booted_kernel(line):
    """The kernel release a console line of /init names, or None."""
    if line.startswith(BOOTED_PREFIX):
        return line.split()[-1]
    return None


def sim_control(path, command, timeout=20):
    """Sends one command to the simulator's control socket and returns its
    JSON answer (one line in, one line out)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(command.encode() + b'\n')
        reply = b''
        while not reply.endswith(b'\n'):
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    return json.loads(reply)


class Simulator:
    """One vfio-user-cxl-sim process serving a device at @directory/sock,
    with its control socket (ctl) and device memory file (mem, of
    @memory_size bytes) beside it; its output goes to @log_path."""

    def __init__(self, binary, directory, log_path, uapi='v3',
                 memory_size=MEM_SIZE):
        self.binary, self.log_path, self.uapi = binary, log_path, uapi
        self.memory_size = memory_size
        self.sock = os.path.join(directory, 'sock')
        self.ctl = os.path.join(directory, 'ctl')
        self.mem = os.path.join(directory, 'mem')
        self.proc = None
        self.log = None

    @property
    def clears_memory(self):
        """Whether the host clears device memory at every reset: v4's
        kernel runs a CXL reset at open and close and for every FLR, CXL
        Reset and VFIO reset, and that reset clears the memory."""
        return self.uapi == 'v4'

    def start(self, timeout=20):
        """Starts it and waits until it listens; raises RuntimeError (with
        its output) if it exits or does not listen in @timeout s."""
        self.log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(
            [self.binary, '--socket', self.sock, '--control', self.ctl,
             '--memory-file', self.mem,
             '--memory-size', f'{self.memory_size // MiB}M',
             '--uapi', self.uapi],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            out = self.output()
            if 'listening on' in out:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f'the simulator exited with '
                                   f'{self.proc.returncode}: {out}')
            if time.monotonic() > deadline:
                raise RuntimeError(f'the simulator did not listen in '
                                   f'{timeout} s: {out}')
            time.sleep(0.05)

    def stop(self):
        """Stops it (by its PID) if it runs; safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not None:
            self.log.close()

    def output(self):
        if self.log is not None and not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def gone(self):
        """Why the simulator is not there any more, or None."""
        if self.proc.poll() is None:
            return None
        return f'the simulator exited with status {self.proc.returncode}' \
            f' (its log: {self.output().strip()!r})'

    def control(self, command):
        return sim_control(self.ctl, command)

    def takes_new_client(self, timeout=10):
        """Whether the simulator accepts a new client within @timeout s.
        It serves one client at a time, so this shows that the previous
        one (QEMU) has let go of its connection."""
        before = self.control('stats')['connections']
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.sock)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.control('stats')['connections'] > before:
                    return True
                time.sleep(0.05)
        return False

    def memory(self, off, length):
        with open(self.mem, 'rb') as f:
            f.seek(off)
            return f.read(length)


def device_arg(dev_id, bus, sock):
    """-device for vfio-user-cxl @dev_id on root port @bus, served at
    @sock."""
    return ['-device', json.dumps({'driver': 'vfio-user-cxl', 'id': dev_id,
                                   'bus': bus, 'socket': {'type': 'unix',
                                                          'path': sock}})]


def machine_args(accel, windows, target=X86_64, directory=None):
    """A CXL machine of @target with @windows, [(host bridge id, size)], as
    CXL fixed memory windows 0, 1, ... (all in one -M: QEMU refuses them
    split); @directory holds what the boot writes (the firmware's
    variable store), if @target has firmware."""
    fmw = ','.join(f'cxl-fmw.{n}.targets.0={hb},cxl-fmw.{n}.size={size // MiB}M'
                   for n, (hb, size) in enumerate(windows))
    return ['-nodefaults', '-accel', accel, '-m', '512', '-smp', '1',
            '-no-reboot', '-M', 'cxl=on', '-M', fmw] + \
        target.boot_args(directory)


def report_boot_args(kernel, initrd, target=X86_64):
    """Boot @kernel to the guest program's report, on @target's console."""
    return ['-kernel', kernel, '-initrd', initrd,
            '-append', f'console={target.console} iomem=relaxed panic=-1 '
                       f'vfio_cxl_run=report '
                       f'vfio_cxl_host={HOST_OFF:#x},{HOST_LEN}']


def qemu_args(accel, sock, kernel, initrd, hb_hdm=True, target=X86_64,
              directory=None):
    """QEMU arguments for @target's machine (q35 or virt) with one pxb-cxl,
    one cxl-rp, one 4 GiB CXL fixed memory window and vfio-user-cxl at
    @sock, booting @kernel in report mode (@directory: see
    machine_args()).  @hb_hdm: the host bridge has HDM decoders (pxb-cxl
    hdm_for_passthrough=on, the documented topology: Linux 7.x assembles a
    region only below a committed host-bridge decoder), else it decodes in
    passthrough mode.  The machine type and the console are the caller's."""
    return machine_args(accel, [('cxl.1', WINDOW_SIZE)], target,
                        directory) + [
        '-device', 'pxb-cxl,id=cxl.1,bus=pcie.0,bus_nr=12' +
                   (',hdm_for_passthrough=on' if hb_hdm else ''),
        # With its own decoders, root port 2: a target list of 0 cannot
        # pass by accident.
        '-device', 'cxl-rp,id=rp0,bus=cxl.1,chassis=0,slot=0,'
                   f'port={2 if hb_hdm else 0}',
    ] + device_arg('acc', 'rp0', sock) + report_boot_args(kernel, initrd,
                                                          target)


# Several accelerators and a cxl-type3 (the functional test's
# several-devices test, and the multi-device example of the docs):
# acc0 and acc1 share host bridge cxl.1 and its window 0 through root ports
# 2 and 5 (two root ports: cxl.1 has HDM decoders), acc2 has host bridge
# cxl.2 (hdm_for_passthrough=on, root port 3) and window 1 to itself, and
# QEMU's cxl-type3 memory sits below cxl.3 in window 2.  Root port numbers
# other than 0 and 1: a target list cannot match by accident.  Where the
# placement rule puts each: the lowest free 256 MiB-aligned range of its
# window, in command-line order.
Accel = namedtuple('Accel', 'id bus memory_size host_bridge port window offset')
SEVERAL = (
    Accel('acc0', 'rp0', 512 * MiB, 'cxl.1', 2, window=0, offset=0),
    Accel('acc1', 'rp1', 256 * MiB, 'cxl.1', 5, window=0, offset=512 * MiB),
    Accel('acc2', 'rp2', 256 * MiB, 'cxl.2', 3, window=1, offset=0),
)
SEVERAL_WINDOWS = (('cxl.1', 4 * GiB), ('cxl.2', 1 * GiB), ('cxl.3', 1 * GiB))
TYPE3_WINDOW = 2
TYPE3_SIZE = 256 * MiB


def several_qemu_args(accel, socks, kernel, initrd, target=X86_64,
                      directory=None):
    """QEMU arguments for the SEVERAL topology on @target's machine, the
    accelerators served at @socks (by id), booting @kernel in report mode
    (@directory: see machine_args())."""
    bridges = [('cxl.1', 12, ''), ('cxl.2', 40, ',hdm_for_passthrough=on'),
               ('cxl.3', 60, '')]
    ports = [(a.bus, a.host_bridge, a.port) for a in SEVERAL] + \
        [('rp3', 'cxl.3', 0)]
    args = machine_args(accel, SEVERAL_WINDOWS, target, directory)
    for hb, bus_nr, extra in bridges:
        args += ['-device', f'pxb-cxl,id={hb},bus=pcie.0,bus_nr={bus_nr}'
                            f'{extra}']
    for slot, (rp, hb, port) in enumerate(ports):
        args += ['-device', f'cxl-rp,id={rp},bus={hb},chassis=0,slot={slot},'
                            f'port={port}']
    args += ['-object', f'memory-backend-ram,id=t3mem,size={TYPE3_SIZE}',
             '-device', 'cxl-type3,id=t3,bus=rp3,volatile-memdev=t3mem']
    for a in SEVERAL:
        args += device_arg(a.id, a.bus, socks[a.id])
    return args + report_boot_args(kernel, initrd, target)


def report_pages(report, prefix='mem'):
    """The pages the guest wrote: [(index, offset, checksum)]."""
    pages = sorted({k.split('.')[1] for k in report
                    if k.startswith(prefix + '.') and k.endswith('.offset')
                    and k.split('.')[1].isdigit()}, key=int)
    return [(p, num(report[f'{prefix}.{p}.offset']),
             num(report[f'{prefix}.{p}.checksum'])) for p in pages]
