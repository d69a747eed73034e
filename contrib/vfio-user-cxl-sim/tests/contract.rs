// SPDX-License-Identifier: GPL-2.0-or-later

//! The kernel selftest contract (spec: "what a conforming host
//! provides"), checked over vfio-user for v2 and v3, plus the access
//! rules each version's shadow enforces.

mod common;

use std::os::fd::AsFd;

use common::{find_cxl_regions, read_config, sparse_areas, Sim};
use cxl_model::component::{CapabilityArray, CAP_ARRAY_OFFSET, COMPONENT_BLOCK_SIZE};
use cxl_model::dvsec::{
    find_dvsec, parse_register_locator, BLOCK_ID_COMPONENT, CXL_VENDOR_ID, DVSEC_ID_CXL_DEVICE,
    DVSEC_ID_REGISTER_LOCATOR,
};
use cxl_model::uapi::VFIO_DEVICE_FLAGS_CXL;
use vfio_bindings::bindings::vfio::{
    VFIO_DEVICE_FLAGS_PCI, VFIO_DEVICE_FLAGS_RESET, VFIO_REGION_INFO_FLAG_MMAP,
    VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};
use vfio_user_cxl_sim::client::{Client, Mapping};

const EINVAL: i32 = 22;
const EIO: i32 = 5;
const CTRL_LOCK: u32 = 1 << 8;
const CTRL_COMMIT: u32 = 1 << 9;
const CTRL_COMMITTED: u32 = 1 << 10;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum V {
    V2,
    V3,
}

/// Where things are, found the way the device must find them.
struct Found {
    comp: u32,
    mem: u32,
    /// Block offset of region offset 0 (v3: 0, v2: 0x1000).
    comp_base: u64,
    /// Config offset of the CXL Device DVSEC.
    dvsec: u64,
    /// Region offset of decoder 0's registers.
    dec0: u64,
}

impl Found {
    fn comp_read(&self, c: &mut Client, block_off: u64) -> u32 {
        c.read_u32(self.comp, block_off - self.comp_base).unwrap()
    }
}

fn discover(c: &mut Client, v: V) -> Found {
    let (comp, mem) = find_cxl_regions(c);
    let (comp, mem) = (comp.expect("COMP_REGS region"), mem.expect("memory region"));
    let comp_base = if v == V::V3 { 0 } else { CAP_ARRAY_OFFSET };
    let cfg = read_config(c);
    let dvsec = find_dvsec(&cfg, CXL_VENDOR_ID, DVSEC_ID_CXL_DEVICE)
        .unwrap()
        .expect("CXL Device DVSEC");
    // Read from the capability array to the end of the region, dword by
    // dword for v2 (which takes nothing else), at once for v3.
    let size = c.region_info(comp).unwrap().info.size;
    let start = CAP_ARRAY_OFFSET - comp_base;
    let array = if v == V::V3 {
        c.region_read(comp, start, (size - start) as u32).unwrap()
    } else {
        (start..size)
            .step_by(4)
            .flat_map(|o| c.read_u32(comp, o).unwrap().to_le_bytes())
            .collect()
    };
    let caps = CapabilityArray::parse(&array).unwrap();
    let hdm = caps.hdm_decoder().unwrap();
    let dec0 = CAP_ARRAY_OFFSET + u64::from(hdm.pointer) + 0x10 - comp_base;
    Found {
        comp,
        mem,
        comp_base,
        dvsec: u64::from(dvsec),
        dec0,
    }
}

fn start(v: V, extra: &[&str]) -> Sim {
    let mut args = vec!["--uapi", if v == V::V2 { "v2" } else { "v3" }];
    args.extend_from_slice(extra);
    Sim::start(&args)
}

fn selftest_contract(v: V) {
    let sim = start(v, &["--memory-size", "512M", "--hpa", "0x2000000000"]);
    let mut c = sim.client();
    let f = check_device_and_regions(&mut c, v);
    let block = check_locator_and_sizes(&mut c, v, &f);
    check_memory_mapping(&sim, &mut c, &f);
    check_bar_sparse_areas(&mut c, block);
    check_comp_regs_and_decoder(&sim, &mut c, v, &f);
}

fn check_device_and_regions(c: &mut Client, v: V) -> Found {
    // Device is CXL.
    let info = c.device_info().unwrap();
    assert_ne!(info.flags & VFIO_DEVICE_FLAGS_CXL, 0, "FLAGS_CXL");
    assert_ne!(info.flags & VFIO_DEVICE_FLAGS_PCI, 0);
    assert_ne!(info.flags & VFIO_DEVICE_FLAGS_RESET, 0);
    assert_eq!(info.num_regions, 11);
    assert_eq!(info.num_irqs, 5);

    // Two regions, found by subtype, distinct, >= 9, at the usual places.
    let f = discover(c, v);
    assert_ne!(f.comp, f.mem);
    assert!(f.comp >= 9 && f.mem >= 9);
    let expect = if v == V::V3 { (9, 10) } else { (10, 9) };
    assert_eq!((f.comp, f.mem), expect);
    f
}

