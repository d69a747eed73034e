// SPDX-License-Identifier: GPL-2.0-or-later

//! The device core over a test double of the host: realize, reset and the
//! component and DVSEC paths, as QEMU drives them, without QEMU.

use std::cell::{Cell, RefCell};

use super::*;
use crate::discovery::testing::{TestHost, GIB, HPA, MEM};
use crate::discovery::RegionDesc;
use crate::dvsec::DeviceDvsecRegister;
use crate::hdm::{decoder_offset, DecoderRegister};
use crate::host::{HostCompRegs, HOST_DECODER0_BLOCK_OFFSET, HOST_HDM_BLOCK_OFFSET};
use crate::uapi::{
    encode_cap_chain, encode_region_info, vfio_region_info, RegionTypeCap, UapiVersion,
    VFIO_PCI_CONFIG_REGION_INDEX, VFIO_REGION_INFO_FLAG_CAPS,
};
use crate::window::ChosenWindow;

const BASE: u64 = 0x10_0000_0000;
const DVSEC: u32 = 0x100;
/// Where the test config space puts its `PCIe` capability.
const EXP_CAP: usize = 0x40;

/// A host built from the model's kernel shadow, counting what the core
/// asks of it and failing on demand.
struct FakeHost {
    layout: TestHost,
    regs: RefCell<HostCompRegs>,
    config: RefCell<Vec<u8>>,
    resets: Cell<u32>,
    can_reset: bool,
    reset_fails: Cell<bool>,
    reads_fail: Cell<bool>,
    connected: Cell<bool>,
    /// `COMP_REGS` reads the host answered.
    comp_regs_reads: Cell<u32>,
    /// Reads of the whole config space (discovery's).
    config_space_reads: Cell<u32>,
    /// Region descriptions once the next reset has happened.
    regions_after_reset: RefCell<Option<Vec<RegionDesc>>>,
    regions: RefCell<Vec<RegionDesc>>,
}

impl FakeHost {
    fn new(version: UapiVersion, flr_capable: bool) -> Self {
        let layout = TestHost::new(version);
        let mut config = layout.config();
        // A PCIe capability at 0x40, FLR capable or not.
        config[0x06] = 0x10;
        config[0x34] = EXP_CAP as u8;
        config[EXP_CAP] = 0x10;
        let devcap: u32 = if flr_capable { 1 << 28 } else { 0 };
        config[EXP_CAP + 4..EXP_CAP + 8].copy_from_slice(&devcap.to_le_bytes());
        Self {
            regs: RefCell::new(layout.regs.clone()),
            regions: RefCell::new(layout.regions.clone()),
            layout,
            config: RefCell::new(config),
            resets: Cell::new(0),
            can_reset: true,
            reset_fails: Cell::new(false),
            reads_fail: Cell::new(false),
            connected: Cell::new(true),
            comp_regs_reads: Cell::new(0),
            config_space_reads: Cell::new(0),
            regions_after_reset: RefCell::new(None),
        }
    }

    fn comp_regs_index(&self) -> u32 {
        self.layout.regs_index()
    }

    fn command(&self) -> u16 {
        let c = self.config.borrow();
        u16::from_le_bytes([c[4], c[5]])
    }

    fn shadow_dword(&self, block_offset: u64) -> u32 {
        self.regs.borrow().block_dword(block_offset)
    }
}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(22)
}

impl HostDevice for &FakeHost {
    fn region_count(&self) -> u32 {
        11
    }

    fn region_info(&self, index: u32) -> Option<Vec<u8>> {
        let regions = self.regions.borrow();
        let r = regions.iter().find(|r| r.index == index)?;
        let caps = r
            .cap_type
            .map(|(ty, subtype)| RegionTypeCap { ty, subtype }.encode(0));
        let fixed = 32;
        let chain = encode_cap_chain(fixed, caps.as_slice());
        let mut info = encode_region_info(&vfio_region_info {
            argsz: fixed + u32::try_from(chain.len()).unwrap(),
            flags: r.flags
                | if caps.is_some() {
                    VFIO_REGION_INFO_FLAG_CAPS
                } else {
                    0
                },
            index,
            cap_offset: if caps.is_some() { fixed } else { 0 },
            size: r.size,
            offset: 0,
        });
        info.extend_from_slice(&chain);
        Some(info)
    }

