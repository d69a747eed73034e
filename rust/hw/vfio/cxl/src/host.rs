// SPDX-License-Identifier: GPL-2.0-or-later

//! [`HostDevice`] over a realized `VFIOPCIDevice`: region information,
//! region reads and writes, (kernel VFIO only) the device-info capability,
//! and the host reset.  The same calls serve kernel VFIO and vfio-user,
//! because QEMU routes them through the device's `io_ops`.  Every raw read
//! of the C device structures that the CXL code needs lives here.

use std::{
    ffi::{c_int, c_void},
    io,
    ptr::{null_mut, NonNull},
    slice,
};

use cxl_model::host_device::{HostDevice, ResetKind};
use system::bindings::MemoryRegion;

use crate::bindings;

/// The host side of one realized VFIO PCI device.
///
/// Invariant: `vdev` points to a realized `VFIOPCIDevice` for as long as
/// the value exists (it lives inside the device's CXL state, which
/// unrealize drops), and is used under the BQL only.
#[derive(Clone, Copy)]
pub struct QemuHost {
    vdev: NonNull<bindings::VFIOPCIDevice>,
    /// Kernel VFIO (device-info capabilities exist) rather than vfio-user.
    kernel: bool,
}

impl QemuHost {
    /// # Safety
    ///
    /// `vdev` must point to a realized `VFIOPCIDevice` that outlives the
    /// returned value (and its copies).
    pub const unsafe fn new(vdev: NonNull<bindings::VFIOPCIDevice>, kernel: bool) -> Self {
        QemuHost { vdev, kernel }
    }

    /// The device's `VFIODevice`.
    pub fn vbasedev(&self) -> *mut bindings::VFIODevice {
        // SAFETY: vdev is valid (type invariant); this takes a field address.
        unsafe { std::ptr::addr_of_mut!((*self.vdev.as_ptr()).vbasedev) }
    }

    /// The memory region of BAR `bar`, null if the BAR is not set up.
    pub fn bar_region(&self, bar: u8) -> *mut MemoryRegion {
        // SAFETY: vdev is valid (type invariant); bars has PCI_NUM_REGIONS
        // entries, more than the six BARs discovery accepts.
        unsafe {
            (*self.vdev.as_ptr())
                .bars
                .get(usize::from(bar))
                .map_or(null_mut(), |b| b.region.mem.cast::<MemoryRegion>())
        }
    }

    fn io_ops(&self) -> io::Result<&bindings::VFIODeviceIOOps> {
        // SAFETY: a realized device's io_ops is set by its realize and
        // never freed while it is realized.
        unsafe { (*self.vbasedev()).io_ops.as_ref() }.ok_or_else(invalid)
    }
}

impl HostDevice for QemuHost {
    fn region_count(&self) -> u32 {
        // SAFETY: the device is realized (type invariant).
        unsafe { (*self.vbasedev()).num_initial_regions }
    }

    fn region_info(&self, index: u32) -> Option<Vec<u8>> {
        let mut info: *mut bindings::vfio_region_info = null_mut();
        let index_c = c_int::try_from(index).ok()?;
        // SAFETY: the device is realized; info receives a buffer of
        // info->argsz bytes, cached by QEMU for the initial regions.
        let ret =
            unsafe { bindings::vfio_device_get_region_info(self.vbasedev(), index_c, &mut info) };
        if ret != 0 || info.is_null() {
            return None;
        }
        // SAFETY: QEMU filled info with argsz valid bytes, which we copy;
        // regions past the initial ones are not cached, so that buffer is
        // ours to free.
        unsafe {
            let len = (*info).argsz as usize;
            let bytes = slice::from_raw_parts(info.cast::<u8>(), len).to_vec();
            if index >= self.region_count() {
                glib_sys::g_free(info.cast());
            }
            Some(bytes)
        }
    }

    fn region_read(&self, index: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let (nr, off, size) = vfio_args(index, offset, buf.len())?;
        let read = self.io_ops()?.region_read.ok_or_else(invalid)?;
        // SAFETY: the device is realized; buf has size writable bytes.
        let ret = unsafe {
            read(
                self.vbasedev(),
                nr,
                off,
                size,
                buf.as_mut_ptr().cast::<c_void>(),
            )
        };
        complete(ret, buf.len())
    }

    fn region_write(&self, index: u32, offset: u64, data: &[u8]) -> io::Result<()> {
        let (nr, off, size) = vfio_args(index, offset, data.len())?;
        let write = self.io_ops()?.region_write.ok_or_else(invalid)?;
        // SAFETY: the device is realized; QEMU only reads the size bytes of
        // data (the C prototype is not const-qualified).
        let ret = unsafe {
            let data = data.as_ptr().cast_mut().cast::<c_void>();
            write(self.vbasedev(), nr, off, size, data, true)
        };
        complete(ret, data.len())
    }

    fn device_info(&self) -> Option<Vec<u8>> {
        // SAFETY: the device is realized; fd is its kernel device fd (or
        // negative over vfio-user); QEMU allocates the reply, which is ours
        // to copy and free.
        unsafe {
            let fd = (*self.vbasedev()).fd;
            if !self.kernel || fd < 0 {
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

    fn can_reset(&self) -> bool {
        // SAFETY: the device is realized (type invariant).
        unsafe { (*self.vbasedev()).reset_works }
    }

    fn connected(&self) -> bool {
        // SAFETY: the device is realized (type invariant); the C side takes
        // the vfio-user proxy's lock.
        unsafe { bindings::vfio_cxl_host_connected(self.vdev.as_ptr()) }
    }

    fn reset(&self, kind: ResetKind) -> io::Result<()> {
        // A guest FLR or CXL Reset resets the function the way the host
        // does for a guest FLR of a plain vfio-pci device: the guest
        // quiesced it and restores it, and a CXL Reset leaves PCI
        // configuration alone.  Only a system or bus reset runs vfio-pci's
        // own sequence around it (interrupts off, BARs cleared), as
        // vfio-pci's reset does.
        let quiesce = kind == ResetKind::SystemOrBus;
        // SAFETY: the device is realized; errp comes from with_errp.
        let ok = unsafe {
            util::Error::with_errp(|errp| {
                bindings::vfio_cxl_reset_host(self.vdev.as_ptr(), quiesce, errp)
            })
        }
        .map_err(|e| io::Error::other(e.to_string()))?;
        if ok {
            Ok(())
        } else {
            Err(io::Error::other("the host device reset failed"))
        }
    }
}

/// The region number, offset and size of an access as the VFIO I/O ops
/// take them.
fn vfio_args(index: u32, offset: u64, len: usize) -> io::Result<(u8, i64, u32)> {
    Ok((
        u8::try_from(index).map_err(|_| invalid())?,
        i64::try_from(offset).map_err(|_| invalid())?,
        u32::try_from(len).map_err(|_| invalid())?,
    ))
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

/// Whether the user asked for `enable-migration=on`, which cannot work.
///
/// # Safety
///
/// `vdev` must point to an initialized `VFIOPCIDevice` (its properties
/// set, realized or not).
pub unsafe fn migration_requested(vdev: NonNull<bindings::VFIOPCIDevice>) -> bool {
    // SAFETY: vdev points to an initialized VFIOPCIDevice, whose vbasedev
    // field QOM set up with its properties before realize.
    unsafe { (*vdev.as_ptr()).vbasedev.enable_migration == bindings::ON_OFF_AUTO_ON }
}
