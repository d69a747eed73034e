// SPDX-License-Identifier: GPL-2.0-or-later

//! The guest's view of the HDM Decoder Capability structure (CXL 3.1
//! section 8.2.4.20).
//!
//! The VMM presents decoder 0 as committed and locked by firmware at the
//! address it chose in the guest's CXL fixed memory window.  The guest may
//! still program (and commit) the remaining decoders; they are checked the
//! way a device would check them, but only the state changes: the guest
//! memory map is the VMM's business.
//!
//! Choices where CXL leaves room (each has a test):
//! - Only naturally aligned 4- and 8-byte accesses are decoded; anything
//!   else reads as 0 and is ignored when written.  An 8-byte access is two
//!   dword accesses, low dword first.
//! - While a decoder is committed, writes to its BASE, SIZE and DPA skip
//!   registers are ignored, as are all control fields other than COMMIT.
//!   CXL forbids software to change them; ignoring them keeps the
//!   COMMITTED state consistent with what was checked at commit time.
//! - Clearing COMMIT clears COMMITTED and `ERROR_NOT_COMMITTED`, unless the
//!   decoder is locked.  A commit attempt happens only on a 0 to 1 edge of
//!   COMMIT; after a failed attempt software clears COMMIT and retries.
//! - The device is an endpoint without interleave support: IW must be 0
//!   (1 way), IG must be a defined encoding (0 to 6), `TARGET_TYPE` must be
//!   0 (device-coherent, Type 2).  BI, UIO and their fields are not
//!   supported and read 0.
//! - Clearing COMMIT on decoder n while n+1 is committed is allowed
//!   (software is expected not to do it); the checks apply on commit only.
//! - The DPA skip is stored but not checked against device capacity, which
//!   this model does not know.
//! - Global control is read-only while any decoder is locked: the decode
//!   path is then fixed by the VMM, so the guest cannot disable it.

use std::fmt;
use std::ops::Range;

use bilge::prelude::*;

/// HDM decoder granularity: BASE, SIZE and DPA skip are in 256 MiB units.
pub const HDM_GRANULARITY: u64 = 256 << 20;

/// Mask of the significant bits of a `BASE_LO`, `SIZE_LO` or DPA skip low dword.
pub const LO_ADDR_MASK: u32 = 0xF000_0000;

/// Offset of the first decoder's registers in the structure.
pub const DECODER0_OFFSET: u64 = 0x10;

/// Stride between decoders.
pub const DECODER_STRIDE: u64 = 0x20;

/// Largest IG encoding CXL 3.1 defines (16 KiB).
pub const MAX_IG_ENCODING: u8 = 6;

/// Registers at the start of the structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum HdmRegister {
    /// HDM Decoder Capability register (read-only).
    #[doc(alias = "CXL HDM Decoder Capability Register")]
    Capability = 0x00,
    /// HDM Decoder Global Control register.
    #[doc(alias = "CXL HDM Decoder Global Control Register")]
    GlobalControl = 0x04,
}

/// Registers of one decoder, as offsets from [`decoder_offset`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum DecoderRegister {
    /// Bits 31:28 of the decoder's base address.
    #[doc(alias = "CXL HDM Decoder n Base Low Register")]
    BaseLo = 0x00,
    /// Bits 63:32 of the base address.
    #[doc(alias = "CXL HDM Decoder n Base High Register")]
    BaseHi = 0x04,
    /// Bits 31:28 of the decoded size.
    #[doc(alias = "CXL HDM Decoder n Size Low Register")]
    SizeLo = 0x08,
    /// Bits 63:32 of the size.
    #[doc(alias = "CXL HDM Decoder n Size High Register")]
    SizeHi = 0x0C,
    /// Decoder control and status.
    #[doc(alias = "CXL HDM Decoder n Control Register")]
    Control = 0x10,
    /// DPA skip bits 31:28 (target list low on ports).
    #[doc(alias = "CXL HDM Decoder n DPA Skip Low Register")]
    #[doc(alias = "CXL HDM Decoder n Target List Low Register")]
    DpaSkipLo = 0x14,
    /// DPA skip bits 63:32 (target list high on ports).
    #[doc(alias = "CXL HDM Decoder n DPA Skip High Register")]
    #[doc(alias = "CXL HDM Decoder n Target List High Register")]
    DpaSkipHi = 0x18,
}

impl DecoderRegister {
    fn from_offset(off: u64) -> Option<Self> {
        Some(match off {
            0x00 => Self::BaseLo,
            0x04 => Self::BaseHi,
            0x08 => Self::SizeLo,
            0x0C => Self::SizeHi,
            0x10 => Self::Control,
            0x14 => Self::DpaSkipLo,
            0x18 => Self::DpaSkipHi,
            _ => return None,
        })
    }
}

/// Offset of decoder `index`'s registers from the structure start.
pub const fn decoder_offset(index: usize) -> u64 {
    DECODER0_OFFSET + DECODER_STRIDE * index as u64
}

/// Size in bytes of an HDM decoder structure with `count` decoders.
pub const fn block_size(count: usize) -> u64 {
    decoder_offset(count)
}

