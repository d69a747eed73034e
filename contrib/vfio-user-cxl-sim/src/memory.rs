// SPDX-License-Identifier: GPL-2.0-or-later

//! File-backed memory: the device memory (a sparse memfd or a file named
//! on the command line) and the BAR's accelerator pages (a memfd).
//!
//! The simulator itself uses `pread`/`pwrite`; the client gets the
//! descriptor and may `mmap` it, so both sides see the same pages.
//! Sizing uses `ftruncate` only: no page is touched until somebody
//! accesses it, except in a store of huge pages (below).
//!
//! An anonymous store is made of the host's default huge pages
//! (`MFD_HUGETLB`) when its size is a multiple of them and the host's
//! hugetlb pool has enough free pages for all of it, as the kernel's CXL
//! memory region faults in 2 MiB or 1 GiB pages; otherwise of shmem pages,
//! which are transparent huge pages where the host's `shmem_enabled`
//! allows them for the client's mapping (QEMU asks for them on every
//! `RAMBlock`).  hugetlbfs takes no `write(2)`: the simulator writes such a
//! store through a mapping of its own, kept while the store is shown.
//! Its pages, reserved from the pool anyway, are all allocated up front
//! and again after they were cleared: device memory is there from
//! power-on, and the kernel's fault handler only maps it, so a client's
//! first touch must cost a mapping, not an allocation and a 2 MiB clear.
//!
//! A store can be hidden from the client ([`Backing::hide`]): its data
//! moves to a private memfd and the shared file is truncated to 0, so that
//! every access through a client's existing mapping raises `SIGBUS`, as a
//! v4 host's fault handler does while it gates the memory.  The simulator
//! cannot revoke a mapping of a memfd it passed, and `mprotect` or
//! `madvise` act on its own mappings only; truncation is what the client's
//! page faults see.  [`Backing::show`] restores the size and moves the
//! data back; only allocated extents are copied (`SEEK_DATA`), so a
//! sparse store moves in time proportional to what was written.

use std::fs::{File, OpenOptions};
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::ptr::NonNull;

use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};

/// A fixed-size, byte-addressable store backed by a file descriptor.
#[derive(Debug)]
pub struct Backing {
    file: File,
    size: u64,
    /// While hidden: where the contents are kept.
    aside: Option<File>,
    /// A hugetlbfs store: true; it is written through `mapped`.
    huge: bool,
    /// A huge store's mapping, while shown.
    mapped: Option<Mapped>,
}

