"""P1 (guest streaming bandwidth) and P2 (register read round trips): boots
of a guest that runs bench/guest/membench.c against guest RAM, the
vfio-cxl window and a cxl-type3 window of the same machine.

Under TCG the guest is Linux (Debian's 6.1 kernel, the benchmark as its
/init); under KVM, which this kind of host's nested KVM offers only to
guests that need no more than long mode, it is a bare-metal multiboot
image whose loops run in ring 3."""

import gzip
import hashlib
import json
import os
import statistics
import subprocess
from collections import namedtuple

from common import MiB, Simulator, device_json, stop_process

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST_SRC = os.path.join(HERE, 'guest')
RAM_BASE = 0x20000000        # guest RAM the guest's OS leaves alone
REGION = 256 * MiB           # RAM region and device memory
GUEST_RAM = '768M'
REGISTER_READS = {'tcg': 20000, 'kvm': 1000}
# cxl-type3 memory is emulated access by access: passes are kept short.
TYPE3_PASS = {'tcg': 4 * MiB, 'kvm': 32 << 10}
# One way of backing the two memories a boot compares.  @huge_tmpfs: the
# device memory is a file on a huge-page tmpfs (else the simulator's
# memfd).  @prealloc_ram: guest RAM is allocated before the guest runs,
# as it is under vfio-pci, whose DMA mapping pins all of it at start-up:
# its first reads then read memory, not the shared zero page, and its
# first writes allocate nothing, as the device memory's.
Setup = namedtuple('Setup', 'label huge_tmpfs prealloc_ram')
COMMON_CFLAGS = ['-O2', '-Wall', '-Wextra', '-Werror']
METAL_CFLAGS = ['-ffreestanding', '-fno-pic', '-no-pie', '-nostdlib',
                '-mno-red-zone', '-mgeneral-regs-only', '-fno-stack-protector',
                '-fcf-protection=none', '-fno-asynchronous-unwind-tables',
                '-static', '-Wl,--build-id=none', '-Wl,--no-warn-rwx-segments']


def _cpio(files):
    """A newc cpio archive of @files: [(name, mode, data, rdev)]."""
    out = b''
    for ino, (name, mode, data, rdev) in enumerate(
            [*files, ('TRAILER!!!', 0, b'', (0, 0))], start=1):
        nb = name.encode() + b'\0'
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, *rdev, len(nb), 0)
        rec = b'070701' + ''.join(f'{v:08X}' for v in fields).encode() + nb
        rec += b'\0' * (-len(rec) % 4) + data + b'\0' * (-len(data) % 4)
        out += rec
    return out


def build_guests(cache):
    """Compiles the two guests into @cache (when their sources changed);
    returns (initramfs for the Linux guest, bare-metal image)."""
    os.makedirs(cache, exist_ok=True)
    srcs = sorted(os.listdir(GUEST_SRC))
    key = hashlib.sha256()
    for name in srcs:
        with open(os.path.join(GUEST_SRC, name), 'rb') as f:
            key.update(name.encode() + f.read())
    key.update(' '.join(COMMON_CFLAGS + METAL_CFLAGS).encode())
    stamp, initrd = os.path.join(cache, 'stamp'), os.path.join(cache, 'initramfs.gz')
    metal = os.path.join(cache, 'metal.bin')
    if os.path.exists(stamp) and open(stamp).read() == key.hexdigest():
        return initrd, metal
    src = lambda *n: [os.path.join(GUEST_SRC, x) for x in n]
    linux_bin = os.path.join(cache, 'linux-bench')
    subprocess.run(['gcc', *COMMON_CFLAGS, '-static', '-o', linux_bin,
                    *src('linux.c', 'membench.c')], check=True)
    elf = os.path.join(cache, 'metal.elf')
    subprocess.run(['gcc', *COMMON_CFLAGS, *METAL_CFLAGS,
                    '-Wl,-T,' + os.path.join(GUEST_SRC, 'metal.ld'), '-o', elf,
                    *src('metal-entry.S', 'metal.c', 'membench.c')], check=True)
    subprocess.run(['objcopy', '-O', 'binary', elf, metal], check=True)
    with open(linux_bin, 'rb') as f:
        init = f.read()
    archive = _cpio([('dev', 0o040755, b'', (0, 0)),
                     ('proc', 0o040755, b'', (0, 0)),
                     ('dev/console', 0o020600, b'', (5, 1)),
                     ('init', 0o100755, init, (0, 0))])
    with open(initrd, 'wb') as f:
        f.write(gzip.compress(archive, mtime=0))
    with open(stamp, 'w') as f:
        f.write(key.hexdigest())
    return initrd, metal


