// SPDX-License-Identifier: GPL-2.0-or-later

use super::*;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const BASE0: u64 = 0x10_0000_0000;
const BASE1: u64 = 0x20_0000_0000;

fn machine() -> Vec<FixedWindow> {
    vec![
        FixedWindow {
            index: 0,
            base: BASE0,
            size: 4 * GIB,
            targets: vec!["cxl.1".into()],
            interleave_granularity: 256,
        },
        FixedWindow {
            index: 1,
            base: BASE1,
            size: GIB,
            targets: vec!["cxl.2".into()],
            interleave_granularity: 256,
        },
    ]
}

fn req<'a>(name: &'a str, hb: &'a str, port: u8, size: u64) -> PlacementRequest<'a> {
    PlacementRequest {
        name,
        host_bridge: hb,
        root_port: port,
        requested_window: None,
        memory_size: size,
        host_bridge_decoders: 4,
    }
}

fn place_all(reqs: &[PlacementRequest<'_>]) -> Vec<PlacedDevice> {
    let mut placed = Vec::new();
    for r in reqs {
        let d = place(&machine(), &placed, r).unwrap();
        placed.push(d);
    }
    placed
}

#[test]
fn devices_below_one_host_bridge_share_its_window_in_order() {
    let p = place_all(&[
        req("a", "cxl.1", 0, GIB),
        req("b", "cxl.1", 1, 256 * MIB),
        req("c", "cxl.1", 2, 512 * MIB),
    ]);
    let bases: Vec<u64> = p.iter().map(|d| d.base).collect();
    assert_eq!(bases, [BASE0, BASE0 + GIB, BASE0 + GIB + 256 * MIB]);
    assert!(p.iter().all(|d| d.window.index == 0));
}

#[test]
fn a_freed_range_is_reused_and_the_others_stay() {
    let mut p = place_all(&[
        req("a", "cxl.1", 0, GIB),
        req("b", "cxl.1", 1, GIB),
        req("c", "cxl.1", 2, GIB),
    ]);
    p.remove(1);
    let b2 = place(&machine(), &p, &req("b2", "cxl.1", 1, 512 * MIB)).unwrap();
    assert_eq!(b2.base, BASE0 + GIB, "first fit takes the hole");
    assert_eq!((p[0].base, p[1].base), (BASE0, BASE0 + 2 * GIB));
}

#[test]
fn unaligned_sizes_still_start_on_256_mib() {
    // Sizes are 256 MiB multiples (decoder granularity); a 256 MiB device
    // after a 768 MiB one starts at the next boundary.
    let p = place_all(&[
        req("a", "cxl.1", 0, 768 * MIB),
        req("b", "cxl.1", 1, 256 * MIB),
    ]);
    assert_eq!(p[1].base, BASE0 + 768 * MIB);
    assert_eq!(p[1].base % HDM_GRANULARITY, 0);
}

#[test]
fn a_full_window_names_the_devices_and_the_fix() {
    let p = place_all(&[req("vfio-cxl 'a'", "cxl.2", 0, GIB)]);
    let e = place(&machine(), &p, &req("vfio-cxl 'b'", "cxl.2", 1, 256 * MIB)).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, PlacementError::NoRoom { .. }));
    for needle in [
        "window 1",
        "0x40000000 (1 GiB)",
        "vfio-cxl 'a' at 0x2000000000",
        "cxl-fmw.1.size",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[test]
fn too_few_host_bridge_decoders() {
    let mut two = req("c", "cxl.1", 2, GIB);
    two.host_bridge_decoders = 2;
    let p = place_all(&[req("a", "cxl.1", 0, GIB), req("b", "cxl.1", 1, GIB)]);
    let e = place(&machine(), &p, &two).unwrap_err();
    assert_eq!(
        e,
        PlacementError::TooFewDecoders {
            host_bridge: "cxl.1".into(),
            decoders: 2,
            devices: vec!["a".into(), "b".into()],
        }
    );
    assert!(e
        .to_string()
        .contains("has 2 HDM decoders, all used by a, b"));
}

#[test]
fn a_passthrough_host_bridge_serves_one_device() {
    let mut first = req("a", "cxl.1", 0, GIB);
    first.host_bridge_decoders = 0;
    let p = vec![place(&machine(), &[], &first).unwrap()];
    let mut second = req("b", "cxl.1", 0, GIB);
    second.host_bridge_decoders = 0;
    let e = place(&machine(), &p, &second).unwrap_err();
    assert!(e.to_string().contains("hdm_for_passthrough=on"), "{e}");
}

#[test]
fn window_errors_pass_through() {
    let e = place(&machine(), &[], &req("a", "cxl.9", 0, GIB)).unwrap_err();
    assert!(matches!(
        e,
        PlacementError::Window(WindowError::NoWindowForHostBridge { .. })
    ));
    let mut pinned = req("a", "cxl.1", 0, GIB);
    pinned.requested_window = Some(1);
    assert!(matches!(
        place(&machine(), &[], &pinned),
        Err(PlacementError::Window(WindowError::NotForHostBridge { .. }))
    ));
}

#[test]
fn host_bridge_decoders_route_each_device_in_address_order() {
    let mut p = place_all(&[
        req("a", "cxl.1", 3, GIB),
        req("b", "cxl.1", 5, 256 * MIB),
        req("x", "cxl.2", 0, 256 * MIB),
    ]);
    // Listed out of address order: decoders still go in address order.
    p.swap(0, 1);
    let regs = host_bridge_registers(&p, "cxl.1", 4);
    let at = |offset: u64| regs.iter().find(|r| r.0 == offset).map(|r| r.1);
    assert_eq!(at(0x04), Some(0x2), "HDM Decoder Enable");
    // Decoder 0 (0x10..): device a at the window base, 1 GiB, port 3.
    assert_eq!(
        (at(0x10), at(0x14), at(0x18), at(0x1C), at(0x20), at(0x24)),
        (
            Some(0),
            Some(0x10),
            Some(0x4000_0000),
            Some(0),
            Some(0x700),
            Some(3)
        )
    );
    // Decoder 1 (0x30..): device b above it, port 5.
    assert_eq!(
        (at(0x30), at(0x34), at(0x44)),
        (Some(0x4000_0000), Some(0x10), Some(5))
    );
    // Decoders 2 and 3 cleared.
    assert_eq!((at(0x60), at(0x80)), (Some(0), Some(0)));
    assert_eq!(regs.len(), 1 + 4 * 7);
    // A host bridge without decoders gets nothing; one without devices
    // gets its decoders cleared and decoding disabled.
    assert!(host_bridge_registers(&p, "cxl.1", 0).is_empty());
    let empty = host_bridge_registers(&p, "cxl.3", 1);
    assert_eq!(empty[0], (0x04, 0));
    assert!(empty[1..].iter().all(|&(_, v)| v == 0));
}
