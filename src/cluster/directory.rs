//! The stream directory a cluster shares, as a small trait: Redis ships,
//! and another store with atomic compare-and-set, leases and change
//! notifications (etcd) could be added behind the same calls.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;

pub type Fut<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send + 'a>>;

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// We own the stream now (or still).
    Owned,
    /// Another node owns it, and it is not moving.
    Taken(String),
}

/// A change of a stream's owner: `owner` is the directory value
/// (`node|url`), or `None` when the stream was released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub stream: String,
    pub owner: Option<String>,
}

/// What a directory reports about one node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeRecord {
    pub id: String,
    pub url: String,
    pub draining: bool,
    /// The node keeps a liveness key: when that key is gone the node is
    /// dead (nodes of older versions keep none and are judged by leases).
    pub liveness: bool,
}

/// Every live node, and every owned stream with its owner value.
pub type Snapshot = (Vec<NodeRecord>, Vec<(String, String)>);

/// Every call is one atomic step in the store. `me` is this node's
/// directory value (`node|url`); ownership is compared on it.
pub trait Directory: Send + Sync {
    /// Takes `stream` if it is free, ours, or marked moving by its owner,
    /// for `lease`; announces a change of owner.
    fn claim<'a>(&'a self, stream: &'a str, me: &'a str, lease: Duration) -> Fut<'a, Claim>;
    /// Gives `stream` up if we own it; announces it.
    fn release<'a>(&'a self, stream: &'a str, me: &'a str) -> Fut<'a, ()>;
    /// Marks our `stream` as moving: the next claim elsewhere succeeds.
    fn mark_moving<'a>(&'a self, stream: &'a str, me: &'a str, lease: Duration) -> Fut<'a, ()>;
    /// The owner value of `stream`.
    fn owner<'a>(&'a self, stream: &'a str) -> Fut<'a, Option<String>>;
    /// Publishes this node's record for `lease`.
    fn heartbeat<'a>(&'a self, node: &'a NodeRecord, lease: Duration) -> Fut<'a, ()>;
    /// Says this node is alive for `ttl` (refreshed well within it).
    fn alive<'a>(&'a self, node: &'a str, ttl: Duration) -> Fut<'a, ()>;
    /// Every live node, and every owned stream with its owner value.
    fn snapshot(&self) -> Fut<'_, Snapshot>;
    /// Streams owner changes into `tx` until the subscription breaks.
    fn watch(&self, tx: mpsc::Sender<Change>) -> Fut<'_, ()>;
}