impl Backing {
    /// An anonymous, sparse store (memfd; of huge pages where the host's
    /// pool has them for all of it).
    pub fn anonymous(name: &str, size: u64) -> io::Result<Self> {
        if let Some(store) = Self::huge(name, size) {
            return Ok(store);
        }
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC)?;
        Self::sized(File::from(fd), size)
    }

    /// A store of ordinary pages over `file`, resized (without writing)
    /// to `size`.
    fn sized(file: File, size: u64) -> io::Result<Self> {
        file.set_len(size)?;
        Ok(Self {
            file,
            size,
            aside: None,
            huge: false,
            mapped: None,
        })
    }

    /// A hugetlbfs memfd of `size`, if the host's free huge pages of the
    /// default size cover it; None otherwise or on any failure.
    fn huge(name: &str, size: u64) -> Option<Self> {
        let (free, page) = free_huge_pages()?;
        if size == 0 || size % page != 0 || size / page > free {
            return None;
        }
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_HUGETLB).ok()?;
        let file = File::from(fd);
        file.set_len(size).ok()?;
        // Mapping it reserves the pages: the pool may have changed since.
        let mapped = Mapped::new(&file, size).ok()?;
        populate(&file, 0, size).ok()?;
        Some(Self {
            file,
            size,
            aside: None,
            huge: true,
            mapped: Some(mapped),
        })
    }

    /// True for a store of hugetlbfs pages.
    #[must_use]
    pub const fn is_huge(&self) -> bool {
        self.huge
    }

    /// A store backed by `path`, created if missing and resized (without
    /// writing) to `size`.  Existing contents below `size` are kept.
    pub fn file(path: &Path, size: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Self::sized(file, size)
    }

    #[must_use]
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// The descriptor to pass to a client for `mmap`.
    #[must_use]
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    fn check(&self, offset: u64, len: usize) -> io::Result<()> {
        let end = offset.checked_add(len as u64);
        if end.is_some_and(|e| e <= self.size) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "access outside the backing store",
            ))
        }
    }

    /// Where the contents are now: the shared file, or aside while hidden.
    fn contents(&self) -> &File {
        self.aside.as_ref().unwrap_or(&self.file)
    }

    /// Reads the contents, wherever they are (hidden or not).
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.check(offset, buf.len())?;
        self.contents().read_exact_at(buf, offset)
    }

    /// Writes the contents, wherever they are (hidden or not).
    pub fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check(offset, data.len())?;
        match (&self.aside, &self.mapped) {
            (None, Some(m)) => {
                m.write(offset, data);
                Ok(())
            }
            _ => self.contents().write_all_at(data, offset),
        }
    }

    /// True while [`Backing::hide`] is in effect.
    #[must_use]
    pub const fn is_hidden(&self) -> bool {
        self.aside.is_some()
    }

    /// Makes the shared file inaccessible to mappings (size 0) and keeps
    /// the contents aside.  Hiding a hidden store does nothing.
    pub fn hide(&mut self) -> io::Result<()> {
        if self.aside.is_some() {
            return Ok(());
        }
        let aside = File::from(memfd_create("cxl-sim-hidden", MFdFlags::MFD_CLOEXEC)?);
        aside.set_len(self.size)?;
        copy_extents(&self.file, self.size, |at, buf| aside.write_all_at(buf, at))?;
        // Truncation would leave the simulator's own mapping faulting.
        self.mapped = None;
        self.file.set_len(0)?;
        self.aside = Some(aside);
        Ok(())
    }

    /// Gives the shared file its size and contents back.  Showing a shown
    /// store does nothing.
    pub fn show(&mut self) -> io::Result<()> {
        let Some(aside) = self.aside.take() else {
            return Ok(());
        };
        self.file.set_len(self.size)?;
        if self.huge {
            let mapped = Mapped::new(&self.file, self.size)?;
            populate(&self.file, 0, self.size)?;
            copy_extents(&aside, self.size, |at, buf| {
                mapped.write(at, buf);
                Ok(())
            })?;
            self.mapped = Some(mapped);
            Ok(())
        } else {
            copy_extents(&aside, self.size, |at, buf| self.file.write_all_at(buf, at))
        }
    }

    /// Returns `[offset, offset + len)` to zeroes, freeing the pages.
    pub fn clear(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check(offset, usize::try_from(len).unwrap_or(usize::MAX))?;
        let punched = nix::fcntl::fallocate(
            self.contents(),
            nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
                | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE,
            offset as i64,
            len as i64,
        );
        if punched.is_ok() && self.huge && self.aside.is_none() {
            populate(&self.file, offset, len)?;
        } else if punched.is_err() {
            // Filesystems without hole punching: write zeroes instead.
            let zeroes = vec![0u8; 64 * 1024];
            let mut pos = offset;
            while pos < offset + len {
                let n = (offset + len - pos).min(zeroes.len() as u64) as usize;
                self.write(pos, &zeroes[..n])?;
                pos += n as u64;
            }
        }
        Ok(())
    }

    /// Bytes of storage actually allocated (to prove nothing was touched).
    pub fn allocated_bytes(&self) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        Ok(self.contents().metadata()?.blocks() * 512)
    }
}

/// Free pages in the host's hugetlb pool of the default size, and that
/// size (`/proc/meminfo`); None if the host has no such pool.
fn free_huge_pages() -> Option<(u64, u64)> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = info.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    let free = field("HugePages_Free:")?.saturating_sub(field("HugePages_Rsvd:")?);
    Some((free, field("Hugepagesize:")?.checked_mul(1024)?))
}

/// A shared, writable mapping of a whole store.
#[derive(Debug)]
struct Mapped {
    ptr: NonNull<u8>,
    len: usize,
}

/// Allocates the pages of `[offset, offset + len)` of `file`.
fn populate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let at = i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let n = i64::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    nix::fcntl::fallocate(file, nix::fcntl::FallocateFlags::empty(), at, n)?;
    Ok(())
}

impl Mapped {
    fn new(file: &File, size: u64) -> io::Result<Self> {
        let len =
            usize::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let n =
            NonZeroUsize::new(len).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a fresh shared mapping at an address the kernel picks; it
        // aliases no Rust object and is reached only through `write`.
        let p = unsafe {
            mmap(
                None,
                n,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                file.as_fd(),
                0,
            )
        }?;
        Ok(Self { ptr: p.cast(), len })
    }