    fn region_read(&self, index: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if index == VFIO_PCI_CONFIG_REGION_INDEX {
            let at = usize::try_from(offset).unwrap();
            if buf.len() >= 0x100 {
                self.config_space_reads
                    .set(self.config_space_reads.get() + 1);
            }
            buf.copy_from_slice(&self.config.borrow()[at..at + buf.len()]);
            return Ok(());
        }
        if index == u32::from(self.layout.blocks[0].bir) {
            for (i, chunk) in buf.chunks_exact_mut(4).enumerate() {
                let dword = self
                    .layout
                    .bar_dword(offset + 4 * i as u64)
                    .map_err(|_| einval())?;
                chunk.copy_from_slice(&dword.to_le_bytes());
            }
            return Ok(());
        }
        if index != self.comp_regs_index() {
            return Err(einval());
        }
        if self.reads_fail.get() {
            return Err(io::Error::from_raw_os_error(5));
        }
        self.comp_regs_reads.set(self.comp_regs_reads.get() + 1);
        self.regs
            .borrow()
            .read(offset, buf)
            .map(drop)
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))
    }

    fn region_write(&self, index: u32, offset: u64, data: &[u8]) -> io::Result<()> {
        if index == VFIO_PCI_CONFIG_REGION_INDEX {
            let at = usize::try_from(offset).unwrap();
            self.config.borrow_mut()[at..at + data.len()].copy_from_slice(data);
            return Ok(());
        }
        if index != self.comp_regs_index() {
            return Err(einval());
        }
        self.regs
            .borrow_mut()
            .write(offset, data)
            .map(drop)
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))
    }

    fn device_info(&self) -> Option<Vec<u8>> {
        None
    }

    fn can_reset(&self) -> bool {
        self.can_reset
    }

    fn connected(&self) -> bool {
        self.connected.get()
    }

    fn reset(&self, _kind: ResetKind) -> io::Result<()> {
        self.resets.set(self.resets.get() + 1);
        if self.reset_fails.get() {
            return Err(io::Error::from_raw_os_error(5));
        }
        self.regs.borrow_mut().reset();
        if let Some(regions) = self.regions_after_reset.borrow_mut().take() {
            *self.regions.borrow_mut() = regions;
        }
        Ok(())
    }
}

fn placement() -> PlacedDevice {
    PlacedDevice {
        name: "vfio-user-cxl 'acc'".to_string(),
        host_bridge: "cxl.1".to_string(),
        root_port: 0,
        window: ChosenWindow {
            index: 0,
            base: BASE,
            size: 8 * GIB,
        },
        base: BASE,
        size: MEM,
    }
}

fn realize(host: &FakeHost) -> Passthrough<&FakeHost> {
    discover(host).unwrap().present(placement()).unwrap()
}

/// The way the QEMU glue runs a reset.
fn reset(p: &mut Passthrough<&FakeHost>, kind: ResetKind) -> Result<(), PassthroughError> {
    p.begin_reset(kind);
    let kept = kind == ResetKind::Flr && p.layout().uapi == UapiVersion::V3;
    assert!(
        kept || !p.memory_visible(),
        "memory hidden while the host resets"
    );
    let host = *p.host();
    p.finish_reset(kind, host.reset(kind))
}

const DEC0_GUEST: u64 = HOST_HDM_BLOCK_OFFSET + 0x10;

fn guest_decoder0(p: &Passthrough<&FakeHost>, reg: DecoderRegister) -> u32 {
    p.component_read(DEC0_GUEST + reg as u64 - 0x10 + decoder_offset(0), 4)
        .0 as u32
}

