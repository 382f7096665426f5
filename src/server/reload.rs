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

/// The RTMP accept loops, by listening endpoint.
#[derive(Default)]
pub struct Accepting {
    loops: HashMap<Endpoint, JoinHandle<()>>,
}

impl Accepting {
    pub fn add(&mut self, l: Listener, shared: &Arc<Shared>) {
        let at = l.at.clone();
        let task = tokio::spawn(listen::accept_loop(l, shared.clone()));
        if let Some(old) = self.loops.insert(at, task) {
            old.abort();
        }
    }

    /// Closes every listener.
    pub async fn close(&mut self) {
        for (_, t) in self.loops.drain() {
            t.abort();
            let _ = t.await;
        }
    }
}

/// Puts `new` in force, or logs why not and keeps the old one.
pub async fn apply(
    new: Config,
    shared: &Arc<Shared>,
    rtmp: &mut Accepting,
    http: &mut tokio::task::JoinSet<()>,
) {
    let old = shared.config();
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
        http.abort_all();
        while http.join_next().await.is_some() {}
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
        if let Some(t) = rtmp.loops.remove(at) {
            t.abort();
        }
        info!(listen = %at, "reload: listener closed");
    }
    for h in new_http {
        http.spawn(h.serve(shared.clone()));
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
