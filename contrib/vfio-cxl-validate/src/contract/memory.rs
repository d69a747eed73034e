// SPDX-License-Identifier: GPL-2.0-or-later

//! The memory region: flags and size, v4's gating on Memory Space
//! Enable, mmap round trips at 4 KiB and 2 MiB, access at any size,
//! (kernel VFIO, v4) its DMABUF export, and (kernel VFIO, arm64) whether
//! KVM can map it cacheable into a guest.

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use super::registers::read_decoder;
use super::{Found, Suite};
use crate::host::{HostError, HostResult, Mapping};
use crate::layout::component::GRANULE;
use crate::layout::{pci, region_flags, CONFIG_REGION, EIO};
use crate::posting::Posting;
use crate::report::{verdict, Verdict};

const MIB: u64 = 1 << 20;

pub fn run(s: &mut Suite<'_>, f: &Found) {
    memory_region(s, f);
    memory_enable(s, f);
    memory_mmap(s, f, "memory_mmap_4k", 4096);
    memory_mmap(s, f, "memory_mmap_2m", 2 * MIB);
    memory_rw_any_size(s, f);
    dma_buf_export(s, f);
    let transport = s.host.transport();
    s.record(
        "kvm_cacheable_memory",
        crate::kvm::judge(std::env::consts::ARCH, transport, crate::kvm::probe),
    );
}

/// Sets or clears the function's Memory Space Enable.
pub fn set_memory_enable(s: &mut Suite<'_>, on: bool) -> HostResult<()> {
    let cmd = s.host.read_u16(CONFIG_REGION, pci::COMMAND)?;
    let v = if on {
        cmd | pci::COMMAND_MEMORY
    } else {
        cmd & !pci::COMMAND_MEMORY
    };
    s.host.write_u16(CONFIG_REGION, pci::COMMAND, v)
}

pub fn memory_enabled(s: &mut Suite<'_>) -> HostResult<bool> {
    Ok(s.host.read_u16(CONFIG_REGION, pci::COMMAND)? & pci::COMMAND_MEMORY != 0)
}

/// `memory_region`: read, write, mmap; the size of decoder 0.
fn memory_region(s: &mut Suite<'_>, f: &Found) {
    let want = region_flags::READ | region_flags::WRITE | region_flags::MMAP;
    let dec = read_decoder(s, f).map(|d| d.size);
    s.record(
        "memory_region",
        verdict(
            f.mem.flags & want == want && f.mem.size % GRANULE == 0 && dec == Ok(f.mem.size),
            format!(
                "region {}: flags {:#x}, size {:#x}, decoder 0 size {dec:x?}",
                f.mem.index, f.mem.flags, f.mem.size
            ),
        ),
    );
}

/// How a child process that touched `map` ended: `true` for SIGBUS.
fn touch_dies_of_sigbus(map: &Mapping) -> Result<bool, String> {
    // SAFETY: the child only reads the existing mapping and leaves with
    // `_exit`: it takes no lock, allocates nothing, runs no destructor.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            let _ = map.read_u32(0);
            // SAFETY: ends the child at once, as said above.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => match waitpid(child, None) {
            Ok(WaitStatus::Signaled(_, Signal::SIGBUS, _)) => Ok(true),
            Ok(WaitStatus::Exited(_, 0)) => Ok(false),
            Ok(other) => Err(format!("child ended {other:?}")),
            Err(e) => Err(format!("waitpid: {e}")),
        },
    }
}

/// `memory_enable`: v4 serves the memory only while Memory Space Enable
/// is set: with it clear, read fails with EIO and a touch of a mapping
/// is SIGBUS.  Leaves it set for the checks that follow.
fn memory_enable(s: &mut Suite<'_>, f: &Found) {
    if !s.v4_only(
        "memory_enable",
        f.posting,
        "memory is not gated on Memory Space Enable",
    ) {
        return;
    }
    let would = "clear and set the function's Memory Space Enable, touching the memory in between";
    s.mutating("memory_enable", would, |s| {
        let map = match s.host.map(&f.mem, 0, 4096) {
            Ok(m) => m,
            Err(e) => return Verdict::Fail(format!("mmap: {e}")),
        };
        let off = set_memory_enable(s, false);
        let gated_read = s.host.read(f.mem.index, 0, 4);
        let gated_touch = touch_dies_of_sigbus(&map);
        let on = set_memory_enable(s, true);
        let open_read = s.host.read(f.mem.index, 0, 4);
        let open_touch = touch_dies_of_sigbus(&map);
        let ok = off.is_ok()
            && on.is_ok()
            && gated_read.as_ref().err().and_then(HostError::errno) == Some(EIO)
            && gated_touch == Ok(true)
            && open_read.is_ok()
            && open_touch == Ok(false);
        verdict(
            ok,
            format!(
                "MSE clear: read {}, touch SIGBUS {gated_touch:?}; MSE set: read {}, touch SIGBUS {open_touch:?}",
                describe(&gated_read),
                describe(&open_read)
            ),
        )
    });
}