#[test]
fn realize_presents_decoder_0_at_the_window_base() {
    for v in [UapiVersion::V2, UapiVersion::V3] {
        let host = FakeHost::new(v, true);
        let p = realize(&host);
        assert_eq!(p.layout().memory_size, MEM);
        assert_eq!(
            guest_decoder0(&p, DecoderRegister::BaseHi),
            (BASE >> 32) as u32
        );
        assert_eq!(
            guest_decoder0(&p, DecoderRegister::SizeHi),
            (MEM >> 32) as u32
        );
        assert!(p.memory_visible());
        assert!(p
            .status()
            .starts_with("mapped: 0x100000000 bytes at 0x1000000000"));
    }
}

#[test]
fn v2_host_gets_the_guest_base_v3_keeps_the_host_address() {
    let dec0_base_hi = HOST_DECODER0_BLOCK_OFFSET + DecoderRegister::BaseHi as u64;
    let v2 = FakeHost::new(UapiVersion::V2, true);
    let _v2 = realize(&v2);
    assert_eq!(v2.shadow_dword(dec0_base_hi), (BASE >> 32) as u32);
    let v3 = FakeHost::new(UapiVersion::V3, true);
    let _v3 = realize(&v3);
    assert_eq!(v3.shadow_dword(dec0_base_hi), (HPA >> 32) as u32);
}

#[test]
fn v2_guest_base_is_written_again_after_every_reset() {
    let dec0_base_hi = HOST_DECODER0_BLOCK_OFFSET + DecoderRegister::BaseHi as u64;
    let host = FakeHost::new(UapiVersion::V2, true);
    let mut p = realize(&host);
    for kind in [ResetKind::Flr, ResetKind::Cxl, ResetKind::SystemOrBus] {
        reset(&mut p, kind).unwrap();
        assert_eq!(
            host.shadow_dword(dec0_base_hi),
            (BASE >> 32) as u32,
            "{kind}"
        );
    }
    assert_eq!(host.resets.get(), 3);
}

#[test]
fn host_that_cannot_reset_is_refused() {
    let mut host = FakeHost::new(UapiVersion::V3, true);
    host.can_reset = false;
    let e = discover(&host).err().unwrap();
    assert!(matches!(e, PassthroughError::CannotReset));
    assert!(describe(&e).contains("cannot be reset"));
}

#[test]
fn flr_trigger_follows_the_functions_flr_capability() {
    let devctl = u32::try_from(EXP_CAP).unwrap() + 8;
    let capable = FakeHost::new(UapiVersion::V3, true);
    assert_eq!(realize(&capable).strip_flr(devctl, 0x8010, 2), Some(0x10));
    let incapable = FakeHost::new(UapiVersion::V3, false);
    assert_eq!(realize(&incapable).strip_flr(devctl, 0x8010, 2), None);
}

#[test]
fn failed_host_reset_hides_memory_until_a_reset_succeeds() {
    let host = FakeHost::new(UapiVersion::V3, true);
    let mut p = realize(&host);
    host.reset_fails.set(true);
    let e = reset(&mut p, ResetKind::Flr).unwrap_err();
    let text = describe(&e);
    assert!(text.starts_with("after FLR reset, device memory stays unmapped from the guest"));
    assert!(text.contains("the host reset failed"), "{text}");
    assert!(!p.memory_visible());
    assert!(p
        .status()
        .starts_with("unmapped: vfio-user-cxl 'acc': after FLR reset"));
    host.reset_fails.set(false);
    reset(&mut p, ResetKind::SystemOrBus).unwrap();
    assert!(p.memory_visible());
    assert!(p.status().starts_with("mapped:"));
}