/// Decoder count for a Decoder Count field value, `None` if reserved.
pub fn decoder_count_from_encoding(enc: u8) -> Option<usize> {
    match enc {
        0 => Some(1),
        1..=8 => Some(usize::from(enc) * 2),
        9..=0xC => Some(usize::from(enc - 9) * 4 + 20),
        _ => None,
    }
}

/// Decoder Count field value for `count` decoders, `None` if not encodable.
pub fn decoder_count_encoding(count: usize) -> Option<u8> {
    (0u8..=0xC).find(|&e| decoder_count_from_encoding(e) == Some(count))
}

/// HDM Decoder Capability register (CXL 3.1 8.2.4.20.1).
#[bitsize(32)]
#[derive(Clone, Copy, Default, PartialEq, Eq, DebugBits, FromBits)]
#[doc(alias = "CXL HDM Decoder Capability Register")]
pub struct HdmCapability {
    /// Decoder Count (encoded, see [`decoder_count_from_encoding`]).
    pub decoder_count: u4,
    /// Target Count (ports only; 0 on an endpoint).
    pub target_count: u4,
    /// Interleave on address bits 11:8 supported.
    #[doc(alias = "A11to8 Interleave Capable")]
    pub a11to8_interleave: bool,
    /// Interleave on address bits 14:12 supported.
    #[doc(alias = "A14to12 Interleave Capable")]
    pub a14to12_interleave: bool,
    /// Poison on decode error supported.
    #[doc(alias = "Poison On Decode Error Capability")]
    pub poison_on_decode_error: bool,
    /// 3, 6 and 12 way interleave supported.
    #[doc(alias = "3, 6, 12 Way Interleave Capable")]
    pub interleave_3_6_12_way: bool,
    /// 16 way interleave supported.
    #[doc(alias = "16 Way Interleave Capable")]
    pub interleave_16_way: bool,
    /// Unordered I/O supported.
    #[doc(alias = "UIO Capable")]
    pub uio: bool,
    reserved: u2,
    /// Number of UIO capable decoders.
    #[doc(alias = "UIO Capable Decoder Count")]
    pub uio_decoder_count: u4,
    /// `MemData-NXM` supported.
    #[doc(alias = "MemData-NXM Capable")]
    pub memdata_nxm: bool,
    reserved: u11,
}

/// HDM Decoder Global Control register (CXL 3.1 8.2.4.20.2).
#[bitsize(32)]
#[derive(Clone, Copy, Default, PartialEq, Eq, DebugBits, FromBits)]
#[doc(alias = "CXL HDM Decoder Global Control Register")]
pub struct GlobalControl {
    /// Poison on decode error enable.
    #[doc(alias = "Poison On Decode Error Enable")]
    pub poison_on_decode_error_enable: bool,
    /// HDM Decoder Enable: the device decodes HDM accesses.
    #[doc(alias = "HDM Decoder Enable")]
    pub hdm_decoder_enable: bool,
    reserved: u30,
}

/// HDM Decoder n Control register (CXL 3.1 8.2.4.20.7).
#[bitsize(32)]
#[derive(Clone, Copy, Default, PartialEq, Eq, DebugBits, FromBits)]
#[doc(alias = "CXL HDM Decoder n Control Register")]
pub struct DecoderControl {
    /// Interleave Granularity (encoded).
    #[doc(alias = "IG")]
    pub interleave_granularity: u4,
    /// Interleave Ways (encoded).
    #[doc(alias = "IW")]
    pub interleave_ways: u4,
    /// Lock On Commit: committing makes the decoder read-only until reset.
    #[doc(alias = "Lock On Commit")]
    pub lock_on_commit: bool,
    /// Commit: software asks for the programming to take effect.
    pub commit: bool,
    /// Committed (RO): the decoder is active.
    pub committed: bool,
    /// Error Not Committed (RO): the last commit failed.
    #[doc(alias = "Error Not Committed")]
    pub error_not_committed: bool,
    /// Target Type: 0 = device-coherent (Type 2), 1 = host-only (Type 3).
    #[doc(alias = "Target Device Type")]
    pub target_type: bool,
    /// Back-Invalidate enable.
    #[doc(alias = "BI")]
    pub bi: bool,
    /// Unordered I/O enable.
    #[doc(alias = "UIO")]
    pub uio: bool,
    reserved: bool,
    /// UIO interleave granularity.
    #[doc(alias = "UIG")]
    pub uio_interleave_granularity: u4,
    /// UIO interleave ways.
    #[doc(alias = "UIW")]
    pub uio_interleave_ways: u4,
    /// Interleave set position.
    #[doc(alias = "ISP")]
    pub interleave_set_position: u4,
    reserved: u4,
}

impl DecoderControl {
    /// Bits of the control register software may write on this device:
    /// IG, IW, `LOCK_ON_COMMIT`, COMMIT and `TARGET_TYPE`.
    pub const WRITABLE: u32 = 0x0000_13FF;

    /// True when the decoder is committed with Lock On Commit, i.e. frozen
    /// until reset.
    pub fn locked(self) -> bool {
        self.lock_on_commit() && self.committed()
    }
}

