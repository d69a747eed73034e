// SPDX-License-Identifier: GPL-2.0-or-later

//! Walks of PCI configuration space (capability lists, CXL DVSECs, the
//! Register Locator) over any dword reader, so that the host-side suite
//! (config region) and the guest-side checks (ECAM through QEMU) share
//! them.

use crate::layout::{dvsec, pci};

/// A DVSEC found in extended config space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dvsec {
    pub offset: u64,
    pub length: u32,
    pub revision: u32,
}

/// Finds the DVSEC of `vendor` with DVSEC ID `id`.  `Err` on a list
/// that leaves config space, is misaligned or loops.
pub fn find_dvsec(
    mut readl: impl FnMut(u64) -> Option<u32>,
    vendor: u16,
    id: u16,
) -> Result<Option<Dvsec>, String> {
    let mut at = pci::EXT_CAP_START;
    for _ in 0..512 {
        if at % 4 != 0 || !(pci::EXT_CAP_START..pci::CONFIG_SIZE).contains(&at) {
            return Err(format!("extended capability list reaches {at:#x}"));
        }
        let hdr = readl(at).ok_or_else(|| format!("config read at {at:#x} failed"))?;
        if hdr == 0 || hdr == u32::MAX {
            return Ok(None);
        }
        if hdr & 0xFFFF == pci::EXT_CAP_ID_DVSEC {
            let h1 = readl(at + 4).unwrap_or(0);
            let h2 = readl(at + 8).unwrap_or(0);
            if h1 & 0xFFFF == u32::from(vendor) && h2 & 0xFFFF == u32::from(id) {
                return Ok(Some(Dvsec {
                    offset: at,
                    length: h1 >> 20,
                    revision: (h1 >> 16) & 0xF,
                }));
            }
        }
        let next = u64::from(hdr >> 20);
        if next == 0 {
            return Ok(None);
        }
        if next <= at {
            return Err(format!(
                "extended capability at {at:#x} points back to {next:#x}"
            ));
        }
        at = next;
    }
    Err("extended capability list too long".into())
}

/// Finds the standard capability `id` (e.g. PCI Express).
pub fn find_cap(mut readl: impl FnMut(u64) -> Option<u32>, id: u8) -> Option<u64> {
    let mut at = u64::from(readl(pci::CAP_PTR)? & 0xFC);
    for _ in 0..48 {
        if at < 0x40 {
            return None;
        }
        let hdr = readl(at)?;
        if hdr & 0xFF == u32::from(id) {
            return Some(at);
        }
        at = u64::from((hdr >> 8) & 0xFC);
    }
    None
}

/// The component register block as the Register Locator names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentBlock {
    pub bar: u32,
    pub offset: u64,
}

/// Reads the Register Locator DVSEC at `loc` for the component block.
pub fn component_block(
    mut readl: impl FnMut(u64) -> Option<u32>,
    loc: &Dvsec,
) -> Result<ComponentBlock, String> {
    let end = loc.offset + u64::from(loc.length);
    let mut at = loc.offset + dvsec::LOCATOR_ENTRIES;
    while at + 8 <= end {
        let lo = readl(at).ok_or("config read failed")?;
        let hi = readl(at + 4).ok_or("config read failed")?;
        if (lo >> dvsec::LOCATOR_BLOCK_ID_SHIFT) & 0xFF == dvsec::BLOCK_ID_COMPONENT {
            return Ok(ComponentBlock {
                bar: lo & dvsec::LOCATOR_BIR_MASK,
                offset: u64::from(hi) << 32 | u64::from(lo & dvsec::LOCATOR_OFFSET_MASK),
            });
        }
        at += 8;
    }
    Err(format!(
        "Register Locator at {:#x} ({} bytes) lists no component register block",
        loc.offset, loc.length
    ))
}

/// The 64-bit address in a CXL range or decoder register pair, whose
/// low dword carries bits 31:28 only.
#[must_use]
pub const fn addr(hi: u32, lo: u32) -> u64 {
    (hi as u64) << 32 | (lo & 0xF000_0000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config space with DVSECs at 0x100 (ID 0) and 0x140 (ID 8).
    fn cfg() -> Vec<u8> {
        let mut c = vec![0u8; 0x1000];
        let put = |buf: &mut Vec<u8>, at: usize, v: u32| {
            buf[at..at + 4].copy_from_slice(&v.to_le_bytes())
        };
        put(&mut c, 0x100, 0x23 | 1 << 16 | 0x140 << 20);
        put(&mut c, 0x104, 0x1E98 | 2 << 16 | 0x3C << 20);
        put(&mut c, 0x108, 0);
        put(&mut c, 0x140, 0x23 | 1 << 16);
        put(&mut c, 0x144, 0x1E98 | 0x14 << 20);
        put(&mut c, 0x148, 8);
        put(&mut c, 0x14C, 1 << 8 | 0x0001_0000);
        put(&mut c, 0x150, 0);
        c[0x34] = 0x40;
        put(&mut c, 0x40, 0x10);
        c
    }

    fn reader(c: &[u8]) -> impl FnMut(u64) -> Option<u32> + '_ {
        move |at| Some(crate::host::le32(c, at as usize))
    }

    #[test]
    fn finds_dvsecs_and_the_block() {
        let c = cfg();
        let d = find_dvsec(reader(&c), 0x1E98, 0).unwrap().unwrap();
        assert_eq!((d.offset, d.length, d.revision), (0x100, 0x3C, 2));
        let l = find_dvsec(reader(&c), 0x1E98, 8).unwrap().unwrap();
        assert_eq!(l.offset, 0x140);
        assert_eq!(
            component_block(reader(&c), &l).unwrap(),
            ComponentBlock {
                bar: 0,
                offset: 0x10000
            }
        );
        assert_eq!(find_dvsec(reader(&c), 0x1E98, 3).unwrap(), None);
        assert_eq!(find_cap(reader(&c), 0x10), Some(0x40));
        assert_eq!(addr(1, 0x1234_5678), 0x1_1000_0000);
    }

    #[test]
    fn refuses_a_looping_list() {
        let mut c = cfg();
        c[0x142..0x144].copy_from_slice(&((0x100u16 << 4) | 1).to_le_bytes());
        assert!(find_dvsec(reader(&c), 0x1E98, 9)
            .unwrap_err()
            .contains("points back"));
    }
}
