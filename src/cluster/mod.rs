//! Cluster mode: streams reachable from any node, through a shared stream
//! directory (Redis).
//!
//! * A node that gets a publisher claims the stream in the directory under
//!   a lease, and refreshes it; one publisher per name cluster-wide, the
//!   directory deciding between two claims.
//! * A node that gets a player for a stream it does not have pulls it from
//!   the owner once (an edge, see [`crate::relay::pull`]) and serves every
//!   local player from that pull.
//! * Owner changes are pushed to every node (pub/sub), and edges switch to
//!   the new owner at once, without dropping their players.
//! * A publisher sent Go Away is marked moving, so the node it moves to may
//!   claim the stream; a draining node marks all of its streams so, and its
//!   record draining, before it sends any Go Away.
//! * Without the directory a node keeps serving its own streams and logs
//!   the degradation; when the directory returns, claims are renewed, and
//!   a node that finds its stream owned elsewhere drops its publisher.

pub mod directory;
pub mod redis;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::cluster::ClusterConf;
use crate::live::StreamKey;
use crate::rtmp::RtmpUrl;
use directory::{Claim, Directory, NodeRecord};

/// How long a node's liveness key lives: refreshed every third of it, so a
/// node is known dead about this long after it stops.
pub const LIVENESS: Duration = Duration::from_millis(1500);

/// A stream's owner as the directory has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub node: String,
    /// `rtmp://host:port` the node advertises.
    pub url: String,
}

impl Owner {
    fn parse(v: &str) -> Option<Owner> {
        let (node, url) = v.split_once('|')?;
        Some(Owner {
            node: node.to_owned(),
            url: url.to_owned(),
        })
    }
}

/// A stream this node owns (or serves while the directory is away).
struct Owned {
    publisher: u64,
    /// Its publisher was sent Go Away: losing the claim is expected.
    moving: bool,
}

/// What `/stat` and the dashboard show, refreshed with the lease.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct View {
    pub node_id: String,
    pub healthy: bool,
    pub nodes: Vec<NodeRecord>,
    /// (stream, owning node).
    pub streams: Vec<(String, String)>,
}

pub struct Cluster {
    pub conf: ClusterConf,
    dir: Arc<dyn Directory>,
    /// This node's directory value, `node|url`.
    me: String,
    owned: Mutex<HashMap<String, Owned>>,
    watches: Mutex<HashMap<String, watch::Sender<Option<Owner>>>>,
    draining: AtomicBool,
    healthy: AtomicBool,
    inflight: AtomicUsize,
    /// Bumped by every change from the feed: a lookup that started before
    /// a change must not overwrite it with what it read.
    feed_gen: std::sync::atomic::AtomicU64,
    view: Mutex<View>,
}

/// The directory's name for a stream.
pub fn stream_id(key: &StreamKey) -> String {
    format!("{}/{}", key.app, key.name)
}

impl Cluster {
    pub async fn new(conf: ClusterConf) -> anyhow::Result<Arc<Cluster>> {
        let dir = Arc::new(redis::RedisDirectory::open(&conf.registry).await?);
        let me = format!("{}|{}", conf.node_id, conf.advertise);
        Ok(Arc::new(Cluster {
            dir,
            me,
            owned: Mutex::default(),
            watches: Mutex::default(),
            draining: AtomicBool::new(false),
            healthy: AtomicBool::new(true),
            inflight: AtomicUsize::new(0),
            feed_gen: std::sync::atomic::AtomicU64::new(0),
            view: Mutex::new(View {
                node_id: conf.node_id.clone(),
                ..View::default()
            }),
            conf,
        }))
    }