/// Why a commit was refused (the decoder then reports
/// `ERROR_NOT_COMMITTED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitError {
    /// SIZE is zero.
    SizeZero,
    /// SIZE is not a multiple of 256 MiB.
    SizeUnaligned,
    /// BASE is not a multiple of 256 MiB.
    BaseUnaligned,
    /// The range is not inside the presented window.
    OutsideWindow,
    /// The previous decoder is not committed.
    PreviousNotCommitted,
    /// The range starts below the end of the previous decoder's range.
    BelowPreviousDecoder,
    /// The range overlaps the committed decoder with this index.
    Overlap(usize),
    /// IW asks for interleaving, which this endpoint does not support.
    UnsupportedInterleaveWays(u8),
    /// IG is a reserved encoding.
    UnsupportedGranularity(u8),
    /// `TARGET_TYPE` asks for host-only coherency on a Type 2 device.
    UnsupportedTargetType,
}

impl fmt::Display for CommitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::SizeZero => write!(f, "size is zero"),
            Self::SizeUnaligned => write!(f, "size is not a multiple of 256 MiB"),
            Self::BaseUnaligned => write!(f, "base is not a multiple of 256 MiB"),
            Self::OutsideWindow => write!(f, "range is outside the memory window"),
            Self::PreviousNotCommitted => write!(f, "previous decoder is not committed"),
            Self::BelowPreviousDecoder => {
                write!(f, "range starts below the previous decoder's end")
            }
            Self::Overlap(i) => write!(f, "range overlaps committed decoder {i}"),
            Self::UnsupportedInterleaveWays(iw) => {
                write!(f, "interleave ways encoding {iw} not supported")
            }
            Self::UnsupportedGranularity(ig) => {
                write!(f, "interleave granularity encoding {ig} not supported")
            }
            Self::UnsupportedTargetType => {
                write!(f, "host-only target type on a Type 2 device")
            }
        }
    }
}

impl std::error::Error for CommitError {}

/// Errors of the VMM-facing operations of [`HdmDecoderBlock`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HdmError {
    /// The decoder count has no Decoder Count encoding.
    BadDecoderCount(usize),
    /// The window is empty.
    WindowEmpty,
    /// The window's start or end is not a multiple of 256 MiB.
    WindowUnaligned(Range<u64>),
    /// There is no decoder with this index.
    NoSuchDecoder(usize),
    /// The requested decoder state fails the commit checks.
    Rejected(CommitError),
}

impl fmt::Display for HdmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadDecoderCount(n) => write!(f, "{n} HDM decoders cannot be encoded"),
            Self::WindowEmpty => write!(f, "memory window is empty"),
            Self::WindowUnaligned(w) => write!(
                f,
                "memory window {:#x}..{:#x} is not 256 MiB aligned",
                w.start, w.end
            ),
            Self::NoSuchDecoder(i) => write!(f, "no HDM decoder {i}"),
            Self::Rejected(e) => write!(f, "decoder state rejected: {e}"),
        }
    }
}

impl std::error::Error for HdmError {}

/// A snapshot of one decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderState {
    /// Programmed base address.
    pub base: u64,
    /// Programmed size.
    pub size: u64,
    /// Programmed DPA skip.
    pub dpa_skip: u64,
    /// The control register.
    pub ctrl: DecoderControl,
    /// COMMITTED is set.
    pub committed: bool,
    /// Committed with Lock On Commit: read-only until reset.
    pub locked: bool,
    /// `ERROR_NOT_COMMITTED` is set.
    pub error: bool,
    /// Why the last commit failed, if it did.
    pub last_error: Option<CommitError>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Decoder {
    base: u64,
    size: u64,
    dpa_skip: u64,
    ctrl: DecoderControl,
    last_error: Option<CommitError>,
}

fn set_lo(v: u64, lo: u32) -> u64 {
    (v & !0xFFFF_FFFF) | u64::from(lo & LO_ADDR_MASK)
}

fn set_hi(v: u64, hi: u32) -> u64 {
    (v & 0xFFFF_FFFF) | (u64::from(hi) << 32)
}

/// The guest-visible HDM Decoder Capability structure of the endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HdmDecoderBlock {
    capability: HdmCapability,
    global: GlobalControl,
    decoders: Vec<Decoder>,
    window: Range<u64>,
}

impl HdmDecoderBlock {
    /// A block with `decoder_count` decoders, all uncommitted, whose
    /// decoders may only decode inside `window` (the guest physical range
    /// the VMM can back, normally the CXL fixed memory window).
    pub fn new(decoder_count: usize, window: Range<u64>) -> Result<Self, HdmError> {
        let enc = decoder_count_encoding(decoder_count)
            .ok_or(HdmError::BadDecoderCount(decoder_count))?;
        if window.start >= window.end {
            return Err(HdmError::WindowEmpty);
        }
        if window.start % HDM_GRANULARITY != 0 || window.end % HDM_GRANULARITY != 0 {
            return Err(HdmError::WindowUnaligned(window));
        }
        let mut capability = HdmCapability::default();
        capability.set_decoder_count(u4::new(enc));
        Ok(Self {
            capability,
            global: GlobalControl::default(),
            decoders: vec![Decoder::default(); decoder_count],
            window,
        })
    }

    /// Size in bytes of the structure.
    pub fn size(&self) -> u64 {
        block_size(self.decoders.len())
    }

    /// Number of decoders.
    pub fn decoder_count(&self) -> usize {
        self.decoders.len()
    }

