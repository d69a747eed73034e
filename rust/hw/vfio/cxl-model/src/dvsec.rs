// SPDX-License-Identifier: GPL-2.0-or-later

//! PCI Express Designated Vendor-Specific Extended Capabilities of a CXL device:
//! the CXL Device DVSEC (CXL 3.1 section 8.1.3) and the Register Locator
//! DVSEC (section 8.1.9).
//!
//! Three views of the Device DVSEC live here:
//! - the bytes themselves ([`build_device_dvsec`], [`parse_device_dvsec`]);
//! - [`GuestDeviceDvsec`], what the VMM shows the guest: memory enabled,
//!   range 1 at the guest address, `CONFIG_LOCK` set, as firmware would have
//!   left it;
//! - [`HostDeviceDvsec`], the kernel's shadow, which the simulator serves.
//!
//! Offsets given to the state machines are relative to the start of the
//! DVSEC, i.e. its PCI Express extended capability header.
//!
//! The Device DVSEC built here is revision 2 (CXL 3.x), 0x3C bytes long,
//! with Capability3 at 0x38; the parser also accepts revision 1 (0x38
//! bytes, no Capability3).

use std::{fmt, ops::Range};

use bilge::prelude::*;

pub use crate::uapi::UapiVersion;

/// The CXL consortium's PCI vendor ID, used in DVSEC headers.
pub const CXL_VENDOR_ID: u16 = 0x1E98;

/// DVSEC ID of the CXL Device DVSEC ("PCI Express DVSEC for CXL Devices").
pub const DVSEC_ID_CXL_DEVICE: u16 = 0;

/// DVSEC ID of the Register Locator DVSEC.
pub const DVSEC_ID_REGISTER_LOCATOR: u16 = 8;

/// PCI Express extended capability ID of a DVSEC.
pub const PCI_EXT_CAP_ID_DVSEC: u16 = 0x23;

/// Version of the extended capability header of a DVSEC.
pub const PCI_EXT_CAP_DVSEC_VERSION: u8 = 1;

/// First extended capability in config space.
pub const PCI_EXT_CAP_START: u16 = 0x100;

/// Size of PCI Express configuration space.
pub const PCI_CONFIG_SPACE_SIZE: usize = 0x1000;

/// Revision of the Device DVSEC this crate builds.
pub const DEVICE_DVSEC_REVISION: u8 = 2;

/// Length of a revision 2 Device DVSEC.
pub const DEVICE_DVSEC_LENGTH: u16 = 0x3C;

/// Length of a revision 1 Device DVSEC, the shortest this crate accepts.
pub const DEVICE_DVSEC_MIN_LENGTH: u16 = 0x38;

/// Revision of the Register Locator DVSEC.
pub const REGISTER_LOCATOR_REVISION: u8 = 0;

/// Offset of the first Register Locator entry.
pub const REGISTER_LOCATOR_ENTRIES: u16 = 0x0C;

/// Register block identifier: empty entry.
pub const BLOCK_ID_EMPTY: u8 = 0;

/// Register block identifier: component registers.
pub const BLOCK_ID_COMPONENT: u8 = 1;

/// Register block identifier: BAR virtualization ACL registers.
pub const BLOCK_ID_BAR_VIRT: u8 = 2;

/// Register block identifier: CXL memory device registers.
pub const BLOCK_ID_MEMDEV: u8 = 3;

/// Register block identifier: CXL performance monitor registers.
pub const BLOCK_ID_CPMU: u8 = 4;

/// Registers of the CXL Device DVSEC, as offsets from its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum DeviceDvsecRegister {
    /// PCI Express extended capability header.
    ExtCapHeader = 0x00,
    /// DVSEC Header 1: vendor, revision, length.
    #[doc(alias = "Designated Vendor-Specific Header 1")]
    Header1 = 0x04,
    /// DVSEC Header 2: DVSEC ID.
    #[doc(alias = "Designated Vendor-Specific Header 2")]
    Header2 = 0x08,
    /// DVSEC CXL Capability.
    #[doc(alias = "DVSEC CXL Capability")]
    Capability = 0x0A,
    /// DVSEC CXL Control.
    #[doc(alias = "DVSEC CXL Control")]
    Control = 0x0C,
    /// DVSEC CXL Status.
    #[doc(alias = "DVSEC CXL Status")]
    Status = 0x0E,
    /// DVSEC CXL Control2.
    #[doc(alias = "DVSEC CXL Control2")]
    Control2 = 0x10,
    /// DVSEC CXL Status2.
    #[doc(alias = "DVSEC CXL Status2")]
    Status2 = 0x12,
    /// DVSEC CXL Lock.
    #[doc(alias = "DVSEC CXL Lock")]
    Lock = 0x14,
    /// DVSEC CXL Capability2.
    #[doc(alias = "DVSEC CXL Capability2")]
    Capability2 = 0x16,
    /// Range 1 Size High.
    #[doc(alias = "DVSEC CXL Range 1 Size High")]
    Range1SizeHigh = 0x18,
    /// Range 1 Size Low.
    #[doc(alias = "DVSEC CXL Range 1 Size Low")]
    Range1SizeLow = 0x1C,
    /// Range 1 Base High.
    #[doc(alias = "DVSEC CXL Range 1 Base High")]
    Range1BaseHigh = 0x20,
    /// Range 1 Base Low.
    #[doc(alias = "DVSEC CXL Range 1 Base Low")]
    Range1BaseLow = 0x24,
    /// Range 2 Size High.
    #[doc(alias = "DVSEC CXL Range 2 Size High")]
    Range2SizeHigh = 0x28,
    /// Range 2 Size Low.
    #[doc(alias = "DVSEC CXL Range 2 Size Low")]
    Range2SizeLow = 0x2C,
    /// Range 2 Base High.
    #[doc(alias = "DVSEC CXL Range 2 Base High")]
    Range2BaseHigh = 0x30,
    /// Range 2 Base Low.
    #[doc(alias = "DVSEC CXL Range 2 Base Low")]
    Range2BaseLow = 0x34,
    /// DVSEC CXL Capability3 (revision 2 and later).
    #[doc(alias = "DVSEC CXL Capability3")]
    Capability3 = 0x38,
}

/// PCI Express extended capability header.
#[bitsize(32)]
#[derive(Clone, Copy, Default, PartialEq, Eq, DebugBits, FromBits)]
pub struct ExtCapHeader {
    /// Capability ID.
    pub id: u16,
    /// Capability version.
    pub version: u4,
    /// Offset of the next capability (0 = last).
    pub next: u12,
}

/// DVSEC Header 1.
#[bitsize(32)]
#[derive(Clone, Copy, Default, PartialEq, Eq, DebugBits, FromBits)]
#[doc(alias = "Designated Vendor-Specific Header 1")]
pub struct DvsecHeader1 {
    /// DVSEC vendor ID.
    pub vendor: u16,
    /// DVSEC revision.
    pub revision: u4,
    /// DVSEC length in bytes, headers included.
    pub length: u12,
}

/// DVSEC CXL Capability register.
#[bitsize(16)]
#[derive(Clone, Copy, Default, PartialEq, Eq, DebugBits, FromBits)]
#[doc(alias = "DVSEC CXL Capability")]
pub struct DvsecCapability {
    /// `Cache_Capable`.
    pub cache_capable: bool,
    /// `IO_Capable` (always 1).
    pub io_capable: bool,
    /// `Mem_Capable`.
    pub mem_capable: bool,
    /// `Mem_HwInit_Mode`.
    pub mem_hwinit_mode: bool,
    /// `HDM_Count`: 1 or 2 DVSEC ranges.
    pub hdm_count: u2,
    /// Cache Writeback and Invalidate Capable.
    pub cache_wbi_capable: bool,
    /// CXL Reset Capable.
    pub cxl_reset_capable: bool,
    /// CXL Reset Timeout (encoded).
    pub cxl_reset_timeout: u3,
    /// CXL Reset Mem Clr Capable.
    pub cxl_reset_mem_clr_capable: bool,
    /// TSP Capable.
    pub tsp_capable: bool,
    /// Multiple Logical Device.
    pub mld: bool,
    /// `Viral_Capable`.
    pub viral_capable: bool,
    /// PM Init Completion Reporting Capable.
    pub pm_init_completion_reporting: bool,
}

/// DVSEC CXL Control register.
#[bitsize(16)]
#[derive(Clone, Copy, Default, PartialEq, Eq, DebugBits, FromBits)]
#[doc(alias = "DVSEC CXL Control")]
pub struct DvsecControl {
    /// `Cache_Enable`.
    pub cache_enable: bool,
    /// `IO_Enable` (read-only 1).
    pub io_enable: bool,
    /// `Mem_Enable`.
    pub mem_enable: bool,
    /// `Cache_SF_Coverage`.
    pub cache_sf_coverage: u5,
    /// `Cache_SF_Granularity`.
    pub cache_sf_granularity: u3,
    /// `Cache_Clean_Eviction`.
    pub cache_clean_eviction: bool,
    /// Direct P2P Mem Enable.
    pub direct_p2p_mem_enable: bool,
    reserved: bool,
    /// `Viral_Enable`.
    pub viral_enable: bool,
    reserved: bool,
}

