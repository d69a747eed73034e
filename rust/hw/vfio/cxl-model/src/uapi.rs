// SPDX-License-Identifier: GPL-2.0-or-later

//! The Linux vfio-pci CXL interface as seen from user space.
//!
//! The kernel series that adds CXL Type-2 passthrough is not in mainline and
//! its interface changed between postings, so everything here is keyed by
//! [`UapiVersion`] or recognised by shape (the device-info capability is told
//! apart by its length).  Standard VFIO structures come from `vfio-bindings`;
//! this module only adds the CXL numbers and byte-level (de)serialisation,
//! because replies arrive as raw buffers (an ioctl reply or a vfio-user
//! message) and must be decoded without `unsafe` casts.
//!
//! Every parser here takes untrusted bytes and returns a [`UapiError`] for
//! anything it does not understand; none of them panics.

use std::fmt;
use std::mem::size_of;

pub use vfio_bindings::bindings::vfio::{
    vfio_device_info, vfio_info_cap_header, vfio_region_info, vfio_region_info_cap_type,
    vfio_region_sparse_mmap_area, VFIO_DEVICE_FLAGS_CAPS, VFIO_DEVICE_FLAGS_PCI,
    VFIO_DEVICE_FLAGS_RESET, VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_BAR5_REGION_INDEX,
    VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_VGA_REGION_INDEX, VFIO_REGION_INFO_CAP_SPARSE_MMAP,
    VFIO_REGION_INFO_CAP_TYPE, VFIO_REGION_INFO_FLAG_CAPS, VFIO_REGION_INFO_FLAG_MMAP,
    VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE, VFIO_REGION_TYPE_PCI_VENDOR_MASK,
    VFIO_REGION_TYPE_PCI_VENDOR_TYPE,
};

/// Which posting of the kernel series the host implements.
///
/// The differences that matter to user space (`COMP_REGS` layout and access
/// rules, shadow semantics, reset behaviour) are described in
/// `docs/devel/vfio-cxl-uapi.rst` and at the top of [`crate::host`]; the
/// types in
/// [`crate::host`] and [`crate::dvsec`] follow them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UapiVersion {
    /// Second posting (April 2026): `COMP_REGS` starts at the capability
    /// array, strictly 4-byte accesses, decoder BASE zeroed for the VMM.
    V2,
    /// Third posting (June 2026): `COMP_REGS` is the whole 64 KiB block and
    /// the decoder shadow keeps the host physical address.
    V3,
    /// Fourth posting (August 2026): no CXL device-info capability;
    /// `COMP_REGS` starts at the HDM Decoder Capability block, reads live
    /// from the committed decoder and absorbs writes; its BAR placement is
    /// the [`CompRegsCap`] region capability.
    V4,
}

impl UapiVersion {
    /// How messages name the posting.
    pub const fn name(self) -> &'static str {
        match self {
            Self::V2 => "v2",
            Self::V3 => "v3",
            Self::V4 => "v4",
        }
    }
}

/// `vfio_device_info.flags` bit announcing a CXL device.
pub const VFIO_DEVICE_FLAGS_CXL: u32 = 1 << 9;

/// Device-info capability ID of the CXL capability.
pub const VFIO_DEVICE_INFO_CAP_CXL: u16 = 6;

/// Header version of the CXL device-info capability (all postings).
pub const VFIO_DEVICE_INFO_CAP_CXL_VERSION: u16 = 1;

/// Region type of both CXL regions: the PCI vendor-type flag combined with
/// the CXL consortium's vendor ID.
pub const VFIO_REGION_TYPE_CXL: u32 = VFIO_REGION_TYPE_PCI_VENDOR_TYPE | 0x1E98;

// The region type must embed exactly the DVSEC vendor ID.
const _: () = assert!(
    VFIO_REGION_TYPE_CXL & VFIO_REGION_TYPE_PCI_VENDOR_MASK == crate::dvsec::CXL_VENDOR_ID as u32
);

/// Region type of both CXL regions in the earlier v4-era tree
/// (`sforshee/NV-Kernels`), which names it `VFIO_REGION_TYPE_CXL` and
/// numbers it among the global region types instead of using the PCI
/// vendor type.  The subtypes are the same.
pub const VFIO_REGION_TYPE_CXL_EARLY_V4: u32 = 4;

/// Region subtype of the HDM memory region (called "DPA" in v2).
pub const VFIO_REGION_SUBTYPE_CXL: u32 = 1;

/// v4's name for [`VFIO_REGION_SUBTYPE_CXL`] (same value).
pub const VFIO_REGION_SUBTYPE_CXL_MEM: u32 = VFIO_REGION_SUBTYPE_CXL;

/// Region subtype of the component register shadow (`COMP_REGS`).
pub const VFIO_REGION_SUBTYPE_CXL_COMP_REGS: u32 = 2;

/// Version of the region type capability header.
pub const VFIO_REGION_INFO_CAP_TYPE_VERSION: u16 = 1;

/// Version of the sparse-mmap capability header.
pub const VFIO_REGION_INFO_CAP_SPARSE_MMAP_VERSION: u16 = 1;

/// Region-info capability ID of v4's `VFIO_REGION_INFO_CAP_CXL_COMP_REGS`
/// (on the `COMP_REGS` region: BAR and BAR offset of the HDM decoder
/// block).
///
/// The public v4 trees use the name but do not show its number (the uAPI
/// header with the define is not published yet).  6 is the next free
/// region-info capability ID after mainline's 1 to 5.  This is the only
/// place the guess lives: change it here when the header is public.
pub const VFIO_REGION_INFO_CAP_CXL_COMP_REGS: u32 = 6;

/// Header version of [`VFIO_REGION_INFO_CAP_CXL_COMP_REGS`].
pub const VFIO_REGION_INFO_CAP_CXL_COMP_REGS_VERSION: u16 = 1;

/// Total size of the `COMP_REGS` region capability: header, `u32 bar`,
/// 4 bytes of padding (the offset is a naturally aligned `u64`), `u64
/// offset`.
pub const CXL_COMP_REGS_CAP_SIZE: usize = 24;

/// v2 device-info flag: firmware committed HDM decoder 0.
pub const VFIO_CXL_V2_FIRMWARE_COMMITTED: u32 = 1 << 0;

/// v2 device-info flag: the device is CXL.cache capable.
pub const VFIO_CXL_V2_CACHE_CAPABLE: u32 = 1 << 1;

/// v3 device-info flag: host firmware committed the decoder (always set,
/// since v3 refuses devices whose decoder is not committed).
pub const VFIO_CXL_V3_HOST_FIRMWARE_COMMITTED: u32 = 1 << 0;

/// Largest number of capabilities [`parse_cap_chain`] follows.  Real replies
/// carry a handful; the limit only bounds work on hostile input.
pub const MAX_CAPS: usize = 64;

/// Size of `struct vfio_info_cap_header`.
pub const CAP_HEADER_SIZE: usize = size_of::<vfio_info_cap_header>();

