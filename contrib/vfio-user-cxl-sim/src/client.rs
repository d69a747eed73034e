// SPDX-License-Identifier: GPL-2.0-or-later

//! A small, synchronous vfio-user client, enough to exercise the
//! simulator from tests and benchmarks the way QEMU's client does
//! (version negotiation, region info with the `argsz` retry, region
//! access, fd passing), plus a helper for the control socket.

use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::ptr::NonNull;
use std::time::Duration;

use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use serde_json::{json, Value};

use crate::protocol::{
    cmd, encode_region_info, flags, parse_region_info, DeviceInfo, DmaMap, DmaUnmap, Header,
    IrqInfo, IrqSet, RegionAccess, RegionInfo, Version, REGION_INFO_SIZE,
};
use crate::wire;

/// What went wrong with a request.
#[derive(Debug)]
pub enum ClientError {
    /// The socket failed or closed.
    Io(io::Error),
    /// The server replied with an error; the errno it sent.
    Remote(i32),
    /// The reply did not make sense.
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Remote(e) => write!(f, "server error: errno {e}"),
            Self::Protocol(s) => write!(f, "protocol error: {s}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<crate::protocol::ProtocolError> for ClientError {
    fn from(e: crate::protocol::ProtocolError) -> Self {
        Self::Protocol(e.0)
    }
}

impl ClientError {
    /// The remote errno, if the server replied with an error.
    #[must_use]
    pub const fn errno(&self) -> Option<i32> {
        match self {
            Self::Remote(e) => Some(*e),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// A complete reply.
#[derive(Debug)]
pub struct ReplyMsg {
    pub header: Header,
    pub payload: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

/// A region-info reply.
#[derive(Debug)]
pub struct RegionReply {
    pub info: RegionInfo,
    /// The whole reply payload (`vfio_region_info` and capabilities), as
    /// a capability-chain parser wants it.
    pub raw: Vec<u8>,
    /// The descriptor passed for `mmap`, if any.
    pub fd: Option<OwnedFd>,
}

/// The capabilities JSON QEMU 10.2's client proposes.
pub const QEMU_CAPS: &str = r#"{"capabilities":{"migration":{"pgsize":4096,"max_bitmap_size":268435456},"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096,"max_dma_maps":65535,"write_multiple":true}}"#;

/// Longest wait for a reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Client {
    sock: UnixStream,
    next_id: u16,
}

impl Client {
    /// Connects without negotiating.  Replies are awaited at most
    /// [`REPLY_TIMEOUT`], so that a broken server fails a test instead
    /// of hanging it.
    pub fn connect_raw(path: &Path) -> Result<Self> {
        let sock = UnixStream::connect(path)?;
        sock.set_read_timeout(Some(REPLY_TIMEOUT))?;
        Ok(Self { sock, next_id: 0 })
    }

    /// Connects and negotiates the version the way QEMU does.
    pub fn connect(path: &Path) -> Result<Self> {
        let mut c = Self::connect_raw(path)?;
        c.negotiate(QEMU_CAPS)?;
        Ok(c)
    }

    /// The underlying socket (e.g. to send malformed bytes).
    #[must_use]
    pub const fn socket(&self) -> &UnixStream {
        &self.sock
    }

    /// Sends `VFIO_USER_VERSION` and returns the server's capabilities.
    pub fn negotiate(&mut self, caps_json: &str) -> Result<Value> {
        let v = Version {
            major: 0,
            minor: 0,
            json: Some(caps_json.to_owned()),
        };
        let r = self.request(cmd::VERSION, &v.encode(), &[])?;
        let reply = Version::parse(&r.payload)?;
        if reply.major != 0 || reply.minor != 0 {
            return Err(ClientError::Protocol("unexpected server version".into()));
        }
        let text = reply.json.unwrap_or_default();
        serde_json::from_str(&text).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Sends a request and waits for its reply.  An error reply becomes
    /// [`ClientError::Remote`].
    pub fn request(
        &mut self,
        command: u16,
        payload: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> Result<ReplyMsg> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let h = Header {
            id,
            command,
            flags: flags::REQUEST,
            ..Header::default()
        };
        wire::send_message(&self.sock, &h, payload, fds)?;
        let m = wire::recv_message(&self.sock, 64 << 20)?
            .ok_or_else(|| ClientError::Io(io::ErrorKind::UnexpectedEof.into()))?;
        if !m.header.is_reply() || m.header.id != id || m.header.command != command {
            return Err(ClientError::Protocol(format!(
                "reply {:?} does not match request id {id} command {command}",
                m.header
            )));
        }
        if m.header.is_error() {
            return Err(ClientError::Remote(m.header.error as i32));
        }
        Ok(ReplyMsg {
            header: m.header,
            payload: m.payload,
            fds: m.fds,
        })
    }

    /// Sends a request flagged "no reply".
    pub fn post(&mut self, command: u16, payload: &[u8]) -> Result<()> {
        let h = Header {
            id: self.next_id,
            command,
            flags: flags::REQUEST | flags::NO_REPLY,
            ..Header::default()
        };
        self.next_id = self.next_id.wrapping_add(1);
        Ok(wire::send_message(&self.sock, &h, payload, &[])?)
    }

    pub fn device_info(&mut self) -> Result<DeviceInfo> {
        let req = DeviceInfo {
            argsz: DeviceInfo::SIZE,
            ..DeviceInfo::default()
        };
        let r = self.request(cmd::DEVICE_GET_INFO, &req.encode(), &[])?;
        Ok(DeviceInfo::parse(&r.payload)?)
    }

    /// One region-info request with the given `argsz`.
    pub fn region_info_argsz(&mut self, index: u32, argsz: u32) -> Result<RegionReply> {
        let req = RegionInfo {
            argsz,
            index,
            ..RegionInfo::default()
        };
        let mut payload = encode_region_info(&req);
        payload.resize(argsz.max(REGION_INFO_SIZE) as usize, 0);
        let mut r = self.request(cmd::DEVICE_GET_REGION_INFO, &payload, &[])?;
        if r.payload.len() > argsz as usize {
            return Err(ClientError::Protocol(format!(
                "region info reply of {} bytes exceeds argsz {argsz}",
                r.payload.len()
            )));
        }
        if r.fds.len() > 1 {
            return Err(ClientError::Protocol("more than one fd".into()));
        }
        Ok(RegionReply {
            info: parse_region_info(&r.payload)?,
            raw: r.payload,
            fd: r.fds.pop(),
        })
    }

    /// Region info as QEMU gets it: ask with the bare structure, then
    /// again with the `argsz` the server asked for.
    pub fn region_info(&mut self, index: u32) -> Result<RegionReply> {
        let first = self.region_info_argsz(index, REGION_INFO_SIZE)?;
        if first.info.argsz > REGION_INFO_SIZE {
            self.region_info_argsz(index, first.info.argsz)
        } else {
            Ok(first)
        }
    }

    pub fn region_read(&mut self, region: u32, offset: u64, count: u32) -> Result<Vec<u8>> {
        let req = RegionAccess {
            offset,
            region,
            count,
        };
        let r = self.request(cmd::REGION_READ, &req.encode(), &[])?;
        let got = RegionAccess::parse(&r.payload)?;
        let data = &r.payload[RegionAccess::SIZE as usize..];
        if got.count != count || data.len() != count as usize {
            return Err(ClientError::Protocol("short region read".into()));
        }
        Ok(data.to_vec())
    }

    pub fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> Result<()> {
        let req = RegionAccess {
            offset,
            region,
            count: data.len() as u32,
        };
        let mut payload = req.encode();
        payload.extend_from_slice(data);
        self.request(cmd::REGION_WRITE, &payload, &[])?;
        Ok(())
    }

    pub fn read_u32(&mut self, region: u32, offset: u64) -> Result<u32> {
        let b = self.region_read(region, offset, 4)?;
        Ok(cxl_model::uapi::rd_u32(&b, 0).unwrap_or_default())
    }

    pub fn write_u32(&mut self, region: u32, offset: u64, v: u32) -> Result<()> {
        self.region_write(region, offset, &v.to_le_bytes())
    }

    pub fn reset(&mut self) -> Result<()> {
        self.request(cmd::DEVICE_RESET, &[], &[])?;
        Ok(())
    }

    pub fn irq_info(&mut self, index: u32) -> Result<IrqInfo> {
        let req = IrqInfo {
            argsz: IrqInfo::SIZE,
            index,
            ..IrqInfo::default()
        };
        let r = self.request(cmd::DEVICE_GET_IRQ_INFO, &req.encode(), &[])?;
        Ok(IrqInfo::parse(&r.payload)?)
    }

    pub fn set_irqs(&mut self, set: &IrqSet, fds: &[BorrowedFd<'_>]) -> Result<()> {
        self.request(cmd::DEVICE_SET_IRQS, &set.encode(), fds)?;
        Ok(())
    }

    pub fn dma_map(&mut self, map: &DmaMap, fd: Option<BorrowedFd<'_>>) -> Result<()> {
        let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
        self.request(cmd::DMA_MAP, &map.encode(), &fds)?;
        Ok(())
    }

    pub fn dma_unmap(&mut self, unmap: &DmaUnmap) -> Result<DmaUnmap> {
        let r = self.request(cmd::DMA_UNMAP, &unmap.encode(), &[])?;
        Ok(DmaUnmap::parse(&r.payload)?)
    }
}

/// A shared mapping of (part of) a region through its passed descriptor.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes at `offset` of `fd`, readable and writable.
    pub fn new(fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<Self> {
        let n = NonZeroUsize::new(len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty mapping"))?;
        let off = i64::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        // SAFETY: a fresh shared mapping at an address the kernel picks;
        // it aliases no Rust object and is only reached through the
        // bounds-checked accessors below.
        let p = unsafe {
            mmap(
                None,
                n,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                fd.as_fd(),
                off,
            )
        }?;
        Ok(Self { ptr: p.cast(), len })
    }

    fn at(&self, offset: usize) -> *mut u32 {
        assert!(
            offset % 4 == 0 && offset + 4 <= self.len,
            "mapping access at {offset:#x} out of bounds"
        );
        self.ptr.as_ptr().wrapping_add(offset).cast()
    }

    #[must_use]
    pub fn read_u32(&self, offset: usize) -> u32 {
        // SAFETY: `at` checked alignment and bounds inside the live mapping.
        unsafe { self.at(offset).read_volatile() }
    }

    pub fn write_u32(&self, offset: usize, v: u32) {
        // SAFETY: `at` checked alignment and bounds inside the live mapping.
        unsafe { self.at(offset).write_volatile(v) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `new`, which no
        // reference outlives.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// Sends one command line to a control socket and returns its reply.
pub fn control(path: &Path, command: &str) -> io::Result<Value> {
    let mut s = UnixStream::connect(path)?;
    writeln!(s, "{command}")?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// A `DATA_EVENTFD | ACTION_TRIGGER` interrupt set for one vector.
#[must_use]
pub fn eventfd_trigger(index: u32, start: u32, count: u32) -> IrqSet {
    use vfio_bindings::bindings::vfio::{VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD};
    IrqSet {
        argsz: IrqSet::SIZE,
        flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
        index,
        start,
        count,
    }
}

/// `{"capabilities":{}}`, the smallest proposal.
#[must_use]
pub fn empty_caps() -> String {
    json!({ "capabilities": {} }).to_string()
}
