// SPDX-License-Identifier: GPL-2.0-or-later

//! `COMP_REGS` (access rules, decoder 0, what writes do) and the
//! component BAR (sparse-mmap areas, the trapped part).

use super::{Found, Suite};
use crate::caps;
use crate::decoder::Decoder;
use crate::host::{le32, le64, HostError, HostResult};
use crate::layout::component::{
    BLOCK_SIZE, CAP_ARRAY, CTRL_COMMITTED, CTRL_ERROR_NOT_COMMITTED, CTRL_LOCK_ON_COMMIT,
    DEC_BASE_LO, DEC_CTRL, GRANULE, HDM_DECODER0,
};
use crate::layout::{
    dvsec, region_cap, region_flags, CONFIG_REGION, EINVAL, REGION_INFO_CAP_OFFSET,
};
use crate::pci::addr;
use crate::posting::Posting;
use crate::report::{verdict, Verdict};

pub fn run(s: &mut Suite<'_>, f: &Found) {
    comp_regs_access(s, f);
    hdm_decoder0(s, f);
    hdm_decoder_writes(s, f);
    comp_bar_sparse_mmap(s, f);
    comp_bar_trap(s, f);
}

/// Reads decoder 0 through `COMP_REGS`, dword by dword (every posting
/// takes 4-byte accesses).
pub fn read_decoder(s: &mut Suite<'_>, f: &Found) -> HostResult<Decoder> {
    Decoder::read(|reg| s.host.read_u32(f.comp.index, f.dec0(reg)))
}

/// Whether decoder 0 is what the posting presents after open or reset.
pub fn decoder_as_presented(p: Posting, d: &Decoder) -> Result<(), String> {
    let committed = d.ctrl & CTRL_COMMITTED != 0 && d.ctrl & CTRL_ERROR_NOT_COMMITTED == 0;
    let locked = d.ctrl & CTRL_LOCK_ON_COMMIT != 0;
    let sized = d.size != 0 && d.size % GRANULE == 0;
    let problem = if !committed {
        Some("not COMMITTED (host firmware must commit decoder 0)")
    } else if !sized {
        Some("size not a non-zero multiple of 256 MiB")
    } else {
        match p {
            Posting::V2 if locked || d.base != 0 => {
                Some("v2 presents BASE 0 and LOCK_ON_COMMIT clear (the VMM writes BASE)")
            }
            Posting::V3 | Posting::V4 if !locked => Some("LOCK_ON_COMMIT clear"),
            Posting::V3 | Posting::V4 if d.base == 0 || d.base % GRANULE != 0 => {
                Some("BASE (the host address) zero or not 256 MiB aligned")
            }
            _ => None,
        }
    };
    problem.map_or(Ok(()), |why| Err(why.to_owned()))
}

fn errno_of(r: &HostResult<Vec<u8>>) -> String {
    match r {
        Ok(b) => format!("{} bytes", b.len()),
        Err(HostError::Errno(e)) => format!("errno {e}"),
        Err(e) => e.to_string(),
    }
}

/// `comp_regs_access`: the posting's access rules (sizes, alignment,
/// range), reads only.
fn comp_regs_access(s: &mut Suite<'_>, f: &Found) {
    let c = f.comp.index;
    let end = f.comp.size;
    // (offset, length, accepted)
    let cases: Vec<(u64, usize, bool)> = match f.posting {
        Posting::V2 => vec![
            (0, 4, true),
            (0, 1, false),
            (0, 2, false),
            (0, 8, false),
            (2, 4, false),
        ],
        Posting::V3 => vec![
            (CAP_ARRAY, 4, true),
            (CAP_ARRAY, 8, true),
            (CAP_ARRAY, 64, true),
            (CAP_ARRAY, 2, false),
            (CAP_ARRAY + 2, 4, false),
            (CAP_ARRAY, 6, false),
            (end - 4, 8, false),
        ],
        Posting::V4 => vec![
            (0, end as usize, true),
            (1, 4, false),
            (0, 2, false),
            (0, 6, false),
            (2, 4, false),
            (end, 4, false),
            (0x1000, 4, false),
        ],
    };
    let mut seen = Vec::new();
    let mut bad = Vec::new();
    for (off, len, ok) in cases {
        let r = s.host.read(c, off, len);
        let good = if ok {
            r.as_ref().is_ok_and(|b| b.len() == len)
        } else {
            r.as_ref().err().and_then(HostError::errno) == Some(EINVAL)
        };
        let line = format!("{len}@{off:#x}: {}", errno_of(&r));
        if !good {
            bad.push(format!(
                "{line} (want {})",
                if ok { "data" } else { "EINVAL" }
            ));
        }
        seen.push(line);
    }
    if f.posting == Posting::V3 {
        // Below the capability array the shadow reads 0.
        match s.host.read_u32(c, 0x10) {
            Ok(0) => seen.push("0x10 reads 0".into()),
            other => bad.push(format!("0x10 reads {other:x?}, want 0")),
        }
    }
    s.record(
        "comp_regs_access",
        if bad.is_empty() {
            Verdict::Pass(format!("{}: {}", f.posting, seen.join(", ")))
        } else {
            Verdict::Fail(bad.join("; "))
        },
    );
}