/// Total size of the v2 CXL device-info capability, header included.
pub const CXL_CAP_V2_SIZE: usize = 32;

/// Total size of the v3 CXL device-info capability, header included.
pub const CXL_CAP_V3_SIZE: usize = 48;

/// Total size of the v4 CXL device-info capability as the kernel places it
/// (header, `u32 flags`, padding to 8 bytes).
pub const CXL_CAP_V4_SIZE: usize = 16;

/// What went wrong while decoding a uAPI structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UapiError {
    /// A capability offset points at or past the end of the buffer.
    OffsetOutOfRange {
        /// The offending offset.
        offset: u32,
        /// Length of the buffer.
        len: usize,
    },
    /// A capability header starts inside the buffer but does not fit in it.
    HeaderTruncated {
        /// Offset of the header.
        offset: u32,
    },
    /// A capability offset is not 4-byte aligned.
    Misaligned {
        /// The offending offset.
        offset: u32,
    },
    /// A `next` pointer goes backwards or revisits a capability.
    Loop {
        /// Offset of the capability whose `next` is bad.
        from: u32,
        /// The `next` value.
        next: u32,
    },
    /// More than [`MAX_CAPS`] capabilities are chained.
    TooManyCaps,
    /// The capability has a different ID than the parser expects.
    WrongCapId {
        /// ID expected.
        expected: u16,
        /// ID found.
        found: u16,
    },
    /// The capability header version is not one this crate knows.
    UnsupportedCapVersion {
        /// Capability ID.
        id: u16,
        /// Version found.
        version: u16,
    },
    /// The CXL device-info capability has a length no known layout has.
    UnknownCxlLayout {
        /// Total length (header included) that was given.
        len: usize,
    },
    /// v2 reports an HDM register offset below the capability array, which
    /// cannot be converted to a component block offset.
    HdmOffsetBelowCapArray {
        /// The reported `hdm_regs_offset`.
        hdm_regs_offset: u64,
    },
    /// A structure is shorter than its fixed part.
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A sparse-mmap capability claims more areas than its bytes hold.
    TooManyAreas {
        /// `nr_areas` from the header.
        nr_areas: u32,
        /// Areas that fit in the bytes given.
        fit: usize,
    },
}

impl fmt::Display for UapiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OffsetOutOfRange { offset, len } => {
                write!(
                    f,
                    "capability offset {offset:#x} outside a {len}-byte reply"
                )
            }
            Self::HeaderTruncated { offset } => {
                write!(f, "capability header at {offset:#x} is truncated")
            }
            Self::Misaligned { offset } => {
                write!(f, "capability offset {offset:#x} is not 4-byte aligned")
            }
            Self::Loop { from, next } => write!(
                f,
                "capability at {from:#x} points back to {next:#x} (chain loops)"
            ),
            Self::TooManyCaps => write!(f, "more than {MAX_CAPS} capabilities in one chain"),
            Self::WrongCapId { expected, found } => {
                write!(f, "expected capability ID {expected}, found {found}")
            }
            Self::UnsupportedCapVersion { id, version } => {
                write!(f, "capability {id} has unsupported version {version}")
            }
            Self::UnknownCxlLayout { len } => {
                write!(f, "CXL device-info capability of unknown length {len}")
            }
            Self::HdmOffsetBelowCapArray { hdm_regs_offset } => write!(
                f,
                "v2 hdm_regs_offset {hdm_regs_offset:#x} lies below the capability array"
            ),
            Self::Truncated { need, have } => {
                write!(f, "structure needs {need} bytes, only {have} given")
            }
            Self::TooManyAreas { nr_areas, fit } => {
                write!(f, "sparse-mmap claims {nr_areas} areas, only {fit} fit")
            }
        }
    }
}

impl std::error::Error for UapiError {}

// The crate's little-endian field readers: they fail instead of
// panicking.  The kernel and vfio-user both use the host's byte order,
// which for every platform QEMU supports with CXL is little-endian.

/// The little-endian `u16` at `at` in `b`, if it lies inside.
pub fn rd_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

/// The little-endian `u32` at `at` in `b`, if it lies inside.
pub fn rd_u32(b: &[u8], at: usize) -> Option<u32> {
    let lo = rd_u16(b, at)?;
    let hi = rd_u16(b, at.checked_add(2)?)?;
    Some(u32::from(lo) | (u32::from(hi) << 16))
}

/// The little-endian `u64` at `at` in `b`, if it lies inside.
pub fn rd_u64(b: &[u8], at: usize) -> Option<u64> {
    let lo = rd_u32(b, at)?;
    let hi = rd_u32(b, at.checked_add(4)?)?;
    Some(u64::from(lo) | (u64::from(hi) << 32))
}

fn need(b: &[u8], n: usize) -> Result<(), UapiError> {
    if b.len() < n {
        Err(UapiError::Truncated {
            need: n,
            have: b.len(),
        })
    } else {
        Ok(())
    }
}

/// Decodes a `vfio_info_cap_header` from the first 8 bytes of `b`.
pub fn parse_cap_header(b: &[u8]) -> Result<vfio_info_cap_header, UapiError> {
    need(b, CAP_HEADER_SIZE)?;
    Ok(vfio_info_cap_header {
        id: rd_u16(b, 0).unwrap_or_default(),
        version: rd_u16(b, 2).unwrap_or_default(),
        next: rd_u32(b, 4).unwrap_or_default(),
    })
}

/// Encodes a `vfio_info_cap_header`.
pub fn encode_cap_header(h: &vfio_info_cap_header) -> [u8; CAP_HEADER_SIZE] {
    let mut out = [0u8; CAP_HEADER_SIZE];
    out[0..2].copy_from_slice(&h.id.to_le_bytes());
    out[2..4].copy_from_slice(&h.version.to_le_bytes());
    out[4..8].copy_from_slice(&h.next.to_le_bytes());
    out
}

/// Decodes the fixed part of a `VFIO_DEVICE_GET_INFO` reply.
pub fn parse_device_info(b: &[u8]) -> Result<vfio_device_info, UapiError> {
    need(b, size_of::<vfio_device_info>())?;
    let f = |at| rd_u32(b, at).unwrap_or_default();
    Ok(vfio_device_info {
        argsz: f(0),
        flags: f(4),
        num_regions: f(8),
        num_irqs: f(12),
        cap_offset: f(16),
        pad: f(20),
    })
}

/// Encodes the fixed part of a `VFIO_DEVICE_GET_INFO` reply.
pub fn encode_device_info(i: &vfio_device_info) -> Vec<u8> {
    [
        i.argsz,
        i.flags,
        i.num_regions,
        i.num_irqs,
        i.cap_offset,
        i.pad,
    ]
    .iter()
    .flat_map(|v| v.to_le_bytes())
    .collect()
}

