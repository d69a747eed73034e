// SPDX-License-Identifier: GPL-2.0-or-later

//! Property tests: invariants of the state machines under random write
//! sequences, and parsers that must not panic on arbitrary bytes.

use std::ops::Range;

use cxl_model::component::{build_capability_array, CapabilityArray, CapabilityEntry};
use cxl_model::dvsec::{
    build_device_dvsec, build_register_locator, find_dvsec, parse_device_dvsec,
    parse_register_locator, DeviceDvsecConfig, GuestDeviceDvsec, HostDeviceDvsec, RegisterBlock,
    CXL_VENDOR_ID,
};
use cxl_model::hdm::{decoder_offset, HdmDecoderBlock, HDM_GRANULARITY};
use cxl_model::host::HostCompRegs;
use cxl_model::uapi::{
    cap_bytes, parse_cap_chain, parse_device_info, parse_region_info, CxlDeviceInfo, RegionTypeCap,
    SparseMmapCap, UapiVersion,
};
use proptest::prelude::*;

const GIB: u64 = 1 << 30;
const WIN: Range<u64> = 0x10_0000_0000..0x10_0000_0000 + 8 * GIB;
const DECODERS: usize = 4;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// Decoder index, biased towards the first ones (commits go in order).
fn decoder_index() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(0usize), 3 => Just(1usize), 2 => 2..DECODERS]
}

/// Control values: commit, commit with lock, de-commit, and some that a
/// commit must refuse (interleave, host-only target, reserved IG).
fn ctrl_value() -> impl Strategy<Value = u64> {
    prop::sample::select(vec![
        0x200u64, 0x200, 0x200, 0x200, 0x200, 0x300, 0x300, 0, 0x210, 0x1200, 0x100, 0x207, 0x20F,
    ])
}

/// A burst of writes to the HDM structure, each (offset, size, value):
/// mostly whole programming sequences (clear control, base, size, control)
/// so that commits, failed commits, locks and de-commits all happen, plus
/// single register writes and raw writes anywhere.
fn hdm_write() -> impl Strategy<Value = Vec<(u64, u32, u64)>> {
    // Decoder i's base lands around WIN.start + 2i GiB, so that in-order
    // commits often succeed and sometimes overlap or leave the window.
    let program = (
        decoder_index(),
        0u64..4,
        0u64..=5,
        ctrl_value(),
        any::<bool>(),
    )
        .prop_map(|(i, kb, ks, ctrl, clear)| {
            let d = decoder_offset(i);
            let mut w = Vec::with_capacity(4);
            if clear {
                w.push((d + 0x10, 4u32, 0u64));
            }
            w.push((d, 8, WIN.start + (2 * i as u64 + kb) * GIB - GIB));
            w.push((d + 8, 8, ks * GIB / 2));
            w.push((d + 0x10, 4, ctrl));
            w
        });
    let ctrl = (decoder_index(), ctrl_value())
        .prop_map(|(i, v)| vec![(decoder_offset(i) + 0x10, 4u32, v)]);
    let base = (decoder_index(), 0u64..10)
        .prop_map(|(i, k)| vec![(decoder_offset(i), 8u32, WIN.start - GIB + k * GIB)]);
    let raw = (
        0u64..0xA0,
        prop::sample::select(vec![4u32, 8, 2]),
        any::<u64>(),
    )
        .prop_map(|w| vec![w]);
    prop_oneof![4 => program, 2 => ctrl, 1 => base, 1 => raw, 1 => Just(vec![(4u64, 4u32, 2u64)])]
}

fn dvsec_cfg() -> DeviceDvsecConfig {
    DeviceDvsecConfig {
        mem_size: 4 * GIB,
        mem_base: 0,
        cache_capable: true,
        hdm_count: 1,
        mem_active: true,
        mem_enable: false,
        config_lock: false,
        cxl_reset_capable: true,
        cache_wbi_capable: true,
    }
}

