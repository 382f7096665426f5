//! The Unix socket between the old and the new process during an upgrade:
//! length-prefixed JSON messages, each with the file descriptors it
//! carries (SCM_RIGHTS) attached to its first bytes.
//!
//! Frame: a 4-byte big-endian length, a 1-byte descriptor count, then the
//! JSON. The receiver never allocates from the length before the bytes
//! arrive, refuses frames over [`MAX_LEN`], and checks that it got exactly
//! the descriptors the frame announced.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};

use crate::node::handover::{ConnState, StreamState};

/// Largest message: a stream's GOP cache is the big one.
pub const MAX_LEN: usize = 512 << 20;
/// Most descriptors one message carries (the listeners).
pub const MAX_FDS: usize = 64;

/// An RTMP listening socket being passed on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum ListenAt {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t")]
pub enum Msg {
    /// new → old: connected.
    Hello { pid: u32, version: String },
    /// old → new: the listening sockets, in this order, as descriptors;
    /// ids the new process must not reuse start above `next_id`.
    Listeners {
        rtmp: Vec<ListenAt>,
        http: Vec<SocketAddr>,
        next_id: u64,
    },
    /// new → old: configuration loaded, listening, ready for connections.
    Ready,
    /// new → old: could not start.
    Failed { reason: String },
    /// old → new: a stream, before its connections.
    Stream(Box<StreamState>),
    /// old → new: a connection, with its socket.
    Conn(Box<ConnState>),
    /// old → new: nothing more.
    End,
    /// new → old: serving all but `refused`, which the old process keeps.
    Accepted { refused: Vec<u64> },
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("peer closed the upgrade socket")]
    Closed,
    #[error("message of {0} bytes is over the limit")]
    TooLong(usize),
    #[error("{0} descriptors announced, the limit is {MAX_FDS}")]
    TooManyFds(usize),
    #[error("{want} descriptors announced, {got} received")]
    FdCount { want: usize, got: usize },
    #[error("bad message: {0}")]
    Json(#[from] serde_json::Error),
}

/// The frame header for a `len`-byte body carrying `fds` descriptors.
pub fn header(len: usize, fds: usize) -> Result<[u8; 5], WireError> {
    if len > MAX_LEN {
        return Err(WireError::TooLong(len));
    }
    if fds > MAX_FDS {
        return Err(WireError::TooManyFds(fds));
    }
    let l = (len as u32).to_be_bytes();
    Ok([l[0], l[1], l[2], l[3], fds as u8])
}

/// Reads a frame header: the body length and the descriptor count.
pub fn parse_header(h: [u8; 5]) -> Result<(usize, usize), WireError> {
    let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let fds = h[4] as usize;
    if len > MAX_LEN {
        return Err(WireError::TooLong(len));
    }
    if fds > MAX_FDS {
        return Err(WireError::TooManyFds(fds));
    }
    Ok((len, fds))
}

/// Decodes a message body.
pub fn decode(body: &[u8]) -> Result<Msg, WireError> {
    Ok(serde_json::from_slice(body)?)
}

/// One end of the upgrade socket (blocking; used from blocking threads).
pub struct Channel {
    sock: UnixStream,
}

impl Channel {
    pub fn new(sock: UnixStream) -> Channel {
        Channel { sock }
    }

    pub fn set_timeout(&self, t: Option<std::time::Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(t)?;
        self.sock.set_write_timeout(t)
    }

    /// Sends `msg` with `fds`.
    pub fn send(&self, msg: &Msg, fds: &[BorrowedFd<'_>]) -> Result<(), WireError> {
        let body = serde_json::to_vec(msg)?;
        let head = header(body.len(), fds.len())?;
        let iov = [IoSlice::new(&head), IoSlice::new(&body)];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(WireError::TooManyFds(fds.len()));
        }
        let sent = rustix::net::sendmsg(self.sock.as_fd(), &iov, &mut control, SendFlags::empty())
            .map_err(io::Error::from)?;
        // The descriptors went with the first bytes; the rest is plain.
        let mut w = &self.sock;
        let total = head.len() + body.len();
        if sent < head.len() {
            w.write_all(&head[sent..])?;
            w.write_all(&body)?;
        } else if sent < total {
            w.write_all(&body[sent - head.len()..])?;
        }
        Ok(())
    }