/// Decodes the fixed part of a `VFIO_DEVICE_GET_REGION_INFO` reply.
pub fn parse_region_info(b: &[u8]) -> Result<vfio_region_info, UapiError> {
    need(b, size_of::<vfio_region_info>())?;
    let f = |at| rd_u32(b, at).unwrap_or_default();
    Ok(vfio_region_info {
        argsz: f(0),
        flags: f(4),
        index: f(8),
        cap_offset: f(12),
        size: rd_u64(b, 16).unwrap_or_default(),
        offset: rd_u64(b, 24).unwrap_or_default(),
    })
}

/// Encodes the fixed part of a `VFIO_DEVICE_GET_REGION_INFO` reply.
pub fn encode_region_info(i: &vfio_region_info) -> Vec<u8> {
    let mut out = Vec::with_capacity(size_of::<vfio_region_info>());
    for v in [i.argsz, i.flags, i.index, i.cap_offset] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&i.size.to_le_bytes());
    out.extend_from_slice(&i.offset.to_le_bytes());
    out
}

/// One capability found in a chain: its header fields and where it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapRef {
    /// Capability ID.
    pub id: u16,
    /// Capability header version.
    pub version: u16,
    /// Offset of the header from the start of the reply buffer.
    pub offset: u32,
}

/// Walks the capability chain of a `vfio_device_info` or
/// `vfio_region_info` reply.
///
/// `buf` is the whole reply (fixed part included, cut to `argsz`) and
/// `first` its `cap_offset`; 0 means "no capabilities".  The kernel lays
/// capabilities out in increasing order, so a `next` that does not move
/// forward is treated as a loop.
pub fn parse_cap_chain(buf: &[u8], first: u32) -> Result<Vec<CapRef>, UapiError> {
    let mut caps = Vec::new();
    let mut at = first;
    let mut prev: Option<u32> = None;
    while at != 0 {
        if let Some(p) = prev {
            if at <= p {
                return Err(UapiError::Loop { from: p, next: at });
            }
        }
        if caps.len() == MAX_CAPS {
            return Err(UapiError::TooManyCaps);
        }
        if at % 4 != 0 {
            return Err(UapiError::Misaligned { offset: at });
        }
        let start = usize::try_from(at).unwrap_or(usize::MAX);
        if start >= buf.len() {
            return Err(UapiError::OffsetOutOfRange {
                offset: at,
                len: buf.len(),
            });
        }
        let hdr = parse_cap_header(&buf[start..])
            .map_err(|_| UapiError::HeaderTruncated { offset: at })?;
        caps.push(CapRef {
            id: hdr.id,
            version: hdr.version,
            offset: at,
        });
        prev = Some(at);
        at = hdr.next;
    }
    Ok(caps)
}

/// Returns the first capability with ID `id` in a parsed chain.
pub fn find_cap(chain: &[CapRef], id: u16) -> Option<CapRef> {
    chain.iter().copied().find(|c| c.id == id)
}

/// Returns the bytes of `cap` (header included): from its offset up to the
/// next capability in the chain or the end of `buf`.
///
/// Returns an empty slice if `cap` does not lie inside `buf`.
pub fn cap_bytes<'a>(buf: &'a [u8], chain: &[CapRef], cap: &CapRef) -> &'a [u8] {
    let start = usize::try_from(cap.offset).unwrap_or(usize::MAX);
    let end = chain
        .iter()
        .filter(|c| c.offset > cap.offset)
        .map(|c| usize::try_from(c.offset).unwrap_or(usize::MAX))
        .min()
        .unwrap_or(buf.len())
        .min(buf.len());
    buf.get(start..end).unwrap_or(&[])
}

/// Lays capabilities out one after the other, as the kernel does, for a
/// reply whose capability area starts at `base_offset` (the reply's
/// `cap_offset`).
///
/// Each element of `caps` is one capability with its 8-byte header (the
/// `next` field is overwritten).  Each is padded to a multiple of 8 bytes;
/// an element shorter than a header is padded to one.  Returns the bytes to
/// append at `base_offset`.
pub fn encode_cap_chain(base_offset: u32, caps: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    let mut starts = Vec::with_capacity(caps.len());
    for cap in caps {
        starts.push(out.len());
        out.extend_from_slice(cap);
        let padded = out.len().max(starts[starts.len() - 1] + CAP_HEADER_SIZE);
        out.resize(padded.next_multiple_of(8), 0);
    }
    for (i, &start) in starts.iter().enumerate() {
        let next = match starts.get(i + 1) {
            Some(&n) => base_offset.saturating_add(u32::try_from(n).unwrap_or(u32::MAX)),
            None => 0,
        };
        out[start + 4..start + 8].copy_from_slice(&next.to_le_bytes());
    }
    out
}

/// The encoded header of a capability `id` of `version`, to which the
/// caller appends the body.
fn cap_start(id: u32, version: u16, next: u32) -> Vec<u8> {
    encode_cap_header(&vfio_info_cap_header {
        id: u16::try_from(id).unwrap_or(u16::MAX),
        version,
        next,
    })
    .to_vec()
}

fn check_header(cap: &[u8], id: u32, version: u16) -> Result<(), UapiError> {
    let hdr = parse_cap_header(cap)?;
    let expected = u16::try_from(id).unwrap_or(u16::MAX);
    if hdr.id != expected {
        return Err(UapiError::WrongCapId {
            expected,
            found: hdr.id,
        });
    }
    if hdr.version != version {
        return Err(UapiError::UnsupportedCapVersion {
            id: hdr.id,
            version: hdr.version,
        });
    }
    Ok(())
}

/// The `VFIO_REGION_INFO_CAP_TYPE` capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionTypeCap {
    /// Region type, e.g. [`VFIO_REGION_TYPE_CXL`].
    pub ty: u32,
    /// Region subtype, e.g. [`VFIO_REGION_SUBTYPE_CXL_COMP_REGS`].
    pub subtype: u32,
}

impl RegionTypeCap {
    /// Decodes the capability from its bytes (header included).
    pub fn parse(cap: &[u8]) -> Result<Self, UapiError> {
        check_header(
            cap,
            VFIO_REGION_INFO_CAP_TYPE,
            VFIO_REGION_INFO_CAP_TYPE_VERSION,
        )?;
        need(cap, size_of::<vfio_region_info_cap_type>())?;
        Ok(Self {
            ty: rd_u32(cap, 8).unwrap_or_default(),
            subtype: rd_u32(cap, 12).unwrap_or_default(),
        })
    }

    /// Encodes the capability (16 bytes) with the given `next` pointer.
    pub fn encode(&self, next: u32) -> Vec<u8> {
        let mut out = cap_start(
            VFIO_REGION_INFO_CAP_TYPE,
            VFIO_REGION_INFO_CAP_TYPE_VERSION,
            next,
        );
        out.extend_from_slice(&self.ty.to_le_bytes());
        out.extend_from_slice(&self.subtype.to_le_bytes());
        out
    }

