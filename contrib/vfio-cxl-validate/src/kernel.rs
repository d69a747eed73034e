// SPDX-License-Identifier: GPL-2.0-or-later

//! A host reached through kernel VFIO (`--host BDF`, `--sysfsdev PATH`):
//! the iommufd device cdev (`/dev/vfio/devices/vfioX` bound to
//! `/dev/iommu`) when the kernel offers one, else the group
//! (`/dev/vfio/N`) in a type-1 container.  Region access is
//! `pread`/`pwrite` at the region's offset in the device fd.
//!
//! Before it opens anything, it checks that the function is bound to
//! vfio-pci; after, that the device flags carry `VFIO_DEVICE_FLAGS_CXL`.
//! Either missing ends the run with a message saying so.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::host::{
    le32, map_fd, DeviceInfo, DmaBufExport, Host, HostError, HostResult, IommuBackend, Mapping,
    RegionInfo, Transport,
};
use crate::layout::{device_flags, DEVICE_INFO_SIZE, REGION_INFO_SIZE};

/// `_IO(';', nr)`: VFIO and iommufd ioctls carry no size in the number.
const fn vfio_io(nr: u64) -> u64 {
    (b';' as u64) << 8 | nr
}

const VFIO_GET_API_VERSION: u64 = vfio_io(100);
const VFIO_CHECK_EXTENSION: u64 = vfio_io(101);
const VFIO_SET_IOMMU: u64 = vfio_io(102);
const VFIO_GROUP_GET_STATUS: u64 = vfio_io(103);
const VFIO_GROUP_SET_CONTAINER: u64 = vfio_io(104);
const VFIO_GROUP_GET_DEVICE_FD: u64 = vfio_io(106);
const VFIO_DEVICE_GET_INFO: u64 = vfio_io(107);
const VFIO_DEVICE_GET_REGION_INFO: u64 = vfio_io(108);
const VFIO_DEVICE_RESET: u64 = vfio_io(111);
const VFIO_DEVICE_FEATURE: u64 = vfio_io(117);
const VFIO_DEVICE_BIND_IOMMUFD: u64 = vfio_io(118);
const VFIO_DEVICE_ATTACH_IOMMUFD_PT: u64 = vfio_io(119);
const IOMMU_IOAS_ALLOC: u64 = vfio_io(0x81);
const IOMMU_IOAS_UNMAP: u64 = vfio_io(0x86);
const IOMMU_IOAS_MAP_FILE: u64 = vfio_io(0x8F);

const VFIO_API_VERSION: i32 = 0;
const VFIO_TYPE1_IOMMU: u64 = 1;
const VFIO_TYPE1V2_IOMMU: u64 = 3;
const VFIO_GROUP_FLAGS_VIABLE: u32 = 1 << 0;
const VFIO_DEVICE_FEATURE_GET: u32 = 1 << 16;
/// `VFIO_DEVICE_FEATURE_DMA_BUF`.
const FEATURE_DMA_BUF: u32 = 11;
const IOMMU_IOAS_MAP_WRITEABLE: u32 = 1 << 1;
const IOMMU_IOAS_MAP_READABLE: u32 = 1 << 2;

/// Issues `req` on `fd` with `arg` (a pointer to a structure of the
/// request's layout, or a plain value); returns the ioctl's result.
fn ioctl(fd: RawFd, req: u64, arg: libc::c_ulong) -> HostResult<i32> {
    // SAFETY: every caller passes a request number whose argument is
    // either a plain integer or a pointer to a live, writable buffer at
    // least as large as the structure the request reads and writes (its
    // `argsz`/`size` field says so to the kernel, which never writes
    // beyond it).
    let r = unsafe { libc::ioctl(fd, req as libc::c_ulong, arg) };
    if r < 0 {
        Err(HostError::Errno(nix::errno::Errno::last_raw()))
    } else {
        Ok(r)
    }
}

/// `ioctl` with a pointer to `buf`, which starts with its own size.
fn ioctl_buf(fd: RawFd, req: u64, buf: &mut [u8]) -> HostResult<i32> {
    ioctl(fd, req, buf.as_mut_ptr() as libc::c_ulong)
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Where to find the function.
#[derive(Debug, Clone)]
pub enum Target {
    Bdf(String),
    Sysfs(PathBuf),
}

/// The kernel release, for messages and the report.
#[must_use]
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned())
}

const NEEDS: &str = "this mode needs a CXL Type-2 function bound to vfio-pci on a kernel \
                     carrying the vfio-pci CXL Type-2 series";

