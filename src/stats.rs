//! Live per-connection facts for `/stat`, metrics and the dashboard.
//!
//! Each connection owns an `Arc<ConnStat>` registered here for its
//! lifetime. Its byte counters are copied from the connection's own plain
//! counters once a second (and at close), not on every read or write, so
//! the hot path pays nothing for being observable; readers see values at
//! most a second old. Descriptive fields change rarely (connect, publish,
//! play) and sit behind a small per-connection mutex.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    #[default]
    None,
    Publisher,
    Player,
}

/// What a connection is doing, as `/stat` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    /// Index of the RTMP `server {}` block.
    pub server: usize,
    pub app: String,
    pub name: String,
    pub role: Role,
    pub flashver: String,
    pub swfurl: String,
    pub pageurl: String,
    pub tcurl: String,
}

#[derive(Debug)]
pub struct ConnStat {
    pub id: u64,
    pub addr: SocketAddr,
    pub started: Instant,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Frames not delivered to this player (slow-player policy).
    pub dropped: AtomicU64,
    info: Mutex<ConnInfo>,
}

impl ConnStat {
    pub fn info(&self) -> ConnInfo {
        self.info.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut ConnInfo)) {
        f(&mut self.info.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Copies the connection's counters (called once a second and at close).
    pub fn set_counters(&self, bytes_in: u64, bytes_out: u64, dropped: u64) {
        self.bytes_in.store(bytes_in, Ordering::Relaxed);
        self.bytes_out.store(bytes_out, Ordering::Relaxed);
        self.dropped.store(dropped, Ordering::Relaxed);
    }
}

/// One connection as a reader sees it.
#[derive(Debug, Clone)]
pub struct ConnView {
    pub id: u64,
    pub addr: SocketAddr,
    pub uptime_ms: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub dropped: u64,
    pub info: ConnInfo,
}

#[derive(Debug)]
pub struct Stats {
    conns: Mutex<HashMap<u64, Arc<ConnStat>>>,
    pub started: Instant,
    /// Connections accepted since start (nginx-rtmp's `naccepted`).
    pub accepted: AtomicU64,
    /// Bytes of connections that have closed, so totals survive them.
    closed_in: AtomicU64,
    closed_out: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            conns: Mutex::new(HashMap::new()),
            started: Instant::now(),
            accepted: AtomicU64::new(0),
            closed_in: AtomicU64::new(0),
            closed_out: AtomicU64::new(0),
        }
    }
}

impl Stats {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnStat>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, id: u64, addr: SocketAddr) -> Arc<ConnStat> {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        let c = Arc::new(ConnStat {
            id,
            addr,
            started: Instant::now(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            info: Mutex::new(ConnInfo::default()),
        });
        self.map().insert(id, c.clone());
        c
    }

    /// Removes a closed connection, keeping its bytes in the totals.
    pub fn unregister(&self, id: u64) {
        if let Some(c) = self.map().remove(&id) {
            self.closed_in
                .fetch_add(c.bytes_in.load(Ordering::Relaxed), Ordering::Relaxed);
            self.closed_out
                .fetch_add(c.bytes_out.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Every open connection, in id order.
    pub fn connections(&self) -> Vec<ConnView> {
        let now = Instant::now();
        let mut v: Vec<ConnView> = self
            .map()
            .values()
            .map(|c| ConnView {
                id: c.id,
                addr: c.addr,
                uptime_ms: now.duration_since(c.started).as_millis() as u64,
                bytes_in: c.bytes_in.load(Ordering::Relaxed),
                bytes_out: c.bytes_out.load(Ordering::Relaxed),
                dropped: c.dropped.load(Ordering::Relaxed),
                info: c.info(),
            })
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// (bytes in, bytes out) of every connection since start.
    pub fn totals(&self) -> (u64, u64) {
        let (mut i, mut o) = (
            self.closed_in.load(Ordering::Relaxed),
            self.closed_out.load(Ordering::Relaxed),
        );
        for c in self.map().values() {
            i += c.bytes_in.load(Ordering::Relaxed);
            o += c.bytes_out.load(Ordering::Relaxed);
        }
        (i, o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_update_and_totals_survive_close() {
        let s = Stats::default();
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let c1 = s.register(1, a);
        let c2 = s.register(2, a);
        c1.update(|i| {
            i.app = "live".into();
            i.name = "cam".into();
            i.role = Role::Publisher;
        });
        c1.set_counters(1000, 10, 0);
        c2.set_counters(5, 2000, 3);
        let v = s.connections();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].info.role, Role::Publisher);
        assert_eq!((v[1].bytes_out, v[1].dropped), (2000, 3));
        assert_eq!(s.totals(), (1005, 2010));
        s.unregister(1);
        assert_eq!(s.connections().len(), 1);
        assert_eq!(s.totals(), (1005, 2010), "closed bytes still counted");
        assert_eq!(s.accepted.load(Ordering::Relaxed), 2);
    }
}