#[test]
fn host_that_changes_across_a_reset_is_not_shown_again() {
    let host = FakeHost::new(UapiVersion::V3, true);
    let mut p = realize(&host);
    let mem = host.layout.mem_index();
    let mut regions = host.regions.borrow().clone();
    regions.iter_mut().find(|r| r.index == mem).unwrap().size = MEM / 2;
    *host.regions_after_reset.borrow_mut() = Some(regions);
    let e = reset(&mut p, ResetKind::SystemOrBus).unwrap_err();
    // Half the memory no longer matches decoder 0: re-discovery refuses it.
    assert!(
        describe(&e).contains("smaller than HDM decoder 0"),
        "{}",
        describe(&e)
    );
    assert!(!p.memory_visible());
}

#[test]
fn an_flr_reads_decoder_0_again_the_other_resets_the_whole_host() {
    // v2 takes single dwords: BASE, SIZE (two each) and Control.
    for (v, flr_reads) in [
        (UapiVersion::V2, 5),
        (UapiVersion::V3, 1),
        (UapiVersion::V4, 1),
    ] {
        let host = FakeHost::new(v, true);
        let mut p = realize(&host);
        let (comp, config) = (host.comp_regs_reads.get(), host.config_space_reads.get());
        reset(&mut p, ResetKind::Flr).unwrap();
        assert_eq!(host.comp_regs_reads.get() - comp, flr_reads, "{v:?}");
        assert_eq!(host.config_space_reads.get(), config, "{v:?}");
        assert!(p.memory_visible());
        for kind in [ResetKind::Cxl, ResetKind::SystemOrBus] {
            let whole_reads = host.config_space_reads.get();
            reset(&mut p, kind).unwrap();
            assert_eq!(
                host.config_space_reads.get(),
                whole_reads + 1,
                "{v:?} {kind}"
            );
        }
    }
}

#[test]
fn an_flr_that_leaves_decoder_0_other_than_it_was_hides_the_memory() {
    let reg = |r: DecoderRegister| HOST_DECODER0_BLOCK_OFFSET + r as u64;
    let half = u32::try_from(MEM / 2).unwrap();
    for (changes, expected) in [
        (
            vec![(reg(DecoderRegister::Control), 0)],
            "HDM decoder 0 is not committed by the host (control 0x00000000)",
        ),
        (
            vec![
                (reg(DecoderRegister::SizeLo), half),
                (reg(DecoderRegister::SizeHi), 0),
            ],
            "but HDM decoder 0 is only",
        ),
    ] {
        // v3 does not refresh its shadow on reset: what is set stays.
        let host = FakeHost::new(UapiVersion::V3, true);
        let mut p = realize(&host);
        let before: Vec<(u64, u32)> = changes
            .iter()
            .map(|&(at, _)| (at, host.shadow_dword(at)))
            .collect();
        for &(at, value) in &changes {
            host.regs.borrow_mut().set_block_dword(at, value);
        }
        let text = describe(&reset(&mut p, ResetKind::Flr).unwrap_err());
        assert!(
            text.starts_with("after FLR reset, device memory stays unmapped from the guest"),
            "{text}"
        );
        assert!(text.contains(expected), "{text}");
        assert!(!p.memory_visible());
        for (at, value) in before {
            host.regs.borrow_mut().set_block_dword(at, value);
        }
        reset(&mut p, ResetKind::Flr).unwrap();
        assert!(p.memory_visible(), "shown again once the decoder is back");
    }
}

#[test]
fn cxl_reset_reports_completion_or_error_in_status2() {
    let host = FakeHost::new(UapiVersion::V3, true);
    let mut p = realize(&host);
    let status2 = DVSEC + DeviceDvsecRegister::Status2 as u32;
    let mut no_parent = |_: u32, _: u32| -> u32 { panic!("Status2 is emulated") };
    reset(&mut p, ResetKind::Cxl).unwrap();
    assert_eq!(
        p.config_read(status2, 2, &mut no_parent) & 0b110,
        0b010,
        "complete"
    );
    host.reset_fails.set(true);
    reset(&mut p, ResetKind::Cxl).unwrap_err();
    assert_eq!(
        p.config_read(status2, 2, &mut no_parent) & 0b110,
        0b100,
        "error, not complete"
    );
}

