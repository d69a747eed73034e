// SPDX-License-Identifier: GPL-2.0-or-later

//! The CXL.cachemem capability array of a component register block.
//!
//! A component register block is 64 KiB; its CXL.cachemem part starts at
//! [`CAP_ARRAY_OFFSET`] with a capability array: one header dword, then one
//! dword per capability pointing at that capability's structure (CXL 3.1
//! section 8.2.4).  The device needs the HDM decoder entry from it, and
//! it comes from the host, so [`CapabilityArray::parse`] checks everything
//! it relies on.

use std::fmt;

use bilge::prelude::*;

use crate::hdm;

/// Offset of the CXL.cachemem capability array in the component block.
pub const CAP_ARRAY_OFFSET: u64 = 0x1000;

/// Size of a component register block.
pub const COMPONENT_BLOCK_SIZE: u64 = 0x10000;

/// Capability ID of the array header itself ("CXL Capability").
pub const CAP_ID_CXL: u16 = 1;

/// Capability ID of the CXL RAS capability.
pub const CAP_ID_RAS: u16 = 2;

/// Capability ID of the CXL Security capability.
pub const CAP_ID_SECURITY: u16 = 3;

/// Capability ID of the CXL Link capability.
pub const CAP_ID_LINK: u16 = 4;

/// Capability ID of the CXL HDM Decoder capability.
pub const CAP_ID_HDM_DECODER: u16 = 5;

/// Capability ID of the CXL IDE capability.
pub const CAP_ID_IDE: u16 = 7;

/// Capability ID of the CXL Snoop Filter capability.
pub const CAP_ID_SNOOP_FILTER: u16 = 8;

/// Size of the RAS capability structure (status/mask/severity registers and
/// the 16-dword header log).
pub const RAS_CAP_SIZE: u64 = 0x58;

/// Size of the Link capability structure up to the Defeature register
/// (seven 64-bit registers); later revisions may be longer, so this is used
/// as a lower bound only.
pub const LINK_CAP_SIZE: u64 = 0x38;

/// Capability array header dword (CXL 3.1 8.2.4.1).
#[bitsize(32)]
#[derive(Clone, Copy, Default, PartialEq, Eq, DebugBits, FromBits)]
#[doc(alias = "CXL_Capability_Header")]
pub struct CapabilityArrayHeader {
    /// `CXL_Capability_ID`, always [`CAP_ID_CXL`].
    pub id: u16,
    /// `CXL_Capability_Version`.
    pub version: u4,
    /// `CXL_Cache_Mem_Version`.
    pub cache_mem_version: u4,
    /// `Array_Size`: number of entries that follow the header.
    pub array_size: u8,
}

/// One capability array entry dword (e.g. CXL 3.1 8.2.4.5 for HDM).
#[bitsize(32)]
#[derive(Clone, Copy, Default, PartialEq, Eq, DebugBits, FromBits)]
#[doc(alias = "CXL_HDM_Decoder_Capability_Header")]
pub struct CapabilityHeader {
    /// Capability ID.
    pub id: u16,
    /// Capability version.
    pub version: u4,
    /// Offset of the capability structure from the array header.
    pub pointer: u12,
}

/// A decoded capability array entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapabilityEntry {
    /// Capability ID.
    pub id: u16,
    /// Capability version (4 bits).
    pub version: u8,
    /// Offset of the structure from the array header (block offset 0x1000).
    pub pointer: u16,
}

impl From<CapabilityHeader> for CapabilityEntry {
    fn from(h: CapabilityHeader) -> Self {
        Self {
            id: h.id(),
            version: u8::from(h.version()),
            pointer: u16::from(h.pointer()),
        }
    }
}

impl From<CapabilityEntry> for CapabilityHeader {
    fn from(e: CapabilityEntry) -> Self {
        Self::new(e.id, u4::new(e.version & 0xF), u12::new(e.pointer & 0xFFF))
    }
}

