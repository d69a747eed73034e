#!/usr/bin/env python3
"""Lay the vfio-cxl overlay into the QEMU source tree.

Two mechanisms, both visible and kept here:

* Every file of ours under OVERLAY_ROOTS is symlinked into QEMU's tree at
  the same relative path, so editing it and re-running the build picks the
  change up.  A file of ours never replaces an upstream file.
* The few upstream files that must change (registration in meson and
  Kconfig, moving VFIOUserPCIDevice into a header) are rewritten from a
  pristine copy by the small edits in EDITS, so re-running is idempotent.

Files are only written when their content changes, to keep rebuilds
incremental.
"""

import os
import re
import sys

OVERLAY_ROOTS = ["rust/hw/vfio", "hw", "tests/qtest", "tests/functional", "docs"]
MANIFEST = ".vfio-cxl-overlay-links"
PRISTINE = ".vfio-cxl-pristine"


def append_line(line):
    def edit(text):
        return text if line in text.splitlines() else text.rstrip("\n") + "\n" + line + "\n"
    return edit


def vfio_user_pci_struct_to_header(text):
    # The type macro, its declaration and the struct now come from
    # hw/vfio-user/pci.h (ours); pci.c includes it instead.
    pattern = re.compile(
        r'#define TYPE_VFIO_USER_PCI "vfio-user-pci"\n'
        r"OBJECT_DECLARE_SIMPLE_TYPE\(VFIOUserPCIDevice, VFIO_USER_PCI\)\n\n"
        r"struct VFIOUserPCIDevice \{.*?\n\};\n",
        re.S)
    new, count = pattern.subn('#include "hw/vfio-user/pci.h"\n', text)
    if count != 1:
        raise SystemExit("overlay: hw/vfio-user/pci.c no longer has the expected "
                         "VFIOUserPCIDevice definition; update mk/overlay.py")
    return new


def replace_all(old, new, count):
    def edit(text):
        if text.count(old) != count:
            raise SystemExit(f"overlay: expected {count} of {old!r}; update mk/overlay.py")
        return text.replace(old, new)
    return edit


def replace_after(anchor, old, new):
    """Replace the first `old` after the one `anchor`."""
    def edit(text):
        if text.count(anchor) != 1:
            raise SystemExit(f"overlay: expected exactly one {anchor!r}; update mk/overlay.py")
        at = text.index(anchor)
        end = text.find(old, at)
        if end < 0:
            raise SystemExit(f"overlay: no {old!r} after {anchor!r}; update mk/overlay.py")
        return text[:end] + new + text[end + len(old):]
    return edit


def replace_once(old, new):
    return replace_all(old, new, 1)


EDITS = {
    # cargo's tools reach the device crate (and the model it uses) from
    # QEMU's rust/ workspace, as they reach pl011.
    "rust/Cargo.toml": [replace_once(
        '    "hw/char/pl011",\n',
        '    "hw/char/pl011",\n    "hw/vfio/cxl",\n    "hw/vfio/cxl-model",\n')],
    "rust/hw/meson.build": [append_line("subdir('vfio')")],
    "rust/hw/Kconfig": [append_line("source vfio/Kconfig")],
    "hw/vfio-user/pci.c": [vfio_user_pci_struct_to_header],
    "hw/vfio/meson.build": [append_line(
        "system_ss.add(when: 'CONFIG_VFIO_CXL', if_true: files('cxl-topology.c', 'cxl-reset.c', 'cxl-host.c'))")],
    "meson.build": [replace_once(
        "trace_events_subdirs = [\n",
        "trace_events_subdirs = [\n  'rust/hw/vfio/cxl',\n")],
    "docs/devel/index-internals.rst": [replace_once(
        "   vfio-iommufd\n",
        "   vfio-cxl-uapi\n   vfio-iommufd\n")],
    "docs/system/device-emulation.rst": [replace_once(
        "   devices/vfio-user.rst\n",
        "   devices/vfio-cxl.rst\n   devices/vfio-user.rst\n")],
    "tests/functional/x86_64/meson.build": [replace_once(
        "  'vfio_user_client',\n",
        "  'vfio_user_client',\n  'vfio_cxl',\n")],
    # Its guests boot under TCG with UEFI firmware, nine of them: longer
    # than meson's default of 90 s for a functional test.
    "tests/functional/aarch64/meson.build": [replace_once(
        "  'virt' : 360,\n",
        "  'vfio_cxl' : 600,\n  'virt' : 360,\n"), replace_once(
        "  'tuxrun',\n",
        "  'tuxrun',\n  'vfio_cxl',\n")],
    "tests/qtest/meson.build": [replace_once(
        "qtests_x86_64 = qtests_i386\n",
        "qtests_x86_64 = qtests_i386 + \\\n"
        "  (config_all_devices.has_key('CONFIG_VFIO_CXL') ? ['vfio-cxl-test'] : [])\n"),
        replace_after(
            "qtests_aarch64 = ",
            "  qtests_cxl +",
            "  qtests_cxl + \\\n"
            "  (config_all_devices.has_key('CONFIG_VFIO_CXL') ? ['vfio-cxl-test'] : []) +")],
}