#[test]
fn flr_keeps_the_guests_cxl_state_other_resets_return_to_boot() {
    let host = FakeHost::new(UapiVersion::V3, true);
    let mut p = realize(&host);
    let control2 = DVSEC + DeviceDvsecRegister::Control2 as u32;
    let mut parent_w = |_: u32, _: u32, _: u32| panic!("Control2 never reaches the host");
    let mut parent_r = |_: u32, _: u32| -> u32 { panic!("Control2 is emulated") };
    // Disable Caching (bit 0) is the guest's to set.
    p.config_write(control2, 1, 2, &mut parent_w);
    reset(&mut p, ResetKind::Flr).unwrap();
    assert_eq!(
        p.config_read(control2, 2, &mut parent_r) & 1,
        1,
        "FLR keeps it"
    );
    reset(&mut p, ResetKind::SystemOrBus).unwrap();
    assert_eq!(
        p.config_read(control2, 2, &mut parent_r) & 1,
        0,
        "boot state"
    );
}

#[test]
fn dvsec_writes_never_reach_the_host_and_headers_stay_vfio_pcis() {
    let host = FakeHost::new(UapiVersion::V3, true);
    let mut p = realize(&host);
    let mut forwarded = Vec::new();
    // A dword over DVSEC header 2 (0x08) and Capability (0x0A), and
    // Control2 with Initiate CXL Reset.
    p.config_write(DVSEC + 8, u32::MAX, 4, &mut |a, v, l| {
        forwarded.push((a, v, l))
    });
    let effect = p.config_write(DVSEC + 0x10, 1 << 2, 2, &mut |a, v, l| {
        forwarded.push((a, v, l));
    });
    assert_eq!(effect, DvsecWriteEffect::CxlResetRequested);
    assert!(forwarded.is_empty(), "{forwarded:?}");
    // The header word is read through vfio-pci, the rest emulated.
    let mut asked = Vec::new();
    let v = p.config_read(DVSEC + 8, 4, &mut |a, l| {
        asked.push((a, l));
        0xABCD
    });
    assert_eq!(asked, [(DVSEC + 8, 2)]);
    assert_eq!(v & 0xFFFF, 0xABCD);
    assert!(p.touches_dvsec(DVSEC + 0x3A, 2) && !p.touches_dvsec(DVSEC - 4, 4));
}

#[test]
fn component_reads_when_the_host_fails_read_all_ones_and_say_so() {
    let host = FakeHost::new(UapiVersion::V3, true);
    let p = realize(&host);
    host.reads_fail.set(true);
    // The capability array is the host's copy taken at realize.
    let (header, header_failure) = p.component_read(0x1000, 4);
    assert_eq!(header & 0xFFFF, 1);
    assert!(header_failure.is_none());
    // RAS is forwarded: its dword reads all ones, with the failure.
    let (ras, failure) = p.component_read(0x1000 + 0x20, 4);
    assert_eq!(ras, u64::from(u32::MAX));
    let failure = failure.unwrap();
    assert_eq!(failure.region_offset, 0x1020);
    assert_eq!(failure.error.raw_os_error(), Some(5));
    // The emulated decoder is unaffected.
    assert_eq!(
        guest_decoder0(&p, DecoderRegister::BaseHi),
        (BASE >> 32) as u32
    );
}

#[test]
fn v4_host_is_realized_with_forwarding_to_the_bar() {
    let host = FakeHost::new(UapiVersion::V4, true);
    let p = realize(&host);
    assert_eq!(p.layout().uapi, UapiVersion::V4);
    // The decoder the guest sees is at the window base, never the HPA.
    assert_eq!(
        guest_decoder0(&p, DecoderRegister::BaseHi),
        (BASE >> 32) as u32
    );
    // RAS (block offset 0x1020) is read through the BAR.
    assert_eq!(p.guest_component().forward_region(), 0);
    let (ras, failure) = p.component_read(0x1020, 4);
    assert!(failure.is_none());
    assert_eq!(ras, u64::from(host.shadow_dword(0x1020)));
}

