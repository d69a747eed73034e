/*
 * vfio-cxl: reset the host device and report the outcome
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include "qapi/error.h"
#include "hw/vfio/pci.h"
#include "hw/vfio-user/proxy.h"
#include "hw/vfio/cxl-reset.h"

static bool vfio_cxl_reset_user(VFIOUserProxy *proxy, Error **errp)
{
    VFIOUserHdr hdr;

    vfio_user_request_msg(&hdr, VFIO_USER_DEVICE_RESET, sizeof(hdr), 0);
    if (!vfio_user_send_wait(proxy, &hdr, NULL, 0, errp)) {
        return false;
    }
    if (hdr.flags & VFIO_USER_ERROR) {
        error_setg_errno(errp, hdr.error_reply,
                         "the vfio-user server failed the device reset");
        return false;
    }
    return true;
}

bool vfio_cxl_reset_host(VFIOPCIDevice *vdev, bool quiesce, Error **errp)
{
    VFIODevice *vbasedev = &vdev->vbasedev;
    bool ok = true;

    if (quiesce) {
        vfio_pci_pre_reset(vdev);
    }
    if (!vbasedev->reset_works) {
        error_setg(errp, "the host device does not support reset");
        ok = false;
    } else if (vbasedev->proxy) {
        ok = vfio_cxl_reset_user(vbasedev->proxy, errp);
    } else if (ioctl(vbasedev->fd, VFIO_DEVICE_RESET)) {
        error_setg_errno(errp, errno, "VFIO_DEVICE_RESET failed");
        ok = false;
    }
    if (quiesce) {
        vfio_pci_post_reset(vdev);
    }
    return ok;
}
