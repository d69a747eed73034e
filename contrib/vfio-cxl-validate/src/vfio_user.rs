// SPDX-License-Identifier: GPL-2.0-or-later

//! A host served over vfio-user (`--socket`): the simulator, or any
//! vfio-user server.  The transport is the simulator crate's client;
//! nothing of its CXL model is used.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use vfio_user_cxl_sim::client::{Client, ClientError};

use crate::host::{
    map_fd, DeviceInfo, DmaBufExport, Host, HostError, HostResult, Mapping, RegionInfo, Transport,
};

pub struct VfioUserHost {
    socket: PathBuf,
    client: Client,
    /// The fd each region's info passed, kept for `map`.
    fds: HashMap<u32, OwnedFd>,
}

impl From<ClientError> for HostError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Remote(errno) => Self::Errno(errno),
            other => Self::Transport(other.to_string()),
        }
    }
}

impl VfioUserHost {
    /// Connects and negotiates the protocol version.
    pub fn connect(socket: &Path) -> HostResult<Self> {
        let client = Client::connect(socket)?;
        Ok(Self {
            socket: socket.to_owned(),
            client,
            fds: HashMap::new(),
        })
    }
}

impl Host for VfioUserHost {
    fn describe(&self) -> String {
        format!("vfio-user socket {}", self.socket.display())
    }

    fn transport(&self) -> Transport {
        Transport::VfioUser
    }

    fn device_info(&mut self) -> HostResult<DeviceInfo> {
        let i = self.client.device_info()?;
        Ok(DeviceInfo {
            flags: i.flags,
            num_regions: i.num_regions,
            num_irqs: i.num_irqs,
            raw: None,
        })
    }

    fn region_info(&mut self, index: u32) -> HostResult<RegionInfo> {
        let r = self.client.region_info(index)?;
        if let Some(fd) = r.fd {
            self.fds.insert(index, fd);
        }
        Ok(RegionInfo {
            index,
            flags: r.info.flags,
            size: r.info.size,
            offset: r.info.offset,
            raw: r.raw,
        })
    }

    fn read(&mut self, region: u32, offset: u64, len: usize) -> HostResult<Vec<u8>> {
        let n = u32::try_from(len).map_err(|_| HostError::Errno(libc::EINVAL))?;
        Ok(self.client.region_read(region, offset, n)?)
    }

    fn write(&mut self, region: u32, offset: u64, data: &[u8]) -> HostResult<()> {
        Ok(self.client.region_write(region, offset, data)?)
    }

    fn map(&mut self, info: &RegionInfo, offset: u64, len: usize) -> HostResult<Mapping> {
        let fd = self
            .fds
            .get(&info.index)
            .ok_or_else(|| HostError::Unsupported(format!("region {} passed no fd", info.index)))?;
        map_fd(fd.as_fd(), info.offset + offset, len)
    }

    fn reset(&mut self) -> HostResult<()> {
        Ok(self.client.reset()?)
    }

    fn export_dma_buf(&mut self, _region: u32, _len: u64) -> Option<HostResult<DmaBufExport>> {
        None
    }
}