/// Why a capability array was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapArrayError {
    /// Fewer than 4 bytes: no header.
    Truncated {
        /// Bytes given.
        len: usize,
    },
    /// The header's capability ID is not [`CAP_ID_CXL`].
    WrongHeaderId {
        /// ID found.
        id: u16,
    },
    /// The header announces no entries.
    NoEntries,
    /// The header announces more entries than the bytes hold.
    TooManyEntries {
        /// Entries announced.
        count: u8,
        /// Entries that fit.
        room: usize,
    },
    /// A capability structure lies (partly) outside the block.
    PointerOutOfBlock {
        /// Capability ID.
        id: u16,
        /// Its pointer.
        pointer: u16,
    },
    /// Two structures (or a structure and the array itself) overlap.
    Overlap {
        /// First capability ID (1 stands for the array itself).
        first: u16,
        /// Second capability ID.
        second: u16,
    },
    /// No HDM decoder capability in the array.
    HdmMissing,
}

impl fmt::Display for CapArrayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { len } => {
                write!(f, "capability array of {len} bytes has no header")
            }
            Self::WrongHeaderId { id } => write!(
                f,
                "capability array header has ID {id:#x}, expected {CAP_ID_CXL}"
            ),
            Self::NoEntries => write!(f, "capability array has no entries"),
            Self::TooManyEntries { count, room } => write!(
                f,
                "capability array announces {count} entries but only {room} fit"
            ),
            Self::PointerOutOfBlock { id, pointer } => write!(
                f,
                "capability {id:#x} at {pointer:#x} lies outside the component block"
            ),
            Self::Overlap { first, second } => {
                write!(f, "capabilities {first:#x} and {second:#x} overlap")
            }
            Self::HdmMissing => write!(f, "no HDM decoder capability"),
        }
    }
}

impl std::error::Error for CapArrayError {}

use crate::uapi::rd_u32 as dword;

/// A validated capability array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapabilityArray {
    header: CapabilityArrayHeader,
    entries: Vec<CapabilityEntry>,
}

impl CapabilityArray {
    /// Decodes and checks a capability array.
    ///
    /// `array` holds the bytes from the array header (block offset
    /// [`CAP_ARRAY_OFFSET`]) to the end of the block or of the readable
    /// part of it; structure bounds are checked against its length.  The
    /// size of structures this crate knows (RAS, Link, HDM decoder, whose
    /// size comes from its decoder count) is used for the overlap check;
    /// any other structure is taken to be at least one dword.
    pub fn parse(array: &[u8]) -> Result<Self, CapArrayError> {
        let header = CapabilityArrayHeader::from(
            dword(array, 0).ok_or(CapArrayError::Truncated { len: array.len() })?,
        );
        if header.id() != CAP_ID_CXL {
            return Err(CapArrayError::WrongHeaderId { id: header.id() });
        }
        let count = header.array_size();
        if count == 0 {
            return Err(CapArrayError::NoEntries);
        }
        let room = (array.len() / 4).saturating_sub(1);
        if usize::from(count) > room {
            return Err(CapArrayError::TooManyEntries { count, room });
        }
        let entries: Vec<CapabilityEntry> = (1..=usize::from(count))
            .map(|i| CapabilityHeader::from(dword(array, i * 4).unwrap_or_default()).into())
            .collect();

        // Extents of every structure, the array itself first.
        let mut spans = vec![(CAP_ID_CXL, 0u64, 4 * (u64::from(count) + 1))];
        for e in &entries {
            let start = u64::from(e.pointer);
            let len = known_size(e, array);
            let end = start + len;
            if end > array.len() as u64 {
                return Err(CapArrayError::PointerOutOfBlock {
                    id: e.id,
                    pointer: e.pointer,
                });
            }
            spans.push((e.id, start, end));
        }
        for (i, a) in spans.iter().enumerate() {
            for b in &spans[i + 1..] {
                if a.1 < b.2 && b.1 < a.2 {
                    return Err(CapArrayError::Overlap {
                        first: a.0,
                        second: b.0,
                    });
                }
            }
        }
        Ok(Self { header, entries })
    }

    /// The array header.
    pub fn header(&self) -> CapabilityArrayHeader {
        self.header
    }

    /// All entries, in array order.
    pub fn entries(&self) -> &[CapabilityEntry] {
        &self.entries
    }

