// SPDX-License-Identifier: GPL-2.0-or-later

//! What the suite needs from a host, whatever carries it: kernel VFIO
//! ioctls and `pread`/`pwrite` on a device fd, or vfio-user messages.

use std::fmt;
use std::os::fd::BorrowedFd;

/// Why a host request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// The host refused it with this errno (an ioctl, a `pread`, a
    /// vfio-user error reply).
    Errno(i32),
    /// The transport broke (socket closed, malformed reply).
    Transport(String),
    /// The host cannot do this at all (e.g. no mmap-able fd).
    Unsupported(String),
    /// The kit will not use this device, and says why (not bound to
    /// vfio-pci, no CXL flag, ...).
    Refused(String),
}

impl HostError {
    #[must_use]
    pub const fn errno(&self) -> Option<i32> {
        match self {
            Self::Errno(e) => Some(*e),
            _ => None,
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Errno(e) => write!(f, "errno {e} ({})", nix::errno::Errno::from_raw(*e).desc()),
            Self::Transport(s) => write!(f, "transport: {s}"),
            Self::Unsupported(s) => write!(f, "unsupported: {s}"),
            Self::Refused(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for HostError {}

pub type HostResult<T> = Result<T, HostError>;

/// `VFIO_DEVICE_GET_INFO`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    pub flags: u32,
    pub num_regions: u32,
    pub num_irqs: u32,
    /// The whole reply, capabilities included (kernel VFIO only: the
    /// vfio-user protocol has no device-info capabilities).
    pub raw: Option<Vec<u8>>,
}

/// `VFIO_DEVICE_GET_REGION_INFO`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionInfo {
    pub index: u32,
    pub flags: u32,
    pub size: u64,
    /// Offset to pass to `mmap` on the region's fd.
    pub offset: u64,
    /// The whole reply, `struct vfio_region_info` and capabilities.
    pub raw: Vec<u8>,
}

/// Which way the host is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Kernel vfio-pci; `backend` names the IOMMU interface used.
    Kernel {
        backend: IommuBackend,
    },
    VfioUser,
}

/// Kernel VFIO's two ways to own a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IommuBackend {
    /// `/dev/vfio/N` group in a type-1 container.
    Container,
    /// `/dev/vfio/devices/vfioX` bound to `/dev/iommu`.
    Iommufd,
}

/// What a DMABUF export of device memory (v4 feature 11) gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmaBufExport {
    /// The IOVA iommufd mapped the DMABUF at, when it could.
    pub iova: Option<u64>,
    pub detail: String,
}

/// A host presenting one device.
pub trait Host {
    /// One line saying what this is ("vfio-user socket /x", "kernel
    /// VFIO 0000:3b:00.0 (iommufd)").
    fn describe(&self) -> String;
    fn transport(&self) -> Transport;
    fn device_info(&mut self) -> HostResult<DeviceInfo>;
    fn region_info(&mut self, index: u32) -> HostResult<RegionInfo>;
    fn read(&mut self, region: u32, offset: u64, len: usize) -> HostResult<Vec<u8>>;
    fn write(&mut self, region: u32, offset: u64, data: &[u8]) -> HostResult<()>;
    /// Maps `len` bytes at `offset` of region `info` shared, read/write.
    fn map(&mut self, info: &RegionInfo, offset: u64, len: usize) -> HostResult<Mapping>;
    /// `VFIO_DEVICE_RESET`.
    fn reset(&mut self) -> HostResult<()>;
    /// Exports `len` bytes of the memory region as a DMABUF and maps it
    /// through iommufd when the host uses it; `None` when the transport
    /// has no such thing (vfio-user).
    fn export_dma_buf(&mut self, region: u32, len: u64) -> Option<HostResult<DmaBufExport>>;

    fn read_u32(&mut self, region: u32, offset: u64) -> HostResult<u32> {
        let b = self.read(region, offset, 4)?;
        Ok(le32(&b, 0))
    }
    fn write_u32(&mut self, region: u32, offset: u64, v: u32) -> HostResult<()> {
        self.write(region, offset, &v.to_le_bytes())
    }
    fn read_u16(&mut self, region: u32, offset: u64) -> HostResult<u16> {
        let b = self.read(region, offset, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn write_u16(&mut self, region: u32, offset: u64, v: u16) -> HostResult<()> {
        self.write(region, offset, &v.to_le_bytes())
    }
}

/// The little-endian dword at `at` of `b`, 0 past its end.
#[must_use]
pub fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// The little-endian quadword at `at` of `b`, 0 past its end.
#[must_use]
pub fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | u64::from(le32(b, at + 4)) << 32
}

/// A shared read/write mapping of part of a region: the simulator
/// crate's, a plain `mmap` of a descriptor with bounds-checked dword
/// access (no CXL knowledge), used for kernel fds too.
pub use vfio_user_cxl_sim::client::Mapping;

/// Maps `len` bytes of `fd` at file offset `offset`.
pub fn map_fd(fd: BorrowedFd<'_>, offset: u64, len: usize) -> HostResult<Mapping> {
    Mapping::new(fd, offset, len)
        .map_err(|e| HostError::Errno(e.raw_os_error().unwrap_or(libc::EINVAL)))
}
