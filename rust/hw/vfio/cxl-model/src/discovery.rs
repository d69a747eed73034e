// SPDX-License-Identifier: GPL-2.0-or-later

//! Validating what a host offers and deriving the layout the device uses.
//!
//! The glue gathers plain data, the same way over kernel VFIO and over
//! vfio-user: a [`RegionDesc`] per region index, the device's config space,
//! the CXL device-info capability when the host has one (kernel VFIO only),
//! v4's `COMP_REGS` region capability when the host has one, and a way to
//! read dwords of `COMP_REGS` and of the component BAR.  [`discover_with`]
//! checks all of it and returns a [`HostLayout`], or the first
//! [`DiscoveryError`] found.
//!
//! Regions are found by type and subtype, never by index; either v4-era
//! region type is accepted.  The uAPI posting is told from the `COMP_REGS`
//! layout: a v3 region is the whole 64 KiB block (capability array header
//! at region offset 0x1000), a v2 region starts at the capability array
//! (header at region offset 0), a v4 region is exactly the HDM decoder
//! structure (its capability register at offset 0), whose capability array
//! is then read through the BAR.  The device-info capability, v4's region
//! capability and the region type are cross-checks: a host whose markers
//! belong to another posting than its layout is refused.  See
//! `docs/devel/vfio-cxl-uapi.rst`.
//!
//! Choices the glue must know:
//! - Only the capability array header, its entries and the HDM decoder
//!   structure are read (a handful of dword reads), never the whole region:
//!   over vfio-user every read is a round trip.
//! - Decoder 0's BASE is reported but nothing depends on it: v2 zeroes it at
//!   open, v3 holds the host physical address, and the guest never sees it.
//!   Decoder SIZE and BASE keep bits 31:28 of their low dwords only.
//! - Decoder 0 must be 1 way: a device that is part of a host interleave set
//!   cannot be passed through alone.
//! - [`HostLayout::uapi`] is the posting found; a flags-only device-info
//!   capability (proposed in v4's review) carries no layout and says
//!   nothing about it.

use std::fmt;

use crate::component::{
    CapArrayError, CapabilityArray, CapabilityArrayHeader, CapabilityHeader, CAP_ARRAY_OFFSET,
    CAP_ID_CXL, CAP_ID_HDM_DECODER, COMPONENT_BLOCK_SIZE,
};
use crate::dvsec::{
    find_dvsec, parse_device_dvsec, parse_register_locator, DeviceDvsec, DvsecError,
    BLOCK_ID_COMPONENT, CXL_VENDOR_ID, DVSEC_ID_CXL_DEVICE, DVSEC_ID_REGISTER_LOCATOR,
};
use crate::hdm::{
    block_size, decoder_count_from_encoding, decoder_offset, DecoderControl, DecoderRegister,
    HdmCapability, LO_ADDR_MASK,
};
use crate::host::HostDecoder;
use crate::uapi::{
    CompRegsCap, CxlDeviceInfo, RegionTypeCap, UapiVersion, VFIO_PCI_BAR5_REGION_INDEX,
    VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_SUBTYPE_CXL, VFIO_REGION_SUBTYPE_CXL_COMP_REGS,
    VFIO_REGION_TYPE_CXL, VFIO_REGION_TYPE_CXL_EARLY_V4,
};
use crate::window::ByteSize;

/// Size of a v3 `COMP_REGS` region: the whole component block.
pub const V3_COMP_REGS_SIZE: u64 = COMPONENT_BLOCK_SIZE;

/// Largest v2 `COMP_REGS` region: from the capability array to the end of
/// the block.
pub const V2_COMP_REGS_MAX_SIZE: u64 = COMPONENT_BLOCK_SIZE - CAP_ARRAY_OFFSET;

/// What the host reports about one region index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionDesc {
    /// Region index.
    pub index: u32,
    /// Region size in bytes (0 for an absent region).
    pub size: u64,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// `(type, subtype)` from the `VFIO_REGION_INFO_CAP_TYPE` capability.
    pub cap_type: Option<(u32, u32)>,
}

impl RegionDesc {
    /// Whether the region is the CXL region of `subtype`.
    pub fn is_cxl(&self, subtype: u32) -> bool {
        self.cap_type.is_some_and(|(ty, st)| {
            RegionTypeCap { ty, subtype: st }.is_cxl_of_any_variant(subtype)
        })
    }
}

/// The device's host-side layout, as [`discover`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostLayout {
    /// Index of the memory region (subtype 1).
    pub memory_region: u32,
    /// Its size, equal to decoder 0's size.
    pub memory_size: u64,
    /// Index of the `COMP_REGS` region (subtype 2).
    pub comp_regs_region: u32,
    /// Its size.
    pub comp_regs_size: u64,
    /// BAR holding the component block.
    pub component_bar: u8,
    /// Offset of the component block in that BAR.
    pub component_offset: u64,
    /// Size of that BAR's region.
    pub bar_size: u64,
    /// Block offset that `COMP_REGS` offset 0 maps to: 0 (v3) or 0x1000 (v2).
    pub region_block_offset: u64,
    /// Block offset of the HDM decoder capability structure.
    pub hdm_offset: u64,
    /// Number of HDM decoders (always 1).
    pub decoder_count: usize,
    /// Decoder 0 as the host shadow holds it (BASE meaningless, see the
    /// module notes).
    pub decoder0: HostDecoder,
    /// The capability array (header and entries) as the host shadow has it,
    /// from block offset 0x1000.
    pub cap_array: Vec<u8>,
    /// Config-space offset of the CXL Device DVSEC.
    pub device_dvsec_offset: u16,
    /// The CXL Device DVSEC as the host presents it.
    pub device_dvsec: DeviceDvsec,
    /// The uAPI posting the host implements, told from its `COMP_REGS`
    /// layout (and checked against everything else it presents).
    pub uapi: UapiVersion,
}

impl HostLayout {
    /// The `COMP_REGS` region offset of component block offset
    /// `block_offset`, `None` if the region does not cover it (v2: below
    /// 0x1000 or past the HDM structure).
    pub fn region_offset(&self, block_offset: u64) -> Option<u64> {
        let ro = block_offset.checked_sub(self.region_block_offset)?;
        (ro < self.comp_regs_size).then_some(ro)
    }

    /// Where the guest's accesses to the component block go on the host when
    /// they are neither the capability array nor the HDM decoder block:
    /// `COMP_REGS` (v2, v3), or the component BAR itself (v4, whose
    /// `COMP_REGS` region is the HDM block only).
    pub fn forwarding(&self) -> Forwarding {
        match self.uapi {
            UapiVersion::V4 => Forwarding {
                region: u32::from(self.component_bar),
                block_start: 0,
                region_start: self.component_offset,
                len: COMPONENT_BLOCK_SIZE,
            },
            UapiVersion::V2 | UapiVersion::V3 => Forwarding {
                region: self.comp_regs_region,
                block_start: self.region_block_offset,
                region_start: 0,
                len: self.comp_regs_size,
            },
        }
    }

    /// `COMP_REGS` region offset of decoder 0's register `reg`.
    pub fn decoder0_region_offset(&self, reg: DecoderRegister) -> u64 {
        self.hdm_offset + decoder_offset(0) + reg as u64 - self.region_block_offset
    }

    /// The `(region offset, dword)` writes that put `guest_base` into the
    /// host shadow's decoder 0 BASE, low dword first.  v2 expects the VMM
    /// to do this after open and after every reset; on other postings the
    /// shadow keeps the host address and drops such writes, so this returns
    /// `None`.
    pub fn host_base_writes(&self, guest_base: u64) -> Option<[(u64, u32); 2]> {
        (self.uapi == UapiVersion::V2).then(|| {
            [
                (
                    self.decoder0_region_offset(DecoderRegister::BaseLo),
                    guest_base as u32 & LO_ADDR_MASK,
                ),
                (
                    self.decoder0_region_offset(DecoderRegister::BaseHi),
                    (guest_base >> 32) as u32,
                ),
            ]
        })
    }

    /// Decoder 0 read again through `read` (region index and offset to a
    /// dword, as discovery reads), checked as discovery checks it against
    /// the memory region found then.  What a reset that leaves CXL.mem
    /// alone (an FLR) must keep.
    pub fn reread_decoder0(
        &self,
        read: &mut dyn FnMut(u32, u64) -> Result<u32, String>,
    ) -> Result<HostDecoder, DiscoveryError> {
        let mut regs = Reads {
            comp: RegionDesc {
                index: self.comp_regs_region,
                size: self.comp_regs_size,
                flags: 0,
                cap_type: None,
            },
            bar: u32::from(self.component_bar),
            block_in_bar: self.component_offset,
            read,
        };
        let decoder = read_decoder0(
            &mut regs,
            self.decoder0_region_offset(DecoderRegister::BaseLo),
        )?;
        let memory = RegionDesc {
            index: self.memory_region,
            size: self.memory_size,
            flags: 0,
            cap_type: None,
        };
        check_decoder(&memory, &decoder)?;
        Ok(decoder)
    }
}

/// Bytes from decoder 0's BASE Low up to and including its Control
/// register: what [`HostLayout::reread_decoder0`] reads.
pub const DECODER0_SPAN: usize = DecoderRegister::Control as usize + 4;

