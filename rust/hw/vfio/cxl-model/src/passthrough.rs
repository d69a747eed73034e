// SPDX-License-Identifier: GPL-2.0-or-later

//! The QEMU-independent core of a passed-through CXL Type-2 device: what
//! realize finds and decides, what the guest sees of the component block
//! and the CXL Device DVSEC, and how every reset is sequenced.
//!
//! It runs over a [`HostDevice`], so the same code serves QEMU (kernel VFIO
//! and vfio-user) and this module's tests.  What it cannot do itself, it
//! leaves to the caller, which owns the QEMU objects:
//! - placing memory: [`Discovered::layout`] says how much there is, the
//!   caller chooses the window ([`crate::window`]) and maps the memory;
//!   [`Passthrough::memory_visible`] says whether the guest may see it;
//! - resetting: [`Passthrough::begin_reset`] (which hides the memory
//!   unless the reset leaves it alone), then [`HostDevice::reset`]
//!   with no borrow of the core held (the host reset runs code that may
//!   call back into the device), then [`Passthrough::finish_reset`].
//!
//! Rules:
//! - Realize refuses a host that cannot reset: every reset, even the one
//!   at machine start, resets the host before its memory is shown.
//! - After every reset the host must still present the same memory and
//!   component block (re-discovery; after an FLR, which leaves CXL.mem
//!   alone, decoder 0 read again); otherwise the memory stays hidden and
//!   [`Passthrough::status`] says why, until a later reset succeeds.
//! - FLR keeps the guest's CXL.mem state (decoders, DVSEC); the other
//!   resets return it to the boot state, committed and locked.
//! - A CXL Reset reports completion or error in the DVSEC's Status2.
//! - The guest never sees the host decoder's BASE; on uAPI v2 the core
//!   writes the guest base into the host shadow after realize and after
//!   every reset, as that posting expects.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::ops::Range;

use crate::discovery::{self, DiscoveryError, HostLayout, DECODER0_SPAN};
use crate::dvsec::{split_access, DvsecWriteEffect, GuestDeviceDvsec};
use crate::guest_component::GuestComponentBlock;
use crate::hdm::{DecoderRegister, HdmError};
use crate::host_device::{region_descs, HostDevice, RegionInfoError, ResetKind};
use crate::pcie::FlrTrigger;
use crate::placement::PlacedDevice;
use crate::uapi::{
    self, UapiError, UapiVersion, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_REGION_SUBTYPE_CXL_COMP_REGS,
};

/// Where the CXL Device DVSEC's emulated registers start: the extended
/// capability header and the two DVSEC headers before them are read
/// through vfio-pci (the header's next pointer is vfio-pci's to manage).
const DVSEC_EMULATED_FROM: u32 = 0x0A;

/// The PCI Command register and its Memory Space Enable bit.
const PCI_COMMAND: u32 = 0x04;
const PCI_COMMAND_MEMORY: u16 = 1 << 1;

/// Why a host cannot be used, or stopped being usable.
#[derive(Debug)]
pub enum PassthroughError {
    /// A region description cannot be decoded.
    RegionInfo(RegionInfoError),
    /// Config space cannot be read.
    ConfigSpace(io::Error),
    /// The kernel's CXL device-info capability cannot be decoded.
    DeviceInfo(UapiError),
    /// What the host presents does not fit.
    Discovery(DiscoveryError),
    /// The host cannot reset the device.
    CannotReset,
    /// Decoder 0 cannot be presented at the chosen address.
    Decoder(HdmError),
    /// Writing the guest base into the v2 host shadow failed.
    HostBase {
        /// `COMP_REGS` offset of the write.
        offset: u64,
        /// The host's error.
        source: io::Error,
    },
    /// The host reset itself failed.
    HostReset(io::Error),
    /// Keeping the host function's Memory Space Enable set failed (v4).
    HostMemoryEnable(io::Error),
    /// After a reset the host presents other memory or another block.
    HostChanged {
        /// What it presented at realize.
        before: Box<HostLayout>,
        /// What it presents now.
        now: Box<HostLayout>,
    },
    /// The host side went away (the vfio-user server closed the
    /// connection); nothing reaches the device any more.
    HostGone,
    /// A reset failed; the memory stays hidden from the guest.
    ResetFailed {
        /// Which reset.
        kind: ResetKind,
        /// Why.
        cause: Box<PassthroughError>,
    },
}

