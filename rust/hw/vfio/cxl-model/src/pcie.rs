// SPDX-License-Identifier: GPL-2.0-or-later

//! The PCI Express capability's Function Level Reset, as vfio-pci treats
//! it: a write that sets "Initiate Function Level Reset" in Device Control
//! becomes a reset of the function only if Device Capabilities advertises
//! FLR; the bit itself is never latched.  The device (a guest write) and
//! the simulator (a VMM write) apply this one rule.

use crate::uapi::{rd_u16 as le_u16, rd_u32 as le_u32};

/// Offset of the Command register.
pub const PCI_COMMAND: usize = 0x04;

/// Command register "Memory Space Enable".
pub const PCI_COMMAND_MEMORY: u16 = 1 << 1;

/// Offset in config space of the pointer to the first standard capability.
pub const PCI_CAPABILITY_LIST: usize = 0x34;

/// Status register bit saying the capability list exists.
pub const PCI_STATUS_CAP_LIST: u16 = 1 << 4;

/// Offset of the Status register.
pub const PCI_STATUS: usize = 0x06;

/// Capability ID of the PCI Express capability.
pub const PCI_CAP_ID_EXP: u8 = 0x10;

/// Offset of Device Capabilities in the PCI Express capability.
pub const PCI_EXP_DEVCAP: usize = 0x04;

/// Device Capabilities "Function Level Reset Capability".
pub const PCI_EXP_DEVCAP_FLR: u32 = 1 << 28;

/// Offset of Device Control in the PCI Express capability.
pub const PCI_EXP_DEVCTL: usize = 0x08;

/// Device Control "Initiate Function Level Reset".
pub const PCI_EXP_DEVCTL_BCR_FLR: u16 = 1 << 15;

/// End of the standard (non-extended) configuration header and
/// capabilities; standard capabilities live below it.
const PCI_STD_CONFIG_END: usize = 0x100;

/// Standard capabilities start after the 64-byte header.
const PCI_STD_HEADER_END: usize = 0x40;

/// Most standard capabilities that fit in 0x40..0x100 (each takes at
/// least 4 bytes); bounds the walk on a looping list.
const MAX_STD_CAPS: usize = (PCI_STD_CONFIG_END - PCI_STD_HEADER_END) / 4;

fn byte(config: &[u8], at: usize) -> Option<u8> {
    config.get(at).copied()
}

/// Offset of the standard capability with ID `id`, following the list
/// from [`PCI_CAPABILITY_LIST`].  Pointers below the header or past the
/// standard area end the walk, as does a list longer than can fit (a
/// loop).
pub fn find_capability(config: &[u8], id: u8) -> Option<usize> {
    if le_u16(config, PCI_STATUS)? & PCI_STATUS_CAP_LIST == 0 {
        return None;
    }
    let mut at = usize::from(byte(config, PCI_CAPABILITY_LIST)? & !3);
    for _ in 0..MAX_STD_CAPS {
        if !(PCI_STD_HEADER_END..PCI_STD_CONFIG_END).contains(&at) {
            return None;
        }
        if byte(config, at)? == id {
            return Some(at);
        }
        at = usize::from(byte(config, at + 1)? & !3);
    }
    None
}

/// Where a function's "Initiate Function Level Reset" bit lives, for a
/// function whose PCI Express capability advertises FLR (Device Capabilities bit
/// 28) — as the kernel's vfio-pci does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlrTrigger {
    /// Config-space offset of Device Control.
    devctl: u32,
}

impl FlrTrigger {
    /// None when config space has no PCI Express capability or it does not
    /// advertise FLR.
    pub fn from_config(config: &[u8]) -> Option<Self> {
        let cap = find_capability(config, PCI_CAP_ID_EXP)?;
        let devcap = le_u32(config, cap + PCI_EXP_DEVCAP)?;
        if devcap & PCI_EXP_DEVCAP_FLR == 0 {
            return None;
        }
        // Device Control must lie inside config space too.
        le_u16(config, cap + PCI_EXP_DEVCTL)?;
        Some(Self {
            devctl: u32::try_from(cap + PCI_EXP_DEVCTL).ok()?,
        })
    }

    /// Config-space offset of Device Control.
    pub fn devctl_offset(&self) -> u32 {
        self.devctl
    }