/// Returns the component block's (offset, BAR index).
fn check_locator_and_sizes(c: &mut Client, v: V, f: &Found) -> (u64, u32) {
    // Component BAR index < 6 and the Register Locator agrees.
    let cfg = read_config(c);
    let loc = find_dvsec(&cfg, CXL_VENDOR_ID, DVSEC_ID_REGISTER_LOCATOR)
        .unwrap()
        .expect("Register Locator DVSEC");
    let blocks = parse_register_locator(&cfg[usize::from(loc)..]).unwrap();
    let comp_block = blocks
        .iter()
        .find(|b| b.block_id == BLOCK_ID_COMPONENT)
        .expect("component block entry");
    assert!(comp_block.bir < 6);
    assert_eq!(comp_block.bir, 0);
    assert_eq!(comp_block.offset, 0x10000);
    let bar = c.region_info(u32::from(comp_block.bir)).unwrap();
    assert!(bar.info.size >= comp_block.offset + COMPONENT_BLOCK_SIZE);

    // Component size equal to COMP_REGS size (v3); v2 serves the
    // capability array and the HDM block only.
    let comp = c.region_info(f.comp).unwrap();
    assert_eq!(
        comp.info.flags,
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | 8,
        "COMP_REGS: read, write, caps, never mmap"
    );
    assert!(comp.fd.is_none());
    if v == V::V3 {
        assert_eq!(comp.info.size, COMPONENT_BLOCK_SIZE);
    } else {
        assert!(comp.info.size > 0 && comp.info.size < COMPONENT_BLOCK_SIZE);
    }
    (comp_block.offset, u32::from(comp_block.bir))
}

fn check_memory_mapping(sim: &Sim, c: &mut Client, f: &Found) {
    // The memory region can be mmapped and a written dword reads back.
    let mem = c.region_info(f.mem).unwrap();
    assert_eq!(mem.info.size, 512 << 20);
    assert_ne!(mem.info.flags & VFIO_REGION_INFO_FLAG_MMAP, 0);
    let fd = mem.fd.expect("memory region fd");
    let map = Mapping::new(fd.as_fd(), mem.info.offset + 0x10_0000, 0x20_0000).unwrap();
    map.write_u32(0x40, 0xc0ff_ee01);
    assert_eq!(c.read_u32(f.mem, 0x10_0040).unwrap(), 0xc0ff_ee01);
    c.write_u32(f.mem, 0x10_0080, 0x1234_abcd).unwrap();
    assert_eq!(map.read_u32(0x80), 0x1234_abcd);
    // Any size and alignment inside the region.
    c.region_write(f.mem, 0x10_0043, &[9, 8, 7]).unwrap();
    assert_eq!(
        c.region_read(f.mem, 0x10_0041, 5).unwrap(),
        [0xee, 0xff, 9, 8, 7]
    );
    assert_eq!(
        sim.control("mem-read 0x100040 4")["hex"],
        "01eeff09",
        "device memory as the control socket sees it"
    );
}

fn check_bar_sparse_areas(c: &mut Client, (block, bir): (u64, u32)) {
    let bar = c.region_info(bir).unwrap();
    // No sparse-mmap area of the component BAR overlaps the block.
    assert_ne!(bar.info.flags & VFIO_REGION_INFO_FLAG_MMAP, 0);
    let areas = sparse_areas(&bar).expect("sparse mmap cap on the BAR");
    assert!(!areas.is_empty() && areas.len() <= 2);
    let (bs, be) = (block, block + COMPONENT_BLOCK_SIZE);
    for &(o, s) in &areas {
        assert!(
            o + s <= bs || o >= be,
            "area {o:#x}+{s:#x} overlaps the block"
        );
        assert_eq!(o % 4096, 0);
        assert_eq!(s % 4096, 0);
    }
}

