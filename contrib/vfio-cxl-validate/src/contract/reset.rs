// SPDX-License-Identifier: GPL-2.0-or-later

//! Resets: `VFIO_DEVICE_RESET`, an FLR written to Device Control, and
//! (v2, v4) the DVSEC's CXL Reset doorbell; what each leaves of the
//! decoder and the memory, per posting.

use std::thread::sleep;
use std::time::{Duration, Instant};

use super::config::{dvsec16, set_dvsec16};
use super::memory::{ensure_memory_served, memory_enabled};
use super::registers::{decoder_as_presented, read_decoder};
use super::{Found, Suite};
use crate::layout::{device_flags, dvsec, pci, CONFIG_REGION};
use crate::posting::Posting;
use crate::report::{verdict, Verdict};

/// Device memory offset of the marker a reset must keep (v2, v3) or
/// clear (v4).
const MARKER_AT: u64 = 0x2000;

pub fn run(s: &mut Suite<'_>, f: &Found) {
    device_reset(s, f);
    flr(s, f);
    cxl_reset_doorbell(s, f);
}

/// Writes the marker, runs `trigger`, then judges the decoder and the
/// memory as the posting leaves them.
fn around_reset(
    s: &mut Suite<'_>,
    f: &Found,
    marker: u32,
    trigger: impl FnOnce(&mut Suite<'_>) -> Result<String, String>,
) -> Verdict {
    if let Err(e) = ensure_memory_served(s, f) {
        return Verdict::Fail(format!("setting Memory Space Enable: {e}"));
    }
    if let Err(e) = s.host.write_u32(f.mem.index, MARKER_AT, marker) {
        return Verdict::Fail(format!("writing the marker: {e}"));
    }
    let how = match trigger(s) {
        Ok(h) => h,
        Err(e) => return Verdict::Fail(e),
    };
    let mut problems = Vec::new();
    let dec = read_decoder(s, f);
    match &dec {
        Ok(d) => {
            if let Err(e) = decoder_as_presented(f.posting, d) {
                problems.push(format!("decoder 0 after reset: {e}"));
            }
        }
        Err(e) => problems.push(format!("decoder 0 read: {e}")),
    }
    let mse = memory_enabled(s);
    let after = s.host.read_u32(f.mem.index, MARKER_AT);
    let (want, kept) = if f.posting == Posting::V4 {
        (0, "cleared")
    } else {
        (marker, "kept")
    };
    if after != Ok(want) {
        problems.push(format!(
            "memory at {MARKER_AT:#x} reads {after:x?}, want {want:#x} ({kept})"
        ));
    }
    if f.posting == Posting::V4 && mse != Ok(true) {
        problems.push(format!("Memory Space Enable not kept: {mse:?}"));
    }
    let seen = format!(
        "{how}; decoder 0 {}; marker {marker:#x} -> {after:x?} (memory {kept} by {}); MSE {mse:?}",
        dec.map_or_else(|e| e.to_string(), |d| d.to_string()),
        f.posting
    );
    if problems.is_empty() {
        Verdict::Pass(seen)
    } else {
        Verdict::Fail(format!("{seen}: {}", problems.join("; ")))
    }
}

/// `device_reset`: `VFIO_DEVICE_RESET` (the device flags must offer it).
fn device_reset(s: &mut Suite<'_>, f: &Found) {
    if f.device_flags & device_flags::RESET == 0 {
        s.record(
            "device_reset",
            Verdict::Fail(format!(
                "device flags {:#x} lack VFIO_DEVICE_FLAGS_RESET",
                f.device_flags
            )),
        );
        return;
    }
    s.mutating(
        "device_reset",
        "reset the device (VFIO_DEVICE_RESET)",
        |s| {
            around_reset(s, f, 0x5EED_0001, |s| {
                s.host
                    .reset()
                    .map(|()| "VFIO_DEVICE_RESET ok".to_owned())
                    .map_err(|e| format!("VFIO_DEVICE_RESET: {e}"))
            })
        },
    );
}

/// `flr`: Device Capabilities offers Function Level Reset (the guest's
/// way to reset the function), and a write of Initiate FLR to Device
/// Control resets it; the bit reads back 0.
fn flr(s: &mut Suite<'_>, f: &Found) {
    let Some(exp) = f.pcie else {
        s.record("flr", Verdict::Fail("no PCI Express capability".into()));
        return;
    };
    let devcap = s.host.read_u32(CONFIG_REGION, exp + pci::EXP_DEVCAP);
    if !devcap.as_ref().is_ok_and(|c| c & pci::EXP_DEVCAP_FLR != 0) {
        s.record(
            "flr",
            Verdict::Fail(format!(
                "Device Capabilities {devcap:x?} at {:#x} do not offer FLR: a guest cannot reset the function",
                exp + pci::EXP_DEVCAP
            )),
        );
        return;
    }
    s.mutating("flr", "write Initiate FLR to Device Control", |s| {
        around_reset(s, f, 0x5EED_0002, |s| {
            let at = exp + pci::EXP_DEVCTL;
            let ctl = s
                .host
                .read_u16(CONFIG_REGION, at)
                .map_err(|e| e.to_string())?;
            s.host
                .write_u16(CONFIG_REGION, at, ctl | pci::EXP_DEVCTL_FLR)
                .map_err(|e| format!("Device Control write: {e}"))?;
            let back = s
                .host
                .read_u16(CONFIG_REGION, at)
                .map_err(|e| e.to_string())?;
            if back & pci::EXP_DEVCTL_FLR != 0 {
                return Err(format!(
                    "Device Control reads {back:#06x}: Initiate FLR latched"
                ));
            }
            Ok(format!(
                "Device Control {ctl:#06x} | FLR written, reads {back:#06x}"
            ))
        })
    });
}

/// Rings Control2 Initiate CXL Reset and waits (at most 10 s, the
/// longest CXL Reset Timeout) for Status2 to report the outcome, which
/// must be Reset Complete without Reset Error.
fn ring_cxl_reset(s: &mut Suite<'_>, f: &Found) -> Result<String, String> {
    let ctl2 = dvsec16(s, f, dvsec::CONTROL2).map_err(|e| e.to_string())?;
    set_dvsec16(
        s,
        f,
        dvsec::CONTROL2,
        ctl2 | dvsec::CTRL2_INITIATE_CXL_RESET,
    )
    .map_err(|e| format!("Control2 write: {e}"))?;
    let outcome = dvsec::ST2_RESET_COMPLETE | dvsec::ST2_RESET_ERROR;
    let t0 = Instant::now();
    loop {
        let st2 = dvsec16(s, f, dvsec::STATUS2).map_err(|e| e.to_string())?;
        if st2 & outcome == dvsec::ST2_RESET_COMPLETE {
            return Ok(format!(
                "Status2 {st2:#06x} (Reset Complete) after {:?}",
                t0.elapsed()
            ));
        }
        if st2 & outcome != 0 || t0.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "Status2 {st2:#06x} after {:?}: want Reset Complete without Reset Error",
                t0.elapsed()
            ));
        }
        sleep(Duration::from_millis(10));
    }
}