class Guest:
    """How to boot one kind of guest: accelerator, kernel, command line."""

    def __init__(self, accel, kernel, initrd=None):
        self.accel, self.kernel, self.initrd = accel, kernel, initrd
        self.windows = None     # (vfio-cxl, cxl-type3) window bases

    def qemu_args(self, sock, append, serial='stdio', prealloc_ram=False):
        args = ['-nodefaults', '-display', 'none', '-no-reboot',
                '-m', GUEST_RAM, '-smp', '1', '-serial', serial,
                '-machine', 'q35,cxl=on',
                '-M', 'cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G,'
                      'cxl-fmw.1.targets.0=cxl.2,cxl-fmw.1.size=4G',
                '-device', 'pxb-cxl,id=cxl.1,bus=pcie.0,bus_nr=12',
                '-device', 'cxl-rp,id=rp0,bus=cxl.1,chassis=0,slot=0,port=0',
                '-device', 'pxb-cxl,id=cxl.2,bus=pcie.0,bus_nr=32',
                '-device', 'cxl-rp,id=rp1,bus=cxl.2,chassis=0,slot=1,port=0',
                '-object', f'memory-backend-ram,id=t3mem,size={REGION // MiB}M',
                '-device', 'cxl-type3,bus=rp1,volatile-memdev=t3mem,id=t3',
                '-device', device_json('vfio-user-cxl', 'rp0', sock),
                '-kernel', self.kernel]
        if prealloc_ram:
            args += ['-object', f'memory-backend-ram,id=ram,size={GUEST_RAM},prealloc=on',
                     '-machine', 'memory-backend=ram']
        if self.accel == 'kvm':
            args += ['-accel', 'kvm', '-cpu', 'host',
                     '-device', 'isa-debug-exit,iobase=0xf4,iosize=4']
        else:
            args += ['-accel', 'tcg']
        if self.initrd:
            args += ['-initrd', self.initrd]
            append = (f'console=ttyS0 quiet iomem=relaxed panic=-1 '
                      f'memmap={REGION // MiB}M${RAM_BASE:#x} {append}')
        return args + ['-append', append]


def windows(qemu, guest, sock):
    """(vfio-cxl window, cxl-type3 window) base addresses, from the flat
    view of a paused QEMU with the same arguments."""
    cmds = ['{"execute":"qmp_capabilities"}',
            '{"execute":"human-monitor-command",'
            '"arguments":{"command-line":"info mtree -f"}}',
            '{"execute":"quit"}']
    r = subprocess.run([qemu, *guest.qemu_args(sock, '', serial='none'), '-S',
                        '-qmp', 'stdio'], input='\n'.join(cmds) + '\n',
                       capture_output=True, text=True, timeout=60)
    mtree = next((json.loads(l)['return'] for l in r.stdout.splitlines()
                  if l.startswith('{"return": "')), None)
    if mtree is None:
        raise RuntimeError(f'QEMU did not show its memory tree: {r.stderr.strip()}')
    view = next((v for v in mtree.split('FlatView #') if 'vfio-cxl-memory' in v), '')
    bases, device = set(), None
    for line in view.splitlines():
        if 'cxl-fixed-memory-region' in line or 'vfio-cxl-memory' in line:
            start = int(line.split('-')[0], 16)
            offset = int(line.split('@')[1].split()[0], 16) if '@' in line else 0
            if 'vfio-cxl-memory' in line:
                device = start
            else:
                bases.add(start - offset)
    if device is None or len(bases | {device}) != 2:
        raise RuntimeError(f'unexpected CXL windows in the flat view:\n{view}')
    return device, (bases - {device}).pop()


def boot(qemu, sim_bin, tmp, guest, index, setup, reps):
    """One boot with the memories as @setup says: returns {what: [bytes or
    reads per cycle, ...]} from the guest's report."""
    tag = f'p1-{guest.accel}-{index}' + ('-huge' if setup.huge_tmpfs else '')
    sim = Simulator(sim_bin, tmp, tag, huge_tmpfs=setup.huge_tmpfs)
    proc = None
    try:
        if guest.windows is None:
            guest.windows = windows(qemu, guest, sim.sock)
        cxl, t3 = guest.windows
        append = (f'vb_ram={RAM_BASE:#x} vb_ram_size={REGION:#x} '
                  f'vb_cxl={cxl:#x} vb_cxl_size={REGION:#x} '
                  f'vb_t3={t3:#x} vb_t3_size={TYPE3_PASS[guest.accel]:#x} '
                  f'vb_t3_window={REGION:#x} vb_reps={reps} '
                  f'vb_regs={REGISTER_READS[guest.accel]} vb_rot={index}')
        args = guest.qemu_args(sim.sock, append, prealloc_ram=setup.prealloc_ram)
        proc = subprocess.Popen([qemu, *args],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc is not None:
            stop_process(proc)
        sim.stop()
    result = {}
    lines = [l.split() for l in out.splitlines() if l.startswith('VB ')]
    if ['VB', 'done'] not in lines:
        raise RuntimeError(f'{guest.accel} guest did not finish:\n{out[-3000:]}')
    for words in lines:
        if len(words) == 4:
            result.setdefault(words[1], []).append(int(words[2]) / int(words[3]))
    return result


def probe_kvm(qemu, metal):
    """Whether a KVM guest runs here: the bare-metal guest, asked for
    nothing, must report back.  Returns (True, '') or (False, why)."""
    if not os.access('/dev/kvm', os.R_OK | os.W_OK):
        return False, 'no usable /dev/kvm'
    try:
        r = subprocess.run([qemu, '-nodefaults', '-display', 'none', '-no-reboot',
                            '-accel', 'kvm', '-cpu', 'host', '-m', '64M',
                            '-device', 'isa-debug-exit,iobase=0xf4,iosize=4',
                            '-serial', 'stdio', '-kernel', metal,
                            '-append', 'vb_reps=0'],
                           capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False, 'the KVM probe guest did not finish in 60 s'
    if 'VB done' in r.stdout:
        return True, ''
    return False, (r.stderr.strip() or r.stdout.strip() or 'no output')[-200:]


def measure(qemu, sim_bin, tmp, guest, boots, setup, reps=5, first_index=0):
    """@boots boots (numbered from @first_index, which rotates the order of
    the regions); per boot the steady-state figures are the median of
    @reps passes.  Returns {what: [per-boot value]}."""
    per_boot = {}
    for i in range(first_index, first_index + boots):
        for what, values in boot(qemu, sim_bin, tmp, guest, i, setup, reps).items():
            per_boot.setdefault(what, []).append(statistics.median(values))
    return per_boot
