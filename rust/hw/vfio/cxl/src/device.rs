// SPDX-License-Identifier: GPL-2.0-or-later

//! The `vfio-cxl` and `vfio-user-cxl` QOM types.
//!
//! Both types only differ in their parent (kernel VFIO or vfio-user); each
//! holds the same state and hands every hook to [`Passthrough`].

use std::{
    ffi::{c_void, CStr},
    ptr::addr_of,
};

use bql::{BqlCell, BqlRefCell};
use common::uninit_field_mut;
use cxl_model::{component::COMPONENT_BLOCK_SIZE, dvsec::DvsecWriteEffect};
use hwcore::{bindings::MachineInitPhase, DeviceImpl, DeviceState, ResettablePhasesImpl};
use qom::{prelude::*, ObjectImpl, ParentField, ParentInit};
use system::{hwaddr, MemoryRegion, MemoryRegionOps, MemoryRegionOpsBuilder};
use util::Result;

use crate::{
    bindings,
    memory::MappedMemory,
    passthrough::{DeviceRefs, Passthrough, ResetKind},
    pci_class::{VfioCxlClass, VfioPci, VfioPciDevice, VfioSubclassImpl, VfioUserPci},
};

/// A registration made by `vfio_cxl_register_late_reset`.
#[derive(Clone, Copy)]
struct ResetToken(*mut c_void);

// SAFETY: the token is an opaque handle, created and used under the BQL.
unsafe impl Send for ResetToken {}

/// The CXL state every instance carries, whichever its parent.
pub struct CxlState {
    cxl: BqlRefCell<Option<Passthrough>>,
    /// The host bridge reset handler's registration, while realized.
    host_bridge_reset: BqlCell<ResetToken>,
    /// Memory regions taken out of the guest's view by unrealize, freed
    /// with the device.
    retired: BqlRefCell<Vec<MappedMemory>>,
}

impl CxlState {
    const fn new() -> Self {
        CxlState {
            cxl: BqlRefCell::new(None),
            host_bridge_reset: BqlCell::new(ResetToken(std::ptr::null_mut())),
            retired: BqlRefCell::new(Vec::new()),
        }
    }

    fn realize(&self, refs: &DeviceRefs) -> Result<()> {
        // SAFETY: refs describe the device being realized, which drops the
        // passthrough in unrealize, before it is finalized.
        let passthrough = unsafe { Passthrough::realize(refs)? };
        *self.cxl.borrow_mut() = Some(passthrough);
        Ok(())
    }

    fn unrealize(&self) {
        let passthrough = self.cxl.borrow_mut().take();
        if let Some(memory) = passthrough.and_then(Passthrough::unrealize) {
            self.retired.borrow_mut().push(memory);
        }
    }

    /// Reset the device: hide its memory, reset the host, check and
    /// restore, show the memory again.  Returns false, doing nothing, when
    /// the device has no CXL passthrough (then the parent resets it).
    fn reset(&self, kind: ResetKind) -> bool {
        let vdev = {
            let cxl = self.cxl.borrow();
            let Some(passthrough) = cxl.as_ref() else {
                return false;
            };
            passthrough.begin_reset(kind);
            passthrough.vdev()
        };
        // No borrow is held here: the host reset runs vfio-pci code.
        // SAFETY: the device is realized while it has a passthrough.
        let result = unsafe { Passthrough::reset_host(vdev, kind) };
        if let Some(passthrough) = self.cxl.borrow_mut().as_mut() {
            if let Err(e) = passthrough.finish_reset(kind, result) {
                report_error(&e.to_string());
            }
        }
        true
    }

    fn status(&self) -> String {
        self.cxl
            .borrow()
            .as_ref()
            .map_or_else(|| "not realized".to_string(), Passthrough::status)
    }

    fn program_host_bridge(&self) {
        if let Some(passthrough) = self.cxl.borrow().as_ref() {
            passthrough.program_host_bridge();
        }
    }

    fn component_read(&self, addr: hwaddr, size: u32) -> u64 {
        match self.cxl.borrow().as_ref() {
            Some(passthrough) => passthrough.component_read(addr, size),
            None => u64::MAX,
        }
    }

    fn component_write(&self, addr: hwaddr, value: u64, size: u32) {
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
            return parent(addr, value, len);
        };
        match passthrough.config_write(addr, value, len, parent) {
            DvsecWriteEffect::None => {}
            DvsecWriteEffect::CxlResetRequested => {
                drop(cxl);
                self.reset(ResetKind::Cxl);
            }
            DvsecWriteEffect::CacheWbiRequested => report_error(&format!(
                "{}: cache write-back and invalidate is not supported; ignored",
                passthrough.name()
            )),
        }
    }
}