    /// If the config write of `value` (`len` = 1, 2 or 4 bytes at `addr`)
    /// sets Initiate FLR, the same write with that bit cleared; otherwise
    /// None.
    pub fn strip(&self, addr: u32, value: u32, len: u32) -> Option<u32> {
        if !matches!(len, 1 | 2 | 4) {
            return None;
        }
        // The bit is bit 7 of Device Control's high byte.
        let flr_byte = self.devctl + 1;
        let shift = 8 * flr_byte.checked_sub(addr).filter(|&i| i < len)?;
        let bit = u32::from(PCI_EXP_DEVCTL_BCR_FLR >> 8) << shift;
        (value & bit != 0).then_some(value & !bit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Config space with a PCI Express capability at 0x40 (after an MSI
    /// capability at 0x80 in the list when `msi_first`), DEVCAP as given.
    fn config(devcap: u32, msi_first: bool) -> Vec<u8> {
        let mut c = vec![0u8; 0x1000];
        c[PCI_STATUS] = PCI_STATUS_CAP_LIST as u8;
        if msi_first {
            c[PCI_CAPABILITY_LIST] = 0x80;
            c[0x80] = 0x05;
            c[0x81] = 0x40;
        } else {
            c[PCI_CAPABILITY_LIST] = 0x40;
        }
        c[0x40] = PCI_CAP_ID_EXP;
        c[0x44..0x48].copy_from_slice(&devcap.to_le_bytes());
        c
    }

    const FLR: u32 = PCI_EXP_DEVCAP_FLR;

    #[test]
    fn found_where_the_capability_advertises_flr() {
        let t = FlrTrigger::from_config(&config(FLR | 1, false)).unwrap();
        assert_eq!(t.devctl_offset(), 0x48);
        let t2 = FlrTrigger::from_config(&config(FLR, true)).unwrap();
        assert_eq!(t2.devctl_offset(), 0x48);
    }

    #[test]
    fn no_trigger_without_flr_capability() {
        assert_eq!(FlrTrigger::from_config(&config(1 | 1 << 15, false)), None);
    }

    #[test]
    fn no_trigger_without_pcie_capability_or_list() {
        let mut c = config(FLR, false);
        c[0x40] = 0x05;
        assert_eq!(FlrTrigger::from_config(&c), None);
        let mut no_list = config(FLR, false);
        no_list[PCI_STATUS] = 0;
        assert_eq!(FlrTrigger::from_config(&no_list), None);
        assert_eq!(FlrTrigger::from_config(&[]), None);
        assert_eq!(FlrTrigger::from_config(&config(FLR, false)[..0x46]), None);
    }

    #[test]
    fn hostile_lists_end() {
        // A capability pointing at itself, and one pointing into the header.
        let mut looped = config(FLR, false);
        looped[0x40] = 0x05;
        looped[0x41] = 0x40;
        assert_eq!(find_capability(&looped, PCI_CAP_ID_EXP), None);
        let mut low = config(FLR, false);
        low[PCI_CAPABILITY_LIST] = 0x10;
        assert_eq!(FlrTrigger::from_config(&low), None);
        let mut high = config(FLR, false);
        high[PCI_CAPABILITY_LIST] = 0xFF;
        assert_eq!(find_capability(&high, PCI_CAP_ID_EXP), None);
    }

    #[test]
    fn strip_byte_word_dword() {
        let t = FlrTrigger::from_config(&config(FLR, false)).unwrap();
        assert_eq!(t.strip(0x49, 0x80, 1), Some(0));
        assert_eq!(t.strip(0x49, 0xA8, 1), Some(0x28));
        assert_eq!(t.strip(0x48, 0xA810, 2), Some(0x2810));
        assert_eq!(t.strip(0x48, 0x0000_A810, 4), Some(0x2810));
        assert_eq!(t.strip(0x48, 0xFFFF_FFFF, 4), Some(0xFFFF_7FFF));
        // Dword write at Device Capabilities: Device Control is bytes 4..
        // of the next dword, not covered.
        assert_eq!(t.strip(0x44, 0xFFFF_FFFF, 4), None);
        // Dword at 0x46 is not aligned but covers 0x49 as byte 3.
        assert_eq!(t.strip(0x46, 0x8000_0000, 4), Some(0));
    }

    #[test]
    fn strip_ignores_writes_that_do_not_set_or_cover_the_bit() {
        let t = FlrTrigger::from_config(&config(FLR, false)).unwrap();
        assert_eq!(t.strip(0x48, 0x2810, 2), None);
        assert_eq!(t.strip(0x48, 0x80, 1), None, "low byte: other bit 7");
        assert_eq!(t.strip(0x4A, 0xFFFF, 2), None, "Device Status");
        assert_eq!(t.strip(0x4C, 0xFFFF_FFFF, 4), None);
        assert_eq!(t.strip(0x49, 0x80, 3), None, "bad length");
        assert_eq!(t.strip(0x49, 0x80, 0), None, "bad length");
    }
}
