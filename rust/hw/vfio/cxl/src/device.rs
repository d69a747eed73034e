// SPDX-License-Identifier: GPL-2.0-or-later

//! The `vfio-cxl` and `vfio-user-cxl` QOM types.
//!
//! Both types only differ in their parent (kernel VFIO or vfio-user); each
//! holds a [`CxlState`], and every hook is one generic function over
//! [`CxlDevice`] that hands the work to [`CxlPassthrough`].  The macro at
//! the end only declares the two types.

use std::{
    ffi::{c_char, c_void, CStr},
    pin::Pin,
    ptr::{addr_of, NonNull},
};

use bql::{BqlCell, BqlRefCell};
use common::uninit_field_mut;
use cxl_model::{
    component::COMPONENT_BLOCK_SIZE, dvsec::DvsecWriteEffect, host_device::ResetKind,
    passthrough::Passthrough,
};
use hwcore::{bindings::MachineInitPhase, DeviceImpl, DeviceState, ResettablePhasesImpl};
use qom::{prelude::*, ObjectImpl, ParentField, ParentInit};
use system::{MemoryRegion, MemoryRegionOps, MemoryRegionOpsBuilder};
use util::{
    log::Log,
    log_mask_ln,
    timer::{Timer, CLOCK_VIRTUAL},
    Error, Result,
};

use crate::{
    bindings,
    host::{migration_requested, QemuHost},
    memory::MappedMemory,
    passthrough::{report_error, CxlPassthrough, DeviceRefs, MIGRATION_REFUSAL},
    pci_class::{VfioCxlClass, VfioPci, VfioPciDevice, VfioSubclassImpl, VfioUserPci},
};

/// A registration made by `vfio_cxl_register_late_reset`.
#[derive(Clone, Copy)]
struct ResetToken(*mut c_void);

// SAFETY: the token is an opaque handle, created and used under the BQL.
unsafe impl Send for ResetToken {}

/// The CXL state every instance carries, whichever its parent.
pub struct CxlState {
    cxl: BqlRefCell<Option<CxlPassthrough>>,
    /// The host bridge reset handler's registration, while realized.
    host_bridge_reset: BqlCell<ResetToken>,
    /// Memory regions taken out of the guest's view by unrealize, freed
    /// with the device.
    retired: BqlRefCell<Vec<MappedMemory>>,
    /// A hot-plugged device was reset by its realize (where a failure can
    /// fail `device_add`); the reset qdev runs right after is that one.
    reset_at_plug: BqlCell<bool>,
    /// Polls a vfio-user host for a closed connection (QEMU's client only
    /// reports that on its iothread).
    host_watch: BqlRefCell<Timer>,
}

/// How often a vfio-user host is checked (virtual time: a stopped VM does
/// not poll).
const HOST_WATCH_PERIOD_NS: u64 = 100_000_000;

impl CxlState {
    const fn new() -> Self {
        CxlState {
            cxl: BqlRefCell::new(None),
            host_bridge_reset: BqlCell::new(ResetToken(std::ptr::null_mut())),
            retired: BqlRefCell::new(Vec::new()),
            reset_at_plug: BqlCell::new(false),
            // SAFETY: initialized by init_host_watch before it is armed.
            host_watch: BqlRefCell::new(unsafe { Timer::new() }),
        }
    }

    /// Sets the host watch up; called once the state is in place.
    fn init_host_watch(&self) {
        let mut timer = self.host_watch.borrow_mut();
        // SAFETY: the state lives inside a QOM object, which never moves,
        // and outlives the timer (dropping the timer deletes it).
        let timer = unsafe { Pin::new_unchecked(&mut *timer) };
        timer.init_full(None, CLOCK_VIRTUAL, Timer::NS, 0, Self::watch_host, self);
    }

    fn arm_host_watch(&self) {
        self.host_watch
            .borrow()
            .modify(CLOCK_VIRTUAL.get_ns() + HOST_WATCH_PERIOD_NS);
    }