    /// The first entry with capability ID `id`.
    pub fn find(&self, id: u16) -> Option<CapabilityEntry> {
        self.entries.iter().copied().find(|e| e.id == id)
    }

    /// The HDM decoder capability entry, which a CXL.mem device must have.
    pub fn hdm_decoder(&self) -> Result<CapabilityEntry, CapArrayError> {
        self.find(CAP_ID_HDM_DECODER)
            .ok_or(CapArrayError::HdmMissing)
    }
}

/// Bytes a structure occupies, as far as this crate knows.
fn known_size(e: &CapabilityEntry, array: &[u8]) -> u64 {
    match e.id {
        CAP_ID_RAS => RAS_CAP_SIZE,
        CAP_ID_LINK => LINK_CAP_SIZE,
        CAP_ID_HDM_DECODER => {
            // The decoder count lives in the structure's first dword; an
            // unreadable or reserved count still occupies the fixed part
            // and one decoder.
            let count = dword(array, usize::from(e.pointer))
                .and_then(|cap| hdm::decoder_count_from_encoding((cap & 0xF) as u8))
                .unwrap_or(1);
            hdm::block_size(count)
        }
        _ => 4,
    }
}

/// Builds a capability array: the header dword (ID [`CAP_ID_CXL`], version
/// 1, cache/mem version 1, entry count) then one dword per entry, all
/// little-endian.  At most 255 entries fit the 8-bit count; extra entries
/// are left out.  Versions and pointers are cut to their field widths.
pub fn build_capability_array(entries: &[CapabilityEntry]) -> Vec<u8> {
    let entries = &entries[..entries.len().min(usize::from(u8::MAX))];
    let count = u8::try_from(entries.len()).unwrap_or(u8::MAX);
    let header = CapabilityArrayHeader::new(CAP_ID_CXL, u4::new(1), u4::new(1), count);
    let mut out = u32::from(header).to_le_bytes().to_vec();
    for e in entries {
        out.extend_from_slice(&u32::from(CapabilityHeader::from(*e)).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdm_entry(pointer: u16) -> CapabilityEntry {
        CapabilityEntry {
            id: CAP_ID_HDM_DECODER,
            version: 3,
            pointer,
        }
    }

    /// A whole CXL.cachemem area (0xF000 bytes) holding `entries`.
    fn area(entries: &[CapabilityEntry]) -> Vec<u8> {
        let mut v = build_capability_array(entries);
        v.resize((COMPONENT_BLOCK_SIZE - CAP_ARRAY_OFFSET) as usize, 0);
        v
    }

    #[test]
    fn header_layout_matches_spec() {
        let v = build_capability_array(&[hdm_entry(0x100)]);
        assert_eq!(v.len(), 8);
        let hdr = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
        assert_eq!(hdr & 0xFFFF, 1);
        assert_eq!((hdr >> 16) & 0xF, 1);
        assert_eq!(hdr >> 24, 1);
        let ent = u32::from_le_bytes([v[4], v[5], v[6], v[7]]);
        assert_eq!(ent & 0xFFFF, 5);
        assert_eq!((ent >> 16) & 0xF, 3);
        assert_eq!(ent >> 20, 0x100);
    }

    #[test]
    fn parse_roundtrip_finds_hdm() {
        let ents = [
            CapabilityEntry {
                id: CAP_ID_RAS,
                version: 2,
                pointer: 0x20,
            },
            CapabilityEntry {
                id: CAP_ID_LINK,
                version: 2,
                pointer: 0x80,
            },
            hdm_entry(0x100),
        ];
        let arr = CapabilityArray::parse(&area(&ents)).unwrap();
        assert_eq!(arr.entries(), &ents);
        assert_eq!(arr.find(CAP_ID_LINK), Some(ents[1]));
        assert_eq!(arr.hdm_decoder(), Ok(ents[2]));
        assert_eq!(arr.header().array_size(), 3);
    }

    #[test]
    fn parse_rejects_truncated_header() {
        assert_eq!(
            CapabilityArray::parse(&[1, 0, 1]),
            Err(CapArrayError::Truncated { len: 3 })
        );
    }

    #[test]
    fn parse_rejects_wrong_header_id() {
        let mut v = area(&[hdm_entry(0x100)]);
        v[0] = 2;
        assert_eq!(
            CapabilityArray::parse(&v),
            Err(CapArrayError::WrongHeaderId { id: 2 })
        );
    }

    #[test]
    fn parse_rejects_zero_entries() {
        assert_eq!(
            CapabilityArray::parse(&area(&[])),
            Err(CapArrayError::NoEntries)
        );
    }

    #[test]
    fn parse_rejects_count_larger_than_space() {
        let v = build_capability_array(&[hdm_entry(0x100), hdm_entry(0x200)]);
        assert_eq!(
            CapabilityArray::parse(&v[..8]),
            Err(CapArrayError::TooManyEntries { count: 2, room: 1 })
        );
    }

    #[test]
    fn parse_rejects_pointer_outside_block() {
        // The HDM structure (0x30 bytes) must fit before the end.
        let mut v = build_capability_array(&[hdm_entry(0x100)]);
        v.resize(0x120, 0);
        assert_eq!(
            CapabilityArray::parse(&v),
            Err(CapArrayError::PointerOutOfBlock {
                id: CAP_ID_HDM_DECODER,
                pointer: 0x100
            })
        );
    }

    #[test]
    fn parse_rejects_identical_pointers() {
        let ents = [
            CapabilityEntry {
                id: 0x9,
                version: 1,
                pointer: 0x100,
            },
            hdm_entry(0x100),
        ];
        assert_eq!(
            CapabilityArray::parse(&area(&ents)),
            Err(CapArrayError::Overlap {
                first: 0x9,
                second: CAP_ID_HDM_DECODER
            })
        );
    }

    #[test]
    fn parse_rejects_overlap_with_known_size() {
        // RAS is 0x58 bytes: a structure at 0x40 lands inside it.
        let ents = [
            CapabilityEntry {
                id: CAP_ID_RAS,
                version: 2,
                pointer: 0x20,
            },
            hdm_entry(0x40),
        ];
        assert_eq!(
            CapabilityArray::parse(&area(&ents)),
            Err(CapArrayError::Overlap {
                first: CAP_ID_RAS,
                second: CAP_ID_HDM_DECODER
            })
        );
    }

    #[test]
    fn parse_sizes_hdm_from_its_decoder_count() {
        // Four decoders (encoding 2) make the HDM block 0x90 bytes long,
        // so a structure at 0x180 overlaps one at 0x100.
        let ents = [
            hdm_entry(0x100),
            CapabilityEntry {
                id: CAP_ID_IDE,
                version: 2,
                pointer: 0x180,
            },
        ];
        let mut v = area(&ents);
        CapabilityArray::parse(&v).unwrap();
        v[0x100] = 2;
        assert_eq!(
            CapabilityArray::parse(&v),
            Err(CapArrayError::Overlap {
                first: CAP_ID_HDM_DECODER,
                second: CAP_ID_IDE
            })
        );
    }

    #[test]
    fn parse_rejects_structure_over_the_array() {
        let ents = [hdm_entry(0x4)];
        assert_eq!(
            CapabilityArray::parse(&area(&ents)),
            Err(CapArrayError::Overlap {
                first: CAP_ID_CXL,
                second: CAP_ID_HDM_DECODER
            })
        );
    }

    #[test]
    fn hdm_missing_is_reported() {
        let ents = [CapabilityEntry {
            id: CAP_ID_RAS,
            version: 2,
            pointer: 0x20,
        }];
        let arr = CapabilityArray::parse(&area(&ents)).unwrap();
        assert_eq!(arr.hdm_decoder(), Err(CapArrayError::HdmMissing));
    }

    #[test]
    fn build_caps_entry_count_at_255() {
        let many = vec![hdm_entry(0x100); 300];
        let v = build_capability_array(&many);
        assert_eq!(v.len(), 4 * 256);
        assert_eq!(v[3], 255);
    }

    #[test]
    fn errors_display() {
        assert!(CapArrayError::HdmMissing.to_string().contains("HDM"));
    }
}