impl DvsecControl {
    /// Bits software may write (all but `IO_Enable` and reserved bits).
    pub const WRITABLE: u16 = 0x5FFD;
}

/// DVSEC CXL Control2 register.
#[bitsize(16)]
#[derive(Clone, Copy, Default, PartialEq, Eq, DebugBits, FromBits)]
#[doc(alias = "DVSEC CXL Control2")]
pub struct DvsecControl2 {
    /// Disable Caching.
    pub disable_caching: bool,
    /// Initiate Cache Write Back and Invalidation (action, reads 0).
    pub initiate_cache_wbi: bool,
    /// Initiate CXL Reset (action, reads 0).
    pub initiate_cxl_reset: bool,
    /// CXL Reset Mem Clr Enable.
    pub cxl_reset_mem_clr_enable: bool,
    /// Desired Volatile HDM State after Hot Reset.
    pub desired_volatile_hdm_state: bool,
    /// Modified Completion Enable.
    pub modified_completion_enable: bool,
    reserved: u10,
}

impl DvsecControl2 {
    /// Defined bits.
    pub const DEFINED: u16 = 0x003F;
    /// The two action bits.
    pub const ACTIONS: u16 = 0x0006;
}

/// DVSEC CXL Status2 register.
#[bitsize(16)]
#[derive(Clone, Copy, Default, PartialEq, Eq, DebugBits, FromBits)]
#[doc(alias = "DVSEC CXL Status2")]
pub struct DvsecStatus2 {
    /// Cache Invalid: write-back and invalidate finished.
    pub cache_invalid: bool,
    /// CXL Reset Complete.
    pub cxl_reset_complete: bool,
    /// CXL Reset Error.
    pub cxl_reset_error: bool,
    /// Volatile HDM Preservation Error (RW1C).
    pub volatile_hdm_preservation_error: bool,
    reserved: u11,
    /// Power Management Initialization Complete.
    pub pm_init_complete: bool,
}

/// DVSEC CXL Range n Size Low register.
#[bitsize(32)]
#[derive(Clone, Copy, Default, PartialEq, Eq, DebugBits, FromBits)]
#[doc(alias = "DVSEC CXL Range 1 Size Low")]
pub struct RangeSizeLow {
    /// `Memory_Info_Valid`.
    pub memory_info_valid: bool,
    /// `Memory_Active`.
    pub memory_active: bool,
    /// `Media_Type` (2 = described by CDAT).
    pub media_type: u3,
    /// `Memory_Class` (2 = described by CDAT).
    pub memory_class: u3,
    /// `Desired_Interleave`.
    pub desired_interleave: u5,
    /// `Memory_Active_Timeout`.
    pub memory_active_timeout: u3,
    /// `Memory_Active_Degraded`.
    pub memory_active_degraded: bool,
    reserved: u11,
    /// `Memory_Size_Low`: size bits 31:28.
    pub memory_size_low: u4,
}

/// Status2 bits the guest may clear (CXL 3.1: only the preservation error
/// is RW1C; the reset outcome bits are read-only and cleared when a new
/// CXL Reset is initiated).
const GUEST_STATUS2_RW1C: u16 = 0x0008;
/// `Viral_Status`, the only defined Status bit (RW1C).
const STATUS_VIRAL: u16 = 1 << 14;
const STATUS2_RESET_BITS: u16 = 0x0006;
const CTRL2_CACHE_WBI: u16 = 1 << 1;
const CTRL2_CXL_RESET: u16 = 1 << 2;

// Register offsets as `usize`, for matching on a write's register.
const REG_CONTROL: usize = DeviceDvsecRegister::Control as usize;
const REG_STATUS: usize = DeviceDvsecRegister::Status as usize;
const REG_CONTROL2: usize = DeviceDvsecRegister::Control2 as usize;
const REG_STATUS2: usize = DeviceDvsecRegister::Status2 as usize;
const REG_LOCK: usize = DeviceDvsecRegister::Lock as usize;
const REG_RANGE1_BASE_HIGH: usize = DeviceDvsecRegister::Range1BaseHigh as usize;
/// The upper half of Range 1 Base High.
const REG_RANGE1_BASE_HIGH_UPPER: usize = REG_RANGE1_BASE_HIGH + 2;
/// The upper half of Range 1 Base Low (bits 31:28 of the base).
const REG_RANGE1_BASE_LOW_UPPER: usize = DeviceDvsecRegister::Range1BaseLow as usize + 2;

/// Why DVSEC or config-space bytes were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DvsecError {
    /// Fewer bytes than the structure needs.
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// The extended capability header is not a DVSEC.
    NotDvsec {
        /// Capability ID found.
        id: u16,
    },
    /// Wrong DVSEC vendor.
    WrongVendor {
        /// Vendor found.
        vendor: u16,
    },
    /// Wrong DVSEC ID.
    WrongDvsecId {
        /// ID found.
        id: u16,
    },
    /// DVSEC length field too small, too large for the bytes, or (Register
    /// Locator) not header plus whole entries.
    BadLength {
        /// Length field.
        length: u16,
    },
    /// A Register Locator entry names a BAR indicator above 5.
    BadBir {
        /// BIR found.
        bir: u8,
    },
    /// An extended capability `next` pointer is below 0x100, misaligned or
    /// beyond the config space given.
    BadNextPointer {
        /// Capability holding the pointer.
        at: u16,
        /// The pointer.
        next: u16,
    },
    /// The extended capability list loops.
    CapabilityLoop {
        /// Offset visited twice.
        at: u16,
    },
}

impl fmt::Display for DvsecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { need, have } => {
                write!(f, "DVSEC needs {need} bytes, only {have} given")
            }
            Self::NotDvsec { id } => write!(f, "extended capability {id:#x} is not a DVSEC"),
            Self::WrongVendor { vendor } => write!(f, "DVSEC vendor {vendor:#06x} is not CXL"),
            Self::WrongDvsecId { id } => write!(f, "unexpected DVSEC ID {id}"),
            Self::BadLength { length } => write!(f, "bad DVSEC length {length:#x}"),
            Self::BadBir { bir } => write!(f, "register block BIR {bir} is not a BAR"),
            Self::BadNextPointer { at, next } => write!(
                f,
                "extended capability at {at:#x} has bad next pointer {next:#x}"
            ),
            Self::CapabilityLoop { at } => {
                write!(f, "extended capability list loops at {at:#x}")
            }
        }
    }
}

impl std::error::Error for DvsecError {}

// Registers outside the image read 0.
fn rd16(b: &[u8], at: usize) -> u16 {
    crate::uapi::rd_u16(b, at).unwrap_or(0)
}

fn rd32(b: &[u8], at: usize) -> u32 {
    crate::uapi::rd_u32(b, at).unwrap_or(0)
}

fn wr16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

