// SPDX-License-Identifier: GPL-2.0-or-later

//! Feeds arbitrary bytes to every parser of the register model, and the
//! same bytes as a write sequence to the state machines.  Any panic is a
//! bug: all of these take input from the host or the guest.

#![no_main]

use cxl_model::component::CapabilityArray;
use cxl_model::dvsec::{
    find_dvsec, parse_device_dvsec, parse_register_locator, GuestDeviceDvsec, HostDeviceDvsec,
    CXL_VENDOR_ID, DVSEC_ID_CXL_DEVICE,
};
use cxl_model::hdm::HdmDecoderBlock;
use cxl_model::host::HostCompRegs;
use cxl_model::uapi::{
    cap_bytes, parse_cap_chain, parse_device_info, parse_region_info, CompRegsCap, CxlDeviceInfo,
    RegionTypeCap, SparseMmapCap, UapiVersion,
};
use libfuzzer_sys::fuzz_target;

fn u32_at(data: &[u8], at: usize) -> u32 {
    data.get(at..at + 4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fuzz_target!(|data: &[u8]| {
    let _ = CapabilityArray::parse(data);
    let _ = CxlDeviceInfo::parse(data);
    let _ = CxlDeviceInfo::parse_cap(data);
    let _ = RegionTypeCap::parse(data);
    let _ = SparseMmapCap::parse(data);
    let _ = CompRegsCap::parse(data);
    let _ = parse_register_locator(data);
    let _ = find_dvsec(data, CXL_VENDOR_ID, DVSEC_ID_CXL_DEVICE);

    // Device-info and region-info replies: follow the chain they name.
    for info_first in [
        parse_device_info(data).map(|i| i.cap_offset),
        parse_region_info(data).map(|i| i.cap_offset),
    ]
    .into_iter()
    .flatten()
    {
        if let Ok(chain) = parse_cap_chain(data, info_first) {
            for c in &chain {
                let b = cap_bytes(data, &chain, c);
                let _ = CxlDeviceInfo::parse_cap(b);
                let _ = RegionTypeCap::parse(b);
                let _ = SparseMmapCap::parse(b);
                let _ = CompRegsCap::parse(b);
            }
        }
    }

    if let Ok(d) = parse_device_dvsec(data) {
        let mut g = GuestDeviceDvsec::new(&d, 0x10_0000_0000, 1 << 30);
        for w in data.chunks(6) {
            let off = u16::from(w[0]) & 0x3F;
            let size = u32::from(w.get(1).copied().unwrap_or(4) % 5);
            let _ = g.write(off, size, u32_at(w, 2));
            let _ = g.read(off, size);
        }
    }

    // Use the bytes as a write sequence for the register state machines.
    let version = match data.first().copied().unwrap_or(0) % 3 {
        0 => UapiVersion::V2,
        1 => UapiVersion::V3,
        _ => UapiVersion::V4,
    };
    let mut host = HostCompRegs::new(version, 0x38_0000_0000, 1 << 32, true);
    let mut hdvsec = HostDeviceDvsec::new(version, &Default::default());
    if let Ok(mut hdm) = HdmDecoderBlock::new(4, 0x10_0000_0000..0x20_0000_0000) {
        for w in data.chunks(8) {
            let off = u64::from(u32_at(w, 0) & 0x1_FFFC);
            let val = u32_at(w, 4);
            hdm.write(off & 0xFF, 4 << (w[0] & 1), u64::from(val) * 0x1_0001);
            let _ = hdm.read(off & 0xFF, 4);
            let _ = host.write(off, &val.to_le_bytes());
            let mut buf = [0u8; 8];
            let _ = host.read(off, &mut buf[..4 << (w[0] & 1)]);
            let _ = hdvsec.write(
                (off & 0x3F) as u16,
                &val.to_le_bytes()[..usize::from(w[0] & 3) + 1],
            );
        }
        host.reset();
        hdvsec.reset(&Default::default());
        hdm.reset();
    }
});
