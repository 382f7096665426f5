//! The new process's half of an upgrade: inherit the listening sockets,
//! then take the connections over (see the module above).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tracing::{info, warn};

use super::wire::{blocking, Channel, ListenAt, Msg};
use crate::config::Endpoint;
use crate::live::StreamKey;
use crate::node::handover::{ConnState, SocketKind, StreamState};
use crate::node::Shared;
use crate::server::connection::Connection;

/// How long each step may take before the new process gives up on the
/// old one (the old one then keeps everything).
const STEP: Duration = Duration::from_secs(30);

/// What the old process passed on before this one binds.
pub struct Inbound {
    ch: Arc<Channel>,
    rtmp: HashMap<Endpoint, OwnedFd>,
    http: HashMap<SocketAddr, OwnedFd>,
    /// Connection ids at or below this are the old process's.
    pub next_id: u64,
}

impl Inbound {
    /// When this process was started by an upgrade: connects to the old
    /// process and receives its listening sockets. Blocking; run it before
    /// anything listens.
    pub fn from_env() -> anyhow::Result<Option<Inbound>> {
        let Some(path) = std::env::var_os(super::ENV) else {
            return Ok(None);
        };
        // Not for our own children (exec): they are not upgrades.
        std::env::remove_var(super::ENV);
        let sock = std::os::unix::net::UnixStream::connect(&path)
            .with_context(|| format!("upgrade socket {}", path.to_string_lossy()))?;
        let ch = Channel::new(sock);
        ch.set_timeout(Some(STEP))?;
        ch.send(
            &Msg::Hello {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            &[],
        )?;
        let (msg, fds) = ch.recv()?;
        let Msg::Listeners {
            rtmp,
            http,
            next_id,
        } = msg
        else {
            anyhow::bail!("upgrade: expected the listeners, got {msg:?}");
        };
        anyhow::ensure!(
            fds.len() == rtmp.len() + http.len(),
            "upgrade: {} descriptors for {} listeners",
            fds.len(),
            rtmp.len() + http.len()
        );
        let mut fds = fds.into_iter();
        let rtmp = rtmp
            .into_iter()
            .zip(fds.by_ref())
            .map(|(at, fd)| {
                let at = match at {
                    ListenAt::Tcp(a) => Endpoint::Tcp(a),
                    ListenAt::Unix(p) => Endpoint::Unix(p),
                };
                (at, fd)
            })
            .collect();
        let http = http.into_iter().zip(fds).collect();
        info!(
            next_id,
            "upgrade: listening sockets received from the old process"
        );
        Ok(Some(Inbound {
            ch: Arc::new(ch),
            rtmp,
            http,
            next_id,
        }))
    }

    /// The inherited RTMP socket listening at `at`, if any.
    pub fn take_rtmp(&mut self, at: &Endpoint) -> Option<OwnedFd> {
        self.rtmp.remove(at)
    }

    /// The inherited HTTP socket listening at `addr`, if any.
    pub fn take_http(&mut self, addr: SocketAddr) -> Option<OwnedFd> {
        self.http.remove(&addr)
    }

    /// This process cannot start: the old one keeps serving.
    pub fn fail(self, reason: &str) {
        let _ = self.ch.send(
            &Msg::Failed {
                reason: reason.to_owned(),
            },
            &[],
        );
    }

    /// Says ready, receives the streams and connections, and serves them.
    /// Returns how many connections were taken over. On error nothing was
    /// taken: the old process keeps them all.
    pub async fn take_over(self, shared: &Arc<Shared>) -> anyhow::Result<usize> {
        // Sockets this configuration does not listen on any more close.
        drop((self.rtmp, self.http));
        let ch = self.ch;
        blocking(&ch, |ch| ch.send(&Msg::Ready, &[])).await?;
        let mut streams = Vec::new();
        let mut conns = Vec::new();
        loop {
            let (msg, mut fds) = blocking(&ch, |ch| ch.recv()).await?;
            match msg {
                Msg::Stream(s) => streams.push(*s),
                Msg::Conn(c) => {
                    let fd = fds.pop().context("a connection without its socket")?;
                    conns.push((*c, fd));
                }
                Msg::End => break,
                other => anyhow::bail!("unexpected {other:?}"),
            }
        }
        let n_streams = streams.len();
        for s in streams {
            restore_stream(s, shared);
        }
        let mut refused = Vec::new();
        let mut ready = Vec::new();
        for (st, fd) in conns {
            let (id, kind) = (st.id, st.socket);
            match Connection::resume(st, shared) {
                Ok(c) => ready.push((c, kind, fd)),
                Err(e) => {
                    warn!(id, "upgrade: connection left with the old process: {e}");
                    refused.push(id);
                }
            }
        }
        let taken = ready.len();
        if let Err(e) = blocking(&ch, move |ch| ch.send(&Msg::Accepted { refused }, &[])).await {
            // The old process is gone: these connections are ours alone.
            warn!("upgrade: could not confirm to the old process: {e}");
        }
        for (c, kind, fd) in ready {
            spawn(c, kind, fd);
        }
        info!(
            streams = n_streams,
            connections = taken,
            "upgrade: connections taken over"
        );
        Ok(taken)
    }
}

fn restore_stream(s: StreamState, shared: &Arc<Shared>) {
    let config = shared.config();
    let Some(server) = config.servers.get(s.server) else {
        return;
    };
    let (gop_cache, interleave) = server
        .app(&s.app)
        .map_or((true, false), |a| (a.gop_cache, a.interleave));
    let chunk = server.core.chunk_size;
    let key = StreamKey {
        server: s.server,
        app: s.app,
        name: s.name,
    };
    let frames = s
        .frames
        .into_iter()
        .filter_map(|f| crate::server::resume::frame_from_state(f, chunk, interleave))
        .map(Arc::new)
        .collect();
    let who = crate::live::stream::PublisherId {
        id: s.publisher,
        addr: s.publisher_addr,
        relay: false,
    };
    let stream = shared.registry.get_or_create(&key, server.core.out_queue);
    stream.import(who, s.age_ms.map(Duration::from_millis), frames, gop_cache);
}

fn spawn(c: Connection, kind: SocketKind, fd: OwnedFd) {
    let id = c.id;
    let started = match kind {
        SocketKind::Tcp => {
            let s = std::net::TcpStream::from(fd);
            s.set_nonblocking(true)
                .and_then(|()| tokio::net::TcpStream::from_std(s))
                .map(|s| {
                    tokio::spawn(c.run_resumed(s));
                })
        }
        SocketKind::Unix => {
            let s = std::os::unix::net::UnixStream::from(fd);
            s.set_nonblocking(true)
                .and_then(|()| tokio::net::UnixStream::from_std(s))
                .map(|s| {
                    tokio::spawn(c.run_resumed(s));
                })
        }
    };
    if let Err(e) = started {
        warn!(id, "upgrade: cannot serve the connection's socket: {e}");
    }
}

/// Turns a received connection state into JSON and back: what the fuzz
/// target and the tests drive.
pub fn parse_conn(body: &[u8]) -> Result<ConnState, serde_json::Error> {
    serde_json::from_slice(body)
}
