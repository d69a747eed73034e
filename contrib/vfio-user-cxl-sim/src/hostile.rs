// SPDX-License-Identifier: GPL-2.0-or-later

//! Hostile mode (`--hostile SEED[,KIND[,NTH]]`): the server answers one
//! of the client's messages wrongly, in one of the ways the vfio-user
//! protocol leaves open to a broken or malicious server.
//!
//! A plan names a [`Kind`] and which of the messages that kind applies to
//! it hits (`nth`, counted from 0 in each connection).  What is not given
//! on the command line is drawn from the seed, and so is every detail of
//! the damage (which errno, which bogus size, which field), so a seed
//! alone reproduces a case.  The plan is printed at start-up and each
//! time it fires; `hostile_faults` on the control socket counts firings.
//!
//! Every reply is built honestly first ([`Outgoing`]); the plan then
//! rewrites its bytes or its descriptors, or withholds it.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use cxl_model::uapi::{encode_cap_chain, rd_u32, SparseMmapCap};
use nix::errno::Errno;
use vfio_bindings::bindings::vfio::{VFIO_REGION_INFO_FLAG_CAPS, VFIO_REGION_INFO_FLAG_MMAP};

use crate::protocol::{cmd, flags, Header, HEADER_SIZE, REGION_INFO_SIZE};
use crate::wire;

/// splitmix64: small, seedable, and the same on every host.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// One of `choices` (not empty).
    pub fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.below(choices.len() as u64) as usize]
    }
}

/// Which commands a kind can damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Any reply.
    Any,
    /// Replies that carry payload bytes after the header.
    WithPayload,
    /// Replies that pass file descriptors.
    WithFds,
    /// Replies to this command only.
    Command(u16),
}

