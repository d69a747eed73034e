// SPDX-License-Identifier: GPL-2.0-or-later

//! The vfio-user server: socket set-up, the per-connection message loop
//! and the dispatch of each command to the device.
//!
//! One client is served at a time.  Each connection starts with a
//! powered-on device (device memory excepted) and must begin with
//! `VFIO_USER_VERSION`.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use nix::errno::Errno;
use serde_json::{json, Map, Value};
use vfio_bindings::bindings::vfio::VFIO_REGION_INFO_FLAG_CAPS;

use crate::control::Stats;
use crate::device::{Device, NUM_IRQS, NUM_REGIONS};
use crate::hostile::{Flow, Hostile, Outgoing, Plan};
use crate::memory::Backing;
use crate::options::Options;
use crate::protocol::{
    cmd, encode_region_info, flags, parse_region_info, DeviceInfo, DmaMap, DmaUnmap, Header,
    IrqInfo, IrqSet, RegionAccess, RegionInfo, Version, REGION_INFO_SIZE, VERSION_MAJOR,
    VERSION_MINOR,
};
use crate::wire::{self, Message, MAX_FDS};

/// Largest data transfer in one region access (advertised).
pub const MAX_DATA_XFER: u64 = 1 << 20;
/// How long a client that finds another connected waits for it to leave.
const BUSY_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a refused client may take to send its first request.
const BUSY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Largest message accepted before the connection is dropped.
const MAX_MESSAGE: usize = (64 << 20) + 4096;
/// DMA page sizes supported (advertised).
const PGSIZES: u64 = 4096;
/// Most DMA windows at once (advertised).
const MAX_DMA_MAPS: u64 = 65535;

/// The simulator: the device and its counters, shared by the vfio-user
/// connection and the control socket.
pub struct Simulator {
    device: Mutex<Device>,
    pub stats: Arc<Stats>,
    verbose: bool,
    /// Hostile mode: the reply each connection answers wrongly.
    hostile: Option<Plan>,
}

/// A successful reply: payload and descriptors to pass with it.
struct Reply<'a> {
    payload: Vec<u8>,
    fds: Vec<BorrowedFd<'a>>,
}

impl Reply<'_> {
    const fn data(payload: Vec<u8>) -> Self {
        Self {
            payload,
            fds: Vec::new(),
        }
    }
}

fn proto_err<E>(_: E) -> Errno {
    Errno::EINVAL
}

impl Simulator {
    /// Creates the device memory and the device described by `opts`.
    pub fn new(opts: &Options) -> io::Result<Self> {
        let size = opts.device.memory_size;
        let memory = match &opts.memory_file {
            Some(p) => Backing::file(p, size).map_err(|e| {
                io::Error::new(e.kind(), format!("memory file {}: {e}", p.display()))
            })?,
            None => Backing::anonymous("cxl-sim-memory", size)
                .map_err(|e| io::Error::new(e.kind(), format!("device memory: {e}")))?,
        };
        let stats = Arc::new(Stats::default());
        let device = Device::new(opts.device.clone(), memory, Arc::clone(&stats))?;
        Ok(Self {
            device: Mutex::new(device),
            stats,
            verbose: opts.verbose,
            hostile: opts.hostile,
        })
    }