/// A range of the component block that a host region serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forwarding {
    /// Region index.
    pub region: u32,
    /// First block offset served.
    pub block_start: u64,
    /// Region offset of `block_start`.
    pub region_start: u64,
    /// Bytes served.
    pub len: u64,
}

impl Forwarding {
    /// The region offset of block offset `block_offset`, if served.
    pub fn region_offset(&self, block_offset: u64) -> Option<u64> {
        let rel = block_offset.checked_sub(self.block_start)?;
        (rel < self.len).then(|| self.region_start + rel)
    }
}

/// Which region [`DiscoveryError`] variants about CXL regions refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CxlRegionKind {
    /// The memory region, subtype 1.
    Memory,
    /// The component register shadow, subtype 2.
    CompRegs,
}

impl CxlRegionKind {
    /// The region subtype.
    pub fn subtype(self) -> u32 {
        match self {
            Self::Memory => VFIO_REGION_SUBTYPE_CXL,
            Self::CompRegs => VFIO_REGION_SUBTYPE_CXL_COMP_REGS,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Memory => "CXL memory region",
            Self::CompRegs => "COMP_REGS region",
        }
    }
}

/// Why a host was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryError {
    /// No region of that CXL subtype.
    RegionMissing(CxlRegionKind),
    /// Several regions of that CXL subtype.
    SeveralRegions {
        /// Which one.
        kind: CxlRegionKind,
        /// Their indices.
        indices: Vec<u32>,
    },
    /// The memory region cannot be mmapped.
    MemoryNotMappable {
        /// Region index.
        region: u32,
    },
    /// The memory region is empty.
    MemoryEmpty {
        /// Region index.
        region: u32,
    },
    /// The `COMP_REGS` size fits neither layout.
    CompRegsBadSize {
        /// Region index.
        region: u32,
        /// Its size.
        size: u64,
    },
    /// Neither region offset 0 (v2) nor 0x1000 (v3) holds a capability
    /// array header.
    CompRegsNoCapArray {
        /// Region index.
        region: u32,
        /// Its size.
        size: u64,
        /// Dword read at region offset 0.
        at_0: u32,
        /// Dword read at 0x1000 (v3-sized regions only).
        at_0x1000: Option<u32>,
    },
    /// Reading `COMP_REGS` failed.
    CompRegsRead {
        /// Region index.
        region: u32,
        /// Region offset.
        offset: u64,
        /// What the reader said.
        message: String,
    },
    /// Config space has no Register Locator DVSEC.
    RegisterLocatorMissing,
    /// The Register Locator DVSEC (or the list leading to it) is malformed.
    RegisterLocatorInvalid(DvsecError),
    /// The Register Locator has no component register block.
    NoComponentBlock,
    /// A Register Locator entry's BAR indicator is not a BAR (0 to 5).  The
    /// DVSEC parser refuses such an entry whatever its block, so this may
    /// name another block's entry.
    ComponentBarInvalid {
        /// BAR indicator found.
        bar: u8,
    },
    /// The component block's BAR is not a present region.
    ComponentBarMissing {
        /// BAR index.
        bar: u8,
    },
    /// The component block does not fit in its BAR.
    BlockOutsideBar {
        /// BAR index.
        bar: u8,
        /// Block offset in the BAR.
        offset: u64,
        /// BAR size.
        bar_size: u64,
    },
    /// Config space has no CXL Device DVSEC.
    DeviceDvsecMissing,
    /// The CXL Device DVSEC is malformed.
    DeviceDvsecInvalid(DvsecError),
    /// The capability array is malformed.
    CapArray(CapArrayError),
    /// The capability array has no HDM decoder capability.
    HdmMissing,
    /// The HDM capability reports other than one decoder.
    DecoderCount {
        /// Decoder Count field.
        encoding: u8,
        /// Decoders it stands for (`None`: reserved encoding).
        count: Option<usize>,
    },
    /// Decoder 0 interleaves.
    DecoderInterleaved {
        /// IW encoding.
        ways_encoding: u8,
    },
    /// Decoder 0 is not committed.
    DecoderNotCommitted {
        /// Its control register.
        ctrl: u32,
    },
    /// Decoder 0's size is zero.
    DecoderSizeZero,
    /// The memory region is smaller than decoder 0.
    MemoryTooSmall {
        /// Region index.
        region: u32,
        /// Region size.
        region_size: u64,
        /// Decoder size.
        decoder_size: u64,
    },
    /// The memory region is larger than decoder 0.
    DecoderSizeMismatch {
        /// Region index.
        region: u32,
        /// Region size.
        region_size: u64,
        /// Decoder size.
        decoder_size: u64,
    },
    /// The DVSEC's Range 1 size disagrees with the memory region.
    DvsecRangeMismatch {
        /// Region index.
        region: u32,
        /// Region size.
        region_size: u64,
        /// Range 1 size.
        range_size: u64,
    },
    /// A v2 `COMP_REGS` region whose size is not that of the layout it
    /// holds (capability array up to the end of the HDM structure): the
    /// guest would read all ones past the end, or miss registers.
    CompRegsSizeNotLayout {
        /// Region index.
        region: u32,
        /// Its size.
        size: u64,
        /// The size its layout gives.
        layout: u64,
    },
    /// Something only a v4 host presents, next to a `COMP_REGS` region laid
    /// out as an earlier posting's.
    V4MarkerWithOldLayout {
        /// What was seen.
        marker: &'static str,
        /// Posting of the layout.
        layout: UapiVersion,
    },
    /// The `COMP_REGS` region capability places the HDM decoder block
    /// elsewhere than config space and the capability array do.
    CompRegsCapMismatch {
        /// BAR the capability names.
        cap_bar: u32,
        /// BAR offset it names.
        cap_offset: u64,
        /// BAR found.
        bar: u8,
        /// BAR offset found.
        offset: u64,
    },
    /// Reading the component BAR failed.
    BarRead {
        /// BAR index.
        bar: u32,
        /// BAR offset.
        offset: u64,
        /// The host's error.
        message: String,
    },
    /// The device-info capability's posting does not match the `COMP_REGS`
    /// layout.
    InfoLayoutMismatch {
        /// Posting of the capability.
        info: UapiVersion,
        /// Posting of the layout.
        layout: UapiVersion,
    },
    /// The device-info capability names another memory region.
    InfoMemoryRegionMismatch {
        /// Index it reports.
        reported: u32,
        /// Index found.
        found: u32,
    },
    /// The device-info capability names another `COMP_REGS` region.
    InfoCompRegsRegionMismatch {
        /// Index it reports.
        reported: u32,
        /// Index found.
        found: u32,
    },
    /// The device-info capability names another component BAR.
    InfoBarMismatch {
        /// BAR it reports.
        reported: u32,
        /// BAR found.
        found: u8,
    },
    /// The device-info capability places the block elsewhere.
    InfoOffsetMismatch {
        /// Block offset it reports (v2: `hdm_regs_offset` - 0x1000).
        reported: Option<u64>,
        /// Block offset found.
        found: u64,
    },
    /// v3's `comp_reg_size` differs from the `COMP_REGS` size.
    InfoCompRegsSizeMismatch {
        /// Size it reports.
        reported: u64,
        /// Region size.
        found: u64,
    },
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RegionMissing(kind) => write!(
                f,
                "the device has no {} (type {VFIO_REGION_TYPE_CXL:#x}, subtype {})",
                kind.name(),
                kind.subtype()
            ),
            Self::SeveralRegions { kind, indices } => {
                let l: Vec<String> = indices.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "the device has several {}s (type {VFIO_REGION_TYPE_CXL:#x}, subtype {}): {}",
                    kind.name(),
                    kind.subtype(),
                    l.join(", ")
                )
            }
            Self::MemoryNotMappable { region } => {
                write!(f, "memory region {region} cannot be mmapped")
            }
            Self::MemoryEmpty { region } => write!(f, "memory region {region} is empty"),
            Self::CompRegsBadSize { region, size } => write!(
                f,
                "COMP_REGS region {region} is {}: neither a v3 block ({V3_COMP_REGS_SIZE:#x}) \
                 nor a v2 capability area (8 to {V2_COMP_REGS_MAX_SIZE:#x} bytes, dword multiple)",
                ByteSize(*size)
            ),
            Self::CompRegsNoCapArray {
                region,
                size,
                at_0,
                at_0x1000,
            } => {
                write!(
                    f,
                    "COMP_REGS region {region} ({size:#x} bytes) has no CXL capability array \
                     header (offset 0 reads {at_0:#010x}"
                )?;
                if let Some(v) = at_0x1000 {
                    write!(f, ", offset 0x1000 reads {v:#010x}")?;
                }
                write!(f, ")")
            }
            Self::CompRegsRead {
                region,
                offset,
                message,
            } => write!(
                f,
                "reading COMP_REGS region {region} at {offset:#x} failed: {message}"
            ),
            Self::RegisterLocatorMissing => {
                write!(f, "config space has no CXL Register Locator DVSEC")
            }
            Self::RegisterLocatorInvalid(e) => {
                write!(f, "CXL Register Locator DVSEC is invalid: {e}")
            }
            Self::NoComponentBlock => write!(
                f,
                "the Register Locator DVSEC lists no component register block (block ID \
                 {BLOCK_ID_COMPONENT})"
            ),
            Self::ComponentBarInvalid { bar } => write!(
                f,
                "Register Locator DVSEC names BAR indicator {bar}, which is not a BAR (0 to 5)"
            ),
            Self::ComponentBarMissing { bar } => write!(
                f,
                "component register block is in BAR {bar}, which the device does not have"
            ),
            Self::BlockOutsideBar {
                bar,
                offset,
                bar_size,
            } => write!(
                f,
                "component register block at {offset:#x} (+{COMPONENT_BLOCK_SIZE:#x}) lies \
                 outside BAR {bar} of {}",
                ByteSize(*bar_size)
            ),
            Self::DeviceDvsecMissing => write!(f, "config space has no CXL Device DVSEC"),
            Self::DeviceDvsecInvalid(e) => write!(f, "CXL Device DVSEC is invalid: {e}"),
            Self::CapArray(e) => write!(f, "host capability array is invalid: {e}"),
            Self::HdmMissing => write!(
                f,
                "host capability array has no HDM decoder capability (ID {CAP_ID_HDM_DECODER})"
            ),
            Self::DecoderCount { encoding, count } => match count {
                Some(n) => write!(
                    f,
                    "HDM capability reports {n} decoders (encoding {encoding}); only a single \
                     decoder is supported"
                ),
                None => write!(
                    f,
                    "HDM capability has reserved decoder count encoding {encoding}"
                ),
            },
            Self::DecoderInterleaved { ways_encoding } => write!(
                f,
                "HDM decoder 0 interleaves (IW encoding {ways_encoding}); only 1 way is supported"
            ),
            Self::DecoderNotCommitted { ctrl } => write!(
                f,
                "HDM decoder 0 is not committed by the host (control {ctrl:#010x})"
            ),
            Self::DecoderSizeZero => write!(f, "HDM decoder 0 has size 0"),
            Self::MemoryTooSmall {
                region,
                region_size,
                decoder_size,
            } => write!(
                f,
                "memory region {region} is {}, smaller than HDM decoder 0 of {}",
                ByteSize(*region_size),
                ByteSize(*decoder_size)
            ),
            Self::DecoderSizeMismatch {
                region,
                region_size,
                decoder_size,
            } => write!(
                f,
                "memory region {region} is {} but HDM decoder 0 is only {}",
                ByteSize(*region_size),
                ByteSize(*decoder_size)
            ),
            Self::DvsecRangeMismatch {
                region,
                region_size,
                range_size,
            } => write!(
                f,
                "memory region {region} is {} but the CXL Device DVSEC range 1 is {}",
                ByteSize(*region_size),
                ByteSize(*range_size)
            ),
            Self::CompRegsSizeNotLayout {
                region,
                size,
                layout,
            } => write!(
                f,
                "COMP_REGS region {region} is {} but the capability array and HDM decoder \
                 structure it holds end at {} (uAPI v2 sizes it to them)",
                ByteSize(*size),
                ByteSize(*layout)
            ),
            Self::V4MarkerWithOldLayout { marker, layout } => write!(
                f,
                "the host presents {marker}, which only uAPI v4 has, but its COMP_REGS region \
                 is laid out as uAPI {layout:?}: it mixes interface versions"
            ),
            Self::CompRegsCapMismatch {
                cap_bar,
                cap_offset,
                bar,
                offset,
            } => write!(
                f,
                "the COMP_REGS region capability places the HDM decoder block in BAR {cap_bar} \
                 at {cap_offset:#x}, but the Register Locator DVSEC and the capability array \
                 place it in BAR {bar} at {offset:#x}"
            ),
            Self::BarRead {
                bar,
                offset,
                message,
            } => write!(f, "reading BAR {bar} at {offset:#x} failed: {message}"),
            Self::InfoLayoutMismatch { info, layout } => write!(
                f,
                "device-info capability has the {info:?} layout but COMP_REGS has the \
                 {layout:?} layout"
            ),
            Self::InfoMemoryRegionMismatch { reported, found } => write!(
                f,
                "device-info capability names memory region {reported}, found region {found}"
            ),
            Self::InfoCompRegsRegionMismatch { reported, found } => write!(
                f,
                "device-info capability names COMP_REGS region {reported}, found region {found}"
            ),
            Self::InfoBarMismatch { reported, found } => write!(
                f,
                "device-info capability names component BAR {reported}, Register Locator \
                 names BAR {found}"
            ),
            Self::InfoOffsetMismatch { reported, found } => match reported {
                Some(r) => write!(
                    f,
                    "device-info capability places the component block at {r:#x}, Register \
                     Locator at {found:#x}"
                ),
                None => write!(
                    f,
                    "device-info capability places the component block below offset 0, \
                     Register Locator at {found:#x}"
                ),
            },
            Self::InfoCompRegsSizeMismatch { reported, found } => write!(
                f,
                "device-info capability says COMP_REGS is {reported:#x} bytes, the region is \
                 {found:#x}"
            ),
        }
    }
}