    fn owned(&self) -> std::sync::MutexGuard<'_, HashMap<String, Owned>> {
        self.owned.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn watches(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<Option<Owner>>>> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn node_id(&self) -> &str {
        &self.conf.node_id
    }

    /// Another node that is not draining, for a ReconnectRequest's tcUrl.
    pub fn suggest(&self) -> Option<String> {
        let v = self.view.lock().unwrap_or_else(|p| p.into_inner());
        v.nodes
            .iter()
            .find(|n| n.id != self.conf.node_id && !n.draining)
            .map(|n| n.url.clone())
    }

    pub fn view(&self) -> View {
        let mut v = self.view.lock().unwrap_or_else(|p| p.into_inner()).clone();
        v.healthy = self.healthy.load(Ordering::Relaxed);
        v
    }

    fn degraded(&self, what: &str, e: &anyhow::Error) {
        if self.healthy.swap(false, Ordering::Relaxed) {
            warn!("cluster: registry unreachable ({what}: {e:#}); serving local streams only");
        }
    }

    fn recovered(&self) {
        if !self.healthy.swap(true, Ordering::Relaxed) {
            info!("cluster: registry reachable again");
        }
    }

    /// Claims `key` for `publisher`. `Err(owner node)` when another node
    /// owns it; `Ok` when we do, or when the directory cannot be reached
    /// (the claim is then renewed when it returns).
    pub async fn claim(&self, key: &StreamKey, publisher: u64) -> Result<(), String> {
        let sid = stream_id(key);
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            self.dir.claim(&sid, &self.me, self.conf.lease),
        )
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")));
        match r {
            Ok(Claim::Taken(v)) => {
                return Err(Owner::parse(&v).map_or(v, |o| o.node));
            }
            Ok(Claim::Owned) => self.recovered(),
            Err(e) => self.degraded("claim", &e),
        }
        // A local publisher already holding the stream keeps it until the
        // new one is actually in place (see `note_publisher`).
        self.owned().entry(sid).or_insert(Owned {
            publisher,
            moving: false,
        });
        Ok(())
    }

    /// `publisher` now publishes `key` here (after a takeover, too).
    pub fn note_publisher(&self, key: &StreamKey, publisher: u64) {
        let sid = stream_id(key);
        let mut o = self.owned();
        let e = o.entry(sid).or_insert(Owned {
            publisher,
            moving: false,
        });
        e.publisher = publisher;
        e.moving = false;
    }