/// The DVSEC's Range 1 size, the size the host's firmware set up.
pub fn dvsec_range1_size(s: &mut Suite<'_>, f: &Found) -> HostResult<u64> {
    let hi = s
        .host
        .read_u32(CONFIG_REGION, f.dvsec.offset + dvsec::RANGE1_SIZE_HI)?;
    let lo = s
        .host
        .read_u32(CONFIG_REGION, f.dvsec.offset + dvsec::RANGE1_SIZE_LO)?;
    Ok(addr(hi, lo))
}

/// `hdm_decoder0`: committed as the posting presents it, of the size
/// of the DVSEC's Range 1.
fn hdm_decoder0(s: &mut Suite<'_>, f: &Found) {
    let d = match read_decoder(s, f) {
        Ok(d) => d,
        Err(e) => {
            s.record(
                "hdm_decoder0",
                Verdict::Fail(format!("COMP_REGS read: {e}")),
            );
            return;
        }
    };
    let range = dvsec_range1_size(s, f).unwrap_or(0);
    let v = match decoder_as_presented(f.posting, &d) {
        Ok(()) if d.size == range => Verdict::Pass(format!("{d}; DVSEC range 1 {range:#x}")),
        Ok(()) => Verdict::Fail(format!("{d}: size differs from DVSEC range 1 {range:#x}")),
        Err(e) => Verdict::Fail(format!("{d}: {e}")),
    };
    s.record("hdm_decoder0", v);
}

/// `hdm_decoder_writes`: what writes do to decoder 0 (v2: BASE takes
/// the VMM's address; v3: BASE writes dropped while committed; v4: every
/// write absorbed).  Restores what it changed.
fn hdm_decoder_writes(s: &mut Suite<'_>, f: &Found) {
    let would = "write decoder 0's BASE (and, v4, CTRL) through COMP_REGS";
    s.mutating("hdm_decoder_writes", would, |s| {
        let c = f.comp.index;
        let before = match read_decoder(s, f) {
            Ok(d) => d,
            Err(e) => return Verdict::Fail(e.to_string()),
        };
        match f.posting {
            Posting::V2 => {
                let guest = 0x3000_0000u32;
                let w = s.host.write_u32(c, f.dec0(DEC_BASE_LO), guest);
                let back = s.host.read_u32(c, f.dec0(DEC_BASE_LO));
                let restore = s.host.write_u32(c, f.dec0(DEC_BASE_LO), 0);
                verdict(
                    w.is_ok() && back == Ok(guest) && restore.is_ok(),
                    format!("BASE_LO write {guest:#x}: {w:?}, reads back {back:x?}; restored to 0"),
                )
            }
            Posting::V3 => {
                let w = s.host.write(c, f.dec0(DEC_BASE_LO), &[0; 8]);
                let after = read_decoder(s, f);
                verdict(
                    w.is_ok() && after.as_ref() == Ok(&before),
                    format!("8-byte zero write at BASE: {w:?}; before {before}, after {after:x?}"),
                )
            }
            Posting::V4 => {
                let all = s.host.read(c, 0, f.comp.size as usize);
                let w1 = s.host.write_u32(c, f.dec0(DEC_CTRL), 0);
                let w2 = s.host.write_u32(c, f.dec0(DEC_BASE_LO), 0x3000_0000);
                let w3 = s.host.write(c, 0, &vec![0; f.comp.size as usize]);
                let again = s.host.read(c, 0, f.comp.size as usize);
                verdict(
                    all.is_ok() && all == again && w1.is_ok() && w2.is_ok() && w3.is_ok(),
                    format!(
                        "CTRL, BASE and whole-region writes: {w1:?} {w2:?} {w3:?}; region unchanged: {}; {before}",
                        all.is_ok() && all == again
                    ),
                )
            }
        }
    });
}

