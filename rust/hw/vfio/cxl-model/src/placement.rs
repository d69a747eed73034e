// SPDX-License-Identifier: GPL-2.0-or-later

//! Where each passed-through device's memory goes when a machine has
//! several: its range in a CXL fixed memory window, and the host bridge
//! HDM decoders that route every range to its root port.
//!
//! Rules (each has a test, and `tests/placement_props.rs` checks the
//! invariants over random sequences):
//! - The window is chosen by [`choose_window`]: the one the device names
//!   with `cxl-fmw`, else the single window whose only target is the
//!   device's host bridge.  A window is shared by all devices below its
//!   host bridge.
//! - In the window, a device takes the lowest free range of its size that
//!   starts on a 256 MiB boundary (the HDM decoder granularity), first fit
//!   in address order.  The same command line therefore gives the same
//!   addresses; a device keeps its range across resets and across the
//!   unplug and replug of others; a removed device's range is free again.
//! - Every device below a host bridge with HDM decoders takes one of them:
//!   more devices than decoders are refused, naming the devices.  Decoders
//!   are committed in address order (decoder n+1 above decoder n, as the
//!   CXL specification and Linux require), each 1-way to the device's root
//!   port; the ones left over are cleared.
//! - A host bridge without HDM decoders (one root port, pxb-cxl's default)
//!   decodes everything to that port: it serves one device.

use std::fmt;
use std::ops::Range;

use crate::hdm::{decoder_offset, DecoderControl, DecoderRegister, GlobalControl, HdmRegister};
use crate::hdm::{HDM_GRANULARITY, LO_ADDR_MASK};
use crate::window::{choose_window, ByteSize, ChosenWindow, FixedWindow, WindowError};

/// A device whose memory has a place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedDevice {
    /// `"<type> '<id>'"`, for messages.
    pub name: String,
    /// Its host bridge's id.
    pub host_bridge: String,
    /// Port number of its root port.
    pub root_port: u8,
    /// The window its memory is in.
    pub window: ChosenWindow,
    /// Guest physical base of its memory.
    pub base: u64,
    /// Size of its memory.
    pub size: u64,
}

impl PlacedDevice {
    /// Its guest physical range.
    pub const fn range(&self) -> Range<u64> {
        self.base..self.base + self.size
    }
}

/// A device to place.
#[derive(Clone, Copy, Debug)]
pub struct PlacementRequest<'a> {
    /// `"<type> '<id>'"`, for messages.
    pub name: &'a str,
    /// Its host bridge's id.
    pub host_bridge: &'a str,
    /// Port number of its root port.
    pub root_port: u8,
    /// The `cxl-fmw` property, if set.
    pub requested_window: Option<usize>,
    /// Size of its memory.
    pub memory_size: u64,
    /// How many HDM decoders its host bridge has; 0 when it decodes in
    /// passthrough mode.
    pub host_bridge_decoders: usize,
}

/// Why a device cannot be placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlacementError {
    /// No window fits (see [`WindowError`]).
    Window(WindowError),
    /// The window has no free range the device memory fits in.
    NoRoom {
        /// The window.
        window: ChosenWindow,
        /// The device memory's size.
        memory_size: u64,
        /// The devices already in the window: name, base, size.
        used: Vec<(String, u64, u64)>,
    },
    /// The host bridge has fewer HDM decoders than devices below it.
    TooFewDecoders {
        /// The host bridge.
        host_bridge: String,
        /// Its decoder count (0: passthrough).
        decoders: usize,
        /// The devices already below it.
        devices: Vec<String>,
    },
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Window(e) => e.fmt(f),
            Self::NoRoom {
                window,
                memory_size,
                used,
            } => {
                write!(
                    f,
                    "CXL fixed memory window {} ({} at {:#x}) has no free {} range left",
                    window.index,
                    ByteSize(window.size),
                    window.base,
                    ByteSize(*memory_size)
                )?;
                if !used.is_empty() {
                    let taken: Vec<String> = used
                        .iter()
                        .map(|(name, base, size)| {
                            format!("{name} at {base:#x} ({})", ByteSize(*size))
                        })
                        .collect();
                    write!(f, " (used by {})", taken.join(", "))?;
                }
                write!(
                    f,
                    "; enlarge cxl-fmw.{}.size or put the device in another window with the \
                     cxl-fmw property",
                    window.index
                )
            }
            Self::TooFewDecoders {
                host_bridge,
                decoders: 0,
                devices,
            } => write!(
                f,
                "CXL host bridge '{host_bridge}' has no HDM decoders and already routes \
                 {}; give it hdm_for_passthrough=on or use another host bridge",
                devices.join(", ")
            ),
            Self::TooFewDecoders {
                host_bridge,
                decoders,
                devices,
            } => write!(
                f,
                "CXL host bridge '{host_bridge}' has {decoders} HDM decoders, all used by \
                 {}; put the device below another host bridge",
                devices.join(", ")
            ),
        }
    }
}

impl std::error::Error for PlacementError {}