macro_rules! kinds {
    ($($(#[$meta:meta])* $variant:ident = $name:literal, $target:expr, $typical:literal;)+) => {
        /// One way of answering wrongly.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kind {
            $($(#[$meta])* $variant,)+
        }

        impl Kind {
            /// Every kind, in the order `--help` lists them.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The kind's command-line name.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }

            const fn target(self) -> Target {
                match self {
                    $(Self::$variant => $target,)+
                }
            }

            /// How many messages of its kind QEMU 10.2's `vfio-user-pci`
            /// sends in a realize and the reset after it: the range a
            /// seed draws `nth` from.
            const fn typical(self) -> u64 {
                match self {
                    $(Self::$variant => $typical,)+
                }
            }
        }
    };
}

kinds! {
    /// Part of the header, then the connection is closed.
    TruncatedHeader = "truncated-header", Target::Any, 70;
    /// The header and part of the payload, then the connection is closed.
    TruncatedPayload = "truncated-payload", Target::WithPayload, 60;
    /// The payload cut short; the header's size says so.
    ShortReply = "short-reply", Target::WithPayload, 60;
    /// Garbage appended to the payload; the header's size says so.
    LongReply = "long-reply", Target::Any, 70;
    /// The header's size is below the header's own.
    SizeTooSmall = "size-too-small", Target::Any, 70;
    /// The header's size is larger than what is sent.
    SizeTooLarge = "size-too-large", Target::Any, 70;
    /// The reply carries another message's id.
    WrongId = "wrong-id", Target::Any, 70;
    /// The reply names another command.
    WrongCommand = "wrong-command", Target::Any, 70;
    /// The reply is typed as a request, or as no known type.
    WrongType = "wrong-type", Target::Any, 70;
    /// An error reply with an errno no kernel would give (or 0).
    OddErrno = "odd-errno", Target::Any, 70;
    /// File descriptors with a reply that passes none, or more than it
    /// should.
    StrayFd = "stray-fd", Target::Any, 70;
    /// A reply that must pass a descriptor passes none.
    MissingFd = "missing-fd", Target::WithFds, 6;
    /// The reply is sent twice.
    Duplicate = "duplicate", Target::Any, 70;
    /// No reply at all; the connection stays open.
    NoReply = "no-reply", Target::Any, 70;
    /// `VFIO_USER_VERSION`: broken JSON, another major, absurd limits.
    BadVersion = "bad-version", Target::Command(cmd::VERSION), 1;
    /// `DEVICE_GET_INFO`: odd `argsz`, no or too many regions or IRQs.
    BadDeviceInfo = "bad-device-info", Target::Command(cmd::DEVICE_GET_INFO), 1;
    /// Region info: an impossible size.
    RegionSize = "region-size", Target::Command(cmd::DEVICE_GET_REGION_INFO), 20;
    /// Region info: an impossible or misaligned offset.
    RegionOffset = "region-offset", Target::Command(cmd::DEVICE_GET_REGION_INFO), 20;
    /// Region info: the index of another region.
    RegionIndex = "region-index", Target::Command(cmd::DEVICE_GET_REGION_INFO), 20;
    /// Region info: `argsz` below the structure, above the reply, or huge.
    RegionArgsz = "region-argsz", Target::Command(cmd::DEVICE_GET_REGION_INFO), 20;
    /// Region info: flags the region cannot have.
    RegionFlags = "region-flags", Target::Command(cmd::DEVICE_GET_REGION_INFO), 20;
    /// Region info: `cap_offset` inside the fixed part, past the reply,
    /// or misaligned.
    CapOffset = "cap-offset", Target::Command(cmd::DEVICE_GET_REGION_INFO), 20;
    /// Region info: the capability chain loops.
    CapLoop = "cap-loop", Target::Command(cmd::DEVICE_GET_REGION_INFO), 20;
    /// Region info: a capability runs past the end of the reply.
    CapPastEnd = "cap-past-end", Target::Command(cmd::DEVICE_GET_REGION_INFO), 20;
    /// Region info: a capability's `next` points into another capability.
    CapOverlap = "cap-overlap", Target::Command(cmd::DEVICE_GET_REGION_INFO), 20;
    /// Region info: a sparse-mmap capability with too many, overlapping,
    /// or out-of-region areas.
    SparseAreas = "sparse-areas", Target::Command(cmd::DEVICE_GET_REGION_INFO), 20;
    /// IRQ info: a huge count, another index.
    BadIrqInfo = "bad-irq-info", Target::Command(cmd::DEVICE_GET_IRQ_INFO), 1;
    /// Region read: a count, offset or region other than asked for.
    ReadMismatch = "read-mismatch", Target::Command(cmd::REGION_READ), 35;
    /// Region write: a count, offset or region other than asked for.
    WriteMismatch = "write-mismatch", Target::Command(cmd::REGION_WRITE), 9;
    /// DMA map/unmap: payload where none belongs, a changed unmap record.
    BadDmaReply = "bad-dma-reply", Target::Command(cmd::DMA_MAP), 8;
}

impl Kind {
    /// The kind called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    fn applies(self, command: u16, out: &Outgoing<'_>) -> bool {
        match self.target() {
            Target::Any => true,
            Target::WithPayload => !out.payload.is_empty(),
            Target::WithFds => !out.fds.is_empty(),
            Target::Command(cmd::DMA_MAP) => matches!(command, cmd::DMA_MAP | cmd::DMA_UNMAP),
            Target::Command(c) => c == command,
        }
    }
}

/// What `--hostile` asked for, with the seed's choices filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub seed: u64,
    pub kind: Kind,
    /// Which of the messages `kind` applies to is hit (from 0).
    pub nth: u64,
}

impl Plan {
    /// Parses `SEED[,KIND[,NTH]]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split(',');
        let seed = crate::options::parse_number(parts.next().unwrap_or_default())
            .map_err(|e| format!("--hostile: seed: {e}"))?;
        let mut rng = Rng::new(seed);
        let kind = match parts.next() {
            Some(name) => Kind::from_name(name)
                .ok_or_else(|| format!("--hostile: unknown kind '{name}' (see --help)"))?,
            None => rng.pick(Kind::ALL),
        };
        let nth = match parts.next() {
            Some(n) => {
                crate::options::parse_number(n).map_err(|e| format!("--hostile: nth: {e}"))?
            }
            None => rng.below(kind.typical()),
        };
        if parts.next().is_some() {
            return Err("--hostile: expected SEED[,KIND[,NTH]]".into());
        }
        Ok(Self { seed, kind, nth })
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {} on message #{} of those it applies to, in each connection \
             (--hostile {},{},{})",
            self.seed,
            self.kind.name(),
            self.nth,
            self.seed,
            self.kind.name(),
            self.nth
        )
    }
}

