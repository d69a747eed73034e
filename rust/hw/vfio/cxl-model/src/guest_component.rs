// SPDX-License-Identifier: GPL-2.0-or-later

//! The guest's view of the 64 KiB component register block inside the BAR,
//! which the device serves through a `MemoryRegion` overlaid on the BAR.
//!
//! Each dword of the block is one of:
//! - the capability array (header and entries, block offset 0x1000 on):
//!   the host's bytes as discovery read them, read-only;
//! - the HDM decoder capability structure: served by an emulated
//!   [`HdmDecoderBlock`] whose decoder 0 is committed and locked at the
//!   guest address the VMM chose;
//! - anything else the `COMP_REGS` region covers (RAS, Link, CXL.io area on
//!   v3, ...): forwarded to the host shadow;
//! - anything else (v2: below 0x1000 and past the HDM structure): reads 0,
//!   writes are dropped.
//!
//! Accesses:
//! - Sizes 1, 2, 4 and 8 at natural alignment inside the block are
//!   decoded; anything else reads 0 and is dropped when written.
//! - CXL makes component registers 4- or 8-byte accessed.  A 1- or 2-byte
//!   read returns those bytes of the containing dword; a 1- or 2-byte write
//!   is dropped (forwarding it would need a read-modify-write of the host
//!   register, which could clear write-1-to-clear status bits).
//! - An 8-byte access is two dword accesses, low dword first.  When both
//!   dwords are served the same way it is classified as one access; when
//!   they differ (e.g. the last capability array entry next to a forwarded
//!   dword) it is [`BlockAccess::SplitDwords`] and the caller issues the two
//!   dword accesses.  [`GuestComponentBlock::read_via`] and
//!   [`GuestComponentBlock::write_via`] do all of this given a host dword
//!   accessor, and only ever ask the host for aligned dwords, which every
//!   uAPI posting accepts.

use std::ops::Range;

use crate::component::COMPONENT_BLOCK_SIZE;
use crate::discovery::{Forwarding, HostLayout};
use crate::hdm::{HdmDecoderBlock, HdmError};

/// How a guest read is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockAccess {
    /// The value, computed here.
    Emulated(u64),
    /// Read the host shadow: `region_offset` is the `COMP_REGS` offset of
    /// the access itself.  With size 1 or 2, read the containing dword
    /// (`region_offset & !3`) and take the bytes; with size 8, read two
    /// dwords (v2 accepts only single dwords) or one 8-byte access (v3).
    ForwardToHost {
        /// Region offset of the access.
        region_offset: u64,
    },
    /// The value is 0.
    ReadsZero,
    /// An 8-byte access whose dwords are served differently: issue it as
    /// two 4-byte accesses at the same offset and offset + 4.
    SplitDwords,
}

/// How a guest write was handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestWriteOutcome {
    /// The emulated registers took it (or ignored it by their own rules).
    Emulated,
    /// Write it to the host shadow at `region_offset` (the `COMP_REGS`
    /// offset of the access, 4 or 8 bytes; as two dwords, low first, on v2).
    ForwardToHost {
        /// Region offset of the access.
        region_offset: u64,
    },
    /// Nothing to do: read-only, outside the region or unsupported size.
    Dropped,
    /// An 8-byte access whose dwords are served differently: issue it as
    /// two 4-byte writes, low dword first.  Nothing was changed yet.
    SplitDwords,
}

/// How one dword is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Byte index into the capability array copy.
    CapArray(usize),
    /// Offset in the HDM structure.
    Hdm(u64),
    /// `COMP_REGS` region offset.
    Forward(u64),
    Zero,
}

/// The guest-visible component register block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestComponentBlock {
    cap_array: Vec<u8>,
    hdm_offset: u64,
    forwarding: Forwarding,
    hdm: HdmDecoderBlock,
    boot: HdmDecoderBlock,
    base: u64,
    size: u64,
}

