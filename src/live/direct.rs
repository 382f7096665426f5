//! Writing from the publisher's side to players that are caught up.
//!
//! A player task woken by the ring for every frame costs a wake-up, a
//! poll of its whole connection and a `writev`, per frame and per player;
//! the wake-ups were most of what Sluice paid above nginx-rtmp, which
//! writes to each subscriber from the publisher's read handler. So a
//! player with nothing queued, on the shared chunk stream and whose
//! filter passes everything as it stands, registers a [`Sink`] with its
//! stream and goes to sleep. The publisher then sends each frame straight
//! to the socket (`send` with `MSG_DONTWAIT` semantics, on the player's
//! non-blocking descriptor) right after putting it in the ring, and no
//! player task runs.
//!
//! The publisher gives a player back to its task (*evicts* it) whenever it
//! cannot finish a frame alone: the socket is full (the rest of the frame
//! goes with it), or the frame would change the player's filter (a track
//! starting, a publish event). Each eviction hands over a ring receiver
//! positioned exactly after the last frame the publisher dealt with, so
//! nothing is lost or doubled: sends, evictions and a player leaving on its
//! own (to read a command, write a ping) all happen under one lock per
//! stream, which only the publisher takes per frame.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{broadcast, Notify};

use super::frame::FrameKind;
use super::player::PlayerFilter;
use super::stream::Delivery;

/// No `last_ts` yet.
const NO_TS: u64 = u64::MAX;

/// A player's side of direct writing: how it learns it was evicted, and
/// what the publisher did on its behalf.
pub struct Sink {
    notify: Notify,
    /// Bytes written by the publisher, not yet counted by the player.
    bytes: AtomicU64,
    /// Timestamp of the last audio or video frame written, or [`NO_TS`].
    last_ts: AtomicU64,
    handoff: Mutex<Option<Handoff>>,
}

/// What a player gets back when it leaves direct writing.
pub struct Handoff {
    /// Positioned right after the last frame written for the player.
    pub rx: broadcast::Receiver<Delivery>,
    /// The unwritten end of a frame the socket had no room for: it goes
    /// out before anything else.
    pub rest: Option<Bytes>,
}

impl Sink {
    pub fn new() -> Arc<Sink> {
        Arc::new(Sink {
            notify: Notify::new(),
            bytes: AtomicU64::new(0),
            last_ts: AtomicU64::new(NO_TS),
            handoff: Mutex::new(None),
        })
    }

    /// Resolves once the publisher has handed the player back.
    pub async fn evicted(&self) {
        self.notify.notified().await
    }

    /// Bytes written for the player since the last call.
    pub fn take_bytes(&self) -> u64 {
        self.bytes.swap(0, Ordering::Relaxed)
    }

    /// The timestamp of the last audio or video frame written for the
    /// player, if any was since the last call.
    pub fn take_last_ts(&self) -> Option<u32> {
        match self.last_ts.swap(NO_TS, Ordering::Relaxed) {
            NO_TS => None,
            t => Some(t as u32),
        }
    }