impl fmt::Display for PassthroughError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RegionInfo(e) => e.fmt(f),
            Self::ConfigSpace(_) => write!(f, "cannot read config space"),
            Self::DeviceInfo(_) => write!(f, "the CXL device-info capability is invalid"),
            Self::Discovery(e) => e.fmt(f),
            Self::CannotReset => write!(
                f,
                "the host device cannot be reset, and every reset (even the one at machine \
                 start) must reset it before its memory is given to the guest"
            ),
            Self::Decoder(_) => write!(f, "cannot present HDM decoder 0"),
            Self::HostBase { offset, .. } => {
                write!(
                    f,
                    "cannot write the guest base into COMP_REGS at {offset:#x}"
                )
            }
            Self::HostReset(_) => write!(f, "the host reset failed"),
            Self::HostGone => write!(f, "the vfio-user server closed the connection"),
            Self::HostMemoryEnable(_) => {
                write!(
                    f,
                    "cannot keep Memory Space Enable set in the host's Command register"
                )
            }
            Self::HostChanged { before, now } => write!(
                f,
                "the host now presents memory region {} of {:#x} bytes (component block in \
                 BAR {} at {:#x}); it was region {} of {:#x} bytes (BAR {} at {:#x})",
                now.memory_region,
                now.memory_size,
                now.component_bar,
                now.component_offset,
                before.memory_region,
                before.memory_size,
                before.component_bar,
                before.component_offset
            ),
            Self::ResetFailed { kind, .. } => write!(
                f,
                "after {kind} reset, device memory stays unmapped from the guest"
            ),
        }
    }
}

impl StdError for PassthroughError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::RegionInfo(e) => e.source(),
            Self::ConfigSpace(e)
            | Self::HostReset(e)
            | Self::HostMemoryEnable(e)
            | Self::HostBase { source: e, .. } => Some(e),
            Self::DeviceInfo(e) => Some(e),
            Self::Discovery(e) => e.source(),
            Self::Decoder(e) => Some(e),
            Self::ResetFailed { cause, .. } => Some(cause.as_ref()),
            Self::CannotReset | Self::HostChanged { .. } | Self::HostGone => None,
        }
    }
}

