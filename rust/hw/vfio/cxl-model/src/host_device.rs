// SPDX-License-Identifier: GPL-2.0-or-later

//! How the device core asks the host for what it needs: a small trait over
//! one VFIO device.
//!
//! QEMU's glue implements [`HostDevice`] over a realized `VFIODevice` (the
//! same calls serve kernel VFIO and vfio-user, because QEMU routes them
//! through the device's `io_ops`), and the tests of
//! [`crate::passthrough`] implement it over the kernel-shadow model of
//! [`crate::host`].  Everything above the trait (discovery, the guest
//! view, reset sequencing) is the same code in both.

use std::ffi::CStr;
use std::fmt;
use std::io;

use crate::discovery::RegionDesc;
use crate::dvsec::PCI_CONFIG_SPACE_SIZE;
use crate::uapi::{self, UapiError, VFIO_PCI_CONFIG_REGION_INDEX};

/// The resets a guest can cause; they differ in what CXL state survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetKind {
    /// Function Level Reset: CXL.mem state (HDM decoders, DVSEC) stays, as
    /// the CXL specification says.
    Flr,
    /// CXL Reset through the DVSEC: CXL.mem state returns to its boot value;
    /// the function's PCI configuration (the Command register) stays.
    Cxl,
    /// System reset or secondary bus reset: everything returns to boot.
    SystemOrBus,
}

impl ResetKind {
    /// How messages and trace events name the reset.
    pub const fn name(self) -> &'static CStr {
        match self {
            ResetKind::Flr => c"FLR",
            ResetKind::Cxl => c"CXL",
            ResetKind::SystemOrBus => c"system or bus",
        }
    }
}

impl fmt::Display for ResetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name().to_string_lossy())
    }
}

/// One VFIO device on the host, as the device core sees it.
///
/// Offsets and indices are the VFIO ones; errors are the host's (an errno
/// from the kernel or the vfio-user server, or a transport failure).
pub trait HostDevice {
    /// Number of region indices the device reports.
    fn region_count(&self) -> u32;

    /// The raw `vfio_region_info` of region `index`, capabilities
    /// included, or `None` if the host does not describe that index.
    fn region_info(&self, index: u32) -> Option<Vec<u8>>;

    /// Reads `buf.len()` bytes at `offset` of region `index`.
    fn region_read(&self, index: u32, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Writes `data` at `offset` of region `index`.
    fn region_write(&self, index: u32, offset: u64, data: &[u8]) -> io::Result<()>;

    /// The raw `vfio_device_info` with its capability chain.  Only kernel
    /// VFIO has device-info capabilities; over vfio-user this is `None`.
    fn device_info(&self) -> Option<Vec<u8>>;

    /// Whether the host can reset the device at all.
    fn can_reset(&self) -> bool;

    /// Resets the device on the host and reports whether that worked.
    fn reset(&self, kind: ResetKind) -> io::Result<()>;

    /// False once the host side is gone for good (a vfio-user server that
    /// closed the connection); a kernel VFIO device stays.
    fn connected(&self) -> bool {
        true
    }

    /// One little-endian dword of region `index`.
    fn read32(&self, index: u32, offset: u64) -> io::Result<u32> {
        let mut buf = [0u8; 4];
        self.region_read(index, offset, &mut buf)?;
        Ok(u32::from_le_bytes(buf))
    }

    /// Writes one little-endian dword of region `index`.
    fn write32(&self, index: u32, offset: u64, value: u32) -> io::Result<()> {
        self.region_write(index, offset, &value.to_le_bytes())
    }

    /// The device's configuration space as the host presents it.
    fn config_space(&self) -> io::Result<Vec<u8>> {
        let mut config = vec![0u8; PCI_CONFIG_SPACE_SIZE];
        self.region_read(VFIO_PCI_CONFIG_REGION_INDEX, 0, &mut config)?;
        Ok(config)
    }
}

/// A region description the host sent that cannot be decoded: such a host
/// is broken and the device is refused.
#[derive(Debug)]
pub enum RegionInfoError {
    /// The `vfio_region_info` itself is malformed.
    Info {
        /// Region index.
        index: u32,
        /// What is wrong.
        source: UapiError,
    },
    /// Its capability chain is malformed.
    Capabilities {
        /// Region index.
        index: u32,
        /// What is wrong.
        source: UapiError,
    },
}

impl fmt::Display for RegionInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Info { index, .. } => write!(f, "region {index} information is invalid"),
            Self::Capabilities { index, .. } => {
                write!(f, "region {index} capabilities are invalid")
            }
        }
    }
}

impl std::error::Error for RegionInfoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Info { source, .. } | Self::Capabilities { source, .. } => Some(source),
        }
    }
}

/// One [`RegionDesc`] for every region index the host describes.
pub fn region_descs(host: &impl HostDevice) -> Result<Vec<RegionDesc>, RegionInfoError> {
    let mut regions = Vec::new();
    for index in 0..host.region_count() {
        let Some(bytes) = host.region_info(index) else {
            continue;
        };
        let info = uapi::parse_region_info(&bytes)
            .map_err(|source| RegionInfoError::Info { index, source })?;
        let cap_type = uapi::region_info_type(&bytes)
            .map_err(|source| RegionInfoError::Capabilities { index, source })?;
        regions.push(RegionDesc {
            index,
            size: info.size,
            flags: info.flags,
            cap_type,
        });
    }
    Ok(regions)
}
