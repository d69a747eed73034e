// SPDX-License-Identifier: GPL-2.0-or-later

//! How the device asks its host: region information, region reads and
//! writes, config space, and (kernel VFIO only) the device-info
//! capability.  The same calls serve kernel VFIO and vfio-user, because
//! QEMU routes them through the device's `io_ops`.

use std::{
    ffi::{c_int, c_void},
    io,
    ptr::{null_mut, NonNull},
    slice,
};

use cxl_model::{discovery::RegionDesc, uapi};

use crate::bindings;

/// Size of `PCIe` configuration space.
pub const CONFIG_SPACE_SIZE: usize = 4096;

/// The host side of one VFIO device.
///
/// Holds the `VFIODevice` embedded in the device's `VFIOPCIDevice`; valid
/// for as long as the device is realized, and used under the BQL only.
pub struct VfioHost {
    vbasedev: NonNull<bindings::VFIODevice>,
}

impl VfioHost {
    /// # Safety
    ///
    /// `vdev` must point to a realized `VFIOPCIDevice` that outlives the
    /// returned value.
    pub unsafe fn new(vdev: *mut bindings::VFIOPCIDevice) -> Self {
        // SAFETY: per the contract, vdev is valid; vbasedev is a field.
        let vbasedev = unsafe { NonNull::from(&mut (*vdev).vbasedev) };
        VfioHost { vbasedev }
    }

    fn dev(&self) -> *mut bindings::VFIODevice {
        self.vbasedev.as_ptr()
    }

    /// Number of regions the device reports.
    pub fn num_regions(&self) -> u32 {
        // SAFETY: the device is realized (type invariant).
        unsafe { (*self.dev()).num_initial_regions }
    }

    /// The raw `vfio_region_info` of region `index`, capabilities
    /// included, or `None` if the host does not describe it.
    pub fn region_info_bytes(&self, index: u32) -> Option<Vec<u8>> {
        let mut info: *mut bindings::vfio_region_info = null_mut();
        let index_c = c_int::try_from(index).ok()?;
        // SAFETY: the device is realized; info receives a buffer of
        // info->argsz bytes, cached by QEMU for the initial regions.
        let ret = unsafe { bindings::vfio_device_get_region_info(self.dev(), index_c, &mut info) };
        if ret != 0 || info.is_null() {
            return None;
        }
        // SAFETY: info points to argsz valid bytes, which we copy.
        let bytes = unsafe {
            let len = (*info).argsz as usize;
            slice::from_raw_parts(info.cast::<u8>(), len).to_vec()
        };
        // SAFETY: regions past the initial ones are not cached: ours to free.
        unsafe {
            if index >= (*self.dev()).num_initial_regions {
                glib_sys::g_free(info.cast());
            }
        }
        Some(bytes)
    }

    /// Region descriptions for discovery, one per region the host
    /// describes.  A region whose capability chain is malformed is an
    /// error: such a host is broken.
    pub fn region_descs(&self) -> Result<Vec<RegionDesc>, String> {
        let mut regions = Vec::new();
        for index in 0..self.num_regions() {
            let Some(bytes) = self.region_info_bytes(index) else {
                continue;
            };
            let info = uapi::parse_region_info(&bytes)
                .map_err(|e| format!("region {index} information is invalid: {e}"))?;
            let cap_type = uapi::region_info_type(&bytes)
                .map_err(|e| format!("region {index} capabilities are invalid: {e}"))?;
            regions.push(RegionDesc {
                index,
                size: info.size,
                flags: info.flags,
                cap_type,
            });
        }
        Ok(regions)
    }

    /// Read `buf.len()` bytes at `offset` of region `index`.
    pub fn region_read(&self, index: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let nr = u8::try_from(index).map_err(|_| invalid())?;
        let off = i64::try_from(offset).map_err(|_| invalid())?;
        let size = u32::try_from(buf.len()).map_err(|_| invalid())?;
        // SAFETY: the device is realized; io_ops is set by its realize.
        let ret = unsafe {
            let ops = &*(*self.dev()).io_ops;
            let read = ops.region_read.ok_or_else(invalid)?;
            read(self.dev(), nr, off, size, buf.as_mut_ptr().cast::<c_void>())
        };
        complete(ret, buf.len())
    }

