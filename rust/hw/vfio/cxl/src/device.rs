// SPDX-License-Identifier: GPL-2.0-or-later

//! The `vfio-cxl` and `vfio-user-cxl` QOM types.
//!
//! Both types are thin: they only differ in their parent (kernel VFIO or
//! vfio-user) and hand every hook to the same CXL implementation.

use std::ffi::CStr;

use hwcore::{DeviceImpl, DeviceState, ResettablePhasesImpl};
use qom::{prelude::*, ObjectImpl, ParentField};
use util::Result;

use crate::pci_class::{VfioCxlClass, VfioPci, VfioPciDevice, VfioSubclassImpl, VfioUserPci};

/// A CXL Type-2 accelerator passed through kernel VFIO (`host=`,
/// `sysfsdev=`, `fd=` as for `vfio-pci`).
#[repr(C)]
#[derive(qom::Object, hwcore::Device)]
pub struct VfioCxl {
    parent_obj: ParentField<VfioPci>,
}

/// A CXL Type-2 accelerator served over a vfio-user socket (`socket=` as
/// for `vfio-user-pci`).
#[repr(C)]
#[derive(qom::Object, hwcore::Device)]
pub struct VfioUserCxl {
    parent_obj: ParentField<VfioUserPci>,
}

qom_isa!(VfioCxl: VfioPci, VfioPciDevice, DeviceState, Object);
qom_isa!(VfioUserCxl: VfioUserPci, VfioPciDevice, DeviceState, Object);

/// Declares one QOM type over a VFIO parent.
macro_rules! vfio_cxl_type {
    ($ty:ident, $parent:ty, $name:expr, $desc:expr) => {
        // SAFETY: $ty is repr(C), starts with ParentField<$parent>, and its
        // class struct VfioCxlClass starts with the parent's PCIDeviceClass.
        unsafe impl ObjectType for $ty {
            type Class = VfioCxlClass;
            const TYPE_NAME: &'static CStr = $name;
        }

        impl ObjectImpl for $ty {
            type ParentType = $parent;
            const CLASS_INIT: fn(&mut Self::Class) = Self::Class::class_init::<Self>;
        }

        impl DeviceImpl for $ty {}
        impl ResettablePhasesImpl for $ty {}

        impl VfioSubclassImpl for $ty {
            const DESCRIPTION: &'static CStr = $desc;

            fn realize_after_parent(&self) -> Result<()> {
                Ok(())
            }

            fn exit_before_parent(&self) {}

            fn reset_before_parent(&self) {}

            fn reset_after_parent(&self) {}
        }
    };
}

vfio_cxl_type!(
    VfioCxl,
    VfioPci,
    crate::TYPE_VFIO_CXL,
    c"CXL Type-2 accelerator assignment through VFIO"
);
vfio_cxl_type!(
    VfioUserCxl,
    VfioUserPci,
    crate::TYPE_VFIO_USER_CXL,
    c"CXL Type-2 accelerator assignment over a vfio-user socket"
);