    /// The host watch's tick.
    fn watch_host(&self) {
        let watching = self
            .cxl
            .borrow_mut()
            .as_mut()
            .is_some_and(CxlPassthrough::watch_host);
        if watching {
            self.arm_host_watch();
        }
    }

    fn realize(&self, refs: &DeviceRefs) -> Result<()> {
        // SAFETY: refs describe the device being realized, which drops the
        // passthrough in unrealize, before it is finalized.
        let passthrough = unsafe { CxlPassthrough::realize(refs)? };
        *self.cxl.borrow_mut() = Some(passthrough);
        Ok(())
    }

    fn unrealize(&self) {
        self.host_watch.borrow().delete();
        let passthrough = self.cxl.borrow_mut().take();
        if let Some(memory) = passthrough.and_then(CxlPassthrough::unrealize) {
            self.retired.borrow_mut().push(memory);
        }
    }

    /// Reset the device: hide its memory, reset the host, check and
    /// restore, show the memory again.  Returns false, doing nothing, when
    /// the device has no CXL passthrough (then the parent resets it).
    /// Guests cause resets at will: a host that keeps failing them is
    /// reported once, when the memory goes away; `cxl-status` and the
    /// trace say the rest.
    fn reset(&self, kind: ResetKind) -> bool {
        let was_failed = self
            .cxl
            .borrow()
            .as_ref()
            .is_some_and(CxlPassthrough::failed);
        match self.run_reset(kind) {
            None => false,
            Some(outcome) => {
                if let Err(e) = outcome {
                    if !was_failed {
                        report_error(&e.to_string());
                    }
                }
                true
            }
        }
    }

    /// The reset itself; `None` when the device has no CXL passthrough.
    fn run_reset(&self, kind: ResetKind) -> Option<Result<()>> {
        let host = {
            let mut cxl = self.cxl.borrow_mut();
            let passthrough = cxl.as_mut()?;
            passthrough.begin_reset(kind);
            passthrough.host()
        };
        // No borrow is held here: the host reset runs vfio-pci code.
        let result = cxl_model::host_device::HostDevice::reset(&host, kind);
        self.cxl
            .borrow_mut()
            .as_mut()
            .map(|passthrough| passthrough.finish_reset(kind, result))
    }

    fn status(&self) -> String {
        self.cxl
            .borrow()
            .as_ref()
            .map_or_else(|| "not realized".to_string(), CxlPassthrough::status)
    }

    fn program_host_bridge(&self) {
        if let Some(passthrough) = self.cxl.borrow().as_ref() {
            passthrough.program_host_bridge();
        }
    }

    fn component_read(&self, addr: u64, size: u32) -> u64 {
        match self.cxl.borrow().as_ref() {
            Some(passthrough) => passthrough.component_read(addr, size),
            None => u64::MAX,
        }
    }

    fn component_write(&self, addr: u64, value: u64, size: u32) {
        if let Some(passthrough) = self.cxl.borrow_mut().as_mut() {
            passthrough.component_write(addr, size, value);
        }
    }

    /// Config reads: the CXL Device DVSEC is emulated, the rest is
    /// vfio-pci's.
    fn config_read(&self, addr: u32, len: u32, parent: &dyn Fn(u32, u32) -> u32) -> u32 {
        match self.cxl.borrow().as_ref() {
            Some(p) if p.touches_dvsec(addr, len) => p.config_read(addr, len, parent),
            _ => parent(addr, len),
        }
    }