# Fixes to QEMU's own vfio-user and vfio code that the hostile-host test
# (contrib/vfio-user-cxl-sim/tests/hostile.rs) found: each is one small
# change an upstream maintainer could take on its own, with its subject and
# body here (docs/system/devices/vfio-cxl.rst lists them).
FIXES = [
    ("vfio-user: do not set an error twice when a header read fails",
     "qio_channel_readv_full() has set errp when it fails; setting it again "
     "trips the assertion in error_setv() on the iothread when the server "
     "resets the connection with a request outstanding.  Prepend the "
     "context instead.",
     {"hw/vfio-user/proxy.c": [replace_once(
         '        error_setg_errno(errp, errno, "failed to read header");\n',
         '        error_prepend(errp, "failed to read header: ");\n')]}),
    ("vfio/pci: do not remove BAR subregions that were never added",
     "When reading a BAR from config space fails, vfio_bar_register() "
     "creates no bar->mr; the realize error path then passed NULL to "
     "memory_region_del_subregion().  Check what registration created.",
     {"hw/vfio/pci.c": [replace_once(
         "        if (bar->region.size) {\n"
         "            memory_region_del_subregion(bar->mr, bar->region.mem);",
         "        if (bar->region.size && bar->mr) {\n"
         "            memory_region_del_subregion(bar->mr, bar->region.mem);")]}),
    ("vfio-user: a server that went away needs no DMA mapping changes",
     "Once the connection is gone every DMA map or unmap fails, and the "
     "memory listener treats a failed map after initialization as fatal "
     "(hw_error at the next machine reset).  A server that is gone does "
     "no DMA: let mapping changes for it succeed.",
     {"hw/vfio-user/container.c": [
         replace_once('#include "qapi/error.h"\n',
                      '#include "qapi/error.h"\n#include "qemu/lockable.h"\n'),
         replace_once(
             "static int vfio_user_dma_unmap(",
             "static bool vfio_user_server_gone(VFIOUserContainer *container)\n"
             "{\n"
             "    QEMU_LOCK_GUARD(&container->proxy->lock);\n"
             "    return container->proxy->state != VFIO_PROXY_CONNECTED;\n"
             "}\n\n"
             "static int vfio_user_dma_unmap("),
         replace_once(
             "    VFIOUserDMAUnmap *msgp = g_malloc(sizeof(*msgp));\n",
             "    VFIOUserDMAUnmap *msgp;\n\n"
             "    if (vfio_user_server_gone(container)) {\n"
             "        return 0;\n"
             "    }\n"
             "    msgp = g_malloc(sizeof(*msgp));\n"),
         replace_once(
             "    VFIOUserFDs *fds = NULL;\n"
             "    VFIOUserDMAMap *msgp = g_malloc0(sizeof(*msgp));\n",
             "    VFIOUserFDs *fds = NULL;\n"
             "    VFIOUserDMAMap *msgp;\n\n"
             "    if (vfio_user_server_gone(container)) {\n"
             "        return 0;\n"
             "    }\n"
             "    msgp = g_malloc0(sizeof(*msgp));\n")]}),
    ("vfio-user: a failed write means the server is gone",
     "When writing a message fails (the server hung up), the proxy shuts "
     "the socket down and stops polling it, but stays in the connected "
     "state: the receive path, which would have seen the hang-up and "
     "marked the proxy in error, no longer runs.  Every later request then "
     "still goes to the socket, and a DMA map for a memory layout change "
     "(at the next machine reset) fails and stops the machine with "
     "hw_error.  Whether the read or the write side saw the hang-up first "
     "was a race.  Mark the proxy in error on a failed write too.",
     {"hw/vfio-user/proxy.c": [replace_once(
         "        vfio_user_set_error(msg->hdr, EIO);\n"
         "        vfio_user_shutdown(proxy);\n",
         "        vfio_user_set_error(msg->hdr, EIO);\n"
         "        vfio_user_shutdown(proxy);\n"
         "        proxy->state = VFIO_PROXY_ERROR;\n")]}),
    ("hw/cxl: let the memory core split 8-byte CXL.cachemem accesses",
     "The CXL.cachemem register handlers implement 4-byte accesses only, "
     "yet declared 8-byte ones implemented: an 8-byte read returned 0 and "
     "an 8-byte write was dropped.  Linux 6.1 reads a host bridge's HDM "
     "decoders 8 bytes at a time and then finds committed decoders of size "
     "0.  Declare 4 bytes implemented, so that 8-byte accesses (which the "
     "specification allows) arrive as two.",
     {"hw/cxl/cxl-component-utils.c": [replace_after(
         "static const MemoryRegionOps cache_mem_ops = {",
         "    .impl = {\n"
         "        .min_access_size = 4,\n"
         "        .max_access_size = 8,\n",
         "    .impl = {\n"
         "        .min_access_size = 4,\n"
         "        .max_access_size = 4,\n")]}),
    ("pxb: keep the swizzled INTx pin in range",
     "pxb_map_irq_fn() cancels the expander's slot by subtracting it from "
     "the pin, which goes negative for a pxb in slot 1 or above; the "
     "chipset's map_irq then indexes its routing table with it (found by "
     "UBSan when a guest toggles INTx Disable on a device below a "
     "pxb-cxl).  Subtract modulo the pin count, as pci_swizzle() adds.",
     {"hw/pci-bridge/pci_expander_bridge.c": [replace_once(
         "    return pin - PCI_SLOT(pxb->devfn);\n",
         "    return (pin + PCI_NUM_PINS - PCI_SLOT(pxb->devfn) % PCI_NUM_PINS) %\n"
         "           PCI_NUM_PINS;\n")]}),
    ("vfio-user: a timed-out request may no longer be queued",
     "When a wait for a reply times out, the request is taken off the "
     "pending (or outgoing) queue, but the receive path may already have "
     "taken it off to read its reply (the server then hung up mid-reply): "
     "removing it again corrupted the queue, and a partial receive kept "
     "pointing at the freed message.  Take it off only if it is still "
     "queued, and drop a partial receive into it.",
     {"hw/vfio-user/proxy.c": [
         replace_once(
             "static void vfio_user_recycle(VFIOUserProxy *proxy, VFIOUserMsg *msg)\n{",
             "/*\n"
             " * Take @msg, whose wait timed out, off the queue it is on, if it still\n"
             " * is: the receive path takes a request off when its reply arrives.\n"
             " */\n"
             "static void vfio_user_dequeue(VFIOUserProxy *proxy, VFIOUserMsg *msg)\n"
             "{\n"
             "    VFIOUserMsgQ *list = msg->pending ? &proxy->pending : &proxy->outgoing;\n"
             "    VFIOUserMsg *m;\n"
             "\n"
             "    if (proxy->part_recv == msg) {\n"
             "        proxy->part_recv = NULL;\n"
             "    }\n"
             "    QTAILQ_FOREACH(m, list, next) {\n"
             "        if (m == msg) {\n"
             "            QTAILQ_REMOVE(list, msg, next);\n"
             "            return;\n"
             "        }\n"
             "    }\n"
             "}\n"
             "\n"
             "static void vfio_user_recycle(VFIOUserProxy *proxy, VFIOUserMsg *msg)\n{"),
         replace_all(
             "                VFIOUserMsgQ *list;\n\n"
             "                list = msg->pending ? &proxy->pending : &proxy->outgoing;\n"
             "                QTAILQ_REMOVE(list, msg, next);\n",
             "                vfio_user_dequeue(proxy, msg);\n", 2)]}),
    ("vfio-user: leave putting the device to finalize",
     "The realize error path called vfio_pci_put_device(), which frees the "
     "regions' memory regions while they are still QOM children of the "
     "device; finalize then deleted them again (and put the device a "
     "second time).  vfio-pci puts its device in finalize only: do the "
     "same.",
     {"hw/vfio-user/pci.c": [replace_once(
         "    error_prepend(errp, VFIO_MSG_PREFIX, vdev->vbasedev.name);\n"
         "    vfio_pci_put_device(vdev);\n",
         "    error_prepend(errp, VFIO_MSG_PREFIX, vdev->vbasedev.name);\n")]}),
]


