// SPDX-License-Identifier: GPL-2.0-or-later

//! The QEMU side of a passed-through CXL Type-2 device: it runs the
//! QEMU-independent core (`cxl_model::passthrough`) over [`QemuHost`] and
//! applies its decisions to QEMU: the window and the host bridge around
//! the device, the memory region mapped in the window, the component
//! block overlaid on the BAR, the migration blocker, and trace events.

use std::{cell::Cell, ptr::NonNull};

use bql::BqlRefCell;
use cxl_model::{
    dvsec::DvsecWriteEffect,
    host_device::{HostDevice, ResetKind},
    passthrough::{self, describe, HostAccessFailure, Passthrough},
    placement::{self, PlacedDevice, PlacementRequest},
};
use system::bindings::MemoryRegion;
use util::{Error, Result};

use crate::{
    bindings,
    host::QemuHost,
    memory::{ComponentOverlay, MappedMemory},
    topology::{self, CxlPort},
    trace_events as trace,
};

/// Where the memory of every realized device is, so that the next one is
/// placed beside them and every host bridge routes exactly its devices.
/// Each entry is keyed by its device's address (names may repeat).
static PLACED: BqlRefCell<Vec<(usize, PlacedDevice)>> = BqlRefCell::new(Vec::new());

/// The devices placed so far.
fn placed_devices() -> Vec<PlacedDevice> {
    PLACED.borrow().iter().map(|(_, d)| d.clone()).collect()
}

/// What realize needs to know about the device it works for.
pub struct DeviceRefs {
    /// `"<type> '<id>'"`, for messages.
    pub name: String,
    pub owner: *mut qom::bindings::Object,
    pub vdev: NonNull<bindings::VFIOPCIDevice>,
    pub component_mr: *mut MemoryRegion,
    /// The `cxl-fmw` property, if set.
    pub requested_window: Option<usize>,
    /// Kernel VFIO (device-info capability available) or vfio-user.
    pub kernel_vfio: bool,
}

/// A realized CXL passthrough.  [`CxlPassthrough::unrealize`] takes it out
/// of the guest's view again.
pub struct CxlPassthrough {
    core: Passthrough<QemuHost>,
    port: CxlPort,
    // Dropped in this order: the guest loses the overlay and the mapping
    // before migration is allowed again.
    component: Option<ComponentOverlay>,
    memory: Option<MappedMemory>,
    _migration_blocker: MigrationBlocker,
    /// Whether the user was told that the host bridge has no decoders.
    told_no_host_bridge_decoders: Cell<bool>,
    /// The device's entry in `PLACED`.
    key: usize,
}

/// A refusal at realize: traced, and prefixed with the device's name.
fn refused(name: &str, cause: impl std::error::Error + Send + Sync + 'static) -> Error {
    trace::trace_vfio_cxl_refused(&cstring(&describe(&cause)));
    Error::with_error(name.to_string(), cause)
}

/// A QEMU-side failure at realize, prefixed with the device's name.
fn named(name: &str, e: &Error) -> Error {
    Error::format(format_args!("{name}: {e}"))
}

fn cstring(text: &str) -> std::ffi::CString {
    std::ffi::CString::new(text.replace('\0', " ")).unwrap_or_default()
}