    /// Receives a message and the descriptors that came with it.
    pub fn recv(&self) -> Result<(Msg, Vec<OwnedFd>), WireError> {
        let mut head = [0u8; 5];
        let mut got = 0;
        let mut fds = Vec::new();
        while got < head.len() {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [IoSliceMut::new(&mut head[got..])];
            let r = rustix::net::recvmsg(
                self.sock.as_fd(),
                &mut iov,
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )
            .map_err(io::Error::from)?;
            for m in control.drain() {
                if let RecvAncillaryMessage::ScmRights(list) = m {
                    fds.extend(list);
                }
            }
            if r.bytes == 0 {
                return Err(WireError::Closed);
            }
            got += r.bytes;
        }
        let (len, want) = parse_header(head)?;
        if fds.len() != want {
            return Err(WireError::FdCount {
                want,
                got: fds.len(),
            });
        }
        // Grows with the bytes that arrive, not with the announced length.
        let mut body = Vec::new();
        let n = (&self.sock).take(len as u64).read_to_end(&mut body)?;
        if n < len {
            return Err(WireError::Closed);
        }
        Ok((decode(&body)?, fds))
    }
}

/// Runs `f` on the channel on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    ch: &std::sync::Arc<Channel>,
    f: impl FnOnce(&Channel) -> Result<T, WireError> + Send + 'static,
) -> anyhow::Result<T> {
    let ch = ch.clone();
    Ok(tokio::task::spawn_blocking(move || f(&ch)).await??)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_descriptors() {
        let (a, b) = UnixStream::pair().unwrap();
        let (a, b) = (Channel::new(a), Channel::new(b));
        let file = tempfile::tempfile().unwrap();
        let (x, _y) = UnixStream::pair().unwrap();
        let msg = Msg::Listeners {
            rtmp: vec![ListenAt::Tcp("127.0.0.1:1935".parse().unwrap())],
            http: vec!["127.0.0.1:8080".parse().unwrap()],
            next_id: 42,
        };
        a.send(&msg, &[file.as_fd(), x.as_fd()]).unwrap();
        a.send(&Msg::End, &[]).unwrap();
        let (m, fds) = b.recv().unwrap();
        assert!(matches!(m, Msg::Listeners { next_id: 42, .. }));
        assert_eq!(fds.len(), 2);
        // The descriptor is the same file: a write through it shows up.
        let mut f = std::fs::File::from(fds.into_iter().next().unwrap());
        f.write_all(b"hi").unwrap();
        assert_eq!(file.metadata().unwrap().len(), 2);
        let (m, fds) = b.recv().unwrap();
        assert!(matches!(m, Msg::End) && fds.is_empty());
        drop(a);
        assert!(matches!(b.recv(), Err(WireError::Closed)));
    }

    /// The fuzz target's seed is a real publisher's state: it decodes and
    /// restores, and its half message continues.
    #[test]
    fn a_publisher_state_restores() {
        let seed = include_bytes!("../../../fuzz/corpus/handover_state/seed-conn-publisher");
        let Msg::Conn(c) = decode(seed).unwrap() else {
            panic!("not a connection")
        };
        assert_eq!(c.input, [0x46, 0, 0, 0]);
        let s = crate::rtmp::Session::import(Default::default(), c.session).unwrap();
        assert_eq!(s.in_chunk_size(), 4096);
        assert_eq!(s.bytes_received(), 1000);
    }

    #[test]
    fn headers_are_bounded() {
        assert!(parse_header([0xff, 0xff, 0xff, 0xff, 0]).is_err());
        assert!(parse_header([0, 0, 0, 1, 200]).is_err());
        assert_eq!(parse_header(header(10, 1).unwrap()).unwrap(), (10, 1));
    }

    #[test]
    fn a_short_body_is_an_error_not_a_hang() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut w = &a;
        w.write_all(&header(100, 0).unwrap()).unwrap();
        w.write_all(b"{}").unwrap();
        drop(a);
        assert!(Channel::new(b).recv().is_err());
    }
}