    /// Runs a directory call in the background, counted for [`Self::settle`].
    fn spawn_op<F>(self: &Arc<Self>, what: &'static str, f: F)
    where
        F: FnOnce(Arc<Cluster>) -> directory::Fut<'static, ()> + Send + 'static,
    {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        let me = self.clone();
        tokio::spawn(async move {
            let r = tokio::time::timeout(Duration::from_secs(2), f(me.clone())).await;
            match r {
                Ok(Ok(())) => me.recovered(),
                Ok(Err(e)) => me.degraded(what, &e),
                Err(_) => me.degraded(what, &anyhow::anyhow!("timed out")),
            }
            me.inflight.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// The publisher `publisher` of `key` stopped.
    pub fn release(self: &Arc<Self>, key: &StreamKey, publisher: u64) {
        let sid = stream_id(key);
        {
            let mut o = self.owned();
            if o.get(&sid).is_none_or(|e| e.publisher != publisher) {
                return;
            }
            o.remove(&sid);
        }
        self.spawn_op("release", move |c| {
            Box::pin(async move { c.dir.release(&sid, &c.me).await })
        });
    }

    /// `key`'s publisher was sent Go Away: let another node claim it.
    pub fn moving(self: &Arc<Self>, key: &StreamKey) {
        let sid = stream_id(key);
        match self.owned().get_mut(&sid) {
            Some(e) => e.moving = true,
            None => return,
        }
        self.spawn_op("moving", move |c| {
            Box::pin(async move { c.dir.mark_moving(&sid, &c.me, c.conf.lease).await })
        });
    }

    /// Drain, first step: the node record says draining, and every stream
    /// here may be claimed elsewhere. Awaited before any Go Away is sent.
    pub async fn withdraw(self: &Arc<Self>) {
        self.draining.store(true, Ordering::Relaxed);
        let sids: Vec<String> = {
            let mut o = self.owned();
            o.values_mut().for_each(|e| e.moving = true);
            o.keys().cloned().collect()
        };
        let work = async {
            self.dir.heartbeat(&self.record(), self.conf.lease).await?;
            for sid in &sids {
                self.dir.mark_moving(sid, &self.me, self.conf.lease).await?;
            }
            anyhow::Ok(())
        };
        match tokio::time::timeout(Duration::from_secs(3), work).await {
            Ok(Ok(())) => info!(streams = sids.len(), "cluster: withdrawn from the registry"),
            Ok(Err(e)) => self.degraded("withdraw", &e),
            Err(_) => self.degraded("withdraw", &anyhow::anyhow!("timed out")),
        }
    }

    /// Waits (bounded) for background directory calls, before exit.
    pub async fn settle(&self) {
        let t = tokio::time::Instant::now();
        while self.inflight.load(Ordering::Relaxed) > 0 && t.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn record(&self) -> NodeRecord {
        NodeRecord {
            id: self.conf.node_id.clone(),
            url: self.conf.advertise.clone(),
            draining: self.draining.load(Ordering::Relaxed),
            liveness: true,
        }
    }

    /// A watch on `key`'s owner for an edge.
    pub fn watch(self: &Arc<Self>, key: &StreamKey) -> OwnerWatch {
        let sid = stream_id(key);
        let rx = self
            .watches()
            .entry(sid.clone())
            .or_insert_with(|| watch::channel(None).0)
            .subscribe();
        OwnerWatch {
            cluster: self.clone(),
            sid,
            key: key.clone(),
            rx,
        }
    }

    fn set_owner(&self, sid: &str, owner: Option<Owner>) {
        let mut w = self.watches();
        if let Some(tx) = w.get(sid) {
            if tx.receiver_count() == 0 {
                w.remove(sid);
            } else {
                tx.send_if_modified(|cur| {
                    let changed = *cur != owner;
                    *cur = owner;
                    changed
                });
            }
        }
    }

    /// Starts the background work: lease renewal and the change feed.
    /// `drop_publisher` closes a local publisher that lost its stream.
    pub fn start(self: &Arc<Self>, drop_publisher: Arc<dyn Fn(u64) + Send + Sync>) {
        let me = self.clone();
        tokio::spawn(async move { me.renew_loop(drop_publisher).await });
        let me = self.clone();
        tokio::spawn(async move { me.watch_loop().await });
        let me = self.clone();
        tokio::spawn(async move { me.alive_loop().await });
    }

    /// Keeps this node's liveness key: a short heartbeat apart from the
    /// stream leases, so that a node that dies is known dead in about
    /// [`LIVENESS`] and its streams can be claimed at once. It stops when
    /// the node drains (its streams are marked moving then anyway).
    async fn alive_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(LIVENESS / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let r =
                tokio::time::timeout(LIVENESS / 3, self.dir.alive(&self.conf.node_id, LIVENESS))
                    .await;
            if let Ok(Err(e)) = r {
                tracing::debug!("cluster: liveness: {e:#}");
            }
        }
    }

    async fn renew_loop(self: Arc<Self>, drop_publisher: Arc<dyn Fn(u64) + Send + Sync>) {
        let mut tick = tokio::time::interval(self.conf.lease / 3);
        loop {
            tick.tick().await;
            // Watches of edges that ended.
            self.watches().retain(|_, tx| tx.receiver_count() > 0);
            if let Err(e) = self.renew(&drop_publisher).await {
                self.degraded("renew", &e);
                continue;
            }
            self.recovered();
            if let Ok(Ok((nodes, streams))) =
                tokio::time::timeout(Duration::from_secs(2), self.dir.snapshot()).await
            {
                let mut v = self.view.lock().unwrap_or_else(|p| p.into_inner());
                v.nodes = nodes;
                v.streams = streams
                    .into_iter()
                    .map(|(s, o)| (s, Owner::parse(&o).map_or(o, |o| o.node)))
                    .collect();
            }
        }
    }

    /// Renews the node record and every claim. A claim lost to another
    /// node while the directory was away drops the local publisher: the
    /// directory's first claim wins, so there is one publisher per name.
    async fn renew(&self, drop_publisher: &Arc<dyn Fn(u64) + Send + Sync>) -> anyhow::Result<()> {
        let work = async {
            self.dir.heartbeat(&self.record(), self.conf.lease).await?;
            let entries: Vec<(String, u64, bool)> = self
                .owned()
                .iter()
                .map(|(s, e)| (s.clone(), e.publisher, e.moving))
                .collect();
            for (sid, publisher, moving) in entries {
                if moving {
                    self.dir
                        .mark_moving(&sid, &self.me, self.conf.lease)
                        .await?;
                    continue;
                }
                if let Claim::Taken(v) = self.dir.claim(&sid, &self.me, self.conf.lease).await? {
                    let still = self
                        .owned()
                        .get(&sid)
                        .is_some_and(|e| e.publisher == publisher && !e.moving);
                    if still {
                        let node = Owner::parse(&v).map_or(v, |o| o.node);
                        warn!(
                            stream = sid,
                            owner = node,
                            "cluster: stream owned by another node; dropping the local publisher"
                        );
                        self.owned().remove(&sid);
                        drop_publisher(publisher);
                    }
                }
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(Duration::from_secs(5), work)
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")))
    }

    async fn watch_loop(self: Arc<Self>) {
        loop {
            let (tx, mut rx) = mpsc::channel(256);
            let dir = self.dir.clone();
            let feed = tokio::spawn(async move { dir.watch(tx).await });
            // Changes missed while unsubscribed: read the watched owners.
            self.refresh_watched().await;
            while let Some(c) = rx.recv().await {
                self.feed_gen.fetch_add(1, Ordering::AcqRel);
                self.set_owner(&c.stream, c.owner.as_deref().and_then(Owner::parse));
            }
            match feed.await {
                Ok(Err(e)) => self.degraded("subscribe", &e),
                _ => self.degraded("subscribe", &anyhow::anyhow!("subscription ended")),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn refresh_watched(&self) {
        let sids: Vec<String> = self.watches().keys().cloned().collect();
        for sid in sids {
            self.lookup(&sid).await;
        }
    }

    /// Reads `sid`'s owner from the directory into its watch, unless the
    /// feed reported a change while the read was under way (the feed's
    /// news is newer than what the read saw).
    async fn lookup(&self, sid: &str) {
        let gen = self.feed_gen.load(Ordering::Acquire);
        if let Ok(Ok(v)) = tokio::time::timeout(Duration::from_secs(2), self.dir.owner(sid)).await {
            if self.feed_gen.load(Ordering::Acquire) == gen {
                self.set_owner(sid, v.as_deref().and_then(Owner::parse));
            }
        }
    }
}

/// An edge's view of one stream's owner.
pub struct OwnerWatch {
    cluster: Arc<Cluster>,
    sid: String,
    key: StreamKey,
    rx: watch::Receiver<Option<Owner>>,
}

impl OwnerWatch {
    pub fn current(&self) -> Option<Owner> {
        self.rx.borrow().clone()
    }

    /// Where to pull from: the owner's URL, unless the owner is this node
    /// (then the stream is local) or there is none.
    pub fn url(&self) -> Option<RtmpUrl> {
        let o = self.current()?;
        if o.node == self.cluster.conf.node_id {
            return None;
        }
        let u = RtmpUrl::parse(&o.url).ok()?;
        Some(RtmpUrl {
            app: self.key.app.clone(),
            stream: self.key.name.clone(),
            ..u
        })
    }

    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Reads the owner from the directory now.
    pub async fn refresh(&mut self) {
        self.cluster.lookup(&self.sid).await;
        self.rx.borrow_and_update();
    }
}