impl CxlPassthrough {
    /// Find the host's CXL resources, choose the guest address and make
    /// the device's memory and registers visible there.
    ///
    /// # Safety
    ///
    /// The pointers in `dev` must be the realized device, which must drop
    /// the result before it is finalized.
    pub unsafe fn realize(dev: &DeviceRefs) -> Result<Self> {
        let name = dev.name.as_str();
        // SAFETY: dev.vdev is the realized device, which drops this
        // passthrough (and so every copy of the host) in unrealize.
        let host = unsafe { QemuHost::new(dev.vdev, dev.kernel_vfio) };
        let found = passthrough::discover(host).map_err(|e| refused(name, e))?;
        let layout = found.layout();
        trace::trace_vfio_cxl_uapi(&cstring(layout.uapi.name()));
        trace::trace_vfio_cxl_discovered(
            layout.memory_region,
            layout.memory_size,
            layout.comp_regs_region,
            layout.comp_regs_size,
            layout.component_bar,
            layout.component_offset,
            layout.hdm_offset,
        );
        // SAFETY: the device is plugged into a bus once its parent realized.
        let port = unsafe { CxlPort::of(dev.vdev.as_ptr().cast()) }.map_err(|e| named(name, &e))?;
        let decoders = port.host_bridge_decoders();
        let placed = placement::place(
            &topology::fixed_windows(),
            &placed_devices(),
            &PlacementRequest {
                name,
                host_bridge: &port.host_bridge_id,
                root_port: port.port_number,
                requested_window: dev.requested_window,
                memory_size: layout.memory_size,
                host_bridge_decoders: decoders,
            },
        )
        .map_err(|e| refused(name, e))?;
        trace::trace_vfio_cxl_window(
            i32::try_from(placed.window.index).unwrap_or(-1),
            placed.base,
            placed.size,
            port.port_number,
        );
        let core = found.present(placed).map_err(|e| refused(name, e))?;
        let base = core.placement().base;
        if core.layout().host_base_writes(base).is_some() {
            trace::trace_vfio_cxl_host_base(base);
        }
        let migration_blocker = MigrationBlocker::add(name)?;
        let mut this = CxlPassthrough {
            core,
            port,
            component: None,
            memory: None,
            _migration_blocker: migration_blocker,
            told_no_host_bridge_decoders: Cell::new(false),
            key: 0,
        };
        // Nothing may fail once the memory is mapped: a mapping, once
        // seen by a FlatView, can only be freed when the device is.
        let bar_mr = host.bar_region(this.core.layout().component_bar);
        let component_offset = this.core.layout().component_offset;
        // SAFETY: the BAR and the overlay belong to the device, which drops
        // the overlay (in unrealize) before either goes away.
        let overlay = unsafe { ComponentOverlay::add(bar_mr, component_offset, dev.component_mr) }
            .map_err(|e| named(name, &e))?;
        this.component = Some(overlay);
        let region = this.core.layout().memory_region;
        // SAFETY: owner and vbasedev are the realized device, which drops
        // the mapping (unrealize unmaps it, finalize frees it).
        let memory = unsafe { MappedMemory::map(dev.owner, host.vbasedev(), region, base, name) }
            .map_err(|e| named(name, &e))?;
        this.memory = Some(memory);
        trace::trace_vfio_cxl_mapped(base, this.core.layout().memory_size);
        this.key = dev.owner as usize;
        PLACED
            .borrow_mut()
            .push((this.key, this.core.placement().clone()));
        Ok(this)
    }

    /// `"<type> '<id>'"`, for messages.
    pub fn name(&self) -> &str {
        self.core.name()
    }

    /// The host device, for a reset run without a borrow of this state.
    pub const fn host(&self) -> QemuHost {
        *self.core.host()
    }

    /// Shows the memory to the guest if the core says it may see it.
    fn sync_memory(&self) {
        if let Some(memory) = &self.memory {
            memory.set_visible(self.core.memory_visible());
        }
    }

    /// First step of every reset: hide the memory.
    pub fn begin_reset(&mut self, kind: ResetKind) {
        self.core.begin_reset(kind);
        self.sync_memory();
        trace::trace_vfio_cxl_reset_begin(kind.name());
    }

    /// Last step of every reset; see `Passthrough::finish_reset`.
    pub fn finish_reset(&mut self, kind: ResetKind, host_reset: std::io::Result<()>) -> Result<()> {
        let outcome = self.core.finish_reset(kind, host_reset);
        trace::trace_vfio_cxl_reset_end(kind.name(), outcome.is_ok());
        self.sync_memory();
        outcome.map_err(|e| Error::with_error(self.core.name().to_string(), e))
    }

    /// Checks whether the host went away; if it did (first time only),
    /// hides the memory and says so once.  Returns whether the host is
    /// still worth watching.
    pub fn watch_host(&mut self) -> bool {
        let Some(why) = self.core.notice_host_gone() else {
            return self.core.host().connected();
        };
        self.sync_memory();
        trace::trace_vfio_cxl_host_gone(&cstring(&why));
        report_error(&format!("{}: {why}", self.core.name()));
        false
    }

    /// See `Passthrough::failed`.
    pub const fn failed(&self) -> bool {
        self.core.failed()
    }

    /// What the `cxl-status` property says.
    pub fn status(&self) -> String {
        self.core.status()
    }

    /// Program the host bridge's HDM decoders so that they route exactly
    /// the devices below it (`cxl_model::placement::host_bridge_registers`).
    /// Called at every system reset, which clears the host bridge's
    /// registers, and when a device below it is hot-plugged or removed.
    pub fn program_host_bridge(&self) {
        program_host_bridge(&self.port);
        if self.port.host_bridge_decoders() == 0 && !self.told_no_host_bridge_decoders.replace(true)
        {
            // Linux (7.x) assembles a region over a committed endpoint
            // decoder only through a host bridge decoder of the same range.
            warn(&format!(
                "{}: CXL host bridge '{}' has no HDM decoders: a Linux 7.x guest \
                 cannot assemble a CXL region over the device memory; give the \
                 pxb-cxl hdm_for_passthrough=on",
                self.core.name(),
                self.port.host_bridge_id
            ));
        }
    }

    /// Guest read of the component block.
    pub fn component_read(&self, offset: u64, size: u32) -> u64 {
        let (value, failure) = self.core.component_read(offset, size);
        trace::trace_vfio_cxl_component_read(offset, size, value);
        trace_host_failure(failure);
        value
    }

    /// Guest write to the component block.
    pub fn component_write(&mut self, offset: u64, size: u32, value: u64) {
        trace::trace_vfio_cxl_component_write(offset, size, value);
        trace_host_failure(self.core.component_write(offset, size, value));
    }