impl std::error::Error for DiscoveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::RegisterLocatorInvalid(e) | Self::DeviceDvsecInvalid(e) => Some(e),
            Self::CapArray(e) => Some(e),
            _ => None,
        }
    }
}

/// The one region of CXL subtype `kind`.
fn find_region(regions: &[RegionDesc], kind: CxlRegionKind) -> Result<RegionDesc, DiscoveryError> {
    let found: Vec<&RegionDesc> = regions
        .iter()
        .filter(|r| r.is_cxl(kind.subtype()))
        .collect();
    match found.as_slice() {
        [r] => Ok(**r),
        [] => Err(DiscoveryError::RegionMissing(kind)),
        several => Err(DiscoveryError::SeveralRegions {
            kind,
            indices: several.iter().map(|r| r.index).collect(),
        }),
    }
}

/// The host reads discovery makes: `COMP_REGS` dwords, and (v4, whose
/// `COMP_REGS` region holds only the HDM decoder block) dwords of the
/// component block through its BAR.  Region indices are attached to errors.
struct Reads<'a> {
    comp: RegionDesc,
    bar: u32,
    /// BAR offset of the component block.
    block_in_bar: u64,
    read: &'a mut dyn FnMut(u32, u64) -> Result<u32, String>,
}

/// Where the capability array is read from.
#[derive(Clone, Copy)]
enum ArraySource {
    /// `COMP_REGS`, whose offset 0 is this block offset.
    CompRegs(u64),
    /// The component BAR (v4).
    Bar,
}

impl Reads<'_> {
    fn dword(&mut self, offset: u64) -> Result<u32, DiscoveryError> {
        (self.read)(self.comp.index, offset).map_err(|message| DiscoveryError::CompRegsRead {
            region: self.comp.index,
            offset,
            message,
        })
    }

    fn qword(&mut self, offset: u64) -> Result<u64, DiscoveryError> {
        Ok(u64::from(self.dword(offset)?) | (u64::from(self.dword(offset + 4)?) << 32))
    }

    /// The dword at block offset `block_offset`, read from `source`.
    fn block_dword(
        &mut self,
        source: ArraySource,
        block_offset: u64,
    ) -> Result<u32, DiscoveryError> {
        match source {
            ArraySource::CompRegs(base) => self.dword(block_offset - base),
            ArraySource::Bar => {
                let offset = self.block_in_bar + block_offset;
                (self.read)(self.bar, offset).map_err(|message| DiscoveryError::BarRead {
                    bar: self.bar,
                    offset,
                    message,
                })
            }
        }
    }

    /// The posting whose `COMP_REGS` layout this is, and the block offset
    /// region offset 0 maps to (v4: the HDM block's, found later).
    fn layout(&mut self) -> Result<(Option<u64>, UapiVersion), DiscoveryError> {
        let (region, size) = (self.comp.index, self.comp.size);
        let is_header = |d: u32| CapabilityArrayHeader::from(d).id() == CAP_ID_CXL;
        let v2_sized = (8..=V2_COMP_REGS_MAX_SIZE).contains(&size) && size % 4 == 0;
        if size != V3_COMP_REGS_SIZE && !v2_sized {
            return Err(DiscoveryError::CompRegsBadSize { region, size });
        }
        let at_0 = self.dword(0)?;
        let mut at_0x1000 = None;
        if size == V3_COMP_REGS_SIZE {
            let d = self.dword(CAP_ARRAY_OFFSET)?;
            if is_header(d) {
                return Ok((Some(0), UapiVersion::V3));
            }
            at_0x1000 = Some(d);
        } else if is_header(at_0) {
            return Ok((Some(CAP_ARRAY_OFFSET), UapiVersion::V2));
        } else if decoder_count_from_encoding(HdmCapability::from(at_0).decoder_count().value())
            .is_some_and(|n| block_size(n) == size)
        {
            // v4: offset 0 is the HDM Decoder Capability register, and the
            // region is exactly that decoder block.
            return Ok((None, UapiVersion::V4));
        }
        Err(DiscoveryError::CompRegsNoCapArray {
            region,
            size,
            at_0,
            at_0x1000,
        })
    }
}

/// Facts from config space.
struct ConfigFacts {
    component_bar: u8,
    component_offset: u64,
    device_dvsec_offset: u16,
    device_dvsec: DeviceDvsec,
}

fn dvsec_bytes(config: &[u8], offset: u16) -> &[u8] {
    config.get(usize::from(offset)..).unwrap_or_default()
}