fn wr32(b: &mut [u8], at: usize, v: u32) {
    if let Some(s) = b.get_mut(at..at + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

fn dvsec_headers(len: u16, revision: u8, dvsec_id: u16, next: u16) -> Vec<u8> {
    let mut out = vec![0u8; usize::from(len)];
    let ext = ExtCapHeader::new(
        PCI_EXT_CAP_ID_DVSEC,
        u4::new(PCI_EXT_CAP_DVSEC_VERSION),
        u12::new(next & 0xFFC),
    );
    let h1 = DvsecHeader1::new(CXL_VENDOR_ID, u4::new(revision), u12::new(len));
    wr32(&mut out, 0, u32::from(ext));
    wr32(&mut out, 4, u32::from(h1));
    wr16(&mut out, 8, dvsec_id);
    out
}

/// Checks the headers of a CXL DVSEC with ID `id`; returns its length.
fn check_dvsec(bytes: &[u8], id: u16, min_len: u16) -> Result<DvsecHeader1, DvsecError> {
    if bytes.len() < 0x0C {
        return Err(DvsecError::Truncated {
            need: 0x0C,
            have: bytes.len(),
        });
    }
    let ext = ExtCapHeader::from(rd32(bytes, 0));
    if ext.id() != PCI_EXT_CAP_ID_DVSEC {
        return Err(DvsecError::NotDvsec { id: ext.id() });
    }
    let h1 = DvsecHeader1::from(rd32(bytes, 4));
    if h1.vendor() != CXL_VENDOR_ID {
        return Err(DvsecError::WrongVendor {
            vendor: h1.vendor(),
        });
    }
    let found = rd16(bytes, 8);
    if found != id {
        return Err(DvsecError::WrongDvsecId { id: found });
    }
    let length = u16::from(h1.length());
    if length < min_len {
        return Err(DvsecError::BadLength { length });
    }
    if usize::from(length) > bytes.len() {
        return Err(DvsecError::Truncated {
            need: usize::from(length),
            have: bytes.len(),
        });
    }
    Ok(h1)
}

/// What the VMM or simulator wants a CXL Device DVSEC to say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceDvsecConfig {
    /// Size of range 1 (device memory); bits 27:0 are dropped.
    pub mem_size: u64,
    /// Base of range 1; bits 27:0 are dropped.
    pub mem_base: u64,
    /// `Cache_Capable`.
    pub cache_capable: bool,
    /// `HDM_Count` (1 or 2 DVSEC ranges; 0 reads as not memory capable).
    pub hdm_count: u8,
    /// `Memory_Active` in range 1.
    pub mem_active: bool,
    /// `Mem_Enable` in Control.
    pub mem_enable: bool,
    /// `CONFIG_LOCK` in Lock.
    pub config_lock: bool,
    /// CXL Reset Capable.
    pub cxl_reset_capable: bool,
    /// Cache Writeback and Invalidate Capable.
    pub cache_wbi_capable: bool,
}

/// Builds a revision 2 CXL Device DVSEC (0x3C bytes) including its PCI Express
/// extended capability header with `next` as next pointer.
///
/// `Mem_Capable` and `Memory_Info_Valid` follow from a non-zero
/// `hdm_count`; `IO_Capable` and `IO_Enable` are always set; media type
/// and memory class say "described by CDAT" as CXL 2.0 and later require.
pub fn build_device_dvsec(cfg: &DeviceDvsecConfig, next: u16) -> Vec<u8> {
    let mut out = dvsec_headers(
        DEVICE_DVSEC_LENGTH,
        DEVICE_DVSEC_REVISION,
        DVSEC_ID_CXL_DEVICE,
        next,
    );
    let mem = cfg.hdm_count != 0;
    let mut cap = DvsecCapability::default();
    cap.set_cache_capable(cfg.cache_capable);
    cap.set_io_capable(true);
    cap.set_mem_capable(mem);
    cap.set_hdm_count(u2::new(cfg.hdm_count.min(3)));
    cap.set_cache_wbi_capable(cfg.cache_wbi_capable);
    cap.set_cxl_reset_capable(cfg.cxl_reset_capable);
    wr16(
        &mut out,
        DeviceDvsecRegister::Capability as usize,
        u16::from(cap),
    );

    let mut ctrl = DvsecControl::default();
    ctrl.set_io_enable(true);
    ctrl.set_mem_enable(cfg.mem_enable);
    wr16(
        &mut out,
        DeviceDvsecRegister::Control as usize,
        u16::from(ctrl),
    );
    wr16(
        &mut out,
        DeviceDvsecRegister::Lock as usize,
        u16::from(cfg.config_lock),
    );

    if mem {
        let mut lo = RangeSizeLow::default();
        lo.set_memory_info_valid(true);
        lo.set_memory_active(cfg.mem_active);
        lo.set_media_type(u3::new(2));
        lo.set_memory_class(u3::new(2));
        lo.set_memory_size_low(u4::new(((cfg.mem_size >> 28) & 0xF) as u8));
        wr32(&mut out, 0x18, (cfg.mem_size >> 32) as u32);
        wr32(&mut out, 0x1C, u32::from(lo));
        wr32(&mut out, 0x20, (cfg.mem_base >> 32) as u32);
        wr32(&mut out, 0x24, (cfg.mem_base as u32) & 0xF000_0000);
    }
    out
}

/// A decoded CXL Device DVSEC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceDvsec {
    /// DVSEC revision.
    pub revision: u8,
    /// DVSEC length.
    pub length: u16,
    /// Next extended capability pointer from the header.
    pub next: u16,
    /// Capability register.
    pub capability: DvsecCapability,
    /// Control register.
    pub control: DvsecControl,
    /// Status register.
    pub status: u16,
    /// Control2 register.
    pub control2: DvsecControl2,
    /// Status2 register.
    pub status2: DvsecStatus2,
    /// Lock register.
    pub lock: u16,
    /// Capability2 register.
    pub capability2: u16,
    /// Range 1 size low register (flags and size bits 31:28).
    pub range1_size_low: RangeSizeLow,
    /// Range 1 size.
    pub range1_size: u64,
    /// Range 1 base.
    pub range1_base: u64,
    /// Range 2 size.
    pub range2_size: u64,
    /// Range 2 base.
    pub range2_base: u64,
    /// Capability3 register, revision 2 and later.
    pub capability3: Option<u16>,
}

impl DeviceDvsec {
    /// `CONFIG_LOCK` is set.
    pub fn config_locked(&self) -> bool {
        self.lock & 1 != 0
    }

    /// The configuration that rebuilds an equivalent DVSEC.
    pub fn to_config(&self) -> DeviceDvsecConfig {
        DeviceDvsecConfig {
            mem_size: self.range1_size,
            mem_base: self.range1_base,
            cache_capable: self.capability.cache_capable(),
            hdm_count: u8::from(self.capability.hdm_count()),
            mem_active: self.range1_size_low.memory_active(),
            mem_enable: self.control.mem_enable(),
            config_lock: self.config_locked(),
            cxl_reset_capable: self.capability.cxl_reset_capable(),
            cache_wbi_capable: self.capability.cache_wbi_capable(),
        }
    }
}

/// Decodes a CXL Device DVSEC from bytes starting at its extended
/// capability header.
pub fn parse_device_dvsec(bytes: &[u8]) -> Result<DeviceDvsec, DvsecError> {
    let h1 = check_dvsec(bytes, DVSEC_ID_CXL_DEVICE, DEVICE_DVSEC_MIN_LENGTH)?;
    let r64 = |hi: usize, lo: usize, mask: u32| {
        (u64::from(rd32(bytes, hi)) << 32) | u64::from(rd32(bytes, lo) & mask)
    };
    let length = u16::from(h1.length());
    Ok(DeviceDvsec {
        revision: u8::from(h1.revision()),
        length,
        next: u16::from(ExtCapHeader::from(rd32(bytes, 0)).next()),
        capability: DvsecCapability::from(rd16(bytes, 0x0A)),
        control: DvsecControl::from(rd16(bytes, 0x0C)),
        status: rd16(bytes, 0x0E),
        control2: DvsecControl2::from(rd16(bytes, 0x10)),
        status2: DvsecStatus2::from(rd16(bytes, 0x12)),
        lock: rd16(bytes, 0x14),
        capability2: rd16(bytes, 0x16),
        range1_size_low: RangeSizeLow::from(rd32(bytes, 0x1C)),
        range1_size: r64(0x18, 0x1C, 0xF000_0000),
        range1_base: r64(0x20, 0x24, 0xF000_0000),
        range2_size: r64(0x28, 0x2C, 0xF000_0000),
        range2_base: r64(0x30, 0x34, 0xF000_0000),
        capability3: (length >= DEVICE_DVSEC_LENGTH).then(|| rd16(bytes, 0x38)),
    })
}

/// One Register Locator entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterBlock {
    /// BAR indicator (0 to 5).
    pub bir: u8,
    /// Register block identifier, e.g. [`BLOCK_ID_COMPONENT`].
    pub block_id: u8,
    /// Offset of the block in the BAR (64 KiB aligned).
    pub offset: u64,
}

/// Builds a Register Locator DVSEC including its extended capability
/// header.  Offsets are cut to 64 KiB alignment and BIRs to 3 bits.
pub fn build_register_locator(blocks: &[RegisterBlock], next: u16) -> Vec<u8> {
    // The 12-bit length field bounds the entry count.
    let blocks = &blocks[..blocks.len().min(0x1FE)];
    let len = REGISTER_LOCATOR_ENTRIES as usize + 8 * blocks.len();
    let mut out = dvsec_headers(
        len as u16,
        REGISTER_LOCATOR_REVISION,
        DVSEC_ID_REGISTER_LOCATOR,
        next,
    );
    for (i, b) in blocks.iter().enumerate() {
        let at = usize::from(REGISTER_LOCATOR_ENTRIES) + 8 * i;
        let lo =
            u32::from(b.bir & 7) | (u32::from(b.block_id) << 8) | (b.offset as u32 & 0xFFFF_0000);
        wr32(&mut out, at, lo);
        wr32(&mut out, at + 4, (b.offset >> 32) as u32);
    }
    out
}

