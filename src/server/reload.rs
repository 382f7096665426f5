//! Reload (SIGHUP): a new configuration, already validated, put in force
//! without dropping anyone.
//!
//! - listeners of the new configuration that were not open are opened
//!   first; if one cannot be, the reload is refused and nothing changes;
//! - the configuration is swapped: new connections get it at once, and
//!   existing ones at their next publish or play (`Connection::refresh_app`);
//! - listeners the new configuration no longer has are closed; the
//!   connections they accepted go on;
//! - HTTP servers whose settings changed are replaced (their open
//!   requests, HTTP-FLV players among them, go on);
//! - streams, /stat counters and metrics are untouched: they live in the
//!   registry and the stats table, not in the configuration.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::listen::{self, Listener};
use crate::config::{Config, Endpoint};
use crate::node::Shared;

/// A validated configuration to put in force; `done` answers once it is
/// (or once it was refused).
pub struct Request {
    pub config: Config,
    pub done: tokio::sync::oneshot::Sender<()>,
}

/// One RTMP accept loop, and a second descriptor of its socket: what a
/// binary upgrade passes on, and what accepting resumes from when the
/// upgrade fails.
struct Loop {
    task: Option<JoinHandle<()>>,
    fd: Option<OwnedFd>,
    proxy: bool,
}

/// The RTMP accept loops, by listening endpoint.
#[derive(Default)]
pub struct Accepting {
    loops: HashMap<Endpoint, Loop>,
}

impl Accepting {
    pub fn add(&mut self, l: Listener, shared: &Arc<Shared>) {
        let at = l.at.clone();
        let fd = l
            .dup_fd()
            .inspect_err(|e| warn!(listen = %at, "cannot keep a descriptor for upgrades: {e}"))
            .ok();
        let proxy = l.proxy_protocol;
        let task = Some(tokio::spawn(listen::accept_loop(l, shared.clone())));
        if let Some(old) = self.loops.insert(at, Loop { task, fd, proxy }) {
            if let Some(t) = old.task {
                t.abort();
            }
        }
    }

    /// Closes every listener.
    pub async fn close(&mut self) {
        for (_, l) in self.loops.drain() {
            if let Some(t) = l.task {
                t.abort();
                let _ = t.await;
            }
        }
    }

    /// Stops accepting, keeping the sockets open (an upgrade in progress).
    pub async fn pause(&mut self) {
        for l in self.loops.values_mut() {
            if let Some(t) = l.task.take() {
                t.abort();
                let _ = t.await;
            }
        }
    }

    /// Accepts again after [`Self::pause`].
    pub fn resume(&mut self, shared: &Arc<Shared>) {
        for (at, l) in &mut self.loops {
            if l.task.is_some() {
                continue;
            }
            let Some(fd) = l.fd.as_ref().and_then(|f| f.try_clone().ok()) else {
                error!(listen = %at, "cannot accept again: no descriptor kept");
                continue;
            };
            match Listener::from_fd(at.clone(), fd, l.proxy) {
                Ok(listener) => {
                    l.task = Some(tokio::spawn(listen::accept_loop(listener, shared.clone())))
                }
                Err(e) => error!(listen = %at, "cannot accept again: {e}"),
            }
        }
    }

    /// Every listening socket: endpoint, PROXY protocol, descriptor.
    pub fn sockets(&self) -> Vec<(Endpoint, bool, BorrowedFd<'_>)> {
        self.loops
            .iter()
            .filter_map(|(at, l)| Some((at.clone(), l.proxy, l.fd.as_ref()?.as_fd())))
            .collect()
    }
}

/// The HTTP servers, and a second descriptor of each one's socket (for
/// upgrades, as [`Accepting`]).
#[derive(Default)]
pub struct HttpServers {
    set: tokio::task::JoinSet<()>,
    fds: Vec<(std::net::SocketAddr, OwnedFd)>,
}

impl HttpServers {
    pub fn spawn(&mut self, h: crate::http::HttpListener, shared: &Arc<Shared>) {
        if let (Some(addr), Ok(fd)) = (h.local_addr(), h.dup_fd()) {
            self.fds.push((addr, fd));
        }
        self.set.spawn(h.serve(shared.clone()));
    }

    /// Stops every server (their open requests go on).
    pub async fn stop(&mut self) {
        self.set.abort_all();
        while self.set.join_next().await.is_some() {}
        self.fds.clear();
    }

    pub fn sockets(&self) -> Vec<(std::net::SocketAddr, BorrowedFd<'_>)> {
        self.fds.iter().map(|(a, f)| (*a, f.as_fd())).collect()
    }
}

/// Puts `new` in force, or logs why not and keeps the old one.
pub async fn apply(
    new: Config,
    shared: &Arc<Shared>,
    rtmp: &mut Accepting,
    http: &mut HttpServers,
) {
    let old = shared.config();
    for s in &new.servers {
        for t in s.tls_in_use() {
            if let Err(e) = crate::tls::check(t) {
                error!("reload refused, the old configuration stays: {e:#}");
                return;
            }
        }
    }
    for h in &new.http {
        if let Some(t) = h.tls.as_ref().filter(|_| !h.ssl.is_empty()) {
            if let Err(e) = crate::tls::check(t) {
                error!("reload refused, the old configuration stays: {e:#}");
                return;
            }
        }
    }
    let wanted: Vec<_> = new.servers.iter().flat_map(|s| s.listen.iter()).collect();
    let mut opened = Vec::new();
    for l in wanted.iter().filter(|l| !rtmp.loops.contains_key(&l.at)) {
        match Listener::bind(l).await {
            Ok(b) => opened.push(b),
            Err(e) => {
                error!("reload refused, the old configuration stays: {e:#}");
                return;
            }
        }
    }
    let http_changed = old.http != new.http;
    let mut new_http = Vec::new();
    if http_changed {
        // The old HTTP listeners must close before the same addresses can
        // be bound again.
        http.stop().await;
        for h in &new.http {
            match crate::http::HttpListener::bind(h).await {
                Ok(mut l) => new_http.append(&mut l),
                Err(e) => error!("reload: {e:#}; that HTTP server is down until the next reload"),
            }
        }
    }
    for w in &new.warnings {
        warn!("{w}");
    }
    let added = opened.len();
    shared.set_config(Arc::new(new));
    for l in opened {
        rtmp.add(l, shared);
    }
    let current = shared.config();
    let gone: Vec<Endpoint> = rtmp
        .loops
        .keys()
        .filter(|at| {
            !current
                .servers
                .iter()
                .flat_map(|s| &s.listen)
                .any(|l| &l.at == *at)
        })
        .cloned()
        .collect();
    for at in &gone {
        if let Some(t) = rtmp.loops.remove(at).and_then(|l| l.task) {
            t.abort();
        }
        info!(listen = %at, "reload: listener closed");
    }
    for h in new_http {
        http.spawn(h, shared);
    }
    let apps: usize = current.servers.iter().map(|s| s.apps.len()).sum();
    info!(
        listeners_added = added,
        listeners_closed = gone.len(),
        http_replaced = http_changed,
        applications = apps,
        "reload: new configuration in force"
    );
}