/// Places a device among those already `placed`.
pub fn place(
    windows: &[FixedWindow],
    placed: &[PlacedDevice],
    req: &PlacementRequest<'_>,
) -> Result<PlacedDevice, PlacementError> {
    let window = choose_window(
        windows,
        req.host_bridge,
        req.requested_window,
        req.memory_size,
    )
    .map_err(PlacementError::Window)?;
    let siblings: Vec<&PlacedDevice> = placed
        .iter()
        .filter(|d| d.host_bridge == req.host_bridge)
        .collect();
    if siblings.len() >= req.host_bridge_decoders.max(1) {
        return Err(PlacementError::TooFewDecoders {
            host_bridge: req.host_bridge.to_owned(),
            decoders: req.host_bridge_decoders,
            devices: siblings.iter().map(|d| d.name.clone()).collect(),
        });
    }
    let mut used: Vec<&PlacedDevice> = placed
        .iter()
        .filter(|d| d.window.index == window.index)
        .collect();
    used.sort_by_key(|d| d.base);
    let base = first_fit(&window.range(), &used, req.memory_size).ok_or_else(|| {
        PlacementError::NoRoom {
            window,
            memory_size: req.memory_size,
            used: used
                .iter()
                .map(|d| (d.name.clone(), d.base, d.size))
                .collect(),
        }
    })?;
    Ok(PlacedDevice {
        name: req.name.to_owned(),
        host_bridge: req.host_bridge.to_owned(),
        root_port: req.root_port,
        window,
        base,
        size: req.memory_size,
    })
}

/// The lowest 256 MiB-aligned base in `window` where `size` bytes fit
/// between the ranges of `used` (sorted by base).
fn first_fit(window: &Range<u64>, used: &[&PlacedDevice], size: u64) -> Option<u64> {
    let mut candidate = window.start;
    for d in used {
        if candidate.checked_add(size)? <= d.base {
            break;
        }
        candidate = d
            .range()
            .end
            .max(candidate)
            .checked_next_multiple_of(HDM_GRANULARITY)?;
    }
    (candidate.checked_add(size)? <= window.end).then_some(candidate)
}

/// One host bridge HDM decoder as firmware would commit it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostBridgeDecoder {
    /// Which decoder of the host bridge.
    pub index: usize,
    /// Decoded base.
    pub base: u64,
    /// Decoded size (0: the decoder is cleared).
    pub size: u64,
    /// Control: IG 0, IW 0 (1 way), device-coherent target type,
    /// `LOCK_ON_COMMIT`, COMMIT and COMMITTED; 0 when cleared.
    pub ctrl: DecoderControl,
    /// Target list: way 0 is the root port number, the other ways 0.
    pub target_list: u64,
}

impl HostBridgeDecoder {
    /// The decoder routing `d`'s range to its root port.
    pub fn routing(index: usize, d: &PlacedDevice) -> Self {
        let mut ctrl = DecoderControl::default();
        ctrl.set_lock_on_commit(true);
        ctrl.set_commit(true);
        ctrl.set_committed(true);
        Self {
            index,
            base: d.base,
            size: d.size,
            ctrl,
            target_list: u64::from(d.root_port),
        }
    }

    /// The decoder, uncommitted and empty.
    pub fn cleared(index: usize) -> Self {
        Self {
            index,
            base: 0,
            size: 0,
            ctrl: DecoderControl::default(),
            target_list: 0,
        }
    }

    /// Its seven registers, as (offset from the start of the HDM Decoder
    /// Capability structure, dword) pairs.  Low address dwords keep bits
    /// 31:28 only.
    pub fn registers(&self) -> [(u64, u32); 7] {
        let at = decoder_offset(self.index);
        [
            (DecoderRegister::BaseLo, self.base as u32 & LO_ADDR_MASK),
            (DecoderRegister::BaseHi, (self.base >> 32) as u32),
            (DecoderRegister::SizeLo, self.size as u32 & LO_ADDR_MASK),
            (DecoderRegister::SizeHi, (self.size >> 32) as u32),
            (DecoderRegister::Control, u32::from(self.ctrl)),
            (DecoderRegister::DpaSkipLo, self.target_list as u32),
            (DecoderRegister::DpaSkipHi, (self.target_list >> 32) as u32),
        ]
        .map(|(reg, value)| (at + reg as u64, value))
    }
}

/// What to write into a host bridge with `decoders` HDM decoders so that it
/// routes exactly the devices of `placed` below it: HDM Decoder Enable in
/// global control (when any device is below it), one committed decoder per
/// device in address order, the other decoders cleared.  Empty for a host
/// bridge without decoders.
pub fn host_bridge_registers(
    placed: &[PlacedDevice],
    host_bridge: &str,
    decoders: usize,
) -> Vec<(u64, u32)> {
    let mut below: Vec<&PlacedDevice> = placed
        .iter()
        .filter(|d| d.host_bridge == host_bridge)
        .collect();
    below.sort_by_key(|d| d.base);
    if decoders == 0 {
        return Vec::new();
    }
    let mut global = GlobalControl::default();
    global.set_hdm_decoder_enable(!below.is_empty());
    let mut regs = vec![(HdmRegister::GlobalControl as u64, u32::from(global))];
    for index in 0..decoders {
        let decoder = below.get(index).map_or_else(
            || HostBridgeDecoder::cleared(index),
            |d| HostBridgeDecoder::routing(index, d),
        );
        regs.extend(decoder.registers());
    }
    regs
}

#[cfg(test)]
mod tests;
