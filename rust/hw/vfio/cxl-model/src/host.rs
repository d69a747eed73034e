// SPDX-License-Identifier: GPL-2.0-or-later

//! The kernel's shadow of the component registers (the `COMP_REGS` region),
//! as each uAPI posting serves it.
//!
//! This is what the simulator answers region reads and writes with, and
//! what the device's tests expect from a real host.  The layout is one
//! CXL.cachemem area with a capability array (CXL, RAS, Link, HDM entries)
//! and a single HDM decoder, which firmware committed and locked at the
//! host physical address of the device memory.
//!
//! The rules per posting, as read from the kernel series (the v3 patch on
//! the mailing list; `NVIDIA/NV-Kernels` for v2; `legoater/linux`,
//! `drivers/vfio/pci/cxl/vfio_cxl_core.c`, for v4):
//!
//! v4 (region offset 0 = the HDM Decoder Capability block, size = that
//! block's, 0x10 + 0x20 per decoder; accesses must start 4-aligned, inside
//! the region, with a length that is a multiple of 4, else `EINVAL`; an
//! access that runs past the end is shortened to the end, as the kernel's
//! `min(count, len - pos)` does):
//! - reads are live from the decoder the host committed: COMMIT,
//!   COMMITTED and `LOCK_ON_COMMIT` set, BASE = the host physical address;
//! - every write is absorbed: accepted, never stored, never forwarded;
//! - a reset (every kind runs a CXL reset in v4) restores the decoder
//!   firmware committed.
//!
//! v3 (region offset 0 = block offset 0, size 64 KiB, accesses of any
//! multiple of 4 bytes, 4-aligned):
//! - below 0x1000 reads 0 and writes are dropped;
//! - the capability array is read-only;
//! - decoder BASE/SIZE writes are dropped while COMMITTED or
//!   `LOCK_ON_COMMIT` is set;
//! - on a committed decoder only COMMIT is honoured: COMMIT=0 clears
//!   COMMIT, COMMITTED and `LOCK_ON_COMMIT`;
//! - COMMIT=1 on an uncommitted decoder sets COMMITTED at once;
//! - BASE holds the host physical address; reset changes nothing.
//!
//! v2 (region offset 0 = block offset 0x1000, size = capability array up
//! to the end of the HDM structure, accesses of exactly 4 bytes, 4-aligned):
//! - reserved bits are masked on write;
//! - on a committed decoder `LOCK_ON_COMMIT` is cleared and BASE zeroed at
//!   open and after every reset, so that the VMM writes the guest address;
//! - CTRL bits 10 to 12 are read-only; COMMITTED mirrors COMMIT.
//!
//! Where the sources are silent this model picks the conservative reading:
//! registers other than HDM global control and the decoder's own are
//! read-only (RAS, Link and the HDM capability register); in v3 the DPA
//! skip registers follow the BASE/SIZE rule; v3 stores values unmasked
//! and forces COMMITTED to follow COMMIT and `ERROR_NOT_COMMITTED` to 0 when
//! an uncommitted decoder's CTRL is written.

use std::fmt;

use crate::component::{
    build_capability_array, CapabilityEntry, CAP_ARRAY_OFFSET, CAP_ID_HDM_DECODER, CAP_ID_LINK,
    CAP_ID_RAS, COMPONENT_BLOCK_SIZE,
};
use crate::hdm::{self, DecoderRegister, HdmRegister, LO_ADDR_MASK};
pub use crate::uapi::UapiVersion;

/// Pointer (from the capability array) of the RAS structure in the shadow.
pub const HOST_RAS_POINTER: u16 = 0x20;

/// Pointer of the Link structure in the shadow.
pub const HOST_LINK_POINTER: u16 = 0x80;

/// Pointer of the HDM decoder structure in the shadow.
pub const HOST_HDM_POINTER: u16 = 0x100;

/// Block offset of the HDM decoder structure in the shadow.
pub const HOST_HDM_BLOCK_OFFSET: u64 = CAP_ARRAY_OFFSET + HOST_HDM_POINTER as u64;

/// Block offset of decoder 0's registers in the shadow.
pub const HOST_DECODER0_BLOCK_OFFSET: u64 = HOST_HDM_BLOCK_OFFSET + hdm::DECODER0_OFFSET;