    /// The window decoders must decode into.
    pub fn window(&self) -> Range<u64> {
        self.window.clone()
    }

    /// The capability register.
    pub fn capability(&self) -> HdmCapability {
        self.capability
    }

    /// The global control register.
    pub fn global_control(&self) -> GlobalControl {
        self.global
    }

    /// A snapshot of decoder `index`, `None` if there is no such decoder.
    pub fn decoder(&self, index: usize) -> Option<DecoderState> {
        let d = self.decoders.get(index)?;
        Some(DecoderState {
            base: d.base,
            size: d.size,
            dpa_skip: d.dpa_skip,
            ctrl: d.ctrl,
            committed: d.ctrl.committed(),
            locked: d.ctrl.locked(),
            error: d.ctrl.error_not_committed(),
            last_error: d.last_error,
        })
    }

    /// Back to the power-on state: every decoder uncommitted, unlocked and
    /// zero, HDM Decoder Enable clear.
    pub fn reset(&mut self) {
        self.global = GlobalControl::default();
        for d in &mut self.decoders {
            *d = Decoder::default();
        }
    }

    /// Presents decoder `index` as firmware left it: programmed with
    /// `base` and `size`, committed with Lock On Commit, 1 way,
    /// device-coherent.  Also sets HDM Decoder Enable.  The state must pass
    /// the same checks as a guest commit.
    pub fn present_committed_locked(
        &mut self,
        index: usize,
        base: u64,
        size: u64,
    ) -> Result<(), HdmError> {
        if index >= self.decoders.len() {
            return Err(HdmError::NoSuchDecoder(index));
        }
        let mut ctrl = DecoderControl::default();
        ctrl.set_lock_on_commit(true);
        ctrl.set_commit(true);
        let candidate = Decoder {
            base,
            size,
            dpa_skip: 0,
            ctrl,
            last_error: None,
        };
        self.check_commit(index, &candidate)
            .map_err(HdmError::Rejected)?;
        let d = &mut self.decoders[index];
        *d = candidate;
        d.ctrl.set_committed(true);
        self.global.set_hdm_decoder_enable(true);
        Ok(())
    }

    /// Reads `size` (4 or 8) bytes at `offset` from the structure start.
    /// Misaligned, odd-sized and out-of-range reads return 0.
    pub fn read(&self, offset: u64, size: u32) -> u64 {
        match size {
            4 if offset % 4 == 0 => u64::from(self.read_dword(offset)),
            8 if offset % 8 == 0 => {
                u64::from(self.read_dword(offset)) | (u64::from(self.read_dword(offset + 4)) << 32)
            }
            _ => 0,
        }
    }

    /// Writes `size` (4 or 8) bytes at `offset` from the structure start.
    /// Misaligned, odd-sized and out-of-range writes are ignored.
    pub fn write(&mut self, offset: u64, size: u32, value: u64) {
        match size {
            4 if offset % 4 == 0 => self.write_dword(offset, value as u32),
            8 if offset % 8 == 0 => {
                self.write_dword(offset, value as u32);
                self.write_dword(offset + 4, (value >> 32) as u32);
            }
            _ => {}
        }
    }

    fn locate(&self, offset: u64) -> Option<(usize, DecoderRegister)> {
        let rel = offset.checked_sub(DECODER0_OFFSET)?;
        let index = usize::try_from(rel / DECODER_STRIDE).ok()?;
        if index >= self.decoders.len() {
            return None;
        }
        Some((index, DecoderRegister::from_offset(rel % DECODER_STRIDE)?))
    }

    fn read_dword(&self, offset: u64) -> u32 {
        match offset {
            0x00 => return u32::from(self.capability),
            0x04 => return u32::from(self.global),
            _ => {}
        }
        let Some((i, reg)) = self.locate(offset) else {
            return 0;
        };
        let d = &self.decoders[i];
        match reg {
            DecoderRegister::BaseLo => d.base as u32,
            DecoderRegister::BaseHi => (d.base >> 32) as u32,
            DecoderRegister::SizeLo => d.size as u32,
            DecoderRegister::SizeHi => (d.size >> 32) as u32,
            DecoderRegister::Control => u32::from(d.ctrl),
            DecoderRegister::DpaSkipLo => d.dpa_skip as u32,
            DecoderRegister::DpaSkipHi => (d.dpa_skip >> 32) as u32,
        }
    }

    fn write_dword(&mut self, offset: u64, value: u32) {
        if offset == HdmRegister::GlobalControl as u64 {
            // While a decoder is locked the decode path is the VMM's (its
            // memory stays mapped whatever the guest writes), so the enable
            // that governs it is read-only too, where CXL 3.1 would leave
            // it RW: the guest never sees a disabled decoder that still
            // decodes.
            if self.decoders.iter().any(|d| d.ctrl.locked()) {
                return;
            }
            // Poison on decode error is not supported (capability bit 0),
            // so only the enable bit is writable.
            let v = GlobalControl::from(value);
            self.global.set_hdm_decoder_enable(v.hdm_decoder_enable());
            return;
        }
        let Some((i, reg)) = self.locate(offset) else {
            return;
        };
        let d = &mut self.decoders[i];
        if d.ctrl.locked() {
            return;
        }
        let committed = d.ctrl.committed();
        match reg {
            DecoderRegister::Control => self.write_control(i, value),
            _ if committed => {}
            DecoderRegister::BaseLo => d.base = set_lo(d.base, value),
            DecoderRegister::BaseHi => d.base = set_hi(d.base, value),
            DecoderRegister::SizeLo => d.size = set_lo(d.size, value),
            DecoderRegister::SizeHi => d.size = set_hi(d.size, value),
            DecoderRegister::DpaSkipLo => d.dpa_skip = set_lo(d.dpa_skip, value),
            DecoderRegister::DpaSkipHi => d.dpa_skip = set_hi(d.dpa_skip, value),
        }
    }

