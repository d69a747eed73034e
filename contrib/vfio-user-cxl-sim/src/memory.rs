// SPDX-License-Identifier: GPL-2.0-or-later

//! File-backed memory: the device memory (a sparse memfd or a file named
//! on the command line) and the BAR's accelerator pages (a memfd).
//!
//! The simulator itself only ever uses `pread`/`pwrite`; the client gets
//! the descriptor and may `mmap` it, so both sides see the same pages.
//! Sizing uses `ftruncate` only: no page is touched until somebody
//! accesses it.

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
}

impl Backing {
    /// An anonymous, sparse store (memfd).
    pub fn anonymous(name: &str, size: u64) -> io::Result<Self> {
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC)?;
        let file = File::from(fd);
        file.set_len(size)?;
        Ok(Self { file, size })
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
        Ok(Self { file, size })
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

    pub fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.check(offset, buf.len())?;
        self.file.read_exact_at(buf, offset)
    }

    pub fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check(offset, data.len())?;
        self.file.write_all_at(data, offset)
    }

    /// Returns `[offset, offset + len)` to zeroes, freeing the pages.
    pub fn clear(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check(offset, usize::try_from(len).unwrap_or(usize::MAX))?;
        let punched = nix::fcntl::fallocate(
            &self.file,
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
                self.file.write_all_at(&zeroes[..n], pos)?;
                pos += n as u64;
            }
        }
        Ok(())
    }

    /// Bytes of storage actually allocated (to prove nothing was touched).
    pub fn allocated_bytes(&self) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        Ok(self.file.metadata()?.blocks() * 512)
    }
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
}
