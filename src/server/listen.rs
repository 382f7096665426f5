//! RTMP listeners: TCP (optionally with SO_REUSEPORT) and Unix sockets,
//! each optionally behind the PROXY protocol, and the accept loop that
//! hands every connection to its task.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tracing::{debug, warn};

use super::connection::Connection;
use super::socket::Socket;
use crate::config::{Endpoint, Listen};
use crate::node::Shared;
use crate::proxy_protocol as proxy;

pub enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// One bound `listen`. Its `server {}` block is looked up at each accept
/// in the configuration in force, so a reload may move it.
pub struct Listener {
    pub at: Endpoint,
    pub bound: Bound,
    pub proxy_protocol: bool,
}

impl Listener {
    pub async fn bind(l: &Listen) -> anyhow::Result<Listener> {
        let bound = match &l.at {
            Endpoint::Tcp(addr) => {
                let s = if addr.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                s.set_reuseaddr(true)?;
                // Always (whatever `reuseport` says), so that a new process
                // can bind the port while the old one drains.
                s.set_reuseport(true)?;
                s.bind(*addr)
                    .with_context(|| format!("cannot listen on {addr}"))?;
                Bound::Tcp(s.listen(1024)?)
            }
            Endpoint::Unix(path) => {
                // A socket file left by a previous run would refuse the bind.
                if std::fs::symlink_metadata(path)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    let _ = std::fs::remove_file(path);
                }
                let u = UnixListener::bind(path)
                    .with_context(|| format!("cannot listen on unix:{}", path.display()))?;
                Bound::Unix(u)
            }
        };
        Ok(Listener {
            at: l.at.clone(),
            bound,
            proxy_protocol: l.proxy_protocol,
        })
    }

    /// A listener on an inherited socket (binary upgrade).
    pub fn from_fd(
        at: Endpoint,
        fd: std::os::fd::OwnedFd,
        proxy_protocol: bool,
    ) -> std::io::Result<Listener> {
        let bound = match &at {
            Endpoint::Tcp(_) => {
                let l = std::net::TcpListener::from(fd);
                l.set_nonblocking(true)?;
                Bound::Tcp(TcpListener::from_std(l)?)
            }
            Endpoint::Unix(_) => {
                let l = std::os::unix::net::UnixListener::from(fd);
                l.set_nonblocking(true)?;
                Bound::Unix(UnixListener::from_std(l)?)
            }
        };
        Ok(Listener {
            at,
            bound,
            proxy_protocol,
        })
    }

    /// A second descriptor for the listening socket.
    pub fn dup_fd(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        match &self.bound {
            Bound::Tcp(t) => t.as_fd().try_clone_to_owned(),
            Bound::Unix(u) => u.as_fd().try_clone_to_owned(),
        }
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.bound {
            Bound::Tcp(t) => t.local_addr().ok(),
            Bound::Unix(_) => None,
        }
    }
}