/// The function's sysfs directory, which must exist and be bound to
/// vfio-pci.
pub fn sysfs_dir(t: &Target) -> HostResult<PathBuf> {
    let dir = match t {
        Target::Bdf(b) => Path::new("/sys/bus/pci/devices").join(b),
        Target::Sysfs(p) => p.clone(),
    };
    if !dir.join("config").exists() {
        return Err(HostError::Refused(format!(
            "no PCI function at {} (kernel {}): {NEEDS}",
            dir.display(),
            kernel_release()
        )));
    }
    let driver = fs::read_link(dir.join("driver"))
        .ok()
        .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()));
    match driver.as_deref() {
        Some("vfio-pci") => Ok(dir),
        other => Err(HostError::Refused(format!(
            "refusing {}: bound to {}, not vfio-pci; the kit touches only a function \
             bound to vfio-pci (write vfio-pci to its driver_override, unbind it, then \
             write it to /sys/bus/pci/drivers_probe)",
            dir.display(),
            other.map_or_else(|| "no driver".to_owned(), |d| format!("driver '{d}'"))
        ))),
    }
}

/// Whether the function is reached through the iommufd cdev (as
/// [`KernelHost::open`] decides), which QEMU must then be told too.
#[must_use]
pub fn uses_iommufd(t: &Target) -> bool {
    sysfs_dir(t).is_ok_and(|d| cdev_name(&d).is_some()) && Path::new("/dev/iommu").exists()
}

/// Refuses a device whose VFIO flags lack `VFIO_DEVICE_FLAGS_CXL`.
pub fn require_cxl(name: &str, flags: u32) -> HostResult<()> {
    if flags & device_flags::CXL != 0 {
        return Ok(());
    }
    Err(HostError::Refused(format!(
        "{name}: device flags {flags:#x} lack VFIO_DEVICE_FLAGS_CXL (bit 9): kernel {} does not \
         carry the vfio-pci CXL Type-2 series, or the function is not a CXL Type-2 device",
        kernel_release()
    )))
}

pub struct KernelHost {
    name: String,
    backend: IommuBackend,
    device: File,
    /// Kept open for the device's lifetime.
    _container: Option<File>,
    _group: Option<File>,
    iommufd: Option<File>,
    ioas: u32,
    offsets: HashMap<u32, u64>,
}

fn open_rw(p: &Path) -> HostResult<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .map_err(|e| HostError::Refused(format!("cannot open {}: {e}", p.display())))
}

/// The cdev name (`vfioX`) under the function's `vfio-dev/`, if any.
fn cdev_name(dir: &Path) -> Option<String> {
    fs::read_dir(dir.join("vfio-dev"))
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("vfio"))
}

impl KernelHost {
    /// Opens the function, refusing it unless bound to vfio-pci and CXL.
    pub fn open(t: &Target) -> HostResult<Self> {
        let dir = sysfs_dir(t)?;
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        let mut h = match cdev_name(&dir) {
            Some(cdev) if Path::new("/dev/iommu").exists() => Self::open_cdev(&name, &cdev)?,
            _ => Self::open_group(&name, &dir)?,
        };
        let info = h.device_info()?;
        require_cxl(&name, info.flags)?;
        Ok(h)
    }

    fn open_cdev(name: &str, cdev: &str) -> HostResult<Self> {
        let device = open_rw(&Path::new("/dev/vfio/devices").join(cdev))?;
        let iommufd = open_rw(Path::new("/dev/iommu"))?;
        // struct vfio_device_bind_iommufd { argsz, flags, iommufd, out_devid }
        let mut bind = [0u8; 16];
        put32(&mut bind, 0, 16);
        put32(&mut bind, 8, iommufd.as_raw_fd() as u32);
        ioctl_buf(device.as_raw_fd(), VFIO_DEVICE_BIND_IOMMUFD, &mut bind)
            .map_err(|e| HostError::Refused(format!("{name}: VFIO_DEVICE_BIND_IOMMUFD: {e}")))?;
        // struct iommu_ioas_alloc { size, flags, out_ioas_id }
        let mut alloc = [0u8; 12];
        put32(&mut alloc, 0, 12);
        ioctl_buf(iommufd.as_raw_fd(), IOMMU_IOAS_ALLOC, &mut alloc)?;
        let ioas = le32(&alloc, 8);
        // struct vfio_device_attach_iommufd_pt { argsz, flags, pt_id }
        let mut attach = [0u8; 12];
        put32(&mut attach, 0, 12);
        put32(&mut attach, 8, ioas);
        ioctl_buf(
            device.as_raw_fd(),
            VFIO_DEVICE_ATTACH_IOMMUFD_PT,
            &mut attach,
        )?;
        Ok(Self {
            name: format!("{name} ({cdev}, iommufd IOAS {ioas})"),
            backend: IommuBackend::Iommufd,
            device,
            _container: None,
            _group: None,
            iommufd: Some(iommufd),
            ioas,
            offsets: HashMap::new(),
        })
    }