const CTRL_LOCK: u32 = 1 << 8;
const CTRL_COMMIT: u32 = 1 << 9;
const CTRL_COMMITTED: u32 = 1 << 10;
const CTRL_ERROR: u32 = 1 << 11;
/// v2: CTRL bits 10 to 12 are read-only.
const V2_CTRL_RO: u32 = 0x1C00;
/// v2: bits of CTRL the kernel defines (IG to UIO); the rest is masked.
const V2_CTRL_DEFINED: u32 = 0x7FFF;
/// v2: defined bits of HDM global control.
const V2_GLOBAL_DEFINED: u32 = 0x3;

/// Why a `COMP_REGS` access was refused.  The kernel answers both with
/// `EINVAL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// Size or alignment not accepted by this uAPI version (v2: exactly 4
    /// bytes, 4-aligned; v3: a non-zero multiple of 4 bytes, 4-aligned;
    /// v4: a multiple of 4 bytes, 4-aligned).
    Invalid,
    /// The access does not lie inside the region (v4: does not start
    /// inside it).
    OutOfRange,
}

impl AccessError {
    /// The errno the kernel returns for this access.
    pub fn errno(&self) -> i32 {
        // EINVAL on Linux.
        22
    }
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid => write!(f, "COMP_REGS access of invalid size or alignment"),
            Self::OutOfRange => write!(f, "COMP_REGS access outside the region"),
        }
    }
}

impl std::error::Error for AccessError {}

/// Decoder 0 as the shadow holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostDecoder {
    /// BASE (high and low dwords).
    pub base: u64,
    /// SIZE (high and low dwords).
    pub size: u64,
    /// The raw CTRL dword.
    pub ctrl: u32,
}

impl HostDecoder {
    /// COMMITTED is set.
    pub fn committed(&self) -> bool {
        self.ctrl & CTRL_COMMITTED != 0
    }

    /// `LOCK_ON_COMMIT` is set.
    pub fn lock_on_commit(&self) -> bool {
        self.ctrl & CTRL_LOCK != 0
    }

    /// COMMIT is set.
    pub fn commit(&self) -> bool {
        self.ctrl & CTRL_COMMIT != 0
    }
}

/// The kernel's `COMP_REGS` shadow for one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostCompRegs {
    version: UapiVersion,
    hpa_base: u64,
    size: u64,
    committed: bool,
    cap_array_len: u64,
    /// The whole 64 KiB block, little-endian.
    block: Vec<u8>,
}

fn dec_reg(r: DecoderRegister) -> u64 {
    HOST_DECODER0_BLOCK_OFFSET + r as u64
}

impl HostCompRegs {
    /// The shadow right after the device is opened.
    ///
    /// With `committed`, decoder 0 holds what firmware left: `hpa_base`,
    /// `size`, `LOCK_ON_COMMIT`, COMMIT and COMMITTED, and HDM Decoder Enable
    /// is set; v2 then applies its open-time rewrite.  Without it, the
    /// decoder is all zero.
    pub fn new(version: UapiVersion, hpa_base: u64, size: u64, committed: bool) -> Self {
        let entries = [
            CapabilityEntry {
                id: CAP_ID_RAS,
                version: 2,
                pointer: HOST_RAS_POINTER,
            },
            CapabilityEntry {
                id: CAP_ID_LINK,
                version: 2,
                pointer: HOST_LINK_POINTER,
            },
            CapabilityEntry {
                id: CAP_ID_HDM_DECODER,
                version: 3,
                pointer: HOST_HDM_POINTER,
            },
        ];
        let array = build_capability_array(&entries);
        let mut regs = Self {
            version,
            hpa_base,
            size,
            committed,
            cap_array_len: array.len() as u64,
            block: vec![0; COMPONENT_BLOCK_SIZE as usize],
        };
        let at = CAP_ARRAY_OFFSET as usize;
        regs.block[at..at + array.len()].copy_from_slice(&array);
        regs.load_firmware_decoder();
        regs
    }

