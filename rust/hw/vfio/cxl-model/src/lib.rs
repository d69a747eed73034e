// SPDX-License-Identifier: GPL-2.0-or-later

//! Register model of a CXL Type-2 device passed through with vfio-pci.
//!
//! Pure Rust, no QEMU or C dependency, so that the QEMU device, the
//! vfio-user simulator and the fuzzers share one implementation:
//!
//! - [`component`]: the CXL.cachemem capability array,
//! - [`discovery`]: validating what a host offers, telling its uAPI
//!   version apart, the layout the device uses,
//! - [`dvsec`]: the CXL Device and Register Locator DVSECs,
//! - [`guest_component`]: the component block as the guest sees it,
//! - [`hdm`]: the HDM decoder structure the guest sees,
//! - [`host`]: the kernel's `COMP_REGS` shadow, per uAPI version,
//! - [`host_device`]: the trait the device core asks its host through,
//! - [`passthrough`]: the device core (realize, reset, guest paths),
//! - [`pcie`]: the PCI Express FLR rule,
//! - [`placement`]: where several devices' memory goes in the windows,
//!   and the host bridge decoders that route it,
//! - [`uapi`]: the vfio-pci CXL uAPI and its capability chains,
//! - [`window`]: choosing the CXL fixed memory window and the host
//!   bridge decoder.
//!
//! What each uAPI posting presents is described, with sources, in
//! `docs/devel/vfio-cxl-uapi.rst`.
//!
//! Every parser takes untrusted bytes and reports malformed input as an
//! error value; nothing here panics on input.

#![forbid(unsafe_code)]

pub mod component;
pub mod discovery;
pub mod dvsec;
pub mod guest_component;
pub mod hdm;
pub mod host;
pub mod host_device;
pub mod passthrough;
pub mod pcie;
pub mod placement;
pub mod uapi;
pub mod window;