    fn open_group(name: &str, dir: &Path) -> HostResult<Self> {
        let group_no = fs::read_link(dir.join("iommu_group"))
            .ok()
            .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()))
            .ok_or_else(|| HostError::Refused(format!("{name}: no IOMMU group")))?;
        let container = open_rw(Path::new("/dev/vfio/vfio"))?;
        let api = ioctl(container.as_raw_fd(), VFIO_GET_API_VERSION, 0)?;
        if api != VFIO_API_VERSION {
            return Err(HostError::Refused(format!(
                "VFIO API version {api}, want 0"
            )));
        }
        let group = open_rw(&Path::new("/dev/vfio").join(&group_no))?;
        let mut status = [0u8; 8];
        put32(&mut status, 0, 8);
        ioctl_buf(group.as_raw_fd(), VFIO_GROUP_GET_STATUS, &mut status)?;
        if le32(&status, 4) & VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(HostError::Refused(format!(
                "{name}: IOMMU group {group_no} is not viable: bind every function in it to vfio-pci"
            )));
        }
        let mut cfd: i32 = container.as_raw_fd();
        ioctl(
            group.as_raw_fd(),
            VFIO_GROUP_SET_CONTAINER,
            &raw mut cfd as libc::c_ulong,
        )?;
        let iommu = if ioctl(
            container.as_raw_fd(),
            VFIO_CHECK_EXTENSION,
            VFIO_TYPE1V2_IOMMU,
        )? > 0
        {
            VFIO_TYPE1V2_IOMMU
        } else {
            VFIO_TYPE1_IOMMU
        };
        ioctl(container.as_raw_fd(), VFIO_SET_IOMMU, iommu)?;
        let cname = CString::new(name).map_err(|_| HostError::Refused("bad device name".into()))?;
        let fd = ioctl(
            group.as_raw_fd(),
            VFIO_GROUP_GET_DEVICE_FD,
            cname.as_ptr() as libc::c_ulong,
        )?;
        // SAFETY: the ioctl returned a new descriptor that nothing else owns.
        let device = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(Self {
            name: format!("{name} (group {group_no}, type-1 container)"),
            backend: IommuBackend::Container,
            device,
            _container: Some(container),
            _group: Some(group),
            iommufd: None,
            ioas: 0,
            offsets: HashMap::new(),
        })
    }

    /// A `*_GET_INFO` request, repeated with the size the kernel asks for.
    fn get_info(&self, req: u64, base: usize, index: Option<u32>) -> HostResult<Vec<u8>> {
        let mut size = base;
        for _ in 0..2 {
            let mut buf = vec![0u8; size];
            put32(&mut buf, 0, size as u32);
            if let Some(i) = index {
                put32(&mut buf, 8, i);
            }
            ioctl_buf(self.device.as_raw_fd(), req, &mut buf)?;
            let want = le32(&buf, 0) as usize;
            if want <= size {
                return Ok(buf);
            }
            size = want;
        }
        Err(HostError::Transport("info size keeps growing".into()))
    }

    fn offset_of(&mut self, region: u32) -> HostResult<u64> {
        if let Some(o) = self.offsets.get(&region) {
            return Ok(*o);
        }
        Ok(self.region_info(region)?.offset)
    }
}

impl Host for KernelHost {
    fn describe(&self) -> String {
        format!("kernel VFIO {}, kernel {}", self.name, kernel_release())
    }

    fn transport(&self) -> Transport {
        Transport::Kernel {
            backend: self.backend,
        }
    }

    fn device_info(&mut self) -> HostResult<DeviceInfo> {
        let raw = self.get_info(VFIO_DEVICE_GET_INFO, DEVICE_INFO_SIZE, None)?;
        Ok(DeviceInfo {
            flags: le32(&raw, 4),
            num_regions: le32(&raw, 8),
            num_irqs: le32(&raw, 12),
            raw: Some(raw),
        })
    }

    fn region_info(&mut self, index: u32) -> HostResult<RegionInfo> {
        let raw = self.get_info(VFIO_DEVICE_GET_REGION_INFO, REGION_INFO_SIZE, Some(index))?;
        let info = RegionInfo {
            index,
            flags: le32(&raw, 4),
            size: crate::host::le64(&raw, 16),
            offset: crate::host::le64(&raw, 24),
            raw,
        };
        self.offsets.insert(index, info.offset);
        Ok(info)
    }

    fn read(&mut self, region: u32, offset: u64, len: usize) -> HostResult<Vec<u8>> {
        let base = self.offset_of(region)?;
        let mut buf = vec![0u8; len];
        let n = self
            .device
            .read_at(&mut buf, base + offset)
            .map_err(|e| HostError::Errno(e.raw_os_error().unwrap_or(libc::EIO)))?;
        buf.truncate(n);
        Ok(buf)
    }