/// The BAR's sparse-mmap areas (offset, size).
fn sparse_areas(raw: &[u8]) -> Option<Vec<(u64, u64)>> {
    let first = le32(raw, REGION_INFO_CAP_OFFSET) as usize;
    let cap = caps::find(raw, first, region_cap::SPARSE_MMAP)?;
    let n = le32(cap.bytes, 8) as usize;
    Some(
        (0..n)
            .map(|i| (le64(cap.bytes, 16 + 16 * i), le64(cap.bytes, 24 + 16 * i)))
            .collect(),
    )
}

/// The part of the BAR the host traps: the whole block (v2, v3), the
/// page(s) holding the HDM structure (v4).
fn trapped(f: &Found) -> (u64, u64) {
    match f.posting {
        Posting::V2 | Posting::V3 => (f.block, f.block + BLOCK_SIZE),
        Posting::V4 => {
            let start = f.hdm_in_bar() & !0xFFF;
            let end = (f.hdm_in_bar() + f.comp.size + 0xFFF) & !0xFFF;
            (start, end)
        }
    }
}

/// `comp_bar_sparse_mmap`: the component BAR is mmap-able outside the
/// trapped part, in page-aligned areas that never overlap it.
fn comp_bar_sparse_mmap(s: &mut Suite<'_>, f: &Found) {
    let bar = match s.region(f.bar) {
        Ok(b) => b,
        Err(e) => {
            s.record(
                "comp_bar_sparse_mmap",
                Verdict::Fail(format!("BAR {}: {e}", f.bar)),
            );
            return;
        }
    };
    let (ts, te) = trapped(f);
    let v = match sparse_areas(&bar.raw) {
        None => Verdict::Fail(format!(
            "BAR {} (flags {:#x}, {:#x} bytes) has no sparse-mmap capability",
            f.bar, bar.flags, bar.size
        )),
        Some(areas) => {
            let ok = bar.flags & region_flags::MMAP != 0
                && !areas.is_empty()
                && areas.iter().all(|&(o, n)| {
                    o % 4096 == 0 && n % 4096 == 0 && o + n <= bar.size && (o + n <= ts || o >= te)
                });
            verdict(
                ok,
                format!(
                    "BAR {} flags {:#x} size {:#x}, areas {areas:x?}, trapped {ts:#x}-{te:#x}",
                    f.bar, bar.flags, bar.size
                ),
            )
        }
    };
    s.record("comp_bar_sparse_mmap", v);
}

/// `comp_bar_trap`: raw BAR access to the trapped part (v2, v3: refused
/// with EINVAL; v4: HDM reads all ones, writes dropped).
fn comp_bar_trap(s: &mut Suite<'_>, f: &Found) {
    let b = f.bar;
    let v = match f.posting {
        Posting::V2 | Posting::V3 => {
            let r1 = s.host.read(b, f.block, 4);
            let r2 = s.host.read(b, f.block + BLOCK_SIZE - 4, 4);
            let refused = |r: &HostResult<Vec<u8>>| {
                r.as_ref().err().and_then(HostError::errno) == Some(EINVAL)
            };
            verdict(
                refused(&r1) && refused(&r2),
                format!(
                    "BAR {b} reads at block start {:#x}: {}, block end: {}",
                    f.block,
                    errno_of(&r1),
                    errno_of(&r2)
                ),
            )
        }
        Posting::V4 => {
            let ctrl_at = f.hdm_in_bar() + HDM_DECODER0 + DEC_CTRL;
            let r = s.host.read_u32(b, ctrl_at);
            let mut detail = format!("BAR {b} read of decoder 0 CTRL at {ctrl_at:#x}: {r:x?}");
            let mut ok = r == Ok(u32::MAX);
            if s.opts.yes {
                let w = s.host.write_u32(b, ctrl_at, 0);
                let again = s.host.read_u32(b, ctrl_at);
                detail += &format!("; write 0: {w:?}, then reads {again:x?}");
                ok &= w.is_ok() && again == Ok(u32::MAX);
            }
            verdict(ok, detail)
        }
    };
    s.record("comp_bar_trap", v);
}
