// SPDX-License-Identifier: GPL-2.0-or-later

//! vfio-user message layouts and their byte codec.
//!
//! Every message starts with a 16-byte header followed by a
//! command-specific payload.  The payloads mirror the VFIO ioctl
//! structures of `<linux/vfio.h>`; all fields are little-endian (the
//! protocol uses host byte order and the simulator only runs on
//! little-endian hosts).  This module only converts between bytes and
//! plain structs; it does no I/O (see [`crate::wire`]) and knows nothing
//! about the simulated device.

use std::fmt;

use cxl_model::uapi::{rd_u16, rd_u32, rd_u64};

/// Size of the common message header.
pub const HEADER_SIZE: usize = 16;

/// Command numbers (header `command` field).
pub mod cmd {
    pub const VERSION: u16 = 1;
    pub const DMA_MAP: u16 = 2;
    pub const DMA_UNMAP: u16 = 3;
    pub const DEVICE_GET_INFO: u16 = 4;
    pub const DEVICE_GET_REGION_INFO: u16 = 5;
    pub const DEVICE_GET_REGION_IO_FDS: u16 = 6;
    pub const DEVICE_GET_IRQ_INFO: u16 = 7;
    pub const DEVICE_SET_IRQS: u16 = 8;
    pub const REGION_READ: u16 = 9;
    pub const REGION_WRITE: u16 = 10;
    pub const DMA_READ: u16 = 11;
    pub const DMA_WRITE: u16 = 12;
    pub const DEVICE_RESET: u16 = 13;
    pub const DIRTY_PAGES: u16 = 14;
    pub const REGION_WRITE_MULTI: u16 = 15;
}

/// Header flag bits.
pub mod flags {
    /// Mask of the message type (request or reply).
    pub const TYPE_MASK: u32 = 0xf;
    pub const REQUEST: u32 = 0x0;
    pub const REPLY: u32 = 0x1;
    /// The sender does not want a reply.
    pub const NO_REPLY: u32 = 0x10;
    /// The reply reports an error; `error_reply` holds an errno.
    pub const ERROR: u32 = 0x20;
}

/// Protocol version implemented here.
pub const VERSION_MAJOR: u16 = 0;
pub const VERSION_MINOR: u16 = 0;

/// A malformed message: too short, or a field out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed vfio-user message: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// Reads little-endian fields from a payload, front to back.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[must_use]
    pub const fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| {
                let (len, pos) = (self.buf.len(), self.pos);
                ProtocolError(format!(
                    "payload of {len} bytes too short (need {n} at {pos})"
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    // `bytes` took exactly the field's size, so the model's readers
    // (the project's one little-endian helper) cannot miss.
    pub fn u16(&mut self) -> Result<u16, ProtocolError> {
        Ok(rd_u16(self.bytes(2)?, 0).unwrap_or_default())
    }

    pub fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(rd_u32(self.bytes(4)?, 0).unwrap_or_default())
    }

    pub fn u64(&mut self) -> Result<u64, ProtocolError> {
        Ok(rd_u64(self.bytes(8)?, 0).unwrap_or_default())
    }

    /// Everything not read yet.
    #[must_use]
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
}

/// Appends little-endian fields to a payload.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    #[must_use]
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }

    #[must_use]
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// The common message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    pub id: u16,
    pub command: u16,
    /// Size of the whole message, header included.
    pub size: u32,
    pub flags: u32,
    /// errno of a failed request (replies with [`flags::ERROR`] only).
    pub error: u32,
}

impl Header {
    #[must_use]
    pub fn parse(b: &[u8; HEADER_SIZE]) -> Self {
        let mut r = Reader::new(b);
        // The array has exactly the header's size, so no read can fail.
        let mut next32 = || r.u32().unwrap_or(0);
        let first = next32();
        Self {
            id: (first & 0xffff) as u16,
            command: (first >> 16) as u16,
            size: next32(),
            flags: next32(),
            error: next32(),
        }
    }

    #[must_use]
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut w = Writer::new();
        w.u16(self.id)
            .u16(self.command)
            .u32(self.size)
            .u32(self.flags)
            .u32(self.error);
        let mut out = [0u8; HEADER_SIZE];
        out.copy_from_slice(&w.0);
        out
    }

    #[must_use]
    pub const fn is_reply(&self) -> bool {
        self.flags & flags::TYPE_MASK == flags::REPLY
    }

    #[must_use]
    pub const fn is_request(&self) -> bool {
        self.flags & flags::TYPE_MASK == flags::REQUEST
    }

    #[must_use]
    pub const fn wants_reply(&self) -> bool {
        self.flags & flags::NO_REPLY == 0
    }

    #[must_use]
    pub const fn is_error(&self) -> bool {
        self.flags & flags::ERROR != 0
    }
}

/// `VFIO_USER_VERSION` request and reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
    /// The JSON text, without its terminating NUL.
    pub json: Option<String>,
}

