// SPDX-License-Identifier: GPL-2.0-or-later

//! Which posting of the kernel series a host speaks, judged the way the
//! interface documents tell them apart: by what the `COMP_REGS` region
//! holds at its offset 0 and 0x1000.

use std::fmt;

use crate::layout::component::{
    decoder_count, BLOCK_SIZE, CAP_ARRAY, CAP_COUNT_SHIFT, CAP_ID_ARRAY, CAP_ID_MASK,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posting {
    /// April 2026: `COMP_REGS` starts at the capability array.
    V2,
    /// June 2026: `COMP_REGS` is the whole 64 KiB component block.
    V3,
    /// August 2026: `COMP_REGS` is the HDM Decoder Capability structure.
    V4,
}

impl fmt::Display for Posting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V2 => "v2",
            Self::V3 => "v3",
            Self::V4 => "v4",
        })
    }
}

impl std::str::FromStr for Posting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "v2" => Ok(Self::V2),
            "v3" => Ok(Self::V3),
            "v4" => Ok(Self::V4),
            _ => Err(format!("'{s}' is not v2, v3 or v4")),
        }
    }
}

impl Posting {
    /// Offset in the component block of `COMP_REGS` offset 0, given where
    /// the HDM structure sits in the block.
    #[must_use]
    pub const fn comp_regs_base(self, hdm_in_block: u64) -> u64 {
        match self {
            Self::V2 => CAP_ARRAY,
            Self::V3 => 0,
            Self::V4 => hdm_in_block,
        }
    }
}

/// Whether `w` reads like a CXL capability array header (ID 1, at least
/// one entry).
#[must_use]
pub const fn is_array_header(w: u32) -> bool {
    w & CAP_ID_MASK == CAP_ID_ARRAY && w >> CAP_COUNT_SHIFT != 0
}

/// Judges the posting from the `COMP_REGS` region's size and the dwords at
/// its offsets 0 and 0x1000 (`None` when the region is too small or the
/// read failed).  Sizes are checked separately: a v3 region of the wrong
/// size is still v3, and fails its size check.
pub fn detect(size: u64, at0: u32, at1000: Option<u32>) -> Result<Posting, String> {
    match at1000 {
        Some(w) if size >= BLOCK_SIZE && is_array_header(w) => return Ok(Posting::V3),
        _ => {}
    }
    if is_array_header(at0) {
        return Ok(Posting::V2);
    }
    // An HDM capability register may read 0 (one decoder, one target):
    // what tells v4 from nonsense is a region smaller than a block whose
    // count field is defined.
    if size < BLOCK_SIZE && at0 != u32::MAX && decoder_count(at0).is_some() {
        return Ok(Posting::V4);
    }
    Err(format!(
        "COMP_REGS of {size:#x} bytes reads {at0:#010x} at 0 and {} at 0x1000: \
         neither a capability array header (v2 at 0, v3 at 0x1000) nor an HDM \
         capability register (v4)",
        at1000.map_or_else(|| "nothing".to_owned(), |w| format!("{w:#010x}"))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_postings_apart() {
        assert_eq!(detect(0x10000, 0, Some(0x0300_0001)), Ok(Posting::V3));
        // A v3 region of the wrong size is still v3.
        assert_eq!(detect(0x11000, 0, Some(0x0300_0001)), Ok(Posting::V3));
        assert_eq!(detect(0x130, 0x0300_0001, None), Ok(Posting::V2));
        assert_eq!(detect(0x30, 0x0000_0010, None), Ok(Posting::V4));
        // One decoder, field 0, with targets: still an HDM register.
        assert_eq!(detect(0x30, 0x0001_0110, None), Ok(Posting::V4));
        assert_eq!(detect(0x30, 0, None), Ok(Posting::V4));
        assert!(detect(0x10000, 0, Some(0)).unwrap_err().contains("neither"));
        detect(0x30, u32::MAX, None).unwrap_err();
        assert!(
            detect(0x30, 0xF, None).is_err(),
            "count field 15 is reserved"
        );
    }

    #[test]
    fn comp_regs_base_per_posting() {
        assert_eq!(Posting::V2.comp_regs_base(0x1100), 0x1000);
        assert_eq!(Posting::V3.comp_regs_base(0x1100), 0);
        assert_eq!(Posting::V4.comp_regs_base(0x1100), 0x1100);
    }
}
