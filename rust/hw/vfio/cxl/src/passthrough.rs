// SPDX-License-Identifier: GPL-2.0-or-later

//! The CXL side of a passed-through Type-2 device: what realize finds and
//! sets up, what the guest sees (component block, DVSEC, memory), and what
//! unrealize takes down again.  Decisions come from `cxl_model`; this file
//! applies them to QEMU.

use std::{ffi::CStr, ops::Range, sync::Mutex};

use cxl_model::{
    discovery::{self, HostLayout},
    dvsec::{split_access, DvsecWriteEffect, GuestDeviceDvsec},
    guest_component::GuestComponentBlock,
    uapi::{self, VFIO_REGION_SUBTYPE_CXL_COMP_REGS, VFIO_REGION_TYPE_CXL},
    window::{self, ChosenWindow},
};
use system::bindings::MemoryRegion;
use util::{Error, Result};

use crate::{
    bindings,
    host::VfioHost,
    memory::{ComponentOverlay, MappedMemory},
    topology::{self, CxlPort},
};

::trace::include_trace!("rust_hw_vfio_cxl");

/// Where the CXL Device DVSEC's emulated registers start: the extended
/// capability header and the two DVSEC headers before it stay vfio-pci's.
const DVSEC_EMULATED_FROM: u16 = 0x0A;

/// Windows taken by a realized device, so that two devices never share
/// one (the BQL serializes realize, the mutex keeps this safe Rust).
static WINDOWS_IN_USE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// The resets a guest can cause; they differ in what CXL state survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetKind {
    /// Function Level Reset: CXL.mem state (HDM decoders, DVSEC) stays, as
    /// the CXL specification says.
    Flr,
    /// CXL Reset through the DVSEC: CXL.mem state returns to its boot value.
    Cxl,
    /// System reset or secondary bus reset: everything returns to boot.
    SystemOrBus,
}

impl ResetKind {
    const fn name(self) -> &'static CStr {
        match self {
            ResetKind::Flr => c"FLR",
            ResetKind::Cxl => c"CXL",
            ResetKind::SystemOrBus => c"system or bus",
        }
    }
}

/// Device Control in the `PCIe` capability, and its "Initiate FLR" bit.
const PCI_EXP_DEVCTL: u32 = 0x08;
const PCI_EXP_DEVCTL_BCR_FLR: u32 = 0x8000;

/// What realize needs to know about the device it works for.
pub struct DeviceRefs {
    /// `"<type> '<id>'"`, for messages.
    pub name: String,
    pub owner: *mut qom::bindings::Object,
    pub vdev: *mut bindings::VFIOPCIDevice,
    pub component_mr: *mut MemoryRegion,
    /// The `cxl-fmw` property, if set.
    pub requested_window: Option<usize>,
    /// Kernel VFIO (device-info capability available) or vfio-user.
    pub kernel_vfio: bool,
}

/// A realized CXL passthrough.  [`Passthrough::unrealize`] takes it out of
/// the guest's view again.
pub struct Passthrough {
    name: String,
    vdev: *mut bindings::VFIOPCIDevice,
    kernel_vfio: bool,
    /// Offset of the `PCIe` capability, whose Device Control starts FLRs.
    exp_cap: u8,
    /// Why the memory is not usable after a failed reset, if it is not.
    failure: Option<String>,
    host: VfioHost,
    layout: HostLayout,
    window: ChosenWindow,
    port: CxlPort,
    guest: GuestComponentBlock,
    dvsec: GuestDeviceDvsec,
    dvsec_range: Range<u32>,
    // Dropped in this order: the guest loses the overlay and the mapping
    // before migration is allowed again.
    component: Option<ComponentOverlay>,
    memory: Option<MappedMemory>,
    _migration_blocker: MigrationBlocker,
}