fn read_config(config: &[u8]) -> Result<ConfigFacts, DiscoveryError> {
    let locator = find_dvsec(config, CXL_VENDOR_ID, DVSEC_ID_REGISTER_LOCATOR)
        .map_err(DiscoveryError::RegisterLocatorInvalid)?
        .ok_or(DiscoveryError::RegisterLocatorMissing)?;
    let blocks = parse_register_locator(dvsec_bytes(config, locator)).map_err(|e| match e {
        DvsecError::BadBir { bir } => DiscoveryError::ComponentBarInvalid { bar: bir },
        other => DiscoveryError::RegisterLocatorInvalid(other),
    })?;
    let block = blocks
        .iter()
        .find(|b| b.block_id == BLOCK_ID_COMPONENT)
        .ok_or(DiscoveryError::NoComponentBlock)?;
    if u32::from(block.bir) > VFIO_PCI_BAR5_REGION_INDEX {
        return Err(DiscoveryError::ComponentBarInvalid { bar: block.bir });
    }
    let device_dvsec_offset = find_dvsec(config, CXL_VENDOR_ID, DVSEC_ID_CXL_DEVICE)
        .map_err(DiscoveryError::DeviceDvsecInvalid)?
        .ok_or(DiscoveryError::DeviceDvsecMissing)?;
    let device_dvsec = parse_device_dvsec(dvsec_bytes(config, device_dvsec_offset))
        .map_err(DiscoveryError::DeviceDvsecInvalid)?;
    Ok(ConfigFacts {
        component_bar: block.bir,
        component_offset: block.offset,
        device_dvsec_offset,
        device_dvsec,
    })
}

/// Facts from `COMP_REGS`.
struct ShadowFacts {
    region_block_offset: u64,
    version: UapiVersion,
    hdm_offset: u64,
    decoder0: HostDecoder,
    cap_array: Vec<u8>,
}

