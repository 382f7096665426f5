//! RTMPS: `listen ... ssl` with `ssl_certificate` and `ssl_certificate_key`.
//!
//! The TLS handshake runs through tokio-rustls; the connection then gets a
//! [`TlsSocket`], which offers the readiness-and-try API every connection
//! uses ([`Socket`]) on top of rustls, so the connection code is the same
//! for plain and TLS clients. rustls only: no OpenSSL.

use std::future::Future;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use rustls::ServerConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::socket::Socket;
use crate::node::handover::SocketKind;

/// A TCP socket's non-blocking reads and writes as `io::Read`/`Write`, for
/// rustls to move ciphertext through.
struct Io<'a>(&'a TcpStream);

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A TLS connection after its handshake. The mutex is never contended
/// (one task owns the socket); it is there because [`Socket`] reads and
/// writes through `&self`, as tokio's sockets do.
pub struct TlsSocket {
    tcp: TcpStream,
    tls: Mutex<ServerConnection>,
}

impl TlsSocket {
    pub fn new(tcp: TcpStream, tls: ServerConnection) -> TlsSocket {
        TlsSocket {
            tcp,
            tls: Mutex::new(tls),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ServerConnection> {
        self.tls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Plaintext is waiting, or the peer closed: a read will not block.
    fn has_plaintext(&self) -> bool {
        let mut tls = self.lock();
        tls.process_new_packets().map_or(true, |s| {
            s.plaintext_bytes_to_read() > 0 || s.peer_has_closed()
        })
    }

    /// Writes the ciphertext rustls holds, as far as the socket takes it.
    fn push(tls: &mut ServerConnection, tcp: &TcpStream) -> io::Result<()> {
        while tls.wants_write() {
            if tls.write_tls(&mut Io(tcp))? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Reads plaintext: 0 at the end of the stream, `WouldBlock` when a
    /// whole record has not arrived yet.
    fn read_plain(&self, dst: &mut [u8]) -> io::Result<usize> {
        let mut tls = self.lock();
        loop {
            match tls.reader().read(dst) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // Closed without close_notify: an end like any other.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if tls.read_tls(&mut Io(&self.tcp))? == 0 {
                return Ok(0);
            }
            let state = tls
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
            // Alerts and key updates go out whatever happens next.
            let _ = Self::push(&mut tls, &self.tcp);
            state?;
        }
    }

    /// Writes plaintext: what rustls accepted (its buffer is bounded), or
    /// `WouldBlock` while the ciphertext it holds cannot leave.
    fn write_plain(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut tls = self.lock();
        Self::push(&mut tls, &self.tcp)?;
        if bufs.iter().all(|b| b.is_empty()) {
            return Ok(0);
        }
        let n = tls.writer().write_vectored(bufs)?;
        match Self::push(&mut tls, &self.tcp) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}

impl Socket for TlsSocket {
    async fn readable(&self) -> io::Result<()> {
        if self.has_plaintext() {
            return Ok(());
        }
        self.tcp.readable().await
    }
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.tcp.writable()
    }
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_plain(bufs)
    }
    fn has_pending_output(&self) -> bool {
        self.lock().wants_write()
    }
    /// TLS state cannot move to another process: a binary upgrade leaves
    /// TLS clients with the old one, which drains them.
    fn dup_fd(&self) -> io::Result<OwnedFd> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a TLS session stays in its process",
        ))
    }
    fn kind(&self) -> SocketKind {
        SocketKind::Tcp
    }
}

/// Runs `op` until it does not block, waiting on `ready` (the TCP socket's
/// read or write readiness) in between: the poll form of a try-operation.
fn retry<T>(
    cx: &mut Context<'_>,
    mut op: impl FnMut() -> io::Result<T>,
    ready: impl Fn(&mut Context<'_>) -> Poll<io::Result<()>>,
) -> Poll<io::Result<T>> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match ready(cx) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            },
            r => return Poll::Ready(r),
        }
    }
}

impl AsyncRead for TlsSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &*self;
        let n = match retry(
            cx,
            // A record's worth at a time: the caller's buffer may be
            // 64 KiB of uninitialised room, not worth zeroing each read.
            || this.read_plain(buf.initialize_unfilled_to(buf.remaining().min(16 * 1024))),
            |cx| this.tcp.poll_read_ready(cx),
        ) {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TlsSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &*self;
        retry(
            cx,
            || this.write_plain(&[IoSlice::new(buf)]),
            |cx| this.tcp.poll_write_ready(cx),
        )
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &*self;
        retry(
            cx,
            || Self::push(&mut this.lock(), &this.tcp),
            |cx| this.tcp.poll_write_ready(cx),
        )
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lock().send_close_notify();
        self.poll_flush(cx)
    }
}