    fn write_control(&mut self, i: usize, value: u32) {
        let new = DecoderControl::from(value);
        let old = self.decoders[i].ctrl;
        if old.committed() {
            // Only COMMIT is honoured on a committed (unlocked) decoder.
            if !new.commit() {
                let d = &mut self.decoders[i];
                d.ctrl.set_commit(false);
                d.ctrl.set_committed(false);
                d.ctrl.set_error_not_committed(false);
            }
            return;
        }
        let status = u32::from(old) & !DecoderControl::WRITABLE;
        let mut ctrl = DecoderControl::from(status | (value & DecoderControl::WRITABLE));
        if !new.commit() {
            ctrl.set_error_not_committed(false);
            self.decoders[i].last_error = None;
        } else if !old.commit() {
            let candidate = Decoder {
                ctrl,
                ..self.decoders[i]
            };
            match self.check_commit(i, &candidate) {
                Ok(()) => {
                    ctrl.set_committed(true);
                    ctrl.set_error_not_committed(false);
                    self.decoders[i].last_error = None;
                }
                Err(e) => {
                    ctrl.set_error_not_committed(true);
                    self.decoders[i].last_error = Some(e);
                }
            }
        }
        self.decoders[i].ctrl = ctrl;
    }

    /// The checks a commit of decoder `i` with state `d` must pass.
    fn check_commit(&self, i: usize, d: &Decoder) -> Result<(), CommitError> {
        let iw = u8::from(d.ctrl.interleave_ways());
        if iw != 0 {
            return Err(CommitError::UnsupportedInterleaveWays(iw));
        }
        let ig = u8::from(d.ctrl.interleave_granularity());
        if ig > MAX_IG_ENCODING {
            return Err(CommitError::UnsupportedGranularity(ig));
        }
        if d.ctrl.target_type() {
            return Err(CommitError::UnsupportedTargetType);
        }
        if d.size == 0 {
            return Err(CommitError::SizeZero);
        }
        if d.size % HDM_GRANULARITY != 0 {
            return Err(CommitError::SizeUnaligned);
        }
        if d.base % HDM_GRANULARITY != 0 {
            return Err(CommitError::BaseUnaligned);
        }
        let end = d
            .base
            .checked_add(d.size)
            .ok_or(CommitError::OutsideWindow)?;
        if d.base < self.window.start || end > self.window.end {
            return Err(CommitError::OutsideWindow);
        }
        if i > 0 {
            let prev = &self.decoders[i - 1];
            if !prev.ctrl.committed() {
                return Err(CommitError::PreviousNotCommitted);
            }
            if d.base < prev.base.saturating_add(prev.size) {
                return Err(CommitError::BelowPreviousDecoder);
            }
        }
        for (j, o) in self.decoders.iter().enumerate() {
            if j != i && o.ctrl.committed() && d.base < o.base + o.size && o.base < end {
                return Err(CommitError::Overlap(j));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const WIN: Range<u64> = 0x10_0000_0000..0x11_0000_0000;

    fn block(n: usize) -> HdmDecoderBlock {
        HdmDecoderBlock::new(n, WIN).unwrap()
    }

    fn ctrl_off(i: usize) -> u64 {
        decoder_offset(i) + DecoderRegister::Control as u64
    }

    fn program(b: &mut HdmDecoderBlock, i: usize, base: u64, size: u64) {
        let o = decoder_offset(i);
        b.write(o, 8, base);
        b.write(o + 8, 8, size);
    }

    fn commit(b: &mut HdmDecoderBlock, i: usize, extra: u32) {
        b.write(ctrl_off(i), 4, u64::from(extra | 1 << 9));
    }

    fn ctrl(b: &HdmDecoderBlock, i: usize) -> DecoderControl {
        DecoderControl::from(b.read(ctrl_off(i), 4) as u32)
    }

    #[test]
    fn new_rejects_unencodable_count() {
        for n in [0, 3, 5, 17, 18, 33] {
            assert_eq!(
                HdmDecoderBlock::new(n, WIN),
                Err(HdmError::BadDecoderCount(n))
            );
        }
        for n in [1, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32] {
            assert!(HdmDecoderBlock::new(n, WIN).is_ok(), "{n}");
        }
    }

    #[test]
    fn new_rejects_bad_window() {
        assert_eq!(
            HdmDecoderBlock::new(1, GIB..GIB),
            Err(HdmError::WindowEmpty)
        );
        assert_eq!(
            HdmDecoderBlock::new(1, GIB + 4096..2 * GIB),
            Err(HdmError::WindowUnaligned(GIB + 4096..2 * GIB))
        );
    }

    #[test]
    fn size_is_header_plus_decoders() {
        assert_eq!(block(1).size(), 0x30);
        assert_eq!(block(4).size(), 0x90);
    }

    #[test]
    fn capability_reports_decoder_count_encoding() {
        assert_eq!(block(1).read(0, 4), 0);
        assert_eq!(block(2).read(0, 4) & 0xF, 1);
        assert_eq!(block(8).read(0, 4) & 0xF, 4);
        assert_eq!(block(20).read(0, 4) & 0xF, 9);
    }

    #[test]
    fn capability_register_is_read_only() {
        let mut b = block(2);
        b.write(0, 4, 0xFFFF_FFFF);
        assert_eq!(b.read(0, 4), 1);
    }

    #[test]
    fn global_control_hdm_decoder_enable_is_writable() {
        let mut b = block(1);
        b.write(4, 4, 0b10);
        assert!(b.global_control().hdm_decoder_enable());
        assert_eq!(b.read(4, 4), 2);
        b.write(4, 4, 0);
        assert_eq!(b.read(4, 4), 0);
    }

    #[test]
    fn global_control_read_only_while_a_decoder_is_locked() {
        let mut b = block(1);
        b.present_committed_locked(0, WIN.start, 0x1000_0000)
            .unwrap();
        assert!(b.global_control().hdm_decoder_enable());
        b.write(4, 4, 0);
        assert!(b.global_control().hdm_decoder_enable());
        b.reset();
        b.write(4, 4, 0b10);
        assert!(b.global_control().hdm_decoder_enable());
    }

    #[test]
    fn global_control_reserved_and_poison_bits_read_zero() {
        let mut b = block(1);
        b.write(4, 4, 0xFFFF_FFFD);
        assert_eq!(b.read(4, 4), 0);
    }

    #[test]
    fn base_lo_low_bits_are_reserved() {
        let mut b = block(1);
        b.write(decoder_offset(0), 4, 0xFFFF_FFFF);
        b.write(decoder_offset(0) + 8, 4, 0x1234_5678);
        b.write(decoder_offset(0) + 0x14, 4, 0x0FFF_FFFF);
        assert_eq!(b.read(decoder_offset(0), 4), 0xF000_0000);
        assert_eq!(b.read(decoder_offset(0) + 8, 4), 0x1000_0000);
        assert_eq!(b.read(decoder_offset(0) + 0x14, 4), 0);
    }

    #[test]
    fn high_dwords_are_fully_writable() {
        let mut b = block(1);
        b.write(decoder_offset(0) + 4, 4, 0xDEAD_BEEF);
        b.write(decoder_offset(0) + 0x18, 4, 0x1234_5678);
        assert_eq!(b.read(decoder_offset(0) + 4, 4), 0xDEAD_BEEF);
        assert_eq!(b.read(decoder_offset(0) + 0x18, 4), 0x1234_5678);
    }

    #[test]
    fn control_read_only_and_reserved_bits_ignore_writes() {
        let mut b = block(1);
        // COMMIT clear so no commit is attempted; everything else set.
        b.write(ctrl_off(0), 4, u64::from(!(1u32 << 9)));
        let c = ctrl(&b, 0);
        assert!(!c.committed());
        assert!(!c.error_not_committed());
        assert!(!c.bi());
        assert!(!c.uio());
        assert_eq!(u32::from(c), 0x13FF & !(1 << 9));
    }

    #[test]
    fn unaligned_and_odd_accesses_read_zero_and_are_ignored() {
        let mut b = block(1);
        program(&mut b, 0, WIN.start, GIB);
        assert_eq!(b.read(decoder_offset(0) + 2, 4), 0);
        assert_eq!(b.read(decoder_offset(0) + 4, 8), 0);
        assert_eq!(b.read(decoder_offset(0), 2), 0);
        assert_eq!(b.read(decoder_offset(0), 1), 0);
        b.write(decoder_offset(0) + 4, 8, 0);
        b.write(decoder_offset(0), 2, 0);
        assert_eq!(b.read(decoder_offset(0), 8), WIN.start);
    }

    #[test]
    fn out_of_range_reads_zero() {
        let mut b = block(1);
        b.write(0x30, 4, 0xFFFF_FFFF);
        assert_eq!(b.read(0x30, 4), 0);
        assert_eq!(b.read(0x8, 4), 0);
        assert_eq!(b.read(u64::MAX - 3, 4), 0);
        assert_eq!(b.read(decoder_offset(0) + 0x1C, 4), 0);
    }

    #[test]
    fn eight_byte_access_covers_two_registers() {
        let mut b = block(1);
        b.write(decoder_offset(0), 8, 0x0000_0012_3000_0000);
        assert_eq!(b.read(decoder_offset(0), 4), 0x3000_0000);
        assert_eq!(b.read(decoder_offset(0) + 4, 4), 0x12);
        assert_eq!(b.read(decoder_offset(0), 8), 0x0000_0012_3000_0000);
    }

    #[test]
    fn commit_succeeds_with_valid_range() {
        let mut b = block(2);
        program(&mut b, 0, WIN.start, GIB);
        commit(&mut b, 0, 0);
        let s = b.decoder(0).unwrap();
        assert!(s.committed && !s.error && !s.locked);
        assert!(s.ctrl.commit());
    }

    fn assert_commit_fails(b: &mut HdmDecoderBlock, i: usize, e: CommitError) {
        commit(b, i, 0);
        let s = b.decoder(i).unwrap();
        assert!(!s.committed);
        assert!(s.error);
        assert_eq!(s.last_error, Some(e));
    }

    #[test]
    fn commit_rejects_zero_size() {
        let mut b = block(1);
        program(&mut b, 0, WIN.start, 0);
        assert_commit_fails(&mut b, 0, CommitError::SizeZero);
    }

    #[test]
    fn commit_rejects_unaligned_size() {
        // SIZE_LO's low bits are reserved, so software cannot express an
        // unaligned size; the VMM-side check still refuses one.
        let mut b = block(1);
        program(&mut b, 0, WIN.start, GIB + 4096);
        assert_eq!(b.decoder(0).unwrap().size, GIB);
        assert_eq!(
            b.present_committed_locked(0, WIN.start, GIB + 4096),
            Err(HdmError::Rejected(CommitError::SizeUnaligned))
        );
    }

    #[test]
    fn commit_rejects_unaligned_base() {
        let mut b = block(1);
        assert_eq!(
            b.present_committed_locked(0, WIN.start + 4096, GIB),
            Err(HdmError::Rejected(CommitError::BaseUnaligned))
        );
    }

    #[test]
    fn commit_rejects_range_outside_window() {
        let mut b = block(1);
        program(&mut b, 0, WIN.end - GIB / 4, GIB);
        assert_commit_fails(&mut b, 0, CommitError::OutsideWindow);
        let mut below = block(1);
        program(&mut below, 0, WIN.start - GIB, GIB);
        assert_commit_fails(&mut below, 0, CommitError::OutsideWindow);
        let mut wraps = block(1);
        program(&mut wraps, 0, 0xFFFF_FFFF_F000_0000, 0xFFFF_FFFF_F000_0000);
        assert_commit_fails(&mut wraps, 0, CommitError::OutsideWindow);
    }

    #[test]
    fn commit_rejects_out_of_order() {
        let mut b = block(2);
        program(&mut b, 1, WIN.start, GIB);
        assert_commit_fails(&mut b, 1, CommitError::PreviousNotCommitted);
    }

    #[test]
    fn commit_rejects_below_previous_decoder() {
        let mut b = block(2);
        program(&mut b, 0, WIN.start + GIB, GIB);
        commit(&mut b, 0, 0);
        program(&mut b, 1, WIN.start, GIB);
        assert_commit_fails(&mut b, 1, CommitError::BelowPreviousDecoder);
    }

    #[test]
    fn commit_rejects_overlap_with_committed_decoder() {
        let mut b = block(4);
        program(&mut b, 0, WIN.start, GIB);
        commit(&mut b, 0, 0);
        program(&mut b, 1, WIN.start + GIB, GIB);
        commit(&mut b, 1, 0);
        // Uncommit decoder 0 then try to put it over decoder 1.
        b.write(ctrl_off(0), 4, 0);
        program(&mut b, 0, WIN.start + GIB, GIB);
        assert_commit_fails(&mut b, 0, CommitError::Overlap(1));
    }

    #[test]
    fn commit_rejects_interleave() {
        let mut b = block(1);
        program(&mut b, 0, WIN.start, GIB);
        commit(&mut b, 0, 1 << 4);
        assert_eq!(
            b.decoder(0).unwrap().last_error,
            Some(CommitError::UnsupportedInterleaveWays(1))
        );
        assert!(b.decoder(0).unwrap().error);
    }

    #[test]
    fn commit_rejects_reserved_granularity() {
        let mut b = block(1);
        program(&mut b, 0, WIN.start, GIB);
        commit(&mut b, 0, 7);
        assert_eq!(
            b.decoder(0).unwrap().last_error,
            Some(CommitError::UnsupportedGranularity(7))
        );
    }

    #[test]
    fn commit_accepts_defined_granularity() {
        let mut b = block(1);
        program(&mut b, 0, WIN.start, GIB);
        commit(&mut b, 0, 6);
        assert!(b.decoder(0).unwrap().committed);
    }

    #[test]
    fn commit_rejects_host_only_target_type() {
        let mut b = block(1);
        program(&mut b, 0, WIN.start, GIB);
        commit(&mut b, 0, 1 << 12);
        assert_eq!(
            b.decoder(0).unwrap().last_error,
            Some(CommitError::UnsupportedTargetType)
        );
    }

    #[test]
    fn commit_is_edge_triggered() {
        let mut b = block(1);
        program(&mut b, 0, WIN.start, 0);
        assert_commit_fails(&mut b, 0, CommitError::SizeZero);
        // Still COMMIT=1: fixing the size and writing COMMIT=1 again does
        // not retry.  (SIZE is writable: the decoder is not committed.)
        program(&mut b, 0, WIN.start, GIB);
        commit(&mut b, 0, 0);
        assert!(!b.decoder(0).unwrap().committed);
        // Clearing COMMIT clears the error; the next edge commits.
        b.write(ctrl_off(0), 4, 0);
        assert!(!b.decoder(0).unwrap().error);
        commit(&mut b, 0, 0);
        assert!(b.decoder(0).unwrap().committed);
    }

    #[test]
    fn decommit_clears_committed_on_unlocked_decoder() {
        let mut b = block(1);
        program(&mut b, 0, WIN.start, GIB);
        commit(&mut b, 0, 0);
        b.write(ctrl_off(0), 4, 0);
        let s = b.decoder(0).unwrap();
        assert!(!s.committed && !s.ctrl.commit() && !s.error);
    }

    #[test]
    fn base_size_writes_ignored_while_committed() {
        let mut b = block(1);
        program(&mut b, 0, WIN.start, GIB);
        commit(&mut b, 0, 0);
        program(&mut b, 0, WIN.start + GIB, 2 * GIB);
        b.write(decoder_offset(0) + 0x14, 8, 0x1_0000_0000);
        let s = b.decoder(0).unwrap();
        assert_eq!((s.base, s.size, s.dpa_skip), (WIN.start, GIB, 0));
    }

    #[test]
    fn control_fields_ignored_while_committed_except_commit() {
        let mut b = block(1);
        program(&mut b, 0, WIN.start, GIB);
        commit(&mut b, 0, 0);
        // Setting LOCK_ON_COMMIT or IG after the fact changes nothing.
        commit(&mut b, 0, 1 << 8 | 3);
        let s = b.decoder(0).unwrap();
        assert!(s.committed && !s.locked);
        assert_eq!(u8::from(s.ctrl.interleave_granularity()), 0);
    }

    #[test]
    fn lock_on_commit_makes_decoder_read_only() {
        let mut b = block(1);
        program(&mut b, 0, WIN.start, GIB);
        commit(&mut b, 0, 1 << 8);
        let before = b.decoder(0).unwrap();
        assert!(before.locked);
        b.write(ctrl_off(0), 4, 0);
        program(&mut b, 0, WIN.start + GIB, GIB);
        b.write(decoder_offset(0) + 0x14, 8, u64::MAX);
        assert_eq!(b.decoder(0).unwrap(), before);
    }

    #[test]
    fn lock_on_commit_without_commit_does_not_lock() {
        let mut b = block(1);
        program(&mut b, 0, WIN.start, 0);
        // Failed commit with LOCK set: not committed, so not locked.
        commit(&mut b, 0, 1 << 8);
        assert!(!b.decoder(0).unwrap().locked);
        b.write(ctrl_off(0), 4, 0);
        program(&mut b, 0, WIN.start, GIB);
        assert_eq!(b.decoder(0).unwrap().size, GIB);
    }

    #[test]
    fn reset_clears_lock_and_commit() {
        let mut b = block(2);
        b.present_committed_locked(0, WIN.start, GIB).unwrap();
        b.reset();
        let s = b.decoder(0).unwrap();
        assert!(!s.committed && !s.locked && !s.error);
        assert_eq!((s.base, s.size), (0, 0));
        assert!(!b.global_control().hdm_decoder_enable());
        program(&mut b, 0, WIN.start, GIB);
        assert_eq!(b.decoder(0).unwrap().size, GIB);
    }

    #[test]
    fn present_committed_locked_sets_firmware_state() {
        let mut b = block(1);
        b.present_committed_locked(0, WIN.start, 4 * GIB).unwrap();
        let s = b.decoder(0).unwrap();
        assert!(s.committed && s.locked && !s.error);
        assert!(s.ctrl.commit() && !s.ctrl.target_type());
        assert_eq!((s.base, s.size), (WIN.start, 4 * GIB));
        assert_eq!(b.read(4, 4), 2);
        assert_eq!(b.read(ctrl_off(0), 4), 0x700);
        assert_eq!(b.read(decoder_offset(0), 4), 0);
        assert_eq!(b.read(decoder_offset(0) + 4, 4), 0x10);
        assert_eq!(b.read(decoder_offset(0) + 0xC, 4), 1);
    }

    #[test]
    fn present_committed_locked_checks_index_and_range() {
        let mut b = block(2);
        assert_eq!(
            b.present_committed_locked(2, WIN.start, GIB),
            Err(HdmError::NoSuchDecoder(2))
        );
        assert_eq!(
            b.present_committed_locked(0, WIN.end, GIB),
            Err(HdmError::Rejected(CommitError::OutsideWindow))
        );
        assert_eq!(
            b.present_committed_locked(1, WIN.start, GIB),
            Err(HdmError::Rejected(CommitError::PreviousNotCommitted))
        );
        assert!(b.decoder(5).is_none());
    }

    #[test]
    fn present_committed_locked_may_reinstate_after_reset() {
        let mut b = block(1);
        b.present_committed_locked(0, WIN.start, GIB).unwrap();
        b.reset();
        b.present_committed_locked(0, WIN.start, GIB).unwrap();
        assert!(b.decoder(0).unwrap().locked);
    }

    #[test]
    fn decoder_count_encoding_roundtrip() {
        for e in 0..=0xF {
            if let Some(n) = decoder_count_from_encoding(e) {
                assert_eq!(decoder_count_encoding(n), Some(e));
            } else {
                assert!(e > 0xC);
            }
        }
    }

    #[test]
    fn errors_display() {
        assert!(HdmError::Rejected(CommitError::Overlap(3))
            .to_string()
            .contains("decoder 3"));
    }
}
