//! The runtime side: listeners, connection tasks, shared state.
//!
//! Tokio's multi-threaded runtime spreads connection tasks over every core;
//! a connection is one task that owns its socket, its protocol session and
//! (if it plays) its ring receiver, so nothing on the per-frame path is
//! shared between players except the immutable frames themselves.

mod commands;
mod connection;
mod direct;
mod events;
mod goaway;
pub mod handover;
mod hooks;
mod keepalive;
mod listen;
pub mod reload;
mod resume;
mod socket;
pub mod tls;
mod vod;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::{info, warn};

use crate::config::Config;

pub use crate::node::drain;
pub use crate::node::Shared;

pub struct Server {
    listeners: Vec<listen::Listener>,
    http: Vec<crate::http::HttpListener>,
    shared: Arc<Shared>,
    /// Configurations to put in force (SIGHUP), already validated.
    reloads: Option<tokio::sync::mpsc::Receiver<reload::Request>>,
    /// Binary upgrades to run (SIGUSR2).
    upgrades: Option<tokio::sync::mpsc::Receiver<handover::old::Request>>,
    /// This process is the new half of an upgrade: the old one's
    /// connections come in once it runs.
    inbound: Option<handover::new::Inbound>,
}

impl Server {
    /// Binds every `listen` of every `server {}` block. `modules` is the
    /// feature chain ([`crate::modules::all`] for a full node).
    pub async fn bind(config: Config, modules: crate::node::Chain) -> anyhow::Result<Server> {
        Self::bind_with(config, modules, None).await
    }

    /// The same, for the new half of an upgrade: the listening sockets the
    /// old process passed on are used where the configuration still has
    /// them. If this fails, the old process is told, and keeps serving.
    pub async fn bind_with(
        config: Config,
        modules: crate::node::Chain,
        mut inbound: Option<handover::new::Inbound>,
    ) -> anyhow::Result<Server> {
        match Self::bind_inner(&config, &mut inbound).await {
            Ok((listeners, http, cluster)) => {
                let shared = Arc::new(Shared::new(config, cluster, modules));
                if let Some(i) = &inbound {
                    shared.skip_ids(i.next_id);
                }
                Ok(Server {
                    listeners,
                    http,
                    shared,
                    reloads: None,
                    upgrades: None,
                    inbound,
                })
            }
            Err(e) => {
                if let Some(i) = inbound {
                    i.fail(&format!("{e:#}"));
                }
                Err(e)
            }
        }
    }

    #[allow(clippy::type_complexity)]
    async fn bind_inner(
        config: &Config,
        inbound: &mut Option<handover::new::Inbound>,
    ) -> anyhow::Result<(
        Vec<listen::Listener>,
        Vec<crate::http::HttpListener>,
        Option<Arc<crate::cluster::Cluster>>,
    )> {
        // HTTP first: once an RTMP port accepts, /stat and friends do too
        // (scripts and tests wait for the RTMP port).
        crate::telemetry::init();
        let mut http = Vec::new();
        for h in &config.http {
            if let Some(t) = h.tls.as_ref().filter(|_| !h.ssl.is_empty()) {
                crate::tls::check(t)?;
            }
            let mut inherit = |a| inbound.as_mut().and_then(|i| i.take_http(a));
            http.extend(crate::http::HttpListener::bind_inheriting(h, &mut inherit).await?);
        }
        let mut listeners = Vec::new();
        for s in &config.servers {
            for t in s.tls_in_use() {
                crate::tls::check(t)?;
            }
            for l in &s.listen {
                let fd = inbound.as_mut().and_then(|i| i.take_rtmp(&l.at));
                listeners.push(match fd {
                    Some(fd) => listen::Listener::from_fd(l.at.clone(), fd, l.proxy_protocol)?,
                    None => listen::Listener::bind(l).await?,
                });
            }
        }
        let cluster = match &config.cluster {
            Some(c) => Some(crate::cluster::Cluster::new(c.clone()).await?),
            None => None,
        };
        Ok((listeners, http, cluster))
    }

