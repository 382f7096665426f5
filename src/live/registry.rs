//! The process-wide map from (server, application, stream name) to
//! [`Stream`]. Touched when streams start and end and when players join and
//! leave, never per frame.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::stream::{AlreadyPublishing, Delivery, PublisherId, Snapshot, Stream, Takeover};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// Index of the `server {}` block: applications of different server
    /// blocks are distinct, as in nginx-rtmp.
    pub server: usize,
    pub app: String,
    pub name: String,
}

#[derive(Default)]
pub struct Registry {
    streams: Mutex<HashMap<StreamKey, Arc<Stream>>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, Arc<Stream>>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &StreamKey) -> Option<Arc<Stream>> {
        self.map().get(key).cloned()
    }

    /// Makes `id` the publisher of `key`, creating the stream if needed.
    /// Done under the map lock so a concurrent [`Self::release`] cannot
    /// drop the stream between its lookup and its first user.
    pub fn publish(
        &self,
        key: &StreamKey,
        queue: usize,
        who: PublisherId,
        rule: Takeover,
    ) -> Result<(Arc<Stream>, Option<PublisherId>), AlreadyPublishing> {
        let mut m = self.map();
        let s = m
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Stream::new(&key.app, &key.name, queue)));
        let replaced = s.publish(who, rule)?;
        Ok((s.clone(), replaced))
    }

    /// Joins a player to `key` (creating an idle stream if needed), under
    /// the map lock for the same reason as [`Self::publish`].
    pub fn subscribe(
        &self,
        key: &StreamKey,
        queue: usize,
    ) -> (Arc<Stream>, Snapshot, broadcast::Receiver<Delivery>) {
        let mut m = self.map();
        let s = m
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Stream::new(&key.app, &key.name, queue)));
        let (snap, rx) = s.subscribe();
        (s.clone(), snap, rx)
    }

    /// The stream `key`, created if needed (a stream handed over from
    /// another process is rebuilt in it).
    pub fn get_or_create(&self, key: &StreamKey, queue: usize) -> Arc<Stream> {
        self.map()
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Stream::new(&key.app, &key.name, queue)))
            .clone()
    }

    /// Every stream, sorted by key (for `/stat`).
    pub fn streams(&self) -> Vec<(StreamKey, Arc<Stream>)> {
        let mut v: Vec<_> = self
            .map()
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        v.sort_by(|a, b| (a.0.server, &a.0.app, &a.0.name).cmp(&(b.0.server, &b.0.app, &b.0.name)));
        v
    }

    /// Drops the stream if nobody uses it any more.
    pub fn release(&self, key: &StreamKey) {
        let mut m = self.map();
        if m.get(key).is_some_and(|s| s.is_idle()) {
            m.remove(key);
        }
    }
}