/// Decodes a Register Locator DVSEC from bytes starting at its extended
/// capability header.  Empty entries (block ID 0) are kept; any other entry
/// must name a BAR (BIR 0 to 5).
pub fn parse_register_locator(bytes: &[u8]) -> Result<Vec<RegisterBlock>, DvsecError> {
    let h1 = check_dvsec(bytes, DVSEC_ID_REGISTER_LOCATOR, REGISTER_LOCATOR_ENTRIES)?;
    let length = u16::from(h1.length());
    if (length - REGISTER_LOCATOR_ENTRIES) % 8 != 0 {
        return Err(DvsecError::BadLength { length });
    }
    let n = usize::from(length - REGISTER_LOCATOR_ENTRIES) / 8;
    let mut blocks = Vec::with_capacity(n);
    for i in 0..n {
        let at = usize::from(REGISTER_LOCATOR_ENTRIES) + 8 * i;
        let lo = rd32(bytes, at);
        let hi = rd32(bytes, at + 4);
        let b = RegisterBlock {
            bir: (lo & 7) as u8,
            block_id: (lo >> 8) as u8,
            offset: (u64::from(hi) << 32) | u64::from(lo & 0xFFFF_0000),
        };
        if b.block_id != BLOCK_ID_EMPTY && b.bir > 5 {
            return Err(DvsecError::BadBir { bir: b.bir });
        }
        blocks.push(b);
    }
    Ok(blocks)
}

/// Finds the DVSEC with `vendor` and DVSEC `id` in a config-space image
/// (normally 4 KiB) and returns its offset.
///
/// `Ok(None)` when the image has no extended space or the list ends
/// without a match.  A `next` pointer below 0x100, not dword aligned or
/// whose header does not fit is an error, as is a list that visits an
/// offset twice.
pub fn find_dvsec(config: &[u8], vendor: u16, id: u16) -> Result<Option<u16>, DvsecError> {
    let mut at = PCI_EXT_CAP_START;
    // One bit per dword of extended space.
    let mut seen = [false; PCI_CONFIG_SPACE_SIZE / 4];
    loop {
        let i = usize::from(at);
        if i + 4 > config.len() {
            // Only the first header may be missing (no extended space).
            return Ok(None);
        }
        if std::mem::replace(&mut seen[i / 4], true) {
            return Err(DvsecError::CapabilityLoop { at });
        }
        let raw = rd32(config, i);
        if raw == 0 || raw == 0xFFFF_FFFF {
            return Ok(None);
        }
        let hdr = ExtCapHeader::from(raw);
        if hdr.id() == PCI_EXT_CAP_ID_DVSEC && i + 0x0A <= config.len() {
            let h1 = DvsecHeader1::from(rd32(config, i + 4));
            if h1.vendor() == vendor && rd16(config, i + 8) == id {
                return Ok(Some(at));
            }
        }
        let next = u16::from(hdr.next());
        if next == 0 {
            return Ok(None);
        }
        if next < PCI_EXT_CAP_START
            || next % 4 != 0
            || usize::from(next) + 4 > config.len().min(PCI_CONFIG_SPACE_SIZE)
        {
            return Err(DvsecError::BadNextPointer { at, next });
        }
        at = next;
    }
}

/// What a DVSEC write asks the VMM (or simulator) to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DvsecWriteEffect {
    /// Nothing beyond the register update.
    None,
    /// Initiate CXL Reset was written with 1.
    CxlResetRequested,
    /// Initiate Cache Write Back and Invalidation was written with 1.
    CacheWbiRequested,
}

impl DvsecWriteEffect {
    /// Combines two effects of one write; a reset wins because the VMM
    /// writes caches back before any reset anyway.
    fn or(self, other: Self) -> Self {
        match (self, other) {
            (Self::CxlResetRequested, _) | (_, Self::CxlResetRequested) => Self::CxlResetRequested,
            (Self::CacheWbiRequested, _) | (_, Self::CacheWbiRequested) => Self::CacheWbiRequested,
            _ => Self::None,
        }
    }
}

/// Whose rules a [`DvsecImage`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rules {
    Guest,
    Host(UapiVersion),
}

/// The bytes of a Device DVSEC plus the per-register write rules shared by
/// the guest and host views.
#[derive(Clone, Debug, PartialEq, Eq)]
struct DvsecImage {
    bytes: Vec<u8>,
    rules: Rules,
}

impl DvsecImage {
    fn locked(&self) -> bool {
        rd16(&self.bytes, DeviceDvsecRegister::Lock as usize) & 1 != 0
    }

    fn read(&self, offset: u16, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self
                .bytes
                .get(usize::from(offset) + i)
                .copied()
                .unwrap_or(0);
        }
    }

    /// Applies a write of `data` at `offset`, one 16-bit register at a
    /// time with a byte-enable mask, so that partial writes only touch the
    /// bytes written.
    fn write(&mut self, offset: u16, data: &[u8]) -> DvsecWriteEffect {
        let start = usize::from(offset);
        let end = start.saturating_add(data.len()).min(self.bytes.len());
        let mut effect = DvsecWriteEffect::None;
        let mut reg = start & !1;
        while reg < end {
            let mut val = 0u16;
            let mut be = 0u16;
            for k in 0..2 {
                let at = reg + k;
                if at >= start && at < end {
                    val |= u16::from(data[at - start]) << (8 * k);
                    be |= 0xFF << (8 * k);
                }
            }
            effect = effect.or(self.write16(reg, val, be));
            reg += 2;
        }
        effect
    }

    fn merge(&mut self, reg: usize, val: u16, be: u16, writable: u16) {
        let m = be & writable;
        let old = rd16(&self.bytes, reg);
        wr16(&mut self.bytes, reg, (old & !m) | (val & m));
    }

    /// Write-1-to-clear of the bits of `val` that `be` and `rw1c` allow.
    fn clear_bits(&mut self, reg: usize, val: u16, be: u16, rw1c: u16) {
        let old = rd16(&self.bytes, reg);
        wr16(&mut self.bytes, reg, old & !(val & be & rw1c));
    }

    fn write16(&mut self, reg: usize, val: u16, be: u16) -> DvsecWriteEffect {
        let locked = self.locked();
        let guest = self.rules == Rules::Guest;
        if self.rules == Rules::Host(UapiVersion::V4) {
            return self.write16_host_v4(reg, val, be);
        }
        match reg {
            REG_CONTROL if !locked => self.merge(reg, val, be, DvsecControl::WRITABLE),
            REG_STATUS => self.clear_bits(reg, val, be, if guest { STATUS_VIRAL } else { 0xFFFF }),
            REG_CONTROL2 => return self.write_control2(val, be, locked),
            REG_STATUS2 => {
                let rw1c = if guest { GUEST_STATUS2_RW1C } else { 0xFFFF };
                self.clear_bits(reg, val, be, rw1c);
            }
            REG_LOCK => {
                let old = rd16(&self.bytes, reg);
                wr16(&mut self.bytes, reg, old | (val & be & 1));
            }
            // Range 1 base is RWL for the guest; the host shadow keeps it.
            REG_RANGE1_BASE_HIGH | REG_RANGE1_BASE_HIGH_UPPER if guest && !locked => {
                self.merge(reg, val, be, 0xFFFF);
            }
            REG_RANGE1_BASE_LOW_UPPER if guest && !locked => self.merge(reg, val, be, 0xF000),
            _ => {}
        }
        DvsecWriteEffect::None
    }

    /// v4: the host virtualizes the whole DVSEC.  Control and Control2
    /// take writes into the shadow whatever the lock; Capability, Status,
    /// Lock and the ranges keep the firmware snapshot; Status2 is
    /// write-1-to-clear.  The Cache WBI doorbell never reaches hardware: its
    /// completion (Status2 Cache Invalid) is synthesized at once.  The CXL
    /// Reset doorbell is reported, so that the caller runs the real reset
    /// and reports its outcome with `set_reset_status`.  Doorbells read 0.
    fn write16_host_v4(&mut self, reg: usize, val: u16, be: u16) -> DvsecWriteEffect {
        match reg {
            REG_CONTROL => self.merge(reg, val, be, DvsecControl::WRITABLE),
            REG_CONTROL2 => {
                self.merge(
                    reg,
                    val,
                    be,
                    DvsecControl2::DEFINED & !DvsecControl2::ACTIONS,
                );
                let acts = val & be & DvsecControl2::ACTIONS;
                let mut effect = DvsecWriteEffect::None;
                if acts & CTRL2_CACHE_WBI != 0 {
                    let mut s2 = DvsecStatus2::from(rd16(&self.bytes, REG_STATUS2));
                    s2.set_cache_invalid(true);
                    wr16(&mut self.bytes, REG_STATUS2, u16::from(s2));
                    effect = DvsecWriteEffect::CacheWbiRequested;
                }
                if acts & CTRL2_CXL_RESET != 0 {
                    self.clear_bits(REG_STATUS2, STATUS2_RESET_BITS, 0xFFFF, 0xFFFF);
                    effect = DvsecWriteEffect::CxlResetRequested;
                }
                return effect;
            }
            REG_STATUS2 => self.clear_bits(reg, val, be, 0xFFFF),
            _ => {}
        }
        DvsecWriteEffect::None
    }

    fn write_control2(&mut self, val: u16, be: u16, locked: bool) -> DvsecWriteEffect {
        let reg = DeviceDvsecRegister::Control2 as usize;
        let cap =
            DvsecCapability::from(rd16(&self.bytes, DeviceDvsecRegister::Capability as usize));
        let acts = val & be & DvsecControl2::ACTIONS;
        let (store, report) = match self.rules {
            // CXL 3.1 marks Control2 RW, not RWL: the guest keeps it
            // writable after CONFIG_LOCK, which is how it asks for a reset.
            Rules::Guest => (true, true),
            Rules::Host(UapiVersion::V3) => (!locked, false),
            Rules::Host(UapiVersion::V2) => (!locked, true),
            // Served by `write16_host_v4`, never reaches here.
            Rules::Host(UapiVersion::V4) => (true, true),
        };
        if store {
            let writable = if report {
                DvsecControl2::DEFINED & !DvsecControl2::ACTIONS
            } else {
                DvsecControl2::DEFINED
            };
            self.merge(reg, val, be, writable);
        }
        if !report {
            return DvsecWriteEffect::None;
        }
        let guest = self.rules == Rules::Guest;
        let mut effect = DvsecWriteEffect::None;
        if acts & CTRL2_CACHE_WBI != 0 && (!guest || cap.cache_wbi_capable()) {
            effect = DvsecWriteEffect::CacheWbiRequested;
        }
        if acts & CTRL2_CXL_RESET != 0 && (!guest || cap.cxl_reset_capable()) {
            // A new reset clears the previous outcome.
            let s2 = DeviceDvsecRegister::Status2 as usize;
            let old = rd16(&self.bytes, s2);
            wr16(&mut self.bytes, s2, old & !STATUS2_RESET_BITS);
            effect = DvsecWriteEffect::CxlResetRequested;
        }
        effect
    }

    fn set_reset_status(&mut self, complete: bool, error: bool) {
        let s2 = DeviceDvsecRegister::Status2 as usize;
        let mut v = DvsecStatus2::from(rd16(&self.bytes, s2));
        v.set_cxl_reset_complete(complete);
        v.set_cxl_reset_error(error);
        wr16(&mut self.bytes, s2, u16::from(v));
    }
}

