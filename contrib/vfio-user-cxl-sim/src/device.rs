// SPDX-License-Identifier: GPL-2.0-or-later

//! The simulated CXL Type-2 accelerator as the host kernel presents it:
//! regions, config space, interrupts, DMA windows, reset and faults.
//!
//! Region layout (`num_regions` = 11):
//!
//! | index | region | flags |
//! |---|---|---|
//! | 0 | BAR 0, 256K, component block at 0x10000 trapped | READ WRITE MMAP, sparse mmap of the pages around the block |
//! | 1-6, 8 | empty (BAR 0 upper half, BARs 2-5, ROM, VGA) | - |
//! | 7 | config space, 4K | READ WRITE |
//! | 9/10 | `COMP_REGS` (subtype 2) and memory (subtype 1); v3: 9 = `COMP_REGS`, v2 and v4: 9 = memory | see [`Device::region_info`] |
//!
//! The CXL register content (`COMP_REGS` shadow, DVSEC shadow and the
//! capability encodings) comes from the register model through
//! [`crate::cxl`].
//!
//! v4 differences (see the README): BAR 0 traps only the HDM decoder
//! block (raw reads there return all ones, writes are dropped, the
//! sparse-mmap hole is the page holding it); the memory is usable only
//! while Memory Space Enable is set, and hidden from the client's mappings
//! otherwise ([`Backing::hide`]); every reset (`DEVICE_RESET`, FLR, the
//! DVSEC CXL Reset, and the kernel's own at open and close) clears the
//! memory and restores the decoder and the DVSEC snapshot.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;

use cxl_model::dvsec::DvsecWriteEffect;
use cxl_model::pcie::{PCI_COMMAND, PCI_COMMAND_MEMORY};
use cxl_model::uapi::VFIO_DEVICE_FLAGS_CXL;
use nix::errno::Errno;
use vfio_bindings::bindings::vfio::{
    VFIO_DEVICE_FLAGS_PCI, VFIO_DEVICE_FLAGS_RESET, VFIO_DMA_UNMAP_FLAG_ALL,
    VFIO_IRQ_INFO_AUTOMASKED, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_MASKABLE,
    VFIO_IRQ_INFO_NORESIZE, VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_TRIGGER,
    VFIO_IRQ_SET_ACTION_TYPE_MASK, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_IRQ_SET_DATA_BOOL,
    VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_TYPE_MASK,
    VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};

use crate::config::{ConfigEffect, ConfigSpace, CONFIG_SIZE, EXT_CAP_START};
use crate::control::Stats;
use crate::cxl::{self, split_access, CxlHost};
use crate::memory::Backing;
use crate::options::{DeviceOptions, Uapi};
use crate::protocol::{DmaMap, DmaUnmap, IrqInfo, IrqSet};

/// Number of regions reported (covers index 10).
pub const NUM_REGIONS: u32 = 11;
/// Number of interrupt indices: `INTx`, MSI, `MSI-X`, ERR, REQ.
pub const NUM_IRQS: u32 = 5;
/// Vectors per interrupt index (`MSI-X` has no capability, hence 0).
const IRQ_COUNTS: [u32; NUM_IRQS as usize] = [1, 1, 0, 1, 1];

pub const BAR0_INDEX: u32 = 0;
pub const CONFIG_INDEX: u32 = 7;
/// Size of BAR 0.
pub const BAR0_SIZE: u64 = 0x40000;
/// Offset of the component register block in BAR 0.
pub const COMPONENT_OFFSET: u64 = 0x10000;
/// Magic at BAR 0 + 0: "CXL2" in little-endian byte order.
pub const ACCEL_MAGIC: u32 = u32::from_le_bytes(*b"CXL2");
/// Version at BAR 0 + 4.
pub const ACCEL_VERSION: u32 = 1;

/// What a region looks like to `VFIO_USER_DEVICE_GET_REGION_INFO`.
pub struct RegionDesc<'a> {
    pub flags: u32,
    pub size: u64,
    /// Encoded capability chain, laid out for a region info structure
    /// whose chain starts at [`crate::protocol::REGION_INFO_SIZE`]
    /// (empty: no capabilities).
    pub caps: Vec<u8>,
    /// Descriptor to pass for `mmap` (regions with MMAP only).
    pub fd: Option<BorrowedFd<'a>>,
}