    fn take_handoff(&self) -> Option<Handoff> {
        self.handoff
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// A registered player, as the publisher sees it.
struct Entry {
    sink: Arc<Sink>,
    /// The player's socket (a second descriptor of it, non-blocking like
    /// the first). Its task keeps its own and writes nothing while here.
    out: Arc<File>,
    filter: PlayerFilter,
    chunk_size: usize,
}

/// How much of one core a stream's publisher may spend writing for its
/// players. Each second the publisher works out how many players fit in
/// it at the cost it measured; past that number new players stay with the
/// ring (whose tasks run on every core) and the excess goes back to it,
/// so that one big stream neither pins a core nor delays its own players
/// behind a long run of writes. On the 2-core bench (BENCHMARKS.md), 1000
/// players of a 4 Mbit/s stream all written by the publisher took more
/// than half a core and saw p99 latency of 24 to 300 ms from run to run,
/// against about 20 ms when the ring's tasks share them; 0.25 kept a
/// third of 500 players on the ring and cost 35 % more CPU than 0.5.
const BUSY_MAX: f64 = 0.5;
/// How often the share is measured.
const BUSY_WINDOW: Duration = Duration::from_secs(1);

/// The players of one stream written to by its publisher.
#[derive(Default)]
pub struct Direct {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
    /// Time spent writing since `since`.
    busy: Duration,
    since: Option<Instant>,
    /// How many players fit the budget, as last measured (`None`: not
    /// measured yet, no limit).
    limit: Option<usize>,
}

impl Inner {
    /// Adds one frame's writing time; once a window, works out how many
    /// players fit the budget. Returns how many are over it.
    fn account(&mut self, start: Instant, end: Instant) -> usize {
        self.busy += end - start;
        let since = *self.since.get_or_insert(start);
        let span = end - since;
        if span < BUSY_WINDOW {
            return 0;
        }
        let share = self.busy.as_secs_f64() / span.as_secs_f64();
        self.busy = Duration::ZERO;
        self.since = Some(end);
        let n = self.entries.len();
        if n == 0 || share <= 0.0 {
            return 0;
        }
        let fit = (n as f64 * BUSY_MAX / share) as usize;
        self.limit = Some(fit);
        n.saturating_sub(fit)
    }

    fn has_room(&self) -> bool {
        self.limit.is_none_or(|l| self.entries.len() < l)
    }
}

impl Direct {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `d` into the ring and, for a frame, writes it to every
    /// registered player that can take it as it is. Players that cannot
    /// are evicted first, so that the ring delivers it to them.
    pub fn deliver(&self, tx: &broadcast::Sender<Delivery>, d: Delivery) {
        let mut inner = self.lock();
        if inner.entries.is_empty() {
            let _ = tx.send(d);
            return;
        }
        let start = Instant::now();
        let entries = &mut inner.entries;
        let frame = match &d {
            Delivery::Frame(f) => Some(f.clone()),
            _ => None,
        };
        // Before the send: the receivers handed over get this delivery.
        let mut i = 0;
        while i < entries.len() {
            let e = &entries[i];
            let fits = frame
                .as_ref()
                .is_some_and(|f| f.chunk_size() == e.chunk_size && e.filter.passes_unchanged(f));
            if fits {
                i += 1;
            } else {
                evict(entries.swap_remove(i), tx.subscribe(), None);
            }
        }
        let _ = tx.send(d);
        let Some(f) = frame else { return };
        // After the send: a receiver handed over starts after this frame,
        // and the unwritten rest of it goes first.
        let mut i = 0;
        while i < entries.len() {
            let e = &entries[i];
            let wire = &f.chunked;
            let rest = match (&*e.out).write(wire) {
                Ok(n) if n == wire.len() => None,
                Ok(n) => Some(wire.slice(n..)),
                // Full, or failed: the player's task finds out which.
                Err(_) => Some(wire.clone()),
            };
            let written = wire.len() - rest.as_ref().map_or(0, Bytes::len);
            e.sink.bytes.fetch_add(written as u64, Ordering::Relaxed);
            if written > 0 && f.kind != FrameKind::Data {
                e.sink
                    .last_ts
                    .store(u64::from(f.timestamp), Ordering::Relaxed);
            }
            match rest {
                None => i += 1,
                Some(rest) => evict(entries.swap_remove(i), tx.subscribe(), Some(rest)),
            }
        }
        // Over budget: the most recently joined go back to the ring, after
        // this frame.
        for _ in 0..inner.account(start, Instant::now()) {
            match inner.entries.pop() {
                Some(e) => evict(e, tx.subscribe(), None),
                None => break,
            }
        }
    }

    /// Registers a player whose receiver `rx` has nothing unread: from now
    /// on the publisher writes for it, and `rx` can be dropped. Returns
    /// false (and registers nothing) when `rx` has unread deliveries or the
    /// publisher is busy: the player stays with the ring this time.
    pub fn enter(
        &self,
        rx: &broadcast::Receiver<Delivery>,
        sink: &Arc<Sink>,
        out: &Arc<File>,
        filter: &PlayerFilter,
        chunk_size: usize,
    ) -> bool {
        let Ok(mut inner) = self.inner.try_lock() else {
            return false;
        };
        // Sends happen under this lock: an empty receiver now means the
        // publisher's next frame is the first one it writes for us.
        if !rx.is_empty() || !inner.has_room() {
            return false;
        }
        inner.entries.push(Entry {
            sink: sink.clone(),
            out: out.clone(),
            filter: filter.clone(),
            chunk_size,
        });
        true
    }

    /// Takes a player back from the publisher: a receiver after the last
    /// frame written for it, and the rest of a frame it could not finish.
    pub fn leave(&self, tx: &broadcast::Sender<Delivery>, sink: &Arc<Sink>) -> Handoff {
        if let Some(h) = sink.take_handoff() {
            return h;
        }
        let mut inner = self.lock();
        if let Some(i) = inner
            .entries
            .iter()
            .position(|e| Arc::ptr_eq(&e.sink, sink))
        {
            inner.entries.swap_remove(i);
            return Handoff {
                rx: tx.subscribe(),
                rest: None,
            };
        }
        drop(inner);
        // Evicted between the first look and the lock: the handoff is set
        // under the lock, so it is there now.
        sink.take_handoff().unwrap_or_else(|| Handoff {
            rx: tx.subscribe(),
            rest: None,
        })
    }

    /// How many players the publisher writes for.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn evict(e: Entry, rx: broadcast::Receiver<Delivery>, rest: Option<Bytes>) {
    *e.sink.handoff.lock().unwrap_or_else(|p| p.into_inner()) = Some(Handoff { rx, rest });
    e.sink.notify.notify_one();
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;

    use super::*;
    use crate::live::stream::{PublisherId, Stream, Takeover};
    use crate::live::Frame;

    fn video(ts: u32, key: bool, len: usize, chunk: usize) -> Arc<Frame> {
        let mut p = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        p.extend((0..len).map(|i| (i as u32 ^ ts) as u8));
        let info = crate::flv::video_info(&p).unwrap();
        Arc::new(Frame::new(
            FrameKind::Video,
            ts,
            info,
            Bytes::from(p),
            chunk,
            false,
        ))
    }

    /// A published stream, a player that took its first keyframe through
    /// the ring, and that player's socket pair (server end non-blocking).
    fn setup() -> (
        Stream,
        broadcast::Receiver<Delivery>,
        PlayerFilter,
        Arc<File>,
        UnixStream,
    ) {
        let s = Stream::new("live", "x", 1024);
        let who = PublisherId {
            id: 1,
            addr: std::net::Ipv4Addr::LOCALHOST.into(),
            relay: false,
        };
        s.publish(who, Takeover::Off).unwrap();
        let (_, mut rx) = s.subscribe();
        let mut filter = PlayerFilter::new(true, false);
        s.push(1, video(0, true, 100, 4096), false, false);
        while let Ok(d) = rx.try_recv() {
            if let Delivery::Frame(f) = d {
                assert!(filter.admit(&f));
            }
        }
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (s, rx, filter, Arc::new(File::from(OwnedFd::from(a))), b)
    }

    fn read_all(b: &mut UnixStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match b.read(&mut buf) {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    }

    fn frames_of(rx: &mut broadcast::Receiver<Delivery>) -> Vec<Delivery> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    /// The socket fills: the publisher hands the player back with the rest
    /// of the frame it could not finish and a receiver after it. What the
    /// socket got, the rest and the ring together are every frame once.
    #[test]
    fn a_full_socket_hands_back_every_byte_once() {
        let (s, rx, filter, out, mut b) = setup();
        let sink = Sink::new();
        assert!(s.enter_direct(&rx, &sink, &out, &filter, 4096));
        drop(rx);
        let mut want = Vec::new();
        for i in 1..300u32 {
            let f = video(i * 33, i % 30 == 0, 10_000, 4096);
            want.extend_from_slice(&f.chunked);
            s.push(1, f, false, false);
        }
        assert_eq!(s.direct_players(), 0, "evicted when the socket filled");
        let h = s.leave_direct(&sink);
        let mut got = read_all(&mut b);
        assert_eq!(sink.take_bytes(), got.len() as u64);
        assert!(!got.is_empty() && got.len() < want.len());
        let rest = h.rest.expect("the frame cut short");
        got.extend_from_slice(&rest);
        let mut rx = h.rx;
        for d in frames_of(&mut rx) {
            let Delivery::Frame(f) = d else {
                panic!("only frames")
            };
            got.extend_from_slice(&f.chunked);
        }
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes differ");
    }

    /// Leaving on its own, the player gets a receiver after the last frame
    /// written; a frame the publisher cannot write as it is (another chunk
    /// size, a publish event) evicts the player before it is sent.
    #[test]
    fn leaving_and_unfit_deliveries_go_through_the_ring() {
        let (s, rx, filter, out, mut b) = setup();
        let sink = Sink::new();
        assert!(s.enter_direct(&rx, &sink, &out, &filter, 4096));
        drop(rx);
        let fs: Vec<_> = (1..4).map(|i| video(i * 33, false, 500, 4096)).collect();
        for f in &fs {
            s.push(1, f.clone(), false, false);
        }
        let want: Vec<u8> = fs.iter().flat_map(|f| f.chunked.to_vec()).collect();
        assert_eq!(read_all(&mut b), want);
        assert_eq!(sink.take_last_ts(), Some(99));
        let mut h = s.leave_direct(&sink);
        assert!(h.rest.is_none() && frames_of(&mut h.rx).is_empty());
        s.push(1, video(132, false, 10, 4096), false, false);
        assert_eq!(frames_of(&mut h.rx).len(), 1, "after the last written");

        // Another chunk size: evicted before the send, so the ring has it.
        assert!(s.enter_direct(&h.rx, &sink, &out, &filter, 4096));
        s.push(1, video(165, false, 10, 128), false, false);
        assert_eq!(s.direct_players(), 0);
        let mut h = s.leave_direct(&sink);
        assert_eq!(frames_of(&mut h.rx).len(), 1);
        assert!(read_all(&mut b).is_empty());

        // The publisher leaving: the player hears it from the ring.
        assert!(s.enter_direct(&h.rx, &sink, &out, &filter, 4096));
        s.unpublish(1);
        let mut h = s.leave_direct(&sink);
        assert!(matches!(
            frames_of(&mut h.rx).as_slice(),
            [Delivery::PublishStop]
        ));
        // A receiver with something unread does not register.
        s.publish(
            PublisherId {
                id: 2,
                addr: std::net::Ipv4Addr::LOCALHOST.into(),
                relay: false,
            },
            Takeover::Off,
        )
        .unwrap();
        assert!(!s.enter_direct(&h.rx, &sink, &out, &filter, 4096));
    }
}
