"""The domain the libvirt test defines: a documented example
(docs/system/devices/vfio-cxl-libvirt-vfio-user.xml for x86_64,
vfio-cxl-libvirt-virt.xml for aarch64) with this machine's paths filled in, so that the test runs what the documentation shows and
there is no second copy to keep in step.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import json
import xml.etree.ElementTree as ET

QEMU_NS = 'http://libvirt.org/schemas/domain/qemu/1.0'


def _one(root, path):
    found = root.findall(path)
    if len(found) != 1:
        raise ValueError(f'the documented domain has {len(found)} <{path}>, '
                         f'expected one')
    return found[0]


def concrete_domain(documented, emulator, kernel, initrd, cmdline, sockets,
                    accel='tcg', tcg_cpu=None):
    """The XML text of @documented (a path) with @emulator, @kernel,
    @initrd and @cmdline in place, and the socket path of each vfio-user
    device taken from @sockets (device id -> path; every device the
    example has must be named, and only those).  With @accel 'tcg', the
    domain type is 'qemu' and the <cpu> element (host-passthrough, which
    needs KVM) is replaced by QEMU's CPU model @tcg_cpu, or dropped
    (QEMU's default model) when that is None."""
    ET.register_namespace('qemu', QEMU_NS)
    root = ET.parse(documented).getroot()
    if accel == 'tcg':
        root.set('type', 'qemu')
        for cpu in root.findall('cpu'):
            root.remove(cpu)
        if tcg_cpu:
            cpu = ET.Element('cpu', mode='custom', match='exact')
            ET.SubElement(cpu, 'model', fallback='forbid').text = tcg_cpu
            # The schema wants <cpu> after <features>.
            root.insert(list(root).index(_one(root, 'features')) + 1, cpu)
    elif accel != 'kvm':
        raise ValueError(f'accelerator {accel!r}: libvirt knows kvm and '
                         f'tcg (qemu)')
    _one(root, 'devices/emulator').text = emulator
    _one(root, 'os/kernel').text = kernel
    _one(root, 'os/initrd').text = initrd
    _one(root, 'os/cmdline').text = cmdline

    placed = set()
    for arg in root.iter(f'{{{QEMU_NS}}}arg'):
        value = arg.get('value', '')
        if not value.startswith('{'):
            continue
        device = json.loads(value)
        if 'socket' not in device:
            continue
        dev_id = device.get('id')
        if dev_id not in sockets:
            raise ValueError(f'no socket given for device {dev_id!r}')
        device['socket']['path'] = sockets[dev_id]
        arg.set('value', json.dumps(device, separators=(',', ':')))
        placed.add(dev_id)
    if placed != set(sockets):
        raise ValueError(f'the documented domain has no vfio-user device '
                         f'{sorted(set(sockets) - placed)}')
    return ET.tostring(root, encoding='unicode')


def name(documented):
    """The domain's name in @documented."""
    return _one(ET.parse(documented).getroot(), 'name').text


def has_nvram(documented):
    """Whether @documented keeps UEFI variables (libvirt then undefines it
    only with --nvram)."""
    return ET.parse(documented).getroot().find('os/nvram') is not None
