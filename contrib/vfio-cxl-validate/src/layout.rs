// SPDX-License-Identifier: GPL-2.0-or-later

//! Every number the kit checks against: VFIO's user interface, PCI and
//! CXL register layouts, and what each posting of the vfio-pci CXL series
//! adds.  Written from the interface documents (the kernel's
//! `include/uapi/linux/vfio.h`, the series' postings as
//! `docs/devel/vfio-cxl-uapi.rst` describes them, the CXL and PCI Express
//! specifications), deliberately not imported from `cxl-model`: if the
//! model misreads the interface, the kit must not agree with it.

/// `struct vfio_device_info.flags`.
pub mod device_flags {
    pub const RESET: u32 = 1 << 0;
    pub const PCI: u32 = 1 << 1;
    pub const CAPS: u32 = 1 << 7;
    /// Added by the CXL series, every posting.
    pub const CXL: u32 = 1 << 9;
}

/// `struct vfio_region_info.flags`.
pub mod region_flags {
    pub const READ: u32 = 1 << 0;
    pub const WRITE: u32 = 1 << 1;
    pub const MMAP: u32 = 1 << 2;
    pub const CAPS: u32 = 1 << 3;
}

/// Size of `struct vfio_region_info` (`argsz`, `flags`, `index`,
/// `cap_offset`, `size`, `offset`) and of `struct vfio_device_info`
/// (`argsz`, `flags`, `num_regions`, `num_irqs`, `cap_offset`, pad).
pub const REGION_INFO_SIZE: usize = 32;
pub const DEVICE_INFO_SIZE: usize = 24;
/// Offset of `cap_offset` in both structures' replies.
pub const REGION_INFO_CAP_OFFSET: usize = 12;
pub const DEVICE_INFO_CAP_OFFSET: usize = 16;

/// Region capability IDs (`struct vfio_info_cap_header.id`).
pub mod region_cap {
    pub const SPARSE_MMAP: u16 = 1;
    pub const TYPE: u16 = 2;
    /// v4's `VFIO_REGION_INFO_CAP_CXL_COMP_REGS` ({u32 bar, u32 pad,
    /// u64 offset}).  Its number is not public yet: 6 is the value the
    /// project assumes (the next free ID); a host that uses another
    /// number makes the geometry check say "absent", nothing else.
    pub const CXL_COMP_REGS: u16 = 6;
}

/// Device-info capability `VFIO_DEVICE_INFO_CAP_CXL` (v2, v3 only).
pub mod device_cap {
    pub const CXL: u16 = 6;
    /// Total sizes, header included, of the two known layouts.
    pub const V2_SIZE: usize = 32;
    pub const V3_SIZE: usize = 48;
}

/// Region types and subtypes of the two CXL regions.
pub mod region_type {
    /// `VFIO_REGION_TYPE_PCI_VENDOR_TYPE | 0x1E98`: every posting except
    /// the earlier v4-era tree.
    pub const CXL_VENDOR: u32 = 0x8000_1E98;
    /// `VFIO_REGION_TYPE_CXL` of the earlier v4-era tree.
    pub const CXL_EARLY_V4: u32 = 4;
    pub const SUBTYPE_MEMORY: u32 = 1;
    pub const SUBTYPE_COMP_REGS: u32 = 2;
}

/// vfio-pci's fixed region indices.
pub const BAR_REGIONS: u32 = 6;
pub const CONFIG_REGION: u32 = 7;
/// First device-specific region index.
pub const FIRST_DEVICE_REGION: u32 = 9;

/// PCI configuration space.
pub mod pci {
    pub const VENDOR_ID: u64 = 0x00;
    pub const COMMAND: u64 = 0x04;
    pub const COMMAND_MEMORY: u16 = 1 << 1;
    pub const COMMAND_MASTER: u16 = 1 << 2;
    pub const BAR0: u64 = 0x10;
    pub const BAR_MEM_64: u32 = 0x4;
    pub const BAR_PREFETCH: u32 = 0x8;
    pub const CAP_PTR: u64 = 0x34;
    pub const CAP_ID_EXP: u8 = 0x10;
    /// PCI Express capability: Device Capabilities and Device Control.
    pub const EXP_DEVCAP: u64 = 0x04;
    pub const EXP_DEVCAP_FLR: u32 = 1 << 28;
    pub const EXP_DEVCTL: u64 = 0x08;
    pub const EXP_DEVCTL_FLR: u16 = 1 << 15;
    pub const EXT_CAP_START: u64 = 0x100;
    pub const EXT_CAP_ID_DVSEC: u32 = 0x23;
    pub const CONFIG_SIZE: u64 = 0x1000;
}

