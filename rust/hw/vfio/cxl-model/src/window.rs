// SPDX-License-Identifier: GPL-2.0-or-later

//! Choosing the CXL fixed memory window the device memory goes into, and the
//! host bridge HDM decoder that routes it.
//!
//! The guest reaches CXL memory through a fixed memory window (QEMU's
//! `cxl-fmw.N`): a host physical range whose accesses the platform sends to
//! one or more host bridges.  The device memory is placed at the base of the
//! one window whose only target is the host bridge above the device (or the
//! one the device names); [`crate::placement`] gives each device its range
//! in it and the host bridge decoders that route it.
//!
//! Choices (each has a test):
//! - Without a requested window, exactly one window must have the host
//!   bridge as its only target.  Several such windows are refused even when
//!   some are already in use, so that the choice never depends on the order
//!   in which devices are realized: the user names one with a property.
//! - A window whose targets include the host bridge among others
//!   interleaves across host bridges, which a single device cannot back;
//!   it is refused by name rather than reported as "no window".
//! - A window may hold several devices' memory; where each goes in it is
//!   [`crate::placement`]'s rule.
//! - Base and size must be multiples of 256 MiB (the HDM decoder
//!   granularity), and the window must not wrap the address space.

use std::fmt;
use std::ops::Range;

use crate::hdm::HDM_GRANULARITY;

/// A byte count shown as hex and in the largest whole binary unit, e.g.
/// `0x10000000 (256 MiB)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u32, &str); 4] = [(60, "EiB"), (50, "PiB"), (40, "TiB"), (30, "GiB")];
        let n = self.0;
        write!(f, "{n:#x}")?;
        for (shift, unit) in UNITS {
            if n >= 1 << shift && n % (1 << shift) == 0 {
                return write!(f, " ({} {unit})", n >> shift);
            }
        }
        if n >= 1 << 20 && n % (1 << 20) == 0 {
            write!(f, " ({} MiB)", n >> 20)
        } else if n >= 1 << 10 && n % (1 << 10) == 0 {
            write!(f, " ({} KiB)", n >> 10)
        } else {
            write!(f, " ({n} bytes)")
        }
    }
}

/// One CXL fixed memory window of the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedWindow {
    /// The window's index (N in `cxl-fmw.N`).
    pub index: usize,
    /// Guest physical base address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
    /// IDs of the host bridges the window interleaves over, in order.
    pub targets: Vec<String>,
    /// Interleave granularity in bytes (irrelevant with one target).
    pub interleave_granularity: u64,
}

/// The window the device memory goes into; the memory starts at `base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChosenWindow {
    /// The window's index.
    pub index: usize,
    /// Guest physical base of the window, where the memory is placed.
    pub base: u64,
    /// Size of the window.
    pub size: u64,
}

impl ChosenWindow {
    /// The guest physical range of the whole window (the range the guest's
    /// HDM decoders may decode into).
    pub fn range(&self) -> Range<u64> {
        self.base..self.base.saturating_add(self.size)
    }
}

