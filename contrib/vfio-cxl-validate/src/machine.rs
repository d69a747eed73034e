// SPDX-License-Identifier: GPL-2.0-or-later

//! The machine guest-view starts QEMU with: `q35` (x86) or `virt` (arm64),
//! and what of its memory map the kit needs to do a firmware's work (ECAM,
//! the PCI memory windows for BARs).  What the machine can say is found
//! in QEMU's memory map (`info mtree`), not assumed.

use std::fmt;
use std::io;

use clap::ValueEnum;
use serde_json::json;

use crate::qtest::Qemu;

/// q35's MCH PCIEXBAR (config offset of bus 0, device 0), and where the
/// kit asks it to put ECAM.
const Q35_PCIEXBAR: u32 = 0x60;
const Q35_ECAM_BASE: u32 = 0xB000_0000;
/// q35's PCI hole below 4 GiB, and an address in its 64-bit PCI window.
const Q35_WINDOW32: u64 = 0xC000_0000;
const Q35_WINDOW64: u64 = 0x80_0000_0000;
/// What the kit gives the device's BAR before the root port's own BAR.
const WINDOW32_SPAN: u64 = 0x1000_0000;

/// A machine with CXL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Machine {
    /// x86 q35 (`qemu-system-x86_64`)
    Q35,
    /// arm64 virt (`qemu-system-aarch64`)
    Virt,
}

/// Where config space and BARs go, in guest physical (and PCI) addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryMap {
    /// ECAM, 1 MiB a bus.
    pub ecam: u64,
    /// Where a 32-bit BAR (up to 256 MiB) goes.
    pub window32: u64,
    /// Where the root port's own component BAR goes.
    pub root_port_bar: u64,
    /// Where a 64-bit prefetchable BAR goes.
    pub window64: u64,
}

impl Machine {
    /// The machine this host runs guests of.
    #[must_use]
    pub const fn native() -> Self {
        if cfg!(target_arch = "aarch64") {
            Self::Virt
        } else {
            Self::Q35
        }
    }

    /// QEMU's arguments for the machine with CXL.  virt needs a 64-bit CPU
    /// for its high memory map, where ECAM and the CXL windows live.
    #[must_use]
    pub fn args(self) -> Vec<String> {
        let a: &[&str] = match self {
            Self::Q35 => &["-machine", "q35,cxl=on"],
            Self::Virt => &["-machine", "virt,cxl=on", "-cpu", "max"],
        };
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Turns ECAM on where firmware would (q35's PCIEXBAR; virt's is
    /// always on) and finds the windows in QEMU's memory map.
    pub fn memory_map(self, q: &mut Qemu) -> io::Result<MemoryMap> {
        if self == Self::Q35 {
            q.outl(0xCF8, 0x8000_0000 | (Q35_PCIEXBAR + 4))?;
            q.outl(0xCFC, 0)?;
            q.outl(0xCF8, 0x8000_0000 | Q35_PCIEXBAR)?;
            q.outl(0xCFC, Q35_ECAM_BASE | 1)?;
        }
        let reply = q.qmp_command(&json!({
            "execute": "human-monitor-command",
            "arguments": {"command-line": "info mtree"}
        }))?;
        let mtree = reply.as_str().unwrap_or_default();
        let find = |name: &str| {
            region_base(mtree, name).ok_or_else(|| {
                io::Error::other(format!(
                    "{self}: no memory region '{name}' in QEMU's system address space"
                ))
            })
        };
        let ecam = find("pcie-mmcfg-mmio")?;
        let (window32, window64) = match self {
            Self::Q35 => (Q35_WINDOW32, Q35_WINDOW64),
            Self::Virt => (find("pcie-mmio")?, find("pcie-mmio-high")?),
        };
        Ok(MemoryMap {
            ecam,
            window32,
            root_port_bar: window32 + WINDOW32_SPAN,
            window64,
        })
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Q35 => "q35",
            Self::Virt => "virt",
        })
    }
}

/// The start of region `name` in the system address space (`address-space:
/// memory`) of `info mtree`: a region of that name, an alias of that name,
/// or the first alias of a region of that name.
fn region_base(mtree: &str, name: &str) -> Option<u64> {
    let mut in_system = false;
    for line in mtree.lines() {
        let line = line.trim_end();
        if let Some(space) = line.strip_prefix("address-space: ") {
            in_system = space == "memory";
            continue;
        }
        // "START-END (prio P, KIND): NAME" or "...: alias NAME @TARGET ..."
        let Some((range, what)) = line.split_once("): ") else {
            continue;
        };
        if !in_system {
            continue;
        }
        let Some(start) = range
            .trim_start()
            .split('-')
            .next()
            .and_then(|s| u64::from_str_radix(s, 16).ok())
        else {
            continue;
        };
        let words: Vec<&str> = what.split_whitespace().collect();
        let matches = match words.as_slice() {
            ["alias", alias, target, ..] => {
                *alias == name || target.strip_prefix('@') == Some(name)
            }
            [region, ..] => *region == name,
            [] => false,
        };
        if matches {
            return Some(start);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of `info mtree` (QEMU's monitor documentation): an
    /// address space per heading, one region a line, indented by depth.
    const MTREE: &str = "\
address-space: I/O
  0000000000000000-000000000000ffff (prio 0, i/o): io
    0000000000000cf8-0000000000000cfb (prio 0, i/o): pci-conf-idx

address-space: memory
  0000000000000000-ffffffffffffffff (prio 0, i/o): system
    0000000010000000-000000003efeffff (prio 0, i/o): alias pcie-mmio @gpex_mmio_window 0000000010000000-000000003efeffff
    0000004010000000-000000401fffffff (prio 0, i/o): alias pcie-ecam @pcie-mmcfg-mmio 0000000000000000-000000000fffffff
    0000008000000000-000000ffffffffff (prio 0, i/o): alias pcie-mmio-high @gpex_mmio_window 0000008000000000-000000ffffffffff
    00000000b0000000-00000000bfffffff (prio 0, i/o): pcie-mmcfg-mmio

address-space: cpu-secure-memory-0
  0000000020000000-000000002fffffff (prio 0, i/o): pcie-mmio
";

    #[test]
    fn a_region_an_alias_and_an_alias_of_a_region_are_found_in_system_memory() {
        assert_eq!(region_base(MTREE, "pcie-mmio"), Some(0x1000_0000));
        assert_eq!(region_base(MTREE, "pcie-mmio-high"), Some(0x80_0000_0000));
        // The first line that names it: virt's ECAM alias.
        assert_eq!(region_base(MTREE, "pcie-mmcfg-mmio"), Some(0x40_1000_0000));
        let q35_only = MTREE.replace("alias pcie-ecam @pcie-mmcfg-mmio", "alias other @x");
        assert_eq!(region_base(&q35_only, "pcie-mmcfg-mmio"), Some(0xB000_0000));
    }

    #[test]
    fn other_address_spaces_and_absent_names_are_not_found() {
        assert_eq!(region_base(MTREE, "pci-conf-idx"), None);
        assert_eq!(region_base(MTREE, "gpex_mmio_window-x"), None);
        let only_secure = MTREE.replace("alias pcie-mmio @", "alias low @");
        assert_eq!(region_base(&only_secure, "pcie-mmio"), None);
    }

    #[test]
    fn the_native_machine_follows_the_build() {
        let want = if cfg!(target_arch = "aarch64") {
            Machine::Virt
        } else {
            Machine::Q35
        };
        assert_eq!(Machine::native(), want);
        assert_eq!(Machine::Virt.args()[1], "virt,cxl=on");
    }
}
