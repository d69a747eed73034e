/*
 * vfio-cxl: reset the host device and report the outcome
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_VFIO_CXL_RESET_H
#define HW_VFIO_CXL_RESET_H

#include "hw/vfio/pci.h"

/*
 * Reset the host device behind @vdev the way vfio-pci does (its pre- and
 * post-reset steps around a device reset), but return whether the host
 * reset worked: vfio-pci's own reset paths only log a failure, and a CXL
 * device must not hand its memory back to the guest after a failed reset.
 * Kernel VFIO uses VFIO_DEVICE_RESET, vfio-user the DEVICE_RESET message.
 * With @keep_command the PCI Command register the guest set is written
 * back afterwards: a CXL Reset leaves PCIe configuration alone, while the
 * pre-reset step clears it.
 */
bool vfio_cxl_reset_host(VFIOPCIDevice *vdev, bool keep_command, Error **errp);

#endif /* HW_VFIO_CXL_RESET_H */
