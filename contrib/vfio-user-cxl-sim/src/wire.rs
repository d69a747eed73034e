// SPDX-License-Identifier: GPL-2.0-or-later

//! Message framing on a unix stream socket, with file descriptors passed
//! as `SCM_RIGHTS` ancillary data.  Shared by the server and the test
//! client.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::protocol::{Header, HEADER_SIZE};

/// Most file descriptors accepted with one message.
pub const MAX_FDS: usize = 16;

/// A complete message as read from the socket.
#[derive(Debug)]
pub struct Message {
    pub header: Header,
    pub payload: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

fn take_fds(raw: &[RawFd], out: &mut Vec<OwnedFd>) {
    for &fd in raw {
        // SAFETY: the kernel just installed `fd` in this process for us
        // (SCM_RIGHTS); nothing else owns it, so it is ours to close.
        out.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

/// Fills `buf` completely, collecting any passed descriptors.  Returns
/// `Ok(false)` on end of stream before the first byte.
fn recv_exact(sock: &UnixStream, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<bool> {
    let mut done = 0;
    while done < buf.len() {
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
        let mut iov = [IoSliceMut::new(&mut buf[done..])];
        let res = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        );
        let msg = match res {
            Ok(m) => m,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
        let n = msg.bytes;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    take_fds(&raw, fds);
                }
            }
        }
        if truncated {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "too many file descriptors in one message",
            ));
        }
        if n == 0 {
            if done == 0 {
                return Ok(false);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        done += n;
    }
    Ok(true)
}

/// Reads one message.  `Ok(None)` means the peer closed the connection
/// cleanly between messages.  Messages larger than `max_size` (header
/// included) are refused: the stream cannot be trusted after that.
pub fn recv_message(sock: &UnixStream, max_size: usize) -> io::Result<Option<Message>> {
    let mut fds = Vec::new();
    let mut hdr = [0u8; HEADER_SIZE];
    if !recv_exact(sock, &mut hdr, &mut fds)? {
        return Ok(None);
    }
    let header = Header::parse(&hdr);
    let size = header.size as usize;
    if size < HEADER_SIZE || size > max_size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad message size {size}"),
        ));
    }
    let mut payload = vec![0u8; size - HEADER_SIZE];
    if !payload.is_empty() && !recv_exact(sock, &mut payload, &mut fds)? {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some(Message {
        header,
        payload,
        fds,
    }))
}

/// Sends one message; `header.size` is set from the payload length.
pub fn send_message(
    sock: &UnixStream,
    header: &Header,
    payload: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let size = u32::try_from(HEADER_SIZE + payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too large"))?;
    let hdr = Header { size, ..*header }.encode();
    let mut buf = Vec::with_capacity(size as usize);
    buf.extend_from_slice(&hdr);
    buf.extend_from_slice(payload);
    send_bytes(sock, &buf, fds)
}

/// Sends `buf` as it is (a header whose size may or may not match, as
/// hostile mode wants), with `fds` on its first byte.
pub fn send_bytes(sock: &UnixStream, buf: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let mut sent = 0;
    while sent < buf.len() {
        let cmsgs = [ControlMessage::ScmRights(&raw)];
        // Descriptors go with the first byte only.
        let cmsgs: &[ControlMessage<'_>] = if sent == 0 && !raw.is_empty() {
            &cmsgs
        } else {
            &[]
        };
        let iov = [IoSlice::new(&buf[sent..])];
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => sent += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::cmd;
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::fd::AsFd;

    #[test]
    fn message_with_fd_round_trip() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut f = std::fs::File::from(
            nix::sys::memfd::memfd_create(c"t", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).unwrap(),
        );
        f.write_all(b"hello").unwrap();
        let h = Header {
            id: 7,
            command: cmd::DMA_MAP,
            ..Header::default()
        };
        send_message(&a, &h, &[1, 2, 3], &[f.as_fd()]).unwrap();
        let m = recv_message(&b, 4096).unwrap().unwrap();
        assert_eq!(m.header.id, 7);
        assert_eq!(m.header.size, 19);
        assert_eq!(m.payload, vec![1, 2, 3]);
        assert_eq!(m.fds.len(), 1);
        let mut g = std::fs::File::from(m.fds.into_iter().next().unwrap());
        g.seek(SeekFrom::Start(0)).unwrap();
        let mut s = String::new();
        g.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        drop(a);
        assert!(recv_message(&b, 4096).unwrap().is_none());
    }

    #[test]
    fn oversized_message_is_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        send_message(&a, &Header::default(), &[0; 64], &[]).unwrap();
        recv_message(&b, 32).unwrap_err();
    }
}