#[test]
fn v4_host_memory_enable_stays_set_while_mapped() {
    let host = FakeHost::new(UapiVersion::V4, true);
    let mut p = realize(&host);
    assert_ne!(host.command() & 2, 0, "set at realize");
    // The guest clears it (vfio-pci forwards that), the core sets it again.
    host.config.borrow_mut()[4] = 0;
    assert!(Passthrough::<&FakeHost>::writes_memory_enable(4, 2));
    assert!(!Passthrough::<&FakeHost>::writes_memory_enable(6, 2));
    p.keep_host_memory_enabled().unwrap();
    assert_ne!(host.command() & 2, 0);
    host.config.borrow_mut()[4] = 0;
    reset(&mut p, ResetKind::Flr).unwrap();
    assert_ne!(host.command() & 2, 0, "set again after a reset");
    // Earlier postings do not gate: the guest's value stays.
    let v3 = FakeHost::new(UapiVersion::V3, true);
    let _v3 = realize(&v3);
    assert_eq!(v3.command() & 2, 0);
}

#[test]
fn a_host_that_goes_away_is_noticed_once_and_nothing_reaches_it() {
    let host = FakeHost::new(UapiVersion::V3, true);
    let mut p = realize(&host);
    assert_eq!(p.notice_host_gone(), None, "still there");
    host.connected.set(false);
    let why = p.notice_host_gone().unwrap();
    assert!(
        why.contains("the vfio-user server closed the connection"),
        "{why}"
    );
    assert_eq!(p.notice_host_gone(), None, "reported once");
    assert!(!p.memory_visible());
    assert!(p
        .status()
        .starts_with("unmapped: vfio-user-cxl 'acc': the host is gone"));
    // Forwarded registers read all ones with the reason, not an errno.
    let (ras, failure) = p.component_read(0x1020, 4);
    assert_eq!(ras, u64::from(u32::MAX));
    let error = failure.unwrap().error;
    assert_eq!(error.kind(), io::ErrorKind::NotConnected);
    assert!(error.to_string().contains("closed the connection"));
    // A later reset says the same.
    let e = reset(&mut p, ResetKind::Flr).unwrap_err();
    assert!(describe(&e).contains("the vfio-user server closed the connection"));
    assert!(!p.memory_visible());
}

#[test]
fn comp_regs_is_read_in_one_request_where_the_host_allows_it() {
    for (v, reads) in [
        (UapiVersion::V3, 1),
        (UapiVersion::V4, 1),
        (UapiVersion::V2, 12),
    ] {
        let host = FakeHost::new(v, true);
        let _p = realize(&host);
        // v2 takes single dwords only: the whole read is refused, then
        // every dword is asked for on its own.
        assert_eq!(host.comp_regs_reads.get(), reads, "{v:?}");
    }
}

#[test]
fn a_v3_flr_keeps_the_memory_mapped_the_other_resets_hide_it() {
    let v3 = FakeHost::new(UapiVersion::V3, true);
    let mut p = realize(&v3);
    p.begin_reset(ResetKind::Flr);
    assert!(
        p.memory_visible(),
        "FLR leaves CXL.mem alone, and v3 the memory"
    );
    p.finish_reset(ResetKind::Flr, Ok(())).unwrap();
    p.begin_reset(ResetKind::Cxl);
    assert!(!p.memory_visible());
    p.finish_reset(ResetKind::Cxl, Ok(())).unwrap();
    for v in [UapiVersion::V2, UapiVersion::V4] {
        let host = FakeHost::new(v, true);
        let mut q = realize(&host);
        q.begin_reset(ResetKind::Flr);
        assert!(
            !q.memory_visible(),
            "{v:?} deactivates or clears memory on reset"
        );
    }
}