    /// True for the CXL type with the given subtype.
    pub fn is_cxl(&self, subtype: u32) -> bool {
        self.ty == VFIO_REGION_TYPE_CXL && self.subtype == subtype
    }

    /// True for either CXL region type ([`VFIO_REGION_TYPE_CXL`] or the
    /// earlier v4 variant's [`VFIO_REGION_TYPE_CXL_EARLY_V4`]) with the
    /// given subtype.
    pub fn is_cxl_of_any_variant(&self, subtype: u32) -> bool {
        is_cxl_region_type(self.ty) && self.subtype == subtype
    }
}

/// True if `ty` is a region type some posting gives the CXL regions.
pub fn is_cxl_region_type(ty: u32) -> bool {
    ty == VFIO_REGION_TYPE_CXL || ty == VFIO_REGION_TYPE_CXL_EARLY_V4
}

/// The `VFIO_REGION_INFO_CAP_SPARSE_MMAP` capability: which parts of a
/// region may be mapped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SparseMmapCap {
    /// `(offset, size)` of each mappable area, offsets relative to the region.
    pub areas: Vec<(u64, u64)>,
}

/// Size of the fixed part of the sparse-mmap capability (header,
/// `nr_areas`, reserved).
const SPARSE_FIXED: usize = CAP_HEADER_SIZE + 8;
const SPARSE_AREA: usize = size_of::<vfio_region_sparse_mmap_area>();

impl SparseMmapCap {
    /// Decodes the capability from its bytes (header included).
    pub fn parse(cap: &[u8]) -> Result<Self, UapiError> {
        check_header(
            cap,
            VFIO_REGION_INFO_CAP_SPARSE_MMAP,
            VFIO_REGION_INFO_CAP_SPARSE_MMAP_VERSION,
        )?;
        need(cap, SPARSE_FIXED)?;
        let nr_areas = rd_u32(cap, CAP_HEADER_SIZE).unwrap_or_default();
        let fit = (cap.len() - SPARSE_FIXED) / SPARSE_AREA;
        let n = usize::try_from(nr_areas).unwrap_or(usize::MAX);
        if n > fit {
            return Err(UapiError::TooManyAreas { nr_areas, fit });
        }
        let areas = (0..n)
            .map(|i| {
                let at = SPARSE_FIXED + i * SPARSE_AREA;
                let a = vfio_region_sparse_mmap_area {
                    offset: rd_u64(cap, at).unwrap_or_default(),
                    size: rd_u64(cap, at + 8).unwrap_or_default(),
                };
                (a.offset, a.size)
            })
            .collect();
        Ok(Self { areas })
    }

    /// Encodes the capability with the given `next` pointer.
    pub fn encode(&self, next: u32) -> Vec<u8> {
        let mut out = cap_start(
            VFIO_REGION_INFO_CAP_SPARSE_MMAP,
            VFIO_REGION_INFO_CAP_SPARSE_MMAP_VERSION,
            next,
        );
        let n = u32::try_from(self.areas.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        for &(offset, size) in &self.areas {
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
        }
        out
    }
}

/// v4's `VFIO_REGION_INFO_CAP_CXL_COMP_REGS` capability on the `COMP_REGS`
/// region: where the HDM decoder block (which region offset 0 is) lies in
/// the component BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompRegsCap {
    /// Index of the BAR holding the component registers.
    pub bar: u32,
    /// Offset of the HDM Decoder Capability block from the start of that BAR.
    pub hdm_offset: u64,
}

impl CompRegsCap {
    /// Decodes the capability from its bytes (header included).  Bytes past
    /// the known fields are ignored, so that a later version of the
    /// structure that appends fields still parses.
    pub fn parse(cap: &[u8]) -> Result<Self, UapiError> {
        check_header(
            cap,
            VFIO_REGION_INFO_CAP_CXL_COMP_REGS,
            VFIO_REGION_INFO_CAP_CXL_COMP_REGS_VERSION,
        )?;
        need(cap, CXL_COMP_REGS_CAP_SIZE)?;
        Ok(Self {
            bar: rd_u32(cap, CAP_HEADER_SIZE).unwrap_or_default(),
            hdm_offset: rd_u64(cap, CAP_HEADER_SIZE + 8).unwrap_or_default(),
        })
    }

    /// Encodes the capability ([`CXL_COMP_REGS_CAP_SIZE`] bytes) with the
    /// given `next` pointer.
    pub fn encode(&self, next: u32) -> Vec<u8> {
        let mut out = cap_start(
            VFIO_REGION_INFO_CAP_CXL_COMP_REGS,
            VFIO_REGION_INFO_CAP_CXL_COMP_REGS_VERSION,
            next,
        );
        out.extend_from_slice(&self.bar.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.hdm_offset.to_le_bytes());
        out
    }
}

/// The CXL device-info capability, in whichever layout the host uses.
///
/// Field names follow each posting's own structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CxlDeviceInfo {
    /// Second posting.
    V2 {
        /// BAR holding the component block.
        hdm_regs_bar_index: u8,
        /// `VFIO_CXL_V2_*` flags.
        flags: u32,
        /// Offset in the BAR of the capability array (block + 0x1000).
        hdm_regs_offset: u64,
        /// Region index of the memory ("DPA") region.
        dpa_region_index: u32,
        /// Region index of `COMP_REGS`.
        comp_regs_region_index: u32,
    },
    /// Third posting.
    V3 {
        /// `VFIO_CXL_V3_*` flags.
        flags: u32,
        /// Region index of the memory region.
        hdm_region_idx: u32,
        /// Region index of `COMP_REGS`.
        comp_reg_region_idx: u32,
        /// BAR holding the component block.
        comp_reg_bar: u32,
        /// Offset of the component block in that BAR.
        comp_reg_offset: u64,
        /// Size of the component block.
        comp_reg_size: u64,
    },
    /// Agreed fourth posting: only flags; the rest moves to region
    /// capabilities.
    V4 {
        /// Flags.
        flags: u32,
    },
}

impl CxlDeviceInfo {
    /// Decodes the capability from `body`, the bytes that follow its 8-byte
    /// header, up to the next capability or the end of the reply (see
    /// [`cap_bytes`]).  The layout is chosen by length: 24 bytes is v2, 40
    /// is v3, 4 or 8 (padded) is v4.
    pub fn parse(body: &[u8]) -> Result<Self, UapiError> {
        let u32_at = |at| rd_u32(body, at).unwrap_or_default();
        let u64_at = |at| rd_u64(body, at).unwrap_or_default();
        match body.len() + CAP_HEADER_SIZE {
            CXL_CAP_V2_SIZE => {
                let hdm_regs_offset = u64_at(8);
                if hdm_regs_offset < crate::component::CAP_ARRAY_OFFSET {
                    return Err(UapiError::HdmOffsetBelowCapArray { hdm_regs_offset });
                }
                Ok(Self::V2 {
                    hdm_regs_bar_index: body[0],
                    flags: u32_at(4),
                    hdm_regs_offset,
                    dpa_region_index: u32_at(16),
                    comp_regs_region_index: u32_at(20),
                })
            }
            CXL_CAP_V3_SIZE => Ok(Self::V3 {
                flags: u32_at(0),
                hdm_region_idx: u32_at(4),
                comp_reg_region_idx: u32_at(8),
                comp_reg_bar: u32_at(12),
                comp_reg_offset: u64_at(24),
                comp_reg_size: u64_at(32),
            }),
            12 | CXL_CAP_V4_SIZE => Ok(Self::V4 { flags: u32_at(0) }),
            len => Err(UapiError::UnknownCxlLayout { len }),
        }
    }

