// SPDX-License-Identifier: GPL-2.0-or-later

//! vfio-user protocol behaviour: negotiation, region info and `argsz`,
//! errors, posted writes, DMA windows, interrupts, config space.

mod common;

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use common::Sim;
use vfio_bindings::bindings::vfio::{
    VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_UNMAP_FLAG_ALL, VFIO_IRQ_SET_ACTION_TRIGGER,
    VFIO_IRQ_SET_ACTION_UNMASK, VFIO_IRQ_SET_DATA_NONE, VFIO_REGION_INFO_FLAG_CAPS,
};
use vfio_user_cxl_sim::client::{empty_caps, eventfd_trigger, Client, QEMU_CAPS};
use vfio_user_cxl_sim::protocol::{cmd, DmaMap, DmaUnmap, IrqSet, RegionAccess, REGION_INFO_SIZE};

const EINVAL: i32 = 22;
const ENOSYS: i32 = 38;

#[test]
fn negotiation() {
    let sim = Sim::start(&[]);
    let mut c = Client::connect_raw(&sim.socket).unwrap();
    // Nothing before VERSION.
    assert_eq!(c.device_info().unwrap_err().errno(), Some(EINVAL));
    let reply = c.negotiate(QEMU_CAPS).unwrap();
    let caps = reply["capabilities"].as_object().unwrap();
    assert_eq!(caps["max_msg_fds"], 16);
    assert_eq!(caps["max_data_xfer_size"], 1 << 20);
    assert_eq!(caps["pgsizes"], 4096);
    assert!(!caps.contains_key("migration"), "no migration");
    assert!(!caps.contains_key("write_multiple"));
    // Only once per connection.
    assert_eq!(c.negotiate(QEMU_CAPS).unwrap_err().errno(), Some(EINVAL));

    // A subset of what was proposed: nothing proposed, nothing offered.
    // (One client at a time: hang up first.)
    drop(c);
    let mut c2 = Client::connect_raw(&sim.socket).unwrap();
    let none = c2.negotiate(&empty_caps()).unwrap();
    assert!(none["capabilities"].as_object().unwrap().is_empty());

    // Malformed JSON is refused.
    drop(c2);
    let mut c3 = Client::connect_raw(&sim.socket).unwrap();
    assert_eq!(c3.negotiate("{nope").unwrap_err().errno(), Some(EINVAL));
}

#[test]
fn region_info_argsz_like_vfio() {
    let sim = Sim::start(&[]);
    let mut c = sim.client();
    // Too small: needed argsz, CAPS flag, no capabilities; fd still sent.
    let small = c.region_info_argsz(10, REGION_INFO_SIZE).unwrap();
    assert!(small.info.argsz > REGION_INFO_SIZE);
    assert_ne!(small.info.flags & VFIO_REGION_INFO_FLAG_CAPS, 0);
    // (cap_offset: 32 rather than the kernel's 0, see server.rs: QEMU's
    // vfio-user client refuses 0 with CAPS set.)
    assert_eq!(small.info.cap_offset, REGION_INFO_SIZE);
    assert_eq!(small.raw.len(), REGION_INFO_SIZE as usize);
    assert!(small.fd.is_some());
    // Big enough: capabilities at 32.
    let need = small.info.argsz;
    let full = c.region_info_argsz(10, need).unwrap();
    assert_eq!(full.info.cap_offset, REGION_INFO_SIZE);
    assert_eq!(full.raw.len(), need as usize);
    // Larger than needed: same answer.
    let large = c.region_info_argsz(10, need + 64).unwrap();
    assert_eq!(large.raw, full.raw);
    // Below the structure size: refused.
    assert_eq!(
        c.region_info_argsz(10, 16).unwrap_err().errno(),
        Some(EINVAL)
    );
    // Regions without capabilities: plain structure.
    let cfg = c.region_info_argsz(7, 64).unwrap();
    assert_eq!(cfg.info.argsz, REGION_INFO_SIZE);
    assert_eq!(cfg.info.flags & VFIO_REGION_INFO_FLAG_CAPS, 0);
    assert_eq!(cfg.info.size, 4096);
    for i in [1, 2, 3, 4, 5, 6, 8] {
        let empty = c.region_info(i).unwrap();
        assert_eq!((empty.info.size, empty.info.flags), (0, 0), "region {i}");
        assert_eq!(c.region_read(i, 0, 4).unwrap_err().errno(), Some(EINVAL));
    }
    assert_eq!(c.region_info(11).unwrap_err().errno(), Some(EINVAL));
    assert_eq!(c.region_read(11, 0, 4).unwrap_err().errno(), Some(EINVAL));
}

