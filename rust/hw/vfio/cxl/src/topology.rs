// SPDX-License-Identifier: GPL-2.0-or-later

//! Safe access to the CXL topology around the device: the fixed memory
//! windows, the root port and host bridge above it, and the host bridge's
//! HDM decoder.  The C side (hw/vfio/cxl-topology.c) only reports and
//! writes; choices are made by `cxl_model::window`.

use std::ffi::{c_void, CStr};

use cxl_model::{
    hdm::{decoder_count_from_encoding, HdmCapability, HdmRegister},
    window::FixedWindow,
};
use util::{Error, Result};

use crate::bindings;

const MAX_WINDOWS: usize = 64;

/// The CXL fixed memory windows of the machine, by index.
pub fn fixed_windows() -> Vec<FixedWindow> {
    let mut raw: Vec<bindings::VFIOCXLWindow> = vec![Default::default(); MAX_WINDOWS];
    // SAFETY: raw has room for MAX_WINDOWS entries; called under the BQL.
    let count = unsafe { bindings::vfio_cxl_get_windows(raw.as_mut_ptr(), MAX_WINDOWS as i32) };
    let count = usize::try_from(count).unwrap_or(0).min(MAX_WINDOWS);
    raw.truncate(count);
    raw.iter()
        .map(|w| FixedWindow {
            index: usize::try_from(w.index).unwrap_or(usize::MAX),
            base: w.base,
            size: w.size,
            targets: w.targets[..w.num_targets as usize]
                .iter()
                .filter(|t| !t.is_null())
                // SAFETY: non-null targets are NUL-terminated strings owned
                // by the window object, which lives as long as the machine.
                .map(|&t| unsafe { CStr::from_ptr(t) }.to_string_lossy().into_owned())
                .collect(),
            interleave_granularity: w.granularity,
        })
        .collect()
}

/// The root port a device sits on and the host bridge above it.
pub struct CxlPort {
    host_bridge: *mut c_void,
    pub host_bridge_id: String,
    pub port_number: u8,
}

impl CxlPort {
    /// Find the CXL root port and host bridge directly above `pdev`.
    ///
    /// # Safety
    ///
    /// `pdev` must point to a device plugged into a bus.
    pub unsafe fn of(pdev: *mut bindings::PCIDevice) -> Result<Self> {
        let mut port = bindings::VFIOCXLPort::default();
        // SAFETY: pdev is a device plugged into a bus, which the C side
        // walks up; port is a valid out-parameter; errp comes from with_errp.
        let found = unsafe {
            Error::with_errp(|errp| bindings::vfio_cxl_find_port(pdev, &mut port, errp))?
        };
        if !found || port.host_bridge.is_null() || port.host_bridge_id.is_null() {
            return Err(Error::msg("cannot find the CXL root port above the device"));
        }
        // SAFETY: the id is the host bridge's qdev id, a C string it owns.
        let id = unsafe { CStr::from_ptr(port.host_bridge_id) };
        Ok(CxlPort {
            host_bridge: port.host_bridge,
            host_bridge_id: id.to_string_lossy().into_owned(),
            port_number: port.port_number,
        })
    }

    /// How many HDM decoders the host bridge has; 0 when it decodes in
    /// passthrough mode.
    pub fn host_bridge_decoders(&self) -> usize {
        let mut cap = 0u32;
        // SAFETY: host_bridge was found by vfio_cxl_find_port and stays
        // while a device below it is realized; cap is a valid out-parameter.
        let present = unsafe {
            bindings::vfio_cxl_host_bridge_read_hdm(
                self.host_bridge,
                HdmRegister::Capability as u32,
                &mut cap,
            )
        };
        if !present {
            return 0;
        }
        decoder_count_from_encoding(HdmCapability::from(cap).decoder_count().value()).unwrap_or(0)
    }

    /// Write `(offset, value)` dwords into the host bridge's HDM decoder
    /// capability.  Returns false if the host bridge decodes in passthrough
    /// mode and has no decoder to program.
    pub fn write_host_bridge_hdm(&self, regs: &[(u64, u32)]) -> bool {
        let offsets: Vec<u32> = regs
            .iter()
            .map(|&(o, _)| u32::try_from(o).unwrap_or(u32::MAX))
            .collect();
        let values: Vec<u32> = regs.iter().map(|&(_, v)| v).collect();
        let n = u32::try_from(regs.len()).unwrap_or(0);
        // SAFETY: host_bridge was found by vfio_cxl_find_port and devices
        // are not removed while a device below them is realized.
        unsafe {
            bindings::vfio_cxl_host_bridge_write_hdm(
                self.host_bridge,
                offsets.as_ptr(),
                values.as_ptr(),
                n,
            )
        }
    }
}