/// CXL DVSECs (CXL 3.x section 8.1).
pub mod dvsec {
    pub const CXL_VENDOR: u16 = 0x1E98;
    pub const ID_DEVICE: u16 = 0;
    pub const ID_REGISTER_LOCATOR: u16 = 8;
    /// CXL Device DVSEC registers, from the DVSEC's start.
    pub const CAPABILITY: u64 = 0x0A;
    pub const CAP_MEM_CAPABLE: u16 = 1 << 2;
    pub const CAP_HDM_COUNT_SHIFT: u16 = 4;
    pub const CAP_CXL_RESET_CAPABLE: u16 = 1 << 7;
    pub const CONTROL: u64 = 0x0C;
    pub const CTRL_CACHE_ENABLE: u16 = 1 << 0;
    pub const CTRL_MEM_ENABLE: u16 = 1 << 2;
    pub const STATUS: u64 = 0x0E;
    pub const CONTROL2: u64 = 0x10;
    pub const CTRL2_INITIATE_WBI: u16 = 1 << 1;
    pub const CTRL2_INITIATE_CXL_RESET: u16 = 1 << 2;
    pub const STATUS2: u64 = 0x12;
    pub const ST2_CACHE_INVALID: u16 = 1 << 0;
    pub const ST2_RESET_COMPLETE: u16 = 1 << 1;
    pub const ST2_RESET_ERROR: u16 = 1 << 2;
    pub const LOCK: u64 = 0x14;
    pub const LOCK_CONFIG: u16 = 1 << 0;
    pub const RANGE1_SIZE_HI: u64 = 0x18;
    pub const RANGE1_SIZE_LO: u64 = 0x1C;
    pub const RANGE1_BASE_HI: u64 = 0x20;
    pub const RANGE1_BASE_LO: u64 = 0x24;
    pub const RANGE_INFO_VALID: u32 = 1 << 0;
    pub const RANGE_ACTIVE: u32 = 1 << 1;
    /// Bits 31:28 of a range's low dword hold the address.
    pub const RANGE_ADDR_MASK: u32 = 0xF000_0000;
    /// Smallest CXL Device DVSEC (through Range 2).
    pub const DEVICE_MIN_LENGTH: u32 = 0x38;
    /// Register Locator: entries of 8 bytes from 0x0C.
    pub const LOCATOR_ENTRIES: u64 = 0x0C;
    pub const LOCATOR_BIR_MASK: u32 = 0x7;
    pub const LOCATOR_BLOCK_ID_SHIFT: u32 = 8;
    pub const LOCATOR_OFFSET_MASK: u32 = 0xFFFF_0000;
    pub const BLOCK_ID_COMPONENT: u32 = 1;
}

/// The component register block and the HDM Decoder Capability
/// structure (CXL 3.x section 8.2).
pub mod component {
    pub const BLOCK_SIZE: u64 = 0x10000;
    /// The CXL.cache/CXL.mem capability array, from the block's start.
    pub const CAP_ARRAY: u64 = 0x1000;
    /// Array header: ID (bits 15:0) 1, entry count in bits 31:24.
    pub const CAP_ID_ARRAY: u32 = 1;
    pub const CAP_ID_HDM: u32 = 5;
    pub const CAP_ID_MASK: u32 = 0xFFFF;
    pub const CAP_COUNT_SHIFT: u32 = 24;
    /// Entry: pointer from the array's start in bits 31:20.
    pub const CAP_POINTER_SHIFT: u32 = 20;

    /// HDM structure registers.
    pub const HDM_CAPABILITY: u64 = 0x00;
    pub const HDM_DECODER_COUNT_MASK: u32 = 0xF;
    pub const HDM_GLOBAL_CONTROL: u64 = 0x04;
    /// Decoder n's registers start at 0x10 + 0x20 * n.
    pub const HDM_DECODER0: u64 = 0x10;
    pub const HDM_DECODER_STRIDE: u64 = 0x20;
    pub const DEC_BASE_LO: u64 = 0x00;
    pub const DEC_BASE_HI: u64 = 0x04;
    pub const DEC_SIZE_LO: u64 = 0x08;
    pub const DEC_SIZE_HI: u64 = 0x0C;
    pub const DEC_CTRL: u64 = 0x10;
    pub const CTRL_LOCK_ON_COMMIT: u32 = 1 << 8;
    pub const CTRL_COMMIT: u32 = 1 << 9;
    pub const CTRL_COMMITTED: u32 = 1 << 10;
    pub const CTRL_ERROR_NOT_COMMITTED: u32 = 1 << 11;
    /// Bits 31:28 of `BASE_LO` and `SIZE_LO` hold the address.
    pub const DEC_ADDR_MASK: u32 = 0xF000_0000;
    /// HDM decoder granule: 256 MiB.
    pub const GRANULE: u64 = 256 << 20;

    /// Decoders the count field encodes (CXL 3.x 8.2.4.20.1).
    #[must_use]
    pub fn decoder_count(field: u32) -> Option<u64> {
        const COUNTS: [u64; 13] = [1, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32];
        COUNTS
            .get((field & HDM_DECODER_COUNT_MASK) as usize)
            .copied()
    }

    /// Size of an HDM structure with `decoders` decoders.
    #[must_use]
    pub const fn hdm_size(decoders: u64) -> u64 {
        HDM_DECODER0 + HDM_DECODER_STRIDE * decoders
    }
}

/// Errnos the host interface uses.
pub const EINVAL: i32 = libc::EINVAL;
pub const EIO: i32 = libc::EIO;
