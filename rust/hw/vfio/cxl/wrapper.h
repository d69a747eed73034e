/* SPDX-License-Identifier: GPL-2.0-or-later */

/*
 * Input to bindgen for the vfio-cxl device crate: the VFIO PCI device
 * structures, which live under hw/ rather than include/ and therefore are
 * not part of the bindings that QEMU's own Rust crates generate.
 */

#ifndef __CLANG_STDATOMIC_H
#define __CLANG_STDATOMIC_H
/*
 * bindgen's libclang may lack stdatomic.h; QEMU code included here uses
 * none of its symbols, so a stand-in type is enough.
 */
typedef enum memory_order {
  memory_order_relaxed,
  memory_order_consume,
  memory_order_acquire,
  memory_order_release,
  memory_order_acq_rel,
  memory_order_seq_cst,
} memory_order;
#endif /* __CLANG_STDATOMIC_H */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "hw/pci/pci_device.h"
#include "hw/vfio/pci.h"
#include "hw/vfio-user/pci.h"
#include "hw/vfio/vfio-helpers.h"
#include "hw/vfio/vfio-region.h"
#include "hw/vfio/cxl-topology.h"
#include "hw/vfio/cxl-reset.h"
#include "hw/vfio/cxl-host.h"
#include "migration/blocker.h"
#include "system/memory.h"
#include "system/address-spaces.h"
#include "system/reset.h"