fn dvsec_write() -> impl Strategy<Value = (u16, u32, u32)> {
    (
        0u16..0x40,
        prop::sample::select(vec![1u32, 2, 4]),
        any::<u32>(),
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn locked_decoder_never_changes(writes in prop::collection::vec(hdm_write(), 0..24)) {
        let mut b = HdmDecoderBlock::new(DECODERS, WIN).unwrap();
        b.present_committed_locked(0, WIN.start, 2 * GIB).unwrap();
        let before = b.decoder(0).unwrap();
        for (off, size, val) in writes.into_iter().flatten() {
            b.write(off, size, val);
            prop_assert_eq!(b.decoder(0).unwrap(), before);
        }
    }

    #[test]
    fn reserved_bits_always_read_zero(writes in prop::collection::vec(hdm_write(), 0..24)) {
        let mut b = HdmDecoderBlock::new(DECODERS, WIN).unwrap();
        let cap = b.read(0, 4);
        for (off, size, val) in writes.into_iter().flatten() {
            b.write(off, size, val);
            prop_assert_eq!(b.read(0, 4), cap);
            prop_assert_eq!(b.read(4, 4) & !0b10, 0);
            prop_assert_eq!(b.read(8, 8), 0);
            for i in 0..DECODERS {
                let d = decoder_offset(i);
                for lo in [0, 8, 0x14] {
                    prop_assert_eq!(b.read(d + lo, 4) & 0x0FFF_FFFF, 0);
                }
                prop_assert_eq!(b.read(d + 0x10, 4) & 0xFFFF_E000, 0);
                prop_assert_eq!(b.read(d + 0x1C, 4), 0);
            }
        }
    }

    #[test]
    fn committed_implies_valid_range(writes in prop::collection::vec(hdm_write(), 0..32)) {
        let mut b = HdmDecoderBlock::new(DECODERS, WIN).unwrap();
        for (off, size, val) in writes.into_iter().flatten() {
            b.write(off, size, val);
            let states: Vec<_> = (0..DECODERS).map(|i| b.decoder(i).unwrap()).collect();
            for (i, s) in states.iter().enumerate() {
                if !s.committed {
                    continue;
                }
                prop_assert!(!s.error);
                prop_assert!(s.size != 0);
                prop_assert_eq!(s.size % HDM_GRANULARITY, 0);
                prop_assert_eq!(s.base % HDM_GRANULARITY, 0);
                prop_assert!(s.base >= WIN.start && s.base + s.size <= WIN.end);
                for (j, o) in states.iter().enumerate() {
                    if j != i && o.committed {
                        prop_assert!(s.base + s.size <= o.base || o.base + o.size <= s.base);
                    }
                }
            }
        }
    }

    #[test]
    fn guest_dvsec_control_never_changes_after_lock(
        writes in prop::collection::vec(dvsec_write(), 0..64)
    ) {
        let host = parse_device_dvsec(&build_device_dvsec(&dvsec_cfg(), 0)).unwrap();
        let mut g = GuestDeviceDvsec::new(&host, WIN.start, 4 * GIB);
        let before = g.state();
        for (off, size, val) in writes {
            g.write(off, size, val);
            let s = g.state();
            prop_assert_eq!(s.control, before.control);
            prop_assert_eq!(s.lock, before.lock);
            prop_assert_eq!(s.range1_base, before.range1_base);
            prop_assert_eq!(s.range1_size, before.range1_size);
            prop_assert_eq!(s.capability, before.capability);
            // The action bits never read back as set.
            prop_assert_eq!(g.read(0x10, 2) & 0b110, 0);
        }
    }

    #[test]
    fn host_dvsec_control_and_control2_never_change_after_lock(
        v2 in any::<bool>(),
        pre in prop::collection::vec(dvsec_write(), 0..16),
        writes in prop::collection::vec(dvsec_write(), 0..64),
    ) {
        let version = if v2 { UapiVersion::V2 } else { UapiVersion::V3 };
        let mut h = HostDeviceDvsec::new(version, &dvsec_cfg());
        for (off, size, val) in pre {
            h.write(off, &val.to_le_bytes()[..size as usize]);
        }
        h.write(0x14, &[1]);
        let ctrl = h.bytes()[0x0C..0x12].to_vec();
        let ctrl2 = h.bytes()[0x10..0x12].to_vec();
        for (off, size, val) in writes {
            h.write(off, &val.to_le_bytes()[..size as usize]);
            prop_assert_eq!(&h.bytes()[0x0C..0x0E], &ctrl[..2]);
            prop_assert_eq!(&h.bytes()[0x10..0x12], &ctrl2[..]);
            prop_assert_eq!(h.bytes()[0x14] & 1, 1);
        }
    }

    #[test]
    fn host_comp_regs_v3_keep_fixed_areas(
        writes in prop::collection::vec((0u64..0x1200, 1usize..4, any::<u32>()), 0..64)
    ) {
        let mut h = HostCompRegs::new(UapiVersion::V3, 0x38_0000_0000, 4 * GIB, true);
        let array: Vec<u32> = (0..4).map(|i| h.block_dword(0x1000 + 4 * i)).collect();
        for (off, dwords, val) in writes {
            let data: Vec<u8> = (0..dwords).flat_map(|_| val.to_le_bytes()).collect();
            let _ = h.write(off, &data);
            for i in 0..0x400u64 {
                prop_assert_eq!(h.block_dword(4 * i), 0);
            }
            for (i, a) in array.iter().enumerate() {
                prop_assert_eq!(h.block_dword(0x1000 + 4 * i as u64), *a);
            }
            let d = h.decoder0();
            if d.committed() || d.lock_on_commit() {
                prop_assert!(d.commit() || !d.committed());
            }
        }
    }

    #[test]
    fn host_comp_regs_any_access_is_safe(
        v2 in any::<bool>(),
        ops in prop::collection::vec((any::<u64>(), 0usize..24, any::<u8>()), 0..32)
    ) {
        let version = if v2 { UapiVersion::V2 } else { UapiVersion::V3 };
        let mut h = HostCompRegs::new(version, 0x38_0000_0000, 4 * GIB, true);
        for (off, len, val) in ops {
            let off = off % 0x1_1000;
            let mut buf = vec![val; len];
            let _ = h.write(off, &buf);
            let _ = h.read(off, &mut buf);
        }
        h.reset();
    }

    #[test]
    fn cap_array_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = CapabilityArray::parse(&bytes);
    }

    #[test]
    fn cap_array_roundtrip(
        entries in prop::collection::vec((any::<u16>(), 0u8..16, 0u16..0x1000), 1..8)
    ) {
        let entries: Vec<_> = entries
            .into_iter()
            .map(|(id, version, pointer)| CapabilityEntry { id, version, pointer })
            .collect();
        let mut bytes = build_capability_array(&entries);
        bytes.resize(0xF000, 0);
        if let Ok(a) = CapabilityArray::parse(&bytes) {
            prop_assert_eq!(a.entries(), &entries[..]);
        }
    }

    #[test]
    fn cap_chain_parse_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        first in any::<u32>(),
        small in 0u32..256,
    ) {
        for start in [first, small] {
            if let Ok(chain) = parse_cap_chain(&bytes, start) {
                for c in &chain {
                    let b = cap_bytes(&bytes, &chain, c);
                    let _ = CxlDeviceInfo::parse_cap(b);
                    let _ = RegionTypeCap::parse(b);
                    let _ = SparseMmapCap::parse(b);
                }
            }
        }
        let _ = parse_device_info(&bytes);
        let _ = parse_region_info(&bytes);
    }

    #[test]
    fn device_info_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = CxlDeviceInfo::parse(&bytes);
        let _ = CxlDeviceInfo::parse_cap(&bytes);
        if let Ok(info) = CxlDeviceInfo::parse(&bytes) {
            let enc = info.encode(0);
            prop_assert_eq!(CxlDeviceInfo::parse_cap(&enc), Ok(info));
        }
    }

    #[test]
    fn region_caps_parse_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = RegionTypeCap::parse(&bytes);
        if let Ok(s) = SparseMmapCap::parse(&bytes) {
            prop_assert_eq!(SparseMmapCap::parse(&s.encode(0)), Ok(s));
        }
    }

    #[test]
    fn dvsec_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = parse_device_dvsec(&bytes);
        let _ = parse_register_locator(&bytes);
        if let Ok(d) = parse_device_dvsec(&bytes) {
            let mut g = GuestDeviceDvsec::new(&d, WIN.start, GIB);
            g.write(0x10, 2, 4);
            g.reset();
        }
    }

    #[test]
    fn find_dvsec_never_panics(
        seed in prop::collection::vec(any::<u8>(), 0..0x1100),
        headers in prop::collection::vec((0usize..0x3F0, any::<u32>()), 0..16),
    ) {
        // Plant plausible headers so that walks go further than one step.
        let mut config = seed;
        for (at, raw) in headers {
            let at = 0x100 + at * 4;
            if at + 4 <= config.len() {
                config[at..at + 4].copy_from_slice(&raw.to_le_bytes());
            }
        }
        let _ = find_dvsec(&config, CXL_VENDOR_ID, 0);
    }

    #[test]
    fn register_locator_roundtrip(
        blocks in prop::collection::vec((0u8..6, 1u8..=255, any::<u64>()), 0..8)
    ) {
        let blocks: Vec<_> = blocks
            .into_iter()
            .map(|(bir, block_id, offset)| RegisterBlock {
                bir,
                block_id,
                offset: offset & !0xFFFF,
            })
            .collect();
        let bytes = build_register_locator(&blocks, 0);
        prop_assert_eq!(parse_register_locator(&bytes), Ok(blocks));
    }

    #[test]
    fn device_dvsec_roundtrip(
        size in any::<u64>(),
        base in any::<u64>(),
        flags in any::<[bool; 6]>(),
        hdm_count in 1u8..3,
    ) {
        let cfg = DeviceDvsecConfig {
            mem_size: size & !0x0FFF_FFFF,
            mem_base: base & !0x0FFF_FFFF,
            cache_capable: flags[0],
            hdm_count,
            mem_active: flags[1],
            mem_enable: flags[2],
            config_lock: flags[3],
            cxl_reset_capable: flags[4],
            cache_wbi_capable: flags[5],
        };
        let d = parse_device_dvsec(&build_device_dvsec(&cfg, 0x100)).unwrap();
        prop_assert_eq!(d.to_config(), cfg);
    }
}