#[test]
fn unknown_and_unsupported_commands() {
    let sim = Sim::start(&[]);
    let mut c = sim.client();
    for command in [
        cmd::DEVICE_GET_REGION_IO_FDS,
        cmd::DMA_READ,
        cmd::DMA_WRITE,
        cmd::DIRTY_PAGES,
        cmd::REGION_WRITE_MULTI,
        99,
    ] {
        let e = c.request(command, &[0; 32], &[]).unwrap_err();
        assert_eq!(e.errno(), Some(ENOSYS), "command {command}");
    }
    // Truncated payloads are EINVAL, and the connection survives.
    let short = c.request(cmd::REGION_READ, &[0; 8], &[]).unwrap_err();
    assert_eq!(short.errno(), Some(EINVAL));
    // Descriptors with a command that takes none are refused.
    let (a, _b) = UnixStream::pair().unwrap();
    let e = c
        .request(
            cmd::DEVICE_GET_INFO,
            &[16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[a.as_fd()],
        )
        .unwrap_err();
    assert_eq!(e.errno(), Some(EINVAL));
    // Too large a transfer.
    assert_eq!(
        c.region_read(10, 0, (1 << 20) + 4).unwrap_err().errno(),
        Some(EINVAL)
    );
    c.device_info().unwrap();
}

#[test]
fn posted_writes_get_no_reply() {
    let sim = Sim::start(&[]);
    let mut c = sim.client();
    let req = RegionAccess {
        offset: 0x80,
        region: 10,
        count: 4,
    };
    let mut p = req.encode();
    p.extend_from_slice(&0xfeed_f00du32.to_le_bytes());
    c.post(cmd::REGION_WRITE, &p).unwrap();
    // A failing posted write gets no reply either.
    let bad = RegionAccess {
        offset: 0x10000,
        region: 0,
        count: 4,
    };
    let mut p2 = bad.encode();
    p2.extend_from_slice(&[0; 4]);
    c.post(cmd::REGION_WRITE, &p2).unwrap();
    // The next reply is the read's (ids would not match otherwise).
    assert_eq!(c.read_u32(10, 0x80).unwrap(), 0xfeed_f00d);
}

#[test]
fn dma_windows_are_recorded() {
    let sim = Sim::start(&[]);
    let mut c = sim.client();
    let memfd =
        nix::sys::memfd::memfd_create(c"guest-ram", nix::sys::memfd::MFdFlags::empty()).unwrap();
    let map = |iova| DmaMap {
        argsz: DmaMap::SIZE,
        flags: VFIO_DMA_MAP_FLAG_READ,
        offset: 0,
        iova,
        size: 0x10000,
    };
    c.dma_map(&map(0x100000), Some(memfd.as_fd())).unwrap();
    c.dma_map(&map(0x200000), None).unwrap();
    c.dma_map(&map(0x300000), None).unwrap();
    let u = DmaUnmap {
        argsz: DmaUnmap::SIZE,
        flags: 0,
        iova: 0x100000,
        size: 0x10000,
    };
    assert_eq!(c.dma_unmap(&u).unwrap(), u, "reply echoes the request");
    let all = DmaUnmap {
        flags: VFIO_DMA_UNMAP_FLAG_ALL,
        iova: 0,
        size: 0,
        ..u
    };
    c.dma_unmap(&all).unwrap();
    assert_eq!(sim.stat("dma_maps"), 3);
    assert_eq!(sim.stat("dma_unmaps"), 2);
    let zero = DmaMap { size: 0, ..map(0) };
    assert_eq!(c.dma_map(&zero, None).unwrap_err().errno(), Some(EINVAL));
}

#[test]
fn interrupts() {
    let sim = Sim::start(&[]);
    let mut c = sim.client();
    let counts: Vec<u32> = (0..5).map(|i| c.irq_info(i).unwrap().count).collect();
    assert_eq!(counts, [1, 1, 0, 1, 1], "INTx, MSI, MSI-X, ERR, REQ");
    assert_eq!(c.irq_info(5).unwrap_err().errno(), Some(EINVAL));

    // An eventfd stand-in (any fd the server can write 8 bytes to).
    let (tx, mut rx) = UnixStream::pair().unwrap();
    c.set_irqs(&eventfd_trigger(1, 0, 1), &[tx.as_fd()])
        .unwrap();
    sim.control("irq 1 0");
    let mut buf = [0u8; 8];
    rx.read_exact(&mut buf).unwrap();
    assert_eq!(u64::from_ne_bytes(buf), 1);

    // ERR and REQ take one eventfd each; MSI-X has no vectors.
    c.set_irqs(&eventfd_trigger(3, 0, 1), &[tx.as_fd()])
        .unwrap();
    c.set_irqs(&eventfd_trigger(4, 0, 1), &[tx.as_fd()])
        .unwrap();
    assert_eq!(
        c.set_irqs(&eventfd_trigger(2, 0, 1), &[tx.as_fd()])
            .unwrap_err()
            .errno(),
        Some(EINVAL)
    );
    assert_eq!(
        c.set_irqs(&eventfd_trigger(1, 0, 2), &[tx.as_fd(), tx.as_fd()])
            .unwrap_err()
            .errno(),
        Some(EINVAL)
    );
    // INTx unmask without data, then disable MSI (count 0).
    let unmask = IrqSet {
        argsz: IrqSet::SIZE,
        flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
        index: 0,
        start: 0,
        count: 1,
    };
    c.set_irqs(&unmask, &[]).unwrap();
    let off = IrqSet {
        flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
        index: 1,
        count: 0,
        ..unmask
    };
    c.set_irqs(&off, &[]).unwrap();
    let v = vfio_user_cxl_sim::client::control(&sim.control, "irq 1 0").unwrap();
    assert_eq!(v["ok"], false, "MSI eventfd gone after disable");
    assert_eq!(sim.stat("irq_sets"), 5);
}

#[test]
fn config_space_basics() {
    let sim = Sim::start(&[]);
    let mut c = sim.client();
    assert_eq!(c.read_u32(7, 0).unwrap(), 0xc202_1234);
    assert_eq!(c.read_u32(7, 8).unwrap() >> 8, 0x12_00_00);
    assert_eq!(c.read_u32(7, 0x10).unwrap(), 0x4, "64-bit memory BAR");
    // BAR sizing.
    c.write_u32(7, 0x10, 0xffff_ffff).unwrap();
    c.write_u32(7, 0x14, 0xffff_ffff).unwrap();
    assert_eq!(c.read_u32(7, 0x10).unwrap(), 0xfffc_0004, "256K");
    assert_eq!(c.read_u32(7, 0x14).unwrap(), 0xffff_ffff);
    // Capability list: PCIe (endpoint, FLR) then MSI.
    assert_eq!(c.region_read(7, 0x34, 1).unwrap(), [0x40]);
    let pcie = c.read_u32(7, 0x40).unwrap();
    assert_eq!(
        (pcie & 0xff, (pcie >> 8) & 0xff, pcie >> 16),
        (0x10, 0x80, 2)
    );
    assert_ne!(c.read_u32(7, 0x44).unwrap() & (1 << 28), 0);
    assert_eq!(c.read_u32(7, 0x80).unwrap() & 0xffff, 0x0005);
    // Extended capabilities start with a DVSEC.
    assert_eq!(c.read_u32(7, 0x100).unwrap() & 0xffff, 0x23);
    // Accesses of any size inside; nothing beyond.
    assert_eq!(c.region_read(7, 0xffd, 3).unwrap().len(), 3);
    assert_eq!(
        c.region_read(7, 0xffd, 4).unwrap_err().errno(),
        Some(EINVAL)
    );
    assert_eq!(sim.stat("config_writes"), 2);
    assert_eq!(sim.control("config-read 0 4")["hex"], "341202c2");
}

#[test]
fn control_socket_errors() {
    let sim = Sim::start(&[]);
    let ctl = |cmd: &str| vfio_user_cxl_sim::client::control(&sim.control, cmd).unwrap();
    for bad in [
        "frobnicate",
        "",
        "mem-read",
        "mem-read 0 99999999",
        "mem-write 0 abc",
        "config-read 4090 10",
        "comp-regs-read 2",
        "irq 9",
    ] {
        let v = ctl(bad);
        assert_eq!(v["ok"], false, "{bad:?}");
        assert!(v["error"].is_string());
    }
    assert_eq!(ctl("mem-write 0x10 a1b2")["ok"], true);
    assert_eq!(ctl("mem-read 0x10 2")["hex"], "a1b2");
    assert!(ctl("help")["commands"].is_array());
    let s = ctl("stats");
    for key in [
        "resets",
        "dma_maps",
        "dma_unmaps",
        "comp_regs_writes",
        "config_writes",
        "connections",
        "messages",
    ] {
        assert!(s[key].is_u64(), "stats has {key}");
    }
}
