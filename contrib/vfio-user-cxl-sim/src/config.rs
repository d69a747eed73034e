// SPDX-License-Identifier: GPL-2.0-or-later

//! The PCI configuration space of the simulated accelerator (the
//! ordinary registers; the CXL Device DVSEC body is served by the
//! register model, see [`crate::device`]).
//!
//! Layout (4096 bytes):
//!
//! | offset | content |
//! |---|---|
//! | 0x00 | type-0 header: vendor [`VENDOR_ID`], device [`DEVICE_ID`], class 0x120000 (processing accelerator), BAR 0 64-bit non-prefetchable memory, interrupt pin INTA |
//! | 0x40 | PCI Express capability, version 2, endpoint, FLR capable |
//! | 0x80 | MSI capability, 64-bit, one vector |
//! | 0x100 | CXL Device DVSEC (placed by the device) |
//! | after it | CXL Register Locator DVSEC (placed by the device) |
//!
//! Every byte has a write mask and a write-1-to-clear mask; bits in
//! neither are read-only.  BAR sizing falls out of the masks: writing
//! all-ones to BAR 0 reads back the size mask with the type bits.
//!
//! Device Control "Initiate Function Level Reset" is virtualized as
//! vfio-pci does: never latched (reads 0), and a write setting it on an
//! FLR-capable function asks for a reset ([`ConfigEffect::Flr`]); the
//! rule is the register model's [`FlrTrigger`].

use cxl_model::pcie::{FlrTrigger, PCI_CAP_ID_EXP, PCI_EXP_DEVCAP_FLR, PCI_EXP_DEVCTL_BCR_FLR};

/// Vendor ID: 0x1234, the de-facto "test/experimental" ID also used by
/// QEMU's `edu` and `bochs-display` devices.  Not a real CXL vendor.
pub const VENDOR_ID: u16 = 0x1234;
/// Device ID chosen for this simulator ("CXL Type-2").
pub const DEVICE_ID: u16 = 0xc202;
/// Revision ID.
pub const REVISION: u8 = 0x01;
/// Class code: base 0x12 (processing accelerator), sub-class 0, prog-if 0.
pub const CLASS_CODE: u32 = 0x12_00_00;

/// Size of the configuration region (extended config space).
pub const CONFIG_SIZE: usize = 4096;
/// Offset of the PCI Express capability.
pub const PCIE_CAP: usize = 0x40;
/// Size of the PCI Express capability (version 2, endpoint).
pub const PCIE_CAP_SIZE: usize = 0x3c;
/// Offset of the MSI capability.
pub const MSI_CAP: usize = 0x80;
/// Offset of the first extended capability.
pub const EXT_CAP_START: usize = 0x100;

/// Command register bits a driver may set: I/O, memory, bus master,
/// parity error response, `SERR#`, `INTx` disable.
const COMMAND_WMASK: u16 = 0x0547;
/// Status register write-1-to-clear bits.
const STATUS_W1C: u16 = 0xf900;
/// BAR type bits of BAR 0: memory, 64-bit, non-prefetchable.
pub const BAR0_TYPE: u32 = 0x4;
/// PCI Express Device Capabilities: MPS 256 bytes, role-based error
/// reporting, Function Level Reset capable (bit 28).
pub const PCIE_DEVCAP: u32 = 0x1 | (1 << 15) | PCI_EXP_DEVCAP_FLR;
/// Offset of Device Control in the PCI Express capability.
const PCIE_DEVCTL: usize = cxl_model::pcie::PCI_EXP_DEVCTL;

/// What a config write asks of the device besides changing registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigEffect {
    None,
    /// Device Control "Initiate Function Level Reset" was written as 1
    /// on an FLR-capable function.
    Flr,
}

/// The ordinary configuration registers with their write behaviour.
#[derive(Clone)]
pub struct ConfigSpace {
    bytes: Vec<u8>,
    wmask: Vec<u8>,
    w1c: Vec<u8>,
}

impl ConfigSpace {
    /// Device Capabilities without Function Level Reset (`--fault no-flr`).
    pub fn withhold_flr(&mut self) {
        let at = PCIE_CAP + 0x04;
        self.set32(at, PCIE_DEVCAP & !PCI_EXP_DEVCAP_FLR);
    }