impl Passthrough {
    /// Find the host's CXL resources, choose the guest address and make
    /// the device's memory and registers visible there.
    ///
    /// # Safety
    ///
    /// The pointers in `dev` must be the realized device, which must drop
    /// the result before it is finalized.
    pub unsafe fn realize(dev: &DeviceRefs) -> Result<Self> {
        let refuse = |msg: String| {
            trace::trace_vfio_cxl_refused(&std::ffi::CString::new(msg.clone()).unwrap_or_default());
            Error::format(format_args!("{}: {msg}", dev.name))
        };

        // SAFETY: dev.vdev is realized (contract).
        let host = unsafe { VfioHost::new(dev.vdev) };
        let (layout, config) = discover_host(&host, dev.kernel_vfio).map_err(refuse)?;
        trace::trace_vfio_cxl_discovered(
            layout.memory_region,
            layout.memory_size,
            layout.comp_regs_region,
            layout.comp_regs_size,
            layout.component_bar,
            layout.component_offset,
            layout.hdm_offset,
        );

        // SAFETY: dev.vdev is realized (contract).
        if !unsafe { (*dev.vdev).vbasedev.reset_works } {
            return Err(refuse(
                "the host device cannot be reset, and every reset (even the one at \
                 machine start) must reset it before its memory is given to the guest"
                    .to_string(),
            ));
        }
        // SAFETY: the device is plugged into a bus once its parent realized.
        let port = unsafe { CxlPort::of(dev.vdev.cast()) }.map_err(|e| refuse(e.to_string()))?;
        let windows = topology::fixed_windows();
        let in_use = WINDOWS_IN_USE.lock().unwrap().clone();
        let window = window::choose_window(
            &windows,
            &port.host_bridge_id,
            dev.requested_window,
            layout.memory_size,
            &in_use,
        )
        .map_err(|e| refuse(e.to_string()))?;
        trace::trace_vfio_cxl_window(
            i32::try_from(window.index).unwrap_or(-1),
            window.base,
            window.size,
            port.port_number,
        );

        let guest =
            GuestComponentBlock::new(&layout, window.base, layout.memory_size, window.range())
                .map_err(|e| refuse(format!("cannot present HDM decoder 0: {e}")))?;
        let dvsec = GuestDeviceDvsec::new(&layout.device_dvsec, window.base, layout.memory_size);
        let dvsec_start = u32::from(layout.device_dvsec_offset);
        let dvsec_len = dvsec_length(&config, layout.device_dvsec_offset);
        let migration_blocker = MigrationBlocker::add(&dev.name)?;

        // SAFETY: the PCI core set up the device's PCIe capability.
        let exp_cap = unsafe { (*dev.vdev).parent_obj.exp.exp_cap };
        let mut this = Passthrough {
            name: dev.name.clone(),
            vdev: dev.vdev,
            kernel_vfio: dev.kernel_vfio,
            exp_cap,
            failure: None,
            host,
            layout,
            window,
            port,
            guest,
            dvsec,
            dvsec_range: dvsec_start..dvsec_start + dvsec_len,
            component: None,
            memory: None,
            _migration_blocker: migration_blocker,
        };
        this.write_host_base()
            .map_err(|e| Error::format(format_args!("{}: {e}", dev.name)))?;
        // Nothing may fail once the memory is mapped: a mapping, once
        // seen by a FlatView, can only be freed when the device is.
        // SAFETY: per this function's contract.
        unsafe {
            let bar = usize::from(this.layout.component_bar);
            let bar_mr = (*dev.vdev).bars[bar].region.mem.cast::<MemoryRegion>();
            this.component = Some(
                ComponentOverlay::add(bar_mr, this.layout.component_offset, dev.component_mr)
                    .map_err(|e| Error::format(format_args!("{}: {e}", dev.name)))?,
            );
            let vbasedev = std::ptr::addr_of_mut!((*dev.vdev).vbasedev);
            this.memory = Some(
                MappedMemory::map(
                    dev.owner,
                    vbasedev,
                    this.layout.memory_region,
                    this.window.base,
                )
                .map_err(|e| Error::format(format_args!("{}: {e}", dev.name)))?,
            );
        }
        trace::trace_vfio_cxl_mapped(this.window.base, this.layout.memory_size);
        WINDOWS_IN_USE.lock().unwrap().push(this.window.index);
        Ok(this)
    }

