// SPDX-License-Identifier: GPL-2.0-or-later

//! The host contract: what a conforming vfio-pci CXL host provides, in
//! the order the kernel series' selftest checks it (device, regions,
//! `COMP_REGS`, the component BAR, memory, the DVSEC, resets), with the
//! rules that differ per posting.  Every check records one line.
//!
//! Checks that write (registers, memory, doorbells) or reset run only
//! with `--yes`; without it they say what they would do.

mod config;
mod discovery;
mod memory;
mod registers;
mod reset;

use crate::host::{Host, HostResult, RegionInfo};
use crate::posting::Posting;
use crate::report::{Report, Verdict};

pub use discovery::Found;

/// How the suite runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Allow writes to registers and device memory, and resets.
    pub yes: bool,
    /// Fail unless the host speaks this posting.
    pub expect: Option<Posting>,
}

/// What the suite learnt, for the QEMU-side checks and the report.
#[derive(Debug, Clone)]
pub struct Summary {
    pub posting: Posting,
    pub memory_size: u64,
    /// The memory region's index.
    pub memory_region: u32,
}

/// The context every check gets.
pub struct Suite<'a> {
    pub host: &'a mut dyn Host,
    pub opts: &'a Options,
    pub report: &'a mut Report,
}

impl Suite<'_> {
    /// Records `v`; returns whether it passed.
    fn record(&mut self, name: &'static str, v: Verdict) -> bool {
        self.report.record(name, v)
    }

    /// Runs `body` only with `--yes`; else records what it would do.
    fn mutating(
        &mut self,
        name: &'static str,
        would: &str,
        body: impl FnOnce(&mut Self) -> Verdict,
    ) -> bool {
        if self.opts.yes {
            let v = body(self);
            self.record(name, v)
        } else {
            self.record(
                name,
                Verdict::NotApplicable(format!("not run: would {would} (run with --yes)")),
            )
        }
    }

    /// Records `name` as not applicable, saying `why`, unless the host
    /// speaks v4; returns whether it does.
    fn v4_only(&mut self, name: &'static str, p: Posting, why: &str) -> bool {
        if p == Posting::V4 {
            return true;
        }
        self.record(name, Verdict::NotApplicable(format!("{p}: {why}")));
        false
    }

    fn region(&mut self, index: u32) -> HostResult<RegionInfo> {
        self.host.region_info(index)
    }
}

/// Records `device_open` for `opened`, then, if it opened, every check.
/// Returns what was learnt when discovery succeeded.
pub fn run(
    opened: HostResult<&mut dyn Host>,
    opts: &Options,
    report: &mut Report,
) -> Option<Summary> {
    let host = match opened {
        Ok(h) => h,
        Err(e) => {
            report.record(
                "device_open",
                Verdict::Fail(format!("the host refused the device: {e}")),
            );
            return None;
        }
    };
    let what = host.describe();
    report.record("device_open", Verdict::Pass(what));
    let mut s = Suite { host, opts, report };
    let found = discovery::run(&mut s)?;
    registers::run(&mut s, &found);
    config::run(&mut s, &found);
    memory::run(&mut s, &found);
    reset::run(&mut s, &found);
    Some(Summary {
        posting: found.posting,
        memory_size: found.mem.size,
        memory_region: found.mem.index,
    })
}