    /// Puts decoder 0 and global control back to what hardware holds (FLR
    /// does not touch CXL.mem state), then applies v2's rewrite.
    fn load_firmware_decoder(&mut self) {
        let (base, size, ctrl, global) = if self.committed {
            (
                self.hpa_base,
                self.size,
                CTRL_LOCK | CTRL_COMMIT | CTRL_COMMITTED,
                2,
            )
        } else {
            (0, 0, 0, 0)
        };
        // The HDM capability register: one decoder (encoding 0), nothing
        // else advertised.
        self.set_block_dword(HOST_HDM_BLOCK_OFFSET, 0);
        self.set_block_dword(
            HOST_HDM_BLOCK_OFFSET + HdmRegister::GlobalControl as u64,
            global,
        );
        self.set_qword(dec_reg(DecoderRegister::BaseLo), base);
        self.set_qword(dec_reg(DecoderRegister::SizeLo), size);
        self.set_block_dword(dec_reg(DecoderRegister::Control), ctrl);
        self.set_qword(dec_reg(DecoderRegister::DpaSkipLo), 0);
        if self.version == UapiVersion::V2 && ctrl & CTRL_COMMITTED != 0 {
            self.set_qword(dec_reg(DecoderRegister::BaseLo), 0);
            self.set_block_dword(dec_reg(DecoderRegister::Control), ctrl & !CTRL_LOCK);
        }
    }

    fn set_qword(&mut self, block_offset: u64, v: u64) {
        self.set_block_dword(block_offset, v as u32);
        self.set_block_dword(block_offset + 4, (v >> 32) as u32);
    }

    /// The uAPI version this shadow follows.
    pub fn version(&self) -> UapiVersion {
        self.version
    }

    /// Size of the `COMP_REGS` region.
    pub fn region_size(&self) -> u64 {
        match self.version {
            UapiVersion::V4 => hdm::block_size(1),
            UapiVersion::V3 => COMPONENT_BLOCK_SIZE,
            UapiVersion::V2 => u64::from(HOST_HDM_POINTER) + hdm::block_size(1),
        }
    }

    /// The block offset that region offset 0 corresponds to.
    pub fn region_offset_of_block(&self) -> u64 {
        match self.version {
            UapiVersion::V4 => HOST_HDM_BLOCK_OFFSET,
            UapiVersion::V3 => 0,
            UapiVersion::V2 => CAP_ARRAY_OFFSET,
        }
    }

    /// Checks an access of `len` bytes at region `offset` and returns the
    /// block offset it starts at and how many bytes the host transfers.
    fn check(&self, offset: u64, len: usize) -> Result<(u64, usize), AccessError> {
        let len64 = len as u64;
        let size_ok = match self.version {
            UapiVersion::V2 => len64 == 4,
            UapiVersion::V3 => len64 != 0 && len64 % 4 == 0,
            UapiVersion::V4 => len64 % 4 == 0,
        };
        if !size_ok || offset % 4 != 0 {
            return Err(AccessError::Invalid);
        }
        let size = self.region_size();
        let done = match (self.version, offset.checked_add(len64)) {
            (UapiVersion::V4, _) if offset < size => len64.min(size - offset),
            (UapiVersion::V2 | UapiVersion::V3, Some(end)) if end <= size => len64,
            _ => return Err(AccessError::OutOfRange),
        };
        Ok((offset + self.region_offset_of_block(), done as usize))
    }

