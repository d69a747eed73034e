// SPDX-License-Identifier: GPL-2.0-or-later

//! The crate's trace events, generated from `trace-events`.  The generated
//! code's unsafe blocks carry no SAFETY comments, so the crate-wide rule
//! that every unsafe block states its invariant stops at this module.
#![allow(clippy::undocumented_unsafe_blocks)]

::trace::include_trace!("rust_hw_vfio_cxl");

pub use self::trace::*;