/// One DMA window the client told us about.
#[derive(Debug)]
pub struct DmaWindow {
    pub iova: u64,
    pub size: u64,
    pub offset: u64,
    pub flags: u32,
    pub fd: Option<OwnedFd>,
}

/// Which CXL region an index names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CxlRegion {
    CompRegs,
    Memory,
}

pub struct Device {
    opts: DeviceOptions,
    stats: Arc<Stats>,
    /// Device memory: persists across connections.
    memory: Backing,
    /// BAR 0 backing (the component block part is never served).
    bar: Backing,
    /// Whether the host lets the client reach the memory.  v2: false
    /// while a reset is in progress, or after one that left decoder 0
    /// uncommitted.  v4: Memory Space Enable (outside a reset); while
    /// false the backing is also hidden from mappings.
    memory_active: bool,
    config: ConfigSpace,
    cxl: CxlHost,
    /// Config space range of the CXL Device DVSEC.
    dvsec_at: usize,
    dvsec_len: usize,
    irqs: Vec<Vec<Option<OwnedFd>>>,
    dma: Vec<DmaWindow>,
}

impl Device {
    /// A powered-on device whose memory is `memory`.
    pub fn new(opts: DeviceOptions, memory: Backing, stats: Arc<Stats>) -> std::io::Result<Self> {
        let bar = Backing::anonymous("cxl-sim-bar0", BAR0_SIZE)?;
        let cxl = CxlHost::new(&opts, COMPONENT_OFFSET);
        let mut d = Self {
            opts,
            stats,
            memory,
            bar,
            memory_active: true,
            config: ConfigSpace::new(BAR0_SIZE),
            cxl,
            dvsec_at: EXT_CAP_START,
            dvsec_len: 0,
            irqs: Vec::new(),
            dma: Vec::new(),
        };
        d.power_on()?;
        Ok(d)
    }

    /// Back to power-on state (a new client connected).  Device memory
    /// keeps its contents, like real device memory.
    pub fn power_on(&mut self) -> std::io::Result<()> {
        self.cxl = CxlHost::new(&self.opts, COMPONENT_OFFSET);
        self.config = ConfigSpace::new(BAR0_SIZE);
        if self.opts.faults.no_flr {
            self.config.withhold_flr();
        }
        self.dvsec_len = self.cxl.dvsec_len();
        let locator_at = (self.dvsec_at + self.dvsec_len + 3) & !3;
        let dvsec = self.cxl.link_dvsec(locator_at as u16);
        self.config.place(self.dvsec_at, &dvsec);
        self.config.place(locator_at, &self.cxl.register_locator(0));
        self.set_memory_active(self.opts.uapi != Uapi::V4 || self.memory_enabled());
        self.irqs = IRQ_COUNTS
            .iter()
            .map(|&n| (0..n).map(|_| None).collect())
            .collect();
        self.dma.clear();
        self.reset_bar()
    }

    /// A client opens the device: power-on state, and (v4) the CXL reset
    /// the kernel runs at open, whose failure fails the open.
    pub fn open(&mut self) -> std::io::Result<()> {
        self.power_on()?;
        if self.opts.uapi == Uapi::V4 {
            if self.opts.faults.open_reset_fails {
                Stats::bump(&self.stats.reset_failures);
                return Err(std::io::Error::other("v4 reset at open failed"));
            }
            self.cxl_reset().map_err(std::io::Error::from)?;
        }
        Ok(())
    }

    /// The client went away: v4 resets the device at close.
    pub fn close(&mut self) {
        if self.opts.uapi == Uapi::V4 && !self.opts.faults.open_reset_fails {
            if let Err(e) = self.cxl_reset() {
                eprintln!("vfio-user-cxl-sim: reset at close failed: {e}");
            }
        }
    }

    /// Memory Space Enable in the Command register.
    fn memory_enabled(&self) -> bool {
        self.config.dword(PCI_COMMAND) & u32::from(PCI_COMMAND_MEMORY) != 0
    }