/// The address a Unix socket client is known by (it has none of its own).
const UNIX_PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// Accepts until aborted.
pub async fn accept_loop(l: Listener, shared: Arc<Shared>) {
    let mut tls = crate::tls::Acceptors::default();
    loop {
        let accepted = match &l.bound {
            Bound::Tcp(t) => t.accept().await.map(|(s, a)| (Accepted::Tcp(s), a)),
            Bound::Unix(u) => u
                .accept()
                .await
                .map(|(s, _)| (Accepted::Unix(s), UNIX_PEER)),
        };
        let (sock, addr) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let config = shared.config();
        let Some(server) = config
            .servers
            .iter()
            .position(|s| s.listen.iter().any(|x| x.at == l.at))
        else {
            // Removed by a reload; its task is about to end.
            continue;
        };
        if let Accepted::Tcp(s) = &sock {
            let _ = s.set_nodelay(config.servers[server].core.tcp_nodelay);
        }
        let ssl = config.servers[server]
            .listen
            .iter()
            .any(|x| x.at == l.at && x.ssl);
        if let Some(max) = config.max_connections {
            if shared.connections.load(Ordering::Relaxed) >= max {
                warn!(%addr, max, "refused: max_connections reached");
                continue;
            }
        }
        crate::telemetry::accepted();
        let (proxied, shared) = (l.proxy_protocol, shared.clone());
        match sock {
            Accepted::Tcp(s) if ssl => {
                let Some(acceptor) = tls.get(
                    Arc::as_ptr(&config) as usize,
                    config.servers[server].tls_for(&l.at),
                ) else {
                    warn!(%addr, "closed: no TLS configuration for this listener");
                    continue;
                };
                let limit = config.servers[server]
                    .tls_for(&l.at)
                    .and_then(|t| t.handshake_timeout)
                    .unwrap_or(config.servers[server].core.timeout);
                tokio::spawn(async move {
                    // A PROXY header comes before the ClientHello, in clear.
                    let handshake = async {
                        let mut s = s;
                        let mut addr = addr;
                        if proxied {
                            if let Some(real) = read_proxy_exact(&mut s).await? {
                                addr = real;
                            }
                        }
                        let stream = acceptor.accept(s).await?;
                        anyhow::Ok((stream, addr))
                    };
                    match tokio::time::timeout(limit, handshake).await {
                        Ok(Ok((stream, addr))) => {
                            let (tcp, conn) = stream.into_inner();
                            let sock = super::tls::TlsSocket::new(tcp, conn);
                            start(sock, addr, server, false, shared).await;
                        }
                        Ok(Err(e)) => {
                            warn!(%addr, "closed: TLS handshake failed: {e}");
                            crate::telemetry::closed(crate::telemetry::Cause::Handshake);
                        }
                        Err(_) => {
                            warn!(%addr, "closed: no TLS handshake within {limit:?}");
                            crate::telemetry::closed(crate::telemetry::Cause::HandshakeTimeout);
                        }
                    }
                });
            }
            Accepted::Tcp(s) => {
                tokio::spawn(start(s, addr, server, proxied, shared));
            }
            Accepted::Unix(s) => {
                tokio::spawn(start(s, addr, server, proxied, shared));
            }
        }
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// Reads the PROXY header when the listener wants one, then serves.
async fn start<S: Socket>(
    mut sock: S,
    mut addr: SocketAddr,
    server: usize,
    proxied: bool,
    shared: Arc<Shared>,
) {
    let mut early = BytesMut::new();
    if proxied {
        let timeout = shared
            .config()
            .servers
            .get(server)
            .map_or(Duration::from_secs(60), |s| s.core.timeout);
        match tokio::time::timeout(timeout, read_proxy(&mut sock, &mut early)).await {
            Ok(Ok(Some(real))) => addr = real,
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                warn!(%addr, "closed: {e}");
                crate::telemetry::closed(crate::telemetry::Cause::Protocol);
                return;
            }
            Err(_) => {
                warn!(%addr, "closed: no PROXY protocol header within {timeout:?}");
                crate::telemetry::closed(crate::telemetry::Cause::Protocol);
                return;
            }
        }
    }
    let id = shared.next_id();
    // Debug, not info: `connect` and `closed` carry the id and address
    // again, and under churn a fourth line per connection was a quarter
    // of the logging cost (5 % of a join's user-space instructions).
    debug!(id, %addr, "open");
    Connection::new(id, addr, server, shared)
        .run(sock, early)
        .await;
}

/// Reads a PROXY header and not one byte more, so that a TLS handshake
/// can follow on the same socket.
async fn read_proxy_exact(tcp: &mut tokio::net::TcpStream) -> anyhow::Result<Option<SocketAddr>> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::with_capacity(64);
    loop {
        if let Some(h) = proxy::parse(&buf)? {
            return Ok(h.source);
        }
        if buf.len() >= proxy::V2_MAX {
            anyhow::bail!("PROXY header too long");
        }
        let have = buf.len();
        buf.resize(have + proxy::wanted(&buf), 0);
        tcp.read_exact(&mut buf[have..])
            .await
            .map_err(|e| anyhow::anyhow!("peer closed before its PROXY header ({e})"))?;
    }
}

/// Reads a PROXY header; what follows it stays in `buf`.
async fn read_proxy<S: Socket>(
    sock: &mut S,
    buf: &mut BytesMut,
) -> anyhow::Result<Option<SocketAddr>> {
    loop {
        if let Some(h) = proxy::parse(buf)? {
            let _ = buf.split_to(h.len);
            return Ok(h.source);
        }
        if buf.len() >= proxy::V2_MAX {
            anyhow::bail!("PROXY header too long");
        }
        buf.reserve(512);
        if sock.read_buf(buf).await? == 0 {
            anyhow::bail!("peer closed before its PROXY header");
        }
    }
}