    /// If a config write of `value` (`len` bytes at `addr`) starts a
    /// Function Level Reset, the same write without the FLR bit.
    pub fn strip_flr(&self, addr: u32, value: u32, len: u32) -> Option<u32> {
        if self.exp_cap == 0 {
            return None;
        }
        let flr_byte = u32::from(self.exp_cap) + PCI_EXP_DEVCTL + 1;
        if !(addr..addr + len).contains(&flr_byte) {
            return None;
        }
        let bit = (flr_byte - addr) * 8 + (PCI_EXP_DEVCTL_BCR_FLR.trailing_zeros() - 8);
        (value & (1 << bit) != 0).then_some(value & !(1 << bit))
    }

    /// First step of every reset: no guest access may reach the device
    /// memory while the host resets it.
    pub fn begin_reset(&self, kind: ResetKind) {
        if let Some(memory) = &self.memory {
            memory.set_visible(false);
        }
        trace::trace_vfio_cxl_reset_begin(kind.name());
    }

    /// Reset the host device.  Called between [`Passthrough::begin_reset`]
    /// and [`Passthrough::finish_reset`], with no borrow of the device's
    /// state held: the reset runs vfio-pci code that may call back.
    ///
    /// # Safety
    ///
    /// The device `vdev` must still be realized.
    pub unsafe fn reset_host(vdev: *mut bindings::VFIOPCIDevice, kind: ResetKind) -> Result<()> {
        // A CXL Reset resets CXL.cache and CXL.mem state, not the
        // function's PCIe configuration.
        // SAFETY: per the contract.
        unsafe { crate::host::reset_host(vdev, kind == ResetKind::Cxl) }
    }

    /// The device this passthrough works for.
    pub const fn vdev(&self) -> *mut bindings::VFIOPCIDevice {
        self.vdev
    }

    /// Last step of every reset: check that the host still presents the
    /// same committed memory, restore what the guest sees, and give the
    /// memory back to the guest.  On failure the memory stays hidden and
    /// the error says why.
    pub fn finish_reset(&mut self, kind: ResetKind, host_reset: Result<()>) -> Result<()> {
        let outcome = host_reset
            .map_err(|e| format!("the host reset failed: {e}"))
            .and_then(|()| self.check_host_after_reset())
            .and_then(|()| {
                if kind != ResetKind::Flr {
                    self.guest.reset_to_boot();
                    self.dvsec.reset();
                }
                self.write_host_base()
            });
        let ok = outcome.is_ok();
        if kind == ResetKind::Cxl {
            self.dvsec.set_reset_status(ok, !ok);
        }
        trace::trace_vfio_cxl_reset_end(kind.name(), ok);
        match outcome {
            Ok(()) => {
                self.failure = None;
                if let Some(memory) = &self.memory {
                    memory.set_visible(true);
                }
                Ok(())
            }
            Err(e) => {
                let msg = format!(
                    "{}: after {} reset, device memory stays unmapped from the guest: {e}",
                    self.name,
                    kind.name().to_string_lossy()
                );
                self.failure = Some(msg.clone());
                Err(Error::msg(msg))
            }
        }
    }

    /// What the `cxl-status` property says: where the memory is, or why
    /// it is not usable after a failed reset.
    pub fn status(&self) -> String {
        match &self.failure {
            Some(failure) => format!("unmapped: {failure}"),
            None => format!(
                "mapped: {:#x} bytes at {:#x} in CXL fixed memory window {}",
                self.layout.memory_size, self.window.base, self.window.index
            ),
        }
    }

    fn check_host_after_reset(&self) -> std::result::Result<(), String> {
        let (now, _) = discover_host(&self.host, self.kernel_vfio)?;
        let before = &self.layout;
        if now.memory_region != before.memory_region
            || now.memory_size != before.memory_size
            || now.comp_regs_region != before.comp_regs_region
            || now.component_bar != before.component_bar
            || now.component_offset != before.component_offset
        {
            return Err(format!(
                "the host now presents memory region {} of {:#x} bytes (component block in \
                 BAR {} at {:#x}); it was region {} of {:#x} bytes (BAR {} at {:#x})",
                now.memory_region,
                now.memory_size,
                now.component_bar,
                now.component_offset,
                before.memory_region,
                before.memory_size,
                before.component_bar,
                before.component_offset
            ));
        }
        Ok(())
    }