    /// The device, locked.
    pub fn device(&self) -> MutexGuard<'_, Device> {
        self.device
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Accepts clients forever and serves one at a time.  A client that
    /// connects while another is served waits up to [`BUSY_GRACE`] (the
    /// previous one may just be leaving); if the other is still there, it
    /// is refused (its `VFIO_USER_VERSION` is answered with `EBUSY`, then
    /// the connection is closed), so that it fails with a reason instead
    /// of waiting for a reply that would come only when the first leaves.
    pub fn serve(&self, listener: &UnixListener) {
        let busy = AtomicBool::new(false);
        thread::scope(|scope| {
            for stream in listener.incoming() {
                let stream = match stream {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("vfio-user-cxl-sim: accept: {e}");
                        continue;
                    }
                };
                let busy = &busy;
                scope.spawn(move || {
                    let deadline = std::time::Instant::now() + BUSY_GRACE;
                    while busy.swap(true, Ordering::AcqRel) {
                        if std::time::Instant::now() >= deadline {
                            self.refuse_busy(&stream);
                            return;
                        }
                        thread::sleep(std::time::Duration::from_millis(5));
                    }
                    if let Err(e) = self.serve_connection(&stream) {
                        eprintln!("vfio-user-cxl-sim: connection ended: {e}");
                    }
                    busy.store(false, Ordering::Release);
                });
            }
        });
    }

    /// Answers the first request of a client that came while another is
    /// served with `EBUSY`, and hangs up.
    fn refuse_busy(&self, sock: &UnixStream) {
        Stats::bump(&self.stats.busy_refusals);
        eprintln!("vfio-user-cxl-sim: refusing a second client: another one is connected");
        // A client that never speaks is not waited for long.
        let _ = sock.set_read_timeout(Some(BUSY_READ_TIMEOUT));
        if let Ok(Some(msg)) = wire::recv_message(sock, MAX_MESSAGE) {
            let reply = Header {
                id: msg.header.id,
                command: msg.header.command,
                flags: flags::REPLY | flags::ERROR,
                error: Errno::EBUSY as u32,
                ..Header::default()
            };
            let _ = wire::send_message(sock, &reply, &[], &[]);
        }
    }

    /// Runs one client connection to its end.
    pub fn serve_connection(&self, sock: &UnixStream) -> io::Result<()> {
        Stats::bump(&self.stats.connections);
        self.device().open()?;
        let served = self.serve_messages(sock);
        self.device().close();
        served
    }

    fn serve_messages(&self, sock: &UnixStream) -> io::Result<()> {
        let drop_after = self.device().options().faults.drop_after;
        let mut negotiated = false;
        let mut count: u64 = 0;
        let mut hostile = self.hostile.map(Hostile::new);
        loop {
            if drop_after.is_some_and(|n| count >= n) {
                if self.verbose {
                    eprintln!("vfio-user-cxl-sim: dropping connection after {count} messages");
                }
                return Ok(());
            }
            let Some(msg) = wire::recv_message(sock, MAX_MESSAGE)? else {
                return Ok(());
            };
            count += 1;
            Stats::bump(&self.stats.messages);
            if self.handle(sock, msg, &mut negotiated, count, hostile.as_mut())? == Flow::Close {
                if self.verbose {
                    eprintln!("vfio-user-cxl-sim: hostile: hanging up after message {count}");
                }
                return Ok(());
            }
        }
    }

    /// Answers message number `index` of the connection, through the
    /// hostile plan if there is one.
    fn handle(
        &self,
        sock: &UnixStream,
        msg: Message,
        negotiated: &mut bool,
        index: u64,
        hostile: Option<&mut Hostile>,
    ) -> io::Result<Flow> {
        let h = msg.header;
        if !h.is_request() {
            eprintln!(
                "vfio-user-cxl-sim: ignoring unexpected reply id {} command {}",
                h.id, h.command
            );
            return Ok(Flow::Continue);
        }
        let mut dev = self.device();
        let result = if h.command == cmd::VERSION {
            if *negotiated {
                Err(Errno::EINVAL)
            } else {
                let r = version_reply(&msg.payload);
                *negotiated = r.is_ok();
                r.map(Reply::data)
            }
        } else if !*negotiated {
            Err(Errno::EINVAL)
        } else {
            dispatch(&mut dev, h.command, &msg.payload, msg.fds)
        };
        if self.verbose {
            eprintln!(
                "vfio-user-cxl-sim: id {} cmd {} size {} -> {}",
                h.id,
                h.command,
                h.size,
                match &result {
                    Ok(r) => format!("ok, {} bytes, {} fds", r.payload.len(), r.fds.len()),
                    Err(e) => format!("error {e}"),
                }
            );
        }
        if !h.wants_reply() {
            if let Err(e) = result {
                eprintln!(
                    "vfio-user-cxl-sim: command {} (no reply wanted) failed: {e}",
                    h.command
                );
            }
            return Ok(Flow::Continue);
        }
        let mut reply = Header {
            id: h.id,
            command: h.command,
            flags: flags::REPLY,
            ..Header::default()
        };
        let out = match result {
            Ok(r) => Outgoing {
                header: reply,
                payload: r.payload,
                fds: r.fds,
            },
            Err(e) => {
                reply.flags |= flags::ERROR;
                reply.error = e as u32;
                Outgoing {
                    header: reply,
                    payload: Vec::new(),
                    fds: Vec::new(),
                }
            }
        };
        match hostile {
            Some(plan) => plan.send(sock, index, &h, out, || {
                Stats::bump(&self.stats.hostile_faults);
            }),
            None => {
                wire::send_message(sock, &out.header, &out.payload, &out.fds)?;
                Ok(Flow::Continue)
            }
        }
    }
}

