// SPDX-License-Identifier: GPL-2.0-or-later

//! The CXL content of the simulated host, taken from the register model
//! (`cxl-model`): the `COMP_REGS` shadow, the CXL Device DVSEC shadow, the
//! Register Locator, and the region capability encodings.  This module
//! only wires the model to the simulator; it holds no register rules.

use nix::errno::Errno;

/// How config accesses are split around the DVSEC (shared with the device).
pub use cxl_model::dvsec::split_access;

use cxl_model::component::COMPONENT_BLOCK_SIZE;
use cxl_model::dvsec::{
    build_register_locator, DeviceDvsecConfig, DvsecWriteEffect, HostDeviceDvsec, RegisterBlock,
    BLOCK_ID_COMPONENT,
};
use cxl_model::host::HostCompRegs;
use cxl_model::uapi::{
    encode_cap_chain, RegionTypeCap, SparseMmapCap, UapiVersion, VFIO_REGION_SUBTYPE_CXL,
    VFIO_REGION_SUBTYPE_CXL_COMP_REGS, VFIO_REGION_TYPE_CXL,
};

use crate::options::{DeviceOptions, Uapi};
use crate::protocol::RegionInfo;

/// Subtype of the memory region.
pub const SUBTYPE_MEMORY: u32 = VFIO_REGION_SUBTYPE_CXL;
/// Subtype of the `COMP_REGS` region.
pub const SUBTYPE_COMP_REGS: u32 = VFIO_REGION_SUBTYPE_CXL_COMP_REGS;

/// What a config write to the DVSEC asks of the "hardware".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DvsecEffect {
    None,
    CxlReset,
    CacheWbi,
}

const fn version(u: Uapi) -> UapiVersion {
    match u {
        Uapi::V2 => UapiVersion::V2,
        Uapi::V3 => UapiVersion::V3,
    }
}

/// The host kernel's CXL state for one open of the device.
pub struct CxlHost {
    regs: HostCompRegs,
    dvsec: HostDeviceDvsec,
    /// The firmware's DVSEC, which a v4 reset reloads the shadow from.
    dvsec_firmware: DeviceDvsecConfig,
    block_offset: u64,
}

impl CxlHost {
    /// The state right after the device is opened; the component block
    /// sits at `block_offset` in BAR 0.
    #[must_use]
    pub fn new(opts: &DeviceOptions, block_offset: u64) -> Self {
        let v = version(opts.uapi);
        let cfg = DeviceDvsecConfig {
            mem_size: opts.memory_size,
            mem_base: opts.hpa,
            // A Type-2 device: coherent cache and device memory.
            cache_capable: true,
            hdm_count: 1,
            mem_active: true,
            mem_enable: opts.committed,
            config_lock: false,
            cxl_reset_capable: true,
            cache_wbi_capable: true,
        };
        Self {
            regs: HostCompRegs::new(v, opts.hpa, opts.memory_size, opts.committed),
            dvsec: HostDeviceDvsec::new(v, &cfg),
            dvsec_firmware: cfg,
            block_offset,
        }
    }

    /// Size of the component register block in the BAR.
    #[must_use]
    pub const fn component_block_size(&self) -> u64 {
        COMPONENT_BLOCK_SIZE
    }

    /// Size of the `COMP_REGS` region as the layout defines it.
    #[must_use]
    pub fn comp_regs_size(&self) -> u64 {
        self.regs.region_size()
    }

    pub fn comp_regs_read(&self, offset: u64, buf: &mut [u8]) -> Result<(), Errno> {
        self.regs
            .read(offset, buf)
            .map(|_| ())
            .map_err(|e| Errno::from_raw(e.errno()))
    }

    pub fn comp_regs_write(&mut self, offset: u64, data: &[u8]) -> Result<(), Errno> {
        self.regs
            .write(offset, data)
            .map(|_| ())
            .map_err(|e| Errno::from_raw(e.errno()))
    }

    /// After `VFIO_DEVICE_RESET`: the shadows as the kernel leaves them.
    pub fn reset_after_flr(&mut self) {
        self.regs.reset();
        self.dvsec.reset(&self.dvsec_firmware);
    }

    /// Decoder 0 reads COMMITTED in the shadow.
    #[must_use]
    pub fn decoder0_committed(&self) -> bool {
        self.regs.decoder0().committed()
    }

    /// Length of the CXL Device DVSEC in config space.
    #[must_use]
    pub fn dvsec_len(&self) -> usize {
        usize::from(self.dvsec.len())
    }

    /// Links the Device DVSEC to the next extended capability and returns
    /// its bytes.
    pub fn link_dvsec(&mut self, next: u16) -> Vec<u8> {
        self.dvsec.set_next(next);
        self.dvsec.bytes().to_vec()
    }

    /// The Register Locator DVSEC naming BAR 0's component block.
    #[must_use]
    pub fn register_locator(&self, next: u16) -> Vec<u8> {
        let block = RegisterBlock {
            bir: 0,
            block_id: BLOCK_ID_COMPONENT,
            offset: self.block_offset,
        };
        build_register_locator(&[block], next)
    }

    /// Reads the Device DVSEC shadow at `offset` from its start.
    pub fn dvsec_read(&self, offset: usize, buf: &mut [u8]) {
        self.dvsec
            .read(u16::try_from(offset).unwrap_or(u16::MAX), buf);
    }

    /// Writes the Device DVSEC shadow; v2 forwards reset and write-back
    /// requests to the "hardware", which completes them at once.
    pub fn dvsec_write(&mut self, offset: usize, data: &[u8]) -> DvsecEffect {
        match self
            .dvsec
            .write(u16::try_from(offset).unwrap_or(u16::MAX), data)
        {
            DvsecWriteEffect::None => DvsecEffect::None,
            DvsecWriteEffect::CxlResetRequested => {
                self.dvsec.set_reset_status(true, false);
                DvsecEffect::CxlReset
            }
            DvsecWriteEffect::CacheWbiRequested => DvsecEffect::CacheWbi,
        }
    }
}

/// The BAR's capability chain: one sparse-mmap capability.
#[must_use]
pub fn sparse_mmap_caps(areas: &[(u64, u64)]) -> Vec<u8> {
    let cap = SparseMmapCap {
        areas: areas.iter().copied().filter(|&(_, s)| s != 0).collect(),
    };
    encode_cap_chain(RegionInfo::SIZE, &[cap.encode(0)])
}

/// A CXL region's capability chain: the region type capability.  With
/// `looped` (the `cap-chain-loop` fault) its `next` points at itself.
#[must_use]
pub fn region_type_caps(subtype: u32, looped: bool) -> Vec<u8> {
    let cap = RegionTypeCap {
        ty: VFIO_REGION_TYPE_CXL,
        subtype,
    };
    let mut chain = encode_cap_chain(RegionInfo::SIZE, &[cap.encode(0)]);
    if looped {
        chain[4..8].copy_from_slice(&RegionInfo::SIZE.to_le_bytes());
    }
    chain
}