    /// Decodes the capability from its bytes with the header, checking the
    /// header's ID and version first.
    pub fn parse_cap(cap: &[u8]) -> Result<Self, UapiError> {
        check_header(
            cap,
            u32::from(VFIO_DEVICE_INFO_CAP_CXL),
            VFIO_DEVICE_INFO_CAP_CXL_VERSION,
        )?;
        Self::parse(&cap[CAP_HEADER_SIZE..])
    }

    /// Encodes the capability, header included (ID 6, version 1), as the
    /// kernel of that posting would.
    pub fn encode(&self, next: u32) -> Vec<u8> {
        let mut out = cap_start(
            u32::from(VFIO_DEVICE_INFO_CAP_CXL),
            VFIO_DEVICE_INFO_CAP_CXL_VERSION,
            next,
        );
        match *self {
            Self::V2 {
                hdm_regs_bar_index,
                flags,
                hdm_regs_offset,
                dpa_region_index,
                comp_regs_region_index,
            } => {
                out.extend_from_slice(&[hdm_regs_bar_index, 0, 0, 0]);
                out.extend_from_slice(&flags.to_le_bytes());
                out.extend_from_slice(&hdm_regs_offset.to_le_bytes());
                out.extend_from_slice(&dpa_region_index.to_le_bytes());
                out.extend_from_slice(&comp_regs_region_index.to_le_bytes());
            }
            Self::V3 {
                flags,
                hdm_region_idx,
                comp_reg_region_idx,
                comp_reg_bar,
                comp_reg_offset,
                comp_reg_size,
            } => {
                for v in [flags, hdm_region_idx, comp_reg_region_idx, comp_reg_bar] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                // `reserved` and the alignment hole before the u64s.
                out.extend_from_slice(&[0; 8]);
                out.extend_from_slice(&comp_reg_offset.to_le_bytes());
                out.extend_from_slice(&comp_reg_size.to_le_bytes());
            }
            Self::V4 { flags } => {
                out.extend_from_slice(&flags.to_le_bytes());
                out.extend_from_slice(&[0; 4]);
            }
        }
        out
    }

    /// The raw flags word.
    pub fn flags(&self) -> u32 {
        match *self {
            Self::V2 { flags, .. } | Self::V3 { flags, .. } | Self::V4 { flags } => flags,
        }
    }

    /// True if the host reports decoder 0 committed by firmware (bit 0 in
    /// every posting).
    pub fn firmware_committed(&self) -> bool {
        self.flags() & VFIO_CXL_V2_FIRMWARE_COMMITTED != 0
    }

    /// The memory region's index, if this layout reports it.
    pub fn memory_region_index(&self) -> Option<u32> {
        match *self {
            Self::V2 {
                dpa_region_index, ..
            } => Some(dpa_region_index),
            Self::V3 { hdm_region_idx, .. } => Some(hdm_region_idx),
            Self::V4 { .. } => None,
        }
    }

    /// The `COMP_REGS` region's index, if this layout reports it.
    pub fn comp_regs_region_index(&self) -> Option<u32> {
        match *self {
            Self::V2 {
                comp_regs_region_index,
                ..
            } => Some(comp_regs_region_index),
            Self::V3 {
                comp_reg_region_idx,
                ..
            } => Some(comp_reg_region_idx),
            Self::V4 { .. } => None,
        }
    }

    /// The BAR holding the component block, if this layout reports it.
    pub fn component_bar(&self) -> Option<u32> {
        match *self {
            Self::V2 {
                hdm_regs_bar_index, ..
            } => Some(u32::from(hdm_regs_bar_index)),
            Self::V3 { comp_reg_bar, .. } => Some(comp_reg_bar),
            Self::V4 { .. } => None,
        }
    }

    /// Offset of the component block (not the capability array) in its
    /// BAR, if this layout reports it.
    pub fn component_block_offset(&self) -> Option<u64> {
        match *self {
            Self::V2 {
                hdm_regs_offset, ..
            } => hdm_regs_offset.checked_sub(crate::component::CAP_ARRAY_OFFSET),
            Self::V3 {
                comp_reg_offset, ..
            } => Some(comp_reg_offset),
            Self::V4 { .. } => None,
        }
    }

    /// The uAPI posting this layout belongs to, when it is one this crate
    /// models as a [`UapiVersion`].
    pub fn uapi_version(&self) -> Option<UapiVersion> {
        match self {
            Self::V2 { .. } => Some(UapiVersion::V2),
            Self::V3 { .. } => Some(UapiVersion::V3),
            Self::V4 { .. } => None,
        }
    }
}

/// The type and subtype a `vfio_region_info` reply (capabilities included)
/// declares with `VFIO_REGION_INFO_CAP_TYPE`, if any.  A malformed
/// capability chain is an error, not "no type": a host that sends one is
/// broken and must be refused.
pub fn region_info_type(info: &[u8]) -> Result<Option<(u32, u32)>, UapiError> {
    let region = parse_region_info(info)?;
    if region.flags & VFIO_REGION_INFO_FLAG_CAPS == 0 || region.cap_offset == 0 {
        return Ok(None);
    }
    let chain = parse_cap_chain(info, region.cap_offset)?;
    match find_cap(&chain, VFIO_REGION_INFO_CAP_TYPE as u16) {
        Some(cap) => {
            let ty = RegionTypeCap::parse(cap_bytes(info, &chain, &cap))?;
            Ok(Some((ty.ty, ty.subtype)))
        }
        None => Ok(None),
    }
}

/// The v4 [`CompRegsCap`] of a `vfio_region_info` reply (capabilities
/// included), if the region carries one.  A malformed chain or capability
/// is an error.
pub fn region_info_comp_regs_cap(info: &[u8]) -> Result<Option<CompRegsCap>, UapiError> {
    let region = parse_region_info(info)?;
    if region.flags & VFIO_REGION_INFO_FLAG_CAPS == 0 || region.cap_offset == 0 {
        return Ok(None);
    }
    let chain = parse_cap_chain(info, region.cap_offset)?;
    match find_cap(&chain, VFIO_REGION_INFO_CAP_CXL_COMP_REGS as u16) {
        Some(cap) => CompRegsCap::parse(cap_bytes(info, &chain, &cap)).map(Some),
        None => Ok(None),
    }
}

