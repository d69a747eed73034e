/*
 * vfio-cxl: whether the host side of a passed-through device is still there
 *
 * QEMU's vfio-user client notices a closed connection on its iothread and
 * only reports it; the device polls this to hide the device memory and say
 * why, instead of failing every later request with an unrelated errno.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/lockable.h"
#include "hw/vfio/cxl-host.h"
#include "hw/vfio-user/proxy.h"

bool vfio_cxl_host_connected(VFIOPCIDevice *vdev)
{
    VFIOUserProxy *proxy = vdev->vbasedev.proxy;

    if (!proxy) {
        return true;
    }
    QEMU_LOCK_GUARD(&proxy->lock);
    return proxy->state == VFIO_PROXY_CONNECTED;
}
