"""What booting a Linux guest with vfio-user-cxl needs, shared by the
functional test (x86_64/test_vfio_cxl.py) and the README's demo
(mk/demo.py): the QEMU arguments, the report's format, and the checks of
guest data against device memory."""

import json
import socket

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


def qemu_args(accel, sock, kernel, initrd, hb_hdm=False):
    """QEMU arguments for q35 with one pxb-cxl, one cxl-rp, one 4 GiB CXL
    fixed memory window and vfio-user-cxl at @sock, booting @kernel in
    report mode.  The machine type and the console are the caller's."""
    dev = ('{"driver":"vfio-user-cxl","id":"acc","bus":"rp0",'
           '"socket":{"type":"unix","path":"%s"}}' % sock)
    return [
        '-nodefaults', '-accel', accel, '-m', '512', '-smp', '1',
        '-no-reboot',
        '-M', 'cxl=on',
        '-M', f'cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size={WINDOW_SIZE // GiB}G',
        '-device', 'pxb-cxl,id=cxl.1,bus=pcie.0,bus_nr=12' +
                   (',hdm_for_passthrough=on' if hb_hdm else ''),
        # With its own decoders, root port 2: a target list of 0 cannot
        # pass by accident.
        '-device', 'cxl-rp,id=rp0,bus=cxl.1,chassis=0,slot=0,'
                   f'port={2 if hb_hdm else 0}',
        '-device', dev,
        '-kernel', kernel, '-initrd', initrd,
        '-append', f'console=ttyS0 iomem=relaxed panic=-1 '
                   f'vfio_cxl_run=report '
                   f'vfio_cxl_host={HOST_OFF:#x},{HOST_LEN}',
    ]


def report_pages(report, prefix='mem'):
    """The pages the guest wrote: [(index, offset, checksum)]."""
    pages = sorted({k.split('.')[1] for k in report
                    if k.startswith(prefix + '.') and k.endswith('.offset')
                    and k.split('.')[1].isdigit()}, key=int)
    return [(p, num(report[f'{prefix}.{p}.offset']),
             num(report[f'{prefix}.{p}.checksum'])) for p in pages]
