// SPDX-License-Identifier: GPL-2.0-or-later

//! A simulated CXL Type-2 accelerator served over the vfio-user protocol.
//!
//! It reproduces what the Linux vfio-pci CXL interface presents to user
//! space, postings v2 to v4 (see the README): the `COMP_REGS` and memory regions
//! with their type capabilities, the component BAR with the register
//! block trapped and the rest sparse-mmappable, the CXL DVSECs in config
//! space with the host's shadow rules, reset, and switchable faults.
//! The CXL register semantics come from the `cxl-model` crate.
//!
//! The library exposes the pieces so integration tests can run the
//! server in-process and use the small client in [`client`]:
//!
//! - [`options`]: the command line,
//! - [`protocol`]: vfio-user message layouts, [`wire`]: framing and fd passing,
//! - [`server`]: sockets, connection loop, dispatch,
//! - [`device`]: the accelerator (regions, reset, IRQs, DMA, faults),
//! - [`hostile`]: hostile mode, replies answered wrongly on purpose,
//! - [`config`]: ordinary PCI config registers,
//! - [`cxl`]: the wiring to `cxl-model`,
//! - [`memory`]: memfd/file backing and its v4 gating,
//! - [`control`]: counters and the control socket,
//! - [`client`]: a small vfio-user client.

pub mod client;
pub mod config;
pub mod control;
pub mod cxl;
pub mod device;
pub mod hostile;
pub mod memory;
pub mod options;
pub mod protocol;
pub mod server;
pub mod wire;