    /// Config writes: nothing inside the CXL Device DVSEC reaches the host
    /// (vfio-pci would forward it before updating its own copy).
    fn config_write(&self, addr: u32, value: u32, len: u32, parent: &dyn Fn(u32, u32, u32)) {
        // A Function Level Reset is the device's to perform (once, with
        // the guest mapping disabled around it); the rest of the write
        // goes on as usual.
        let flr = self
            .cxl
            .borrow()
            .as_ref()
            .and_then(|p| p.strip_flr(addr, value, len));
        if let Some(without_flr) = flr {
            self.config_write(addr, without_flr, len, parent);
            self.reset(ResetKind::Flr);
            return;
        }
        let mut cxl = self.cxl.borrow_mut();
        let Some(passthrough) = cxl.as_mut().filter(|p| p.touches_dvsec(addr, len)) else {
            drop(cxl);
            parent(addr, value, len);
            if Passthrough::<QemuHost>::writes_memory_enable(addr, len) {
                if let Some(passthrough) = self.cxl.borrow().as_ref() {
                    passthrough.after_command_write();
                }
            }
            return;
        };
        match passthrough.config_write(addr, value, len, parent) {
            DvsecWriteEffect::None => {}
            DvsecWriteEffect::CxlResetRequested => {
                drop(cxl);
                self.reset(ResetKind::Cxl);
            }
            DvsecWriteEffect::CacheWbiRequested => log_mask_ln!(
                Log::Unimp,
                "{}: cache write-back and invalidate is not supported; ignored",
                passthrough.name()
            ),
        }
    }
}

/// What the two QOM types have in common; the hooks are written once over
/// it, and [`vfio_cxl_type`] declares a type that implements it.
pub trait CxlDevice: DeviceImpl + IsA<VfioPciDevice> + ObjectType {
    /// What `-device help` says of the type.
    const DESCRIPTION: &'static CStr;

    /// Kernel VFIO (`vfio-cxl`) or vfio-user (`vfio-user-cxl`).
    const KERNEL_VFIO: bool;

    /// The instance's CXL state.
    fn cxl_state(&self) -> &CxlState;

    /// The `cxl-fmw` property.
    fn requested_window(&self) -> i32;

    /// The emulated component block's memory region.
    fn component_mr(&self) -> *mut MemoryRegion;
}

/// `cxl-fmw`'s description, as `-device <type>,help` shows it.
const CXL_FMW_HELP: &CStr = c"index of the CXL fixed memory window for the device memory; \
    -1 (default): the only window whose only target is the device's host bridge";

/// `cxl-status`'s description.
const CXL_STATUS_HELP: &CStr =
    c"where the device memory is mapped, or why it is not after a failed reset (read-only)";

fn vdev_of<T: CxlDevice>(dev: &T) -> NonNull<bindings::VFIOPCIDevice> {
    // SAFETY: every CxlDevice starts with a VFIOPCIDevice (IsA<VfioPciDevice>).
    NonNull::from(dev).cast()
}

/// `"<type> '<id>'"`, for messages.
fn name_of<T: CxlDevice>(dev: &T) -> String {
    let type_name = T::TYPE_NAME.to_string_lossy();
    // SAFETY: a device's id, if set, is a C string it owns.
    let id = unsafe {
        let id = (*dev.upcast::<DeviceState>().as_ptr()).id;
        (!id.is_null()).then(|| CStr::from_ptr(id).to_string_lossy().into_owned())
    };
    match id {
        Some(id) => format!("{type_name} '{id}'"),
        None => type_name.into_owned(),
    }
}

fn refs_of<T: CxlDevice>(dev: &T) -> DeviceRefs {
    DeviceRefs {
        name: name_of(dev),
        // SAFETY: the pointer is only handed to QEMU functions that take
        // the device as the owner of its memory regions.
        owner: unsafe { dev.as_object_mut_ptr() }.cast(),
        vdev: vdev_of(dev),
        component_mr: dev.component_mr().cast(),
        requested_window: usize::try_from(dev.requested_window()).ok(),
        kernel_vfio: T::KERNEL_VFIO,
    }
}

impl<T: CxlDevice> VfioSubclassImpl for T {
    const DESCRIPTION: &'static CStr = <T as CxlDevice>::DESCRIPTION;