/// A reply as the honest server would send it.
pub struct Outgoing<'a> {
    pub header: Header,
    pub payload: Vec<u8>,
    pub fds: Vec<BorrowedFd<'a>>,
}

/// What happens to the connection after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
}

/// The plan's state in one connection.
pub struct Hostile {
    plan: Plan,
    rng: Rng,
    /// Applicable replies seen so far.
    seen: u64,
    /// Descriptors passed where none belong; kept open for the connection.
    stray: Vec<OwnedFd>,
}

/// Errnos no vfio-user server should send, or should send only rarely.
const ODD_ERRNOS: [u32; 10] = [
    0,
    Errno::EINTR as u32,
    Errno::EAGAIN as u32,
    Errno::ENOMEM as u32,
    Errno::EFAULT as u32,
    Errno::ENOSYS as u32,
    512, // ERESTARTSYS, kernel-internal
    4095,
    0x7fff_ffff,
    u32::MAX,
];

/// One wrong reply: the bytes to send (header included), the
/// descriptors, and whether to hang up afterwards.
struct Damage {
    bytes: Vec<u8>,
    extra_fds: usize,
    keep_fds: bool,
    times: usize,
    flow: Flow,
    what: String,
}

impl Hostile {
    /// A connection's copy of `plan`; each connection draws the same
    /// details.
    #[must_use]
    pub fn new(plan: Plan) -> Self {
        Self {
            plan,
            rng: Rng::new(plan.seed ^ 0x6a09_e667_f3bc_c908),
            seen: 0,
            stray: Vec::new(),
        }
    }

    /// Sends `out` as the reply to message `index` of the connection
    /// (`request` is its header), damaged if this is the planned one.
    pub fn send(
        &mut self,
        sock: &UnixStream,
        index: u64,
        request: &Header,
        out: Outgoing<'_>,
        stats_bump: impl FnOnce(),
    ) -> io::Result<Flow> {
        let hit = self.plan.kind.applies(request.command, &out) && {
            self.seen += 1;
            self.seen == self.plan.nth + 1
        };
        if !hit {
            wire::send_message(sock, &out.header, &out.payload, &out.fds)?;
            return Ok(Flow::Continue);
        }
        stats_bump();
        let size = HEADER_SIZE + out.payload.len();
        let mut bytes = Header {
            size: size as u32,
            ..out.header
        }
        .encode()
        .to_vec();
        bytes.extend_from_slice(&out.payload);
        let d = self.damage(request, bytes, out.fds.len());
        eprintln!(
            "vfio-user-cxl-sim: hostile: message {index} (id {}, command {}): {}: {}",
            request.id,
            request.command,
            self.plan.kind.name(),
            d.what
        );
        for _ in 0..d.extra_fds {
            self.stray.push(stray_fd()?);
        }
        let mut fds: Vec<BorrowedFd<'_>> = if d.keep_fds { out.fds } else { Vec::new() };
        fds.extend(self.stray.iter().map(AsFd::as_fd));
        for _ in 0..d.times {
            // The peer may already have hung up on the damage.
            if wire::send_bytes(sock, &d.bytes, &fds).is_err() {
                return Ok(Flow::Close);
            }
        }
        Ok(d.flow)
    }