    /// uAPI v2 zeroes the host decoder's BASE at open and after reset and
    /// expects the VMM to write the guest address there.
    fn write_host_base(&self) -> std::result::Result<(), String> {
        if let Some(writes) = self.layout.host_base_writes(self.window.base) {
            for (offset, value) in writes {
                self.host
                    .write32(self.layout.comp_regs_region, offset, value)
                    .map_err(|e| {
                        format!("cannot write the guest base into COMP_REGS at {offset:#x}: {e}")
                    })?;
            }
            trace::trace_vfio_cxl_host_base(self.window.base);
        }
        Ok(())
    }

    /// Commit the host bridge's decoder 0 over the window, if the host
    /// bridge has decoders (a single-root-port host bridge normally decodes
    /// in passthrough mode).  Called again after every system reset, which
    /// clears the host bridge's registers.
    pub fn program_host_bridge(&self) {
        let decoder = window::host_bridge_decoder(
            &self.window,
            self.layout.memory_size,
            self.port.port_number,
        );
        let programmed = self.port.write_host_bridge_hdm(&decoder.registers());
        trace::trace_vfio_cxl_host_bridge_decoder(decoder.base, decoder.size, programmed);
    }

    /// `"<type> '<id>'"`, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Guest read of the component block.
    pub fn component_read(&self, offset: u64, size: u32) -> u64 {
        let comp_regs = self.layout.comp_regs_region;
        let value = self.guest.read_via(offset, size, &mut |region_offset| {
            self.host
                .read32(comp_regs, region_offset)
                .unwrap_or(u32::MAX)
        });
        trace::trace_vfio_cxl_component_read(offset, size, value);
        value
    }

    /// Guest write to the component block.
    pub fn component_write(&mut self, offset: u64, size: u32, value: u64) {
        trace::trace_vfio_cxl_component_write(offset, size, value);
        let comp_regs = self.layout.comp_regs_region;
        let host = &self.host;
        self.guest
            .write_via(offset, size, value, &mut |region_offset, dword| {
                // The host shadow may drop the write; that is its right.
                let _ = host.write32(comp_regs, region_offset, dword);
            });
    }

    /// Whether a config access touches the CXL Device DVSEC.
    pub const fn touches_dvsec(&self, addr: u32, len: u32) -> bool {
        addr < self.dvsec_range.end && addr + len > self.dvsec_range.start
    }

    /// The DVSEC registers served by the guest-view model; the extended
    /// capability header (whose next pointer is vfio-pci's) and the DVSEC
    /// headers before them are read through vfio-pci.
    fn emulated_range(&self) -> Range<u32> {
        self.dvsec_range.start + u32::from(DVSEC_EMULATED_FROM)..self.dvsec_range.end
    }

    /// Guest config read touching the DVSEC: the emulated registers from
    /// the model, the rest through `parent`.
    pub fn config_read(&self, addr: u32, len: u32, parent: &dyn Fn(u32, u32) -> u32) -> u32 {
        config_parts(addr, len, &self.emulated_range()).fold(0, |value, (at, n, emulated)| {
            let part = if emulated {
                self.dvsec.read(self.dvsec_offset(at), n)
            } else {
                parent(at, n)
            };
            value | (part & byte_mask(n)) << (8 * (at - addr))
        })
    }

    /// Guest config write touching the DVSEC: the emulated registers go to
    /// the model and never to the host; writes to the DVSEC's read-only
    /// headers are dropped; the rest goes through `parent`.
    pub fn config_write(
        &mut self,
        addr: u32,
        value: u32,
        len: u32,
        parent: &dyn Fn(u32, u32, u32),
    ) -> DvsecWriteEffect {
        let mut effect = DvsecWriteEffect::None;
        for (at, n, emulated) in config_parts(addr, len, &self.emulated_range()) {
            let part = (value >> (8 * (at - addr))) & byte_mask(n);
            if emulated {
                trace::trace_vfio_cxl_dvsec_write(at - self.dvsec_range.start, n, part);
                let e = self.dvsec.write(self.dvsec_offset(at), n, part);
                if e != DvsecWriteEffect::None {
                    effect = e;
                }
            } else if !self.dvsec_range.contains(&at) {
                parent(at, part, n);
            }
        }
        effect
    }

