// SPDX-License-Identifier: GPL-2.0-or-later

//! Property tests of the device's decision logic: discovery never panics on
//! whatever a host reports, and no guest write to the component block
//! changes the presented decoder 0 or the capability array.

use cxl_model::component::COMPONENT_BLOCK_SIZE;
use cxl_model::discovery::{discover, HostLayout, RegionDesc};
use cxl_model::dvsec::{
    build_device_dvsec, build_register_locator, DeviceDvsecConfig, RegisterBlock,
    BLOCK_ID_COMPONENT,
};
use cxl_model::guest_component::GuestComponentBlock;
use cxl_model::host::{HostCompRegs, HOST_HDM_BLOCK_OFFSET};
use cxl_model::uapi::{
    CxlDeviceInfo, UapiVersion, VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ,
    VFIO_REGION_INFO_FLAG_WRITE, VFIO_REGION_TYPE_CXL,
};
use proptest::prelude::*;

const GIB: u64 = 1 << 30;
const MEM: u64 = 2 * GIB;
const BAR: u8 = 2;
const BLOCK: u64 = 0x2_0000;
const BASE: u64 = 0x10_0000_0000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

fn version() -> impl Strategy<Value = UapiVersion> {
    prop_oneof![Just(UapiVersion::V2), Just(UapiVersion::V3)]
}

/// A conforming host: regions, config space, `COMP_REGS` and device info.
struct Host {
    regions: Vec<RegionDesc>,
    config: Vec<u8>,
    regs: HostCompRegs,
    info: CxlDeviceInfo,
}

fn host(v: UapiVersion) -> Host {
    let regs = HostCompRegs::new(v, 0x38_0000_0000, MEM, true);
    let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    let (mem, comp) = match v {
        UapiVersion::V2 => (9, 10),
        UapiVersion::V3 | UapiVersion::V4 => (10, 9),
    };
    let regions = vec![
        RegionDesc {
            index: u32::from(BAR),
            size: 1 << 20,
            flags: rw | VFIO_REGION_INFO_FLAG_MMAP,
            cap_type: None,
        },
        RegionDesc {
            index: 7,
            size: 4096,
            flags: rw,
            cap_type: None,
        },
        RegionDesc {
            index: comp,
            size: regs.region_size(),
            flags: rw,
            cap_type: Some((VFIO_REGION_TYPE_CXL, 2)),
        },
        RegionDesc {
            index: mem,
            size: MEM,
            flags: rw | VFIO_REGION_INFO_FLAG_MMAP,
            cap_type: Some((VFIO_REGION_TYPE_CXL, 1)),
        },
    ];
    let mut config = vec![0u8; 4096];
    let dvsec = build_device_dvsec(
        &DeviceDvsecConfig {
            mem_size: MEM,
            hdm_count: 1,
            mem_active: true,
            mem_enable: true,
            ..DeviceDvsecConfig::default()
        },
        0x180,
    );
    config[0x100..0x100 + dvsec.len()].copy_from_slice(&dvsec);
    let locator = build_register_locator(
        &[RegisterBlock {
            bir: BAR,
            block_id: BLOCK_ID_COMPONENT,
            offset: BLOCK,
        }],
        0,
    );
    config[0x180..0x180 + locator.len()].copy_from_slice(&locator);
    let info = match v {
        UapiVersion::V2 => CxlDeviceInfo::V2 {
            hdm_regs_bar_index: BAR,
            flags: 1,
            hdm_regs_offset: BLOCK + 0x1000,
            dpa_region_index: mem,
            comp_regs_region_index: comp,
        },
        UapiVersion::V3 => CxlDeviceInfo::V3 {
            flags: 1,
            hdm_region_idx: mem,
            comp_reg_region_idx: comp,
            comp_reg_bar: u32::from(BAR),
            comp_reg_offset: BLOCK,
            comp_reg_size: regs.region_size(),
        },
        // The strategy draws v2 and v3 only.
        UapiVersion::V4 => CxlDeviceInfo::V4 { flags: 1 },
    };
    Host {
        regions,
        config,
        regs,
        info,
    }
}

fn read_regs(regs: &HostCompRegs, offset: u64) -> Result<u32, String> {
    let mut b = [0u8; 4];
    regs.read(offset, &mut b).map_err(|e| e.to_string())?;
    Ok(u32::from_le_bytes(b))
}

fn layout(v: UapiVersion) -> (HostLayout, HostCompRegs) {
    let h = host(v);
    let l = discover(&h.regions, &h.config, Some(&h.info), &mut |o| {
        read_regs(&h.regs, o)
    })
    .unwrap();
    (l, h.regs)
}

fn region() -> impl Strategy<Value = RegionDesc> {
    let size = prop_oneof![
        Just(0u64),
        Just(0x130u64),
        Just(0x1_0000),
        Just(MEM),
        Just(1 << 20),
        any::<u64>()
    ];
    let cap = prop_oneof![
        Just(None),
        (0u32..4).prop_map(|s| Some((VFIO_REGION_TYPE_CXL, s))),
        any::<(u32, u32)>().prop_map(Some),
    ];
    (0u32..12, size, any::<u32>(), cap).prop_map(|(index, size, flags, cap_type)| RegionDesc {
        index,
        size,
        flags,
        cap_type,
    })
}