    fn write(&mut self, region: u32, offset: u64, data: &[u8]) -> HostResult<()> {
        let base = self.offset_of(region)?;
        let n = self
            .device
            .write_at(data, base + offset)
            .map_err(|e| HostError::Errno(e.raw_os_error().unwrap_or(libc::EIO)))?;
        if n == data.len() {
            Ok(())
        } else {
            Err(HostError::Transport(format!(
                "short write: {n} of {} bytes",
                data.len()
            )))
        }
    }

    fn map(&mut self, info: &RegionInfo, offset: u64, len: usize) -> HostResult<Mapping> {
        map_fd(self.device.as_fd(), info.offset + offset, len)
    }

    fn reset(&mut self) -> HostResult<()> {
        ioctl(self.device.as_raw_fd(), VFIO_DEVICE_RESET, 0).map(|_| ())
    }

    fn export_dma_buf(&mut self, region: u32, len: u64) -> Option<HostResult<DmaBufExport>> {
        Some(self.dma_buf(region, len))
    }
}

impl KernelHost {
    fn dma_buf(&self, region: u32, len: u64) -> HostResult<DmaBufExport> {
        // struct vfio_device_feature { argsz, flags } followed by
        // struct vfio_device_feature_dma_buf { region_index, open_flags,
        // flags, nr_ranges } and one { u64 offset, u64 length }.
        let mut buf = [0u8; 8 + 16 + 16];
        put32(&mut buf, 0, 40);
        put32(&mut buf, 4, VFIO_DEVICE_FEATURE_GET | FEATURE_DMA_BUF);
        put32(&mut buf, 8, region);
        put32(&mut buf, 12, (libc::O_RDWR | libc::O_CLOEXEC) as u32);
        put32(&mut buf, 20, 1);
        put64(&mut buf, 24, 0);
        put64(&mut buf, 32, len);
        let fd = ioctl_buf(self.device.as_raw_fd(), VFIO_DEVICE_FEATURE, &mut buf)?;
        // SAFETY: the ioctl returned a new descriptor that nothing else owns.
        let dmabuf = unsafe { OwnedFd::from_raw_fd(fd) };
        let Some(iommufd) = &self.iommufd else {
            return Ok(DmaBufExport {
                iova: None,
                detail: format!(
                    "exported {len:#x} bytes of region {region} as DMABUF fd {fd}; not mapped: \
                     the type-1 container cannot import a DMABUF (iommufd can)"
                ),
            });
        };
        // struct iommu_ioas_map_file { size, flags, ioas_id, fd, start,
        // length, iova }
        let mut map = [0u8; 40];
        put32(&mut map, 0, 40);
        put32(
            &mut map,
            4,
            IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE,
        );
        put32(&mut map, 8, self.ioas);
        put32(&mut map, 12, dmabuf.as_raw_fd() as u32);
        put64(&mut map, 24, len);
        ioctl_buf(iommufd.as_raw_fd(), IOMMU_IOAS_MAP_FILE, &mut map)?;
        let iova = crate::host::le64(&map, 32);
        // struct iommu_ioas_unmap { size, ioas_id, iova, length }
        let mut unmap = [0u8; 24];
        put32(&mut unmap, 0, 24);
        put32(&mut unmap, 4, self.ioas);
        put64(&mut unmap, 8, iova);
        put64(&mut unmap, 16, len);
        let un = ioctl_buf(iommufd.as_raw_fd(), IOMMU_IOAS_UNMAP, &mut unmap);
        Ok(DmaBufExport {
            iova: Some(iova),
            detail: format!(
                "exported {len:#x} bytes of region {region} as a DMABUF, IOMMU_IOAS_MAP_FILE put it at \
                 IOVA {iova:#x} in IOAS {}, unmap {un:?}",
                self.ioas
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers() {
        assert_eq!(VFIO_GET_API_VERSION, 0x3B64);
        assert_eq!(VFIO_DEVICE_GET_INFO, 0x3B6B);
        assert_eq!(VFIO_DEVICE_RESET, 0x3B6F);
        assert_eq!(VFIO_DEVICE_FEATURE, 0x3B75);
        assert_eq!(IOMMU_IOAS_MAP_FILE, 0x3B8F);
    }

    #[test]
    fn a_device_without_the_cxl_flag_is_refused() {
        require_cxl("0000:3b:00.0", 0x203).unwrap();
        let e = require_cxl("0000:3b:00.0", 0x3).unwrap_err().to_string();
        assert!(
            e.contains("device flags 0x3 lack VFIO_DEVICE_FLAGS_CXL"),
            "{e}"
        );
        assert!(e.contains("vfio-pci CXL Type-2 series"), "{e}");
    }
}