/// The CXL Device DVSEC as the VMM presents it to the guest.
///
/// Built from the host's DVSEC (capabilities, header, next pointer) and
/// the presented memory: Control has `Mem_Enable`, range 1 has the guest
/// base and the size with `Memory_Info_Valid` and `Memory_Active`, range 2
/// is empty, `CONFIG_LOCK` is set.  Rules (CXL 3.1):
/// - headers, Capability, Capability2/3 and range sizes are read-only;
/// - Control and range 1 base are writable until `CONFIG_LOCK`, then
///   read-only (the VMM's boot state is locked, so in practice always);
/// - Control2 is writable regardless of the lock (CXL marks it RW); its
///   Initiate Cache WBI and Initiate CXL Reset bits read 0 and are
///   reported as a [`DvsecWriteEffect`] when the matching capability bit
///   is set;
/// - Status `Viral_Status` and Status2 Volatile HDM Preservation Error are
///   RW1C; the CXL Reset Complete/Error bits are read-only, set through
///   [`GuestDeviceDvsec::set_reset_status`] and cleared by a new reset;
/// - Lock bit 0 is write-once (set only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestDeviceDvsec {
    boot: DvsecImage,
    cur: DvsecImage,
}

impl GuestDeviceDvsec {
    /// The locked boot state for the host's DVSEC and presented memory.
    pub fn new(host: &DeviceDvsec, base: u64, size: u64) -> Self {
        let mut cap = host.capability;
        cap.set_mem_capable(true);
        if u8::from(cap.hdm_count()) == 0 {
            cap.set_hdm_count(u2::new(1));
        }
        let cfg = DeviceDvsecConfig {
            mem_size: size,
            mem_base: base,
            hdm_count: 1,
            mem_active: true,
            mem_enable: true,
            config_lock: true,
            ..host.to_config()
        };
        let mut bytes = build_device_dvsec(&cfg, host.next);
        // Keep the host's capability bits (reset timeouts, viral, ...)
        // and revision-specific registers; Capability keeps the host's
        // HDM count so that range 2 reads as present-but-empty if the
        // device has one.
        wr16(&mut bytes, 0x0A, u16::from(cap));
        let mut ctrl = DvsecControl::from(rd16(&bytes, 0x0C));
        ctrl.set_cache_enable(host.control.cache_enable());
        wr16(&mut bytes, 0x0C, u16::from(ctrl));
        wr16(&mut bytes, 0x16, host.capability2);
        wr16(&mut bytes, 0x38, host.capability3.unwrap_or(0));
        let img = DvsecImage {
            bytes,
            rules: Rules::Guest,
        };
        Self {
            boot: img.clone(),
            cur: img,
        }
    }

    /// Length of the DVSEC in bytes.
    pub fn len(&self) -> u16 {
        self.cur.bytes.len() as u16
    }

    /// Always false: a DVSEC has at least its headers.
    pub fn is_empty(&self) -> bool {
        self.cur.bytes.is_empty()
    }

    /// Reads `size` (1, 2 or 4) bytes at `offset`; bytes beyond the DVSEC
    /// read 0, other sizes read 0.
    pub fn read(&self, offset: u16, size: u32) -> u32 {
        if !matches!(size, 1 | 2 | 4) {
            return 0;
        }
        let mut buf = [0u8; 4];
        self.cur.read(offset, &mut buf[..size as usize]);
        u32::from_le_bytes(buf)
    }

    /// Writes `size` (1, 2 or 4) bytes of `value` at `offset`; other sizes
    /// are ignored.
    pub fn write(&mut self, offset: u16, size: u32, value: u32) -> DvsecWriteEffect {
        if !matches!(size, 1 | 2 | 4) {
            return DvsecWriteEffect::None;
        }
        let bytes = value.to_le_bytes();
        self.cur.write(offset, &bytes[..size as usize])
    }

    /// Back to the VMM's boot state (locked again).
    pub fn reset(&mut self) {
        self.cur = self.boot.clone();
    }

    /// Reports the outcome of a CXL Reset in Status2.
    pub fn set_reset_status(&mut self, complete: bool, error: bool) {
        self.cur.set_reset_status(complete, error);
    }

    /// The current bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.cur.bytes
    }

    /// The current state, decoded.
    pub fn state(&self) -> DeviceDvsec {
        // The image is always a well-formed DVSEC built by this module.
        parse_device_dvsec(&self.cur.bytes).unwrap_or_default()
    }
}

/// The kernel's shadow of the CXL Device DVSEC, which the simulator
/// serves in config space.
///
/// Rules (both versions): Capability and ranges fixed; Control and Control2
/// writable until `CONFIG_LOCK`, then writes dropped; Status and Status2
/// write-1-to-clear; Lock bit 0 write-once.  v2 additionally forwards
/// Control2 Initiate Cache WBI (bit 1) and Initiate CXL Reset (bit 2) to
/// hardware, which this model reports as a [`DvsecWriteEffect`] (even
/// after `CONFIG_LOCK`; the bits are not stored); the simulator reports the
/// outcome with [`HostDeviceDvsec::set_reset_status`].  Neither version
/// refreshes the shadow on reset.
///
/// v4 (`legoater/linux`, `drivers/vfio/pci/vfio_pci_config.c` and the
/// selftest) virtualizes the whole body from a per-open snapshot: Control
/// and Control2 writable into the shadow only (whatever the lock);
/// Capability, Status, Lock and the ranges keep the snapshot; Status2
/// write-1-to-clear; Initiate Cache WBI completes at once (Status2 Cache
/// Invalid set, reported as [`DvsecWriteEffect::CacheWbiRequested`]);
/// Initiate CXL Reset is reported as [`DvsecWriteEffect::CxlResetRequested`]
/// for the caller to run the reset; doorbells read 0.  A v4 reset reloads
/// the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostDeviceDvsec {
    img: DvsecImage,
}

impl HostDeviceDvsec {
    /// The shadow of a device configured as `cfg`, next pointer 0.
    pub fn new(version: UapiVersion, cfg: &DeviceDvsecConfig) -> Self {
        Self {
            img: DvsecImage {
                bytes: build_device_dvsec(cfg, 0),
                rules: Rules::Host(version),
            },
        }
    }

    /// Sets the next-capability pointer in the extended capability header.
    pub fn set_next(&mut self, next: u16) {
        let mut h = ExtCapHeader::from(rd32(&self.img.bytes, 0));
        h.set_next(u12::new(next & 0xFFC));
        wr32(&mut self.img.bytes, 0, u32::from(h));
    }

    /// Length of the DVSEC in bytes.
    pub fn len(&self) -> u16 {
        self.img.bytes.len() as u16
    }

    /// Always false: a DVSEC has at least its headers.
    pub fn is_empty(&self) -> bool {
        self.img.bytes.is_empty()
    }