/// Answers to `COMP_REGS` reads: a value or an error, cycled through.
fn answers() -> impl Strategy<Value = Vec<Option<u32>>> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<u32>().prop_map(Some),
            2 => Just(Some(0x0301_0001)),
            1 => Just(Some(0)),
            1 => Just(None)
        ],
        1..32,
    )
}

/// Offsets a guest write may target: mostly the capability array and the
/// HDM structure, sometimes anywhere.
fn guest_offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => (0u64..0x20).prop_map(|d| 0x1000 + 4 * d),
        4 => (0u64..0x10).prop_map(|d| HOST_HDM_BLOCK_OFFSET + 4 * d),
        1 => 0u64..COMPONENT_BLOCK_SIZE + 8,
        1 => any::<u64>(),
    ]
}

fn guest_size() -> impl Strategy<Value = u32> {
    prop::sample::select(vec![1u32, 2, 4, 4, 8, 8, 3, 16, 0])
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary region lists, config bytes and read results.
    #[test]
    fn discover_never_panics_on_arbitrary_input(
        regions in prop::collection::vec(region(), 0..12),
        config in prop::collection::vec(any::<u8>(), 0..4200),
        answers in answers(),
        with_info in any::<bool>(),
        v in version(),
    ) {
        let info = host(v).info;
        let mut n = 0usize;
        let _ = discover(&regions, &config, with_info.then_some(&info), &mut |_| {
            n += 1;
            answers[n % answers.len()].ok_or_else(|| "EIO".to_owned())
        });
    }

    /// A conforming host with random corruption of its config space,
    /// `COMP_REGS` dwords and region sizes: discovery reports an error or a
    /// layout consistent with what it read, and never panics.
    #[test]
    fn discover_never_panics_on_corrupted_host(
        v in version(),
        config_flips in prop::collection::vec((0x100usize..0x1C0, any::<u8>()), 0..4),
        reg_pokes in prop::collection::vec(
            (prop_oneof![(0x1000u64..0x1140), 0u64..0x10000], any::<u32>()), 0..4),
        size_change in prop::option::of((0usize..4, any::<u64>())),
        drop_info in any::<bool>(),
    ) {
        let mut h = host(v);
        for (at, b) in config_flips {
            h.config[at] ^= b;
        }
        for (at, val) in reg_pokes {
            h.regs.set_block_dword(at & !3, val);
        }
        if let Some((i, size)) = size_change {
            h.regions[i].size = size;
        }
        let info = (!drop_info).then_some(&h.info);
        if let Ok(l) = discover(&h.regions, &h.config, info, &mut |o| read_regs(&h.regs, o)) {
            prop_assert_eq!(l.decoder_count, 1);
            prop_assert!(l.decoder0.committed());
            prop_assert_eq!(l.decoder0.size, l.memory_size);
            prop_assert!(l.component_offset + COMPONENT_BLOCK_SIZE <= l.bar_size);
            // The guest view can always be built at an aligned base.
            let size = l.memory_size;
            if size % (256 << 20) == 0 && size <= 1 << 44 {
                GuestComponentBlock::new(&l, BASE, size, BASE..BASE + size).unwrap();
            }
        }
    }

    /// No sequence of guest writes (any offset, size, value; direct or
    /// forwarded) changes decoder 0 or the capability array.
    #[test]
    fn guest_writes_never_change_decoder0_or_cap_array(
        v in version(),
        writes in prop::collection::vec((guest_offset(), guest_size(), any::<u64>()), 1..48),
        reset_at in prop::option::of(0usize..48),
    ) {
        let (l, mut regs) = layout(v);
        let mut g = GuestComponentBlock::new(&l, BASE, MEM, BASE..BASE + 4 * GIB).unwrap();
        let dec0 = g.hdm().decoder(0).unwrap();
        let cap_len = l.cap_array.len() as u64;
        let snapshot = |blk: &GuestComponentBlock, host_regs: &HostCompRegs| -> Vec<u64> {
            (0..cap_len)
                .map(|i| blk.read_via(0x1000 + i, 1, &mut |o| read_regs(host_regs, o).unwrap()))
                .collect()
        };
        let cap_before = snapshot(&g, &regs);
        for (i, (off, size, value)) in writes.into_iter().enumerate() {
            g.write_via(off, size, value, &mut |o, d| {
                // Forwarded writes are always aligned dwords in the region.
                regs.write(o, &d.to_le_bytes()).unwrap();
            });
            if reset_at == Some(i) {
                g.reset_to_boot();
            }
            prop_assert_eq!(g.hdm().decoder(0).unwrap(), dec0);
        }
        prop_assert_eq!(&snapshot(&g, &regs), &cap_before);
        prop_assert_eq!(&l.cap_array[..], &cap_before.iter().map(|&b| b as u8).collect::<Vec<_>>()[..]);
    }

    /// Reads never panic and forwarded reads stay inside the region.
    #[test]
    fn guest_reads_are_total(
        v in version(),
        reads in prop::collection::vec((guest_offset(), guest_size()), 1..64),
    ) {
        let (l, regs) = layout(v);
        let g = GuestComponentBlock::new(&l, BASE, MEM, BASE..BASE + 4 * GIB).unwrap();
        for (off, size) in reads {
            let _ = g.read_via(off, size, &mut |o| {
                assert_eq!(o % 4, 0);
                read_regs(&regs, o).unwrap()
            });
        }
    }
}