    /// Power-on configuration space for a device with a 64-bit BAR 0 of
    /// `bar0_size` bytes (a power of two, at least 16).
    #[must_use]
    pub fn new(bar0_size: u64) -> Self {
        let mut c = Self {
            bytes: vec![0; CONFIG_SIZE],
            wmask: vec![0; CONFIG_SIZE],
            w1c: vec![0; CONFIG_SIZE],
        };
        // Type-0 header.
        c.set16(0x00, VENDOR_ID);
        c.set16(0x02, DEVICE_ID);
        c.set16(0x06, 1 << 4); // capability list present
        c.set32(0x08, (CLASS_CODE << 8) | u32::from(REVISION));
        c.bytes[0x0e] = 0x00; // header type 0, single function
        c.set32(0x10, BAR0_TYPE);
        c.set16(0x2c, VENDOR_ID);
        c.set16(0x2e, DEVICE_ID);
        c.bytes[0x34] = PCIE_CAP as u8;
        c.bytes[0x3d] = 1; // INTA#

        c.mask16(0x04, COMMAND_WMASK, 0);
        c.mask16(0x06, 0, STATUS_W1C);
        c.wmask[0x0c] = 0xff; // cache line size
        let low_mask = !(bar0_size - 1) as u32 & !0xf;
        c.mask32(0x10, low_mask, 0);
        c.mask32(0x14, !((bar0_size - 1) >> 32) as u32, 0);
        c.wmask[0x3c] = 0xff; // interrupt line

        // PCI Express capability, version 2, endpoint.
        let p = PCIE_CAP;
        c.bytes[p] = PCI_CAP_ID_EXP;
        c.bytes[p + 1] = MSI_CAP as u8;
        c.set16(p + 0x02, 0x0002);
        c.set32(p + 0x04, PCIE_DEVCAP);
        c.set16(p + PCIE_DEVCTL, 0x2810); // MRRS 512, no snoop, relaxed ordering
        c.mask16(p + PCIE_DEVCTL, !PCI_EXP_DEVCTL_BCR_FLR, 0); // FLR is not latched
        c.mask16(p + 0x0a, 0, 0x000f); // error detected bits
        c.set32(p + 0x0c, 0x0000_0105); // x16, 32 GT/s, port 0
        c.mask16(p + 0x10, 0x0fc3, 0);
        c.set16(p + 0x12, 0x0105); // link up at x16, 32 GT/s
        c.mask16(p + 0x28, 0xffff, 0); // Device Control 2
        c.set32(p + 0x2c, 0x3e); // 2.5 to 32 GT/s supported
        c.set16(p + 0x30, 0x5);
        c.mask16(p + 0x30, 0xffff, 0);

        // MSI capability: 64-bit address, one vector.
        let m = MSI_CAP;
        c.bytes[m] = 0x05;
        c.bytes[m + 1] = 0;
        c.set16(m + 0x02, 1 << 7);
        c.mask16(m + 0x02, 0x0071, 0);
        c.mask32(m + 0x04, 0xffff_fffc, 0);
        c.mask32(m + 0x08, 0xffff_ffff, 0);
        c.mask16(m + 0x0c, 0xffff, 0);
        c
    }

    /// Places a read-only block (an extended capability) at `offset`.
    pub fn place(&mut self, offset: usize, block: &[u8]) {
        self.bytes[offset..offset + block.len()].copy_from_slice(block);
    }