/// Why no window could be chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WindowError {
    /// No window targets the host bridge at all.
    NoWindowForHostBridge {
        /// The device's host bridge.
        host_bridge: String,
        /// Indices of the windows the machine has.
        windows: Vec<usize>,
    },
    /// Several windows have the host bridge as their only target.
    SeveralWindows {
        /// The device's host bridge.
        host_bridge: String,
        /// Their indices.
        indices: Vec<usize>,
    },
    /// The window interleaves over several host bridges.
    Interleaved {
        /// The window's index.
        index: usize,
        /// Its targets.
        targets: Vec<String>,
    },
    /// The requested window does not target the device's host bridge.
    NotForHostBridge {
        /// The window's index.
        index: usize,
        /// The device's host bridge.
        host_bridge: String,
        /// The window's targets.
        targets: Vec<String>,
    },
    /// The window is smaller than the device memory.
    TooSmall {
        /// The window's index.
        index: usize,
        /// Its size.
        window_size: u64,
        /// The device memory's size.
        memory_size: u64,
    },
    /// The requested window index does not exist.
    NoSuchWindow {
        /// The index asked for.
        requested: usize,
        /// Indices of the windows the machine has.
        windows: Vec<usize>,
    },
    /// The window base is not a multiple of 256 MiB.
    BaseUnaligned {
        /// The window's index.
        index: usize,
        /// Its base.
        base: u64,
    },
    /// The window size is not a multiple of 256 MiB.
    SizeUnaligned {
        /// The window's index.
        index: usize,
        /// Its size.
        size: u64,
    },
    /// The machine gave the window no guest address (base 0): it found no
    /// room for it in the guest's physical address space, and mapped it
    /// over whatever lives at address 0.
    NotPlaced {
        /// The window's index.
        index: usize,
        /// Its size.
        size: u64,
    },
    /// Base plus size passes the end of the address space.
    Wraps {
        /// The window's index.
        index: usize,
        /// Its base.
        base: u64,
        /// Its size.
        size: u64,
    },
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoWindowForHostBridge {
                host_bridge,
                windows,
            } => write!(
                f,
                "no CXL fixed memory window targets host bridge '{host_bridge}' \
                 (windows: [{}]); add cxl-fmw.N.targets.0={host_bridge}",
                list(windows)
            ),
            Self::SeveralWindows {
                host_bridge,
                indices,
            } => write!(
                f,
                "CXL fixed memory windows {} all target host bridge '{host_bridge}'; \
                 choose one with the cxl-fmw property",
                list(indices)
            ),
            Self::Interleaved { index, targets } => write!(
                f,
                "CXL fixed memory window {index} interleaves over host bridges {}; \
                 a passed-through device needs a window with a single target",
                list(targets)
            ),
            Self::NotForHostBridge {
                index,
                host_bridge,
                targets,
            } => write!(
                f,
                "CXL fixed memory window {index} targets [{}], not host bridge '{host_bridge}'",
                list(targets)
            ),
            Self::TooSmall {
                index,
                window_size,
                memory_size,
            } => write!(
                f,
                "CXL fixed memory window {index} is {} but the device memory is {}",
                ByteSize(*window_size),
                ByteSize(*memory_size)
            ),
            Self::NoSuchWindow { requested, windows } => write!(
                f,
                "there is no CXL fixed memory window {requested} (windows: [{}])",
                list(windows)
            ),
            Self::BaseUnaligned { index, base } => write!(
                f,
                "CXL fixed memory window {index} base {base:#x} is not a multiple of 256 MiB"
            ),
            Self::SizeUnaligned { index, size } => write!(
                f,
                "CXL fixed memory window {index} size {} is not a multiple of 256 MiB",
                ByteSize(*size)
            ),
            Self::NotPlaced { index, size } => write!(
                f,
                "CXL fixed memory window {index} of {} has no guest address: the \
                 machine found no room for it in the guest's physical address \
                 space (on virt it needs highmem=on and a 64-bit CPU, e.g. -cpu max); \
                 make the window smaller or give the guest more address bits",
                ByteSize(*size)
            ),
            Self::Wraps { index, base, size } => write!(
                f,
                "CXL fixed memory window {index} at {base:#x} of {} passes the end of \
                 the address space",
                ByteSize(*size)
            ),
        }
    }
}

impl std::error::Error for WindowError {}

/// Chooses the window for a device below `host_bridge` whose memory is
/// `memory_size` bytes.
///
/// With `requested`, that window (by [`FixedWindow::index`]) is checked and
/// used; otherwise the single window whose only target is `host_bridge`.
/// Whether the memory fits beside other devices' is
/// [`crate::placement::place`]'s to say.
pub fn choose_window(
    windows: &[FixedWindow],
    host_bridge: &str,
    requested: Option<usize>,
    memory_size: u64,
) -> Result<ChosenWindow, WindowError> {
    let indices = || windows.iter().map(|w| w.index).collect::<Vec<_>>();
    let window = match requested {
        Some(requested) => {
            let w = windows
                .iter()
                .find(|w| w.index == requested)
                .ok_or_else(|| WindowError::NoSuchWindow {
                    requested,
                    windows: indices(),
                })?;
            if !w.targets.iter().any(|t| t == host_bridge) {
                return Err(WindowError::NotForHostBridge {
                    index: w.index,
                    host_bridge: host_bridge.to_owned(),
                    targets: w.targets.clone(),
                });
            }
            w
        }
        None => find_single(windows, host_bridge)?,
    };
    check_window(window, memory_size)?;
    Ok(ChosenWindow {
        index: window.index,
        base: window.base,
        size: window.size,
    })
}

/// The one window whose targets include `host_bridge`, preferring those
/// that target it alone.
fn find_single<'a>(
    windows: &'a [FixedWindow],
    host_bridge: &str,
) -> Result<&'a FixedWindow, WindowError> {
    let single: Vec<&FixedWindow> = windows
        .iter()
        .filter(|w| w.targets.len() == 1 && w.targets[0] == host_bridge)
        .collect();
    match single.as_slice() {
        [w] => Ok(w),
        [] => windows
            .iter()
            .find(|w| w.targets.iter().any(|t| t == host_bridge))
            .ok_or_else(|| WindowError::NoWindowForHostBridge {
                host_bridge: host_bridge.to_owned(),
                windows: windows.iter().map(|w| w.index).collect(),
            }),
        several => Err(WindowError::SeveralWindows {
            host_bridge: host_bridge.to_owned(),
            indices: several.iter().map(|w| w.index).collect(),
        }),
    }
}