    /// Where binary upgrades are asked for (see [`handover`]).
    pub fn upgrades(&mut self, rx: tokio::sync::mpsc::Receiver<handover::old::Request>) {
        self.upgrades = Some(rx);
    }

    /// Where reloaded configurations come from (see [`reload`]).
    pub fn reloads(&mut self, rx: tokio::sync::mpsc::Receiver<reload::Request>) {
        self.reloads = Some(rx);
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(listen::Listener::local_addr)
            .collect()
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Accepts connections until `shutdown` completes or a drain is
    /// requested in-process, then drains (see [`drain`]).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let mut rtmp = reload::Accepting::default();
        for listener in self.listeners {
            rtmp.add(listener, &self.shared);
        }
        // HTTP keeps serving through the drain (/stat shows it, and the
        // /control/drain request gets its answer); it stops at the end.
        let mut http = reload::HttpServers::default();
        for h in self.http {
            http.spawn(h, &self.shared);
        }
        let mut reloads = self.reloads;
        let mut upgrades = self.upgrades;
        let shared = self.shared;
        if let Some(c) = &shared.cluster {
            let weak = Arc::downgrade(&shared);
            c.start(Arc::new(move |id| {
                if let Some(s) = weak.upgrade() {
                    s.drain.post(id, drain::Signal::Drop);
                }
            }));
            info!(node = c.node_id(), registry = %c.conf.registry, "cluster: node started");
        }
        shared.modules.start(&shared);
        if let Some(inbound) = self.inbound {
            if let Err(e) = inbound.take_over(&shared).await {
                warn!("upgrade: no connection taken over, the old process keeps them: {e:#}");
            }
        }
        tokio::pin!(shutdown);
        let mut upgraded = false;
        loop {
            let next = async {
                match reloads.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let upgrade = async {
                match upgrades.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = shared.drain.requested() => break,
                Some(r) = next => {
                    reload::apply(r.config, &shared, &mut rtmp, &mut http).await;
                    let _ = r.done.send(());
                }
                Some(r) = upgrade => {
                    let ok = handover::old::run(&r.upgrade, &shared, &mut rtmp, &mut http)
                        .await
                        .is_ok();
                    let _ = r.done.send(ok);
                    if ok {
                        upgraded = true;
                        break;
                    }
                }
            }
        }
        if !upgraded {
            // After an upgrade the service goes on, in the new process.
            crate::sdnotify::notify("STOPPING=1");
        }
        // Closing the listeners refuses new connections at once.
        rtmp.close().await;
        let timeout = shared.config().drain_timeout;
        let at_start = shared.connections.load(Ordering::Relaxed);
        info!(
            connections = at_start,
            ?timeout,
            "drain: listeners closed, sending Go Away"
        );
        crate::telemetry::drain_started();
        // Leave the cluster first, so the nodes our clients move to may
        // take their streams over. (Not after an upgrade: the node goes on,
        // under the same id, in the new process.)
        if let (Some(c), false) = (&shared.cluster, upgraded) {
            c.withdraw().await;
        }
        shared.drain.set_phase(drain::Phase::Draining);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_log = tokio::time::Instant::now();
        while shared.connections.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if last_log.elapsed() >= std::time::Duration::from_secs(1) {
                last_log = tokio::time::Instant::now();
                info!(
                    signalled = shared.drain.signalled(),
                    remaining = shared.connections.load(Ordering::Relaxed),
                    "drain: waiting"
                );
            }
        }
        let forced = shared.connections.load(Ordering::Relaxed);
        if forced > 0 {
            shared.drain.set_phase(drain::Phase::Closing);
            let t = tokio::time::Instant::now();
            while shared.connections.load(Ordering::Relaxed) > 0
                && t.elapsed() < std::time::Duration::from_secs(5)
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        shared
            .modules
            .stop(&shared, std::time::Duration::from_secs(10))
            .await;
        shared.netcall.settle(drain::NOTIFY_GRACE).await;
        if let Some(c) = &shared.cluster {
            c.settle().await;
        }
        http.stop().await;
        info!(
            signalled = shared.drain.signalled(),
            left = at_start.saturating_sub(forced),
            forced,
            "drain complete"
        );
        Ok(())
    }
}