    fn add_class_properties(klass: *mut qom::bindings::ObjectClass) {
        // SAFETY: klass is the class being initialized; the names and
        // descriptions are static C strings, the getter fits the property.
        unsafe {
            qom::bindings::object_class_property_add_str(
                klass,
                c"cxl-status".as_ptr(),
                Some(cxl_status_get::<T>),
                None,
            );
            qom::bindings::object_class_property_set_description(
                klass,
                c"cxl-status".as_ptr(),
                CXL_STATUS_HELP.as_ptr(),
            );
            qom::bindings::object_class_property_set_description(
                klass,
                c"cxl-fmw".as_ptr(),
                CXL_FMW_HELP.as_ptr(),
            );
        }
    }

    fn realize_before_parent(&self) -> Result<()> {
        if self.requested_window() < -1 {
            return Err(Error::format(format_args!(
                "{}: cxl-fmw={} is not a window index (0 or more) or -1 (automatic)",
                name_of(self),
                self.requested_window()
            )));
        }
        // SAFETY: the instance is initialized and its properties are set.
        if unsafe { migration_requested(vdev_of(self)) } {
            return Err(Error::format(format_args!(
                "{}: enable-migration=on cannot work: {MIGRATION_REFUSAL}",
                name_of(self)
            )));
        }
        Ok(())
    }

    fn realize_after_parent(&self) -> Result<()> {
        let state = self.cxl_state();
        state.realize(&refs_of(self))?;
        if !T::KERNEL_VFIO {
            state.arm_host_watch();
        }
        let opaque: *const T = self;
        // SAFETY: unregistered in exit_before_parent, before the device can
        // go away.
        let token = unsafe {
            bindings::vfio_cxl_register_late_reset(
                Some(host_bridge_reset::<T>),
                opaque.cast_mut().cast(),
            )
        };
        state.host_bridge_reset.set(ResetToken(token));
        // A hot-plugged device meets no system reset before the guest runs:
        // program the host bridge now, and reset the host here, where a
        // failure fails device_add instead of leaving a device that says
        // it is plugged with its memory unmapped.
        // SAFETY: a plain query of the machine's init phase.
        if unsafe { hwcore::bindings::phase_check(MachineInitPhase::PHASE_MACHINE_READY) } {
            state.program_host_bridge();
            if let Some(Err(e)) = state.run_reset(ResetKind::SystemOrBus) {
                self.exit_before_parent();
                return Err(e);
            }
            state.reset_at_plug.set(true);
        }
        Ok(())
    }

    fn exit_before_parent(&self) {
        let state = self.cxl_state();
        let ResetToken(token) = state
            .host_bridge_reset
            .replace(ResetToken(std::ptr::null_mut()));
        if !token.is_null() {
            // SAFETY: registered by realize_after_parent.
            unsafe {
                bindings::vfio_cxl_unregister_late_reset(token);
            }
        }
        state.unrealize();
    }

    fn reset(&self, parent: &dyn Fn()) {
        if self.cxl_state().reset_at_plug.replace(false) {
            return;
        }
        if !self.cxl_state().reset(ResetKind::SystemOrBus) {
            parent();
        }
    }

    fn config_read(&self, addr: u32, len: u32, parent: &dyn Fn(u32, u32) -> u32) -> u32 {
        self.cxl_state().config_read(addr, len, parent)
    }

    fn config_write(&self, addr: u32, value: u32, len: u32, parent: &dyn Fn(u32, u32, u32)) {
        self.cxl_state().config_write(addr, value, len, parent);
    }
}

/// Getter of the read-only `cxl-status` property (QMP `qom-get`).
///
/// # Safety
///
/// `obj` is an initialized instance of `T`.
unsafe extern "C" fn cxl_status_get<T: CxlDevice>(
    obj: *mut qom::bindings::Object,
    _errp: *mut *mut qom::bindings::Error,
) -> *mut c_char {
    // SAFETY: QOM calls the getter with the object the property belongs
    // to, an initialized T (whose first field chain starts at Object).
    let dev = unsafe { &*obj.cast::<T>() };
    let status = std::ffi::CString::new(dev.cxl_state().status()).unwrap_or_default();
    // SAFETY: QOM frees the returned copy with g_free.
    unsafe { glib_sys::g_strdup(status.as_ptr()) }
}