    /// Reads up to `buf.len()` bytes at region `offset` and returns how
    /// many were read: all of them, except that v4 stops at the end of the
    /// region.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize, AccessError> {
        let (start, n) = self.check(offset, buf.len())?;
        let start = start as usize;
        buf[..n].copy_from_slice(&self.block[start..start + n]);
        Ok(n)
    }

    /// Writes `data` at region `offset`, applying the shadow rules dword by
    /// dword, and returns how many bytes the host accepted (as for
    /// [`Self::read`]).
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<usize, AccessError> {
        let (start, n) = self.check(offset, data.len())?;
        for (i, c) in data[..n].chunks_exact(4).enumerate() {
            let v = crate::uapi::rd_u32(c, 0).unwrap_or(0);
            let bo = start + 4 * i as u64;
            match self.version {
                UapiVersion::V2 => self.write_v2(bo, v),
                UapiVersion::V3 => self.write_v3(bo, v),
                // Absorbed: the host committed and locked the decoder.
                UapiVersion::V4 => {}
            }
        }
        Ok(n)
    }

    fn decoder_reg_at(bo: u64) -> Option<DecoderRegister> {
        let rel = bo.checked_sub(HOST_DECODER0_BLOCK_OFFSET)?;
        [
            DecoderRegister::BaseLo,
            DecoderRegister::BaseHi,
            DecoderRegister::SizeLo,
            DecoderRegister::SizeHi,
            DecoderRegister::Control,
            DecoderRegister::DpaSkipLo,
            DecoderRegister::DpaSkipHi,
        ]
        .into_iter()
        .find(|&r| r as u64 == rel)
    }

    fn is_global_control(bo: u64) -> bool {
        bo == HOST_HDM_BLOCK_OFFSET + HdmRegister::GlobalControl as u64
    }

    fn write_v3(&mut self, bo: u64, v: u32) {
        if Self::is_global_control(bo) {
            self.set_block_dword(bo, v);
            return;
        }
        // Below 0x1000, the capability array and everything that is not a
        // decoder register: dropped.
        let Some(reg) = Self::decoder_reg_at(bo) else {
            return;
        };
        let ctrl = self.block_dword(dec_reg(DecoderRegister::Control));
        if reg == DecoderRegister::Control {
            let new = if ctrl & CTRL_COMMITTED != 0 {
                if v & CTRL_COMMIT != 0 {
                    ctrl
                } else {
                    ctrl & !(CTRL_COMMIT | CTRL_COMMITTED | CTRL_LOCK)
                }
            } else {
                let mut n = v & !(CTRL_COMMITTED | CTRL_ERROR);
                if n & CTRL_COMMIT != 0 {
                    n |= CTRL_COMMITTED;
                }
                n
            };
            self.set_block_dword(bo, new);
        } else if ctrl & (CTRL_COMMITTED | CTRL_LOCK) == 0 {
            self.set_block_dword(bo, v);
        }
    }

    fn write_v2(&mut self, bo: u64, v: u32) {
        if Self::is_global_control(bo) {
            self.set_block_dword(bo, v & V2_GLOBAL_DEFINED);
            return;
        }
        let Some(reg) = Self::decoder_reg_at(bo) else {
            return;
        };
        let new = match reg {
            DecoderRegister::BaseLo | DecoderRegister::SizeLo | DecoderRegister::DpaSkipLo => {
                v & LO_ADDR_MASK
            }
            DecoderRegister::BaseHi | DecoderRegister::SizeHi | DecoderRegister::DpaSkipHi => v,
            DecoderRegister::Control => {
                let old = self.block_dword(bo);
                let mut n = (old & V2_CTRL_RO) | (v & V2_CTRL_DEFINED & !V2_CTRL_RO);
                if n & CTRL_COMMIT != 0 {
                    n |= CTRL_COMMITTED;
                } else {
                    n &= !CTRL_COMMITTED;
                }
                n
            }
        };
        self.set_block_dword(bo, new);
    }

    /// What the shadow looks like after `VFIO_DEVICE_RESET`: v2 re-reads
    /// the decoder from hardware (which FLR leaves committed) and rewrites
    /// it as at open; v4's CXL reset restores the committed decoder; v3
    /// does not refresh the shadow at all.
    pub fn reset(&mut self) {
        match self.version {
            UapiVersion::V2 | UapiVersion::V4 => self.load_firmware_decoder(),
            UapiVersion::V3 => {}
        }
    }

    /// Offset from the start of the component block of the HDM decoder
    /// block, which v4's `COMP_REGS` region capability reports (added to
    /// the block's BAR offset).
    pub fn hdm_block_offset(&self) -> u64 {
        HOST_HDM_BLOCK_OFFSET
    }

    /// Decoder 0 as the shadow currently holds it.
    pub fn decoder0(&self) -> HostDecoder {
        let q = |r| {
            u64::from(self.block_dword(dec_reg(r)))
                | (u64::from(self.block_dword(dec_reg(r) + 4)) << 32)
        };
        HostDecoder {
            base: q(DecoderRegister::BaseLo),
            size: q(DecoderRegister::SizeLo),
            ctrl: self.block_dword(dec_reg(DecoderRegister::Control)),
        }
    }

    /// The host physical address of the device memory.
    pub fn hpa_base(&self) -> u64 {
        self.hpa_base
    }

    /// The size of the device memory.
    pub fn memory_size(&self) -> u64 {
        self.size
    }

    /// Length in bytes of the capability array (header and entries).
    pub fn cap_array_len(&self) -> u64 {
        self.cap_array_len
    }

    /// The dword at component block offset `block_offset`, regardless of
    /// the region window (for statistics and tests).  Misaligned or
    /// out-of-block offsets read 0.
    pub fn block_dword(&self, block_offset: u64) -> u32 {
        if block_offset % 4 != 0 || block_offset >= COMPONENT_BLOCK_SIZE {
            return 0;
        }
        crate::uapi::rd_u32(&self.block, block_offset as usize).unwrap_or(0)
    }

    /// Stores `value` at component block offset `block_offset`, bypassing
    /// every shadow rule.  For fault injection in the simulator; misaligned
    /// or out-of-block offsets are ignored.
    pub fn set_block_dword(&mut self, block_offset: u64, value: u32) {
        if block_offset % 4 != 0 || block_offset >= COMPONENT_BLOCK_SIZE {
            return;
        }
        let i = block_offset as usize;
        self.block[i..i + 4].copy_from_slice(&value.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::{CapabilityArray, CAP_ID_CXL};

    const HPA: u64 = 0x38_0000_0000;
    const SIZE: u64 = 4 << 30;

    fn v2() -> HostCompRegs {
        HostCompRegs::new(UapiVersion::V2, HPA, SIZE, true)
    }

    fn v3() -> HostCompRegs {
        HostCompRegs::new(UapiVersion::V3, HPA, SIZE, true)
    }

    fn v4() -> HostCompRegs {
        HostCompRegs::new(UapiVersion::V4, HPA, SIZE, true)
    }

    /// Region offset of a decoder 0 register.
    fn roff(h: &HostCompRegs, r: DecoderRegister) -> u64 {
        dec_reg(r) - h.region_offset_of_block()
    }

    fn rd(h: &HostCompRegs, off: u64) -> u32 {
        let mut b = [0u8; 4];
        h.read(off, &mut b).unwrap();
        u32::from_le_bytes(b)
    }

    fn wr(h: &mut HostCompRegs, off: u64, v: u32) {
        h.write(off, &v.to_le_bytes()).unwrap();
    }

    fn wrr(h: &mut HostCompRegs, r: DecoderRegister, v: u32) {
        let off = roff(h, r);
        wr(h, off, v);
    }

    #[test]
    fn region_geometry_per_version() {
        assert_eq!(v3().region_size(), 0x10000);
        assert_eq!(v3().region_offset_of_block(), 0);
        assert_eq!(v2().region_size(), 0x130);
        assert_eq!(v2().region_offset_of_block(), 0x1000);
        assert_eq!(v4().region_size(), 0x30);
        assert_eq!(v4().region_offset_of_block(), 0x1100);
        assert_eq!(v4().hdm_block_offset(), 0x1100);
    }

    #[test]
    fn v4_region_starts_at_the_hdm_block_and_reads_the_committed_decoder() {
        let h = v4();
        // Offset 0 is the HDM capability register, 4 global control.
        assert_eq!(rd(&h, 0), 0);
        assert_eq!(rd(&h, 4), 2);
        let base = u64::from(rd(&h, 0x10)) | u64::from(rd(&h, 0x14)) << 32;
        let size = u64::from(rd(&h, 0x18)) | u64::from(rd(&h, 0x1C)) << 32;
        assert_eq!((base, size), (HPA, SIZE));
        let ctrl = rd(&h, 0x20);
        assert_eq!(ctrl, CTRL_LOCK | CTRL_COMMIT | CTRL_COMMITTED);
    }

    #[test]
    fn v4_writes_are_absorbed() {
        let mut h = v4();
        let before = h.clone();
        let all = vec![0u8; 0x30];
        assert_eq!(h.write(0, &all), Ok(0x30));
        wr(&mut h, 0x20, 0);
        wr(&mut h, 0x10, 0x3000_0000);
        wr(&mut h, 4, 0);
        assert_eq!(h, before);
    }

    #[test]
    fn v4_access_rules() {
        let mut h = v4();
        assert_eq!(h.read(1, &mut [0u8; 4]), Err(AccessError::Invalid));
        assert_eq!(h.read(0, &mut [0u8; 2]), Err(AccessError::Invalid));
        assert_eq!(h.read(0, &mut [0u8; 6]), Err(AccessError::Invalid));
        assert_eq!(h.write(2, &[0u8; 4]), Err(AccessError::Invalid));
        assert_eq!(h.read(0x30, &mut [0u8; 4]), Err(AccessError::OutOfRange));
        assert_eq!(
            h.read(u64::MAX - 3, &mut [0u8; 4]),
            Err(AccessError::OutOfRange)
        );
        // Multiples of 4 are accepted; one running past the end stops there.
        assert_eq!(h.read(0, &mut [0u8; 0x30]), Ok(0x30));
        let mut tail = [0xEEu8; 8];
        assert_eq!(h.read(0x2C, &mut tail), Ok(4));
        assert_eq!(&tail[4..], &[0xEE; 4]);
        assert_eq!(h.write(0x2C, &[0u8; 16]), Ok(4));
        assert_eq!(h.read(0, &mut []), Ok(0));
    }

    #[test]
    fn v4_reset_restores_the_committed_decoder() {
        let mut h = v4();
        // What only a fault or the hardware could do: decommit.
        h.set_block_dword(dec_reg(DecoderRegister::Control), 0);
        h.set_block_dword(dec_reg(DecoderRegister::BaseHi), 0);
        h.reset();
        assert_eq!(h, v4());
    }

    #[test]
    fn capability_array_is_valid_and_names_hdm() {
        for h in [v2(), v3()] {
            let mut area = vec![0u8; (COMPONENT_BLOCK_SIZE - CAP_ARRAY_OFFSET) as usize];
            for (i, c) in area.chunks_exact_mut(4).enumerate() {
                let d = h.block_dword(CAP_ARRAY_OFFSET + 4 * i as u64);
                c.copy_from_slice(&d.to_le_bytes());
            }
            let arr = CapabilityArray::parse(&area).unwrap();
            assert_eq!(arr.hdm_decoder().unwrap().pointer, HOST_HDM_POINTER);
            // The selftest contract: ID 1 and a non-zero size at 0x1000.
            let hdr = rd(&h, CAP_ARRAY_OFFSET - h.region_offset_of_block());
            assert_eq!(hdr & 0xFFFF, u32::from(CAP_ID_CXL));
            assert_ne!(hdr >> 24, 0);
        }
    }

    #[test]
    fn v2_access_must_be_exactly_4_aligned_bytes() {
        let mut h = v2();
        let mut b8 = [0u8; 8];
        assert_eq!(h.read(0, &mut b8), Err(AccessError::Invalid));
        assert_eq!(h.read(2, &mut [0u8; 4]), Err(AccessError::Invalid));
        assert_eq!(h.read(0, &mut [0u8; 2]), Err(AccessError::Invalid));
        assert_eq!(h.write(0, &[0u8; 8]), Err(AccessError::Invalid));
        assert_eq!(h.write(1, &[0u8; 4]), Err(AccessError::Invalid));
        h.read(0, &mut [0u8; 4]).unwrap();
    }

    #[test]
    fn v3_access_multiples_of_4_aligned() {
        let mut h = v3();
        let mut buf = vec![0u8; 0x10000];
        h.read(0, &mut buf).unwrap();
        h.read(0x1000, &mut [0u8; 12]).unwrap();
        assert_eq!(h.read(0x1000, &mut [0u8; 6]), Err(AccessError::Invalid));
        assert_eq!(h.read(0x1002, &mut [0u8; 4]), Err(AccessError::Invalid));
        assert_eq!(h.read(0x1000, &mut []), Err(AccessError::Invalid));
        assert_eq!(h.write(0x1001, &[0u8; 8]), Err(AccessError::Invalid));
    }

    #[test]
    fn access_out_of_range_is_refused() {
        let h = v3();
        assert_eq!(h.read(0x10000, &mut [0u8; 4]), Err(AccessError::OutOfRange));
        assert_eq!(h.read(0xFFFC, &mut [0u8; 8]), Err(AccessError::OutOfRange));
        assert_eq!(
            h.read(u64::MAX - 3, &mut [0u8; 4]),
            Err(AccessError::OutOfRange)
        );
        let mut h2 = v2();
        assert_eq!(h2.write(0x130, &[0u8; 4]), Err(AccessError::OutOfRange));
        h2.write(0x12C, &[0u8; 4]).unwrap();
        assert_eq!(AccessError::OutOfRange.errno(), 22);
    }

    #[test]
    fn v3_committed_at_open_holds_hpa_and_lock() {
        let h = v3();
        let d = h.decoder0();
        assert_eq!((d.base, d.size), (HPA, SIZE));
        assert!(d.committed() && d.commit() && d.lock_on_commit());
        assert_eq!(h.block_dword(HOST_HDM_BLOCK_OFFSET + 4), 2);
    }

    #[test]
    fn v3_below_0x1000_reads_zero_and_drops_writes() {
        let mut h = v3();
        wr(&mut h, 0x10, 0xFFFF_FFFF);
        wr(&mut h, 0xFFC, 0xFFFF_FFFF);
        assert_eq!(rd(&h, 0x10), 0);
        assert_eq!(rd(&h, 0xFFC), 0);
    }

    #[test]
    fn v3_capability_array_read_only() {
        let mut h = v3();
        let before = rd(&h, 0x1000);
        wr(&mut h, 0x1000, 0);
        wr(&mut h, 0x100C, 0);
        assert_eq!(rd(&h, 0x1000), before);
        assert_eq!(rd(&h, 0x100C) & 0xFFFF, u32::from(CAP_ID_HDM_DECODER));
    }

    #[test]
    fn v3_base_write_dropped_while_committed() {
        let mut h = v3();
        wrr(&mut h, DecoderRegister::BaseLo, 0);
        wrr(&mut h, DecoderRegister::BaseHi, 0);
        wrr(&mut h, DecoderRegister::SizeLo, 0);
        wrr(&mut h, DecoderRegister::SizeHi, 0);
        assert_eq!((h.decoder0().base, h.decoder0().size), (HPA, SIZE));
    }

    #[test]
    fn v3_base_write_dropped_while_lock_on_commit() {
        let mut h = HostCompRegs::new(UapiVersion::V3, HPA, SIZE, false);
        wrr(&mut h, DecoderRegister::Control, CTRL_LOCK);
        wrr(&mut h, DecoderRegister::BaseHi, 0x12);
        assert_eq!(h.decoder0().base, 0);
        assert_eq!(h.decoder0().ctrl, CTRL_LOCK);
    }

    #[test]
    fn v3_base_write_accepted_when_uncommitted_and_unlocked() {
        let mut h = HostCompRegs::new(UapiVersion::V3, HPA, SIZE, false);
        wrr(&mut h, DecoderRegister::BaseLo, 0x1234_5678);
        // v3 does not mask reserved bits.
        assert_eq!(h.decoder0().base, 0x1234_5678);
    }

    #[test]
    fn v3_committed_decoder_honours_only_commit() {
        let mut h = v3();
        let ctrl = h.decoder0().ctrl;
        wrr(&mut h, DecoderRegister::Control, CTRL_COMMIT | 0xF);
        assert_eq!(h.decoder0().ctrl, ctrl);
    }

    #[test]
    fn v3_commit_zero_clears_committed_and_lock() {
        let mut h = v3();
        wrr(&mut h, DecoderRegister::Control, 0);
        let d = h.decoder0();
        assert!(!d.committed() && !d.commit() && !d.lock_on_commit());
        // Now unlocked, BASE becomes writable.
        wrr(&mut h, DecoderRegister::BaseHi, 0x40);
        assert_eq!(h.decoder0().base >> 32, 0x40);
    }

    #[test]
    fn v3_commit_one_sets_committed_at_once() {
        let mut h = HostCompRegs::new(UapiVersion::V3, HPA, SIZE, false);
        wrr(&mut h, DecoderRegister::Control, CTRL_COMMIT);
        assert!(h.decoder0().committed());
        // And software cannot fake COMMITTED or ERROR without COMMIT.
        let mut h2 = HostCompRegs::new(UapiVersion::V3, HPA, SIZE, false);
        wrr(
            &mut h2,
            DecoderRegister::Control,
            CTRL_COMMITTED | CTRL_ERROR,
        );
        assert_eq!(h2.decoder0().ctrl, 0);
    }

    #[test]
    fn v3_other_registers_read_only() {
        let mut h = v3();
        let ras = CAP_ARRAY_OFFSET + u64::from(HOST_RAS_POINTER);
        wr(&mut h, ras, 0xFFFF_FFFF);
        wr(&mut h, HOST_HDM_BLOCK_OFFSET, 0xFFFF_FFFF);
        assert_eq!(h.block_dword(ras), 0);
        assert_eq!(h.block_dword(HOST_HDM_BLOCK_OFFSET), 0);
    }

    #[test]
    fn v3_global_control_writable() {
        let mut h = v3();
        wr(&mut h, HOST_HDM_BLOCK_OFFSET + 4, 0);
        assert_eq!(h.block_dword(HOST_HDM_BLOCK_OFFSET + 4), 0);
    }

    #[test]
    fn v3_reset_changes_nothing() {
        let mut h = v3();
        wrr(&mut h, DecoderRegister::Control, 0);
        let before = h.clone();
        h.reset();
        assert_eq!(h, before);
    }

    #[test]
    fn v3_multi_dword_write_applies_rules_per_dword() {
        let mut h = HostCompRegs::new(UapiVersion::V3, HPA, SIZE, false);
        let mut data = Vec::new();
        for v in [0x1000_0000u32, 0x38, 0x4000_0000, 0, CTRL_COMMIT] {
            data.extend_from_slice(&v.to_le_bytes());
        }
        h.write(roff(&h, DecoderRegister::BaseLo), &data).unwrap();
        let d = h.decoder0();
        assert_eq!((d.base, d.size), (0x38_1000_0000, 0x4000_0000));
        assert!(d.committed());
    }

    #[test]
    fn v2_lock_cleared_and_base_zeroed_at_open() {
        let h = v2();
        let d = h.decoder0();
        assert_eq!((d.base, d.size), (0, SIZE));
        assert!(d.committed() && d.commit() && !d.lock_on_commit());
    }

    #[test]
    fn v2_uncommitted_at_open_is_zero() {
        let h = HostCompRegs::new(UapiVersion::V2, HPA, SIZE, false);
        assert_eq!(
            h.decoder0(),
            HostDecoder {
                base: 0,
                size: 0,
                ctrl: 0
            }
        );
    }

    #[test]
    fn v2_vmm_writes_guest_address_into_base() {
        let mut h = v2();
        wrr(&mut h, DecoderRegister::BaseLo, 0x1000_0000);
        wrr(&mut h, DecoderRegister::BaseHi, 0x10);
        assert_eq!(h.decoder0().base, 0x10_1000_0000);
    }

    #[test]
    fn v2_reserved_bits_masked() {
        let mut h = v2();
        wrr(&mut h, DecoderRegister::BaseLo, 0xFFFF_FFFF);
        wrr(&mut h, DecoderRegister::SizeLo, 0x0FFF_FFFF);
        wrr(&mut h, DecoderRegister::Control, 0xFFFF_0200);
        wr(&mut h, HOST_HDM_BLOCK_OFFSET + 4 - 0x1000, 0xFFFF_FFFF);
        let d = h.decoder0();
        assert_eq!(d.base, 0xF000_0000);
        assert_eq!(d.size, SIZE);
        assert_eq!(d.ctrl & !V2_CTRL_DEFINED, 0);
        assert_eq!(h.block_dword(HOST_HDM_BLOCK_OFFSET + 4), 3);
    }

    #[test]
    fn v2_ctrl_bits_10_to_12_read_only() {
        let mut h = HostCompRegs::new(UapiVersion::V2, HPA, SIZE, false);
        wrr(&mut h, DecoderRegister::Control, CTRL_ERROR | 1 << 12);
        assert_eq!(h.decoder0().ctrl, 0);
        let mut h2 = v2();
        wrr(&mut h2, DecoderRegister::Control, CTRL_COMMIT);
        // `TARGET_TYPE` stays 0 even though the write cleared everything.
        assert_eq!(h2.decoder0().ctrl, CTRL_COMMIT | CTRL_COMMITTED);
    }

    #[test]
    fn v2_commit_mirrored_to_committed() {
        let mut h = v2();
        wrr(&mut h, DecoderRegister::Control, 0);
        assert!(!h.decoder0().committed());
        wrr(&mut h, DecoderRegister::Control, CTRL_COMMIT | CTRL_LOCK);
        let d = h.decoder0();
        assert!(d.committed() && d.lock_on_commit());
    }

    #[test]
    fn v2_reset_rereads_decoder_and_zeroes_base_again() {
        let mut h = v2();
        wrr(&mut h, DecoderRegister::BaseHi, 0x10);
        wrr(&mut h, DecoderRegister::Control, CTRL_COMMIT | CTRL_LOCK);
        h.reset();
        let d = h.decoder0();
        assert_eq!((d.base, d.size), (0, SIZE));
        assert!(d.committed() && !d.lock_on_commit());
    }

    #[test]
    fn v2_capability_array_read_only() {
        let mut h = v2();
        let before = rd(&h, 0);
        wr(&mut h, 0, 0);
        assert_eq!(rd(&h, 0), before);
    }

    #[test]
    fn block_dword_ignores_bad_offsets() {
        let mut h = v3();
        assert_eq!(h.block_dword(0x10000), 0);
        assert_eq!(h.block_dword(0x1001), 0);
        h.set_block_dword(0x10000, 1);
        h.set_block_dword(0x10, 7);
        assert_eq!(h.block_dword(0x10), 7);
    }
}
