// SPDX-License-Identifier: GPL-2.0-or-later

//! The PCI Express capability's Function Level Reset trigger.
//!
//! A guest starts an FLR by writing 1 to "Initiate Function Level Reset"
//! (Device Control bit 15).  Like the kernel's vfio-pci, only a function
//! whose Device Capabilities advertise FLR (bit 28) takes that as a reset;
//! elsewhere the bit is an ordinary reserved bit of the write.

const PCI_CAPABILITY_LIST: usize = 0x34;
const PCI_STATUS: usize = 0x06;
const PCI_STATUS_CAP_LIST: u16 = 1 << 4;
const PCI_CAP_ID_EXP: u8 = 0x10;
const PCI_EXP_DEVCAP: usize = 0x04;
const PCI_EXP_DEVCAP_FLR: u32 = 1 << 28;
const PCI_EXP_DEVCTL: u32 = 0x08;
const PCI_EXP_DEVCTL_BCR_FLR: u32 = 1 << 15;

/// Where a function's "Initiate Function Level Reset" bit lives, for a
/// function whose `PCIe` capability advertises FLR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlrTrigger {
    devctl: u32,
}

impl FlrTrigger {
    /// `None` when `config` has no `PCIe` capability or it does not
    /// advertise FLR.  The capability list walk is bounded, so a list that
    /// loops ends.
    pub fn from_config(config: &[u8]) -> Option<Self> {
        let byte = |at: usize| config.get(at).copied();
        let word = |at: usize| Some(u16::from_le_bytes([byte(at)?, byte(at + 1)?]));
        let dword = |at: usize| Some(u32::from(word(at)?) | (u32::from(word(at + 2)?) << 16));
        if word(PCI_STATUS)? & PCI_STATUS_CAP_LIST == 0 {
            return None;
        }
        let mut at = usize::from(byte(PCI_CAPABILITY_LIST)? & !3);
        // 48 capabilities of 4 bytes fill the 192 bytes after the header.
        for _ in 0..48 {
            if at < 0x40 {
                return None;
            }
            if byte(at)? == PCI_CAP_ID_EXP {
                let flr = dword(at + PCI_EXP_DEVCAP)? & PCI_EXP_DEVCAP_FLR != 0;
                return flr.then_some(Self {
                    devctl: u32::try_from(at).ok()? + PCI_EXP_DEVCTL,
                });
            }
            at = usize::from(byte(at + 1)? & !3);
        }
        None
    }

    /// If the config write of `value` (`len` = 1, 2 or 4 bytes at `addr`)
    /// sets Initiate FLR, the same write with that bit cleared.
    pub fn strip(&self, addr: u32, value: u32, len: u32) -> Option<u32> {
        let flr_at = self.devctl * 8 + PCI_EXP_DEVCTL_BCR_FLR.trailing_zeros();
        let bit = flr_at.checked_sub(addr * 8)?;
        if bit >= len.min(4) * 8 {
            return None;
        }
        (value & (1 << bit) != 0).then_some(value & !(1 << bit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Config space with a `PCIe` capability at 0x40 after a PM capability
    /// at 0x50 in the list, FLR advertised or not.
    fn config(flr: bool) -> Vec<u8> {
        let mut c = vec![0u8; 4096];
        c[PCI_STATUS] = PCI_STATUS_CAP_LIST as u8;
        c[PCI_CAPABILITY_LIST] = 0x50;
        c[0x50] = 0x01;
        c[0x51] = 0x40;
        c[0x40] = PCI_CAP_ID_EXP;
        let devcap = 1 | if flr { PCI_EXP_DEVCAP_FLR } else { 0 };
        c[0x44..0x48].copy_from_slice(&devcap.to_le_bytes());
        c
    }

    #[test]
    fn flr_capable_function_has_a_trigger() {
        let t = FlrTrigger::from_config(&config(true)).unwrap();
        assert_eq!(t.strip(0x48, 0x8000 | 0x10, 2), Some(0x10));
        assert_eq!(t.strip(0x48, 0x0010_8000, 4), Some(0x0010_0000));
        assert_eq!(t.strip(0x49, 0x80, 1), Some(0));
        assert_eq!(t.strip(0x48, 0x10, 2), None, "bit clear");
        assert_eq!(t.strip(0x48, 0xFF, 1), None, "byte without the bit");
        assert_eq!(t.strip(0x4A, 0xFFFF, 2), None, "Device Status");
        assert_eq!(t.strip(0x44, u32::MAX, 4), None, "Device Capabilities");
    }

    #[test]
    fn function_without_flr_capability_has_none() {
        assert_eq!(FlrTrigger::from_config(&config(false)), None);
    }

    #[test]
    fn no_capability_list_or_no_pcie_capability_has_none() {
        let mut no_list = config(true);
        no_list[PCI_STATUS] = 0;
        assert_eq!(FlrTrigger::from_config(&no_list), None);
        let mut no_pcie = config(true);
        no_pcie[0x51] = 0;
        assert_eq!(FlrTrigger::from_config(&no_pcie), None);
        assert_eq!(FlrTrigger::from_config(&[]), None);
    }

    #[test]
    fn looping_capability_list_ends() {
        let mut c = config(true);
        c[0x51] = 0x50;
        assert_eq!(FlrTrigger::from_config(&c), None);
    }
}
