// SPDX-License-Identifier: GPL-2.0-or-later

//! Placement invariants over random sequences of hot-plug and unplug:
//! no two devices overlap, every device lies inside its window on a
//! 256 MiB boundary, no host bridge routes more devices than it has
//! decoders, and the same sequence always gives the same addresses.

use cxl_model::placement::{place, PlacedDevice, PlacementRequest};
use cxl_model::window::FixedWindow;
use proptest::prelude::*;

const MIB: u64 = 1 << 20;
const GRANULE: u64 = 256 * MIB;

fn windows() -> Vec<FixedWindow> {
    (0..3)
        .map(|i| FixedWindow {
            index: i,
            base: 0x10_0000_0000 * (i as u64 + 1),
            size: GRANULE * (8 + 4 * i as u64),
            targets: vec![format!("hb{i}")],
            interleave_granularity: 256,
        })
        .collect()
}

#[derive(Clone, Debug)]
enum Op {
    Plug { hb: usize, granules: u64 },
    Unplug(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..3, 1u64..6).prop_map(|(hb, granules)| Op::Plug { hb, granules }),
        (0usize..8).prop_map(Op::Unplug),
    ]
}

fn run(ops: &[Op]) -> Vec<PlacedDevice> {
    let w = windows();
    let mut placed: Vec<PlacedDevice> = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        match *op {
            Op::Plug { hb, granules } => {
                let name = format!("dev{n}");
                let host_bridge = format!("hb{hb}");
                let req = PlacementRequest {
                    name: &name,
                    host_bridge: &host_bridge,
                    root_port: 0,
                    requested_window: None,
                    memory_size: granules * GRANULE,
                    host_bridge_decoders: 4,
                };
                if let Ok(d) = place(&w, &placed, &req) {
                    placed.push(d);
                }
            }
            Op::Unplug(i) => {
                if i < placed.len() {
                    placed.remove(i);
                }
            }
        }
    }
    placed
}

proptest! {
    #[test]
    fn placements_never_overlap_and_stay_in_their_windows(ops in prop::collection::vec(op(), 0..40)) {
        let placed = run(&ops);
        let w = windows();
        for (i, a) in placed.iter().enumerate() {
            let win = &w[a.window.index];
            prop_assert!(a.base >= win.base && a.base + a.size <= win.base + win.size);
            prop_assert_eq!(a.base % GRANULE, 0);
            prop_assert_eq!(a.host_bridge.clone(), win.targets[0].clone());
            for b in &placed[i + 1..] {
                prop_assert!(a.range().end <= b.base || b.range().end <= a.base,
                             "{:?} overlaps {:?}", a, b);
            }
        }
        for hb in ["hb0", "hb1", "hb2"] {
            prop_assert!(placed.iter().filter(|d| d.host_bridge == hb).count() <= 4);
        }
        prop_assert_eq!(run(&ops), placed, "deterministic");
    }
}