    fn damage(&mut self, request: &Header, mut b: Vec<u8>, nfds: usize) -> Damage {
        let r = &mut self.rng;
        let payload_len = b.len() - HEADER_SIZE;
        let mut d = Damage {
            bytes: Vec::new(),
            extra_fds: 0,
            keep_fds: true,
            times: 1,
            flow: Flow::Continue,
            what: String::new(),
        };
        // Offsets of region-info fields in the message.
        const RI: usize = HEADER_SIZE;
        let (ri_argsz, ri_flags, ri_index, ri_cap, ri_size, ri_offset) =
            (RI, RI + 4, RI + 8, RI + 12, RI + 16, RI + 24);
        match self.plan.kind {
            Kind::TruncatedHeader => {
                let n = 1 + r.below(HEADER_SIZE as u64 - 1) as usize;
                b.truncate(n);
                d.flow = Flow::Close;
                d.keep_fds = r.below(2) == 0;
                d.what = format!("{n} of 16 header bytes, then hang up");
            }
            Kind::TruncatedPayload => {
                let n = r.below(payload_len as u64) as usize;
                b.truncate(HEADER_SIZE + n);
                d.flow = Flow::Close;
                d.what = format!("{n} of {payload_len} payload bytes, then hang up");
            }
            Kind::ShortReply => {
                let n = r.below(payload_len as u64) as usize;
                b.truncate(HEADER_SIZE + n);
                fix_size(&mut b);
                d.what = format!("payload cut to {n} of {payload_len} bytes");
            }
            Kind::LongReply => {
                let n = 1 + r.below(256) as usize;
                let junk: Vec<u8> = (0..n).map(|_| r.next_u64() as u8).collect();
                b.extend_from_slice(&junk);
                fix_size(&mut b);
                d.what = format!("{n} junk bytes appended");
            }
            Kind::SizeTooSmall => {
                let n = r.below(HEADER_SIZE as u64) as u32;
                put_u32(&mut b, 4, n);
                d.what = format!("header size {n}");
            }
            Kind::SizeTooLarge => {
                let n = r.pick(&[
                    b.len() as u32 + 1,
                    b.len() as u32 + 4096,
                    (64 << 20) + 4096,
                    u32::MAX,
                ]);
                put_u32(&mut b, 4, n);
                d.what = format!("header size {n}, {} bytes sent", b.len());
            }
            Kind::WrongId => {
                let delta = r.pick(&[1u16, 2, 0x8000, 0xffff]);
                let id = request.id.wrapping_add(delta);
                b[0..2].copy_from_slice(&id.to_le_bytes());
                d.what = format!("id {id} instead of {}", request.id);
            }
            Kind::WrongCommand => {
                let other = loop {
                    let c = r.pick(&[0u16, 1, 2, 3, 4, 5, 7, 8, 9, 10, 13, 15, 99, 0xffff]);
                    if c != request.command {
                        break c;
                    }
                };
                b[2..4].copy_from_slice(&other.to_le_bytes());
                d.what = format!("command {other} instead of {}", request.command);
            }
            Kind::WrongType => {
                let t = r.pick(&[flags::REQUEST, 2, 0xf]);
                let f = (rd_u32(&b, 8).unwrap_or_default() & !flags::TYPE_MASK) | t;
                put_u32(&mut b, 8, f);
                d.what = format!("message type {t}");
            }
            Kind::OddErrno => {
                let e = r.pick(&ODD_ERRNOS);
                let f = rd_u32(&b, 8).unwrap_or_default() | flags::ERROR;
                put_u32(&mut b, 8, f);
                put_u32(&mut b, 12, e);
                let keep = r.below(2) == 0;
                if !keep {
                    b.truncate(HEADER_SIZE);
                    fix_size(&mut b);
                }
                d.what = format!(
                    "error reply, errno {e}, {}",
                    if keep { "payload kept" } else { "no payload" }
                );
            }
            Kind::StrayFd => {
                d.extra_fds = r.pick(&[1usize, 2, 8, wire::MAX_FDS - nfds]).max(1);
                d.what = format!("{} extra descriptors with {nfds} expected", d.extra_fds);
            }
            Kind::MissingFd => {
                d.keep_fds = false;
                d.what = format!("none of the {nfds} descriptors");
            }
            Kind::Duplicate => {
                d.times = 2;
                d.what = "the reply, twice".into();
            }
            Kind::NoReply => {
                d.times = 0;
                d.what = "no reply".into();
            }
            Kind::BadVersion => {
                let (text, what): (&[u8], &str) = r.pick(&[
                    (&b"{\"capabilities\":"[..], "JSON cut short"),
                    (b"{\"capabilities\":{}}", "JSON without its NUL"),
                    (b"[1,2,3]\0", "JSON not an object"),
                    (b"{\"capabilities\":7}\0", "capabilities not an object"),
                    (b"{\"capabilities\":{\"max_msg_fds\":0}}\0", "max_msg_fds 0"),
                    (
                        b"{\"capabilities\":{\"max_msg_fds\":-1}}\0",
                        "max_msg_fds -1",
                    ),
                    (
                        b"{\"capabilities\":{\"max_data_xfer_size\":0}}\0",
                        "max_data_xfer_size 0",
                    ),
                    (
                        b"{\"capabilities\":{\"max_data_xfer_size\":18446744073709551615}}\0",
                        "max_data_xfer_size 2^64-1",
                    ),
                    (b"{\"capabilities\":{\"pgsizes\":0}}\0", "pgsizes 0"),
                    (b"{\"capabilities\":{\"pgsizes\":3}}\0", "pgsizes 3"),
                    (
                        b"{\"capabilities\":{\"max_dma_maps\":0}}\0",
                        "max_dma_maps 0",
                    ),
                    (b"", "no JSON, major 1"),
                ]);
                b.truncate(HEADER_SIZE);
                let major = u16::from(text.is_empty());
                b.extend_from_slice(&major.to_le_bytes());
                b.extend_from_slice(&0u16.to_le_bytes());
                b.extend_from_slice(text);
                fix_size(&mut b);
                d.what = what.into();
            }
            Kind::BadDeviceInfo => {
                let (at, v, what) = r.pick(&[
                    (RI, 8u32, "argsz 8"),
                    (RI, 0x1000, "argsz 4096"),
                    (RI + 4, 0, "flags 0 (not PCI)"),
                    (RI + 4, u32::MAX, "all flags"),
                    (RI + 8, 0, "num_regions 0"),
                    (RI + 8, 1, "num_regions 1"),
                    (RI + 8, u32::MAX, "num_regions 2^32-1"),
                    (RI + 12, 0, "num_irqs 0"),
                    (RI + 12, u32::MAX, "num_irqs 2^32-1"),
                ]);
                put_u32(&mut b, at, v);
                d.what = what.into();
            }
            Kind::RegionSize => {
                let size = rd_u64_at(&b, ri_size);
                let v = r.pick(&[
                    u64::MAX,
                    1 << 62,
                    size.wrapping_add(1),
                    size.wrapping_mul(2).max(1 << 40),
                    1,
                ]);
                put_u64(&mut b, ri_size, v);
                d.what = format!("size {v:#x} instead of {size:#x}");
            }
            Kind::RegionOffset => {
                let v = r.pick(&[u64::MAX, u64::MAX - 0xfff, 0x123, 1 << 63, 0x1000]);
                put_u64(&mut b, ri_offset, v);
                d.what = format!("offset {v:#x}");
            }
            Kind::RegionIndex => {
                let asked = rd_u32(&b, ri_index).unwrap_or_default();
                let v = r.pick(&[asked.wrapping_add(1), 7, 9, 10, 11, u32::MAX]);
                put_u32(&mut b, ri_index, v);
                d.what = format!("index {v} for region {asked}");
            }
            Kind::RegionArgsz => {
                let len = payload_len as u32;
                let v = r.pick(&[0, 16, 31, len + 1, len + 4096, u32::MAX]);
                put_u32(&mut b, ri_argsz, v);
                d.what = format!("argsz {v} with {len} bytes");
            }
            Kind::RegionFlags => {
                let v = r.pick(&[u32::MAX, VFIO_REGION_INFO_FLAG_MMAP, 0, 0xfff0]);
                put_u32(&mut b, ri_flags, v);
                d.what = format!("flags {v:#x}");
            }
            Kind::CapOffset => {
                let len = payload_len as u32;
                let v = r.pick(&[0, 1, 16, 31, 33, len, len + 8, u32::MAX - 3]);
                let f = rd_u32(&b, ri_flags).unwrap_or_default() | VFIO_REGION_INFO_FLAG_CAPS;
                put_u32(&mut b, ri_flags, f);
                put_u32(&mut b, ri_cap, v);
                d.what = format!("cap_offset {v} in {len} bytes, CAPS set");
            }
            Kind::CapLoop | Kind::CapPastEnd | Kind::CapOverlap => {
                let caps = ensure_caps(&mut b);
                let last = *caps.last().unwrap_or(&REGION_INFO_SIZE) as usize + HEADER_SIZE;
                let first = caps.first().copied().unwrap_or(REGION_INFO_SIZE);
                let len = payload_len.max(b.len() - HEADER_SIZE) as u32;
                let (next, what) = match self.plan.kind {
                    Kind::CapLoop => {
                        let to = r.pick(&[first, (last - HEADER_SIZE) as u32]);
                        (to, format!("last capability's next -> {to} (loop)"))
                    }
                    Kind::CapPastEnd => {
                        let to = r.pick(&[len, len - 4, len + 16, u32::MAX - 7]);
                        (to, format!("last capability's next -> {to} of {len} bytes"))
                    }
                    _ => {
                        let to = (last - HEADER_SIZE) as u32 + r.pick(&[2u32, 4, 6]);
                        (
                            to,
                            format!("last capability's next -> {to} (inside itself)"),
                        )
                    }
                };
                put_u32(&mut b, last + 4, next);
                fix_size(&mut b);
                d.what = what;
            }
            Kind::SparseAreas => {
                let region_size = rd_u64_at(&b, ri_size);
                let (areas, nr, what): (Vec<(u64, u64)>, Option<u32>, String) = match r.below(5) {
                    0 => (vec![(0, 4096)], Some(u32::MAX), "nr_areas 2^32-1".into()),
                    1 => (
                        vec![(0, 4096)],
                        Some(1000),
                        "nr_areas 1000, 1 present".into(),
                    ),
                    2 => (
                        vec![(0, region_size.max(8192)), (4096, 8192)],
                        None,
                        "overlapping areas".into(),
                    ),
                    3 => (
                        vec![(region_size, 1 << 30)],
                        None,
                        "an area past the region".into(),
                    ),
                    _ => (
                        vec![(u64::MAX - 0xfff, 0x2000)],
                        None,
                        "an area whose end wraps".into(),
                    ),
                };
                // Replace the chain with one sparse-mmap capability.
                b.truncate(HEADER_SIZE + REGION_INFO_SIZE as usize);
                let cap = SparseMmapCap { areas }.encode(0);
                let mut chain = encode_cap_chain(REGION_INFO_SIZE, &[cap]);
                if let Some(n) = nr {
                    chain[8..12].copy_from_slice(&n.to_le_bytes());
                }
                b.extend_from_slice(&chain);
                let f = rd_u32(&b, ri_flags).unwrap_or_default()
                    | VFIO_REGION_INFO_FLAG_CAPS
                    | VFIO_REGION_INFO_FLAG_MMAP;
                put_u32(&mut b, ri_flags, f);
                put_u32(&mut b, ri_cap, REGION_INFO_SIZE);
                let argsz = (b.len() - HEADER_SIZE) as u32;
                put_u32(&mut b, ri_argsz, argsz);
                fix_size(&mut b);
                d.what = what;
            }
            Kind::BadIrqInfo => {
                let (at, v, what) = r.pick(&[
                    (RI + 12, u32::MAX, "count 2^32-1"),
                    (RI + 12, 4096, "count 4096"),
                    (RI + 8, 3, "index 3"),
                    (RI + 4, u32::MAX, "all flags"),
                    (RI, 4, "argsz 4"),
                ]);
                put_u32(&mut b, at, v);
                d.what = what.into();
            }
            Kind::ReadMismatch | Kind::WriteMismatch => {
                // RegionAccess: offset u64, region u32, count u32.
                let count = rd_u32(&b, RI + 12).unwrap_or_default();
                match r.below(4) {
                    0 => {
                        let v = r.pick(&[0, count / 2, count + 1, count + 4096, u32::MAX]);
                        put_u32(&mut b, RI + 12, v);
                        d.what = format!("count {v} for {count}");
                    }
                    1 => {
                        let v = r.pick(&[0x8000_0000_0000_0000, 0x100, u64::MAX]);
                        put_u64(&mut b, RI, v);
                        d.what = format!("offset {v:#x}");
                    }
                    2 => {
                        let v = r.pick(&[0, 7, 9, 10, u32::MAX]);
                        put_u32(&mut b, RI + 8, v);
                        d.what = format!("region {v}");
                    }
                    _ => {
                        b.truncate(HEADER_SIZE + 16);
                        fix_size(&mut b);
                        d.what = format!("no data (count {count} kept)");
                    }
                }
            }
            Kind::BadDmaReply => {
                let n = r.pick(&[8usize, 24, 4096]);
                let junk: Vec<u8> = (0..n).map(|_| r.next_u64() as u8).collect();
                b.truncate(HEADER_SIZE);
                b.extend_from_slice(&junk);
                fix_size(&mut b);
                d.what = format!("{n} bytes of payload");
            }
        }
        d.bytes = b;
        d
    }
}