/// Declares one QOM type over a VFIO parent.
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
                static OPS: MemoryRegionOps<$ty> = MemoryRegionOpsBuilder::<$ty>::new()
                    .read(&|dev: &$ty, addr, size| dev.state.component_read(addr, size))
                    .write(&|dev: &$ty, addr, value, size| {
                        dev.state.component_write(addr, value, size)
                    })
                    .little_endian()
                    .valid_sizes(1, 8)
                    .impl_sizes(1, 8)
                    .build();
                MemoryRegion::init_io(
                    &mut uninit_field_mut!(*this, component_mr),
                    &OPS,
                    "vfio-cxl-component-block",
                    COMPONENT_BLOCK_SIZE,
                );
                uninit_field_mut!(*this, state).write(CxlState::new());
                // SAFETY: the object is being initialized; the getter reads
                // the state written just above.
                unsafe {
                    qom::bindings::object_property_add_str(
                        this.as_object_mut_ptr(),
                        c"cxl-status".as_ptr(),
                        Some(cxl_status_get::<$ty>),
                        None,
                    );
                }
            }

            fn refs(&self) -> DeviceRefs {
                // SAFETY: the pointer is only handed to QEMU functions that
                // take the device as their owner or VFIO device.
                let obj = unsafe { self.as_object_mut_ptr() };
                // SAFETY: a realized device's id, if any, is a C string.
                let id = unsafe {
                    let id = (*self.upcast::<DeviceState>().as_ptr()).id;
                    (!id.is_null()).then(|| CStr::from_ptr(id).to_string_lossy().into_owned())
                };
                let name = match id {
                    Some(id) => format!("{} '{id}'", $name.to_string_lossy()),
                    None => $name.to_string_lossy().into_owned(),
                };
                DeviceRefs {
                    name,
                    owner: obj.cast(),
                    vdev: obj.cast::<bindings::VFIOPCIDevice>(),
                    component_mr: addr_of!(self.component_mr).cast_mut().cast(),
                    requested_window: usize::try_from(self.fmw).ok(),
                    kernel_vfio: $kernel,
                }
            }
        }

        impl VfioSubclassImpl for $ty {
            const DESCRIPTION: &'static CStr = $desc;

            fn realize_after_parent(&self) -> Result<()> {
                self.state.realize(&self.refs())?;
                // SAFETY: unregistered in exit_before_parent, before the
                // device can go away.
                let token = unsafe {
                    bindings::vfio_cxl_register_late_reset(
                        Some(host_bridge_reset::<$ty>),
                        self.opaque(),
                    )
                };
                self.state.host_bridge_reset.set(ResetToken(token));
                // A hot-plugged device meets no system reset before the
                // guest runs: program the host bridge now.
                // SAFETY: a plain query of the machine's init phase.
                if unsafe { hwcore::bindings::phase_check(MachineInitPhase::PHASE_MACHINE_READY) } {
                    self.state.program_host_bridge();
                }
                Ok(())
            }

            fn exit_before_parent(&self) {
                let ResetToken(token) =
                    self.state.host_bridge_reset.replace(ResetToken(std::ptr::null_mut()));
                if !token.is_null() {
                    // SAFETY: registered by realize_after_parent.
                    unsafe { bindings::vfio_cxl_unregister_late_reset(token) };
                }
                self.state.unrealize();
            }

            fn reset(&self, parent: &dyn Fn()) {
                if !self.state.reset(ResetKind::SystemOrBus) {
                    parent();
                }
            }

            fn config_read(&self, addr: u32, len: u32, parent: &dyn Fn(u32, u32) -> u32) -> u32 {
                self.state.config_read(addr, len, parent)
            }

            fn config_write(&self, addr: u32, value: u32, len: u32, parent: &dyn Fn(u32, u32, u32)) {
                self.state.config_write(addr, value, len, parent)
            }
        }

        impl HasCxlState for $ty {
            fn cxl_state(&self) -> &CxlState {
                &self.state
            }
        }
    };
}

/// `error_report()`: print a message to QEMU's error output.
fn report_error(msg: &str) {
    let msg = std::ffi::CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: a "%s" format with one NUL-terminated string argument.
    unsafe {
        bindings::error_report(c"%s".as_ptr(), msg.as_ptr());
    }
}

trait HasCxlState {
    fn cxl_state(&self) -> &CxlState;

    fn opaque(&self) -> *mut c_void {
        let this: *const Self = self;
        this.cast_mut().cast()
    }
}

/// Getter of the read-only `cxl-status` property (QMP `qom-get`).
///
/// # Safety
///
/// `obj` is an initialized instance of `T`.
unsafe extern "C" fn cxl_status_get<T: HasCxlState>(
    obj: *mut qom::bindings::Object,
    _errp: *mut *mut qom::bindings::Error,
) -> *mut std::ffi::c_char {
    // SAFETY: per the contract.
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
unsafe extern "C" fn host_bridge_reset<T: HasCxlState>(opaque: *mut c_void) {
    // SAFETY: per the contract.
    let dev = unsafe { &*opaque.cast::<T>() };
    dev.cxl_state().program_host_bridge();
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