/// An error and its causes on one line, `": "`-separated, as QEMU prints
/// an error with its context.
pub fn describe(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// A host access that failed on a guest's component block access; the
/// guest got all ones (read) or nothing happened (write).
#[derive(Debug)]
pub struct HostAccessFailure {
    /// `COMP_REGS` offset of the failed dword.
    pub region_offset: u64,
    /// The host's error.
    pub error: io::Error,
}

/// What the host presents, checked, and its config space.
fn discover_layout(host: &impl HostDevice) -> Result<(HostLayout, Vec<u8>), PassthroughError> {
    let regions = region_descs(host).map_err(PassthroughError::RegionInfo)?;
    let config = host.config_space().map_err(PassthroughError::ConfigSpace)?;
    let info = host
        .device_info()
        .map(|bytes| uapi::device_info_cxl(&bytes))
        .transpose()
        .map_err(PassthroughError::DeviceInfo)?
        .flatten();
    let comp_regs_cap = regions
        .iter()
        .find(|r| r.is_cxl(VFIO_REGION_SUBTYPE_CXL_COMP_REGS))
        .and_then(|r| host.region_info(r.index))
        .map(|bytes| uapi::region_info_comp_regs_cap(&bytes))
        .transpose()
        .map_err(PassthroughError::DeviceInfo)?
        .flatten();
    let comp_regs = regions
        .iter()
        .find(|r| r.is_cxl(VFIO_REGION_SUBTYPE_CXL_COMP_REGS))
        .copied();
    let mut whole: Option<Option<Vec<u8>>> = None;
    let layout = discovery::discover_with(
        &regions,
        &config,
        info.as_ref(),
        comp_regs_cap,
        &mut |index, offset| {
            // Every host read is a round trip over vfio-user: COMP_REGS is
            // read once, whole, where the host takes such a read (v3, v4;
            // v2 takes single dwords only).
            if let Some(r) = comp_regs.filter(|r| r.index == index) {
                let bulk = whole.get_or_insert_with(|| read_whole(host, r.index, r.size));
                if let Some(bytes) = bulk {
                    return dword_at(bytes, offset)
                        .ok_or_else(|| format!("offset {offset:#x} is outside the region"));
                }
            }
            host.read32(index, offset).map_err(|e| e.to_string())
        },
    )
    .map_err(PassthroughError::Discovery)?;
    Ok((layout, config))
}

/// Largest `COMP_REGS` region read in one request (a v3 region is 64 KiB).
const WHOLE_READ_MAX: u64 = 0x1_0000;

/// The whole of region `index` (`size` bytes) in one read, if it is small
/// enough and the host accepts such a read.
fn read_whole(host: &impl HostDevice, index: u32, size: u64) -> Option<Vec<u8>> {
    if size == 0 || size > WHOLE_READ_MAX || size % 4 != 0 {
        return None;
    }
    let mut bytes = vec![0u8; usize::try_from(size).ok()?];
    host.region_read(index, 0, &mut bytes).ok()?;
    Some(bytes)
}

/// The little-endian dword at `offset` of `bytes`.
fn dword_at(bytes: &[u8], offset: u64) -> Option<u32> {
    let at = usize::try_from(offset).ok()?;
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// A host whose CXL resources were found and checked, before a guest
/// address is chosen for its memory.
pub struct Discovered<H> {
    host: H,
    layout: HostLayout,
    flr: Option<FlrTrigger>,
}

/// Finds and checks the host's CXL resources.
pub fn discover<H: HostDevice>(host: H) -> Result<Discovered<H>, PassthroughError> {
    let (layout, config) = discover_layout(&host)?;
    if !host.can_reset() {
        return Err(PassthroughError::CannotReset);
    }
    Ok(Discovered {
        flr: FlrTrigger::from_config(&config),
        host,
        layout,
    })
}

impl<H: HostDevice> Discovered<H> {
    /// What was found.
    pub const fn layout(&self) -> &HostLayout {
        &self.layout
    }

    /// The guest's view of the device with its memory where `placement`
    /// says ([`crate::placement::place`]), whose name names the device in
    /// messages.
    pub fn present(self, placement: PlacedDevice) -> Result<Passthrough<H>, PassthroughError> {
        let (base, size) = (placement.base, self.layout.memory_size);
        let guest = GuestComponentBlock::new(&self.layout, base, size, placement.window.range())
            .map_err(PassthroughError::Decoder)?;
        let dvsec = GuestDeviceDvsec::new(&self.layout.device_dvsec, base, size);
        let start = u32::from(self.layout.device_dvsec_offset);
        let end = start + u32::from(self.layout.device_dvsec.length);
        let this = Passthrough {
            host: self.host,
            layout: self.layout,
            placement,
            guest,
            dvsec,
            dvsec_range: start..end,
            flr: self.flr,
            failure: None,
            host_gone: false,
            memory_visible: true,
        };
        this.write_host_base()?;
        this.keep_host_memory_enabled()?;
        Ok(this)
    }
}

/// A realized passthrough: the guest's view of one host device.
pub struct Passthrough<H> {
    host: H,
    layout: HostLayout,
    placement: PlacedDevice,
    guest: GuestComponentBlock,
    dvsec: GuestDeviceDvsec,
    dvsec_range: Range<u32>,
    flr: Option<FlrTrigger>,
    /// Why the memory is hidden after a failed reset.
    failure: Option<String>,
    /// The host went away for good.
    host_gone: bool,
    memory_visible: bool,
}

impl<H: HostDevice> Passthrough<H> {
    /// `"<type> '<id>'"`, for messages.
    pub fn name(&self) -> &str {
        &self.placement.name
    }

    /// The host device.
    pub const fn host(&self) -> &H {
        &self.host
    }

    /// What the host presents.
    pub const fn layout(&self) -> &HostLayout {
        &self.layout
    }

    /// Where the memory lives.
    pub const fn placement(&self) -> &PlacedDevice {
        &self.placement
    }

    /// The guest-visible component block.
    pub const fn guest_component(&self) -> &GuestComponentBlock {
        &self.guest
    }

    /// The guest-visible CXL Device DVSEC.
    pub const fn guest_dvsec(&self) -> &GuestDeviceDvsec {
        &self.dvsec
    }

    /// Whether the memory is hidden because a reset failed or the host is
    /// gone (what [`Passthrough::status`] then explains).
    pub const fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// Whether the guest may see the device memory now.
    pub const fn memory_visible(&self) -> bool {
        self.memory_visible
    }

    /// What the `cxl-status` property says: where the memory is, or why
    /// it is not usable after a failed reset.
    pub fn status(&self) -> String {
        match &self.failure {
            Some(failure) => format!("unmapped: {}: {failure}", self.placement.name),
            None => format!(
                "mapped: {:#x} bytes at {:#x} in CXL fixed memory window {}, host uAPI {}",
                self.layout.memory_size,
                self.placement.base,
                self.placement.window.index,
                self.layout.uapi.name()
            ),
        }
    }

    /// First step of every reset: no guest access may reach the device
    /// memory while the host resets it, unless the reset leaves the memory
    /// alone: an FLR does not affect CXL.mem (CXL specification), and a v3
    /// host does nothing to the memory on reset, so there the memory stays
    /// mapped (which spares two memory map changes per FLR).  v2 makes the
    /// memory inactive during a reset and v4 clears and gates it.
    pub fn begin_reset(&mut self, kind: ResetKind) {
        let keeps_memory = kind == ResetKind::Flr && self.layout.uapi == UapiVersion::V3;
        self.memory_visible &= keeps_memory;
    }

    /// Last step of every reset, given what the host reset returned: check
    /// that the host still presents the same memory, restore what the
    /// guest sees, and show the memory again.  On failure the memory stays
    /// hidden and the error says why.
    pub fn finish_reset(
        &mut self,
        kind: ResetKind,
        host_reset: io::Result<()>,
    ) -> Result<(), PassthroughError> {
        let outcome = self
            .host_present()
            .and_then(|()| host_reset.map_err(PassthroughError::HostReset))
            .and_then(|()| self.check_host_after_reset(kind))
            .and_then(|()| {
                if kind != ResetKind::Flr {
                    self.guest.reset_to_boot();
                    self.dvsec.reset();
                }
                self.write_host_base()
            })
            .and_then(|()| self.keep_host_memory_enabled());
        if kind == ResetKind::Cxl {
            let ok = outcome.is_ok();
            self.dvsec.set_reset_status(ok, !ok);
        }
        match outcome {
            Ok(()) => {
                self.failure = None;
                self.memory_visible = true;
                Ok(())
            }
            Err(cause) => {
                self.memory_visible = false;
                let e = PassthroughError::ResetFailed {
                    kind,
                    cause: Box::new(cause),
                };
                self.failure = Some(describe(&e));
                Err(e)
            }
        }
    }

    fn host_present(&self) -> Result<(), PassthroughError> {
        if self.host.connected() {
            Ok(())
        } else {
            Err(PassthroughError::HostGone)
        }
    }

    /// Notices a host that went away: the memory is hidden and
    /// [`Passthrough::status`] says why.  Returns the reason the first time
    /// only (so that it is reported once); the guest keeps running and the
    /// device can still be removed.
    pub fn notice_host_gone(&mut self) -> Option<String> {
        if self.host.connected() || self.host_gone {
            return None;
        }
        self.host_gone = true;
        self.memory_visible = false;
        let why = describe(&PassthroughError::HostGone);
        let text = format!("the host is gone ({why}); device memory is unmapped from the guest");
        self.failure = Some(text.clone());
        Some(text)
    }

    /// That the host still presents the memory the guest was given.  After
    /// a CXL Reset or a system or bus reset the host is discovered again
    /// (config space and `COMP_REGS` read again, two round trips).  An FLR
    /// leaves CXL.mem alone (the CXL specification; v4 restores the decoder
    /// it resets) and the host keeps its regions, so decoder 0 is read
    /// again and checked, in one request where the host takes it: the FLR
    /// path stays near vfio-pci's.
    fn check_host_after_reset(&self, kind: ResetKind) -> Result<(), PassthroughError> {
        if kind == ResetKind::Flr {
            return self.check_decoder_after_flr();
        }
        let (now, _) = discover_layout(&self.host)?;
        let before = &self.layout;
        let same = now.memory_region == before.memory_region
            && now.memory_size == before.memory_size
            && now.comp_regs_region == before.comp_regs_region
            && now.component_bar == before.component_bar
            && now.component_offset == before.component_offset;
        if same {
            Ok(())
        } else {
            Err(PassthroughError::HostChanged {
                before: Box::new(before.clone()),
                now: Box::new(now),
            })
        }
    }

    fn check_decoder_after_flr(&self) -> Result<(), PassthroughError> {
        let region = self.layout.comp_regs_region;
        let start = self.layout.decoder0_region_offset(DecoderRegister::BaseLo);
        // v2 takes single dwords only; the others take the span at once.
        let mut span = [0u8; DECODER0_SPAN];
        let bulk = (self.layout.uapi != UapiVersion::V2
            && self.host.region_read(region, start, &mut span).is_ok())
        .then_some(span);
        self.layout
            .reread_decoder0(&mut |index, offset| {
                let cached = bulk
                    .filter(|_| index == region)
                    .and_then(|bytes| dword_at(&bytes, offset.checked_sub(start)?));
                match cached {
                    Some(dword) => Ok(dword),
                    None => self.host.read32(index, offset).map_err(|e| e.to_string()),
                }
            })
            .map(drop)
            .map_err(PassthroughError::Discovery)
    }

    /// uAPI v2 zeroes the host decoder's BASE at open and after reset and
    /// expects the VMM to write the guest address there.
    fn write_host_base(&self) -> Result<(), PassthroughError> {
        if let Some(writes) = self.layout.host_base_writes(self.placement.base) {
            for (offset, value) in writes {
                self.host
                    .write32(self.layout.comp_regs_region, offset, value)
                    .map_err(|source| PassthroughError::HostBase { offset, source })?;
            }
        }
        Ok(())
    }

    /// Whether a config write of `len` bytes at `addr` covers the Command
    /// register's Memory Space Enable bit.
    pub const fn writes_memory_enable(addr: u32, len: u32) -> bool {
        addr <= PCI_COMMAND && PCI_COMMAND < addr + len
    }

    /// A v4 host faults the memory mapping (a SIGBUS in QEMU) while the
    /// function's Memory Space Enable is clear, and guests clear it (for
    /// instance while sizing BARs).  CXL.mem is not gated by it (the DVSEC's
    /// `Mem_Enable` governs HDM decode), so while the memory is mapped the
    /// host's bit stays set whatever the guest writes; what the guest sees
    /// of its Command register, and QEMU's BAR mappings, are vfio-pci's.
    /// Call after realize, after every reset and after every guest write
    /// that covers the bit.  Earlier postings do not gate: nothing to do.
    pub fn keep_host_memory_enabled(&self) -> Result<(), PassthroughError> {
        if self.layout.uapi != UapiVersion::V4 {
            return Ok(());
        }
        let config = VFIO_PCI_CONFIG_REGION_INDEX;
        let mut command = [0u8; 2];
        let offset = u64::from(PCI_COMMAND);
        self.host
            .region_read(config, offset, &mut command)
            .map_err(PassthroughError::HostMemoryEnable)?;
        let value = u16::from_le_bytes(command);
        if value & PCI_COMMAND_MEMORY == 0 {
            let enabled = (value | PCI_COMMAND_MEMORY).to_le_bytes();
            self.host
                .region_write(config, offset, &enabled)
                .map_err(PassthroughError::HostMemoryEnable)?;
        }
        Ok(())
    }

    /// `access`'s result, unless the host is gone (then nothing is asked).
    fn host_access<T>(&self, access: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        if self.host_gone {
            Err(host_gone_error())
        } else {
            access()
        }
    }

    /// Guest read of the component block: the value, and the host access
    /// that failed, if one did (its dword then reads all ones).
    pub fn component_read(&self, offset: u64, size: u32) -> (u64, Option<HostAccessFailure>) {
        let region = self.guest.forward_region();
        let mut failure = None;
        let value = self.guest.read_via(offset, size, &mut |region_offset| {
            self.host_access(|| self.host.read32(region, region_offset))
                .unwrap_or_else(|error| {
                    failure = Some(HostAccessFailure {
                        region_offset,
                        error,
                    });
                    u32::MAX
                })
        });
        (value, failure)
    }

    /// Guest write to the component block; the host access that failed,
    /// if one did.  A host shadow may drop a write without an error: that
    /// is its right.
    pub fn component_write(
        &mut self,
        offset: u64,
        size: u32,
        value: u64,
    ) -> Option<HostAccessFailure> {
        let region = self.guest.forward_region();
        let (host, gone) = (&self.host, self.host_gone);
        let mut failure = None;
        self.guest
            .write_via(offset, size, value, &mut |region_offset, dword| {
                let written = if gone {
                    Err(host_gone_error())
                } else {
                    host.write32(region, region_offset, dword)
                };
                if let Err(error) = written {
                    failure = Some(HostAccessFailure {
                        region_offset,
                        error,
                    });
                }
            });
        failure
    }

    /// If the config write of `value` (`len` bytes at `addr`) starts a
    /// Function Level Reset, the same write without the FLR bit.  Only a
    /// function that advertises FLR has one.
    pub fn strip_flr(&self, addr: u32, value: u32, len: u32) -> Option<u32> {
        self.flr.and_then(|t| t.strip(addr, value, len))
    }

    /// Whether a config access touches the CXL Device DVSEC.
    pub const fn touches_dvsec(&self, addr: u32, len: u32) -> bool {
        addr < self.dvsec_range.end && addr + len > self.dvsec_range.start
    }

    fn emulated_range(&self) -> Range<u32> {
        self.dvsec_range.start + DVSEC_EMULATED_FROM..self.dvsec_range.end
    }

    fn dvsec_offset(&self, addr: u32) -> u16 {
        // A DVSEC lies inside 4 KiB of config space.
        u16::try_from(addr - self.dvsec_range.start).unwrap_or(u16::MAX)
    }

    /// Guest config read touching the DVSEC: the emulated registers from
    /// the model, the rest through `parent(addr, len)`.
    pub fn config_read(&self, addr: u32, len: u32, parent: &mut dyn FnMut(u32, u32) -> u32) -> u32 {
        config_parts(addr, len, &self.emulated_range()).fold(0, |value, (at, n, emulated)| {
            let part = if emulated {
                self.dvsec.read(self.dvsec_offset(at), n)
            } else {
                parent(at, n)
            };
            value | (part & byte_mask(n)) << (8 * (at - addr))
        })
    }

    /// Guest config write touching the DVSEC: the emulated registers go to
    /// the model and never to the host; writes to the DVSEC's read-only
    /// headers are dropped; the rest goes through `parent(addr, value, len)`.
    pub fn config_write(
        &mut self,
        addr: u32,
        value: u32,
        len: u32,
        parent: &mut dyn FnMut(u32, u32, u32),
    ) -> DvsecWriteEffect {
        let mut effect = DvsecWriteEffect::None;
        for (at, n, emulated) in config_parts(addr, len, &self.emulated_range()) {
            let part = (value >> (8 * (at - addr))) & byte_mask(n);
            if emulated {
                let e = self.dvsec.write(self.dvsec_offset(at), n, part);
                if e != DvsecWriteEffect::None {
                    effect = e;
                }
            } else if !self.dvsec_range.contains(&at) {
                parent(at, part, n);
            }
        }
        effect
    }
}

/// The I/O error a host access meets once the host is gone.
fn host_gone_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        PassthroughError::HostGone.to_string(),
    )
}

/// The non-empty parts of the config access `addr..addr + len` before,
/// inside and after `region`, as (start, length, inside).  Config accesses
/// are naturally aligned and the DVSEC's edges are dword or word aligned,
/// so every part is 1, 2 or 4 bytes long.
fn config_parts(
    addr: u32,
    len: u32,
    region: &Range<u32>,
) -> impl Iterator<Item = (u32, u32, bool)> {
    let widen = |r: &Range<u32>| r.start as usize..r.end as usize;
    split_access(widen(&(addr..addr + len)), &widen(region))
        .into_iter()
        .filter(|(part, _)| !part.is_empty())
        .map(|(part, inside)| (part.start as u32, (part.end - part.start) as u32, inside))
}

/// The low `len` bytes of a dword.
const fn byte_mask(len: u32) -> u32 {
    u32::MAX >> (32 - 8 * len)
}

#[cfg(test)]
mod tests;