/// The CXL capability of a kernel `vfio_device_info` reply (capabilities
/// included), if the device declares one.
pub fn device_info_cxl(info: &[u8]) -> Result<Option<CxlDeviceInfo>, UapiError> {
    let device = parse_device_info(info)?;
    if device.flags & VFIO_DEVICE_FLAGS_CAPS == 0 || device.cap_offset == 0 {
        return Ok(None);
    }
    let chain = parse_cap_chain(info, device.cap_offset)?;
    match find_cap(&chain, VFIO_DEVICE_INFO_CAP_CXL) {
        Some(cap) => CxlDeviceInfo::parse_cap(cap_bytes(info, &chain, &cap)).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2() -> CxlDeviceInfo {
        CxlDeviceInfo::V2 {
            hdm_regs_bar_index: 2,
            flags: VFIO_CXL_V2_FIRMWARE_COMMITTED | VFIO_CXL_V2_CACHE_CAPABLE,
            hdm_regs_offset: 0x2_1000,
            dpa_region_index: 9,
            comp_regs_region_index: 10,
        }
    }

    fn v3() -> CxlDeviceInfo {
        CxlDeviceInfo::V3 {
            flags: VFIO_CXL_V3_HOST_FIRMWARE_COMMITTED,
            hdm_region_idx: 10,
            comp_reg_region_idx: 9,
            comp_reg_bar: 0,
            comp_reg_offset: 0x4_0000,
            comp_reg_size: 0x1_0000,
        }
    }

    #[test]
    fn constants_match_the_uapi_notes() {
        assert_eq!(VFIO_REGION_TYPE_CXL, 0x8000_1E98);
        assert_eq!(VFIO_DEVICE_FLAGS_CXL, 0x200);
        assert_eq!(CAP_HEADER_SIZE, 8);
    }

    #[test]
    fn cxl_cap_v2_layout() {
        let b = v2().encode(0x40);
        assert_eq!(b.len(), CXL_CAP_V2_SIZE);
        assert_eq!(&b[0..8], &[6, 0, 1, 0, 0x40, 0, 0, 0]);
        assert_eq!(b[8], 2);
        assert_eq!(rd_u32(&b, 12), Some(3));
        assert_eq!(rd_u64(&b, 16), Some(0x2_1000));
        assert_eq!(rd_u32(&b, 24), Some(9));
        assert_eq!(rd_u32(&b, 28), Some(10));
        assert_eq!(CxlDeviceInfo::parse_cap(&b), Ok(v2()));
    }

    #[test]
    fn cxl_cap_v3_layout() {
        let b = v3().encode(0);
        assert_eq!(b.len(), CXL_CAP_V3_SIZE);
        assert_eq!(rd_u32(&b, 8), Some(1));
        assert_eq!(rd_u32(&b, 16), Some(9));
        assert_eq!(rd_u64(&b, 32), Some(0x4_0000));
        assert_eq!(rd_u64(&b, 40), Some(0x1_0000));
        assert_eq!(CxlDeviceInfo::parse(&b[8..]), Ok(v3()));
    }

    #[test]
    fn cxl_cap_v4_layout() {
        let v4 = CxlDeviceInfo::V4 { flags: 1 };
        let b = v4.encode(0);
        assert_eq!(b.len(), CXL_CAP_V4_SIZE);
        assert_eq!(CxlDeviceInfo::parse(&b[8..]), Ok(v4));
        assert_eq!(CxlDeviceInfo::parse(&b[8..12]), Ok(v4));
        assert_eq!(v4.memory_region_index(), None);
        assert_eq!(v4.component_block_offset(), None);
        assert_eq!(v4.uapi_version(), None);
    }

    #[test]
    fn cxl_cap_unknown_length_rejected() {
        assert_eq!(
            CxlDeviceInfo::parse(&[0; 20]),
            Err(UapiError::UnknownCxlLayout { len: 28 })
        );
        assert_eq!(
            CxlDeviceInfo::parse(&[]),
            Err(UapiError::UnknownCxlLayout { len: 8 })
        );
    }

    #[test]
    fn cxl_cap_v2_offset_below_cap_array_rejected() {
        let mut b = v2().encode(0);
        b[16..24].copy_from_slice(&0x800u64.to_le_bytes());
        assert_eq!(
            CxlDeviceInfo::parse_cap(&b),
            Err(UapiError::HdmOffsetBelowCapArray {
                hdm_regs_offset: 0x800
            })
        );
    }

    #[test]
    fn cxl_cap_header_checked() {
        let mut b = v3().encode(0);
        b[0] = 5;
        assert_eq!(
            CxlDeviceInfo::parse_cap(&b),
            Err(UapiError::WrongCapId {
                expected: 6,
                found: 5
            })
        );
        let mut b_ver = v3().encode(0);
        b_ver[2] = 2;
        assert_eq!(
            CxlDeviceInfo::parse_cap(&b_ver),
            Err(UapiError::UnsupportedCapVersion { id: 6, version: 2 })
        );
    }

    #[test]
    fn cxl_cap_normalizing_accessors() {
        let a = v2();
        assert_eq!(a.memory_region_index(), Some(9));
        assert_eq!(a.comp_regs_region_index(), Some(10));
        assert_eq!(a.component_bar(), Some(2));
        assert_eq!(a.component_block_offset(), Some(0x2_0000));
        assert!(a.firmware_committed());
        assert_eq!(a.uapi_version(), Some(UapiVersion::V2));
        let b = v3();
        assert_eq!(b.memory_region_index(), Some(10));
        assert_eq!(b.comp_regs_region_index(), Some(9));
        assert_eq!(b.component_bar(), Some(0));
        assert_eq!(b.component_block_offset(), Some(0x4_0000));
        assert_eq!(b.flags(), 1);
        assert_eq!(b.uapi_version(), Some(UapiVersion::V3));
    }

    /// A device-info reply with the given capabilities after the fixed part.
    fn device_info_reply(caps: &[Vec<u8>]) -> Vec<u8> {
        let base = size_of::<vfio_device_info>() as u32;
        let chain = encode_cap_chain(base, caps);
        let info = vfio_device_info {
            argsz: base + chain.len() as u32,
            flags: VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_CAPS | VFIO_DEVICE_FLAGS_CXL,
            num_regions: 11,
            num_irqs: 5,
            cap_offset: if caps.is_empty() { 0 } else { base },
            pad: 0,
        };
        let mut out = encode_device_info(&info);
        out.extend_from_slice(&chain);
        out
    }

    #[test]
    fn cap_chain_roundtrip_through_device_info() {
        let other = {
            let mut c = encode_cap_header(&vfio_info_cap_header {
                id: 5,
                version: 1,
                next: 0,
            })
            .to_vec();
            c.extend_from_slice(&[0xAA; 4]);
            c
        };
        let buf = device_info_reply(&[other, v3().encode(0)]);
        let info = parse_device_info(&buf).unwrap();
        assert_eq!(info.argsz as usize, buf.len());
        let chain = parse_cap_chain(&buf, info.cap_offset).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].offset, 24);
        assert_eq!(chain[1].offset, 40);
        let cap = find_cap(&chain, VFIO_DEVICE_INFO_CAP_CXL).unwrap();
        let bytes = cap_bytes(&buf, &chain, &cap);
        assert_eq!(CxlDeviceInfo::parse_cap(bytes), Ok(v3()));
        assert_eq!(find_cap(&chain, 99), None);
    }

    #[test]
    fn cap_chain_empty_when_first_is_zero() {
        let buf = device_info_reply(&[]);
        assert_eq!(parse_cap_chain(&buf, 0), Ok(vec![]));
    }

    #[test]
    fn cap_chain_rejects_offset_out_of_range() {
        assert_eq!(
            parse_cap_chain(&[0; 32], 32),
            Err(UapiError::OffsetOutOfRange {
                offset: 32,
                len: 32
            })
        );
    }

    #[test]
    fn cap_chain_rejects_truncated_header() {
        assert_eq!(
            parse_cap_chain(&[0; 28], 24),
            Err(UapiError::HeaderTruncated { offset: 24 })
        );
    }

    #[test]
    fn cap_chain_rejects_misaligned_offset() {
        assert_eq!(
            parse_cap_chain(&[0; 64], 26),
            Err(UapiError::Misaligned { offset: 26 })
        );
    }

    #[test]
    fn cap_chain_rejects_revisit() {
        let mut buf = vec![0u8; 48];
        buf[24..32].copy_from_slice(&encode_cap_header(&vfio_info_cap_header {
            id: 1,
            version: 1,
            next: 24,
        }));
        assert_eq!(
            parse_cap_chain(&buf, 24),
            Err(UapiError::Loop { from: 24, next: 24 })
        );
    }

    #[test]
    fn cap_chain_rejects_backward_pointer() {
        let mut buf = vec![0u8; 64];
        buf[24..32].copy_from_slice(&encode_cap_header(&vfio_info_cap_header {
            id: 1,
            version: 1,
            next: 40,
        }));
        buf[40..48].copy_from_slice(&encode_cap_header(&vfio_info_cap_header {
            id: 2,
            version: 1,
            next: 32,
        }));
        assert_eq!(
            parse_cap_chain(&buf, 24),
            Err(UapiError::Loop { from: 40, next: 32 })
        );
    }

    #[test]
    fn cap_chain_rejects_too_many_caps() {
        let caps = vec![vec![1, 0, 1, 0, 0, 0, 0, 0]; MAX_CAPS + 1];
        let mut buf = vec![0u8; 8];
        buf.extend_from_slice(&encode_cap_chain(8, &caps));
        assert_eq!(parse_cap_chain(&buf, 8), Err(UapiError::TooManyCaps));
        let mut ok = vec![0u8; 8];
        ok.extend_from_slice(&encode_cap_chain(8, &caps[..MAX_CAPS]));
        assert_eq!(parse_cap_chain(&ok, 8).unwrap().len(), MAX_CAPS);
    }

    #[test]
    fn encode_cap_chain_pads_to_8_bytes() {
        let chain = encode_cap_chain(32, &[vec![1, 0, 1, 0], vec![2, 0, 1, 0, 0, 0, 0, 0, 9]]);
        assert_eq!(chain.len(), 8 + 16);
        assert_eq!(rd_u32(&chain, 4), Some(40));
        assert_eq!(rd_u32(&chain, 12), Some(0));
    }

    #[test]
    fn region_type_cap_roundtrip() {
        let c = RegionTypeCap {
            ty: VFIO_REGION_TYPE_CXL,
            subtype: VFIO_REGION_SUBTYPE_CXL_COMP_REGS,
        };
        let b = c.encode(0x50);
        assert_eq!(b.len(), 16);
        assert_eq!(&b[0..8], &[2, 0, 1, 0, 0x50, 0, 0, 0]);
        assert_eq!(RegionTypeCap::parse(&b), Ok(c));
        assert!(c.is_cxl(VFIO_REGION_SUBTYPE_CXL_COMP_REGS));
        assert!(!c.is_cxl(VFIO_REGION_SUBTYPE_CXL));
    }

    #[test]
    fn region_type_cap_rejects_short_or_wrong() {
        let b = RegionTypeCap { ty: 1, subtype: 2 }.encode(0);
        assert_eq!(
            RegionTypeCap::parse(&b[..12]),
            Err(UapiError::Truncated { need: 16, have: 12 })
        );
        assert_eq!(
            RegionTypeCap::parse(&SparseMmapCap::default().encode(0)),
            Err(UapiError::WrongCapId {
                expected: 2,
                found: 1
            })
        );
    }

    #[test]
    fn sparse_mmap_cap_roundtrip() {
        let c = SparseMmapCap {
            areas: vec![(0, 0x2_0000), (0x3_0000, 0x1_0000)],
        };
        let b = c.encode(0);
        assert_eq!(b.len(), 16 + 32);
        assert_eq!(rd_u32(&b, 8), Some(2));
        assert_eq!(SparseMmapCap::parse(&b), Ok(c));
    }

    #[test]
    fn sparse_mmap_cap_rejects_too_many_areas() {
        let mut b = SparseMmapCap {
            areas: vec![(0, 0x1000)],
        }
        .encode(0);
        b[8] = 3;
        assert_eq!(
            SparseMmapCap::parse(&b),
            Err(UapiError::TooManyAreas {
                nr_areas: 3,
                fit: 1
            })
        );
        assert_eq!(
            SparseMmapCap::parse(&b[..12]),
            Err(UapiError::Truncated { need: 16, have: 12 })
        );
    }

    #[test]
    fn region_info_roundtrip_with_caps() {
        let caps = [
            RegionTypeCap {
                ty: VFIO_REGION_TYPE_CXL,
                subtype: VFIO_REGION_SUBTYPE_CXL,
            }
            .encode(0),
            SparseMmapCap {
                areas: vec![(0, 0x1000)],
            }
            .encode(0),
        ];
        let base = size_of::<vfio_region_info>() as u32;
        let chain = encode_cap_chain(base, &caps);
        let info = vfio_region_info {
            argsz: base + chain.len() as u32,
            flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_CAPS,
            index: 10,
            cap_offset: base,
            size: 1 << 30,
            offset: 10 << 40,
        };
        let mut buf = encode_region_info(&info);
        buf.extend_from_slice(&chain);
        assert_eq!(parse_region_info(&buf), Ok(info));
        let chain_caps = parse_cap_chain(&buf, info.cap_offset).unwrap();
        let t = find_cap(&chain_caps, VFIO_REGION_INFO_CAP_TYPE as u16).unwrap();
        assert!(RegionTypeCap::parse(cap_bytes(&buf, &chain_caps, &t))
            .unwrap()
            .is_cxl(VFIO_REGION_SUBTYPE_CXL));
        let s = find_cap(&chain_caps, VFIO_REGION_INFO_CAP_SPARSE_MMAP as u16).unwrap();
        assert_eq!(
            SparseMmapCap::parse(cap_bytes(&buf, &chain_caps, &s))
                .unwrap()
                .areas,
            vec![(0, 0x1000)]
        );
        assert_eq!(
            parse_region_info(&buf[..31]),
            Err(UapiError::Truncated { need: 32, have: 31 })
        );
    }

    #[test]
    fn cap_bytes_outside_buffer_is_empty() {
        let c = CapRef {
            id: 1,
            version: 1,
            offset: 100,
        };
        assert!(cap_bytes(&[0; 8], &[c], &c).is_empty());
    }

    #[test]
    fn v4_constants() {
        assert_eq!(VFIO_REGION_SUBTYPE_CXL_MEM, 1);
        assert_eq!(VFIO_REGION_TYPE_CXL_EARLY_V4, 4);
        assert!(is_cxl_region_type(0x8000_1E98));
        assert!(is_cxl_region_type(4));
        assert!(!is_cxl_region_type(0x8000_10DE));
        let early = RegionTypeCap { ty: 4, subtype: 2 };
        assert!(early.is_cxl_of_any_variant(VFIO_REGION_SUBTYPE_CXL_COMP_REGS));
        assert!(!early.is_cxl(VFIO_REGION_SUBTYPE_CXL_COMP_REGS));
        assert!(!early.is_cxl_of_any_variant(VFIO_REGION_SUBTYPE_CXL_MEM));
    }

    #[test]
    fn comp_regs_cap_layout_and_roundtrip() {
        let c = CompRegsCap {
            bar: 2,
            hdm_offset: 0x2_1100,
        };
        let b = c.encode(0x60);
        assert_eq!(b.len(), CXL_COMP_REGS_CAP_SIZE);
        assert_eq!(&b[0..8], &[6, 0, 1, 0, 0x60, 0, 0, 0]);
        assert_eq!(rd_u32(&b, 8), Some(2));
        assert_eq!(rd_u32(&b, 12), Some(0));
        assert_eq!(rd_u64(&b, 16), Some(0x2_1100));
        assert_eq!(CompRegsCap::parse(&b), Ok(c));
        // A longer (later) structure still parses.
        let mut longer = b;
        longer.extend_from_slice(&[0xAA; 8]);
        assert_eq!(CompRegsCap::parse(&longer), Ok(c));
    }

    #[test]
    fn comp_regs_cap_rejects_bad_input() {
        let b = CompRegsCap {
            bar: 0,
            hdm_offset: 0x1100,
        }
        .encode(0);
        assert_eq!(
            CompRegsCap::parse(&b[..20]),
            Err(UapiError::Truncated { need: 24, have: 20 })
        );
        assert_eq!(
            CompRegsCap::parse(&b[..4]),
            Err(UapiError::Truncated { need: 8, have: 4 })
        );
        let mut wrong_version = b;
        wrong_version[2] = 2;
        assert_eq!(
            CompRegsCap::parse(&wrong_version),
            Err(UapiError::UnsupportedCapVersion { id: 6, version: 2 })
        );
        assert_eq!(
            CompRegsCap::parse(&RegionTypeCap { ty: 1, subtype: 2 }.encode(0)),
            Err(UapiError::WrongCapId {
                expected: 6,
                found: 2
            })
        );
    }

    #[test]
    fn region_info_comp_regs_cap_found_next_to_the_type() {
        let ty = RegionTypeCap {
            ty: VFIO_REGION_TYPE_CXL,
            subtype: VFIO_REGION_SUBTYPE_CXL_COMP_REGS,
        };
        let geo = CompRegsCap {
            bar: 0,
            hdm_offset: 0x4_1100,
        };
        let info = region_info_with_caps(&[ty.encode(0), geo.encode(0)]);
        assert_eq!(region_info_comp_regs_cap(&info), Ok(Some(geo)));
        assert_eq!(
            region_info_type(&info),
            Ok(Some((
                VFIO_REGION_TYPE_CXL,
                VFIO_REGION_SUBTYPE_CXL_COMP_REGS
            )))
        );
        let without = region_info_with_caps(&[ty.encode(0)]);
        assert_eq!(region_info_comp_regs_cap(&without), Ok(None));
        assert_eq!(
            region_info_comp_regs_cap(&region_info_with_caps(&[])),
            Ok(None)
        );
        // A truncated capability at the end of the reply is an error.
        let mut cut = region_info_with_caps(&[ty.encode(0), geo.encode(0)]);
        cut.truncate(cut.len() - 8);
        assert!(matches!(
            region_info_comp_regs_cap(&cut),
            Err(UapiError::Truncated { .. })
        ));
    }

    #[test]
    fn errors_display() {
        assert!(UapiError::TooManyCaps.to_string().contains("64"));
    }

    fn region_info_with_caps(caps: &[Vec<u8>]) -> Vec<u8> {
        let base = size_of::<vfio_region_info>() as u32;
        let chain = encode_cap_chain(base, caps);
        let info = vfio_region_info {
            argsz: base + chain.len() as u32,
            flags: VFIO_REGION_INFO_FLAG_CAPS,
            index: 9,
            cap_offset: if caps.is_empty() { 0 } else { base },
            size: 0x10000,
            offset: 0,
        };
        let mut out = encode_region_info(&info);
        out.extend_from_slice(&chain);
        out
    }

    #[test]
    fn region_info_type_finds_the_type_capability() {
        let ty = RegionTypeCap {
            ty: VFIO_REGION_TYPE_CXL,
            subtype: VFIO_REGION_SUBTYPE_CXL_COMP_REGS,
        };
        let info = region_info_with_caps(&[ty.encode(0)]);
        assert_eq!(
            region_info_type(&info),
            Ok(Some((
                VFIO_REGION_TYPE_CXL,
                VFIO_REGION_SUBTYPE_CXL_COMP_REGS
            )))
        );
    }

    #[test]
    fn region_info_type_is_none_without_capabilities() {
        let info = region_info_with_caps(&[]);
        assert_eq!(region_info_type(&info), Ok(None));
    }

    #[test]
    fn region_info_type_refuses_a_looping_chain() {
        let ty = RegionTypeCap {
            ty: VFIO_REGION_TYPE_CXL,
            subtype: VFIO_REGION_SUBTYPE_CXL,
        };
        let mut info = region_info_with_caps(&[ty.encode(0)]);
        let base = size_of::<vfio_region_info>();
        // Point the only capability's `next` at itself.
        info[base + 4..base + 8].copy_from_slice(&(base as u32).to_le_bytes());
        assert!(matches!(
            region_info_type(&info),
            Err(UapiError::Loop { .. })
        ));
    }
}
