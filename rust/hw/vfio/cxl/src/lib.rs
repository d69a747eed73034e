// SPDX-License-Identifier: GPL-2.0-or-later

//! vfio-cxl: CXL Type-2 accelerator passthrough.
//!
//! Two QOM types share one implementation: `vfio-cxl` (child of `vfio-pci`,
//! kernel VFIO) and `vfio-user-cxl` (child of `vfio-user-pci`, a device
//! served over a vfio-user socket).  The QEMU-independent core is
//! `cxl_model::passthrough`; this crate is its QEMU glue:
//!
//! - `device`: the two QOM types and their hooks, generic over `CxlDevice`,
//! - `pci_class`: Rust subclasses of the C VFIO PCI devices,
//! - `host`: `HostDevice` over a realized `VFIOPCIDevice`,
//! - `passthrough`: the core applied to QEMU (window, host bridge, memory,
//!   overlay, migration blocker, trace events),
//! - `memory`: the mapped device memory and the component block overlay,
//! - `topology`: the fixed memory windows, root port and host bridge,
//! - `trace_events`: the generated trace events,
//! - `bindings`: the bindgen declarations for `hw/vfio` and `hw/vfio-user`.

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