    /// Reads `buf.len()` bytes at `offset`; bytes beyond the DVSEC read 0.
    pub fn read(&self, offset: u16, buf: &mut [u8]) {
        self.img.read(offset, buf);
    }

    /// Writes `data` at `offset` under the kernel's rules.
    pub fn write(&mut self, offset: u16, data: &[u8]) -> DvsecWriteEffect {
        self.img.write(offset, data)
    }

    /// What a reset does to the shadow: v4 reopens it from the firmware
    /// snapshot `cfg` (every v4 reset is a CXL reset, after which the
    /// kernel takes the snapshot again); v3 never refreshes it; v2 keeps it
    /// too, since FLR does not touch the locked configuration.  The
    /// next-capability pointer is kept.
    pub fn reset(&mut self, cfg: &DeviceDvsecConfig) {
        if self.img.rules == Rules::Host(UapiVersion::V4) {
            let next = ExtCapHeader::from(rd32(&self.img.bytes, 0)).next();
            self.img.bytes = build_device_dvsec(cfg, 0);
            self.set_next(next.value());
        }
    }

    /// Reports the outcome of a CXL Reset in Status2.
    pub fn set_reset_status(&mut self, complete: bool, error: bool) {
        self.img.set_reset_status(complete, error);
    }

    /// The current bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.img.bytes
    }
}

