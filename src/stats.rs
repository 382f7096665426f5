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
    /// How the client can be moved: `goaway` (type 32), `reconnect`
    /// (Enhanced RTMP v2), or empty.
    pub moves: &'static str,
    /// A relay this server opened (a pull), not an accepted connection.
    pub relay: bool,
}

/// A connection's own counters, copied to its [`ConnStat`] once a second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Frames not delivered to this player (slow-player policy).
    pub dropped: u64,
    /// Audio and video payload bytes received (publishers).
    pub audio: u64,
    pub video: u64,
    /// Last media timestamp received or sent.
    pub timestamp: u32,
}

/// Bit rates (bits/s) over the last [`RATE_WINDOW`] samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    pub bw_in: u64,
    pub bw_out: u64,
    pub bw_audio: u64,
    pub bw_video: u64,
}

/// Samples kept per connection for rates: at one a second, a 5 s window
/// smooths keyframe bursts while still following a bitrate change quickly
/// (nginx-rtmp averages over 10 s).
const RATE_WINDOW: usize = 6;

#[derive(Debug, Default)]
struct Sampled {
    counters: Counters,
    rates: Rates,
    samples: std::collections::VecDeque<(Instant, Counters)>,
}

#[derive(Debug)]
pub struct ConnStat {
    pub id: u64,
    pub addr: SocketAddr,
    pub started: Instant,
    sampled: Mutex<Sampled>,
    info: Mutex<ConnInfo>,
}

impl ConnStat {
    pub fn info(&self) -> ConnInfo {
        self.info.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut ConnInfo)) {
        f(&mut self.info.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Copies the connection's counters (called once a second and at
    /// close) and updates its rates.
    pub fn set_counters(&self, c: Counters) {
        let now = Instant::now();
        let mut s = self.sampled.lock().unwrap_or_else(|p| p.into_inner());
        s.counters = c;
        s.samples.push_back((now, c));
        while s.samples.len() > RATE_WINDOW {
            s.samples.pop_front();
        }
        if let (Some(&(t0, a)), true) = (s.samples.front(), s.samples.len() > 1) {
            let secs = now.duration_since(t0).as_secs_f64().max(0.001);
            let rate = |new: u64, old: u64| (new.saturating_sub(old) as f64 * 8.0 / secs) as u64;
            s.rates = Rates {
                bw_in: rate(c.bytes_in, a.bytes_in),
                bw_out: rate(c.bytes_out, a.bytes_out),
                bw_audio: rate(c.audio, a.audio),
                bw_video: rate(c.video, a.video),
            };
        }
    }

    fn sampled(&self) -> (Counters, Rates) {
        let s = self.sampled.lock().unwrap_or_else(|p| p.into_inner());
        (s.counters, s.rates)
    }
}

/// One connection as a reader sees it.
#[derive(Debug, Clone)]
pub struct ConnView {
    pub id: u64,
    pub addr: SocketAddr,
    pub uptime_ms: u64,
    pub counters: Counters,
    pub rates: Rates,
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
        self.insert(id, addr)
    }

    /// A relay's row: shown with the connections, but not accepted by a
    /// listener, so not counted in `naccepted`.
    pub fn register_relay(&self, id: u64, addr: SocketAddr) -> Arc<ConnStat> {
        self.insert(id, addr)
    }

    fn insert(&self, id: u64, addr: SocketAddr) -> Arc<ConnStat> {
        let c = Arc::new(ConnStat {
            id,
            addr,
            started: Instant::now(),
            sampled: Mutex::new(Sampled::default()),
            info: Mutex::new(ConnInfo::default()),
        });
        self.map().insert(id, c.clone());
        c
    }

    /// Removes a closed connection, keeping its bytes in the totals.
    pub fn unregister(&self, id: u64) {
        if let Some(c) = self.map().remove(&id) {
            let (n, _) = c.sampled();
            self.closed_in.fetch_add(n.bytes_in, Ordering::Relaxed);
            self.closed_out.fetch_add(n.bytes_out, Ordering::Relaxed);
        }
    }

    /// Every open connection, in id order.
    pub fn connections(&self) -> Vec<ConnView> {
        let now = Instant::now();
        let mut v: Vec<ConnView> = self
            .map()
            .values()
            .map(|c| {
                let (counters, rates) = c.sampled();
                ConnView {
                    id: c.id,
                    addr: c.addr,
                    uptime_ms: now.duration_since(c.started).as_millis() as u64,
                    counters,
                    rates,
                    info: c.info(),
                }
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
            let (n, _) = c.sampled();
            i += n.bytes_in;
            o += n.bytes_out;
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
        let n = |bytes_in, bytes_out, dropped| Counters {
            bytes_in,
            bytes_out,
            dropped,
            ..Default::default()
        };
        c1.set_counters(n(1000, 10, 0));
        c2.set_counters(n(5, 2000, 3));
        let v = s.connections();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].info.role, Role::Publisher);
        assert_eq!((v[1].counters.bytes_out, v[1].counters.dropped), (2000, 3));
        assert_eq!(s.totals(), (1005, 2010));
        s.unregister(1);
        assert_eq!(s.connections().len(), 1);
        assert_eq!(s.totals(), (1005, 2010), "closed bytes still counted");
        assert_eq!(s.accepted.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_relay_row_is_listed_but_not_accepted() {
        let s = Stats::default();
        let r = s.register_relay(9, "127.0.0.1:1935".parse().unwrap());
        r.update(|i| i.relay = true);
        assert_eq!(s.accepted.load(Ordering::Relaxed), 0);
        assert!(s.connections()[0].info.relay);
        s.unregister(9);
        assert!(s.connections().is_empty());
    }

    #[test]
    fn rates_over_the_window() {
        let s = Stats::default();
        let c = s.register(1, "127.0.0.1:1".parse().unwrap());
        c.set_counters(Counters::default());
        std::thread::sleep(std::time::Duration::from_millis(100));
        c.set_counters(Counters {
            bytes_in: 125_000,
            video: 100_000,
            ..Default::default()
        });
        let r = s.connections()[0].rates;
        // 1 Mbit in at most 0.1 s (plus scheduling): 1..10 Mbit/s.
        assert!(r.bw_in > 1_000_000 && r.bw_in <= 10_000_000, "{r:?}");
        assert!(r.bw_video < r.bw_in && r.bw_audio == 0 && r.bw_out == 0);
    }
}