def write_if_changed(path, text):
    try:
        with open(path) as f:
            if f.read() == text:
                return False
    except FileNotFoundError:
        pass
    with open(path, "w") as f:
        f.write(text)
    return True


def overlay_files(project):
    """The paths, relative to the project, of every file of ours that goes
    into QEMU's tree (mk/patches.py places each in one patch)."""
    files = []
    for root in OVERLAY_ROOTS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(project, root)):
            dirnames[:] = [d for d in dirnames if d not in ("target", "fuzz", "__pycache__")]
            files.extend(os.path.relpath(os.path.join(dirpath, name), project)
                         for name in filenames)
    return sorted(files)


def link_overlay(project, qemu):
    old = set()
    manifest = os.path.join(qemu, MANIFEST)
    if os.path.exists(manifest):
        with open(manifest) as f:
            old = set(f.read().split())
    new = set()
    for rel in overlay_files(project):
        src = os.path.join(project, rel)
        dst = os.path.join(qemu, rel)
        if os.path.lexists(dst) and not os.path.islink(dst):
            raise SystemExit(f"overlay: {rel} exists upstream; an overlay "
                             "file must not replace an upstream file")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not (os.path.islink(dst) and os.readlink(dst) == src):
            if os.path.lexists(dst):
                os.unlink(dst)
            os.symlink(src, dst)
        new.add(rel)
    for rel in old - new:
        dst = os.path.join(qemu, rel)
        if os.path.islink(dst):
            os.unlink(dst)
    write_if_changed(manifest, "\n".join(sorted(new)) + "\n")
    return len(new)


def all_edits():
    edits = {rel: list(e) for rel, e in EDITS.items()}
    for _subject, _body, files in FIXES:
        for rel, e in files.items():
            edits.setdefault(rel, []).extend(e)
    return edits


def edited(text, edits):
    """`text` with `edits` applied in order (the overlay and the patch
    series apply them alike)."""
    for edit in edits:
        text = edit(text)
    return text


def apply_edits(qemu):
    edits_by_file = all_edits()
    for rel, edits in edits_by_file.items():
        path = os.path.join(qemu, rel)
        pristine = os.path.join(qemu, PRISTINE, rel)
        if not os.path.exists(pristine):
            os.makedirs(os.path.dirname(pristine), exist_ok=True)
            with open(path) as f, open(pristine, "w") as p:
                p.write(f.read())
        with open(pristine) as f:
            write_if_changed(path, edited(f.read(), edits))
    return len(edits_by_file)


def main():
    project, qemu = sys.argv[1], sys.argv[2]
    links = link_overlay(project, qemu)
    edits = apply_edits(qemu)
    print(f"overlay: {links} files linked, {edits} upstream files edited "
          f"({len(FIXES)} fixes to QEMU's code)")


if __name__ == "__main__":
    main()
