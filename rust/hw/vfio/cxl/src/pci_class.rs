// SPDX-License-Identifier: GPL-2.0-or-later

//! QOM plumbing for Rust subclasses of the C VFIO PCI devices.
//!
//! VFIO has no class struct of its own: `vfio-pci` and `vfio-user-pci` fill
//! in a plain `PCIDeviceClass`.  A Rust subclass therefore wraps that class,
//! remembers the parent's `realize`, `exit` and legacy reset when its class
//! is initialized, and installs trampolines that run the parent first and
//! then the Rust code (or the reverse on teardown).  `DeviceImpl::REALIZE`
//! stays unset on purpose: it would replace `pci_qdev_realize`, which is
//! what registers the function on its bus before calling the PCI realize.

use std::{
    ffi::{c_int, CStr},
    ptr::{null_mut, NonNull},
};

use common::Opaque;
use hwcore::{DeviceImpl, DeviceState};
use qom::{prelude::*, Object};
use util::{bindings::error_propagate, Error, Result};

use crate::bindings;

/// `VFIOPCIDevice`: the instance struct of the abstract `vfio-pci-device`,
/// shared by `vfio-pci` and `vfio-user-pci`.
#[repr(transparent)]
#[derive(Debug, common::Wrapper)]
pub struct VfioPciDevice(Opaque<bindings::VFIOPCIDevice>);

// SAFETY: QEMU accesses the device under the BQL only.
unsafe impl Send for VfioPciDevice {}
// SAFETY: as above.
unsafe impl Sync for VfioPciDevice {}

// SAFETY: the C type "vfio-pci-device" has instance struct VFIOPCIDevice and
// class struct PCIDeviceClass (it declares no class_size of its own).
unsafe impl ObjectType for VfioPciDevice {
    type Class = bindings::PCIDeviceClass;
    const TYPE_NAME: &'static CStr = c"vfio-pci-device";
}
qom_isa!(VfioPciDevice: DeviceState, Object);

/// `vfio-pci`: kernel VFIO, instance struct `VFIOPCIDevice`.
#[repr(transparent)]
#[derive(Debug, common::Wrapper)]
pub struct VfioPci(Opaque<bindings::VFIOPCIDevice>);

// SAFETY: QEMU accesses the device under the BQL only.
unsafe impl Send for VfioPci {}
// SAFETY: as above.
unsafe impl Sync for VfioPci {}

// SAFETY: "vfio-pci" keeps its parent's instance and class structs.
unsafe impl ObjectType for VfioPci {
    type Class = bindings::PCIDeviceClass;
    const TYPE_NAME: &'static CStr = c"vfio-pci";
}
qom_isa!(VfioPci: VfioPciDevice, DeviceState, Object);

/// `vfio-user-pci`: a device behind a vfio-user socket, instance struct
/// `VFIOUserPCIDevice` (which starts with a `VFIOPCIDevice`).
#[repr(transparent)]
#[derive(Debug, common::Wrapper)]
pub struct VfioUserPci(Opaque<bindings::VFIOUserPCIDevice>);

// SAFETY: QEMU accesses the device under the BQL only.
unsafe impl Send for VfioUserPci {}
// SAFETY: as above.
unsafe impl Sync for VfioUserPci {}

// SAFETY: "vfio-user-pci" has instance struct VFIOUserPCIDevice, whose first
// field is a VFIOPCIDevice, and keeps PCIDeviceClass as class struct.
unsafe impl ObjectType for VfioUserPci {
    type Class = bindings::PCIDeviceClass;
    const TYPE_NAME: &'static CStr = c"vfio-user-pci";
}
qom_isa!(VfioUserPci: VfioPciDevice, DeviceState, Object);

type PciRealizeFn = unsafe extern "C" fn(*mut bindings::PCIDevice, *mut *mut util::bindings::Error);
type PciExitFn = unsafe extern "C" fn(*mut bindings::PCIDevice);
type DeviceResetFn = unsafe extern "C" fn(*mut hwcore::bindings::DeviceState);
type ConfigReadFn = unsafe extern "C" fn(*mut bindings::PCIDevice, u32, c_int) -> u32;
type ConfigWriteFn = unsafe extern "C" fn(*mut bindings::PCIDevice, u32, u32, c_int);

/// Class struct of the Rust VFIO subclasses: the parent's `PCIDeviceClass`
/// followed by the parent methods that the trampolines chain to.
#[repr(C)]
pub struct VfioCxlClass {
    parent_class: bindings::PCIDeviceClass,
    parent_realize: Option<PciRealizeFn>,
    parent_exit: Option<PciExitFn>,
    parent_reset: Option<DeviceResetFn>,
    parent_config_read: Option<ConfigReadFn>,
    parent_config_write: Option<ConfigWriteFn>,
}

/// The hooks a Rust VFIO subclass adds around its parent's.
pub trait VfioSubclassImpl: DeviceImpl + IsA<VfioPciDevice> {
    /// What `-device help` says of the type.
    const DESCRIPTION: &'static CStr;

