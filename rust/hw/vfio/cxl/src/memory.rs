// SPDX-License-Identifier: GPL-2.0-or-later

//! The two memory regions the device adds to the guest's view: the host's
//! CXL memory region, mapped directly (a RAM-device region) over the fixed
//! memory window, and the emulated component block overlaid on the BAR.

use std::{ffi::CString, ptr::NonNull};

use system::bindings::{
    get_system_memory, memory_region_add_subregion_overlap, memory_region_del_subregion,
    MemoryRegion,
};
use util::{Error, Result};

use crate::bindings;

/// Overlays take precedence over what they cover: the window's trapping
/// region and the BAR's trapped range both sit at priority 0.
const OVERLAY_PRIORITY: i32 = 1;

/// The host's memory region mmapped and placed at a guest address.
///
/// Like vfio-pci's BARs, it is taken out of the guest's view at unrealize
/// ([`MappedMemory::unmap`]) but freed only when the device is finalized
/// (on drop): until then a stale `FlatView` may still point at it.
pub struct MappedMemory {
    region: Box<bindings::VFIORegion>,
    mapped: bool,
}

impl MappedMemory {
    /// Set up region `index` of the device, mmap it and place it in system
    /// memory at `base`.  Pages are faulted in only when touched.  `label`
    /// names the device in the memory region's name (`info mtree`).
    ///
    /// # Safety
    ///
    /// `owner` and `vbasedev` must be the realized device that owns the
    /// region; the result must be dropped before the device is finalized.
    pub unsafe fn map(
        owner: *mut qom::bindings::Object,
        vbasedev: *mut bindings::VFIODevice,
        index: u32,
        base: u64,
        label: &str,
    ) -> Result<Self> {
        let mut region: Box<bindings::VFIORegion> = Box::default();
        let name = CString::new(format!("vfio-cxl-memory-{index} of {label}").replace('\0', " "))
            .unwrap_or_default();
        let index_c = i32::try_from(index).map_err(|_| Error::msg("bad region index"))?;
        // SAFETY: owner and vbasedev are the realized device that owns the
        // region; region is zeroed, as vfio_region_setup expects, and boxed,
        // so it does not move while QEMU holds pointers into it.
        let ret = unsafe {
            bindings::vfio_region_setup(owner, vbasedev, &mut *region, index_c, name.as_ptr())
        };
        if ret != 0 {
            return Err(Error::format(format_args!(
                "cannot set up memory region {index}: {}",
                std::io::Error::from_raw_os_error(-ret)
            )));
        }
        // SAFETY: the region was set up above.
        let mmap_ret = unsafe { bindings::vfio_region_mmap(&mut *region) };
        if mmap_ret != 0 || region.nr_mmaps == 0 || region.mem.is_null() {
            // SAFETY: undo vfio_region_setup.
            unsafe {
                bindings::vfio_region_exit(&mut *region);
                bindings::vfio_region_finalize(&mut *region);
            }
            let why = if mmap_ret == 0 {
                "the host offers no mmap area (is x-no-mmap set?)".to_string()
            } else {
                std::io::Error::from_raw_os_error(-mmap_ret).to_string()
            };
            return Err(Error::format(format_args!(
                "cannot mmap memory region {index} ({why}): the device memory must be \
                 directly mappable"
            )));
        }
        // SAFETY: region.mem is a valid MemoryRegion owned by the region.
        unsafe {
            memory_region_add_subregion_overlap(
                get_system_memory(),
                base,
                region.mem.cast::<MemoryRegion>(),
                OVERLAY_PRIORITY,
            );
        }
        Ok(MappedMemory {
            region,
            mapped: true,
        })
    }
}

impl MappedMemory {
    /// Show or hide the memory from the guest, keeping the mapping.
    pub fn set_visible(&self, visible: bool) {
        if self.mapped {
            // SAFETY: the region is set up and owned by the device.
            unsafe {
                system::bindings::memory_region_set_enabled(
                    self.region.mem.cast::<MemoryRegion>(),
                    visible,
                );
            }
        }
    }

    /// Take the memory out of the guest's view and unmap it from QEMU.
    pub fn unmap(&mut self) {
        if !self.mapped {
            return;
        }
        self.mapped = false;
        // SAFETY: the region was placed in system memory by map().
        unsafe {
            memory_region_del_subregion(
                get_system_memory(),
                self.region.mem.cast::<MemoryRegion>(),
            );
            bindings::vfio_region_exit(&mut *self.region);
        }
    }
}

impl Drop for MappedMemory {
    fn drop(&mut self) {
        self.unmap();
        // SAFETY: set up by map(); per map()'s contract the device is being
        // finalized, so no FlatView refers to the region any more.
        unsafe { bindings::vfio_region_finalize(&mut *self.region) }
    }
}

/// The emulated component block placed over its range of the BAR.
pub struct ComponentOverlay {
    bar: NonNull<MemoryRegion>,
    overlay: NonNull<MemoryRegion>,
}

impl ComponentOverlay {
    /// # Safety
    ///
    /// Both regions must outlive the returned value.
    pub unsafe fn add(
        bar: *mut MemoryRegion,
        offset: u64,
        overlay: *mut MemoryRegion,
    ) -> Result<Self> {
        let bar = NonNull::new(bar).ok_or_else(|| Error::msg("the component BAR is not set up"))?;
        let overlay = NonNull::new(overlay).unwrap();
        // SAFETY: both regions are initialized and outlive the overlay,
        // whose drop removes the subregion again.
        unsafe {
            memory_region_add_subregion_overlap(
                bar.as_ptr(),
                offset,
                overlay.as_ptr(),
                OVERLAY_PRIORITY,
            );
        }
        Ok(ComponentOverlay { bar, overlay })
    }
}

impl Drop for ComponentOverlay {
    fn drop(&mut self) {
        // SAFETY: add() placed overlay inside bar.
        unsafe { memory_region_del_subregion(self.bar.as_ptr(), self.overlay.as_ptr()) }
    }
}