/// Writes `v` at `at` in `b`, growing it if needed.
fn put_u32(b: &mut Vec<u8>, at: usize, v: u32) {
    if b.len() < at + 4 {
        b.resize(at + 4, 0);
    }
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut Vec<u8>, at: usize, v: u64) {
    if b.len() < at + 8 {
        b.resize(at + 8, 0);
    }
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Makes the header's size say how long the message is.
fn fix_size(b: &mut [u8]) {
    let n = b.len() as u32;
    b[4..8].copy_from_slice(&n.to_le_bytes());
}

fn rd_u64_at(b: &[u8], at: usize) -> u64 {
    cxl_model::uapi::rd_u64(b, at).unwrap_or_default()
}

/// Makes sure the region-info reply in `b` has a capability chain (adds
/// a one-area sparse-mmap capability if it has none) and returns the
/// offsets of its capabilities, relative to the region info.
fn ensure_caps(b: &mut Vec<u8>) -> Vec<u32> {
    let info = &b[HEADER_SIZE..];
    let flags_field = rd_u32(info, 4).unwrap_or_default();
    let first = rd_u32(info, 12).unwrap_or_default();
    let has = flags_field & VFIO_REGION_INFO_FLAG_CAPS != 0
        && first >= REGION_INFO_SIZE
        && (first as usize) < info.len();
    if !has {
        b.truncate(HEADER_SIZE + REGION_INFO_SIZE as usize);
        let cap = SparseMmapCap {
            areas: vec![(0, 4096)],
        }
        .encode(0);
        b.extend_from_slice(&encode_cap_chain(REGION_INFO_SIZE, &[cap]));
        let len = (b.len() - HEADER_SIZE) as u32;
        let f = flags_field | VFIO_REGION_INFO_FLAG_CAPS;
        b[HEADER_SIZE + 4..HEADER_SIZE + 8].copy_from_slice(&f.to_le_bytes());
        b[HEADER_SIZE..HEADER_SIZE + 4].copy_from_slice(&len.to_le_bytes());
        b[HEADER_SIZE + 12..HEADER_SIZE + 16].copy_from_slice(&REGION_INFO_SIZE.to_le_bytes());
    }
    let chain = &b[HEADER_SIZE..];
    let mut at = rd_u32(chain, 12).unwrap_or_default();
    let mut caps = Vec::new();
    // Our own chains are short and well formed; bound the walk anyway.
    while at != 0 && (at as usize) + 8 <= chain.len() && caps.len() < 16 {
        caps.push(at);
        at = rd_u32(chain, at as usize + 4).unwrap_or_default();
    }
    caps
}

/// A descriptor to pass where none is expected: a small memfd.
fn stray_fd() -> io::Result<OwnedFd> {
    let fd =
        nix::sys::memfd::memfd_create(c"cxl-sim-stray", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
    nix::unistd::ftruncate(&fd, 4096)?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse_and_reproduce() {
        let a = Plan::parse("17").unwrap();
        assert_eq!(a, Plan::parse("17").unwrap());
        assert_eq!(
            Plan::parse(&format!("17,{}", a.kind.name())).unwrap().kind,
            a.kind
        );
        let b = Plan::parse("0x10,cap-loop,3").unwrap();
        assert_eq!((b.seed, b.kind, b.nth), (16, Kind::CapLoop, 3));
        Plan::parse("x").unwrap_err();
        Plan::parse("1,nope").unwrap_err();
        Plan::parse("1,cap-loop,2,3").unwrap_err();
        assert!(a.to_string().contains(a.kind.name()));
    }

    #[test]
    fn every_kind_has_a_distinct_name() {
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(Kind::from_name(k.name()), Some(*k));
            assert!(Kind::ALL[..i].iter().all(|o| o.name() != k.name()));
        }
    }

    #[test]
    fn seeds_spread_over_kinds() {
        let kinds: std::collections::HashSet<_> = (0..400)
            .map(|s| Plan::parse(&s.to_string()).unwrap().kind)
            .collect();
        assert_eq!(kinds.len(), Kind::ALL.len());
    }
}
