//! What a connection needs of its socket: readiness and non-blocking reads
//! and vectored writes, as TCP and Unix stream sockets both offer them.

use std::future::Future;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, OwnedFd};

use crate::node::handover::SocketKind;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

pub trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send;
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Bytes accepted by a write but not yet on the socket (TLS records
    /// rustls holds): the writer must wait for writability and write an
    /// empty batch until there are none.
    fn has_pending_output(&self) -> bool {
        false
    }
    /// A second descriptor for the same socket, to hand to a new process.
    fn dup_fd(&self) -> io::Result<OwnedFd>;
    fn kind(&self) -> SocketKind;
}

macro_rules! socket {
    ($t:ty, $k:expr) => {
        impl Socket for $t {
            fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
                <$t>::readable(self)
            }
            fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
                <$t>::writable(self)
            }
            fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                <$t>::try_write_vectored(self, bufs)
            }
            fn dup_fd(&self) -> io::Result<OwnedFd> {
                self.as_fd().try_clone_to_owned()
            }
            fn kind(&self) -> SocketKind {
                $k
            }
        }
    };
}

socket!(TcpStream, SocketKind::Tcp);
socket!(UnixStream, SocketKind::Unix);
