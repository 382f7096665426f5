//! What `sluice bench` needs to match a received frame to its sending:
//! a per-stream table of recently published frames, and a latency
//! histogram. Both are fixed-size, so neither the publisher nor the players
//! allocate per frame.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Slots per track. Frames are found by timestamp (milliseconds) modulo
/// this, so a player more than ~8 s behind no longer matches.
const SLOTS: usize = 8192;

struct Slot {
    /// `timestamp << 32 | (sequence + 1)`; 0 when empty.
    key: AtomicU64,
    /// Microseconds since the bench epoch when the frame was written.
    sent: AtomicU64,
}

/// Frames a bench publisher sent on one stream, by track.
pub struct Timeline {
    epoch: Instant,
    tracks: [Box<[Slot]>; 2],
    /// Frames sent per track so far.
    sent: [AtomicU64; 2],
    /// Timestamp of the last frame sent, per track.
    last: [AtomicU64; 2],
}

/// Track index: 0 audio, 1 video.
pub fn track(type_id: u8) -> usize {
    usize::from(type_id == 9)
}

impl Timeline {
    pub fn new(epoch: Instant) -> Self {
        let slots = || {
            (0..SLOTS)
                .map(|_| Slot {
                    key: AtomicU64::new(0),
                    sent: AtomicU64::new(0),
                })
                .collect::<Box<[Slot]>>()
        };
        Timeline {
            epoch,
            tracks: [slots(), slots()],
            sent: [AtomicU64::new(0), AtomicU64::new(0)],
            last: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    pub fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// Records a coded frame as written now; returns its sequence number.
    pub fn record(&self, track: usize, timestamp: u32, now: Instant) -> u64 {
        let seq = self.sent[track].fetch_add(1, Ordering::Relaxed);
        let slot = &self.tracks[track][timestamp as usize % SLOTS];
        // Writers are one publisher per stream; readers re-check the key.
        slot.key.store(0, Ordering::Release);
        slot.sent.store(self.micros(now), Ordering::Release);
        let key = ((timestamp as u64) << 32) | ((seq + 1) & 0xFFFF_FFFF);
        slot.key.store(key, Ordering::Release);
        self.last[track].store(u64::from(timestamp), Ordering::Release);
        seq
    }

    /// The timestamp of the last frame sent on a track.
    pub fn last_timestamp(&self, track: usize) -> u32 {
        self.last[track].load(Ordering::Acquire) as u32
    }

    /// The sequence number and send time of the frame with `timestamp`.
    pub fn lookup(&self, track: usize, timestamp: u32) -> Option<(u64, u64)> {
        let slot = &self.tracks[track][timestamp as usize % SLOTS];
        let k1 = slot.key.load(Ordering::Acquire);
        if k1 == 0 || (k1 >> 32) as u32 != timestamp {
            return None;
        }
        let sent = slot.sent.load(Ordering::Acquire);
        (slot.key.load(Ordering::Acquire) == k1).then_some(((k1 & 0xFFFF_FFFF) - 1, sent))
    }

    /// Frames sent so far on a track.
    pub fn sent(&self, track: usize) -> u64 {
        self.sent[track].load(Ordering::Relaxed)
    }
}

/// Log-linear histogram of microsecond values: exact below 32, then 16
/// sub-buckets per power of two (about 6% resolution).
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u32]>,
    total: u64,
    max: u64,
}

const BUCKETS: usize = 32 + 59 * 16;

fn bucket(v: u64) -> usize {
    if v < 32 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as usize; // >= 5
    let m = ((v >> (e - 4)) & 15) as usize;
    32 + (e - 5) * 16 + m
}

fn bucket_low(i: usize) -> u64 {
    if i < 32 {
        return i as u64;
    }
    let e = (i - 32) / 16 + 5;
    let m = ((i - 32) % 16) as u64;
    (16 + m) << (e - 4)
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[bucket(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            *a += b;
        }
        self.total += o.total;
        self.max = self.max.max(o.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), as its bucket's lower bound.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += *c as u64;
            if seen >= rank {
                return Some(bucket_low(i).min(self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..100_000u64).chain([1 << 30, (1 << 40) + 12345, u64::MAX >> 4]) {
            let b = bucket(v);
            assert!(b >= last && b < BUCKETS, "{v}");
            assert!(bucket_low(b) <= v && v - bucket_low(b) <= v / 16, "{v}");
            last = b;
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v * 10);
        }
        let p50 = h.quantile(0.5).unwrap();
        assert!((4700..=5000).contains(&p50), "{p50}");
        assert!(h.quantile(0.99).unwrap() >= 9300);
        assert_eq!(h.quantile(1.0), Some(9728));
        assert_eq!(h.max(), 10_000);
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn timeline_matches_by_timestamp_until_overwritten() {
        let epoch = Instant::now();
        let t = Timeline::new(epoch);
        assert_eq!(t.record(1, 33, epoch), 0);
        assert_eq!(t.record(1, 66, epoch), 1);
        assert_eq!(t.lookup(1, 66), Some((1, 0)));
        assert_eq!(t.lookup(0, 66), None);
        t.record(1, 33 + SLOTS as u32, epoch);
        assert_eq!(t.lookup(1, 33), None);
        assert_eq!(t.sent(1), 3);
    }
}