    /// Write `data` at `offset` of region `index`.
    pub fn region_write(&self, index: u32, offset: u64, data: &[u8]) -> io::Result<()> {
        let nr = u8::try_from(index).map_err(|_| invalid())?;
        let off = i64::try_from(offset).map_err(|_| invalid())?;
        let size = u32::try_from(data.len()).map_err(|_| invalid())?;
        // SAFETY: the device is realized; the buffer is only read by QEMU
        // (the C prototype is not const-qualified).
        let ret = unsafe {
            let ops = &*(*self.dev()).io_ops;
            let write = ops.region_write.ok_or_else(invalid)?;
            write(
                self.dev(),
                nr,
                off,
                size,
                data.as_ptr().cast_mut().cast::<c_void>(),
                true,
            )
        };
        complete(ret, data.len())
    }

    /// One dword of region `index`.
    pub fn read32(&self, index: u32, offset: u64) -> io::Result<u32> {
        let mut buf = [0u8; 4];
        self.region_read(index, offset, &mut buf)?;
        Ok(u32::from_le_bytes(buf))
    }

    /// Write one dword of region `index`.
    pub fn write32(&self, index: u32, offset: u64, value: u32) -> io::Result<()> {
        self.region_write(index, offset, &value.to_le_bytes())
    }

    /// The host's configuration space, as the device presents it.
    pub fn config_space(&self) -> io::Result<Vec<u8>> {
        let mut config = vec![0u8; CONFIG_SPACE_SIZE];
        self.region_read(uapi::VFIO_PCI_CONFIG_REGION_INDEX, 0, &mut config)?;
        Ok(config)
    }

    /// The raw `vfio_device_info` with its capability chain, from the
    /// kernel (vfio-user has no device-info capabilities).
    pub fn kernel_device_info_bytes(&self) -> Option<Vec<u8>> {
        // SAFETY: the device is realized; fd is its kernel device fd.
        unsafe {
            let fd = (*self.dev()).fd;
            if fd < 0 {
                return None;
            }
            let info = bindings::vfio_get_device_info(fd);
            if info.is_null() {
                return None;
            }
            let len = (*info).argsz as usize;
            let bytes = slice::from_raw_parts(info.cast::<u8>(), len).to_vec();
            glib_sys::g_free(info.cast());
            Some(bytes)
        }
    }
}

/// Reset the host device (vfio-pci's pre- and post-reset steps around a
/// device reset) and report whether the host reset worked; `keep_command`
/// restores the guest's PCI Command register afterwards.
///
/// # Safety
///
/// `vdev` must be a realized VFIO PCI device.
pub unsafe fn reset_host(
    vdev: *mut bindings::VFIOPCIDevice,
    keep_command: bool,
) -> util::Result<()> {
    // SAFETY: per the contract; errp comes from Error::with_errp.
    let ok = unsafe {
        util::Error::with_errp(|errp| bindings::vfio_cxl_reset_host(vdev, keep_command, errp))?
    };
    if ok {
        Ok(())
    } else {
        Err(util::Error::msg("the host device reset failed"))
    }
}

/// An access the VFIO interface cannot express (index, offset or size out
/// of its range, or no such operation).
fn invalid() -> io::Error {
    io::ErrorKind::InvalidInput.into()
}

/// Turn an `io_ops` return value (bytes or negative errno) into a result.
fn complete(ret: c_int, len: usize) -> io::Result<()> {
    match usize::try_from(ret) {
        Ok(n) if n == len => Ok(()),
        Ok(n) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("short transfer: {n} of {len} bytes"),
        )),
        Err(_) => Err(io::Error::from_raw_os_error(-ret)),
    }
}