/// Builds the `VFIO_USER_VERSION` reply: our version and the subset of
/// the client's capabilities we support, with our values.
fn version_reply(payload: &[u8]) -> Result<Vec<u8>, Errno> {
    let req = Version::parse(payload).map_err(proto_err)?;
    if req.major != VERSION_MAJOR {
        return Err(Errno::ENOTSUP);
    }
    let proposed = match &req.json {
        Some(text) => {
            let v: Value = serde_json::from_str(text).map_err(proto_err)?;
            let obj = v.as_object().ok_or(Errno::EINVAL)?;
            match obj.get("capabilities") {
                Some(Value::Object(c)) => c.clone(),
                Some(_) => return Err(Errno::EINVAL),
                None => Map::new(),
            }
        }
        None => Map::new(),
    };
    let lower = |key: &str, ours: u64| -> Value {
        let theirs = proposed.get(key).and_then(Value::as_u64).unwrap_or(ours);
        json!(theirs.min(ours))
    };
    let mut caps = Map::new();
    for (key, value) in [
        ("max_msg_fds", json!(MAX_FDS)),
        ("max_data_xfer_size", json!(MAX_DATA_XFER)),
        ("pgsizes", json!(PGSIZES)),
        ("max_dma_maps", lower("max_dma_maps", MAX_DMA_MAPS)),
    ] {
        if proposed.contains_key(key) {
            caps.insert(key.to_owned(), value);
        }
    }
    // Migration and multiple writes are not offered.
    let reply = Version {
        major: VERSION_MAJOR,
        // Our minor (0) is never above the client's.
        minor: VERSION_MINOR,
        json: Some(json!({ "capabilities": caps }).to_string()),
    };
    Ok(reply.encode())
}

/// Builds the region-info reply honouring the client's `argsz` the way
/// VFIO does: too small for the capabilities means "here is the size you
/// need", with the CAPS flag set and no capabilities.
///
/// One deliberate difference: the kernel leaves `cap_offset` 0 in that
/// case, but QEMU's vfio-user client rejects a reply that has CAPS set and
/// a `cap_offset` outside `[sizeof(vfio_region_info), argsz]` before it
/// looks at `argsz`, so the device would fail to realize.  We report
/// `cap_offset` = 32 (= the client's `argsz`, pointing at no capability
/// bytes), which QEMU accepts and then retries with the larger `argsz`.
fn region_info_reply<'a>(dev: &'a Device, req: &RegionInfo) -> Result<Reply<'a>, Errno> {
    if req.argsz < REGION_INFO_SIZE {
        return Err(Errno::EINVAL);
    }
    let desc = dev.region_info(req.index)?;
    let mut info = RegionInfo {
        argsz: REGION_INFO_SIZE,
        flags: desc.flags,
        index: req.index,
        cap_offset: 0,
        size: desc.size,
        offset: 0,
    };
    let mut tail = Vec::new();
    if !desc.caps.is_empty() {
        let needed = REGION_INFO_SIZE + desc.caps.len() as u32;
        info.flags |= VFIO_REGION_INFO_FLAG_CAPS;
        info.argsz = needed;
        info.cap_offset = REGION_INFO_SIZE;
        if req.argsz >= needed {
            tail = desc.caps;
        }
    }
    let mut payload = encode_region_info(&info);
    payload.extend_from_slice(&tail);
    Ok(Reply {
        payload,
        fds: desc.fd.into_iter().collect(),
    })
}