    /// Adds class properties and descriptions, once the parent's and the
    /// type's own `#[property]` fields are registered.
    fn add_class_properties(klass: *mut qom::bindings::ObjectClass);

    /// Runs before the parent's realize: refuses what cannot work before
    /// the host device is opened.
    fn realize_before_parent(&self) -> Result<()>;

    /// Runs after the parent's realize succeeded; an error undoes the
    /// parent's realize.
    fn realize_after_parent(&self) -> Result<()>;

    /// Runs before the parent's exit.
    fn exit_before_parent(&self);

    /// The device's legacy reset (system reset, bus reset); `parent()` is
    /// vfio-pci's, which resets the host device.
    fn reset(&self, parent: &dyn Fn());

    /// Config space read; `parent(addr, len)` reads through vfio-pci.
    fn config_read(&self, addr: u32, len: u32, parent: &dyn Fn(u32, u32) -> u32) -> u32;

    /// Config space write; `parent(addr, value, len)` writes through
    /// vfio-pci (and so to the host).
    fn config_write(&self, addr: u32, value: u32, len: u32, parent: &dyn Fn(u32, u32, u32));
}

impl VfioCxlClass {
    /// Save the parent's methods and install the Rust trampolines.
    pub fn class_init<T: VfioSubclassImpl>(&mut self) {
        check_layout();
        self.parent_realize = self.parent_class.realize;
        self.parent_class.realize = Some(rust_realize::<T>);
        self.parent_exit = self.parent_class.exit;
        self.parent_class.exit = Some(rust_exit::<T>);
        self.parent_config_read = self.parent_class.config_read;
        self.parent_class.config_read = Some(rust_config_read::<T>);
        self.parent_config_write = self.parent_class.config_write;
        self.parent_class.config_write = Some(rust_config_write::<T>);
        self.parent_reset = self.parent_class.parent_class.legacy_reset;
        // SAFETY: the DeviceClass is being initialized by QOM; replacing its
        // legacy reset is what device_class_set_legacy_reset is for.
        unsafe {
            hwcore::bindings::device_class_set_legacy_reset(
                &mut self.parent_class.parent_class,
                Some(rust_reset::<T>),
            );
        }
        self.parent_class.parent_class.desc = T::DESCRIPTION.as_ptr();
        self.parent_class.parent_class.class_init::<T>();
        T::add_class_properties(
            std::ptr::addr_of_mut!(self.parent_class.parent_class.parent_class).cast(),
        );
    }
}

/// The class struct of the object at `obj`.
///
/// # Safety
///
/// `obj` must point to a live instance of a type whose class struct is a
/// `VfioCxlClass`.
unsafe fn class_of<'a>(obj: *mut Object) -> &'a VfioCxlClass {
    // SAFETY: obj is a live instance whose class struct starts with (is at
    // least) a VfioCxlClass, so the cast class pointer is valid for reads.
    unsafe { &*qom::bindings::object_get_class(obj.cast()).cast::<VfioCxlClass>() }
}

/// # Safety
///
/// Called by QOM's PCI realize with a valid `T` instance and error pointer.
unsafe extern "C" fn rust_realize<T: VfioSubclassImpl>(
    pdev: *mut bindings::PCIDevice,
    errp: *mut *mut util::bindings::Error,
) {
    // SAFETY: pdev is an instance of T, whose class is a VfioCxlClass.
    let class = unsafe { class_of(pdev.cast()) };
    // SAFETY: pdev is an initialized instance of T.
    let state = unsafe { NonNull::new(pdev).unwrap().cast::<T>().as_ref() };
    if let Err(e) = state.realize_before_parent() {
        // SAFETY: errp comes from the caller.
        unsafe {
            Error::ok_or_propagate(Err::<(), _>(e), errp);
        }
        return;
    }
    if let Some(parent_realize) = class.parent_realize {
        let mut local_err: *mut util::bindings::Error = null_mut();
        // SAFETY: chaining to the C parent with the arguments QOM gave us.
        unsafe {
            parent_realize(pdev, &mut local_err);
        }
        if !local_err.is_null() {
            // SAFETY: errp comes from the caller; local_err is ours to give.
            unsafe {
                error_propagate(errp, local_err);
            }
            return;
        }
    }
    let result = state.realize_after_parent();
    if result.is_err() {
        if let Some(parent_exit) = class.parent_exit {
            // SAFETY: undo the parent's successful realize.
            unsafe {
                parent_exit(pdev);
            }
        }
    }
    // SAFETY: errp comes from the caller.
    unsafe {
        Error::ok_or_propagate(result, errp);
    }
}

