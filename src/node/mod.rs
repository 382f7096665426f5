//! What every part of a running node shares: the configuration, the stream
//! registry, the connection table, the drain, the cluster directory and the
//! chain of feature modules.
//!
//! This layer sits between the services below it (`live`, `netcall`,
//! `stats`, `cluster`) and everything that acts on a running server: the
//! connection code in `server`, the HTTP side, and the feature modules
//! (record, hls, relay, exec, ...). Those import `node`; `node` imports
//! none of them, which is what keeps the import graph free of cycles. A
//! feature's own state lives in its module, reached through [`Chain::get`].

pub mod chain;
pub mod drain;
pub mod handover;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

pub use chain::{Chain, Module};

use crate::config::Config;
use crate::live::Registry;

/// State shared by all connections.
pub struct Shared {
    /// The configuration in force: replaced whole by a reload (SIGHUP).
    /// A connection keeps the one it was accepted under, and takes the
    /// current one again at each publish or play.
    config: arc_swap::ArcSwap<Config>,
    pub registry: Registry,
    /// The HTTP client of notifications (checked calls and `*_done`).
    pub netcall: crate::netcall::Notifier,
    /// Process start, the zero of `epoch` in on_connect.
    pub started: std::time::Instant,
    next_id: AtomicU64,
    pub connections: AtomicUsize,
    pub drain: drain::Drain,
    /// Per-connection facts for /stat and metrics.
    pub stats: crate::stats::Stats,
    /// `cluster {}`: the shared stream directory.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The feature modules, called on publish, play, close and disconnect.
    pub modules: Chain,
}

impl Shared {
    pub fn new(
        config: Config,
        cluster: Option<Arc<crate::cluster::Cluster>>,
        modules: Chain,
    ) -> Shared {
        Shared {
            config: arc_swap::ArcSwap::from_pointee(config),
            registry: Registry::new(),
            netcall: crate::netcall::Notifier::new(),
            started: std::time::Instant::now(),
            next_id: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            drain: drain::Drain::default(),
            stats: crate::stats::Stats::default(),
            cluster,
            modules,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Puts `config` in force (a reload).
    pub fn set_config(&self, config: Arc<Config>) {
        self.config.store(config);
    }

    /// Ids up to `last` are taken (by the process before this one, in an
    /// upgrade): new ones start above.
    pub fn skip_ids(&self, last: u64) {
        self.next_id.fetch_max(last, Ordering::Relaxed);
    }

    /// A new id for a connection or an in-process session (a pull).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}