    /// Take everything out of the guest's view and give the window back.
    /// The memory region comes back unmapped, for the device to free when
    /// it is finalized.
    pub fn unrealize(mut self) -> Option<MappedMemory> {
        self.component = None;
        let mut memory = self.memory.take();
        if let Some(memory) = memory.as_mut() {
            memory.unmap();
            trace::trace_vfio_cxl_unmapped(self.window.base);
        }
        WINDOWS_IN_USE
            .lock()
            .unwrap()
            .retain(|&index| index != self.window.index);
        memory
    }

    fn dvsec_offset(&self, addr: u32) -> u16 {
        // A DVSEC lies inside 4 KiB of config space.
        (addr - self.dvsec_range.start) as u16
    }
}

/// The non-empty parts of the config access `addr..addr + len` before,
/// inside and after `region`, as (start, length, inside).  Config accesses
/// are naturally aligned and the DVSEC's edges are dword or word aligned,
/// so every part is 1, 2 or 4 bytes long.
fn config_parts(
    addr: u32,
    len: u32,
    region: &Range<u32>,
) -> impl Iterator<Item = (u32, u32, bool)> {
    let widen = |r: &Range<u32>| r.start as usize..r.end as usize;
    split_access(widen(&(addr..addr + len)), &widen(region))
        .into_iter()
        .filter(|(part, _)| !part.is_empty())
        .map(|(part, inside)| (part.start as u32, (part.end - part.start) as u32, inside))
}

/// The low `len` bytes of a dword.
const fn byte_mask(len: u32) -> u32 {
    u32::MAX >> (32 - 8 * len)
}

/// Ask the host for its CXL resources and check them.  Returns the layout
/// and the host's config space.
fn discover_host(
    host: &VfioHost,
    kernel_vfio: bool,
) -> std::result::Result<(HostLayout, Vec<u8>), String> {
    let regions = host.region_descs()?;
    let config = host
        .config_space()
        .map_err(|e| format!("cannot read config space: {e}"))?;
    let info = if kernel_vfio {
        host.kernel_device_info_bytes()
            .map(|bytes| uapi::device_info_cxl(&bytes))
            .transpose()
            .map_err(|e| format!("the CXL device-info capability is invalid: {e}"))?
            .flatten()
    } else {
        None
    };
    let comp_regs = regions
        .iter()
        .find(|r| r.cap_type == Some((VFIO_REGION_TYPE_CXL, VFIO_REGION_SUBTYPE_CXL_COMP_REGS)))
        .map(|r| r.index);
    let layout = discovery::discover(&regions, &config, info.as_ref(), &mut |offset| {
        let index = comp_regs.ok_or_else(|| "no COMP_REGS region".to_string())?;
        host.read32(index, offset).map_err(|e| e.to_string())
    })
    .map_err(|e| e.to_string())?;
    Ok((layout, config))
}

/// Length of the DVSEC at `offset` of `config`, from DVSEC header 1.
fn dvsec_length(config: &[u8], offset: u16) -> u32 {
    let at = usize::from(offset) + 4;
    config
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) >> 20)
        .unwrap_or_else(|| u32::from(cxl_model::dvsec::DEVICE_DVSEC_LENGTH))
}

/// Migration is refused while the device exists: neither its memory nor
/// the host's HDM state can be moved.
struct MigrationBlocker(*mut util::bindings::Error);

impl MigrationBlocker {
    fn add(name: &str) -> Result<Self> {
        use foreign::CloneToForeign;
        let reason = Error::format(format_args!(
            "{name}: a passed-through CXL Type-2 device cannot be migrated \
             (its device memory and HDM decoder state stay on the host)"
        ));
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
