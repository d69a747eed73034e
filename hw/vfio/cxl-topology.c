/*
 * vfio-cxl: the CXL topology around a passed-through device
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "hw/cxl/cxl.h"
#include "hw/cxl/cxl_host.h"
#include "hw/pci/pci_bridge.h"
#include "hw/pci/pcie_port.h"
#include "hw/vfio/pci.h"
#include "hw/vfio/vfio-region.h"
#include "hw/vfio-user/pci.h"
#include "hw/vfio/cxl-topology.h"
#include "hw/qdev-core.h"
#include "qemu/notify.h"
#include "system/system.h"

void vfio_cxl_get_layout(VFIOCXLLayout *layout)
{
    layout->memory_region_size = sizeof(MemoryRegion);
    layout->pci_device_size = sizeof(PCIDevice);
    layout->vfio_pci_device_size = sizeof(VFIOPCIDevice);
    layout->vfio_user_pci_device_size = sizeof(VFIOUserPCIDevice);
    layout->vbasedev_offset = offsetof(VFIOPCIDevice, vbasedev);
    layout->bars_offset = offsetof(VFIOPCIDevice, bars);
    layout->vfio_region_size = sizeof(VFIORegion);
}

int vfio_cxl_get_windows(VFIOCXLWindow *windows, int max)
{
    g_autoptr(GSList) all = cxl_fmws_get_all_sorted();
    int count = 0;

    for (GSList *l = all; l; l = l->next, count++) {
        CXLFixedWindow *fw = CXL_FMW(l->data);
        VFIOCXLWindow *w;

        if (count >= max) {
            continue;
        }
        w = &windows[count];
        w->index = fw->index;
        w->base = fw->base;
        w->size = fw->size;
        w->granularity = cxl_decode_ig(fw->enc_int_gran);
        w->num_targets = MIN(fw->num_targets, VFIO_CXL_MAX_WINDOW_TARGETS);
        for (unsigned i = 0; i < w->num_targets; i++) {
            w->targets[i] = fw->targets[i];
        }
    }
    return count;
}

bool vfio_cxl_find_port(PCIDevice *pdev, VFIOCXLPort *port, Error **errp)
{
    PCIBus *bus = pci_get_bus(pdev);
    PCIDevice *rp = bus->parent_dev;
    PCIDevice *hb;

    if (!rp || !object_dynamic_cast(OBJECT(rp), "cxl-rp")) {
        error_setg(errp, "must be plugged into a CXL root port (cxl-rp), "
                   "not into bus '%s'", BUS(bus)->name);
        return false;
    }
    hb = pci_get_bus(rp)->parent_dev;
    if (!hb || !object_dynamic_cast(OBJECT(hb), TYPE_PXB_CXL_DEV)) {
        const char *rp_name = DEVICE(rp)->id ?: object_get_typename(OBJECT(rp));

        error_setg(errp, "root port '%s' is not under a CXL host bridge "
                   "(pxb-cxl)", rp_name);
        return false;
    }
    if (!DEVICE(hb)->id) {
        error_setg(errp, "the CXL host bridge above this device has no id; "
                   "CXL fixed memory windows name their targets by id");
        return false;
    }
    port->host_bridge = hb;
    port->host_bridge_id = DEVICE(hb)->id;
    port->port_number = PCIE_PORT(rp)->port;
    return true;
}

typedef struct VFIOCXLLateReset {
    Notifier machine_done;
    QEMUResetHandler *handler;
    void *opaque;
    bool pending;
} VFIOCXLLateReset;

static void vfio_cxl_late_reset_machine_done(Notifier *notifier, void *data)
{
    VFIOCXLLateReset *r = container_of(notifier, VFIOCXLLateReset,
                                       machine_done);

    r->pending = false;
    qemu_register_reset(r->handler, r->opaque);
}

void *vfio_cxl_register_late_reset(QEMUResetHandler *handler, void *opaque)
{
    VFIOCXLLateReset *r = g_new0(VFIOCXLLateReset, 1);

    r->handler = handler;
    r->opaque = opaque;
    if (phase_check(PHASE_MACHINE_READY)) {
        qemu_register_reset(handler, opaque);
    } else {
        r->pending = true;
        r->machine_done.notify = vfio_cxl_late_reset_machine_done;
        qemu_add_machine_init_done_notifier(&r->machine_done);
    }
    return r;
}

void vfio_cxl_unregister_late_reset(void *token)
{
    VFIOCXLLateReset *r = token;

    if (r->pending) {
        qemu_remove_machine_init_done_notifier(&r->machine_done);
    } else {
        qemu_unregister_reset(r->handler, r->opaque);
    }
    g_free(r);
}

bool vfio_cxl_host_bridge_read_hdm(void *host_bridge, uint32_t offset,
                                   uint32_t *value)
{
    CXLHost *host = PXB_CXL_DEV(host_bridge)->cxl_host_bridge;
    uint32_t at = CXL_HDM_REGISTERS_OFFSET + offset;

    if (!host || host->passthrough || at % 4 ||
        at >= CXL2_COMPONENT_CM_REGION_SIZE) {
        return false;
    }
    *value = host->cxl_cstate.crb.cache_mem_registers[at / 4];
    return true;
}

bool vfio_cxl_host_bridge_write_hdm(void *host_bridge, const uint32_t *offsets,
                                    const uint32_t *values, unsigned n)
{
    CXLHost *host = PXB_CXL_DEV(host_bridge)->cxl_host_bridge;
    uint32_t *regs;

    if (!host || host->passthrough) {
        return false;
    }
    regs = host->cxl_cstate.crb.cache_mem_registers;
    for (unsigned i = 0; i < n; i++) {
        uint32_t offset = CXL_HDM_REGISTERS_OFFSET + offsets[i];

        assert(offset % 4 == 0 && offset < CXL2_COMPONENT_CM_REGION_SIZE);
        regs[offset / 4] = values[i];
    }
    return true;
}
