// SPDX-License-Identifier: GPL-2.0-or-later

//! The CXL Device DVSEC: its body, and what writes do per posting.

use super::{Found, Suite};
use crate::host::HostResult;
use crate::layout::{dvsec, CONFIG_REGION};
use crate::posting::Posting;
use crate::report::{verdict, Verdict};

pub fn run(s: &mut Suite<'_>, f: &Found) {
    dvsec_body(s, f);
    dvsec_writes(s, f);
    dvsec_cache_wbi(s, f);
}

pub fn dvsec16(s: &mut Suite<'_>, f: &Found, reg: u64) -> HostResult<u16> {
    s.host.read_u16(CONFIG_REGION, f.dvsec.offset + reg)
}

pub fn set_dvsec16(s: &mut Suite<'_>, f: &Found, reg: u64, v: u16) -> HostResult<()> {
    s.host.write_u16(CONFIG_REGION, f.dvsec.offset + reg, v)
}

/// `dvsec_body`: `Mem_Capable`, one HDM range, Range 1 valid and active
/// with a size in 256 MiB units; single-byte reads work.
fn dvsec_body(s: &mut Suite<'_>, f: &Found) {
    let o = f.dvsec.offset;
    let cap = dvsec16(s, f, dvsec::CAPABILITY);
    let lo = s.host.read_u32(CONFIG_REGION, o + dvsec::RANGE1_SIZE_LO);
    let hi = s.host.read_u32(CONFIG_REGION, o + dvsec::RANGE1_SIZE_HI);
    let byte = s.host.read(CONFIG_REGION, o + dvsec::LOCK, 1);
    let (Ok(cap), Ok(lo), Ok(hi), Ok(byte)) = (cap, lo, hi, byte) else {
        s.record(
            "dvsec_body",
            Verdict::Fail("config reads of the DVSEC failed".into()),
        );
        return;
    };
    let hdm_count = (cap >> dvsec::CAP_HDM_COUNT_SHIFT) & 3;
    let size = crate::pci::addr(hi, lo);
    let valid_active = dvsec::RANGE_INFO_VALID | dvsec::RANGE_ACTIVE;
    s.record(
        "dvsec_body",
        verdict(
            cap & dvsec::CAP_MEM_CAPABLE != 0
                && hdm_count == 1
                && lo & valid_active == valid_active
                && size != 0
                && size % crate::layout::component::GRANULE == 0
                && byte.len() == 1,
            format!(
                "capability {cap:#06x} (Mem_Capable {}, HDM_Count {hdm_count}), range 1 size {size:#x} \
                 low {lo:#010x}, 1-byte read at +0x14 gave {byte:02x?}",
                u8::from(cap & dvsec::CAP_MEM_CAPABLE != 0),
            ),
        ),
    );
}

/// `dvsec_writes`: Capability (and, v4, Status and Lock) ignore writes;
/// Control takes them into the host's shadow (v3 until locked, v4
/// always).  v2 forwards Control to the device, so only Capability is
/// written there.  Restores Control.
fn dvsec_writes(s: &mut Suite<'_>, f: &Found) {
    let would = "write the DVSEC's Capability, and toggle Control's Cache_Enable and back";
    s.mutating("dvsec_writes", would, |s| {
        let mut seen = Vec::new();
        let mut ok = true;
        let mut fixed = vec![("Capability", dvsec::CAPABILITY)];
        if f.posting == Posting::V4 {
            fixed.push(("Status", dvsec::STATUS));
            fixed.push(("Lock", dvsec::LOCK));
        }
        for (name, reg) in fixed {
            let before = dvsec16(s, f, reg);
            let w = set_dvsec16(s, f, reg, 0xFFFF);
            let after = dvsec16(s, f, reg);
            ok &= before.is_ok() && w.is_ok() && before == after;
            seen.push(format!("{name} {before:x?} -> {after:x?} after writing 0xffff"));
        }
        if f.posting != Posting::V2 {
            let locked = dvsec16(s, f, dvsec::LOCK).map(|l| l & dvsec::LOCK_CONFIG != 0);
            let ctrl = dvsec16(s, f, dvsec::CONTROL);
            if let (Ok(locked), Ok(ctrl)) = (locked, ctrl) {
                let toggled = ctrl ^ dvsec::CTRL_CACHE_ENABLE;
                let _ = set_dvsec16(s, f, dvsec::CONTROL, toggled);
                let after = dvsec16(s, f, dvsec::CONTROL);
                let _ = set_dvsec16(s, f, dvsec::CONTROL, ctrl);
                let want = if f.posting == Posting::V3 && locked { ctrl } else { toggled };
                ok &= after == Ok(want);
                seen.push(format!(
                    "Control {ctrl:#06x} -> {after:x?} after toggling Cache_Enable (locked {locked}, want {want:#06x})"
                ));
            } else {
                ok = false;
                seen.push("Control or Lock read failed".into());
            }
        }
        verdict(ok, format!("{}: {}", f.posting, seen.join("; ")))
    });
}

/// `dvsec_cache_wbi`: v4 completes Initiate Cache WBI at once (Status2
/// Cache Invalid).  v2 forwards it to the device and v3 keeps it in the
/// shadow: not judged there.
fn dvsec_cache_wbi(s: &mut Suite<'_>, f: &Found) {
    if !s.v4_only(
        "dvsec_cache_wbi",
        f.posting,
        "the host does not synthesize WBI completion",
    ) {
        return;
    }
    s.mutating(
        "dvsec_cache_wbi",
        "write Control2 Initiate Cache WBI",
        |s| {
            let w = set_dvsec16(s, f, dvsec::CONTROL2, dvsec::CTRL2_INITIATE_WBI);
            let st2 = dvsec16(s, f, dvsec::STATUS2);
            verdict(
                w.is_ok()
                    && st2
                        .as_ref()
                        .is_ok_and(|v| v & dvsec::ST2_CACHE_INVALID != 0),
                format!("Control2 WBI write {w:?}; Status2 {st2:x?} (Cache Invalid is bit 0)"),
            )
        },
    );
}
