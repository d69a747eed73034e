/*
 * vfio-cxl: whether the host side of a passed-through device is still there
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_VFIO_CXL_HOST_H
#define HW_VFIO_CXL_HOST_H

#include "hw/vfio/pci.h"

/*
 * False once the vfio-user server of @vdev closed the connection (or the
 * connection failed); always true for a kernel VFIO device.
 */
bool vfio_cxl_host_connected(VFIOPCIDevice *vdev);

#endif /* HW_VFIO_CXL_HOST_H */