impl Version {
    pub fn parse(p: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(p);
        let major = r.u16()?;
        let minor = r.u16()?;
        let rest = r.rest();
        let json = if rest.is_empty() {
            None
        } else {
            let text = rest.split(|&c| c == 0).next().unwrap_or_default();
            let text = std::str::from_utf8(text)
                .map_err(|_| ProtocolError("version data is not UTF-8".into()))?;
            Some(text.to_owned())
        };
        Ok(Self { major, minor, json })
    }

    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u16(self.major).u16(self.minor);
        if let Some(j) = &self.json {
            w.bytes(j.as_bytes()).bytes(&[0]);
        }
        w.finish()
    }
}

/// Declares a fixed-size little-endian wire structure: its fields in wire
/// order, `SIZE` (their sum), and `parse`/`encode` that read and write them
/// in that order.  Field types are `u32` or `u64` (the `Reader`/`Writer`
/// method of the same name).
macro_rules! wire_struct {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)+
        }

        impl $name {
            pub const SIZE: u32 = 0 $(+ std::mem::size_of::<$ty>() as u32)+;

            pub fn parse(p: &[u8]) -> Result<Self, ProtocolError> {
                let mut r = Reader::new(p);
                Ok(Self {
                    $($field: r.$ty()?,)+
                })
            }

            #[must_use]
            pub fn encode(&self) -> Vec<u8> {
                let mut w = Writer::new();
                $(w.$ty(self.$field);)+
                w.finish()
            }
        }
    };
}

wire_struct! {
    /// `struct vfio_device_info` as carried by `VFIO_USER_DEVICE_GET_INFO`.
    DeviceInfo { argsz: u32, flags: u32, num_regions: u32, num_irqs: u32 }
}

/// `struct vfio_region_info` (the fixed part; capabilities follow it).
/// vfio-user carries it as the kernel does, so the register model's codec
/// (which the device uses on kernel replies) serves both.
pub use cxl_model::uapi::{encode_region_info, vfio_region_info as RegionInfo};

/// Size of [`RegionInfo`] on the wire.
pub const REGION_INFO_SIZE: u32 = std::mem::size_of::<RegionInfo>() as u32;

/// Decodes a [`RegionInfo`] (the model's codec, with this module's error).
pub fn parse_region_info(p: &[u8]) -> Result<RegionInfo, ProtocolError> {
    cxl_model::uapi::parse_region_info(p).map_err(|e| ProtocolError(e.to_string()))
}

wire_struct! {
    /// `struct vfio_irq_info`.
    IrqInfo { argsz: u32, flags: u32, index: u32, count: u32 }
}

wire_struct! {
    /// `struct vfio_irq_set` (fixed part; boolean data, if any, follows it,
    /// eventfds travel as ancillary data).
    IrqSet { argsz: u32, flags: u32, index: u32, start: u32, count: u32 }
}

wire_struct! {
    /// The prefix of `VFIO_USER_REGION_READ` / `VFIO_USER_REGION_WRITE`
    /// requests and replies; data (if any) follows it.
    RegionAccess { offset: u64, region: u32, count: u32 }
}

wire_struct! {
    /// `VFIO_USER_DMA_MAP` payload.
    DmaMap {
        argsz: u32,
        flags: u32,
        /// Offset into the passed file descriptor.
        offset: u64,
        iova: u64,
        size: u64,
    }
}

wire_struct! {
    /// `VFIO_USER_DMA_UNMAP` payload (a dirty bitmap may follow; unsupported).
    DmaUnmap { argsz: u32, flags: u32, iova: u64, size: u64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = Header {
            id: 0x1234,
            command: cmd::REGION_READ,
            size: 48,
            flags: flags::REPLY | flags::ERROR,
            error: 22,
        };
        let b = h.encode();
        assert_eq!(&b[..4], &[0x34, 0x12, 9, 0]);
        assert_eq!(Header::parse(&b), h);
        assert!(h.is_reply() && h.is_error() && h.wants_reply());
    }

    #[test]
    fn version_round_trip() {
        let v = Version {
            major: 0,
            minor: 0,
            json: Some("{\"capabilities\":{}}".into()),
        };
        let b = v.encode();
        assert_eq!(*b.last().unwrap(), 0);
        assert_eq!(Version::parse(&b).unwrap(), v);
        assert_eq!(Version::parse(&[0, 0, 0, 0]).unwrap().json, None);
    }

    #[test]
    fn short_payload_is_an_error() {
        parse_region_info(&[0; 31]).unwrap_err();
        RegionAccess::parse(&[0; 16]).unwrap();
        DmaMap::parse(&[0; 8]).unwrap_err();
    }

    #[test]
    fn struct_sizes_match_encodings() {
        assert_eq!(
            encode_region_info(&RegionInfo::default()).len() as u32,
            REGION_INFO_SIZE
        );
        assert_eq!(
            DeviceInfo::default().encode().len() as u32,
            DeviceInfo::SIZE
        );
        assert_eq!(IrqInfo::default().encode().len() as u32, IrqInfo::SIZE);
        assert_eq!(IrqSet::default().encode().len() as u32, IrqSet::SIZE);
        assert_eq!(DmaMap::default().encode().len() as u32, DmaMap::SIZE);
        assert_eq!(DmaUnmap::default().encode().len() as u32, DmaUnmap::SIZE);
        assert_eq!(
            RegionAccess::default().encode().len() as u32,
            RegionAccess::SIZE
        );
    }
}