fn valid(block_offset: u64, size: u32) -> bool {
    matches!(size, 1 | 2 | 4 | 8)
        && block_offset % u64::from(size) == 0
        && block_offset
            .checked_add(u64::from(size))
            .is_some_and(|end| end <= COMPONENT_BLOCK_SIZE)
}

impl GuestComponentBlock {
    /// The block for a host with `layout` whose memory the guest sees at
    /// `base` (normally the window base) with `size` bytes (normally
    /// `layout.memory_size`); `window` is the guest range decoders may
    /// decode into (the chosen fixed memory window).
    ///
    /// Fails if decoder 0 at `base`/`size` would not pass a commit
    /// (unaligned, outside `window`, ...).
    pub fn new(
        layout: &HostLayout,
        base: u64,
        size: u64,
        window: Range<u64>,
    ) -> Result<Self, HdmError> {
        let mut hdm = HdmDecoderBlock::new(layout.decoder_count, window)?;
        hdm.present_committed_locked(0, base, size)?;
        Ok(Self {
            cap_array: layout.cap_array.clone(),
            hdm_offset: layout.hdm_offset,
            forwarding: layout.forwarding(),
            boot: hdm.clone(),
            hdm,
            base,
            size,
        })
    }

    /// The host region that forwarded accesses go to (the offsets
    /// [`GuestComponentBlock::read_via`] and
    /// [`GuestComponentBlock::write_via`] give are in it).
    pub fn forward_region(&self) -> u32 {
        self.forwarding.region
    }

    /// The emulated HDM decoder structure.
    pub fn hdm(&self) -> &HdmDecoderBlock {
        &self.hdm
    }

