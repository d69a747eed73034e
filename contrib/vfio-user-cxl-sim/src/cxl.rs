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
    encode_cap_chain, CompRegsCap, RegionTypeCap, SparseMmapCap, UapiVersion,
    VFIO_REGION_SUBTYPE_CXL, VFIO_REGION_SUBTYPE_CXL_COMP_REGS, VFIO_REGION_TYPE_CXL,
    VFIO_REGION_TYPE_CXL_EARLY_V4,
};

use crate::options::{DeviceOptions, Uapi, V4RegionType};
use crate::protocol::REGION_INFO_SIZE;

/// Subtype of the memory region.
pub const SUBTYPE_MEMORY: u32 = VFIO_REGION_SUBTYPE_CXL;
/// Subtype of the `COMP_REGS` region.
pub const SUBTYPE_COMP_REGS: u32 = VFIO_REGION_SUBTYPE_CXL_COMP_REGS;

const fn version(u: Uapi) -> UapiVersion {
    match u {
        Uapi::V2 => UapiVersion::V2,
        Uapi::V3 => UapiVersion::V3,
        Uapi::V4 => UapiVersion::V4,
    }
}

/// The region type both CXL regions carry.
#[must_use]
pub const fn region_type(opts: &DeviceOptions) -> u32 {
    match (opts.uapi, opts.v4_region_type) {
        (Uapi::V4, V4RegionType::Early) => VFIO_REGION_TYPE_CXL_EARLY_V4,
        _ => VFIO_REGION_TYPE_CXL,
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

    /// Reads `COMP_REGS`; returns the bytes read (v4 stops at the end).
    pub fn comp_regs_read(&self, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        self.regs
            .read(offset, buf)
            .map_err(|e| Errno::from_raw(e.errno()))
    }

    /// Writes `COMP_REGS`; returns the bytes accepted (v4 stops at the end).
    pub fn comp_regs_write(&mut self, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        self.regs
            .write(offset, data)
            .map_err(|e| Errno::from_raw(e.errno()))
    }

    /// v4: the `COMP_REGS` region capability (BAR 0, offset of the HDM
    /// decoder block in it).
    #[must_use]
    pub fn comp_regs_geometry(&self) -> CompRegsCap {
        CompRegsCap {
            bar: 0,
            hdm_offset: self.block_offset + self.regs.hdm_block_offset(),
        }
    }

    /// The HDM decoder block's range in the BAR (v4 keeps it out of raw
    /// BAR access).
    #[must_use]
    pub fn hdm_bar_range(&self) -> std::ops::Range<u64> {
        let start = self.comp_regs_geometry().hdm_offset;
        start..start + self.regs.region_size()
    }

    /// v4: what the hardware's component block holds outside the HDM
    /// block, for raw BAR reads: the capability array (the rest of the
    /// block reads 0).  Returns (block offset, bytes).
    #[must_use]
    pub fn component_block_image(&self) -> (u64, Vec<u8>) {
        let at = cxl_model::component::CAP_ARRAY_OFFSET;
        let bytes = (0..self.regs.cap_array_len())
            .step_by(4)
            .flat_map(|o| self.regs.block_dword(at + o).to_le_bytes())
            .collect();
        (at, bytes)
    }

    /// After a reset: the shadows as the kernel leaves them (v4: the
    /// decoder restored and the DVSEC snapshot reloaded).
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

    /// Writes the Device DVSEC shadow and says what the write asks of the
    /// "hardware": v2 forwards reset and write-back requests, which v2's
    /// hardware completes at once (reported here); v4 asks the caller to
    /// run the reset and report it with [`CxlHost::set_reset_status`].
    pub fn dvsec_write(&mut self, offset: usize, data: &[u8]) -> DvsecWriteEffect {
        let effect = self
            .dvsec
            .write(u16::try_from(offset).unwrap_or(u16::MAX), data);
        if effect == DvsecWriteEffect::CxlResetRequested && self.regs.version() == UapiVersion::V2 {
            self.dvsec.set_reset_status(true, false);
        }
        effect
    }

    /// Reports a CXL Reset's outcome in DVSEC Status2.
    pub fn set_reset_status(&mut self, ok: bool) {
        self.dvsec.set_reset_status(ok, !ok);
    }
}

/// The BAR's capability chain: one sparse-mmap capability.
#[must_use]
pub fn sparse_mmap_caps(areas: &[(u64, u64)]) -> Vec<u8> {
    let cap = SparseMmapCap {
        areas: areas.iter().copied().filter(|&(_, s)| s != 0).collect(),
    };
    encode_cap_chain(REGION_INFO_SIZE, &[cap.encode(0)])
}

/// A CXL region's capability chain: the region type capability of type
/// `ty`, then `more` (v4's `COMP_REGS` geometry).  With `looped` (the
/// `cap-chain-loop` fault) the first capability's `next` points at itself.
#[must_use]
pub fn region_type_caps(ty: u32, subtype: u32, more: Option<CompRegsCap>, looped: bool) -> Vec<u8> {
    let cap = RegionTypeCap { ty, subtype };
    let mut caps = vec![cap.encode(0)];
    caps.extend(more.map(|m| m.encode(0)));
    let mut chain = encode_cap_chain(REGION_INFO_SIZE, &caps);
    if looped {
        chain[4..8].copy_from_slice(&REGION_INFO_SIZE.to_le_bytes());
    }
    chain
}
