// SPDX-License-Identifier: GPL-2.0-or-later

//! vfio-cxl: CXL Type-2 accelerator passthrough.
//!
//! Two QOM types share one implementation: `vfio-cxl` (child of `vfio-pci`,
//! kernel VFIO) and `vfio-user-cxl` (child of `vfio-user-pci`, a device
//! served over a vfio-user socket).

#![deny(clippy::undocumented_unsafe_blocks)]

mod bindings;
mod device;
mod host;
mod memory;
mod passthrough;
mod pci_class;
mod topology;
mod trace_events;

pub const TYPE_VFIO_CXL: &::std::ffi::CStr = c"vfio-cxl";
pub const TYPE_VFIO_USER_CXL: &::std::ffi::CStr = c"vfio-user-cxl";
