//! Accepting HTTP connections, with `listen ... proxy_protocol`: the PROXY
//! header is read (bounded in size and time) on a task of its own, so a
//! slow client never holds up the next accept, and what follows the header
//! is handed to the HTTP server untouched. The address the header names is
//! the one `allow`/`deny` and the logs see.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::warn;

use crate::proxy_protocol as proxy;

/// How long a client has to send its PROXY header and finish its TLS
/// handshake.
const HEADER_TIME: Duration = Duration::from_secs(10);

/// A TCP stream that first yields the bytes read past a PROXY header.
pub struct Prefixed {
    early: BytesMut,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.early.is_empty() {
            let n = self.early.len().min(buf.remaining());
            buf.put_slice(&self.early[..n]);
            self.early.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    // Vectored writes must be passed on: without them hyper copies every
    // body chunk into a buffer of its own, which then keeps its largest
    // size (an HTTP-FLV client cost 280 KB and a copy of every byte).
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An accepted HTTP connection: in clear, or HTTPS (`listen ... ssl`).
pub enum Conn {
    Plain(Prefixed),
    Tls(Box<tokio_rustls::server::TlsStream<Prefixed>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(p) => Pin::new(p).poll_read(cx, buf),
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(p) => Pin::new(p).poll_write(cx, buf),
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(p) => Pin::new(p).poll_write_vectored(cx, bufs),
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(p) => p.is_write_vectored(),
            Conn::Tls(t) => t.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(p) => Pin::new(p).poll_flush(cx),
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(p) => Pin::new(p).poll_shutdown(cx),
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Where an HTTPS listener gets its acceptor: called once per connection,
/// so a reload's renewed certificate serves the next one.
pub type TlsSource = Box<dyn FnMut() -> Option<tokio_rustls::TlsAcceptor> + Send>;

/// The client of an HTTP request: the TCP peer, or the one its PROXY
/// header named.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, Accept>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Accept>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// An axum listener fed by an accept task.
pub struct Accept {
    rx: mpsc::Receiver<(Conn, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Accept {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Accept {
    /// Accepts on `listener`; with `tls`, every connection is HTTPS (after
    /// its PROXY header, when `proxied`).
    pub fn new(
        listener: TcpListener,
        proxied: bool,
        mut tls: Option<TlsSource>,
    ) -> io::Result<Accept> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (sock, addr) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        warn!("http accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let tx = tx.clone();
                let acceptor = match tls.as_mut() {
                    Some(source) => match source() {
                        Some(a) => Some(a),
                        None => {
                            warn!(%addr, "https: closed: no TLS configuration for this listener");
                            continue;
                        }
                    },
                    None => None,
                };
                if !proxied && acceptor.is_none() {
                    let io = Prefixed {
                        early: BytesMut::new(),
                        inner: sock,
                    };
                    if tx.send((Conn::Plain(io), addr)).await.is_err() {
                        return;
                    }
                    continue;
                }
                // PROXY headers and TLS handshakes take round trips: each
                // on a task of its own, so a slow client holds up no one.
                tokio::spawn(async move {
                    match tokio::time::timeout(HEADER_TIME, prepare(sock, proxied, acceptor)).await
                    {
                        Ok(Ok((io, real))) => {
                            let _ = tx.send((io, real.unwrap_or(addr))).await;
                        }
                        Ok(Err(e)) => warn!(%addr, "http: closed: {e:#}"),
                        Err(_) => warn!(
                            %addr,
                            "http: closed: no PROXY header or TLS handshake within {HEADER_TIME:?}"
                        ),
                    }
                });
            }
        });
        Ok(Accept { rx, local, task })
    }
}

/// The PROXY header when there is one, then the TLS handshake when the
/// listener is HTTPS.
async fn prepare(
    sock: TcpStream,
    proxied: bool,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) -> anyhow::Result<(Conn, Option<SocketAddr>)> {
    let (io, real) = if proxied {
        header(sock).await?
    } else {
        let io = Prefixed {
            early: BytesMut::new(),
            inner: sock,
        };
        (io, None)
    };
    match acceptor {
        None => Ok((Conn::Plain(io), real)),
        Some(a) => {
            let t = a
                .accept(io)
                .await
                .map_err(|e| anyhow::anyhow!("TLS handshake failed: {e}"))?;
            Ok((Conn::Tls(Box::new(t)), real))
        }
    }
}

async fn header(mut sock: TcpStream) -> anyhow::Result<(Prefixed, Option<SocketAddr>)> {
    let mut buf = BytesMut::new();
    loop {
        if let Some(h) = proxy::parse(&buf)? {
            buf.advance(h.len);
            return Ok((
                Prefixed {
                    early: buf,
                    inner: sock,
                },
                h.source,
            ));
        }
        if buf.len() >= proxy::V2_MAX {
            anyhow::bail!("PROXY header too long");
        }
        buf.reserve(512);
        if sock.read_buf(&mut buf).await? == 0 {
            anyhow::bail!("peer closed before its PROXY header");
        }
    }
}

impl axum::serve::Listener for Accept {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept task ended: wait for the server to be dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