    /// Copies `data` to `offset`; the caller checked the bounds.
    fn write(&self, offset: u64, data: &[u8]) {
        let at = usize::try_from(offset).unwrap_or(usize::MAX);
        assert!(
            at <= self.len && data.len() <= self.len - at,
            "write outside the mapping"
        );
        // SAFETY: in bounds of the live mapping (asserted); the source is a
        // Rust slice, which cannot overlap a mapping made by `new`.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(at), data.len());
        }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; nothing
        // borrowed from it outlives `self`.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

// SAFETY: the mapping is plain shared memory with no thread affinity;
// writes to it go through `&Backing`, as `pwrite` to the file would.
unsafe impl Send for Mapped {}
// SAFETY: as for Send; concurrent writers race as they would on the file.
unsafe impl Sync for Mapped {}

/// Copies the allocated extents of `from` (below `size`) with `write`
/// (offset, bytes); holes stay holes.
fn copy_extents(
    from: &File,
    size: u64,
    mut write: impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    use nix::unistd::{lseek, Whence};
    let mut pos: u64 = 0;
    let mut buf = vec![0u8; 1 << 20];
    while pos < size {
        let start = match lseek(from, pos as i64, Whence::SeekData) {
            Ok(at) => at as u64,
            // No data past `pos`.
            Err(nix::errno::Errno::ENXIO) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let end = (lseek(from, start as i64, Whence::SeekHole)? as u64).min(size);
        let mut at = start;
        while at < end {
            let n = (end - at).min(buf.len() as u64) as usize;
            from.read_exact_at(&mut buf[..n], at)?;
            write(at, &buf[..n])?;
            at += n as u64;
        }
        pos = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Not a multiple of any huge page size: a memfd whatever the host.
    const SHMEM_SIZE: u64 = (1 << 30) - 4096;

    /// Needs two free pages in the host's hugetlb pool (none by default).
    #[test]
    fn huge_store_is_allocated_up_front_and_after_a_clear() {
        let Some((_, page)) = free_huge_pages().filter(|&(f, p)| f >= 2 && p > 0) else {
            eprintln!("skipped: the host's hugetlb pool has fewer than 2 free pages");
            return;
        };
        let mut b = Backing::anonymous("t", 2 * page).unwrap();
        assert!(b.is_huge());
        assert_eq!(b.allocated_bytes().unwrap(), 2 * page);
        b.write(page + 8, &[7; 4]).unwrap();
        b.clear(page, page).unwrap();
        assert_eq!(b.allocated_bytes().unwrap(), 2 * page);
        let mut r = [1u8; 4];
        b.read(page + 8, &mut r).unwrap();
        assert_eq!(r, [0; 4]);
        b.hide().unwrap();
        b.show().unwrap();
        assert_eq!(b.allocated_bytes().unwrap(), 2 * page);
    }

    #[test]
    fn anonymous_is_sparse_and_bounded() {
        let b = Backing::anonymous("t", SHMEM_SIZE).unwrap();
        assert!(!b.is_huge());
        assert_eq!(b.allocated_bytes().unwrap(), 0);
        b.write(0x1003, &[1, 2, 3]).unwrap();
        let mut r = [0u8; 5];
        b.read(0x1002, &mut r).unwrap();
        assert_eq!(r, [0, 1, 2, 3, 0]);
        b.read(SHMEM_SIZE - 2, &mut r).unwrap_err();
        b.write(u64::MAX, &[0]).unwrap_err();
        b.clear(0, 0x2000).unwrap();
        b.read(0x1002, &mut r).unwrap();
        assert_eq!(r, [0; 5]);
    }

    #[test]
    fn hidden_store_keeps_its_contents_and_is_gone_from_the_shared_file() {
        let mut b = Backing::anonymous("t", SHMEM_SIZE).unwrap();
        b.write(0x2000_0000, b"kept").unwrap();
        b.hide().unwrap();
        b.hide().unwrap();
        assert!(b.is_hidden());
        assert_eq!(b.file.metadata().unwrap().len(), 0);
        let mut r = [0u8; 4];
        b.read(0x2000_0000, &mut r).unwrap();
        assert_eq!(&r, b"kept");
        b.write(0x10, b"new").unwrap();
        b.show().unwrap();
        b.show().unwrap();
        assert!(!b.is_hidden());
        assert_eq!(b.file.metadata().unwrap().len(), SHMEM_SIZE);
        let mut r2 = [0u8; 3];
        b.file.read_exact_at(&mut r2, 0x10).unwrap();
        assert_eq!(&r2, b"new");
        b.file.read_exact_at(&mut r, 0x2000_0000).unwrap();
        assert_eq!(&r, b"kept");
        // Only the two written pages came back.
        assert!(b.allocated_bytes().unwrap() <= 2 * 4096 * 2);
    }

    #[test]
    fn huge_pages_when_the_pool_covers_the_store() {
        let Some((free, page)) = free_huge_pages() else {
            eprintln!("skipped: the host has no hugetlb pool");
            return;
        };
        if free < 2 {
            eprintln!("skipped: fewer than 2 free huge pages ({free})");
            return;
        }
        let mut b = Backing::anonymous("t", 2 * page).unwrap();
        assert!(b.is_huge());
        b.write(page + 3, b"huge").unwrap();
        let mut r = [0u8; 4];
        b.read(page + 3, &mut r).unwrap();
        assert_eq!(&r, b"huge");
        b.hide().unwrap();
        assert_eq!(b.file.metadata().unwrap().len(), 0);
        b.write(8, b"hid").unwrap();
        b.show().unwrap();
        let mut r3 = [0u8; 3];
        b.file.read_exact_at(&mut r3, 8).unwrap();
        assert_eq!(&r3, b"hid");
        b.read(page + 3, &mut r).unwrap();
        assert_eq!(&r, b"huge");
        b.clear(0, 2 * page).unwrap();
        b.read(page + 3, &mut r).unwrap();
        assert_eq!(r, [0; 4]);
        // More than the pool has: a memfd of ordinary pages.
        let big = Backing::anonymous("t", (free + 1) * page).unwrap();
        assert!(!big.is_huge());
    }
}
