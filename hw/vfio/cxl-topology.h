/*
 * vfio-cxl: the CXL topology around a passed-through device
 *
 * What the Rust device needs from QEMU's CXL emulation, which has no Rust
 * bindings: the fixed memory windows, the root port and host bridge above
 * the device, and the host bridge's HDM decoder registers.  Decisions
 * (which window, which decoder values) are made in Rust.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_VFIO_CXL_TOPOLOGY_H
#define HW_VFIO_CXL_TOPOLOGY_H

#include "hw/pci/pci_device.h"
#include "system/reset.h"

#define VFIO_CXL_MAX_WINDOW_TARGETS 16

typedef struct VFIOCXLWindow {
    int index;
    uint64_t base;
    uint64_t size;
    uint64_t granularity;
    unsigned num_targets;
    /* Host bridge ids, owned by the window object. */
    const char *targets[VFIO_CXL_MAX_WINDOW_TARGETS];
} VFIOCXLWindow;

typedef struct VFIOCXLPort {
    /* The pxb-cxl device above the root port, and its qdev id. */
    void *host_bridge;
    const char *host_bridge_id;
    /* Port number of the CXL root port the device sits on. */
    uint8_t port_number;
} VFIOCXLPort;

/*
 * Sizes and offsets of the C structures the Rust device embeds or indexes,
 * so that it can check its bindings against the compiler's layout.
 */
typedef struct VFIOCXLLayout {
    size_t memory_region_size;
    size_t pci_device_size;
    size_t vfio_pci_device_size;
    size_t vfio_user_pci_device_size;
    size_t vbasedev_offset;
    size_t bars_offset;
    size_t vfio_region_size;
} VFIOCXLLayout;

void vfio_cxl_get_layout(VFIOCXLLayout *layout);

/*
 * Fill @windows with at most @max CXL fixed memory windows, sorted by
 * index; return how many there are in all.
 */
int vfio_cxl_get_windows(VFIOCXLWindow *windows, int max);

/*
 * Find the CXL root port and host bridge directly above @pdev.  Fails if
 * @pdev is not on the secondary bus of a cxl-rp under a pxb-cxl.
 */
bool vfio_cxl_find_port(PCIDevice *pdev, VFIOCXLPort *port, Error **errp);

/*
 * Read the dword at byte @offset of the HDM decoder capability of
 * @host_bridge into @value.  Returns false when the host bridge decodes in
 * passthrough mode (it has no such capability) or @offset is outside it.
 */
bool vfio_cxl_host_bridge_read_hdm(void *host_bridge, uint32_t offset,
                                   uint32_t *value);

/*
 * Write @n dwords into the HDM decoder capability of @host_bridge, at byte
 * offsets (from the start of that capability) @offsets.  Returns false,
 * writing nothing, when the host bridge decodes in passthrough mode (a
 * single root port and no HDM decoder capability).
 */
bool vfio_cxl_host_bridge_write_hdm(void *host_bridge, const uint32_t *offsets,
                                    const uint32_t *values, unsigned n);

/*
 * Run @handler at every system reset, after the device tree was reset (and
 * with it the host bridges' HDM registers).  A device realized before
 * machine-init-done would otherwise run its handler before the tree's; its
 * handler is registered at machine-init-done instead.  Returns a token for
 * vfio_cxl_unregister_late_reset().
 */
void *vfio_cxl_register_late_reset(QEMUResetHandler *handler, void *opaque);
void vfio_cxl_unregister_late_reset(void *token);

#endif /* HW_VFIO_CXL_TOPOLOGY_H */
