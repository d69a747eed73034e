// SPDX-License-Identifier: GPL-2.0-or-later

//! File-backed memory: the device memory (a sparse memfd or a file named
//! on the command line) and the BAR's accelerator pages (a memfd).
//!
//! The simulator itself only ever uses `pread`/`pwrite`; the client gets
//! the descriptor and may `mmap` it, so both sides see the same pages.
//! Sizing uses `ftruncate` only: no page is touched until somebody
//! accesses it.
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
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use nix::sys::memfd::{memfd_create, MFdFlags};

/// A fixed-size, byte-addressable store backed by a file descriptor.
#[derive(Debug)]
pub struct Backing {
    file: File,
    size: u64,
    /// While hidden: where the contents are kept.
    aside: Option<File>,
}

impl Backing {
    /// An anonymous, sparse store (memfd).
    pub fn anonymous(name: &str, size: u64) -> io::Result<Self> {
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC)?;
        let file = File::from(fd);
        file.set_len(size)?;
        Ok(Self {
            file,
            size,
            aside: None,
        })
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
        file.set_len(size)?;
        Ok(Self {
            file,
            size,
            aside: None,
        })
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
        self.contents().write_all_at(data, offset)
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
        copy_extents(&self.file, &aside, self.size)?;
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
        copy_extents(&aside, &self.file, self.size)
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
        if punched.is_err() {
            // Filesystems without hole punching: write zeroes instead.
            let zeroes = vec![0u8; 64 * 1024];
            let mut pos = offset;
            while pos < offset + len {
                let n = (offset + len - pos).min(zeroes.len() as u64) as usize;
                self.contents().write_all_at(&zeroes[..n], pos)?;
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

/// Copies the allocated extents of `from` (below `size`) to the same
/// offsets in `to`; holes stay holes.
fn copy_extents(from: &File, to: &File, size: u64) -> io::Result<()> {
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
            to.write_all_at(&buf[..n], at)?;
            at += n as u64;
        }
        pos = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_is_sparse_and_bounded() {
        let b = Backing::anonymous("t", 1 << 30).unwrap();
        assert_eq!(b.allocated_bytes().unwrap(), 0);
        b.write(0x1003, &[1, 2, 3]).unwrap();
        let mut r = [0u8; 5];
        b.read(0x1002, &mut r).unwrap();
        assert_eq!(r, [0, 1, 2, 3, 0]);
        b.read((1 << 30) - 2, &mut r).unwrap_err();
        b.write(u64::MAX, &[0]).unwrap_err();
        b.clear(0, 0x2000).unwrap();
        b.read(0x1002, &mut r).unwrap();
        assert_eq!(r, [0; 5]);
    }

    #[test]
    fn hidden_store_keeps_its_contents_and_is_gone_from_the_shared_file() {
        let mut b = Backing::anonymous("t", 1 << 30).unwrap();
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
        assert_eq!(b.file.metadata().unwrap().len(), 1 << 30);
        let mut r2 = [0u8; 3];
        b.file.read_exact_at(&mut r2, 0x10).unwrap();
        assert_eq!(&r2, b"new");
        b.file.read_exact_at(&mut r, 0x2000_0000).unwrap();
        assert_eq!(&r, b"kept");
        // Only the two written pages came back.
        assert!(b.allocated_bytes().unwrap() <= 2 * 4096 * 2);
    }
}
