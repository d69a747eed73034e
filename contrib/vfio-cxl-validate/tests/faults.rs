// SPDX-License-Identifier: GPL-2.0-or-later

//! The suite can fail: against a correct simulator every check passes,
//! and each of the simulator's fault switches is caught first by the
//! check that judges that part of the contract.

mod common;

use common::{dump, first_failure, Sim};
use vfio_cxl_validate::posting::Posting;
use vfio_cxl_validate::report::Outcome;

/// The checks that do not apply over vfio-user to a host of posting `p`:
/// the kernel-only ones, v4's own rules on v2 and v3, and on v3 the CXL
/// Reset doorbell (kept in the shadow).
fn not_applicable(p: Posting) -> Vec<&'static str> {
    let mut na = vec![
        "iommu_backend",
        "device_info_cap",
        "dma_buf_export",
        "kvm_cacheable_memory",
    ];
    if p != Posting::V4 {
        na.extend(["comp_regs_geometry_cap", "dvsec_cache_wbi", "memory_enable"]);
    }
    if p == Posting::V3 {
        na.push("cxl_reset_doorbell");
    }
    na
}

/// Every mode the simulator has.
const MODES: [(&[&str], Posting); 4] = [
    (&["--uapi", "v2"], Posting::V2),
    (&["--uapi", "v3"], Posting::V3),
    (&["--uapi", "v4"], Posting::V4),
    (&["--uapi", "v4", "--v4-region-type", "early"], Posting::V4),
];

#[test]
fn a_correct_host_passes_in_every_mode() {
    for (args, posting) in MODES {
        let na = not_applicable(posting);
        let sim = Sim::start(args);
        let (r, summary) = sim.suite(Some(&posting.to_string()));
        let text = dump(&r);
        assert!(!r.failed(), "{args:?}:\n{text}");
        assert_eq!(summary.unwrap().posting, posting);
        for l in &r.lines {
            let want = if na.contains(&l.name) {
                Outcome::NotApplicable
            } else {
                Outcome::Pass
            };
            assert_eq!(l.outcome, want, "{args:?}: {l}");
        }
        assert_eq!(r.lines.len(), 30, "{args:?}:\n{text}");
    }
}

/// Runs the suite against a simulator started with `args` and checks
/// that `check` is the first to fail.
fn caught_by(args: &[&str], check: &str) -> String {
    let sim = Sim::start(args);
    let (r, _) = sim.suite(None);
    let text = dump(&r);
    assert_eq!(first_failure(&r), Some(check), "{args:?}:\n{text}");
    text
}

/// `caught_by` for `switch` under every posting.
fn caught_in_every_posting(switch: &[&str], check: &str) {
    for v in ["v2", "v3", "v4"] {
        let mut args = vec!["--uapi", v];
        args.extend_from_slice(switch);
        caught_by(&args, check);
    }
}

#[test]
fn each_switch_is_caught_by_its_check() {
    for (switch, check) in [
        (&["--fault", "no-comp-regs"][..], "regions_by_subtype"),
        (&["--fault", "no-memory"], "regions_by_subtype"),
        (&["--fault", "comp-regs-size-mismatch"], "comp_regs_region"),
        (&["--fault", "cap-chain-loop"], "region_cap_chain"),
        (&["--fault", "memory-smaller-than-decoder"], "memory_region"),
        (&["--decoder", "uncommitted"], "hdm_decoder0"),
        (&["--fault", "no-flr"], "flr"),
    ] {
        caught_in_every_posting(switch, check);
    }
}

#[test]
fn failing_resets() {
    for v in ["v2", "v3"] {
        caught_by(&["--uapi", v, "--fault", "reset-fails"], "device_reset");
    }
    // v4: every reset path fails, the doorbell reporting Reset Error.
    let sim = Sim::start(&["--uapi", "v4", "--fault", "reset-fails"]);
    let (r, _) = sim.suite(None);
    for check in ["device_reset", "flr", "cxl_reset_doorbell"] {
        assert_eq!(
            r.outcome(check),
            Some(Outcome::Fail),
            "{check}:\n{}",
            dump(&r)
        );
    }
    assert_eq!(first_failure(&r), Some("device_reset"), "{}", dump(&r));
}

#[test]
fn a_failing_reset_at_open() {
    let text = caught_by(
        &["--uapi", "v4", "--fault", "open-reset-fails"],
        "device_open",
    );
    assert_eq!(
        text.lines().count(),
        1,
        "nothing runs after a failed open:\n{text}"
    );
}

#[test]
fn no_function_level_reset_is_named() {
    let text = caught_by(&["--uapi", "v3", "--fault", "no-flr"], "flr");
    assert!(text.contains("do not offer FLR"), "{text}");
}

#[test]
fn a_dropped_connection() {
    let sim = Sim::start(&["--uapi", "v3", "--fault", "drop-after=60"]);
    let (r, _) = sim.suite(None);
    let text = dump(&r);
    let first = r
        .lines
        .iter()
        .find(|l| l.outcome == Outcome::Fail)
        .expect(&text);
    // The break is named where it happens, and the run ends.
    assert!(first.detail.to_lowercase().contains("transport"), "{text}");
    assert_eq!(r.lines.len(), 30, "{text}");
}

#[test]
fn the_wrong_posting_expected() {
    let sim = Sim::start(&["--uapi", "v3"]);
    let (r, _) = sim.suite(Some("v4"));
    assert_eq!(first_failure(&r), Some("interface_version"), "{}", dump(&r));
}