fn check_comp_regs_and_decoder(sim: &Sim, c: &mut Client, v: V, f: &Found) {
    // COMP_REGS at the capability array: ID 1, non-zero array size.
    let hdr = f.comp_read(c, CAP_ARRAY_OFFSET);
    assert_eq!(hdr & 0xffff, 1);
    assert_ne!(hdr >> 24, 0);
    let at = if v == V::V3 { 0x1000 } else { 0x0 };
    assert_eq!(c.read_u32(f.comp, at).unwrap(), hdr);

    // A one-byte config read at DVSEC + 0x14 succeeds.
    assert_eq!(c.region_read(7, f.dvsec + 0x14, 1).unwrap().len(), 1);

    // Decoder 0: v3 starts with COMMIT and COMMITTED and the HPA; v2 with
    // BASE zeroed and LOCK cleared (the VMM writes the guest address).
    let ctrl = c.read_u32(f.comp, f.dec0 + 0x10).unwrap();
    assert_ne!(ctrl & CTRL_COMMIT, 0);
    assert_ne!(ctrl & CTRL_COMMITTED, 0);
    let base_lo = c.read_u32(f.comp, f.dec0).unwrap();
    let base_hi = c.read_u32(f.comp, f.dec0 + 4).unwrap();
    let size_lo = c.read_u32(f.comp, f.dec0 + 8).unwrap();
    let size_hi = c.read_u32(f.comp, f.dec0 + 12).unwrap();
    assert_eq!(
        u64::from(size_lo) | (u64::from(size_hi) << 32),
        512 << 20,
        "decoder size = memory size"
    );
    if v == V::V3 {
        assert_ne!(ctrl & CTRL_LOCK, 0);
        assert_eq!(
            u64::from(base_lo) | (u64::from(base_hi) << 32),
            0x20_0000_0000
        );
    } else {
        assert_eq!(ctrl & CTRL_LOCK, 0);
        assert_eq!((base_lo, base_hi), (0, 0), "v2 BASE reads 0 at open");
    }

    // The control socket shows the same shadow and config bytes.
    let v0 = sim.control(&format!("comp-regs-read {}", f.dec0 + 0x10));
    assert_eq!(v0["value"], ctrl);
    let hexcfg = sim.control(&format!("config-read {} 4", f.dvsec));
    let d = c.region_read(7, f.dvsec, 4).unwrap();
    assert_eq!(
        hexcfg["hex"],
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
}

#[test]
fn selftest_contract_v3() {
    selftest_contract(V::V3);
}

#[test]
fn selftest_contract_v2() {
    selftest_contract(V::V2);
}

#[test]
fn comp_regs_access_rules_v3() {
    // v3: multiples of 4 bytes, 4-aligned.
    let sim = start(V::V3, &[]);
    let mut c = sim.client();
    let f = discover(&mut c, V::V3);
    assert_eq!(c.region_read(f.comp, 0x1000, 8).unwrap().len(), 8);
    assert_eq!(c.region_read(f.comp, 0x1000, 64).unwrap().len(), 64);
    for (off, n) in [(0x1000, 2), (0x1002, 4), (0x1000, 1), (0x1000, 6)] {
        let err = c.region_read(f.comp, off, n).unwrap_err();
        assert_eq!(err.errno(), Some(EINVAL), "v3 read {n}@{off:#x}");
    }
    assert_eq!(
        c.region_read(f.comp, 0xfffc, 8).unwrap_err().errno(),
        Some(EINVAL)
    );
    // Below 0x1000 reads 0, writes dropped; the array is read-only.
    c.write_u32(f.comp, 0x10, 0xffff_ffff).unwrap();
    assert_eq!(c.read_u32(f.comp, 0x10).unwrap(), 0);
    let hdr = c.read_u32(f.comp, 0x1000).unwrap();
    c.write_u32(f.comp, 0x1000, 0).unwrap();
    assert_eq!(c.read_u32(f.comp, 0x1000).unwrap(), hdr);
    // BASE writes are dropped on a committed decoder; 8-byte writes work.
    c.region_write(f.comp, f.dec0, &[0u8; 8]).unwrap();
    assert_ne!(c.read_u32(f.comp, f.dec0 + 4).unwrap(), 0);
    assert_eq!(sim.stat("comp_regs_writes"), 3);
}

#[test]
fn comp_regs_access_rules_v2() {
    // v2: exactly 4 bytes.
    let sim = start(V::V2, &[]);
    let mut c = sim.client();
    let f = discover(&mut c, V::V2);
    for n in [1, 2, 8] {
        let rerr = c.region_read(f.comp, 0, n).unwrap_err();
        assert_eq!(rerr.errno(), Some(EINVAL), "v2 read of {n} bytes");
        let werr = c.region_write(f.comp, 0, &vec![0; n as usize]).unwrap_err();
        assert_eq!(werr.errno(), Some(EINVAL), "v2 write of {n} bytes");
    }
    assert_eq!(
        c.region_read(f.comp, 2, 4).unwrap_err().errno(),
        Some(EINVAL)
    );
    // The VMM writes the guest address into BASE; COMMITTED mirrors COMMIT.
    c.write_u32(f.comp, f.dec0, 0x3000_0000).unwrap();
    c.write_u32(f.comp, f.dec0 + 4, 0x1).unwrap();
    assert_eq!(c.read_u32(f.comp, f.dec0).unwrap(), 0x3000_0000);
    assert_eq!(c.read_u32(f.comp, f.dec0 + 4).unwrap(), 1);
    let ctrl = c.read_u32(f.comp, f.dec0 + 0x10).unwrap();
    c.write_u32(f.comp, f.dec0 + 0x10, ctrl & !CTRL_COMMIT)
        .unwrap();
    assert_eq!(
        c.read_u32(f.comp, f.dec0 + 0x10).unwrap() & (CTRL_COMMIT | CTRL_COMMITTED),
        0
    );
}

#[test]
fn component_block_in_bar_is_trapped() {
    let sim = start(V::V3, &[]);
    let mut c = sim.client();
    for (off, n) in [
        (0x10000, 4),
        (0x1fffc, 4),
        (0xfffc, 8),
        (0x1fffc, 8),
        (0x0, 0x40000),
    ] {
        let rerr = c.region_read(0, off, n).unwrap_err();
        assert_eq!(rerr.errno(), Some(EINVAL), "read {n}@{off:#x}");
        let werr = c.region_write(0, off, &vec![0; n as usize]).unwrap_err();
        assert_eq!(werr.errno(), Some(EINVAL), "write {n}@{off:#x}");
    }
    // Outside the block the BAR is memory, also through the mmap.
    assert_eq!(c.region_read(0, 0, 4).unwrap(), b"CXL2");
    c.write_u32(0, 0x20010, 0x5555_aaaa).unwrap();
    let bar = c.region_info(0).unwrap();
    let fd = bar.fd.expect("BAR fd");
    let m = Mapping::new(fd.as_fd(), 0x20000, 0x20000).unwrap();
    assert_eq!(m.read_u32(0x10), 0x5555_aaaa);
    m.write_u32(0x1fffc, 7);
    assert_eq!(c.read_u32(0, 0x3fffc).unwrap(), 7);
    c.region_read(0, 0x3fffc, 8).expect_err("past the BAR");
}

#[test]
fn dvsec_shadow_rules() {
    let sim = start(V::V3, &[]);
    let mut c = sim.client();
    let f = discover(&mut c, V::V3);
    let rd16 = |cl: &mut Client, o: u64| {
        let b = cl.region_read(7, f.dvsec + o, 2).unwrap();
        u16::from_le_bytes([b[0], b[1]])
    };
    // Capability fixed.
    let cap = rd16(&mut c, 0x0a);
    c.region_write(7, f.dvsec + 0x0a, &[0, 0]).unwrap();
    assert_eq!(rd16(&mut c, 0x0a), cap);
    assert_ne!(cap & (1 << 2), 0, "Mem_Capable");
    assert_eq!((cap >> 4) & 3, 1, "HDM_Count 1");
    // Range 1 size is the memory size, valid and active.
    let lo = c.read_u32(7, f.dvsec + 0x1c).unwrap();
    assert_eq!(lo & 3, 3, "Memory_Info_Valid and Memory_Active");
    assert_eq!(u64::from(lo >> 28) << 28, 256 << 20);
    // Control writable until CONFIG_LOCK, which is write-once.
    let ctl = rd16(&mut c, 0x0c);
    let toggled = ctl ^ 0x1; // Cache_Enable
    c.region_write(7, f.dvsec + 0x0c, &toggled.to_le_bytes())
        .unwrap();
    assert_eq!(rd16(&mut c, 0x0c), toggled);
    assert_eq!(rd16(&mut c, 0x14) & 1, 0);
    c.region_write(7, f.dvsec + 0x14, &[1, 0]).unwrap();
    assert_eq!(rd16(&mut c, 0x14) & 1, 1);
    c.region_write(7, f.dvsec + 0x14, &[0, 0]).unwrap();
    assert_eq!(rd16(&mut c, 0x14) & 1, 1, "lock is write-once");
    c.region_write(7, f.dvsec + 0x0c, &ctl.to_le_bytes())
        .unwrap();
    assert_eq!(rd16(&mut c, 0x0c), toggled, "Control dropped once locked");
    assert_eq!(sim.stat("config_writes"), 5);
}

#[test]
fn reset_v3_leaves_shadows() {
    let sim = start(V::V3, &[]);
    let mut c = sim.client();
    let f = discover(&mut c, V::V3);
    c.region_write(7, f.dvsec + 0x14, &[1, 0]).unwrap();
    let before = c.read_u32(f.comp, f.dec0 + 0x10).unwrap();
    c.write_u32(0, 0x20000, 0xabcd).unwrap();
    c.write_u32(f.mem, 0x100, 0x600d).unwrap();
    assert_eq!(sim.stat("resets"), 0);
    c.reset().unwrap();
    c.reset().unwrap();
    assert_eq!(sim.stat("resets"), 2);
    assert_eq!(c.read_u32(f.comp, f.dec0 + 0x10).unwrap(), before);
    assert_eq!(
        c.region_read(7, f.dvsec + 0x14, 1).unwrap(),
        [1],
        "DVSEC shadow stale"
    );
    assert_eq!(
        c.read_u32(0, 0x20000).unwrap(),
        0,
        "accelerator registers reset"
    );
    assert_eq!(c.read_u32(0, 0).unwrap(), u32::from_le_bytes(*b"CXL2"));
    assert_eq!(
        c.read_u32(f.mem, 0x100).unwrap(),
        0x600d,
        "memory untouched"
    );
}

#[test]
fn reset_v2_rereads_decoders() {
    let sim = start(V::V2, &[]);
    let mut c = sim.client();
    let f = discover(&mut c, V::V2);
    c.write_u32(f.comp, f.dec0, 0x5000_0000).unwrap();
    c.write_u32(f.mem, 0x40, 0x1111).unwrap();
    c.reset().unwrap();
    assert_eq!(sim.stat("resets"), 1);
    assert_eq!(c.read_u32(f.comp, f.dec0).unwrap(), 0, "BASE zeroed again");
    let ctrl = c.read_u32(f.comp, f.dec0 + 0x10).unwrap();
    assert_ne!(ctrl & CTRL_COMMITTED, 0);
    // Decoder 0 committed after the reset: the region is active again.
    assert_eq!(c.read_u32(f.mem, 0x40).unwrap(), 0x1111);
}

/// The config word at `offset`.
fn cfg16(c: &mut Client, offset: u64) -> u16 {
    let b = c.region_read(7, offset, 2).unwrap();
    u16::from_le_bytes([b[0], b[1]])
}

/// Config offset of the PCI Express capability, from the list at 0x34.
fn pcie_cap(c: &mut Client) -> u64 {
    let cfg = read_config(c);
    let mut at = usize::from(cfg[0x34]);
    while at != 0 {
        if cfg[at] == 0x10 {
            return at as u64;
        }
        at = usize::from(cfg[at + 1]);
    }
    panic!("no PCI Express capability");
}

/// A config write setting Device Control "Initiate FLR" resets the
/// function once, like `VFIO_DEVICE_RESET`, and the bit reads 0.
fn flr_in_device_control(v: V) {
    let sim = start(v, &[]);
    let mut c = sim.client();
    let f = discover(&mut c, v);
    let devctl = pcie_cap(&mut c) + 0x08;
    let before = cfg16(&mut c, devctl);
    assert_eq!(before & 0x8000, 0);
    // Other Device Control bits do not reset.
    c.region_write(7, devctl, &before.to_le_bytes()).unwrap();
    assert_eq!(sim.stat("resets"), 0);

    c.write_u32(0, 0x20000, 0xabcd).unwrap();
    c.write_u32(f.mem, 0x100, 0x600d).unwrap();
    if v == V::V2 {
        c.write_u32(f.comp, f.dec0, 0x5000_0000).unwrap();
    }
    let writes = sim.stat("config_writes");
    c.region_write(7, devctl, &(before | 0x8000).to_le_bytes())
        .unwrap();
    assert_eq!(sim.stat("resets"), 1, "one reset per FLR");
    assert_eq!(sim.stat("reset_failures"), 0);
    assert_eq!(sim.stat("config_writes"), writes + 1);
    assert_eq!(cfg16(&mut c, devctl), before, "FLR bit not latched");
    assert_eq!(c.read_u32(0, 0x20000).unwrap(), 0, "accelerator reset");
    assert_eq!(c.read_u32(f.mem, 0x100).unwrap(), 0x600d, "memory kept");
    let ctrl = c.read_u32(f.comp, f.dec0 + 0x10).unwrap();
    assert_ne!(ctrl & CTRL_COMMITTED, 0);
    if v == V::V2 {
        assert_eq!(c.read_u32(f.comp, f.dec0).unwrap(), 0, "BASE zeroed");
    }
    // The same reset as VFIO_DEVICE_RESET, counted in the same place.
    c.reset().unwrap();
    assert_eq!(sim.stat("resets"), 2);
}

#[test]
fn flr_in_device_control_v3() {
    flr_in_device_control(V::V3);
}

#[test]
fn flr_in_device_control_v2() {
    flr_in_device_control(V::V2);
}

/// With `--fault reset-fails` the FLR fails like `VFIO_DEVICE_RESET`:
/// counted as a failure, but the config write itself succeeds.
#[test]
fn flr_in_device_control_failure() {
    let sim = start(V::V3, &["--fault", "reset-fails"]);
    let mut c = sim.client();
    let devctl = pcie_cap(&mut c) + 0x08;
    let before = cfg16(&mut c, devctl);
    c.write_u32(0, 0x20000, 0xabcd).unwrap();
    c.region_write(7, devctl, &(before | 0x8000).to_le_bytes())
        .unwrap();
    assert_eq!(sim.stat("resets"), 0);
    assert_eq!(sim.stat("reset_failures"), 1);
    assert_eq!(cfg16(&mut c, devctl), before);
    assert_eq!(c.read_u32(0, 0x20000).unwrap(), 0xabcd, "not reset");
    c.device_info().unwrap();
}

#[test]
fn reset_v2_uncommitted_leaves_memory_inactive() {
    let sim = start(V::V2, &["--decoder", "uncommitted"]);
    let mut c = sim.client();
    let f = discover(&mut c, V::V2);
    assert_eq!(
        c.read_u32(f.comp, f.dec0 + 0x10).unwrap() & CTRL_COMMITTED,
        0
    );
    c.write_u32(f.mem, 0, 1).unwrap();
    c.reset().unwrap();
    // The kernel reactivates the region only if decoder 0 reads COMMITTED.
    assert_eq!(c.read_u32(f.mem, 0).unwrap_err().errno(), Some(EIO));
    assert_eq!(c.write_u32(f.mem, 0, 2).unwrap_err().errno(), Some(EIO));
    // The contents are still there (control socket sees device memory).
    assert_eq!(sim.control("mem-read 0 4")["hex"], "01000000");
    // A new connection (device re-opened) activates it again.
    drop(c);
    let mut reopened = sim.client();
    assert_eq!(reopened.read_u32(f.mem, 0).unwrap(), 1);
}

#[test]
fn uncommitted_v3_decoder() {
    let sim = start(V::V3, &["--decoder", "uncommitted"]);
    let mut c = sim.client();
    let f = discover(&mut c, V::V3);
    let ctrl = c.read_u32(f.comp, f.dec0 + 0x10).unwrap();
    assert_eq!(ctrl & (CTRL_COMMIT | CTRL_COMMITTED), 0);
    // COMMIT=1 on an uncommitted decoder sets COMMITTED at once.
    c.write_u32(f.comp, f.dec0 + 0x10, CTRL_COMMIT).unwrap();
    assert_ne!(
        c.read_u32(f.comp, f.dec0 + 0x10).unwrap() & CTRL_COMMITTED,
        0
    );
}

// ---- v4 ----
//
// Constants written from the interface documents (the v4-era kernel trees
// and the project's uAPI summary), not taken from the register model, so
// that a wrong model constant cannot make these tests agree with it.

mod v4 {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    use vfio_user_cxl_sim::protocol::{cmd, RegionAccess};

    /// PCI vendor type | CXL vendor ID (newest v4 tree).
    const TYPE_VENDOR: u32 = 0x8000_1E98;
    /// `VFIO_REGION_TYPE_CXL` of the earlier v4 tree.
    const TYPE_EARLY: u32 = 4;
    const SUBTYPE_MEM: u32 = 1;
    const SUBTYPE_COMP_REGS: u32 = 2;
    /// `VFIO_REGION_INFO_CAP_TYPE`.
    const CAP_TYPE: u16 = 2;
    /// `VFIO_REGION_INFO_CAP_SPARSE_MMAP`.
    const CAP_SPARSE: u16 = 1;
    /// `VFIO_REGION_INFO_CAP_CXL_COMP_REGS`: not public; the project's
    /// choice, the next free region-cap ID.
    const CAP_COMP_REGS: u16 = 6;
    /// HDM block: capability, global control, then decoder 0 at 0x10.
    const HDM_SIZE_ONE_DECODER: u64 = 0x10 + 0x20;
    const DEC0_BASE_LO: u64 = 0x10;
    const DEC0_SIZE_LO: u64 = 0x18;
    const DEC0_CTRL: u64 = 0x20;
    const HPA: u64 = 0x20_0000_0000;
    const MEM: u64 = 512 << 20;
    /// Config space.
    const PCI_COMMAND: u64 = 0x04;
    const MSE: u16 = 1 << 1;
    const PCIE_CAP: u64 = 0x40;
    const DEVCTL_FLR: u16 = 1 << 15;
    /// CXL Device DVSEC register offsets and bits.
    const DVSEC_CAP: u64 = 0x0A;
    const DVSEC_CTRL: u64 = 0x0C;
    const DVSEC_STATUS: u64 = 0x0E;
    const DVSEC_CTRL2: u64 = 0x10;
    const DVSEC_STATUS2: u64 = 0x12;
    const DVSEC_LOCK: u64 = 0x14;
    const CTRL2_WBI: u16 = 1 << 1;
    const CTRL2_CXL_RESET: u16 = 1 << 2;
    const STATUS2_CACHE_INV: u16 = 1 << 0;
    const STATUS2_RST_DONE: u16 = 1 << 1;
    const STATUS2_RST_ERR: u16 = 1 << 2;

    fn start(extra: &[&str]) -> Sim {
        let mut args = vec![
            "--uapi",
            "v4",
            "--memory-size",
            "512M",
            "--hpa",
            "0x2000000000",
        ];
        args.extend_from_slice(extra);
        Sim::start(&args)
    }

    /// The bytes of a region-info reply from the capability `id` on.
    fn cap(raw: &[u8], id: u16) -> Option<&[u8]> {
        let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let mut at = u32_at(raw, 12) as usize;
        for _ in 0..16 {
            if at == 0 || at + 8 > raw.len() {
                return None;
            }
            if u16::from_le_bytes([raw[at], raw[at + 1]]) == id {
                return Some(&raw[at..]);
            }
            at = u32_at(raw, at + 4) as usize;
        }
        None
    }

    /// (type, subtype) of region `i`.
    fn type_of(c: &mut Client, i: u32) -> Option<(u32, u32)> {
        let r = c.region_info(i).unwrap();
        let t = cap(&r.raw, CAP_TYPE)?;
        Some((
            u32::from_le_bytes(t[8..12].try_into().unwrap()),
            u32::from_le_bytes(t[12..16].try_into().unwrap()),
        ))
    }

    fn cfg16(c: &mut Client, off: u64) -> u16 {
        let b = c.region_read(7, off, 2).unwrap();
        u16::from_le_bytes([b[0], b[1]])
    }

    fn set_cfg16(c: &mut Client, off: u64, v: u16) {
        c.region_write(7, off, &v.to_le_bytes()).unwrap();
    }

    fn set_mse(c: &mut Client, on: bool) {
        let cmd16 = cfg16(c, PCI_COMMAND);
        let v = if on { cmd16 | MSE } else { cmd16 & !MSE };
        set_cfg16(c, PCI_COMMAND, v);
    }

    fn dvsec(c: &mut Client) -> u64 {
        let cfg = read_config(c);
        u64::from(
            find_dvsec(&cfg, 0x1E98, 0)
                .unwrap()
                .expect("CXL Device DVSEC"),
        )
    }

    fn dec0(c: &mut Client) -> (u64, u64, u32) {
        let mut r = |o: u64| u64::from(c.read_u32(10, o).unwrap());
        let base = r(DEC0_BASE_LO) | r(DEC0_BASE_LO + 4) << 32;
        let size = r(DEC0_SIZE_LO) | r(DEC0_SIZE_LO + 4) << 32;
        (base, size, c.read_u32(10, DEC0_CTRL).unwrap())
    }

    /// Runs `touch` in a child process and returns how it ended.
    fn in_child(touch: impl FnOnce()) -> WaitStatus {
        // SAFETY: the child only touches an existing mapping and exits
        // with `_exit`; it takes no lock and returns into no test code.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                touch();
                // SAFETY: leaves the child at once, running no destructor.
                unsafe { nix::libc::_exit(0) }
            }
            ForkResult::Parent { child } => waitpid(child, None).unwrap(),
        }
    }

    #[test]
    fn regions_and_comp_regs_geometry() {
        let sim = start(&[]);
        let mut c = sim.client();
        assert_ne!(c.device_info().unwrap().flags & (1 << 9), 0, "FLAGS_CXL");
        assert_eq!(type_of(&mut c, 9), Some((TYPE_VENDOR, SUBTYPE_MEM)));
        assert_eq!(type_of(&mut c, 10), Some((TYPE_VENDOR, SUBTYPE_COMP_REGS)));
        let comp = c.region_info(10).unwrap();
        assert_eq!(comp.info.size, HDM_SIZE_ONE_DECODER);
        assert_eq!(comp.info.flags, 0b1011, "READ WRITE CAPS, no MMAP");
        // The geometry cap: version 1, BAR, BAR offset of the HDM block.
        let geo = cap(&comp.raw, CAP_COMP_REGS).expect("COMP_REGS cap");
        assert_eq!(u16::from_le_bytes([geo[2], geo[3]]), 1);
        let bar = u32::from_le_bytes(geo[8..12].try_into().unwrap());
        let hdm = u64::from_le_bytes(geo[16..24].try_into().unwrap());
        // The same block found from the Register Locator and the
        // capability array read through the BAR.
        let cfg = read_config(&mut c);
        let loc = find_dvsec(&cfg, 0x1E98, 8).unwrap().unwrap();
        let blocks = parse_register_locator(&cfg[usize::from(loc)..]).unwrap();
        let blk = blocks.iter().find(|b| b.block_id == 1).unwrap();
        assert_eq!(bar, u32::from(blk.bir));
        let array_at = blk.offset + 0x1000;
        let hdr = c.read_u32(bar, array_at).unwrap();
        assert_eq!(hdr & 0xFFFF, 1, "capability array header through the BAR");
        let n = hdr >> 24;
        let hdm_ptr = (1..=u64::from(n))
            .map(|i| c.read_u32(bar, array_at + 4 * i).unwrap())
            .find(|e| e & 0xFFFF == 5)
            .map(|e| u64::from(e >> 20))
            .expect("HDM entry");
        assert_eq!(hdm, array_at + hdm_ptr);
        // Decoder 0 reads live: committed, locked, at the host address.
        let (base, size, ctrl) = dec0(&mut c);
        assert_eq!((base, size), (HPA, MEM));
        assert_eq!(ctrl & 0x700, 0x700, "LOCK COMMIT COMMITTED");
        // Memory region: read, write, mmap.
        let mem = c.region_info(9).unwrap();
        assert_eq!((mem.info.size, mem.info.flags & 0b111), (MEM, 0b111));
    }

    #[test]
    fn early_variant_region_type() {
        let sim = start(&["--v4-region-type", "early"]);
        let mut c = sim.client();
        assert_eq!(type_of(&mut c, 9), Some((TYPE_EARLY, SUBTYPE_MEM)));
        assert_eq!(type_of(&mut c, 10), Some((TYPE_EARLY, SUBTYPE_COMP_REGS)));
        let vendor = start(&["--v4-region-type", "vendor"]);
        assert_eq!(
            type_of(&mut vendor.client(), 9),
            Some((TYPE_VENDOR, SUBTYPE_MEM))
        );
    }

    #[test]
    fn comp_regs_access_rules_and_absorbed_writes() {
        let sim = start(&[]);
        let mut c = sim.client();
        for (off, n) in [(1, 4), (0, 2), (0, 6), (2, 4)] {
            let e = c.region_read(10, off, n).unwrap_err();
            assert_eq!(e.errno(), Some(EINVAL), "read {n}@{off:#x}");
        }
        for off in [HDM_SIZE_ONE_DECODER, 0x1000] {
            let e = c.region_read(10, off, 4).unwrap_err();
            assert_eq!(e.errno(), Some(EINVAL), "out of range {off:#x}");
        }
        assert_eq!(c.region_read(10, 0, 0x30).unwrap().len(), 0x30);
        // An access running past the end stops there, as the kernel does.
        let req = RegionAccess {
            offset: 0x2C,
            region: 10,
            count: 8,
        };
        let r = c.request(cmd::REGION_READ, &req.encode(), &[]).unwrap();
        let got = RegionAccess::parse(&r.payload).unwrap();
        assert_eq!(got.count, 4);
        assert_eq!(r.payload.len(), RegionAccess::SIZE as usize + 4);
        // Writes are absorbed: nothing changes, yet each is seen.
        let before = c.region_read(10, 0, 0x30).unwrap();
        c.write_u32(10, DEC0_CTRL, 0).unwrap();
        c.write_u32(10, DEC0_BASE_LO, 0x3000_0000).unwrap();
        c.region_write(10, 0, &[0u8; 0x30]).unwrap();
        assert_eq!(c.region_read(10, 0, 0x30).unwrap(), before);
        assert_eq!(sim.stat("comp_regs_writes"), 3);
    }

    #[test]
    fn bar_traps_only_the_hdm_block() {
        let sim = start(&[]);
        let mut c = sim.client();
        let geo_raw = c.region_info(10).unwrap().raw;
        let geo = cap(&geo_raw, CAP_COMP_REGS).unwrap();
        let hdm = u64::from_le_bytes(geo[16..24].try_into().unwrap());
        let bar = c.region_info(0).unwrap();
        // The sparse-mmap hole is the page holding the HDM block.
        let sparse = cap(&bar.raw, CAP_SPARSE).expect("sparse mmap cap");
        let n = u32::from_le_bytes(sparse[8..12].try_into().unwrap()) as usize;
        let areas: Vec<(u64, u64)> = (0..n)
            .map(|i| {
                let a = &sparse[16 + 16 * i..];
                (
                    u64::from_le_bytes(a[0..8].try_into().unwrap()),
                    u64::from_le_bytes(a[8..16].try_into().unwrap()),
                )
            })
            .collect();
        let page = hdm & !0xFFF;
        assert_eq!(
            areas,
            vec![(0, page), (page + 0x1000, bar.info.size - page - 0x1000)]
        );
        // Raw reads of the HDM block return all ones; writes are dropped.
        assert_eq!(c.read_u32(0, hdm + DEC0_CTRL).unwrap(), 0xFFFF_FFFF);
        c.write_u32(0, hdm + DEC0_CTRL, 0).unwrap();
        assert_eq!(c.read_u32(0, hdm + DEC0_CTRL).unwrap(), 0xFFFF_FFFF);
        // An access straddling the block: only the block's bytes are ones.
        let b = c.region_read(0, hdm - 4, 8).unwrap();
        assert_eq!(&b[4..], &[0xFF; 4]);
        assert_ne!(&b[..4], &[0xFF; 4]);
        assert_eq!(sim.stat("hdm_bar_accesses"), 4);
        // The rest of the component block is plain BAR: written, read back.
        c.write_u32(0, page + 0x800, 0x1234_5678).unwrap();
        assert_eq!(c.read_u32(0, page + 0x800).unwrap(), 0x1234_5678);
        // The COMP_REGS region still shows the committed decoder.
        assert_eq!(c.read_u32(10, DEC0_CTRL).unwrap() & 0x700, 0x700);
    }

    fn sigbus(status: WaitStatus) -> bool {
        matches!(status, WaitStatus::Signaled(_, Signal::SIGBUS, _))
    }

    #[test]
    fn memory_follows_memory_space_enable() {
        let sim = start(&[]);
        let mut c = sim.client();
        let mem = c.region_info(9).unwrap();
        let fd = mem.fd.expect("memory fd");
        let map = Mapping::new(fd.as_fd(), 0, 0x1000).unwrap();
        // At open Memory Space Enable is clear: gated, and loudly so.
        assert_eq!(c.read_u32(9, 0).unwrap_err().errno(), Some(EIO));
        assert_eq!(c.write_u32(9, 0, 1).unwrap_err().errno(), Some(EIO));
        assert_eq!(sim.stat("gated_accesses"), 2);
        assert!(sigbus(in_child(|| {
            let _ = map.read_u32(0);
        })));
        assert_eq!(sim.control("state")["memory_accessible"], false);
        // The device keeps its memory while gated.
        let changes = sim.stat("memory_gate_changes");
        sim.control("mem-write 0x40 efbeadde");
        set_mse(&mut c, true);
        assert_eq!(sim.control("state")["memory_accessible"], true);
        assert_eq!(c.read_u32(9, 0x40).unwrap(), 0xdead_beef);
        assert_eq!(map.read_u32(0x40), 0xdead_beef);
        map.write_u32(0x80, 0x600d_f00d);
        assert!(!sigbus(in_child(|| {
            let _ = map.read_u32(0);
        })));
        // Clearing it again gates again, contents kept.
        set_mse(&mut c, false);
        assert_eq!(c.read_u32(9, 0x80).unwrap_err().errno(), Some(EIO));
        assert!(sigbus(in_child(|| map.write_u32(0, 7))));
        assert_eq!(sim.control("mem-read 0x80 4")["hex"], "0df00d60");
        set_mse(&mut c, true);
        assert_eq!(map.read_u32(0x80), 0x600d_f00d);
        assert_eq!(sim.stat("memory_gate_changes"), changes + 3);
    }

    /// Every reset clears the memory and leaves the decoder committed at
    /// the host address; `trigger` starts one.
    fn reset_clears(trigger: impl Fn(&mut Client)) {
        let sim = start(&[]);
        let mut c = sim.client();
        set_mse(&mut c, true);
        c.write_u32(9, 0x1000, 0xabcd_0123).unwrap();
        let clears = sim.stat("memory_clears");
        trigger(&mut c);
        assert_eq!(sim.stat("memory_clears"), clears + 1);
        assert_eq!(c.read_u32(9, 0x1000).unwrap(), 0, "memory cleared");
        let (base, size, ctrl) = dec0(&mut c);
        assert_eq!((base, size, ctrl & 0x700), (HPA, MEM, 0x700));
        // Memory Space Enable survives (the kernel restores config).
        assert_ne!(cfg16(&mut c, PCI_COMMAND) & MSE, 0);
    }

    #[test]
    fn device_reset_clears_memory() {
        reset_clears(|c| c.reset().unwrap());
    }

    #[test]
    fn flr_clears_memory() {
        reset_clears(|c| {
            let devctl = PCIE_CAP + 8;
            let v = cfg16(c, devctl);
            set_cfg16(c, devctl, v | DEVCTL_FLR);
        });
    }

    #[test]
    fn dvsec_cxl_reset_clears_memory_and_reports_done() {
        reset_clears(|c| {
            let d = dvsec(c);
            let v = cfg16(c, d + DVSEC_CTRL2);
            set_cfg16(c, d + DVSEC_CTRL2, v | CTRL2_CXL_RESET);
            assert_eq!(cfg16(c, d + DVSEC_CTRL2) & CTRL2_CXL_RESET, 0);
            let s2 = cfg16(c, d + DVSEC_STATUS2);
            assert_eq!(s2 & (STATUS2_RST_DONE | STATUS2_RST_ERR), STATUS2_RST_DONE);
        });
    }

    #[test]
    fn failed_reset_reports_rst_err() {
        let sim = start(&["--fault", "reset-fails"]);
        let mut c = sim.client();
        assert_eq!(c.reset().unwrap_err().errno(), Some(EIO));
        let d = dvsec(&mut c);
        set_cfg16(&mut c, d + DVSEC_CTRL2, CTRL2_CXL_RESET);
        let s2 = cfg16(&mut c, d + DVSEC_STATUS2);
        assert_eq!(s2 & (STATUS2_RST_DONE | STATUS2_RST_ERR), STATUS2_RST_ERR);
    }

    #[test]
    fn dvsec_is_virtualized() {
        let sim = start(&[]);
        let mut c = sim.client();
        let d = dvsec(&mut c);
        let (cap, status, lock) = (
            cfg16(&mut c, d + DVSEC_CAP),
            cfg16(&mut c, d + DVSEC_STATUS),
            cfg16(&mut c, d + DVSEC_LOCK),
        );
        for r in [DVSEC_CAP, DVSEC_STATUS, DVSEC_LOCK] {
            set_cfg16(&mut c, d + r, 0xFFFF);
        }
        assert_eq!(cfg16(&mut c, d + DVSEC_CAP), cap);
        assert_eq!(cfg16(&mut c, d + DVSEC_STATUS), status);
        assert_eq!(cfg16(&mut c, d + DVSEC_LOCK), lock);
        // Control and Control2 take writes (into the host's shadow).
        let ctrl = cfg16(&mut c, d + DVSEC_CTRL);
        set_cfg16(&mut c, d + DVSEC_CTRL, ctrl ^ 1);
        assert_eq!(cfg16(&mut c, d + DVSEC_CTRL), ctrl ^ 1);
        set_cfg16(&mut c, d + DVSEC_CTRL2, 1);
        assert_eq!(cfg16(&mut c, d + DVSEC_CTRL2), 1);
        // Cache WBI completes at once, without a reset.
        set_cfg16(&mut c, d + DVSEC_CTRL2, CTRL2_WBI);
        assert_ne!(cfg16(&mut c, d + DVSEC_STATUS2) & STATUS2_CACHE_INV, 0);
        assert_eq!(sim.stat("cache_wbis"), 1);
        assert_eq!(sim.stat("memory_clears"), 1, "only the reset at open");
    }

    #[test]
    fn reset_at_open_and_close() {
        let sim = start(&[]);
        sim.control("mem-write 0x2000 11223344");
        {
            let mut c = sim.client();
            set_mse(&mut c, true);
            assert_eq!(c.read_u32(9, 0x2000).unwrap(), 0, "cleared at open");
            c.write_u32(9, 0x3000, 0x5566_7788).unwrap();
        }
        // After the close the memory is cleared again.
        let mut again = sim.client();
        again.device_info().unwrap();
        assert_eq!(sim.control("mem-read 0x3000 4")["hex"], "00000000");
        let failing = start(&["--fault", "open-reset-fails"]);
        let refused = Client::connect(&failing.socket).and_then(|mut r| r.device_info());
        assert!(refused.is_err(), "open fails");
        assert_eq!(failing.stat("reset_failures"), 1);
    }
}
