// SPDX-License-Identifier: GPL-2.0-or-later

//! Every `--fault` gives exactly its broken host: a probe looks for all
//! symptoms and must find the one asked for and no other.

mod common;

use common::Sim;
use cxl_model::host::{HostCompRegs, HOST_DECODER0_BLOCK_OFFSET};
use cxl_model::uapi::{
    parse_cap_chain, RegionTypeCap, UapiVersion, VFIO_REGION_SUBTYPE_CXL,
    VFIO_REGION_SUBTYPE_CXL_COMP_REGS,
};
use vfio_user_cxl_sim::client::Client;

const FAULTS: [&str; 8] = [
    "no-comp-regs",
    "no-memory",
    "comp-regs-size-mismatch",
    "cap-chain-loop",
    "memory-smaller-than-decoder",
    "reset-fails",
    "no-flr",
    "drop-after=40",
];

/// Finds the CXL regions the lenient way (first capability of each
/// region, like a plain capability lookup), so that a looping chain does
/// not also look like a missing region.
/// A region's index and size.
type Found = Option<(u32, u64)>;

fn lenient_regions(c: &mut Client) -> (Found, Found) {
    let (mut comp, mut mem) = (None, None);
    for i in 0..c.device_info().unwrap().num_regions {
        let r = c.region_info(i).unwrap();
        let at = r.info.cap_offset as usize;
        if at == 0 || at >= r.raw.len() {
            continue;
        }
        if let Ok(t) = RegionTypeCap::parse(&r.raw[at..]) {
            if t.is_cxl(VFIO_REGION_SUBTYPE_CXL_COMP_REGS) {
                comp = Some((i, r.info.size));
            } else if t.is_cxl(VFIO_REGION_SUBTYPE_CXL) {
                mem = Some((i, r.info.size));
            }
        }
    }
    (comp, mem)
}

/// All symptoms of a broken host that `sim` shows.
fn symptoms(sim: &Sim, v: UapiVersion) -> Vec<&'static str> {
    let mut found = Vec::new();
    let mut c = sim.client();
    if v == UapiVersion::V4 {
        // v4 gates the memory on Memory Space Enable.
        let cmd = c.region_read(7, 4, 2).unwrap();
        c.region_write(7, 4, &[cmd[0] | 2, cmd[1]]).unwrap();
    }
    let (comp, mem) = lenient_regions(&mut c);
    let layout = HostCompRegs::new(v, 0, 0, true);
    let expected_comp_size = layout.region_size();
    let base = layout.region_offset_of_block();
    match comp {
        None => found.push("no-comp-regs"),
        Some((_, size)) if size != expected_comp_size => found.push("comp-regs-size-mismatch"),
        Some(_) => {}
    }
    match mem {
        None => found.push("no-memory"),
        Some((mi, msize)) => {
            // Decoder 0's size, from COMP_REGS or (if absent) the shadow
            // through the control socket.
            let at = HOST_DECODER0_BLOCK_OFFSET + 8 - base;
            let (lo, hi) = match comp {
                Some((ci, _)) => (c.read_u32(ci, at).unwrap(), c.read_u32(ci, at + 4).unwrap()),
                None => {
                    let r = |o: u64| {
                        sim.control(&format!("comp-regs-read {o}"))["value"]
                            .as_u64()
                            .unwrap() as u32
                    };
                    (r(at), r(at + 4))
                }
            };
            let dec_size = u64::from(lo) | (u64::from(hi) << 32);
            if msize < dec_size {
                found.push("memory-smaller-than-decoder");
            }
            // The memory works where it exists.
            c.write_u32(mi, 0, 0x77).unwrap();
            assert_eq!(c.read_u32(mi, 0).unwrap(), 0x77);
            c.read_u32(mi, msize).expect_err("read past the region");
        }
    }
    for i in 0..11 {
        let r = c.region_info(i).unwrap();
        if parse_cap_chain(&r.raw, r.info.cap_offset).is_err() {
            found.push("cap-chain-loop");
        }
    }
    if c.reset().is_err() {
        found.push("reset-fails");
    }
    // Device Capabilities (PCIe capability at 0x40, +4) advertises FLR in
    // bit 28; without it a write of Initiate FLR (Device Control bit 15)
    // is no reset.
    // (A connection that drop-after already closed shows nothing here.)
    let mut flr_probe = || -> Option<(u32, bool)> {
        let devcap = c.read_u32(7, 0x44).ok()?;
        let resets = sim.control("stats")["resets"].as_u64()?;
        let devctl = c.region_read(7, 0x48, 2).ok()?;
        c.region_write(7, 0x48, &[devctl[0], devctl[1] | 0x80])
            .ok()?;
        Some((devcap, sim.control("stats")["resets"].as_u64()? > resets))
    };
    match flr_probe() {
        Some((devcap, flr_reset)) if devcap & (1 << 28) == 0 => {
            assert!(!flr_reset, "Initiate FLR reset a function without FLR");
            found.push("no-flr");
        }
        Some((_, false)) if !found.contains(&"reset-fails") => found.push("flr-ignored"),
        _ => {}
    }
    // Keep talking until the connection is dropped (or clearly is not).
    // One client at a time: hang up first.
    drop(c);
    let mut talker = sim.client();
    for _ in 0..60 {
        if talker.device_info().is_err() {
            found.push("drop-after");
            break;
        }
    }
    found
}

fn check_all(v: UapiVersion, flag: &str) {
    let healthy = Sim::start(&["--uapi", flag]);
    assert_eq!(symptoms(&healthy, v), Vec::<&str>::new(), "healthy host");
    for fault in FAULTS {
        let sim = Sim::start(&["--uapi", flag, "--fault", fault]);
        let name = fault.split('=').next().unwrap();
        assert_eq!(symptoms(&sim, v), vec![name], "--fault {fault} ({flag})");
    }
}

#[test]
fn each_fault_alone_v3() {
    check_all(UapiVersion::V3, "v3");
}

#[test]
fn each_fault_alone_v2() {
    check_all(UapiVersion::V2, "v2");
}

#[test]
fn each_fault_alone_v4() {
    check_all(UapiVersion::V4, "v4");
}

#[test]
fn absent_regions_look_absent() {
    let sim = Sim::start(&["--fault", "no-comp-regs", "--fault", "no-memory"]);
    let mut c = sim.client();
    for i in [9, 10] {
        let r = c.region_info(i).unwrap();
        assert_eq!((r.info.size, r.info.flags, r.info.cap_offset), (0, 0, 0));
        assert!(r.fd.is_none());
        assert_eq!(c.region_read(i, 0, 4).unwrap_err().errno(), Some(22));
    }
}

#[test]
fn reset_failure_is_counted_not_performed() {
    let sim = Sim::start(&["--fault", "reset-fails"]);
    let mut c = sim.client();
    assert_eq!(c.reset().unwrap_err().errno(), Some(5));
    assert_eq!(sim.stat("resets"), 0);
    assert_eq!(sim.stat("reset_failures"), 1);
    c.device_info().unwrap();
}

#[test]
fn drop_after_counts_messages_per_connection() {
    let sim = Sim::start(&["--fault", "drop-after=3"]);
    for _ in 0..2 {
        // VERSION is message 1.
        let mut c = sim.client();
        c.device_info().unwrap();
        c.region_info(7).unwrap();
        c.device_info().expect_err("fourth message gets no answer");
    }
    assert_eq!(sim.stat("connections"), 2);
    assert_eq!(sim.stat("messages"), 6);
}
