/*
 * vfio-user PCI device instance
 *
 * Exposed in a header so that subclasses (the vfio-user-cxl Rust device)
 * can embed it as their parent and size their instances from it.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_VFIO_USER_PCI_H
#define HW_VFIO_USER_PCI_H

#include "hw/vfio/pci.h"
#include "qapi/qapi-types-sockets.h"

#define TYPE_VFIO_USER_PCI "vfio-user-pci"
OBJECT_DECLARE_SIMPLE_TYPE(VFIOUserPCIDevice, VFIO_USER_PCI)

struct VFIOUserPCIDevice {
    VFIOPCIDevice parent_obj;

    SocketAddress *socket;
    bool send_queued;   /* queue every send */
    uint32_t wait_time; /* reply timeout, in ms */
    bool no_post;       /* region writes wait for the reply */
};

#endif /* HW_VFIO_USER_PCI_H */