    /// Guest address of the device memory (decoder 0's BASE).
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Size of the device memory (decoder 0's SIZE).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Back to the boot state after CXL Reset or system reset: decoder 0
    /// committed and locked at the same base, the others cleared.  (FLR
    /// does not affect CXL.mem state, so the device need not call this on
    /// FLR.)
    pub fn reset_to_boot(&mut self) {
        self.hdm = self.boot.clone();
    }

    fn role(&self, dword: u64) -> Role {
        let cap_start = crate::component::CAP_ARRAY_OFFSET;
        if let Some(i) = dword.checked_sub(cap_start) {
            if i < self.cap_array.len() as u64 {
                return Role::CapArray(usize::try_from(i).unwrap_or_default());
            }
        }
        if let Some(rel) = dword.checked_sub(self.hdm_offset) {
            if rel < self.hdm.size() {
                return Role::Hdm(rel);
            }
        }
        self.forwarding
            .region_offset(dword)
            .map_or(Role::Zero, Role::Forward)
    }

    /// The value of a non-forwarded dword.
    fn local_dword(&self, role: Role) -> u32 {
        match role {
            Role::CapArray(i) => self
                .cap_array
                .get(i..i + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Role::Hdm(rel) => self.hdm.read(rel, 4) as u32,
            Role::Forward(_) | Role::Zero => 0,
        }
    }

    /// The roles of the one or two dwords an access of `size` bytes at the
    /// dword `dword` covers, or `None` when one would be forwarded to the
    /// host and the other not (the caller then splits the access).
    fn access_roles(&self, dword: u64, size: u32) -> Option<[Role; 2]> {
        let first = self.role(dword);
        let roles = if size == 8 {
            [first, self.role(dword + 4)]
        } else {
            [first, first]
        };
        let forwarded = roles.map(|r| matches!(r, Role::Forward(_)));
        (forwarded[0] == forwarded[1]).then_some(roles)
    }

    /// Classifies a guest read of `size` bytes at `block_offset` and, when
    /// it is served here, computes the value.
    pub fn read(&self, block_offset: u64, size: u32) -> BlockAccess {
        if !valid(block_offset, size) {
            return BlockAccess::ReadsZero;
        }
        let Some(roles) = self.access_roles(block_offset & !3, size) else {
            return BlockAccess::SplitDwords;
        };
        let first = roles[0];
        if let Role::Forward(ro) = first {
            return BlockAccess::ForwardToHost {
                region_offset: ro + (block_offset & 3),
            };
        }
        if roles.iter().all(|&r| r == Role::Zero) {
            return BlockAccess::ReadsZero;
        }
        let value = match size {
            8 => {
                u64::from(self.local_dword(roles[0]))
                    | (u64::from(self.local_dword(roles[1])) << 32)
            }
            4 => u64::from(self.local_dword(first)),
            _ => {
                let shift = 8 * (block_offset & 3);
                let mask = (1u64 << (8 * size)) - 1;
                (u64::from(self.local_dword(first)) >> shift) & mask
            }
        };
        BlockAccess::Emulated(value)
    }

    /// Applies a guest write of `size` bytes at `block_offset` to the
    /// emulated registers, or says where it goes.
    pub fn write(&mut self, block_offset: u64, size: u32, value: u64) -> GuestWriteOutcome {
        if !valid(block_offset, size) || size < 4 {
            return GuestWriteOutcome::Dropped;
        }
        let Some(roles) = self.access_roles(block_offset, size) else {
            return GuestWriteOutcome::SplitDwords;
        };
        let first = roles[0];
        if let Role::Forward(region_offset) = first {
            return GuestWriteOutcome::ForwardToHost { region_offset };
        }
        let dwords = if size == 8 { 2 } else { 1 };
        let mut emulated = false;
        for (i, role) in roles.into_iter().take(dwords).enumerate() {
            if let Role::Hdm(rel) = role {
                self.hdm.write(rel, 4, (value >> (32 * i)) & 0xFFFF_FFFF);
                emulated = true;
            }
        }
        if emulated {
            GuestWriteOutcome::Emulated
        } else {
            GuestWriteOutcome::Dropped
        }
    }

    /// Serves a guest read completely, reading forwarded dwords with
    /// `host(region_offset)` (always a 4-aligned dword inside the region).
    pub fn read_via(&self, block_offset: u64, size: u32, host: &mut dyn FnMut(u64) -> u32) -> u64 {
        match self.read(block_offset, size) {
            BlockAccess::Emulated(v) => v,
            BlockAccess::ReadsZero => 0,
            BlockAccess::SplitDwords => {
                self.read_via(block_offset, 4, host)
                    | (self.read_via(block_offset + 4, 4, host) << 32)
            }
            BlockAccess::ForwardToHost { region_offset } => match size {
                8 => u64::from(host(region_offset)) | (u64::from(host(region_offset + 4)) << 32),
                4 => u64::from(host(region_offset)),
                _ => {
                    let shift = 8 * (region_offset & 3);
                    let mask = (1u64 << (8 * size)) - 1;
                    (u64::from(host(region_offset & !3)) >> shift) & mask
                }
            },
        }
    }

    /// Handles a guest write completely, writing forwarded dwords with
    /// `host(region_offset, value)` (4-aligned dwords inside the region,
    /// low dword first).  Returns how the (first) access was classified.
    pub fn write_via(
        &mut self,
        block_offset: u64,
        size: u32,
        value: u64,
        host: &mut dyn FnMut(u64, u32),
    ) -> GuestWriteOutcome {
        let outcome = self.write(block_offset, size, value);
        match outcome {
            GuestWriteOutcome::SplitDwords => {
                self.write_via(block_offset, 4, value & 0xFFFF_FFFF, host);
                self.write_via(block_offset + 4, 4, value >> 32, host);
            }
            GuestWriteOutcome::ForwardToHost { region_offset } => {
                host(region_offset, value as u32);
                if size == 8 {
                    host(region_offset + 4, (value >> 32) as u32);
                }
            }
            GuestWriteOutcome::Emulated | GuestWriteOutcome::Dropped => {}
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::testing::{TestHost, GIB, HPA, MEM};
    use crate::hdm::{decoder_offset, DecoderRegister, HdmError};
    use crate::host::{HostCompRegs, HOST_HDM_BLOCK_OFFSET};
    use crate::uapi::UapiVersion;

    const BASE: u64 = 0x10_0000_0000;
    const WIN: Range<u64> = BASE..BASE + 8 * GIB;
    const DEC0: u64 = HOST_HDM_BLOCK_OFFSET + 0x10;

    fn setup(v: UapiVersion) -> (GuestComponentBlock, HostCompRegs) {
        let h = TestHost::new(v);
        let layout = h.discover().unwrap();
        let g = GuestComponentBlock::new(&layout, BASE, MEM, WIN).unwrap();
        (g, h.regs)
    }

    fn host_read(regs: &HostCompRegs) -> impl FnMut(u64) -> u32 + '_ {
        move |o| {
            let mut b = [0u8; 4];
            regs.read(o, &mut b).unwrap();
            u32::from_le_bytes(b)
        }
    }

    #[test]
    fn decoder0_is_committed_and_locked_at_guest_base() {
        for v in [UapiVersion::V2, UapiVersion::V3] {
            let (g, _) = setup(v);
            let d = g.hdm().decoder(0).unwrap();
            assert!(d.committed && d.locked);
            assert_eq!((d.base, d.size), (BASE, MEM));
            assert_eq!((g.base(), g.size()), (BASE, MEM));
            assert_eq!(g.read(DEC0, 8), BlockAccess::Emulated(BASE));
            assert_eq!(g.read(DEC0 + 8, 8), BlockAccess::Emulated(MEM));
            assert_eq!(g.read(DEC0 + 0x10, 4), BlockAccess::Emulated(0x700));
        }
    }

    #[test]
    fn guest_never_sees_host_hpa() {
        let (g, regs) = setup(UapiVersion::V3);
        assert_eq!(regs.decoder0().base, HPA);
        let mut read = host_read(&regs);
        for off in (0..COMPONENT_BLOCK_SIZE).step_by(8) {
            assert_ne!(g.read_via(off, 8, &mut read), HPA, "{off:#x}");
        }
        assert_eq!(g.read_via(DEC0 + 4, 4, &mut read), BASE >> 32);
    }

    #[test]
    fn new_rejects_base_outside_window() {
        let layout = TestHost::new(UapiVersion::V3).discover().unwrap();
        assert!(matches!(
            GuestComponentBlock::new(&layout, WIN.end, MEM, WIN),
            Err(HdmError::Rejected(_))
        ));
        assert_eq!(
            GuestComponentBlock::new(&layout, BASE, MEM, BASE..BASE),
            Err(HdmError::WindowEmpty)
        );
    }

    #[test]
    fn capability_array_reads_host_bytes() {
        for v in [UapiVersion::V2, UapiVersion::V3] {
            let (g, regs) = setup(v);
            for off in (0x1000..0x1010).step_by(4) {
                assert_eq!(
                    g.read(off, 4),
                    BlockAccess::Emulated(u64::from(regs.block_dword(off)))
                );
            }
            let lo = u64::from(regs.block_dword(0x1008));
            let hi = u64::from(regs.block_dword(0x100C));
            assert_eq!(g.read(0x1008, 8), BlockAccess::Emulated(lo | hi << 32));
        }
    }

    #[test]
    fn capability_array_is_read_only() {
        let (mut g, mut regs) = setup(UapiVersion::V3);
        let before = g.read(0x1000, 8);
        assert_eq!(g.write(0x1000, 8, 0), GuestWriteOutcome::Dropped);
        assert_eq!(g.write(0x1004, 4, 0), GuestWriteOutcome::Dropped);
        let mut sink = |o: u64, v: u32| {
            regs.write(o, &v.to_le_bytes()).unwrap();
        };
        assert_eq!(
            g.write_via(0x1008, 4, 0, &mut sink),
            GuestWriteOutcome::Dropped
        );
        assert_eq!(g.read(0x1000, 8), before);
    }

    #[test]
    fn hdm_structure_is_emulated_and_decoder0_locked() {
        let (mut g, _) = setup(UapiVersion::V2);
        let before = g.hdm().decoder(0).unwrap();
        for reg in [
            DecoderRegister::BaseLo,
            DecoderRegister::SizeHi,
            DecoderRegister::Control,
            DecoderRegister::DpaSkipLo,
        ] {
            assert_eq!(
                g.write(DEC0 + reg as u64, 4, 0),
                GuestWriteOutcome::Emulated
            );
        }
        assert_eq!(g.write(DEC0, 8, 0), GuestWriteOutcome::Emulated);
        assert_eq!(g.hdm().decoder(0).unwrap(), before);
        // The HDM capability register says one decoder.
        assert_eq!(g.read(HOST_HDM_BLOCK_OFFSET, 4), BlockAccess::Emulated(0));
    }

    #[test]
    fn other_registers_are_forwarded_to_the_host_shadow() {
        let (mut g3, _) = setup(UapiVersion::V3);
        let ras = 0x1020;
        assert_eq!(
            g3.read(ras, 4),
            BlockAccess::ForwardToHost {
                region_offset: 0x1020
            }
        );
        assert_eq!(
            g3.write(ras, 8, 1),
            GuestWriteOutcome::ForwardToHost {
                region_offset: 0x1020
            }
        );
        let (g2, _) = setup(UapiVersion::V2);
        assert_eq!(
            g2.read(ras, 8),
            BlockAccess::ForwardToHost {
                region_offset: 0x20
            }
        );
    }

    #[test]
    fn v3_cxl_io_area_is_forwarded() {
        let (mut g, _) = setup(UapiVersion::V3);
        assert_eq!(
            g.read(0x10, 4),
            BlockAccess::ForwardToHost {
                region_offset: 0x10
            }
        );
        assert_eq!(
            g.write(0xFF8, 8, 0),
            GuestWriteOutcome::ForwardToHost {
                region_offset: 0xFF8
            }
        );
    }

    #[test]
    fn v2_offsets_outside_the_region_read_zero() {
        let (mut g, _) = setup(UapiVersion::V2);
        for off in [0, 0x10, 0xFF8, 0x1130, 0x2000, 0xFFF8] {
            assert_eq!(g.read(off, 8), BlockAccess::ReadsZero, "{off:#x}");
            assert_eq!(g.write(off, 4, 1), GuestWriteOutcome::Dropped);
        }
        let mut never = |_| -> u32 { panic!("host read") };
        assert_eq!(g.read_via(0x800, 4, &mut never), 0);
    }

    #[test]
    fn small_reads_return_bytes_of_the_containing_dword() {
        let (g, regs) = setup(UapiVersion::V2);
        let hdr = regs.block_dword(0x1000);
        assert_eq!(
            g.read(0x1003, 1),
            BlockAccess::Emulated(u64::from(hdr >> 24))
        );
        assert_eq!(
            g.read(0x1002, 2),
            BlockAccess::Emulated(u64::from(hdr >> 16))
        );
        assert_eq!(g.read(DEC0 + 0x11, 1), BlockAccess::Emulated(0x7));
        // Forwarded: the host is asked for the aligned dword only.
        let mut asked = Vec::new();
        let ctrl_hi = g.read_via(DEC0 - 0x10 + 6, 2, &mut |o| {
            asked.push(o);
            0xABCD_1234
        });
        // HDM global control is emulated, so no host access there.
        assert!(asked.is_empty());
        assert_eq!(ctrl_hi, 0);
        let b = g.read_via(0x1023, 1, &mut |o| {
            asked.push(o);
            0xABCD_1234
        });
        assert_eq!((b, asked), (0xAB, vec![0x20]));
        assert_eq!(
            g.read(0x1022, 2),
            BlockAccess::ForwardToHost {
                region_offset: 0x22
            }
        );
    }

    #[test]
    fn small_writes_are_dropped() {
        let (mut g, _) = setup(UapiVersion::V3);
        assert_eq!(g.write(0x1020, 1, 0xFF), GuestWriteOutcome::Dropped);
        assert_eq!(g.write(0x1022, 2, 0xFF), GuestWriteOutcome::Dropped);
        assert_eq!(
            g.write(HOST_HDM_BLOCK_OFFSET + 4, 2, 0),
            GuestWriteOutcome::Dropped
        );
        assert!(g.hdm().global_control().hdm_decoder_enable());
    }

    #[test]
    fn unsupported_sizes_and_misaligned_accesses() {
        let (mut g, _) = setup(UapiVersion::V3);
        for (off, size) in [
            (0x1000, 3),
            (0x1000, 16),
            (0x1002, 4),
            (0x1004, 8),
            (0x1001, 2),
            (0xFFFC, 8),
            (0x10000, 4),
            (u64::MAX - 3, 4),
        ] {
            assert_eq!(g.read(off, size), BlockAccess::ReadsZero, "{off:#x}/{size}");
            assert_eq!(g.write(off, size, 0), GuestWriteOutcome::Dropped);
        }
    }

    #[test]
    fn eight_byte_access_over_mixed_dwords_is_split() {
        let (mut layout, mut regs) = {
            let h = TestHost::new(UapiVersion::V3);
            (h.discover().unwrap(), h.regs)
        };
        // A two-entry array ends at 0x100C, next to a forwarded dword.
        layout.cap_array.truncate(12);
        regs.set_block_dword(0x100C, 0x5A5A_5A5A);
        let mut g = GuestComponentBlock::new(&layout, BASE, MEM, WIN).unwrap();
        assert_eq!(g.read(0x1008, 8), BlockAccess::SplitDwords);
        let lo = u64::from(regs.block_dword(0x1008));
        assert_eq!(
            g.read_via(0x1008, 8, &mut host_read(&regs)),
            lo | 0x5A5A_5A5A << 32
        );
        let mut writes = Vec::new();
        assert_eq!(
            g.write_via(0x1008, 8, 0x1111_2222_3333_4444, &mut |o, v| writes
                .push((o, v))),
            GuestWriteOutcome::SplitDwords
        );
        assert_eq!(writes, vec![(0x100C, 0x1111_2222)]);
    }

    #[test]
    fn forwarded_eight_byte_write_is_two_dwords_low_first() {
        let (mut g, _) = setup(UapiVersion::V2);
        let mut writes = Vec::new();
        g.write_via(0x1020, 8, 0x1111_2222_3333_4444, &mut |o, v| {
            writes.push((o, v));
        });
        assert_eq!(writes, vec![(0x20, 0x3333_4444), (0x24, 0x1111_2222)]);
        let v = g.read_via(0x1020, 8, &mut |o| o as u32);
        assert_eq!(v, 0x24 << 32 | 0x20);
    }

    #[test]
    fn reset_to_boot_restores_committed_locked_decoder() {
        let (mut g, _) = setup(UapiVersion::V3);
        // Global control is read-only while decoder 0 is locked.
        g.write(HOST_HDM_BLOCK_OFFSET + 4, 4, 0);
        assert!(g.hdm().global_control().hdm_decoder_enable());
        g.reset_to_boot();
        assert!(g.hdm().global_control().hdm_decoder_enable());
        let d = g.hdm().decoder(0).unwrap();
        assert!(d.locked && d.base == BASE && d.size == MEM);
        assert_eq!(
            g.read(HOST_HDM_BLOCK_OFFSET + decoder_offset(0), 8),
            BlockAccess::Emulated(BASE)
        );
    }
}