/// A system reset clears the host bridge's registers; this runs after the
/// whole device tree was reset (see `vfio_cxl_register_late_reset`).
///
/// # Safety
///
/// `opaque` is the realized device that registered the handler.
unsafe extern "C" fn host_bridge_reset<T: CxlDevice>(opaque: *mut c_void) {
    // SAFETY: opaque is the T that registered this handler in realize and
    // unregisters it in unrealize, so it is alive whenever this runs.
    let dev = unsafe { &*opaque.cast::<T>() };
    dev.cxl_state().program_host_bridge();
}

/// Declares one QOM type over a VFIO parent: its instance struct, its QOM
/// registration and its [`CxlDevice`] constants.
macro_rules! vfio_cxl_type {
    ($ty:ident, $parent:ty, $name:expr, $desc:expr, $kernel:expr) => {
        #[repr(C)]
        #[derive(qom::Object, hwcore::Device)]
        pub struct $ty {
            parent_obj: ParentField<$parent>,
            /// Index of the CXL fixed memory window to place the device
            /// memory in; -1 picks the only window of the host bridge.
            #[property(rename = "cxl-fmw", default = (-1i32))]
            fmw: i32,
            component_mr: MemoryRegion,
            state: CxlState,
        }

        qom_isa!($ty: $parent, VfioPciDevice, DeviceState, Object);

        // SAFETY: $ty is repr(C), starts with ParentField<$parent>, and its
        // class struct VfioCxlClass starts with the parent's PCIDeviceClass.
        unsafe impl ObjectType for $ty {
            type Class = VfioCxlClass;
            const TYPE_NAME: &'static CStr = $name;
        }

        impl ObjectImpl for $ty {
            type ParentType = $parent;
            const INSTANCE_INIT: Option<unsafe fn(ParentInit<Self>)> = Some(Self::init);
            const CLASS_INIT: fn(&mut Self::Class) = Self::Class::class_init::<Self>;
        }

        impl DeviceImpl for $ty {}
        impl ResettablePhasesImpl for $ty {}

        impl $ty {
            /// # Safety
            ///
            /// Called by QOM on a freshly allocated instance.
            unsafe fn init(mut this: ParentInit<Self>) {
                static OPS: MemoryRegionOps<$ty> = component_ops::<$ty>();
                MemoryRegion::init_io(
                    &mut uninit_field_mut!(*this, component_mr),
                    &OPS,
                    "vfio-cxl-component-block",
                    COMPONENT_BLOCK_SIZE,
                );
                uninit_field_mut!(*this, state)
                    .write(CxlState::new())
                    .init_host_watch();
            }
        }

        impl CxlDevice for $ty {
            const DESCRIPTION: &'static CStr = $desc;
            const KERNEL_VFIO: bool = $kernel;

            fn cxl_state(&self) -> &CxlState {
                &self.state
            }

            fn requested_window(&self) -> i32 {
                self.fmw
            }

            fn component_mr(&self) -> *mut MemoryRegion {
                addr_of!(self.component_mr).cast_mut()
            }
        }
    };
}

/// The emulated component block's MMIO callbacks.
const fn component_ops<T: CxlDevice>() -> MemoryRegionOps<T> {
    MemoryRegionOpsBuilder::<T>::new()
        .read(&|dev: &T, addr, size| dev.cxl_state().component_read(addr, size))
        .write(&|dev: &T, addr, value, size| dev.cxl_state().component_write(addr, value, size))
        .little_endian()
        .valid_sizes(1, 8)
        .impl_sizes(1, 8)
        .build()
}

vfio_cxl_type!(
    VfioCxl,
    VfioPci,
    crate::TYPE_VFIO_CXL,
    c"CXL Type-2 accelerator assignment through VFIO",
    true
);
vfio_cxl_type!(
    VfioUserCxl,
    VfioUserPci,
    crate::TYPE_VFIO_USER_CXL,
    c"CXL Type-2 accelerator assignment over a vfio-user socket",
    false
);