    /// Lets the client reach the memory or not; v4 also hides it from
    /// mappings, so that a stray access raises SIGBUS.
    fn set_memory_active(&mut self, active: bool) {
        self.memory_active = active;
        if self.opts.uapi != Uapi::V4 || self.memory.is_hidden() != active {
            return;
        }
        let moved = if active {
            self.memory.show()
        } else {
            self.memory.hide()
        };
        match moved {
            Ok(()) => Stats::bump(&self.stats.memory_gate_changes),
            Err(e) => eprintln!("vfio-user-cxl-sim: memory gate: {e}"),
        }
    }

    fn reset_bar(&self) -> std::io::Result<()> {
        self.bar.clear(0, BAR0_SIZE)?;
        let mut id = Vec::with_capacity(16);
        id.extend_from_slice(&ACCEL_MAGIC.to_le_bytes());
        id.extend_from_slice(&ACCEL_VERSION.to_le_bytes());
        id.extend_from_slice(&self.opts.memory_size.to_le_bytes());
        self.bar.write(0, &id)?;
        if self.opts.uapi == Uapi::V4 {
            // v4 leaves the component block to raw BAR access: the
            // hardware's capability array is readable there.
            let (at, image) = self.cxl.component_block_image();
            self.bar.write(COMPONENT_OFFSET + at, &image)?;
        }
        Ok(())
    }

    #[must_use]
    pub const fn options(&self) -> &DeviceOptions {
        &self.opts
    }

    #[must_use]
    pub fn device_flags(&self) -> u32 {
        VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_CXL
    }

    /// Region indices of (`COMP_REGS`, memory) for the configured series.
    #[must_use]
    pub const fn cxl_indices(&self) -> (u32, u32) {
        match self.opts.uapi {
            Uapi::V3 => (9, 10),
            Uapi::V2 | Uapi::V4 => (10, 9),
        }
    }

    fn cxl_region(&self, index: u32) -> Option<CxlRegion> {
        let (comp, mem) = self.cxl_indices();
        if index == comp {
            Some(CxlRegion::CompRegs)
        } else if index == mem {
            Some(CxlRegion::Memory)
        } else {
            None
        }
    }

    /// Size reported for the `COMP_REGS` region (0 when absent).
    fn comp_regs_reported_size(&self) -> u64 {
        let f = &self.opts.faults;
        if f.no_comp_regs {
            0
        } else if f.comp_regs_size_mismatch {
            self.cxl.comp_regs_size() + 0x1000
        } else {
            self.cxl.comp_regs_size()
        }
    }

    /// Size reported for the memory region (0 when absent).
    fn memory_reported_size(&self) -> u64 {
        let f = &self.opts.faults;
        if f.no_memory {
            0
        } else if f.memory_smaller_than_decoder {
            self.opts.memory_size / 2
        } else {
            self.opts.memory_size
        }
    }