/// `cxl_reset_doorbell`: Control2 Initiate CXL Reset.  v4 runs a CXL
/// reset (memory cleared, decoder restored) and reports it in Status2;
/// v2 forwards the doorbell to the device, whose Status2 reports, and
/// re-reads the decoder.  v3 keeps Control2 in its shadow.
fn cxl_reset_doorbell(s: &mut Suite<'_>, f: &Found) {
    const NAME: &str = "cxl_reset_doorbell";
    if f.posting == Posting::V3 {
        let why = "v3 keeps Control2 in its shadow; no reset to observe";
        s.record(NAME, Verdict::NotApplicable(why.into()));
        return;
    }
    let cap = dvsec16(s, f, dvsec::CAPABILITY);
    if !cap
        .as_ref()
        .is_ok_and(|c| c & dvsec::CAP_CXL_RESET_CAPABLE != 0)
    {
        let v = if f.posting == Posting::V4 {
            Verdict::Fail(format!(
                "DVSEC Capability {cap:x?} lacks CXL Reset Capable (v4 binds only such devices)"
            ))
        } else {
            Verdict::NotApplicable(format!("DVSEC Capability {cap:x?}: not CXL Reset capable"))
        };
        s.record(NAME, v);
        return;
    }
    s.mutating(NAME, "ring Control2 Initiate CXL Reset", |s| {
        if f.posting == Posting::V4 {
            return around_reset(s, f, 0x5EED_0003, |s| ring_cxl_reset(s, f));
        }
        let rung = ring_cxl_reset(s, f);
        let dec = read_decoder(s, f);
        let presented = dec
            .as_ref()
            .map_err(ToString::to_string)
            .and_then(|d| decoder_as_presented(f.posting, d));
        let seen = format!(
            "{}; decoder 0 {}",
            rung.as_ref().unwrap_or_else(|e| e),
            dec.as_ref()
                .map_or_else(ToString::to_string, ToString::to_string)
        );
        verdict(rung.is_ok() && presented.is_ok(), seen)
    });
}