fn describe(r: &HostResult<Vec<u8>>) -> String {
    match r {
        Ok(b) => format!("ok {b:02x?}"),
        Err(e) => e.to_string(),
    }
}

/// Makes sure a v4 host serves the memory (Memory Space Enable set).
pub fn ensure_memory_served(s: &mut Suite<'_>, f: &Found) -> HostResult<()> {
    if f.posting == Posting::V4 && !memory_enabled(s)? {
        set_memory_enable(s, true)?;
    }
    Ok(())
}

/// `memory_mmap_4k`, `memory_mmap_2m`: a mapping of `len` bytes at a
/// `len`-aligned offset; dwords written through it read back through
/// the region, and the other way round, at both ends.  Restores them.
fn memory_mmap(s: &mut Suite<'_>, f: &Found, name: &'static str, len: u64) {
    let at = if f.mem.size >= 4 * len { len } else { 0 };
    if f.mem.size < at + len {
        s.record(
            name,
            Verdict::NotApplicable(format!("memory of {:#x} bytes is too small", f.mem.size)),
        );
        return;
    }
    let would = format!("write 4 dwords of device memory at {at:#x} (restored)");
    s.mutating(name, &would, |s| {
        if let Err(e) = ensure_memory_served(s, f) {
            return Verdict::Fail(format!("setting Memory Space Enable: {e}"));
        }
        let map = match s.host.map(&f.mem, at, len as usize) {
            Ok(m) => m,
            Err(e) => return Verdict::Fail(format!("mmap {len:#x} bytes at {at:#x}: {e}")),
        };
        let last = len as usize - 4;
        let saved = (map.read_u32(0), map.read_u32(last));
        let mut seen = Vec::new();
        let mut ok = true;
        for (i, o) in [0usize, last].into_iter().enumerate() {
            let pattern = 0xC0DE_0000 | (len as u32 >> 12) << 4 | i as u32;
            map.write_u32(o, pattern);
            let via_region = s.host.read_u32(f.mem.index, at + o as u64);
            let back = !pattern;
            let w = s.host.write_u32(f.mem.index, at + o as u64, back);
            let via_map = map.read_u32(o);
            ok &= via_region == Ok(pattern) && w.is_ok() && via_map == back;
            seen.push(format!(
                "+{o:#x}: mmap wrote {pattern:#x}, region read {via_region:x?}; region wrote {back:#x}, mmap read {via_map:#x}"
            ));
        }
        map.write_u32(0, saved.0);
        map.write_u32(last, saved.1);
        verdict(ok, format!("{len:#x} bytes at {at:#x}: {}", seen.join("; ")))
    });
}

/// `memory_rw_any_size`: read and write at any size and alignment.
fn memory_rw_any_size(s: &mut Suite<'_>, f: &Found) {
    let at = 0x1043u64.min(f.mem.size.saturating_sub(8));
    let would = format!("write 3 bytes of device memory at {at:#x} (restored)");
    s.mutating("memory_rw_any_size", &would, |s| {
        if let Err(e) = ensure_memory_served(s, f) {
            return Verdict::Fail(format!("setting Memory Space Enable: {e}"));
        }
        let saved = s.host.read(f.mem.index, at - 2, 5);
        let w = s.host.write(f.mem.index, at, &[9, 8, 7]);
        let back = s.host.read(f.mem.index, at - 2, 5);
        if let Ok(old) = &saved {
            let _ = s.host.write(f.mem.index, at - 2, old);
        }
        let ok =
            matches!((&saved, &back), (Ok(o), Ok(b)) if b[..2] == o[..2] && b[2..] == [9, 8, 7]);
        verdict(
            ok && w.is_ok(),
            format!(
                "3-byte write at {at:#x}: {w:?}; 5 bytes from {:#x}: {back:02x?}",
                at - 2
            ),
        )
    });
}

/// `dma_buf_export`: kernel VFIO with v4 exports the memory region as a
/// DMABUF (`VFIO_DEVICE_FEATURE_DMA_BUF`) and, over iommufd, maps it
/// into an IOAS.  Only the kit verifies this path.
fn dma_buf_export(s: &mut Suite<'_>, f: &Found) {
    if !s.v4_only(
        "dma_buf_export",
        f.posting,
        "no DMABUF export of the memory region",
    ) {
        return;
    }
    let len = f.mem.size.min(2 * MIB);
    match s.host.export_dma_buf(f.mem.index, len) {
        None => {
            s.record(
                "dma_buf_export",
                Verdict::NotApplicable("vfio-user: no DMABUF export (kernel VFIO only)".into()),
            );
        }
        Some(Ok(x)) => {
            s.record("dma_buf_export", Verdict::Pass(x.detail));
        }
        Some(Err(e)) => {
            s.record(
                "dma_buf_export",
                Verdict::Fail(format!("{len:#x} bytes of region {}: {e}", f.mem.index)),
            );
        }
    }
}