    /// The description of region `index`.
    pub fn region_info(&self, index: u32) -> Result<RegionDesc<'_>, Errno> {
        const RW: u32 = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
        let empty = RegionDesc {
            flags: 0,
            size: 0,
            caps: Vec::new(),
            fd: None,
        };
        match index {
            BAR0_INDEX => {
                let hole = self.bar_trap_pages();
                let areas = [(0, hole.start), (hole.end, BAR0_SIZE - hole.end)];
                Ok(RegionDesc {
                    flags: RW | VFIO_REGION_INFO_FLAG_MMAP,
                    size: BAR0_SIZE,
                    caps: cxl::sparse_mmap_caps(&areas),
                    fd: Some(self.bar.fd()),
                })
            }
            CONFIG_INDEX => Ok(RegionDesc {
                flags: RW,
                size: CONFIG_SIZE as u64,
                ..empty
            }),
            1..=8 => Ok(empty),
            _ => match self.cxl_region(index) {
                Some(CxlRegion::CompRegs) if !self.opts.faults.no_comp_regs => Ok(RegionDesc {
                    flags: RW,
                    size: self.comp_regs_reported_size(),
                    caps: cxl::region_type_caps(
                        cxl::region_type(&self.opts),
                        cxl::SUBTYPE_COMP_REGS,
                        (self.opts.uapi == Uapi::V4).then(|| self.cxl.comp_regs_geometry()),
                        self.opts.faults.cap_chain_loop,
                    ),
                    fd: None,
                }),
                Some(CxlRegion::Memory) if !self.opts.faults.no_memory => Ok(RegionDesc {
                    flags: RW | VFIO_REGION_INFO_FLAG_MMAP,
                    size: self.memory_reported_size(),
                    caps: cxl::region_type_caps(
                        cxl::region_type(&self.opts),
                        cxl::SUBTYPE_MEMORY,
                        None,
                        false,
                    ),
                    fd: Some(self.memory.fd()),
                }),
                Some(_) => Ok(empty),
                None => Err(Errno::EINVAL),
            },
        }
    }

    fn check_range(offset: u64, len: usize, size: u64) -> Result<(), Errno> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= size && len > 0 => Ok(()),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The part of BAR 0 the host keeps from raw access: the component
    /// block (v2, v3) or only the HDM decoder block (v4).
    fn bar_trap(&self) -> std::ops::Range<u64> {
        if self.opts.uapi == Uapi::V4 {
            self.cxl.hdm_bar_range()
        } else {
            COMPONENT_OFFSET..COMPONENT_OFFSET + self.cxl.component_block_size()
        }
    }

    /// The pages that hold [`Device::bar_trap`]: the sparse-mmap hole.
    fn bar_trap_pages(&self) -> std::ops::Range<u64> {
        const PAGE: u64 = 4096;
        let t = self.bar_trap();
        (t.start & !(PAGE - 1))..t.end.next_multiple_of(PAGE)
    }

    /// The bytes of a BAR access `[offset, offset + len)` that fall in the
    /// trap, as indices into the access; `Err` for v2/v3, which refuse
    /// such an access.
    fn check_bar(&self, offset: u64, len: usize) -> Result<std::ops::Range<usize>, Errno> {
        Self::check_range(offset, len, BAR0_SIZE)?;
        let t = self.bar_trap();
        let end = offset + len as u64;
        let start = t.start.clamp(offset, end);
        let stop = t.end.clamp(offset, end);
        if start == stop {
            return Ok(0..0);
        }
        if self.opts.uapi != Uapi::V4 {
            // The kernel traps the component block: no direct access.
            return Err(Errno::EINVAL);
        }
        Stats::bump(&self.stats.hdm_bar_accesses);
        Ok((start - offset) as usize..(stop - offset) as usize)
    }

    fn check_memory(&self, offset: u64, len: usize) -> Result<(), Errno> {
        Self::check_range(offset, len, self.memory_reported_size())?;
        if self.memory_active {
            Ok(())
        } else {
            Stats::bump(&self.stats.gated_accesses);
            Err(Errno::EIO)
        }
    }

    /// `VFIO_USER_REGION_READ`; returns how many bytes were read (all of
    /// them, except at the end of v4's `COMP_REGS`).
    pub fn region_read(&mut self, index: u32, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        match index {
            BAR0_INDEX => {
                let trapped = self.check_bar(offset, buf.len())?;
                self.bar.read(offset, buf).map_err(|_| Errno::EIO)?;
                // v4: the HDM decoder block reads all ones.
                buf[trapped].fill(0xFF);
                Ok(buf.len())
            }
            CONFIG_INDEX => {
                Self::check_range(offset, buf.len(), CONFIG_SIZE as u64)?;
                self.config_read(offset as usize, buf);
                Ok(buf.len())
            }
            _ => match self.cxl_region(index) {
                Some(CxlRegion::CompRegs) => {
                    self.check_comp_regs(offset, buf.len())?;
                    self.cxl.comp_regs_read(offset, buf)
                }
                Some(CxlRegion::Memory) => {
                    self.check_memory(offset, buf.len())?;
                    self.memory.read(offset, buf).map_err(|_| Errno::EIO)?;
                    Ok(buf.len())
                }
                None => Err(Errno::EINVAL),
            },
        }
    }

    /// `COMP_REGS` accesses are checked by the model, within the size the
    /// region reports (which a fault may make smaller or larger).
    fn check_comp_regs(&self, offset: u64, len: usize) -> Result<(), Errno> {
        if self.opts.uapi == Uapi::V4 {
            // v4 stops an access at the end instead of refusing it.
            return if offset < self.comp_regs_reported_size() {
                Ok(())
            } else {
                Err(Errno::EINVAL)
            };
        }
        Self::check_range(offset, len, self.comp_regs_reported_size())
    }

    /// `VFIO_USER_REGION_WRITE`; returns how many bytes were written (as
    /// for [`Device::region_read`]).
    pub fn region_write(&mut self, index: u32, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        match index {
            BAR0_INDEX => {
                let trapped = self.check_bar(offset, data.len())?;
                // v4: writes to the HDM decoder block are dropped.
                let parts = [(0, trapped.start), (trapped.end, data.len())];
                for (from, to) in parts.into_iter().filter(|(a, b)| a < b) {
                    self.bar
                        .write(offset + from as u64, &data[from..to])
                        .map_err(|_| Errno::EIO)?;
                }
                Ok(data.len())
            }
            CONFIG_INDEX => {
                Self::check_range(offset, data.len(), CONFIG_SIZE as u64)?;
                self.config_write(offset as usize, data);
                Stats::bump(&self.stats.config_writes);
                Ok(data.len())
            }
            _ => match self.cxl_region(index) {
                Some(CxlRegion::CompRegs) => {
                    self.check_comp_regs(offset, data.len())?;
                    let n = self.cxl.comp_regs_write(offset, data)?;
                    Stats::bump(&self.stats.comp_regs_writes);
                    Ok(n)
                }
                Some(CxlRegion::Memory) => {
                    self.check_memory(offset, data.len())?;
                    self.memory.write(offset, data).map_err(|_| Errno::EIO)?;
                    Ok(data.len())
                }
                None => Err(Errno::EINVAL),
            },
        }
    }

    fn dvsec_range(&self) -> std::ops::Range<usize> {
        self.dvsec_at..self.dvsec_at + self.dvsec_len
    }

    /// Splits the config access `[offset, offset + len)` around the CXL
    /// Device DVSEC, which the kernel serves from its shadow.
    fn split_config(&self, offset: usize, len: usize) -> [(std::ops::Range<usize>, bool); 3] {
        split_access(offset..offset + len, &self.dvsec_range())
    }

    fn config_read(&self, offset: usize, buf: &mut [u8]) {
        for (r, in_dvsec) in self.split_config(offset, buf.len()) {
            if r.is_empty() {
                continue;
            }
            let part = &mut buf[r.start - offset..r.end - offset];
            if in_dvsec {
                self.cxl.dvsec_read(r.start - self.dvsec_at, part);
            } else {
                self.config.read(r.start, part);
            }
        }
    }

    fn config_write(&mut self, offset: usize, data: &[u8]) {
        let mut flr = false;
        let mut cxl_reset = false;
        for (r, in_dvsec) in self.split_config(offset, data.len()) {
            if r.is_empty() {
                continue;
            }
            let part = &data[r.start - offset..r.end - offset];
            if in_dvsec {
                match self.cxl.dvsec_write(r.start - self.dvsec_at, part) {
                    DvsecWriteEffect::None => {}
                    DvsecWriteEffect::CxlResetRequested => {
                        Stats::bump(&self.stats.cxl_resets);
                        cxl_reset = true;
                    }
                    DvsecWriteEffect::CacheWbiRequested => Stats::bump(&self.stats.cache_wbis),
                }
            } else {
                flr |= self.config.write(r.start, part) == ConfigEffect::Flr;
            }
        }
        if self.opts.uapi == Uapi::V4 {
            if cxl_reset {
                // v4 runs the real reset and reports its outcome.
                let ok = self.reset().is_ok();
                self.cxl.set_reset_status(ok);
            } else if self.memory_active != self.memory_enabled() {
                // Memory Space Enable changed: the host gates the memory.
                self.set_memory_active(!self.memory_active);
            }
        }
        if flr {
            // vfio-pci resets the function like VFIO_DEVICE_RESET; a
            // failure is only logged, the config write itself succeeds.
            if let Err(e) = self.reset() {
                eprintln!("vfio-user-cxl-sim: FLR through Device Control failed: {e}");
            }
        }
    }

    /// `VFIO_USER_DEVICE_RESET` (a function-level reset); also what a
    /// config write initiating an FLR in Device Control does.
    pub fn reset(&mut self) -> Result<(), Errno> {
        if self.opts.faults.reset_fails {
            Stats::bump(&self.stats.reset_failures);
            return Err(Errno::EIO);
        }
        match self.opts.uapi {
            Uapi::V2 => {
                // The kernel zaps the memory mappings, resets, re-reads
                // the decoders and reactivates the region if decoder 0 is
                // committed.  (A client's mmap of the memfd cannot be
                // zapped from here; REGION_READ/WRITE do see the inactive
                // state.)
                self.memory_active = false;
                self.cxl.reset_after_flr();
                self.memory_active = self.cxl.decoder0_committed();
            }
            Uapi::V4 => self.cxl_reset()?,
            // v3 leaves the HDM and DVSEC shadows alone.
            Uapi::V3 => {}
        }
        // The accelerator's own registers go back to power-on values.
        self.reset_bar().map_err(|_| Errno::EIO)?;
        Stats::bump(&self.stats.resets);
        Ok(())
    }

    /// v4's CXL reset: the memory is cleared (punching the pages out of
    /// every mapping too), the decoder and the DVSEC snapshot restored,
    /// and the memory usable again if Memory Space Enable is set.
    fn cxl_reset(&mut self) -> Result<(), Errno> {
        self.memory_active = false;
        self.memory
            .clear(0, self.opts.memory_size)
            .map_err(|_| Errno::EIO)?;
        Stats::bump(&self.stats.memory_clears);
        self.cxl.reset_after_flr();
        self.set_memory_active(self.memory_enabled());
        Ok(())
    }

    /// `VFIO_USER_DEVICE_GET_IRQ_INFO`.
    pub fn irq_info(&self, index: u32) -> Result<IrqInfo, Errno> {
        let count = *IRQ_COUNTS.get(index as usize).ok_or(Errno::EINVAL)?;
        let flags = match index {
            0 => VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED,
            1 | 2 => VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE,
            _ => VFIO_IRQ_INFO_EVENTFD,
        };
        Ok(IrqInfo {
            argsz: IrqInfo::SIZE,
            flags,
            index,
            count,
        })
    }

    /// `VFIO_USER_DEVICE_SET_IRQS`: validated and recorded; interrupts
    /// are only ever raised through the control socket.
    pub fn set_irqs(&mut self, s: &IrqSet, fds: Vec<OwnedFd>) -> Result<(), Errno> {
        let vectors = self.irqs.get_mut(s.index as usize).ok_or(Errno::EINVAL)?;
        let data = s.flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
        let action = s.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
        let one_of = |v: u32, set: &[u32]| set.contains(&v);
        if !one_of(
            data,
            &[
                VFIO_IRQ_SET_DATA_NONE,
                VFIO_IRQ_SET_DATA_BOOL,
                VFIO_IRQ_SET_DATA_EVENTFD,
            ],
        ) || !one_of(
            action,
            &[
                VFIO_IRQ_SET_ACTION_MASK,
                VFIO_IRQ_SET_ACTION_UNMASK,
                VFIO_IRQ_SET_ACTION_TRIGGER,
            ],
        ) {
            return Err(Errno::EINVAL);
        }
        if data != VFIO_IRQ_SET_DATA_EVENTFD && !fds.is_empty() {
            return Err(Errno::EINVAL);
        }
        let start = s.start as usize;
        let count = s.count as usize;
        if count == 0 {
            // DATA_NONE + TRIGGER with count 0 disables the whole index.
            if data == VFIO_IRQ_SET_DATA_NONE && action == VFIO_IRQ_SET_ACTION_TRIGGER {
                vectors.iter_mut().for_each(|v| *v = None);
            }
            Stats::bump(&self.stats.irq_sets);
            return Ok(());
        }
        if start.checked_add(count).is_none_or(|e| e > vectors.len()) {
            return Err(Errno::EINVAL);
        }
        if data == VFIO_IRQ_SET_DATA_EVENTFD && action == VFIO_IRQ_SET_ACTION_TRIGGER {
            if fds.is_empty() {
                vectors[start..start + count]
                    .iter_mut()
                    .for_each(|v| *v = None);
            } else if fds.len() == count {
                for (slot, fd) in vectors[start..].iter_mut().zip(fds) {
                    *slot = Some(fd);
                }
            } else {
                return Err(Errno::EINVAL);
            }
        }
        // Other combinations (mask, unmask, resample eventfds) are inert.
        Stats::bump(&self.stats.irq_sets);
        Ok(())
    }

    /// Signals the eventfd registered for `index`/`sub` (control socket).
    pub fn fire_irq(&self, index: u64, sub: u64) -> Result<(), String> {
        use std::io::Write;
        let fd = self
            .irqs
            .get(index as usize)
            .and_then(|v| v.get(sub as usize))
            .ok_or("no such interrupt")?
            .as_ref()
            .ok_or("no eventfd registered")?;
        let mut f = std::fs::File::from(fd.try_clone().map_err(|e| e.to_string())?);
        f.write_all(&1u64.to_ne_bytes()).map_err(|e| e.to_string())
    }

    /// Number of eventfds registered for interrupt index `index`.
    #[must_use]
    pub fn irq_eventfds(&self, index: usize) -> usize {
        self.irqs
            .get(index)
            .map_or(0, |v| v.iter().filter(|f| f.is_some()).count())
    }

    /// `VFIO_USER_DMA_MAP`: recorded, never accessed.
    pub fn dma_map(&mut self, m: &DmaMap, mut fds: Vec<OwnedFd>) -> Result<(), Errno> {
        if m.size == 0 || fds.len() > 1 || m.iova.checked_add(m.size).is_none() {
            return Err(Errno::EINVAL);
        }
        self.dma.push(DmaWindow {
            iova: m.iova,
            size: m.size,
            offset: m.offset,
            flags: m.flags,
            fd: fds.pop(),
        });
        Stats::bump(&self.stats.dma_maps);
        Ok(())
    }

    /// `VFIO_USER_DMA_UNMAP`: drops the windows inside the range.
    pub fn dma_unmap(&mut self, u: &DmaUnmap) -> Result<(), Errno> {
        if u.flags & VFIO_DMA_UNMAP_FLAG_ALL != 0 {
            self.dma.clear();
        } else {
            let end = u.iova.checked_add(u.size).ok_or(Errno::EINVAL)?;
            self.dma
                .retain(|w| !(w.iova >= u.iova && w.iova + w.size <= end));
        }
        Stats::bump(&self.stats.dma_unmaps);
        Ok(())
    }

    #[must_use]
    pub fn dma_windows(&self) -> &[DmaWindow] {
        &self.dma
    }

    /// Config bytes as the client would read them (control socket).
    pub fn config_peek(&self, offset: u64, buf: &mut [u8]) -> Result<(), String> {
        Self::check_range(offset, buf.len(), CONFIG_SIZE as u64)
            .map_err(|_| "outside config space".to_owned())?;
        self.config_read(offset as usize, buf);
        Ok(())
    }

    /// The host shadow dword at `COMP_REGS` offset `offset` (control
    /// socket; works even when the region is hidden by a fault).
    pub fn comp_regs_peek(&self, offset: u64) -> Result<u32, String> {
        let mut b = [0u8; 4];
        match self.cxl.comp_regs_read(offset, &mut b) {
            Ok(4) => Ok(u32::from_le_bytes(b)),
            Ok(_) => Err(format!("COMP_REGS read at {offset:#x}: past the end")),
            Err(e) => Err(format!("COMP_REGS read at {offset:#x}: {e}")),
        }
    }

    /// Device memory, regardless of the region's state (control socket).
    pub fn memory_peek(&self, offset: u64, buf: &mut [u8]) -> Result<(), String> {
        self.memory.read(offset, buf).map_err(|e| e.to_string())
    }

    pub fn memory_poke(&self, offset: u64, data: &[u8]) -> Result<(), String> {
        self.memory.write(offset, data).map_err(|e| e.to_string())
    }

    #[must_use]
    pub const fn memory_active(&self) -> bool {
        self.memory_active
    }

    /// The memory as the host gates it (control socket `state`).
    #[must_use]
    pub fn state_json(&self) -> serde_json::Value {
        serde_json::json!({
            "memory_accessible": self.memory_active,
            "memory_enable": self.memory_enabled(),
            "memory_hidden": self.memory.is_hidden(),
        })
    }

    #[must_use]
    pub const fn memory(&self) -> &Backing {
        &self.memory
    }
}