    /// After a guest write that covers the Command register's Memory Space
    /// Enable: see `Passthrough::keep_host_memory_enabled`.
    pub fn after_command_write(&self) {
        if let Err(e) = self.core.keep_host_memory_enabled() {
            trace::trace_vfio_cxl_memory_enable_failed(&cstring(&describe(&e)));
        }
    }

    /// See `Passthrough::strip_flr`.
    pub fn strip_flr(&self, addr: u32, value: u32, len: u32) -> Option<u32> {
        self.core.strip_flr(addr, value, len)
    }

    /// Whether a config access touches the CXL Device DVSEC.
    pub const fn touches_dvsec(&self, addr: u32, len: u32) -> bool {
        self.core.touches_dvsec(addr, len)
    }

    /// Guest config read touching the DVSEC.
    pub fn config_read(&self, addr: u32, len: u32, parent: &dyn Fn(u32, u32) -> u32) -> u32 {
        self.core.config_read(addr, len, &mut |a, l| parent(a, l))
    }

    /// Guest config write touching the DVSEC.
    pub fn config_write(
        &mut self,
        addr: u32,
        value: u32,
        len: u32,
        parent: &dyn Fn(u32, u32, u32),
    ) -> DvsecWriteEffect {
        trace::trace_vfio_cxl_dvsec_write(addr, len, value);
        self.core
            .config_write(addr, value, len, &mut |a, v, l| parent(a, v, l))
    }

    /// Take everything out of the guest's view and give the window back.
    /// The memory region comes back unmapped, for the device to free when
    /// it is finalized.
    pub fn unrealize(mut self) -> Option<MappedMemory> {
        self.component = None;
        let mut memory = self.memory.take();
        if let Some(memory) = memory.as_mut() {
            memory.unmap();
            trace::trace_vfio_cxl_unmapped(self.core.placement().base);
        }
        let key = self.key;
        PLACED.borrow_mut().retain(|(k, _)| *k != key);
        // The removed device's host bridge decoder must not route to it.
        program_host_bridge(&self.port);
        memory
    }
}

/// Writes the decoders of `port`'s host bridge for the devices placed
/// below it.
fn program_host_bridge(port: &CxlPort) {
    let decoders = port.host_bridge_decoders();
    let placed = placed_devices();
    let regs = placement::host_bridge_registers(&placed, &port.host_bridge_id, decoders);
    let devices = placed
        .iter()
        .filter(|d| d.host_bridge == port.host_bridge_id)
        .count();
    if !regs.is_empty() {
        port.write_host_bridge_hdm(&regs);
    }
    trace::trace_vfio_cxl_host_bridge_decoders(
        &cstring(&port.host_bridge_id),
        u32::try_from(devices).unwrap_or(u32::MAX),
        u32::try_from(decoders).unwrap_or(u32::MAX),
    );
}

/// `error_report()`: a host-side failure the user must see.
pub fn report_error(msg: &str) {
    let msg = cstring(msg);
    // SAFETY: a "%s" format with one NUL-terminated string argument.
    unsafe {
        bindings::error_report(c"%s".as_ptr(), msg.as_ptr());
    }
}

/// `warn_report()`: a configuration the user should change.
fn warn(msg: &str) {
    let msg = cstring(msg);
    // SAFETY: a "%s" format with one NUL-terminated string argument.
    unsafe {
        bindings::warn_report(c"%s".as_ptr(), msg.as_ptr());
    }
}

/// A host failure on the component block path is the host's, not the
/// guest's: it goes to the trace, and the guest sees all ones.
fn trace_host_failure(failure: Option<HostAccessFailure>) {
    if let Some(f) = failure {
        trace::trace_vfio_cxl_component_host_error(f.region_offset, &cstring(&f.error.to_string()));
    }
}

/// Migration is refused while the device exists: neither its memory nor
/// the host's HDM state can be moved.
struct MigrationBlocker(*mut util::bindings::Error);

/// Why the device cannot be migrated.
pub const MIGRATION_REFUSAL: &str = "a passed-through CXL Type-2 device cannot be migrated \
     (its device memory and HDM decoder state stay on the host)";

impl MigrationBlocker {
    fn add(name: &str) -> Result<Self> {
        use foreign::CloneToForeign;
        let reason = Error::format(format_args!("{name}: {MIGRATION_REFUSAL}"));
        let mut blocker = reason.clone_to_foreign_ptr();
        // SAFETY: blocker is a fresh Error; on failure QEMU frees it and
        // sets it to NULL.
        unsafe {
            Error::with_errp(|errp| bindings::migrate_add_blocker(&mut blocker, errp))?;
        }
        Ok(MigrationBlocker(blocker))
    }
}

impl Drop for MigrationBlocker {
    fn drop(&mut self) {
        // SAFETY: the blocker was added by add(); this frees it.
        unsafe { bindings::migrate_del_blocker(&mut self.0) }
    }
}