fn check_window(w: &FixedWindow, memory_size: u64) -> Result<(), WindowError> {
    if w.targets.len() > 1 {
        return Err(WindowError::Interleaved {
            index: w.index,
            targets: w.targets.clone(),
        });
    }
    // Every machine keeps address 0 for RAM, flash or legacy I/O; QEMU
    // leaves a window it could not place there.
    if w.base == 0 {
        return Err(WindowError::NotPlaced {
            index: w.index,
            size: w.size,
        });
    }
    if w.base % HDM_GRANULARITY != 0 {
        return Err(WindowError::BaseUnaligned {
            index: w.index,
            base: w.base,
        });
    }
    if w.size % HDM_GRANULARITY != 0 {
        return Err(WindowError::SizeUnaligned {
            index: w.index,
            size: w.size,
        });
    }
    if w.base.checked_add(w.size).is_none() {
        return Err(WindowError::Wraps {
            index: w.index,
            base: w.base,
            size: w.size,
        });
    }
    if w.size < memory_size {
        return Err(WindowError::TooSmall {
            index: w.index,
            window_size: w.size,
            memory_size,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    fn win(index: usize, base: u64, size: u64, targets: &[&str]) -> FixedWindow {
        FixedWindow {
            index,
            base,
            size,
            targets: targets.iter().map(|&t| t.to_owned()).collect(),
            interleave_granularity: 256,
        }
    }

    fn machine() -> Vec<FixedWindow> {
        vec![
            win(0, 0x10_0000_0000, 4 * GIB, &["cxl.1"]),
            win(1, 0x20_0000_0000, 8 * GIB, &["cxl.2"]),
            win(2, 0x30_0000_0000, 8 * GIB, &["cxl.2", "cxl.3"]),
        ]
    }

    #[test]
    fn single_target_window_is_chosen_and_memory_goes_at_its_base() {
        let c = choose_window(&machine(), "cxl.1", None, GIB).unwrap();
        assert_eq!(
            c,
            ChosenWindow {
                index: 0,
                base: 0x10_0000_0000,
                size: 4 * GIB
            }
        );
        assert_eq!(c.range(), 0x10_0000_0000..0x11_0000_0000);
        // The interleaved window 2 also names cxl.2; window 1 is preferred.
        assert_eq!(
            choose_window(&machine(), "cxl.2", None, GIB).unwrap().index,
            1
        );
    }

    #[test]
    fn no_window_targets_host_bridge() {
        let e = choose_window(&machine(), "cxl.9", None, GIB).unwrap_err();
        assert_eq!(
            e,
            WindowError::NoWindowForHostBridge {
                host_bridge: "cxl.9".into(),
                windows: vec![0, 1, 2]
            }
        );
        let s = e.to_string();
        assert!(s.contains("'cxl.9'") && s.contains("[0, 1, 2]"), "{s}");
        choose_window(&[], "cxl.1", None, GIB).unwrap_err();
    }

    #[test]
    fn several_windows_target_host_bridge() {
        let mut m = machine();
        m.push(win(5, 0x40_0000_0000, 4 * GIB, &["cxl.1"]));
        let e = choose_window(&m, "cxl.1", None, GIB).unwrap_err();
        assert_eq!(
            e,
            WindowError::SeveralWindows {
                host_bridge: "cxl.1".into(),
                indices: vec![0, 5]
            }
        );
        let s = e.to_string();
        assert!(s.contains("0, 5") && s.contains("property"), "{s}");
        // Naming one resolves it.
        assert_eq!(choose_window(&m, "cxl.1", Some(5), GIB).unwrap().index, 5);
    }

    #[test]
    fn window_interleaving_over_several_host_bridges() {
        let m = vec![win(3, 0x30_0000_0000, 8 * GIB, &["cxl.2", "cxl.3"])];
        let e = choose_window(&m, "cxl.3", None, GIB).unwrap_err();
        assert_eq!(
            e,
            WindowError::Interleaved {
                index: 3,
                targets: vec!["cxl.2".into(), "cxl.3".into()]
            }
        );
        assert!(e
            .to_string()
            .contains("window 3 interleaves over host bridges cxl.2, cxl.3"));
        assert_eq!(
            choose_window(&machine(), "cxl.2", Some(2), GIB),
            Err(WindowError::Interleaved {
                index: 2,
                targets: vec!["cxl.2".into(), "cxl.3".into()]
            })
        );
    }

    #[test]
    fn window_smaller_than_memory() {
        let e = choose_window(&machine(), "cxl.1", None, 8 * GIB).unwrap_err();
        assert_eq!(
            e,
            WindowError::TooSmall {
                index: 0,
                window_size: 4 * GIB,
                memory_size: 8 * GIB
            }
        );
        assert_eq!(
            e.to_string(),
            "CXL fixed memory window 0 is 0x100000000 (4 GiB) but the device memory is \
             0x200000000 (8 GiB)"
        );
        // Exactly the window size fits.
        choose_window(&machine(), "cxl.1", None, 4 * GIB).unwrap();
    }

    #[test]
    fn requested_index_does_not_exist() {
        let e = choose_window(&machine(), "cxl.1", Some(7), GIB).unwrap_err();
        assert_eq!(
            e,
            WindowError::NoSuchWindow {
                requested: 7,
                windows: vec![0, 1, 2]
            }
        );
        assert!(e.to_string().contains("no CXL fixed memory window 7"));
    }

    #[test]
    fn requested_window_must_target_host_bridge() {
        let e = choose_window(&machine(), "cxl.1", Some(1), GIB).unwrap_err();
        assert_eq!(
            e,
            WindowError::NotForHostBridge {
                index: 1,
                host_bridge: "cxl.1".into(),
                targets: vec!["cxl.2".into()]
            }
        );
        assert!(e
            .to_string()
            .contains("targets [cxl.2], not host bridge 'cxl.1'"));
    }

    #[test]
    fn requested_window_is_used_when_valid() {
        assert_eq!(
            choose_window(&machine(), "cxl.1", Some(0), GIB),
            Ok(ChosenWindow {
                index: 0,
                base: 0x10_0000_0000,
                size: 4 * GIB
            })
        );
    }

    #[test]
    fn base_not_256_mib_aligned() {
        let m = vec![win(0, 0x10_0000_0000 + 128 * MIB, 4 * GIB, &["cxl.1"])];
        let e = choose_window(&m, "cxl.1", None, GIB).unwrap_err();
        assert_eq!(
            e,
            WindowError::BaseUnaligned {
                index: 0,
                base: 0x10_0800_0000
            }
        );
        assert!(e.to_string().contains("0x1008000000"));
    }

    #[test]
    fn size_not_256_mib_aligned() {
        let m = vec![win(0, 0x10_0000_0000, 4 * GIB + 64 * MIB, &["cxl.1"])];
        let e = choose_window(&m, "cxl.1", None, GIB).unwrap_err();
        assert_eq!(
            e,
            WindowError::SizeUnaligned {
                index: 0,
                size: 4 * GIB + 64 * MIB
            }
        );
        assert!(e.to_string().contains("(4160 MiB)"), "{e}");
    }

    #[test]
    fn window_the_machine_did_not_place() {
        let m = vec![win(0, 0, 4 * GIB, &["cxl.1"])];
        let e = choose_window(&m, "cxl.1", None, GIB).unwrap_err();
        assert_eq!(
            e,
            WindowError::NotPlaced {
                index: 0,
                size: 4 * GIB
            }
        );
        let named = choose_window(&m, "cxl.1", Some(0), GIB).unwrap_err();
        assert!(
            named
                .to_string()
                .contains("window 0 of 0x100000000 (4 GiB) has no guest address"),
            "{named}"
        );
    }

    #[test]
    fn window_wrapping_the_address_space() {
        let m = vec![win(0, 0xFFFF_FFFF_0000_0000, 8 * GIB, &["cxl.1"])];
        let e = choose_window(&m, "cxl.1", None, GIB).unwrap_err();
        assert!(matches!(e, WindowError::Wraps { index: 0, .. }));
        assert!(e.to_string().contains("passes the end"));
    }

    #[test]
    fn byte_size_display() {
        assert_eq!(ByteSize(256 * MIB).to_string(), "0x10000000 (256 MiB)");
        assert_eq!(ByteSize(4 * GIB).to_string(), "0x100000000 (4 GiB)");
        assert_eq!(ByteSize(0x10000).to_string(), "0x10000 (64 KiB)");
        assert_eq!(ByteSize(0x130).to_string(), "0x130 (304 bytes)");
        assert_eq!(ByteSize(0).to_string(), "0x0 (0 bytes)");
        assert_eq!(ByteSize(1 << 40).to_string(), "0x10000000000 (1 TiB)");
    }
}