/// # Safety
///
/// Called by QOM's PCI unrealize with a valid, realized `T` instance.
unsafe extern "C" fn rust_exit<T: VfioSubclassImpl>(pdev: *mut bindings::PCIDevice) {
    // SAFETY: pdev is an instance of T.
    let state = unsafe { NonNull::new(pdev).unwrap().cast::<T>().as_ref() };
    state.exit_before_parent();
    // SAFETY: pdev is an instance of T, whose class is a VfioCxlClass.
    if let Some(parent_exit) = unsafe { class_of(pdev.cast()) }.parent_exit {
        // SAFETY: chaining to the C parent with the argument QOM gave us.
        unsafe {
            parent_exit(pdev);
        }
    }
}

/// # Safety
///
/// Called by qdev's legacy reset with a valid `T` instance.
unsafe extern "C" fn rust_reset<T: VfioSubclassImpl>(dev: *mut hwcore::bindings::DeviceState) {
    // SAFETY: dev is an instance of T, whose class is a VfioCxlClass.
    let (state, class) = unsafe {
        (
            NonNull::new(dev).unwrap().cast::<T>().as_ref(),
            class_of(dev.cast()),
        )
    };
    let parent = || {
        if let Some(parent_reset) = class.parent_reset {
            // SAFETY: chaining to the C parent with the argument qdev gave us.
            unsafe {
                parent_reset(dev);
            }
        }
    };
    state.reset(&parent);
}

/// # Safety
///
/// Called by the PCI core with a valid `T` instance.
unsafe extern "C" fn rust_config_read<T: VfioSubclassImpl>(
    pdev: *mut bindings::PCIDevice,
    addr: u32,
    len: c_int,
) -> u32 {
    // SAFETY: pdev is an instance of T, whose class is a VfioCxlClass.
    let (state, class) = unsafe {
        (
            NonNull::new(pdev).unwrap().cast::<T>().as_ref(),
            class_of(pdev.cast()),
        )
    };
    let parent = |a: u32, l: u32| match class.parent_config_read {
        // SAFETY: chaining to the C parent for the same device.
        Some(read) => unsafe { read(pdev, a, c_int::try_from(l).unwrap_or(4)) },
        None => u32::MAX,
    };
    state.config_read(addr, u32::try_from(len).unwrap_or(4), &parent)
}

/// # Safety
///
/// Called by the PCI core with a valid `T` instance.
unsafe extern "C" fn rust_config_write<T: VfioSubclassImpl>(
    pdev: *mut bindings::PCIDevice,
    addr: u32,
    value: u32,
    len: c_int,
) {
    // SAFETY: pdev is an instance of T, whose class is a VfioCxlClass.
    let (state, class) = unsafe {
        (
            NonNull::new(pdev).unwrap().cast::<T>().as_ref(),
            class_of(pdev.cast()),
        )
    };
    let parent = |a: u32, v: u32, l: u32| {
        if let Some(write) = class.parent_config_write {
            // SAFETY: chaining to the C parent for the same device.
            unsafe {
                write(pdev, a, v, c_int::try_from(l).unwrap_or(4));
            }
        }
    };
    state.config_write(addr, value, u32::try_from(len).unwrap_or(4), &parent);
}

/// Stop at type registration if the bindings disagree with the C compiler
/// about the structures this crate embeds or indexes: every access through
/// them would be wrong.  (bindgen 0.72 and 0.73 mis-pad structs holding a
/// 16-aligned `Int128`, such as `MemoryRegion`.)
fn check_layout() {
    use std::mem::{offset_of, size_of};

    let mut c = bindings::VFIOCXLLayout::default();
    // SAFETY: fills the struct it is given.
    unsafe {
        bindings::vfio_cxl_get_layout(&mut c);
    }
    let names = [
        "sizeof(MemoryRegion)",
        "sizeof(PCIDevice)",
        "sizeof(VFIOPCIDevice)",
        "sizeof(VFIOUserPCIDevice)",
        "offsetof(VFIOPCIDevice, vbasedev)",
        "offsetof(VFIOPCIDevice, bars)",
        "sizeof(VFIORegion)",
    ];
    let from_c = [
        c.memory_region_size,
        c.pci_device_size,
        c.vfio_pci_device_size,
        c.vfio_user_pci_device_size,
        c.vbasedev_offset,
        c.bars_offset,
        c.vfio_region_size,
    ];
    let from_rust = [
        size_of::<system::bindings::MemoryRegion>(),
        size_of::<bindings::PCIDevice>(),
        size_of::<bindings::VFIOPCIDevice>(),
        size_of::<bindings::VFIOUserPCIDevice>(),
        offset_of!(bindings::VFIOPCIDevice, vbasedev),
        offset_of!(bindings::VFIOPCIDevice, bars),
        size_of::<bindings::VFIORegion>(),
    ];
    for ((name, in_c), in_rust) in names.iter().zip(from_c).zip(from_rust) {
        assert!(
            in_c == in_rust,
            "vfio-cxl: the Rust bindings disagree with C on {name}: {in_rust} vs {in_c}"
        );
    }
}
