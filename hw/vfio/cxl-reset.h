/*
 * vfio-cxl: reset the host device and report the outcome
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_VFIO_CXL_RESET_H
#define HW_VFIO_CXL_RESET_H

#include "hw/vfio/pci.h"

/*
 * Reset the host device behind @vdev and return whether the host reset
 * worked: vfio-pci's own reset paths only log a failure, and a CXL device
 * must not hand its memory back to the guest after a failed reset.
 * Kernel VFIO uses VFIO_DEVICE_RESET, vfio-user the DEVICE_RESET message.
 *
 * With @quiesce, vfio-pci's pre- and post-reset steps run around it
 * (interrupts, I/O, memory and bus mastering off; the host's BARs cleared;
 * INTx back on), as for a system or bus reset.  Without, the function is
 * reset as the host resets it for a guest FLR of a plain vfio-pci device:
 * the guest quiesced the function and restores its configuration, and the
 * host keeps or restores the rest (the kernel saves and restores the
 * function's config space around the reset).  A guest FLR and a CXL Reset
 * go without.
 */
bool vfio_cxl_reset_host(VFIOPCIDevice *vdev, bool quiesce, Error **errp);

#endif /* HW_VFIO_CXL_RESET_H */