/// Splits the config-space access `access` into the parts before, inside
/// and after `dvsec` (each possibly empty), tagged with whether they lie
/// inside: the device and the simulator serve the DVSEC themselves and
/// pass the rest on.
pub fn split_access(access: Range<usize>, dvsec: &Range<usize>) -> [(Range<usize>, bool); 3] {
    let inside_start = dvsec.start.clamp(access.start, access.end);
    let inside_end = dvsec.end.clamp(access.start, access.end);
    [
        (access.start..inside_start, false),
        (inside_start..inside_end, true),
        (inside_end..access.end, false),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn cfg() -> DeviceDvsecConfig {
        DeviceDvsecConfig {
            mem_size: 4 * GIB,
            mem_base: 0,
            cache_capable: true,
            hdm_count: 1,
            mem_active: true,
            mem_enable: false,
            config_lock: false,
            cxl_reset_capable: true,
            cache_wbi_capable: true,
        }
    }

    fn host_dvsec() -> DeviceDvsec {
        parse_device_dvsec(&build_device_dvsec(&cfg(), 0x200)).unwrap()
    }

    fn guest() -> GuestDeviceDvsec {
        GuestDeviceDvsec::new(&host_dvsec(), 0x10_0000_0000, 4 * GIB)
    }

    #[test]
    fn build_device_dvsec_layout() {
        let b = build_device_dvsec(&cfg(), 0x200);
        assert_eq!(b.len(), 0x3C);
        // Extended cap header: ID 0x23, version 1, next 0x200.
        assert_eq!(rd32(&b, 0), 0x2001_0023);
        // Header 1: vendor 0x1E98, revision 2, length 0x3C.
        assert_eq!(rd32(&b, 4), 0x03C2_1E98);
        assert_eq!(rd16(&b, 8), DVSEC_ID_CXL_DEVICE);
        // Cache, IO, Mem capable, HDM count 1, WBI and reset capable.
        assert_eq!(rd16(&b, 0x0A), 0b1101_0111);
        assert_eq!(rd16(&b, 0x0C), 0b10);
        // Size 4 GiB: high 1, low has valid, active, CDAT media and class.
        assert_eq!(rd32(&b, 0x18), 1);
        assert_eq!(rd32(&b, 0x1C), 0b0100_1011);
    }

    #[test]
    fn parse_device_dvsec_roundtrip() {
        let mut c = cfg();
        c.mem_size = 0x1_3000_0000;
        c.mem_base = 0x20_1000_0000;
        c.mem_enable = true;
        c.config_lock = true;
        let d = parse_device_dvsec(&build_device_dvsec(&c, 0)).unwrap();
        assert_eq!(d.to_config(), c);
        assert_eq!(d.revision, 2);
        assert_eq!(d.capability3, Some(0));
        assert!(d.config_locked());
    }

    #[test]
    fn parse_device_dvsec_accepts_revision_1() {
        let mut b = build_device_dvsec(&cfg(), 0);
        b.truncate(0x38);
        wr32(&mut b, 4, 0x0381_1E98);
        let d = parse_device_dvsec(&b).unwrap();
        assert_eq!((d.revision, d.length, d.capability3), (1, 0x38, None));
    }

    #[test]
    fn parse_device_dvsec_rejects_bad_headers() {
        let good = build_device_dvsec(&cfg(), 0);
        assert_eq!(
            parse_device_dvsec(&good[..8]),
            Err(DvsecError::Truncated { need: 12, have: 8 })
        );
        let mut b = good.clone();
        b[0] = 0x10;
        assert_eq!(
            parse_device_dvsec(&b),
            Err(DvsecError::NotDvsec { id: 0x10 })
        );
        let mut b_vendor = good.clone();
        b_vendor[4] = 0x86;
        assert_eq!(
            parse_device_dvsec(&b_vendor),
            Err(DvsecError::WrongVendor { vendor: 0x1E86 })
        );
        let mut b_id = good.clone();
        b_id[8] = 8;
        assert_eq!(
            parse_device_dvsec(&b_id),
            Err(DvsecError::WrongDvsecId { id: 8 })
        );
        let mut b_len = good.clone();
        wr32(&mut b_len, 4, 0x0202_1E98);
        assert_eq!(
            parse_device_dvsec(&b_len),
            Err(DvsecError::BadLength { length: 0x20 })
        );
        assert_eq!(
            parse_device_dvsec(&good[..0x30]),
            Err(DvsecError::Truncated {
                need: 0x3C,
                have: 0x30
            })
        );
    }

    #[test]
    fn register_locator_roundtrip() {
        let blocks = [
            RegisterBlock {
                bir: 2,
                block_id: BLOCK_ID_COMPONENT,
                offset: 0x1_0002_0000,
            },
            RegisterBlock {
                bir: 0,
                block_id: BLOCK_ID_MEMDEV,
                offset: 0x10000,
            },
        ];
        let b = build_register_locator(&blocks, 0x300);
        assert_eq!(b.len(), 0x1C);
        assert_eq!(rd32(&b, 0) >> 20, 0x300);
        // Low dword: BIR 2:0, block ID 15:8, offset bits 31:16.
        assert_eq!(rd32(&b, 0x0C), 0x0002_0102);
        assert_eq!(rd32(&b, 0x10), 1);
        assert_eq!(parse_register_locator(&b).unwrap(), blocks);
    }

    #[test]
    fn register_locator_offset_is_64k_aligned() {
        let b = build_register_locator(
            &[RegisterBlock {
                bir: 1,
                block_id: 1,
                offset: 0x2_1234,
            }],
            0,
        );
        assert_eq!(parse_register_locator(&b).unwrap()[0].offset, 0x2_0000);
    }

    #[test]
    fn register_locator_rejects_partial_entry() {
        let mut b = build_register_locator(&[], 0);
        b.extend_from_slice(&[0; 4]);
        wr32(&mut b, 4, 0x0100_1E98);
        assert_eq!(
            parse_register_locator(&b),
            Err(DvsecError::BadLength { length: 0x10 })
        );
    }

    #[test]
    fn register_locator_rejects_bad_bir() {
        let mut b = build_register_locator(
            &[RegisterBlock {
                bir: 0,
                block_id: 1,
                offset: 0,
            }],
            0,
        );
        b[0x0C] = 6;
        assert_eq!(
            parse_register_locator(&b),
            Err(DvsecError::BadBir { bir: 6 })
        );
        // An empty entry may carry anything.
        b[0x0D] = 0;
        parse_register_locator(&b).unwrap();
    }

    #[test]
    fn register_locator_rejects_wrong_id() {
        let b = build_device_dvsec(&cfg(), 0);
        assert_eq!(
            parse_register_locator(&b),
            Err(DvsecError::WrongDvsecId { id: 0 })
        );
    }

    fn config_with(caps: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut c = vec![0u8; PCI_CONFIG_SPACE_SIZE];
        for (at, bytes) in caps {
            let at = usize::from(*at);
            c[at..at + bytes.len()].copy_from_slice(bytes);
        }
        c
    }

    #[test]
    fn find_dvsec_walks_the_list() {
        // A non-DVSEC capability (AER, ID 1) first, then both DVSECs.
        let aer = (0x100u16, vec![0x01, 0x00, 0x01, 0x18]); // next 0x180
        let dev = (0x180u16, build_device_dvsec(&cfg(), 0x300));
        let loc = (
            0x300u16,
            build_register_locator(
                &[RegisterBlock {
                    bir: 0,
                    block_id: 1,
                    offset: 0,
                }],
                0,
            ),
        );
        let c = config_with(&[aer, dev, loc]);
        assert_eq!(
            find_dvsec(&c, CXL_VENDOR_ID, DVSEC_ID_CXL_DEVICE),
            Ok(Some(0x180))
        );
        assert_eq!(
            find_dvsec(&c, CXL_VENDOR_ID, DVSEC_ID_REGISTER_LOCATOR),
            Ok(Some(0x300))
        );
        assert_eq!(find_dvsec(&c, CXL_VENDOR_ID, 7), Ok(None));
        assert_eq!(find_dvsec(&c, 0x8086, 0), Ok(None));
    }

    #[test]
    fn find_dvsec_handles_missing_extended_space() {
        assert_eq!(find_dvsec(&[0u8; 256], CXL_VENDOR_ID, 0), Ok(None));
        assert_eq!(find_dvsec(&[], CXL_VENDOR_ID, 0), Ok(None));
        let mut c = vec![0u8; PCI_CONFIG_SPACE_SIZE];
        c[0x100..0x104].fill(0xFF);
        assert_eq!(find_dvsec(&c, CXL_VENDOR_ID, 0), Ok(None));
    }

    #[test]
    fn find_dvsec_rejects_loop() {
        // 0x100 -> 0x140 -> 0x100.
        let c = config_with(&[
            (0x100, vec![0x01, 0x00, 0x01, 0x14]),
            (0x140, vec![0x02, 0x00, 0x01, 0x10]),
        ]);
        assert_eq!(
            find_dvsec(&c, CXL_VENDOR_ID, 0),
            Err(DvsecError::CapabilityLoop { at: 0x100 })
        );
        // A capability pointing at itself.
        let c_self = config_with(&[(0x100, vec![0x01, 0x00, 0x01, 0x10])]);
        assert_eq!(
            find_dvsec(&c_self, CXL_VENDOR_ID, 0),
            Err(DvsecError::CapabilityLoop { at: 0x100 })
        );
    }

    #[test]
    fn find_dvsec_rejects_bad_next_pointer() {
        // Next 0x0C0 lies in conventional config space.
        let c = config_with(&[(0x100, vec![0x01, 0x00, 0x01, 0x0C])]);
        assert_eq!(
            find_dvsec(&c, CXL_VENDOR_ID, 0),
            Err(DvsecError::BadNextPointer {
                at: 0x100,
                next: 0xC0
            })
        );
        // Next beyond a short image.
        let c_far = config_with(&[(0x100, vec![0x01, 0x00, 0x01, 0x80])]);
        assert_eq!(
            find_dvsec(&c_far[..0x400], CXL_VENDOR_ID, 0),
            Err(DvsecError::BadNextPointer {
                at: 0x100,
                next: 0x800
            })
        );
    }

    #[test]
    fn guest_dvsec_presents_locked_enabled_memory() {
        let g = guest();
        let s = g.state();
        assert!(s.control.mem_enable() && s.control.io_enable());
        assert!(s.config_locked());
        assert_eq!(s.range1_base, 0x10_0000_0000);
        assert_eq!(s.range1_size, 4 * GIB);
        assert!(s.range1_size_low.memory_info_valid());
        assert!(s.range1_size_low.memory_active());
        assert_eq!((s.range2_size, s.range2_base), (0, 0));
        assert_eq!(s.next, 0x200);
        assert_eq!(g.len(), 0x3C);
        assert!(!g.is_empty());
    }

    #[test]
    fn dvsec_read_sizes() {
        let g = guest();
        assert_eq!(g.read(4, 4), 0x03C2_1E98);
        assert_eq!(g.read(4, 2), 0x1E98);
        assert_eq!(g.read(5, 1), 0x1E);
        assert_eq!(g.read(4, 3), 0);
        assert_eq!(g.read(0x3C, 4), 0);
        assert_eq!(g.read(0x3A, 4), 0);
        assert_eq!(g.read(u16::MAX, 4), 0);
    }

    #[test]
    fn dvsec_header_and_capability_read_only() {
        let mut g = guest();
        let before = g.bytes().to_vec();
        for off in [
            0u16, 4, 8, 0x0A, 0x16, 0x18, 0x1C, 0x28, 0x2C, 0x30, 0x34, 0x38,
        ] {
            g.write(off, 4, 0xFFFF_FFFF);
            g.write(off, 4, 0);
        }
        assert_eq!(g.bytes(), &before[..]);
        for off in [0u16, 2, 4, 6, 8, 0x0A, 0x16, 0x18, 0x1A, 0x1C, 0x1E, 0x38] {
            g.write(off, 2, 0xFFFF);
            g.write(off, 2, 0);
        }
        assert_eq!(g.bytes(), &before[..]);
    }

    #[test]
    fn dvsec_control_read_only_after_config_lock() {
        let mut g = guest();
        let ctrl = g.read(0x0C, 2);
        g.write(0x0C, 2, 0);
        g.write(0x0C, 4, 0);
        g.write(0x0D, 1, 0xFF);
        assert_eq!(g.read(0x0C, 2), ctrl);
    }

    #[test]
    fn dvsec_range_base_read_only_under_the_lock() {
        let mut g = guest();
        g.write(0x24, 4, 0xFFFF_FFFF);
        g.write(0x20, 4, 0x20);
        assert_eq!(g.state().range1_base, 0x10_0000_0000);
    }

    #[test]
    fn dvsec_lock_cannot_be_cleared() {
        let mut g = guest();
        g.write(0x14, 2, 0);
        assert_eq!(g.read(0x14, 2), 1);
    }

    #[test]
    fn dvsec_control2_stays_writable_after_lock() {
        let mut g = guest();
        g.write(0x10, 2, 0b11_1001);
        assert_eq!(g.read(0x10, 2), 0b11_1001);
        g.write(0x10, 2, 0xFFC0);
        assert_eq!(g.read(0x10, 2), 0);
    }

    #[test]
    fn dvsec_initiate_cxl_reset_reports_effect_and_reads_zero() {
        let mut g = guest();
        assert_eq!(
            g.write(0x10, 2, 1 << 2),
            DvsecWriteEffect::CxlResetRequested
        );
        assert_eq!(g.read(0x10, 2), 0);
        assert_eq!(g.write(0x10, 2, 0), DvsecWriteEffect::None);
    }

    #[test]
    fn dvsec_initiate_cache_wbi_reports_effect() {
        let mut g = guest();
        assert_eq!(
            g.write(0x10, 1, 1 << 1),
            DvsecWriteEffect::CacheWbiRequested
        );
        assert_eq!(g.read(0x10, 2), 0);
        // Both at once: the reset wins.
        assert_eq!(g.write(0x10, 2, 0b110), DvsecWriteEffect::CxlResetRequested);
    }

    #[test]
    fn dvsec_actions_need_capability() {
        let mut c = cfg();
        c.cxl_reset_capable = false;
        c.cache_wbi_capable = false;
        let host = parse_device_dvsec(&build_device_dvsec(&c, 0)).unwrap();
        let mut g = GuestDeviceDvsec::new(&host, 0, GIB);
        assert_eq!(g.write(0x10, 2, 0b110), DvsecWriteEffect::None);
    }

    #[test]
    fn dvsec_status_viral_is_rw1c() {
        let mut g = guest();
        wr16(&mut g.cur.bytes, 0x0E, STATUS_VIRAL);
        g.write(0x0E, 2, 0xBFFF);
        assert_eq!(g.read(0x0E, 2), u32::from(STATUS_VIRAL));
        g.write(0x0E, 2, u32::from(STATUS_VIRAL));
        assert_eq!(g.read(0x0E, 2), 0);
    }

    #[test]
    fn dvsec_status2_reset_bits_read_only_and_cleared_by_new_reset() {
        let mut g = guest();
        g.set_reset_status(true, true);
        assert_eq!(g.read(0x12, 2), 0b110);
        g.write(0x12, 2, 0xFFFF);
        assert_eq!(g.read(0x12, 2), 0b110);
        g.write(0x10, 2, 1 << 2);
        assert_eq!(g.read(0x12, 2), 0);
    }

    #[test]
    fn dvsec_status2_preservation_error_is_rw1c() {
        let mut g = guest();
        wr16(&mut g.cur.bytes, 0x12, 0b1000);
        g.write(0x12, 2, 0b1000);
        assert_eq!(g.read(0x12, 2), 0);
    }

    #[test]
    fn dvsec_reset_returns_to_locked_boot_state() {
        let mut g = guest();
        let boot = g.clone();
        g.write(0x10, 2, 0b1001);
        g.set_reset_status(true, false);
        g.reset();
        assert_eq!(g, boot);
    }

    #[test]
    fn dvsec_odd_sizes_ignored() {
        let mut g = guest();
        let before = g.clone();
        assert_eq!(g.write(0x10, 3, 0x3F), DvsecWriteEffect::None);
        assert_eq!(g.write(0x10, 8, 4), DvsecWriteEffect::None);
        assert_eq!(g, before);
    }

    fn host(v: UapiVersion) -> HostDeviceDvsec {
        HostDeviceDvsec::new(v, &cfg())
    }

    fn hrd16(h: &HostDeviceDvsec, off: u16) -> u16 {
        let mut b = [0u8; 2];
        h.read(off, &mut b);
        u16::from_le_bytes(b)
    }

    #[test]
    fn host_dvsec_capability_and_ranges_fixed() {
        for v in [UapiVersion::V2, UapiVersion::V3] {
            let mut h = host(v);
            let before = h.bytes().to_vec();
            for off in [
                0u16, 4, 8, 0x0A, 0x16, 0x18, 0x1C, 0x20, 0x24, 0x28, 0x34, 0x38,
            ] {
                h.write(off, &[0xFF; 2]);
            }
            assert_eq!(h.bytes(), &before[..]);
        }
    }

    #[test]
    fn host_dvsec_control_writable_until_config_lock() {
        for v in [UapiVersion::V2, UapiVersion::V3] {
            let mut h = host(v);
            h.write(0x0C, &[0x05, 0x00]);
            assert_eq!(hrd16(&h, 0x0C), 0x07);
            h.write(0x14, &[1, 0]);
            h.write(0x0C, &[0, 0]);
            assert_eq!(hrd16(&h, 0x0C), 0x07);
        }
    }

    #[test]
    fn host_dvsec_v3_control2_locked_and_no_effect() {
        let mut h = host(UapiVersion::V3);
        assert_eq!(h.write(0x10, &[0x05, 0]), DvsecWriteEffect::None);
        assert_eq!(hrd16(&h, 0x10), 0x05);
        h.write(0x14, &[1, 0]);
        assert_eq!(h.write(0x10, &[0x00, 0]), DvsecWriteEffect::None);
        assert_eq!(hrd16(&h, 0x10), 0x05);
    }

    #[test]
    fn host_dvsec_v2_forwards_reset_and_wbi() {
        let mut h = host(UapiVersion::V2);
        assert_eq!(
            h.write(0x10, &[0x02, 0]),
            DvsecWriteEffect::CacheWbiRequested
        );
        assert_eq!(
            h.write(0x10, &[0x04, 0]),
            DvsecWriteEffect::CxlResetRequested
        );
        assert_eq!(hrd16(&h, 0x10), 0);
        h.write(0x14, &[1, 0]);
        assert_eq!(
            h.write(0x10, &[0x04, 0]),
            DvsecWriteEffect::CxlResetRequested
        );
        h.set_reset_status(true, false);
        assert_eq!(hrd16(&h, 0x12), 0b10);
    }

    #[test]
    fn host_dvsec_status_registers_rw1c() {
        let mut h = host(UapiVersion::V3);
        h.set_reset_status(true, true);
        h.write(0x12, &[0x02, 0]);
        assert_eq!(hrd16(&h, 0x12), 0x04);
        wr16(&mut h.img.bytes, 0x0E, 0x4001);
        h.write(0x0E, &[0x01, 0x00]);
        assert_eq!(hrd16(&h, 0x0E), 0x4000);
    }

    #[test]
    fn host_dvsec_lock_write_once() {
        let mut h = host(UapiVersion::V3);
        h.write(0x14, &[0xFF, 0xFF]);
        assert_eq!(hrd16(&h, 0x14), 1);
        h.write(0x14, &[0, 0]);
        assert_eq!(hrd16(&h, 0x14), 1);
    }

    #[test]
    fn host_dvsec_byte_access_to_lock() {
        // The selftest reads one byte at DVSEC + 0x14.
        let h = host(UapiVersion::V3);
        let mut b = [0xAAu8; 1];
        h.read(0x14, &mut b);
        assert_eq!(b, [0]);
        let mut tail = [0xAAu8; 8];
        h.read(0x38, &mut tail);
        assert_eq!(tail, [0; 8]);
    }

    #[test]
    fn host_dvsec_reset_changes_nothing_before_v4() {
        for v in [UapiVersion::V2, UapiVersion::V3] {
            let mut h = host(v);
            h.write(0x0C, &[0x05, 0x00]);
            h.write(0x14, &[1, 0]);
            let before = h.clone();
            h.reset(&cfg());
            assert_eq!(h, before);
        }
    }

    #[test]
    fn host_dvsec_v4_keeps_the_snapshot_of_capability_status_lock_ranges() {
        let mut h = host(UapiVersion::V4);
        wr16(&mut h.img.bytes, 0x0E, 0x4000);
        let before = h.bytes().to_vec();
        for off in [
            0u16, 4, 8, 0x0A, 0x0E, 0x14, 0x16, 0x18, 0x1C, 0x20, 0x24, 0x28, 0x34, 0x38,
        ] {
            h.write(off, &[0xFF; 2]);
        }
        assert_eq!(h.bytes(), &before[..]);
    }

    #[test]
    fn host_dvsec_v4_control_and_control2_writable_whatever_the_lock() {
        let mut h = host(UapiVersion::V4);
        wr16(&mut h.img.bytes, 0x14, 1);
        h.write(0x0C, &[0x05, 0x00]);
        assert_eq!(hrd16(&h, 0x0C), 0x07);
        h.write(0x0C, &[0x00, 0x00]);
        assert_eq!(hrd16(&h, 0x0C), 0x02);
        assert_eq!(h.write(0x10, &[0x39, 0]), DvsecWriteEffect::None);
        assert_eq!(hrd16(&h, 0x10), 0x39);
    }

    #[test]
    fn host_dvsec_v4_wbi_completes_at_once_and_reset_is_reported() {
        let mut h = host(UapiVersion::V4);
        assert_eq!(
            h.write(0x10, &[0x02, 0]),
            DvsecWriteEffect::CacheWbiRequested
        );
        assert_eq!(hrd16(&h, 0x12) & 1, 1);
        assert_eq!(hrd16(&h, 0x10), 0);
        h.set_reset_status(true, false);
        assert_eq!(
            h.write(0x10, &[0x04, 0]),
            DvsecWriteEffect::CxlResetRequested
        );
        // A new reset clears the previous outcome; the doorbell reads 0.
        assert_eq!(hrd16(&h, 0x12) & 0b110, 0);
        assert_eq!(hrd16(&h, 0x10), 0);
        h.set_reset_status(false, true);
        assert_eq!(hrd16(&h, 0x12) & 0b110, 0b100);
        h.write(0x12, &[0x05, 0]);
        assert_eq!(hrd16(&h, 0x12), 0);
    }

    #[test]
    fn host_dvsec_v4_reset_reloads_the_snapshot_keeping_next() {
        let mut h = host(UapiVersion::V4);
        h.set_next(0x240);
        let fresh = h.clone();
        h.write(0x0C, &[0x05, 0x00]);
        h.write(0x10, &[0x08, 0x00]);
        h.set_reset_status(true, false);
        assert_ne!(h, fresh);
        h.reset(&cfg());
        assert_eq!(h, fresh);
    }

    #[test]
    fn host_dvsec_set_next() {
        let mut h = host(UapiVersion::V3);
        h.set_next(0x240);
        assert_eq!(rd32(h.bytes(), 0) >> 20, 0x240);
        assert_eq!(h.len(), 0x3C);
        assert!(!h.is_empty());
    }

    #[test]
    fn errors_display() {
        assert!(DvsecError::CapabilityLoop { at: 0x100 }
            .to_string()
            .contains("0x100"));
    }

    #[test]
    fn split_access_outside_the_dvsec_is_one_part() {
        let dvsec = 0x100..0x13C;
        for access in [0x40..0x44, 0x13C..0x140, 0xFC..0x100] {
            let parts = split_access(access.clone(), &dvsec);
            let nonempty: Vec<_> = parts.into_iter().filter(|(r, _)| !r.is_empty()).collect();
            assert_eq!(nonempty, vec![(access, false)]);
        }
    }

    #[test]
    fn split_access_inside_the_dvsec_is_one_part() {
        let parts = split_access(0x10C..0x110, &(0x100..0x13C));
        assert_eq!(parts[1], (0x10C..0x110, true));
        assert!(parts[0].0.is_empty() && parts[2].0.is_empty());
    }

    #[test]
    fn split_access_straddling_an_edge_is_cut_there() {
        // A dword read at DVSEC + 8 covers header 2 and the Capability.
        assert_eq!(
            split_access(0x108..0x10C, &(0x10A..0x13C)),
            [
                (0x108..0x10A, false),
                (0x10A..0x10C, true),
                (0x10C..0x10C, false)
            ]
        );
        assert_eq!(
            split_access(0x13A..0x13E, &(0x100..0x13C)),
            [
                (0x13A..0x13A, false),
                (0x13A..0x13C, true),
                (0x13C..0x13E, false)
            ]
        );
    }
}
