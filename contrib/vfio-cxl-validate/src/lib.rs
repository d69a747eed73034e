// SPDX-License-Identifier: GPL-2.0-or-later

//! The vfio-cxl hardware validation kit.
//!
//! An independent judge of a vfio-pci CXL host: its register offsets,
//! bits and layouts ([`layout`]) are written from the interface
//! documents, not taken from `cxl-model`, so a misreading shared by the
//! device, the simulator and the model shows up here.
//!
//! - [`layout`]: every number checked against,
//! - [`posting`]: which posting of the kernel series a host speaks,
//! - [`host`]: the [`host::Host`] trait, implemented by [`kernel`] (VFIO
//!   ioctls, group or iommufd cdev) and [`vfio_user`] (a socket),
//! - [`caps`], [`pci`], [`decoder`]: capability chains, config-space
//!   walks, HDM decoder registers,
//! - [`contract`]: the host-contract suite,
//! - [`qtest`], [`guest_view`]: QEMU under qtest and what a guest sees,
//! - [`report`]: one line per check.

pub mod caps;
pub mod cli;
pub mod contract;
pub mod decoder;
pub mod guest_view;
pub mod host;
pub mod kernel;
pub mod kvm;
pub mod layout;
pub mod machine;
pub mod pci;
pub mod posting;
pub mod qtest;
pub mod report;
pub mod vfio_user;