fn dispatch<'a>(
    dev: &'a mut Device,
    command: u16,
    p: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<Reply<'a>, Errno> {
    let takes_fds = matches!(command, cmd::DMA_MAP | cmd::DEVICE_SET_IRQS);
    if !takes_fds && !fds.is_empty() {
        return Err(Errno::EINVAL);
    }
    match command {
        cmd::DEVICE_GET_INFO => {
            let req = DeviceInfo::parse(p).map_err(proto_err)?;
            if req.argsz < DeviceInfo::SIZE {
                return Err(Errno::EINVAL);
            }
            let info = DeviceInfo {
                argsz: DeviceInfo::SIZE,
                flags: dev.device_flags(),
                num_regions: NUM_REGIONS,
                num_irqs: NUM_IRQS,
            };
            Ok(Reply::data(info.encode()))
        }
        cmd::DEVICE_GET_REGION_INFO => {
            let req = parse_region_info(p).map_err(proto_err)?;
            region_info_reply(dev, &req)
        }
        cmd::DEVICE_GET_IRQ_INFO => {
            let req = IrqInfo::parse(p).map_err(proto_err)?;
            if req.argsz < IrqInfo::SIZE {
                return Err(Errno::EINVAL);
            }
            Ok(Reply::data(dev.irq_info(req.index)?.encode()))
        }
        cmd::DEVICE_SET_IRQS => {
            let req = IrqSet::parse(p).map_err(proto_err)?;
            dev.set_irqs(&req, fds)?;
            Ok(Reply::data(Vec::new()))
        }
        cmd::REGION_READ => {
            let req = RegionAccess::parse(p).map_err(proto_err)?;
            if u64::from(req.count) > MAX_DATA_XFER {
                return Err(Errno::EINVAL);
            }
            let mut buf = vec![0u8; req.count as usize];
            let n = dev.region_read(req.region, req.offset, &mut buf)?;
            buf.truncate(n);
            let done = RegionAccess {
                count: n as u32,
                ..req
            };
            let mut payload = done.encode();
            payload.extend_from_slice(&buf);
            Ok(Reply::data(payload))
        }
        cmd::REGION_WRITE => {
            let req = RegionAccess::parse(p).map_err(proto_err)?;
            let data = &p[RegionAccess::SIZE as usize..];
            if u64::from(req.count) > MAX_DATA_XFER || data.len() < req.count as usize {
                return Err(Errno::EINVAL);
            }
            let n = dev.region_write(req.region, req.offset, &data[..req.count as usize])?;
            let done = RegionAccess {
                count: n as u32,
                ..req
            };
            Ok(Reply::data(done.encode()))
        }
        cmd::DMA_MAP => {
            let req = DmaMap::parse(p).map_err(proto_err)?;
            dev.dma_map(&req, fds)?;
            Ok(Reply::data(Vec::new()))
        }
        cmd::DMA_UNMAP => {
            let req = DmaUnmap::parse(p).map_err(proto_err)?;
            dev.dma_unmap(&req)?;
            Ok(Reply::data(req.encode()))
        }
        cmd::DEVICE_RESET => {
            dev.reset()?;
            Ok(Reply::data(Vec::new()))
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// Binds a listening socket at `path`.  A stale socket file (nobody
/// listening) is replaced; a live one is an error, as is any other file.
pub fn bind_socket(path: &Path) -> io::Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "socket path {} is in use by a running server",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    UnixListener::bind(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen on {}: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_reply_is_a_subset() {
        let req = Version {
            major: 0,
            minor: 0,
            json: Some(
                r#"{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,
                   "pgsizes":4096,"max_dma_maps":100,"write_multiple":true,
                   "migration":{"pgsize":4096,"max_bitmap_size":268435456}}}"#
                    .into(),
            ),
        };
        let r = Version::parse(&version_reply(&req.encode()).unwrap()).unwrap();
        let v: Value = serde_json::from_str(&r.json.unwrap()).unwrap();
        let caps = v["capabilities"].as_object().unwrap();
        assert_eq!(caps["max_dma_maps"], 100);
        assert_eq!(caps["max_msg_fds"], 16);
        assert!(!caps.contains_key("migration"));
        assert!(!caps.contains_key("write_multiple"));
        let bad = Version {
            major: 1,
            minor: 0,
            json: None,
        };
        assert_eq!(version_reply(&bad.encode()), Err(Errno::ENOTSUP));
    }
}