fn read_shadow(regs: &mut Reads<'_>) -> Result<ShadowFacts, DiscoveryError> {
    let (region_block_offset, version) = regs.layout()?;
    // Where the capability array is read and how much of the block after
    // it that source covers.
    let (source, room) = match region_block_offset {
        Some(base) => (
            ArraySource::CompRegs(base),
            regs.comp.size - (CAP_ARRAY_OFFSET - base),
        ),
        None => (ArraySource::Bar, COMPONENT_BLOCK_SIZE - CAP_ARRAY_OFFSET),
    };
    let header = regs.block_dword(source, CAP_ARRAY_OFFSET)?;
    let entries = u64::from(CapabilityArrayHeader::from(header).array_size());
    // Entries that do not fit are not read; the parser below reports them.
    let mut cap_array = header.to_le_bytes().to_vec();
    for i in (1..=entries).take_while(|i| 4 * (i + 1) <= room) {
        let entry = regs.block_dword(source, CAP_ARRAY_OFFSET + 4 * i)?;
        cap_array.extend_from_slice(&entry.to_le_bytes());
    }
    // `CapabilityArray::parse` checks structure bounds against the length
    // of what it is given, reading only the header, the entries and the
    // HDM structure's first dword: a sparse image of that length with those
    // dwords in place checks exactly what the whole area would.
    let mut image = cap_array.clone();
    image.resize(usize::try_from(room).unwrap_or(usize::MAX), 0);
    let hdm_pointer = cap_array
        .chunks_exact(4)
        .skip(1)
        .map(|c| CapabilityHeader::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .find(|h| h.id() == CAP_ID_HDM_DECODER)
        .map(|h| u64::from(u16::from(h.pointer())));
    let mut hdm_cap = 0;
    if let Some(p) = hdm_pointer.filter(|p| p + 4 <= room) {
        // v4's BAR reads all ones over the HDM block: its capability
        // register is COMP_REGS offset 0.
        hdm_cap = match source {
            ArraySource::CompRegs(_) => regs.block_dword(source, CAP_ARRAY_OFFSET + p)?,
            ArraySource::Bar => regs.dword(0)?,
        };
        let at = usize::try_from(p).unwrap_or_default();
        image[at..at + 4].copy_from_slice(&hdm_cap.to_le_bytes());
    }
    let array = CapabilityArray::parse(&image).map_err(DiscoveryError::CapArray)?;
    let entry = array
        .hdm_decoder()
        .map_err(|_| DiscoveryError::HdmMissing)?;
    let encoding = HdmCapability::from(hdm_cap).decoder_count().value();
    let decoders = decoder_count_from_encoding(encoding);
    if decoders != Some(1) {
        return Err(DiscoveryError::DecoderCount {
            encoding,
            count: decoders,
        });
    }
    let hdm_offset = CAP_ARRAY_OFFSET + u64::from(entry.pointer);
    let region_block_offset = region_block_offset.unwrap_or(hdm_offset);
    let layout_end = hdm_offset + block_size(1) - region_block_offset;
    if version == UapiVersion::V2 && regs.comp.size != layout_end {
        return Err(DiscoveryError::CompRegsSizeNotLayout {
            region: regs.comp.index,
            size: regs.comp.size,
            layout: layout_end,
        });
    }
    let dec_ro = hdm_offset + decoder_offset(0) - region_block_offset;
    Ok(ShadowFacts {
        region_block_offset,
        version,
        hdm_offset,
        decoder0: read_decoder0(regs, dec_ro)?,
        cap_array,
    })
}

/// Decoder 0's BASE, SIZE and Control, its registers starting at
/// `COMP_REGS` offset `dec_ro`.
fn read_decoder0(regs: &mut Reads<'_>, dec_ro: u64) -> Result<HostDecoder, DiscoveryError> {
    let mask = !u64::from(!LO_ADDR_MASK);
    let base = regs.qword(dec_ro + DecoderRegister::BaseLo as u64)? & mask;
    let size = regs.qword(dec_ro + DecoderRegister::SizeLo as u64)? & mask;
    let ctrl = regs.dword(dec_ro + DecoderRegister::Control as u64)?;
    Ok(HostDecoder { base, size, ctrl })
}

/// The v4-only things a host presents must come with a v4 `COMP_REGS`
/// layout, and the region capability must agree with what config space and
/// the capability array say.
fn check_v4_markers(
    comp: &RegionDesc,
    comp_regs_cap: Option<CompRegsCap>,
    shadow: &ShadowFacts,
    cfg: &ConfigFacts,
) -> Result<(), DiscoveryError> {
    let early_type = comp
        .cap_type
        .is_some_and(|(ty, _)| ty == VFIO_REGION_TYPE_CXL_EARLY_V4);
    if shadow.version != UapiVersion::V4 {
        let marker = if comp_regs_cap.is_some() {
            "the COMP_REGS region capability"
        } else if early_type {
            "region type 4 (the earlier v4 variant's VFIO_REGION_TYPE_CXL)"
        } else {
            return Ok(());
        };
        return Err(DiscoveryError::V4MarkerWithOldLayout {
            marker,
            layout: shadow.version,
        });
    }
    let offset = cfg.component_offset + shadow.hdm_offset;
    match comp_regs_cap {
        Some(cap) if cap.bar != u32::from(cfg.component_bar) || cap.hdm_offset != offset => {
            Err(DiscoveryError::CompRegsCapMismatch {
                cap_bar: cap.bar,
                cap_offset: cap.hdm_offset,
                bar: cfg.component_bar,
                offset,
            })
        }
        _ => Ok(()),
    }
}

fn check_decoder(mem: &RegionDesc, d: &HostDecoder) -> Result<(), DiscoveryError> {
    let ctrl = DecoderControl::from(d.ctrl);
    if !d.committed() {
        return Err(DiscoveryError::DecoderNotCommitted { ctrl: d.ctrl });
    }
    let ways = u8::from(ctrl.interleave_ways());
    if ways != 0 {
        return Err(DiscoveryError::DecoderInterleaved {
            ways_encoding: ways,
        });
    }
    if d.size == 0 {
        return Err(DiscoveryError::DecoderSizeZero);
    }
    if mem.size < d.size {
        return Err(DiscoveryError::MemoryTooSmall {
            region: mem.index,
            region_size: mem.size,
            decoder_size: d.size,
        });
    }
    if mem.size != d.size {
        return Err(DiscoveryError::DecoderSizeMismatch {
            region: mem.index,
            region_size: mem.size,
            decoder_size: d.size,
        });
    }
    Ok(())
}

fn check_info(
    info: &CxlDeviceInfo,
    l: &HostLayout,
    layout: UapiVersion,
) -> Result<(), DiscoveryError> {
    if let Some(v) = info.uapi_version().filter(|&v| v != layout) {
        return Err(DiscoveryError::InfoLayoutMismatch { info: v, layout });
    }
    if let Some(reported) = info.memory_region_index().filter(|&i| i != l.memory_region) {
        return Err(DiscoveryError::InfoMemoryRegionMismatch {
            reported,
            found: l.memory_region,
        });
    }
    if let Some(reported) = info
        .comp_regs_region_index()
        .filter(|&i| i != l.comp_regs_region)
    {
        return Err(DiscoveryError::InfoCompRegsRegionMismatch {
            reported,
            found: l.comp_regs_region,
        });
    }
    if let Some(reported) = info
        .component_bar()
        .filter(|&b| b != u32::from(l.component_bar))
    {
        return Err(DiscoveryError::InfoBarMismatch {
            reported,
            found: l.component_bar,
        });
    }
    if info.uapi_version().is_some() {
        let reported = info.component_block_offset();
        if reported != Some(l.component_offset) {
            return Err(DiscoveryError::InfoOffsetMismatch {
                reported,
                found: l.component_offset,
            });
        }
    }
    if let CxlDeviceInfo::V3 { comp_reg_size, .. } = *info {
        if comp_reg_size != l.comp_regs_size {
            return Err(DiscoveryError::InfoCompRegsSizeMismatch {
                reported: comp_reg_size,
                found: l.comp_regs_size,
            });
        }
    }
    Ok(())
}

/// Checks what the host offers and returns the layout the device uses, for
/// a host that presents no `COMP_REGS` region capability and whose reads
/// are all `COMP_REGS` reads: `read` reads the `COMP_REGS` dword at a
/// region offset.  See [`discover_with`].
pub fn discover(
    regions: &[RegionDesc],
    config: &[u8],
    info: Option<&CxlDeviceInfo>,
    read: &mut dyn FnMut(u64) -> Result<u32, String>,
) -> Result<HostLayout, DiscoveryError> {
    let comp = regions
        .iter()
        .find(|r| r.is_cxl(VFIO_REGION_SUBTYPE_CXL_COMP_REGS))
        .map(|r| r.index);
    discover_with(regions, config, info, None, &mut |region, offset| {
        if Some(region) == comp {
            read(offset)
        } else {
            Err(format!("region {region} cannot be read here"))
        }
    })
}

/// Checks what the host offers and returns the layout the device uses.
///
/// `regions` describes every region index the device reports, `config` is
/// its config space (4 KiB), `info` the CXL device-info capability when the
/// host has one, `comp_regs_cap` the `COMP_REGS` region capability when the
/// host has one (v4), and `read(region, offset)` reads a dword of a region:
/// `COMP_REGS`, or (v4 only) the component BAR, always 4-aligned.
pub fn discover_with(
    regions: &[RegionDesc],
    config: &[u8],
    info: Option<&CxlDeviceInfo>,
    comp_regs_cap: Option<CompRegsCap>,
    read: &mut dyn FnMut(u32, u64) -> Result<u32, String>,
) -> Result<HostLayout, DiscoveryError> {
    let mem = find_region(regions, CxlRegionKind::Memory)?;
    let comp = find_region(regions, CxlRegionKind::CompRegs)?;
    if mem.flags & VFIO_REGION_INFO_FLAG_MMAP == 0 {
        return Err(DiscoveryError::MemoryNotMappable { region: mem.index });
    }
    if mem.size == 0 {
        return Err(DiscoveryError::MemoryEmpty { region: mem.index });
    }
    let cfg = read_config(config)?;
    let bar = cfg.component_bar;
    let bar_size = regions
        .iter()
        .find(|r| r.index == u32::from(bar) && r.size != 0)
        .ok_or(DiscoveryError::ComponentBarMissing { bar })?
        .size;
    if cfg
        .component_offset
        .checked_add(COMPONENT_BLOCK_SIZE)
        .is_none_or(|end| end > bar_size)
    {
        return Err(DiscoveryError::BlockOutsideBar {
            bar,
            offset: cfg.component_offset,
            bar_size,
        });
    }
    let shadow = read_shadow(&mut Reads {
        comp,
        bar: u32::from(bar),
        block_in_bar: cfg.component_offset,
        read,
    })?;
    check_v4_markers(&comp, comp_regs_cap, &shadow, &cfg)?;
    check_decoder(&mem, &shadow.decoder0)?;
    if cfg.device_dvsec.range1_size != mem.size {
        return Err(DiscoveryError::DvsecRangeMismatch {
            region: mem.index,
            region_size: mem.size,
            range_size: cfg.device_dvsec.range1_size,
        });
    }
    let layout = HostLayout {
        memory_region: mem.index,
        memory_size: mem.size,
        comp_regs_region: comp.index,
        comp_regs_size: comp.size,
        component_bar: bar,
        component_offset: cfg.component_offset,
        bar_size,
        region_block_offset: shadow.region_block_offset,
        hdm_offset: shadow.hdm_offset,
        decoder_count: 1,
        decoder0: shadow.decoder0,
        cap_array: shadow.cap_array,
        device_dvsec_offset: cfg.device_dvsec_offset,
        device_dvsec: cfg.device_dvsec,
        uapi: shadow.version,
    };
    if let Some(i) = info {
        check_info(i, &layout, shadow.version)?;
    }
    Ok(layout)
}

/// A realistic host for tests: the crate's own builders for `COMP_REGS`,
/// config space and the device-info capability, per uAPI version.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::dvsec::{
        build_device_dvsec, build_register_locator, DeviceDvsecConfig, RegisterBlock,
    };
    use crate::host::HostCompRegs;
    use crate::uapi::{
        VFIO_CXL_V2_FIRMWARE_COMMITTED, VFIO_CXL_V3_HOST_FIRMWARE_COMMITTED,
        VFIO_REGION_INFO_FLAG_CAPS, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
    };

    pub const GIB: u64 = 1 << 30;
    pub const MIB: u64 = 1 << 20;
    pub const HPA: u64 = 0x38_0000_0000;
    pub const MEM: u64 = 4 * GIB;
    pub const RW: u32 = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;

    pub struct TestHost {
        pub version: UapiVersion,
        pub regs: HostCompRegs,
        pub regions: Vec<RegionDesc>,
        pub dvsec: DeviceDvsecConfig,
        pub blocks: Vec<RegisterBlock>,
        pub info: Option<CxlDeviceInfo>,
        pub config_override: Option<Vec<u8>>,
        /// The `COMP_REGS` region capability (v4).
        pub comp_regs_cap: Option<CompRegsCap>,
    }

    pub fn region(index: u32, size: u64, flags: u32, subtype: Option<u32>) -> RegionDesc {
        RegionDesc {
            index,
            size,
            flags,
            cap_type: subtype.map(|s| (VFIO_REGION_TYPE_CXL, s)),
        }
    }

    impl TestHost {
        /// v3: component block in BAR 0 at 0x40000, `COMP_REGS` 9, memory
        /// 10.  v2: block in BAR 2 at 0x20000, memory 9, `COMP_REGS` 10.
        pub fn new(version: UapiVersion) -> Self {
            Self::with_decoder(version, true)
        }

        pub fn with_decoder(version: UapiVersion, committed: bool) -> Self {
            let regs = HostCompRegs::new(version, HPA, MEM, committed);
            let (bar, offset, bar_size, mem_idx, comp_idx) = match version {
                UapiVersion::V3 | UapiVersion::V4 => (0u8, 0x4_0000u64, 16 * MIB, 10u32, 9u32),
                UapiVersion::V2 => (2, 0x2_0000, MIB, 9, 10),
            };
            let mmap = RW | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;
            let mut regions: Vec<RegionDesc> = (0..=5)
                .map(|i| {
                    region(
                        i,
                        if i == u32::from(bar) { bar_size } else { 0 },
                        mmap,
                        None,
                    )
                })
                .collect();
            regions.push(region(7, 4096, RW, None));
            regions.push(region(8, 0, 0, None));
            let comp = region(
                comp_idx,
                regs.region_size(),
                RW | VFIO_REGION_INFO_FLAG_CAPS,
                Some(VFIO_REGION_SUBTYPE_CXL_COMP_REGS),
            );
            let mem = region(mem_idx, MEM, mmap, Some(VFIO_REGION_SUBTYPE_CXL));
            regions.extend(if comp_idx < mem_idx {
                [comp, mem]
            } else {
                [mem, comp]
            });
            let info = match version {
                UapiVersion::V2 => CxlDeviceInfo::V2 {
                    hdm_regs_bar_index: bar,
                    flags: VFIO_CXL_V2_FIRMWARE_COMMITTED,
                    hdm_regs_offset: offset + CAP_ARRAY_OFFSET,
                    dpa_region_index: mem_idx,
                    comp_regs_region_index: comp_idx,
                },
                UapiVersion::V3 => CxlDeviceInfo::V3 {
                    flags: VFIO_CXL_V3_HOST_FIRMWARE_COMMITTED,
                    hdm_region_idx: mem_idx,
                    comp_reg_region_idx: comp_idx,
                    comp_reg_bar: u32::from(bar),
                    comp_reg_offset: offset,
                    comp_reg_size: regs.region_size(),
                },
                UapiVersion::V4 => CxlDeviceInfo::V4 {
                    flags: VFIO_CXL_V3_HOST_FIRMWARE_COMMITTED,
                },
            };
            // v4 has no device-info capability, and places the HDM block
            // with a COMP_REGS region capability.
            let (info, comp_regs_cap) = match version {
                UapiVersion::V4 => (
                    None,
                    Some(CompRegsCap {
                        bar: u32::from(bar),
                        hdm_offset: offset + crate::host::HOST_HDM_BLOCK_OFFSET,
                    }),
                ),
                _ => (Some(info), None),
            };
            Self {
                version,
                regs,
                regions,
                dvsec: DeviceDvsecConfig {
                    mem_size: MEM,
                    mem_base: 0,
                    cache_capable: true,
                    hdm_count: 1,
                    mem_active: true,
                    mem_enable: true,
                    config_lock: false,
                    cxl_reset_capable: true,
                    cache_wbi_capable: true,
                },
                blocks: vec![RegisterBlock {
                    bir: bar,
                    block_id: BLOCK_ID_COMPONENT,
                    offset,
                }],
                info,
                config_override: None,
                comp_regs_cap,
            }
        }

        pub fn mem_index(&self) -> u32 {
            match self.version {
                UapiVersion::V3 | UapiVersion::V4 => 10,
                UapiVersion::V2 => 9,
            }
        }

        pub fn region_mut(&mut self, index: u32) -> &mut RegionDesc {
            self.regions.iter_mut().find(|r| r.index == index).unwrap()
        }

        /// Device DVSEC at 0x100, Register Locator at 0x140.
        pub fn config(&self) -> Vec<u8> {
            if let Some(c) = &self.config_override {
                return c.clone();
            }
            let mut c = vec![0u8; 4096];
            let d = build_device_dvsec(&self.dvsec, 0x140);
            c[0x100..0x100 + d.len()].copy_from_slice(&d);
            let l = build_register_locator(&self.blocks, 0);
            c[0x140..0x140 + l.len()].copy_from_slice(&l);
            c
        }

        pub fn read_dword(&self, offset: u64) -> Result<u32, String> {
            let mut b = [0u8; 4];
            self.regs.read(offset, &mut b).map_err(|e| e.to_string())?;
            Ok(u32::from_le_bytes(b))
        }

        /// A dword of the component BAR: the block as the shadow has it,
        /// all ones over v4's HDM block (the kernel's hole there).
        pub fn bar_dword(&self, offset: u64) -> Result<u32, String> {
            let block = self.blocks[0].offset;
            let bo = offset
                .checked_sub(block)
                .filter(|&bo| bo < COMPONENT_BLOCK_SIZE)
                .ok_or_else(|| format!("BAR offset {offset:#x} outside the block"))?;
            let hdm = crate::host::HOST_HDM_BLOCK_OFFSET;
            if self.version == UapiVersion::V4 && (hdm..hdm + block_size(1)).contains(&bo) {
                return Ok(u32::MAX);
            }
            Ok(self.regs.block_dword(bo))
        }

        /// Runs discovery, passing the device-info capability through its
        /// wire encoding as the kernel would.
        pub fn discover(&self) -> Result<HostLayout, DiscoveryError> {
            let info = self
                .info
                .map(|i| CxlDeviceInfo::parse_cap(&i.encode(0)).unwrap());
            let comp = self.regs_index();
            let bar = u32::from(self.blocks[0].bir);
            let config = self.config();
            discover_with(
                &self.regions,
                &config,
                info.as_ref(),
                self.comp_regs_cap,
                &mut |region, o| match region {
                    r if r == comp => self.read_dword(o),
                    r if r == bar => self.bar_dword(o),
                    r => Err(format!("no reads of region {r}")),
                },
            )
        }

        pub fn regs_index(&self) -> u32 {
            self.mem_index() ^ 0b11
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::dvsec::RegisterBlock;
    use crate::host::{HOST_DECODER0_BLOCK_OFFSET, HOST_HDM_BLOCK_OFFSET};

    const V2: UapiVersion = UapiVersion::V2;

    /// Sets the length field of the DVSEC at `at` in a config image.
    fn set_dvsec_length(c: &mut [u8], at: usize, len: u32) {
        let h1 = u32::from_le_bytes([c[at + 4], c[at + 5], c[at + 6], c[at + 7]]);
        let new = (h1 & 0x000F_FFFF) | (len << 20);
        c[at + 4..at + 8].copy_from_slice(&new.to_le_bytes());
    }
    const V3: UapiVersion = UapiVersion::V3;

    fn both() -> [TestHost; 2] {
        [TestHost::new(V2), TestHost::new(V3)]
    }

    #[test]
    fn v3_host_is_discovered() {
        let h = TestHost::new(V3);
        let l = h.discover().unwrap();
        assert_eq!((l.memory_region, l.memory_size), (10, MEM));
        assert_eq!((l.comp_regs_region, l.comp_regs_size), (9, 0x10000));
        assert_eq!((l.component_bar, l.component_offset), (0, 0x4_0000));
        assert_eq!(l.bar_size, 16 * MIB);
        assert_eq!(l.region_block_offset, 0);
        assert_eq!(l.hdm_offset, HOST_HDM_BLOCK_OFFSET);
        assert_eq!(l.decoder_count, 1);
        assert_eq!((l.decoder0.base, l.decoder0.size), (HPA, MEM));
        assert!(l.decoder0.committed());
        assert_eq!(l.cap_array.len(), 16);
        assert_eq!(l.cap_array[0..2], [1, 0]);
        assert_eq!(l.device_dvsec_offset, 0x100);
        assert_eq!(l.device_dvsec.range1_size, MEM);
        assert_eq!(l.uapi, V3);
    }

    #[test]
    fn v2_host_is_discovered() {
        let h = TestHost::new(V2);
        let l = h.discover().unwrap();
        assert_eq!((l.memory_region, l.memory_size), (9, MEM));
        assert_eq!((l.comp_regs_region, l.comp_regs_size), (10, 0x130));
        assert_eq!((l.component_bar, l.component_offset), (2, 0x2_0000));
        assert_eq!(l.region_block_offset, 0x1000);
        assert_eq!(l.hdm_offset, HOST_HDM_BLOCK_OFFSET);
        // v2 zeroed BASE at open.
        assert_eq!((l.decoder0.base, l.decoder0.size), (0, MEM));
        assert_eq!(l.uapi, V2);
    }

    #[test]
    fn vfio_user_host_without_device_info_is_discovered() {
        for mut h in both() {
            let with = h.discover().unwrap();
            h.info = None;
            assert_eq!(h.discover().unwrap(), with);
        }
    }

    #[test]
    fn layout_does_not_depend_on_decoder_base() {
        let mut h = TestHost::new(V3);
        let before = h.discover().unwrap();
        h.regs.set_block_dword(HOST_DECODER0_BLOCK_OFFSET + 4, 0x99);
        let after = h.discover().unwrap();
        assert_ne!(after.decoder0.base, before.decoder0.base);
        assert_eq!(
            HostLayout {
                decoder0: before.decoder0,
                ..after
            },
            before
        );
    }

    #[test]
    fn discovery_reads_few_dwords() {
        for h in both() {
            let mut n = 0;
            discover(&h.regions, &h.config(), None, &mut |o| {
                n += 1;
                assert_eq!(o % 4, 0);
                h.read_dword(o)
            })
            .unwrap();
            assert!(n <= 16, "{n} reads");
        }
    }

    #[test]
    fn region_offset_maps_block_offsets() {
        let l2 = TestHost::new(V2).discover().unwrap();
        assert_eq!(l2.region_offset(0xFFC), None);
        assert_eq!(l2.region_offset(0x1000), Some(0));
        assert_eq!(l2.region_offset(0x112C), Some(0x12C));
        assert_eq!(l2.region_offset(0x1130), None);
        let l3 = TestHost::new(V3).discover().unwrap();
        assert_eq!(l3.region_offset(0), Some(0));
        assert_eq!(l3.region_offset(0xFFFC), Some(0xFFFC));
        assert_eq!(l3.region_offset(0x10000), None);
    }

    #[test]
    fn host_base_writes_only_on_v2() {
        let mut h = TestHost::new(V2);
        let l = h.discover().unwrap();
        let w = l.host_base_writes(0x10_1000_0000).unwrap();
        for (o, v) in w {
            h.regs.write(o, &v.to_le_bytes()).unwrap();
        }
        assert_eq!(h.regs.decoder0().base, 0x10_1000_0000);
        let l3 = TestHost::new(V3).discover().unwrap();
        assert_eq!(l3.host_base_writes(0x10_1000_0000), None);
    }

    #[test]
    fn memory_region_missing() {
        for mut h in both() {
            let i = h.mem_index();
            h.region_mut(i).cap_type = None;
            h.info = None;
            let e = h.discover().unwrap_err();
            assert_eq!(e, DiscoveryError::RegionMissing(CxlRegionKind::Memory));
            assert_eq!(
                e.to_string(),
                "the device has no CXL memory region (type 0x80001e98, subtype 1)"
            );
        }
    }

    #[test]
    fn region_of_another_vendor_type_is_not_cxl() {
        let mut h = TestHost::new(V3);
        h.region_mut(10).cap_type = Some((0x8000_10DE, 1));
        assert_eq!(
            h.discover(),
            Err(DiscoveryError::RegionMissing(CxlRegionKind::Memory))
        );
    }

    #[test]
    fn comp_regs_region_missing() {
        let mut h = TestHost::new(V2);
        h.regions.retain(|r| r.index != 10);
        let e = h.discover().unwrap_err();
        assert_eq!(e, DiscoveryError::RegionMissing(CxlRegionKind::CompRegs));
        assert!(e
            .to_string()
            .contains("no COMP_REGS region (type 0x80001e98, subtype 2)"));
    }

    #[test]
    fn several_memory_regions() {
        let mut h = TestHost::new(V3);
        h.regions
            .push(region(11, MEM, RW | VFIO_REGION_INFO_FLAG_MMAP, Some(1)));
        let e = h.discover().unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::SeveralRegions {
                kind: CxlRegionKind::Memory,
                indices: vec![10, 11]
            }
        );
        assert!(e
            .to_string()
            .contains("memory regions (type 0x80001e98, subtype 1): 10, 11"));
    }

    #[test]
    fn several_comp_regs_regions() {
        let mut h = TestHost::new(V3);
        h.regions.push(region(12, 0x10000, RW, Some(2)));
        assert_eq!(
            h.discover(),
            Err(DiscoveryError::SeveralRegions {
                kind: CxlRegionKind::CompRegs,
                indices: vec![9, 12]
            })
        );
    }

    #[test]
    fn memory_region_without_mmap() {
        let mut h = TestHost::new(V3);
        h.region_mut(10).flags &= !VFIO_REGION_INFO_FLAG_MMAP;
        let e = h.discover().unwrap_err();
        assert_eq!(e, DiscoveryError::MemoryNotMappable { region: 10 });
        assert_eq!(e.to_string(), "memory region 10 cannot be mmapped");
    }

    #[test]
    fn memory_region_size_zero() {
        let mut h = TestHost::new(V2);
        h.region_mut(9).size = 0;
        assert_eq!(h.discover(), Err(DiscoveryError::MemoryEmpty { region: 9 }));
    }

    #[test]
    fn comp_regs_size_fits_neither_layout() {
        for size in [0, 4, 0x10004, 0x20000, 0x12E, 0xF004] {
            let mut h = TestHost::new(V3);
            h.region_mut(9).size = size;
            let e = h.discover().unwrap_err();
            assert_eq!(
                e,
                DiscoveryError::CompRegsBadSize { region: 9, size },
                "{size:#x}"
            );
            assert!(e.to_string().contains("COMP_REGS region 9"));
        }
    }

    #[test]
    fn comp_regs_layout_is_detected_by_content() {
        // A v3 block announced with a v2-sized region: offset 0 reads 0.
        let mut h = TestHost::new(V3);
        h.region_mut(9).size = 0x130;
        h.info = None;
        let e = h.discover().unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::CompRegsNoCapArray {
                region: 9,
                size: 0x130,
                at_0: 0,
                at_0x1000: None
            }
        );
        assert!(e.to_string().contains("offset 0 reads 0x00000000"));
        // A v3-sized region with no header at 0x1000.
        let mut h3 = TestHost::new(V3);
        h3.regs.set_block_dword(0x1000, 0x0300_0002);
        let e3 = h3.discover().unwrap_err();
        assert_eq!(
            e3,
            DiscoveryError::CompRegsNoCapArray {
                region: 9,
                size: 0x10000,
                at_0: 0,
                at_0x1000: Some(0x0300_0002)
            }
        );
        assert!(e3.to_string().contains("offset 0x1000 reads 0x03000002"));
    }

    #[test]
    fn comp_regs_read_failure() {
        let h = TestHost::new(V3);
        let e = discover(&h.regions, &h.config(), None, &mut |o| {
            if o == 0x1000 {
                Err("EIO".into())
            } else {
                h.read_dword(o)
            }
        })
        .unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::CompRegsRead {
                region: 9,
                offset: 0x1000,
                message: "EIO".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "reading COMP_REGS region 9 at 0x1000 failed: EIO"
        );
    }

    #[test]
    fn register_locator_missing() {
        let mut h = TestHost::new(V3);
        let mut c = h.config();
        c[0x140..0x150].fill(0);
        h.config_override = Some(c);
        assert_eq!(h.discover(), Err(DiscoveryError::RegisterLocatorMissing));
    }

    #[test]
    fn register_locator_invalid() {
        let mut h = TestHost::new(V3);
        let mut c = h.config();
        // Length 0x10: not header plus whole 8-byte entries.
        set_dvsec_length(&mut c, 0x140, 0x10);
        h.config_override = Some(c);
        let e = h.discover().unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::RegisterLocatorInvalid(DvsecError::BadLength { length: 0x10 })
        );
        assert!(e.to_string().contains("Register Locator"));
    }

    #[test]
    fn register_locator_without_component_block() {
        let mut h = TestHost::new(V3);
        h.blocks[0].block_id = crate::dvsec::BLOCK_ID_MEMDEV;
        assert_eq!(h.discover(), Err(DiscoveryError::NoComponentBlock));
    }

    #[test]
    fn component_bar_index_not_a_bar() {
        let mut h = TestHost::new(V3);
        h.blocks[0].bir = 6;
        let e = h.discover().unwrap_err();
        assert_eq!(e, DiscoveryError::ComponentBarInvalid { bar: 6 });
        assert!(e.to_string().contains("BAR indicator 6"));
    }

    #[test]
    fn component_bar_not_a_present_region() {
        let mut h = TestHost::new(V3);
        h.blocks[0].bir = 4;
        assert_eq!(
            h.discover(),
            Err(DiscoveryError::ComponentBarMissing { bar: 4 })
        );
        h.regions.retain(|r| r.index != 4);
        assert_eq!(
            h.discover(),
            Err(DiscoveryError::ComponentBarMissing { bar: 4 })
        );
    }

    #[test]
    fn component_block_outside_bar() {
        let mut h = TestHost::new(V2);
        h.blocks[0].offset = MIB - 0x10000;
        h.info = None;
        h.discover().unwrap();
        h.blocks[0].offset = MIB;
        let e = h.discover().unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::BlockOutsideBar {
                bar: 2,
                offset: MIB,
                bar_size: MIB
            }
        );
        assert!(e.to_string().contains("outside BAR 2 of 0x100000 (1 MiB)"));
        h.blocks[0].offset = !0xFFFF;
        h.region_mut(2).size = u64::MAX;
        assert!(matches!(
            h.discover(),
            Err(DiscoveryError::BlockOutsideBar { .. })
        ));
    }

    #[test]
    fn device_dvsec_missing() {
        let mut h = TestHost::new(V3);
        let mut c = h.config();
        // Turn the Device DVSEC into another vendor's DVSEC.
        c[0x104] = 0xDE;
        h.config_override = Some(c);
        assert_eq!(h.discover(), Err(DiscoveryError::DeviceDvsecMissing));
    }

    #[test]
    fn device_dvsec_invalid() {
        let mut h = TestHost::new(V3);
        let mut c = h.config();
        set_dvsec_length(&mut c, 0x100, 0x20);
        h.config_override = Some(c);
        assert_eq!(
            h.discover(),
            Err(DiscoveryError::DeviceDvsecInvalid(DvsecError::BadLength {
                length: 0x20
            }))
        );
    }

    #[test]
    fn capability_array_invalid() {
        let mut h = TestHost::new(V2);
        // 0x50 entries do not fit a 0x130-byte region.
        h.regs.set_block_dword(0x1000, 0x5001_0001);
        let e = h.discover().unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::CapArray(CapArrayError::TooManyEntries {
                count: 0x50,
                room: 0x4B
            })
        );
        assert!(e.to_string().contains("capability array is invalid"));
        let mut h3 = TestHost::new(V3);
        h3.regs.set_block_dword(0x1000, 0x0001_0001);
        assert_eq!(
            h3.discover(),
            Err(DiscoveryError::CapArray(CapArrayError::NoEntries))
        );
    }

    #[test]
    fn hdm_capability_missing() {
        for mut h in both() {
            // The third entry (HDM, ID 5) becomes ID 9.
            let e = h.regs.block_dword(0x100C);
            h.regs.set_block_dword(0x100C, (e & !0xFFFF) | 9);
            assert_eq!(h.discover(), Err(DiscoveryError::HdmMissing));
        }
    }

    #[test]
    fn decoder_count_not_one() {
        let mut h = TestHost::new(V3);
        h.regs.set_block_dword(HOST_HDM_BLOCK_OFFSET, 1);
        let e = h.discover().unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::DecoderCount {
                encoding: 1,
                count: Some(2)
            }
        );
        assert!(e.to_string().contains("reports 2 decoders"));
        h.regs.set_block_dword(HOST_HDM_BLOCK_OFFSET, 0xF);
        let r = h.discover().unwrap_err();
        assert_eq!(
            r,
            DiscoveryError::DecoderCount {
                encoding: 0xF,
                count: None
            }
        );
        assert!(r.to_string().contains("reserved"));
    }

    #[test]
    fn decoder_interleaved() {
        let mut h = TestHost::new(V3);
        let ctrl = h.regs.decoder0().ctrl;
        h.regs
            .set_block_dword(HOST_DECODER0_BLOCK_OFFSET + 0x10, ctrl | 1 << 4);
        assert_eq!(
            h.discover(),
            Err(DiscoveryError::DecoderInterleaved { ways_encoding: 1 })
        );
    }

    #[test]
    fn decoder_not_committed_by_host() {
        for v in [V2, V3] {
            let h = TestHost::with_decoder(v, false);
            let e = h.discover().unwrap_err();
            assert_eq!(e, DiscoveryError::DecoderNotCommitted { ctrl: 0 });
            assert!(e.to_string().contains("not committed"));
        }
    }

    #[test]
    fn decoder_size_zero() {
        let mut h = TestHost::new(V3);
        h.regs.set_block_dword(HOST_DECODER0_BLOCK_OFFSET + 8, 0);
        h.regs.set_block_dword(HOST_DECODER0_BLOCK_OFFSET + 0xC, 0);
        assert_eq!(h.discover(), Err(DiscoveryError::DecoderSizeZero));
        // Reserved low bits alone are not a size.
        h.regs
            .set_block_dword(HOST_DECODER0_BLOCK_OFFSET + 8, 0x0FFF_FFFF);
        assert_eq!(h.discover(), Err(DiscoveryError::DecoderSizeZero));
    }

    #[test]
    fn memory_region_smaller_than_decoder() {
        let mut h = TestHost::new(V3);
        h.region_mut(10).size = 128 * MIB;
        let e = h.discover().unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::MemoryTooSmall {
                region: 10,
                region_size: 128 * MIB,
                decoder_size: MEM
            }
        );
        assert_eq!(
            e.to_string(),
            "memory region 10 is 0x8000000 (128 MiB), smaller than HDM decoder 0 of 0x100000000 (4 GiB)"
        );
    }

    #[test]
    fn decoder_size_differs_from_memory_region() {
        let mut h = TestHost::new(V2);
        h.region_mut(9).size = 2 * MEM;
        let e = h.discover().unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::DecoderSizeMismatch {
                region: 9,
                region_size: 2 * MEM,
                decoder_size: MEM
            }
        );
        assert!(e.to_string().contains("(8 GiB) but HDM decoder 0 is only"));
    }

    #[test]
    fn dvsec_range1_disagrees_with_memory_region() {
        let mut h = TestHost::new(V3);
        h.dvsec.mem_size = 2 * GIB;
        let e = h.discover().unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::DvsecRangeMismatch {
                region: 10,
                region_size: MEM,
                range_size: 2 * GIB
            }
        );
        assert!(e
            .to_string()
            .contains("DVSEC range 1 is 0x80000000 (2 GiB)"));
    }

    #[test]
    fn device_info_layout_disagrees() {
        let mut h = TestHost::new(V3);
        h.info = TestHost::new(V2).info;
        assert_eq!(
            h.discover(),
            Err(DiscoveryError::InfoLayoutMismatch {
                info: V2,
                layout: V3
            })
        );
    }

    #[test]
    fn device_info_memory_region_disagrees() {
        let mut h = TestHost::new(V3);
        if let Some(CxlDeviceInfo::V3 { hdm_region_idx, .. }) = &mut h.info {
            *hdm_region_idx = 11;
        }
        let e = h.discover().unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::InfoMemoryRegionMismatch {
                reported: 11,
                found: 10
            }
        );
        assert!(e.to_string().contains("memory region 11, found region 10"));
    }

    #[test]
    fn device_info_comp_regs_region_disagrees() {
        let mut h = TestHost::new(V2);
        if let Some(CxlDeviceInfo::V2 {
            comp_regs_region_index,
            ..
        }) = &mut h.info
        {
            *comp_regs_region_index = 9;
        }
        assert_eq!(
            h.discover(),
            Err(DiscoveryError::InfoCompRegsRegionMismatch {
                reported: 9,
                found: 10
            })
        );
    }

    #[test]
    fn device_info_bar_disagrees() {
        let mut h = TestHost::new(V2);
        if let Some(CxlDeviceInfo::V2 {
            hdm_regs_bar_index, ..
        }) = &mut h.info
        {
            *hdm_regs_bar_index = 4;
        }
        assert_eq!(
            h.discover(),
            Err(DiscoveryError::InfoBarMismatch {
                reported: 4,
                found: 2
            })
        );
    }

    #[test]
    fn device_info_offset_disagrees() {
        // v2 reports the capability array offset, block + 0x1000: giving
        // the block offset itself is a mismatch.
        let mut h = TestHost::new(V2);
        if let Some(CxlDeviceInfo::V2 {
            hdm_regs_offset, ..
        }) = &mut h.info
        {
            *hdm_regs_offset = 0x2_0000;
        }
        let e = h.discover().unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::InfoOffsetMismatch {
                reported: Some(0x1_F000),
                found: 0x2_0000
            }
        );
        assert!(e
            .to_string()
            .contains("at 0x1f000, Register Locator at 0x20000"));
        let mut h3 = TestHost::new(V3);
        if let Some(CxlDeviceInfo::V3 {
            comp_reg_offset, ..
        }) = &mut h3.info
        {
            *comp_reg_offset = 0x4_1000;
        }
        assert_eq!(
            h3.discover(),
            Err(DiscoveryError::InfoOffsetMismatch {
                reported: Some(0x4_1000),
                found: 0x4_0000
            })
        );
    }

    #[test]
    fn device_info_comp_regs_size_disagrees() {
        let mut h = TestHost::new(V3);
        if let Some(CxlDeviceInfo::V3 { comp_reg_size, .. }) = &mut h.info {
            *comp_reg_size = 0x130;
        }
        let e = h.discover().unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::InfoCompRegsSizeMismatch {
                reported: 0x130,
                found: 0x10000
            }
        );
        assert!(e.to_string().contains("0x130 bytes, the region is 0x10000"));
    }

    const V4: UapiVersion = UapiVersion::V4;

    #[test]
    fn v4_host_is_discovered_through_its_bar_and_hdm_region() {
        let h = TestHost::new(V4);
        let l = h.discover().unwrap();
        assert_eq!(l.uapi, V4);
        assert_eq!((l.comp_regs_region, l.comp_regs_size), (9, 0x30));
        assert_eq!((l.component_bar, l.component_offset), (0, 0x4_0000));
        assert_eq!(l.hdm_offset, HOST_HDM_BLOCK_OFFSET);
        assert_eq!(l.region_block_offset, HOST_HDM_BLOCK_OFFSET);
        assert_eq!(l.decoder0.size, MEM);
        assert!(l.decoder0.committed() && l.decoder0.lock_on_commit());
        assert_eq!(l.decoder0.base, HPA, "live reads show the host address");
        // The capability array came from the BAR: header and 3 entries.
        assert_eq!(l.cap_array.len(), 16);
        assert_eq!(l.host_base_writes(0x10_0000_0000), None);
    }

    #[test]
    fn v4_without_region_capability_or_with_the_early_region_type() {
        let mut h = TestHost::new(V4);
        h.comp_regs_cap = None;
        assert_eq!(h.discover().unwrap().uapi, V4);
        let mut early = TestHost::new(V4);
        for r in &mut early.regions {
            if let Some((ty, _)) = r.cap_type.as_mut() {
                *ty = VFIO_REGION_TYPE_CXL_EARLY_V4;
            }
        }
        assert_eq!(early.discover().unwrap().uapi, V4);
    }

    #[test]
    fn hosts_that_mix_versions_are_refused() {
        // The early v4 region type on a v3 layout.
        let mut h = TestHost::new(V3);
        for r in &mut h.regions {
            if let Some((ty, _)) = r.cap_type.as_mut() {
                *ty = VFIO_REGION_TYPE_CXL_EARLY_V4;
            }
        }
        assert!(matches!(
            h.discover(),
            Err(DiscoveryError::V4MarkerWithOldLayout { layout: V3, .. })
        ));
        // The v4 region capability on a v2 layout.
        let mut h2 = TestHost::new(V2);
        h2.comp_regs_cap = Some(CompRegsCap {
            bar: 2,
            hdm_offset: 0x2_1100,
        });
        let e = h2.discover().unwrap_err();
        assert!(e.to_string().contains("mixes interface versions"), "{e}");
        // A v3 device-info capability with a v4 layout.
        let mut h4 = TestHost::new(V4);
        h4.info = TestHost::new(V3).info;
        assert!(matches!(
            h4.discover(),
            Err(DiscoveryError::InfoLayoutMismatch {
                info: V3,
                layout: V4
            })
        ));
    }

    #[test]
    fn v4_region_capability_must_agree_with_config_space() {
        let mut h = TestHost::new(V4);
        h.comp_regs_cap = Some(CompRegsCap {
            bar: 0,
            hdm_offset: 0x4_0000,
        });
        let e = h.discover().unwrap_err();
        assert!(
            matches!(
                e,
                DiscoveryError::CompRegsCapMismatch {
                    cap_offset: 0x4_0000,
                    offset: 0x4_1100,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn v2_region_larger_than_its_layout_is_refused() {
        let mut h = TestHost::new(V2);
        let comp = h.regs_index();
        let size = h.region_mut(comp).size;
        h.region_mut(comp).size = size + 0x1000;
        let e = h.discover().unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::CompRegsSizeNotLayout {
                region: comp,
                size: size + 0x1000,
                layout: size,
            }
        );
        assert!(e.to_string().contains("uAPI v2 sizes it to them"), "{e}");
    }

    #[test]
    fn v4_region_of_another_size_is_neither_layout() {
        let mut h = TestHost::new(V4);
        let comp = h.regs_index();
        h.region_mut(comp).size = 0x50;
        assert!(matches!(
            h.discover(),
            Err(DiscoveryError::CompRegsNoCapArray { size: 0x50, .. })
        ));
    }

    #[test]
    fn flags_only_device_info_says_nothing_about_the_layout() {
        // The flags-only capability v4 review proposed carries no layout
        // to check against: the COMP_REGS layout decides.
        let mut h = TestHost::new(V3);
        h.info = Some(CxlDeviceInfo::V4 { flags: 1 });
        assert_eq!(h.discover().unwrap().uapi, V3);
    }

    #[test]
    fn extra_register_blocks_are_ignored() {
        let mut h = TestHost::new(V3);
        h.blocks.insert(
            0,
            RegisterBlock {
                bir: 0,
                block_id: crate::dvsec::BLOCK_ID_MEMDEV,
                offset: 0x8_0000,
            },
        );
        assert_eq!(h.discover().unwrap().component_offset, 0x4_0000);
    }

    #[test]
    fn error_source_is_the_wrapped_error() {
        use std::error::Error;
        let e = DiscoveryError::CapArray(CapArrayError::HdmMissing);
        assert!(e.source().is_some());
        assert!(DiscoveryError::HdmMissing.source().is_none());
    }
}