    fn set16(&mut self, off: usize, v: u16) {
        self.bytes[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn set32(&mut self, off: usize, v: u32) {
        self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn mask16(&mut self, off: usize, w: u16, c: u16) {
        self.wmask[off..off + 2].copy_from_slice(&w.to_le_bytes());
        self.w1c[off..off + 2].copy_from_slice(&c.to_le_bytes());
    }

    fn mask32(&mut self, off: usize, w: u32, c: u32) {
        self.wmask[off..off + 4].copy_from_slice(&w.to_le_bytes());
        self.w1c[off..off + 4].copy_from_slice(&c.to_le_bytes());
    }

    /// Reads `buf.len()` bytes at `offset` (the caller checked bounds).
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.bytes[offset..offset + buf.len()]);
    }

    /// Writes `data` at `offset`, honouring the masks, and says whether
    /// the write initiates a Function Level Reset (the caller performs
    /// it after the registers are written, as vfio-pci does).  The write
    /// is looked at in the naturally aligned 1, 2 or 4-byte pieces
    /// vfio-pci splits config accesses into.
    pub fn write(&mut self, offset: usize, data: &[u8]) -> ConfigEffect {
        let trigger = FlrTrigger::from_config(&self.bytes);
        let mut flr = false;
        let mut done = 0;
        while done < data.len() {
            let at = offset + done;
            let left = data.len() - done;
            let len = [4, 2, 1]
                .into_iter()
                .find(|&n| at % n == 0 && left >= n)
                .unwrap_or(1);
            let mut value = [0u8; 4];
            value[..len].copy_from_slice(&data[done..done + len]);
            flr |= trigger.is_some_and(|t| {
                t.strip(at as u32, u32::from_le_bytes(value), len as u32)
                    .is_some()
            });
            done += len;
        }
        for (i, &v) in data.iter().enumerate() {
            let o = offset + i;
            let keep = self.bytes[o] & !self.wmask[o];
            let cleared = self.bytes[o] & self.w1c[o] & v;
            self.bytes[o] = (keep | (v & self.wmask[o])) & !cleared;
        }
        if flr {
            ConfigEffect::Flr
        } else {
            ConfigEffect::None
        }
    }

    /// A little-endian dword, for tests and the control socket.
    #[must_use]
    pub fn dword(&self, offset: usize) -> u32 {
        cxl_model::uapi::rd_u32(&self.bytes, offset).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_class() {
        let c = ConfigSpace::new(0x40000);
        assert_eq!(c.dword(0), 0xc202_1234);
        assert_eq!(c.dword(8) >> 8, 0x12_00_00);
        assert_eq!(c.dword(0x34) & 0xff, 0x40);
    }

    #[test]
    fn bar_sizing() {
        let mut c = ConfigSpace::new(0x40000);
        assert_eq!(c.dword(0x10), 0x4);
        c.write(0x10, &[0xff; 4]);
        c.write(0x14, &[0xff; 4]);
        assert_eq!(c.dword(0x10), 0xfffc_0004);
        assert_eq!(c.dword(0x14), 0xffff_ffff);
        c.write(0x10, &0xfe04_0000u32.to_le_bytes());
        c.write(0x14, &0u32.to_le_bytes());
        assert_eq!(c.dword(0x10), 0xfe04_0004);
        assert_eq!(c.dword(0x18), 0);
        c.write(0x18, &[0xff; 4]);
        assert_eq!(c.dword(0x18), 0, "unimplemented BARs read 0");
    }

    #[test]
    fn command_and_status() {
        let mut c = ConfigSpace::new(0x40000);
        c.write(0x04, &[0xff, 0xff]);
        assert_eq!(c.dword(4) & 0xffff, 0x0547);
        // Set an error bit behind the driver's back, then clear it.
        c.bytes[0x07] |= 0x80;
        c.write(0x06, &[0x00, 0x80]);
        assert_eq!(c.dword(4) >> 16, 1 << 4);
    }

    #[test]
    fn pcie_capability() {
        let c = ConfigSpace::new(0x40000);
        assert_eq!(c.dword(PCIE_CAP) & 0xff, 0x10);
        assert_eq!((c.dword(PCIE_CAP) >> 16) & 0xf, 2, "version 2");
        assert_eq!((c.dword(PCIE_CAP) >> 20) & 0xf, 0, "endpoint");
        assert_ne!(c.dword(PCIE_CAP + 4) & (1 << 28), 0, "FLR capable");
        assert_eq!(c.dword(MSI_CAP) & 0xff, 0x05);
    }

    #[test]
    fn flr_is_requested_not_latched() {
        let mut c = ConfigSpace::new(0x40000);
        let devctl = PCIE_CAP + PCIE_DEVCTL;
        let before = c.dword(devctl) & 0xffff;
        let flr = (before as u16 | PCI_EXP_DEVCTL_BCR_FLR).to_le_bytes();
        assert_eq!(c.write(devctl, &flr), ConfigEffect::Flr);
        assert_eq!(c.dword(devctl) & 0xffff, before, "FLR reads 0");
        // Through a dword write, and the high byte alone.
        let dword = (c.dword(devctl) | u32::from(PCI_EXP_DEVCTL_BCR_FLR)).to_le_bytes();
        assert_eq!(c.write(devctl, &dword), ConfigEffect::Flr);
        assert_eq!(c.write(devctl + 1, &[0x80]), ConfigEffect::Flr);
        // Other Device Control bits, and the same bit elsewhere, are not.
        assert_eq!(c.write(devctl, &[0x10, 0x28]), ConfigEffect::None);
        assert_eq!(c.write(devctl, &[0x80]), ConfigEffect::None);
        assert_eq!(c.write(devctl + 2, &[0xff, 0xff]), ConfigEffect::None);
        assert_eq!(c.write(devctl - 4, &[0xff; 4]), ConfigEffect::None);
        // A function without FLR capability ignores the bit.
        let cap = c.dword(PCIE_CAP + 4) & !PCI_EXP_DEVCAP_FLR;
        c.set32(PCIE_CAP + 4, cap);
        assert_eq!(c.write(devctl, &flr), ConfigEffect::None);
    }
}
