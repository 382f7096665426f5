//! Writing from the publisher's side to players that are caught up.
//!
//! A player task woken by the ring for every frame costs a wake-up, a
//! poll of its whole connection and a `writev`, per frame and per player;
//! the wake-ups were most of what Sluice paid above nginx-rtmp, which
//! writes to each subscriber from the publisher's read handler. So a
//! player with nothing queued, on the shared chunk stream and whose
//! filter passes everything as it stands, registers a [`Sink`] with its
//! stream and goes to sleep. The publisher then sends the frames straight
//! to the socket (`writev` on the player's non-blocking descriptor) right
//! after putting them in the ring, and no player task runs.
//!
//! Frames go out in *batches*, one `writev` per player per batch:
//! - while the publisher works through what one read brought (several
//!   messages, often), it holds the batch and lets it go at the end
//!   ([`Direct::hold`], [`Direct::release`]): no latency is added, and on
//!   many small streams a read carries 1.4 messages on average;
//! - under an `out_merge` window, a batch is kept until the next frame
//!   would come after the window's end (a running average of the gaps
//!   says when), or, if the publisher goes quiet, until a stream task
//!   wakes at the window's end ([`Direct::flush_overdue`]).
//!
//! The publisher gives a player back to its task (*evicts* it) whenever it
//! cannot finish a batch alone: the socket is full (the rest of the batch
//! goes with it), or a frame would change the player's filter (a track
//! starting, a publish event). Each eviction hands over a ring receiver
//! positioned exactly after the last frame put in the ring, with the
//! frames of the batch not yet written: nothing is lost or doubled. Sends,
//! evictions and a player leaving on its own (to read a command, write a
//! ping) all happen under one lock per stream, which only the publisher
//! takes per frame.

use std::io::IoSlice;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{broadcast, Notify};

use super::frame::{Frame, FrameKind};
use super::player::PlayerFilter;
use super::stream::Delivery;

/// A second descriptor of a player's socket, as the publisher writes it.
/// A socket rather than a `File`: `send`/`sendmsg` go straight to the
/// protocol, where `write`/`writev` first pass the VFS layer (file
/// position lock, fsnotify hooks), about 4 % of a small-stream load's CPU.
pub type Out = socket2::Socket;

/// `send` flags: a player gone away is an error to read, not a signal.
const SEND_FLAGS: i32 = libc::MSG_NOSIGNAL;

/// No `last_ts` yet.
const NO_TS: u64 = u64::MAX;
/// The most frames a batch holds: past it the batch goes out at once,
/// whatever the window (a `writev` takes at most 1024 slices).
const MAX_PENDING: usize = 512;

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
    /// Positioned right after the last frame put in the ring.
    pub rx: broadcast::Receiver<Delivery>,
    /// What the publisher had not written yet, in order (the unwritten
    /// end of a frame the socket had no room for, then the rest of the
    /// batch): it goes out before anything from `rx`.
    pub rest: Vec<Bytes>,
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
    out: Arc<Out>,
    filter: PlayerFilter,
    chunk_size: usize,
    /// The first frame of the pending batch this player has not had: one
    /// that joined mid-batch read the earlier ones from the ring.
    from: usize,
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
    /// Wakes the stream's flusher task when a windowed batch starts.
    started: Arc<Notify>,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
    /// Frames already in the ring and not yet written to the entries.
    pending: Vec<Arc<Frame>>,
    /// The publisher is working through one read: the batch waits for
    /// [`Direct::release`].
    held: bool,
    /// The entries' `out_merge` window (all share one; zero: none).
    window: Duration,
    /// When the batch's first frame came.
    batch_start: Option<Instant>,
    /// Running average of the gap between frames, and the last frame's
    /// arrival: a windowed batch goes out when the next frame would come
    /// too late to join it.
    gap: Duration,
    last_frame: Option<Instant>,
    /// A flusher task was asked for (once per stream).
    flusher: bool,
    /// Time spent writing since `since`.
    busy: Duration,
    since: Option<Instant>,
    /// How many players fit the budget, as last measured (`None`: not
    /// measured yet, no limit).
    limit: Option<usize>,
}

/// What [`Direct::enter`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Entered {
    /// The player stays with the ring this time.
    No,
    Yes,
    /// Registered, and the stream needs a task that lets windowed batches
    /// go when the publisher is quiet ([`Direct::flush_overdue`]).
    YesStartFlusher,
}

impl Inner {
    /// Adds one batch's writing time; once a window, works out how many
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

    /// Whether the pending batch should go out now.
    fn due(&self, now: Instant) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        if self.pending.len() >= MAX_PENDING {
            return true;
        }
        if self.held {
            return false;
        }
        match self.batch_start {
            Some(t) if !self.window.is_zero() => now + self.gap >= t + self.window,
            _ => true,
        }
    }

    /// Takes entry `i` out, with what of the batch it has not had.
    fn remove(&mut self, i: usize) -> (Entry, Vec<Bytes>) {
        let e = self.entries.swap_remove(i);
        let rest = unwritten(&self.pending, e.from, 0);
        if self.entries.is_empty() {
            self.clear();
        }
        (e, rest)
    }

    fn clear(&mut self) {
        self.pending.clear();
        self.batch_start = None;
    }

    /// Writes the pending batch to every entry, in one `writev` each;
    /// an entry whose socket takes only part of it is evicted with the
    /// rest. `start` is the caller's clock reading, for the budget.
    fn flush(&mut self, tx: &broadcast::Sender<Delivery>, start: Instant) {
        let pending = std::mem::take(&mut self.pending);
        // One frame (the usual batch without a window) needs no slice list.
        let slices: Vec<IoSlice<'_>> = if pending.len() > 1 {
            pending.iter().map(|f| IoSlice::new(&f.chunked)).collect()
        } else {
            Vec::new()
        };
        let mut i = 0;
        while i < self.entries.len() {
            let e = &mut self.entries[i];
            let from = e.from.min(pending.len());
            e.from = 0;
            let want = &pending[from..];
            let total: usize = want.iter().map(|f| f.chunked.len()).sum();
            let n = match want {
                [] => Ok(0),
                [one] => e.out.send_with_flags(&one.chunked, SEND_FLAGS),
                _ => e.out.send_vectored_with_flags(&slices[from..], SEND_FLAGS),
            }
            // Full, or failed: the player's task finds out which.
            .unwrap_or(0);
            if n > 0 {
                e.sink.bytes.fetch_add(n as u64, Ordering::Relaxed);
                if let Some(ts) = last_av_ts(&pending[from..], n) {
                    e.sink.last_ts.store(u64::from(ts), Ordering::Relaxed);
                }
            }
            if n >= total {
                i += 1;
            } else {
                let e = self.entries.swap_remove(i);
                evict(e, tx.subscribe(), unwritten(&pending, from, n));
            }
        }
        drop(slices);
        self.pending = pending;
        self.clear();
        // Over budget: the most recently joined go back to the ring, after
        // this batch.
        for _ in 0..self.account(start, Instant::now()) {
            match self.entries.pop() {
                Some(e) => evict(e, tx.subscribe(), Vec::new()),
                None => break,
            }
        }
    }
}

/// The frames of `pending` from `from` on, less the first `skip` bytes.
fn unwritten(pending: &[Arc<Frame>], from: usize, mut skip: usize) -> Vec<Bytes> {
    let mut rest = Vec::new();
    for f in pending.iter().skip(from) {
        let wire = &f.chunked;
        if skip >= wire.len() {
            skip -= wire.len();
            continue;
        }
        rest.push(wire.slice(skip..));
        skip = 0;
    }
    rest
}

/// The timestamp of the last audio or video frame of `frames` that the
/// first `n` bytes reach into.
fn last_av_ts(frames: &[Arc<Frame>], n: usize) -> Option<u32> {
    let mut at = 0;
    let mut ts = None;
    for f in frames {
        if at >= n {
            break;
        }
        if f.kind != FrameKind::Data {
            ts = Some(f.timestamp);
        }
        at += f.chunked.len();
    }
    ts
}

impl Drop for Direct {
    fn drop(&mut self) {
        // The flusher task, if any, wakes, finds the stream gone and ends.
        self.started.notify_one();
    }
}

impl Direct {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `d` into the ring and, for a frame, adds it to the batch for
    /// every registered player that can take it as it is; the batch goes
    /// out now unless it is held or its window is still open. Players
    /// that cannot take it are evicted first, so that the ring delivers
    /// it to them.
    pub fn deliver(&self, tx: &broadcast::Sender<Delivery>, d: Delivery) {
        let mut inner = self.lock();
        if inner.entries.is_empty() {
            let _ = tx.send(d);
            return;
        }
        let frame = match &d {
            Delivery::Frame(f) => Some(f.clone()),
            _ => None,
        };
        // Before the send: the receivers handed over get this delivery.
        let mut i = 0;
        while i < inner.entries.len() {
            let e = &inner.entries[i];
            let fits = frame
                .as_ref()
                .is_some_and(|f| f.chunk_size() == e.chunk_size && e.filter.passes_unchanged(f));
            if fits {
                i += 1;
            } else {
                let (e, rest) = inner.remove(i);
                evict(e, tx.subscribe(), rest);
            }
        }
        let _ = tx.send(d);
        let Some(f) = frame else { return };
        if inner.entries.is_empty() {
            return;
        }
        let now = Instant::now();
        if let Some(last) = inner.last_frame {
            // A pause longer than the window says no more than "flush
            // now" does: capped, it cannot skew the average for long.
            let g = (now - last).min(inner.window);
            inner.gap = (inner.gap * 7 + g) / 8;
        }
        inner.last_frame = Some(now);
        if inner.pending.is_empty() {
            inner.batch_start = Some(now);
            if !inner.window.is_zero() {
                self.started.notify_one();
            }
        }
        inner.pending.push(f);
        if inner.due(now) {
            inner.flush(tx, now);
        }
    }

    /// The publisher starts on what one read brought: frames gather until
    /// [`Self::release`].
    pub fn hold(&self) {
        let mut inner = self.lock();
        if !inner.entries.is_empty() {
            inner.held = true;
        }
    }

    /// The publisher is through with one read: the batch goes out, unless
    /// its window is still open.
    pub fn release(&self, tx: &broadcast::Sender<Delivery>) {
        let mut inner = self.lock();
        inner.held = false;
        let now = Instant::now();
        if inner.due(now) {
            inner.flush(tx, now);
        }
    }

    /// When the pending windowed batch must go out at the latest (`None`:
    /// nothing is waiting for a window).
    pub fn deadline(&self) -> Option<Instant> {
        let inner = self.lock();
        match inner.batch_start {
            Some(t) if !inner.window.is_zero() && !inner.pending.is_empty() => {
                Some(t + inner.window)
            }
            _ => None,
        }
    }

    /// Lets a windowed batch go once its window has passed, for a
    /// publisher that sent nothing since.
    pub fn flush_overdue(&self, tx: &broadcast::Sender<Delivery>) {
        let mut inner = self.lock();
        let now = Instant::now();
        let late = matches!(inner.batch_start, Some(t) if now >= t + inner.window);
        if late && !inner.pending.is_empty() {
            inner.flush(tx, now);
        }
    }

    /// Wakes the flusher task when a windowed batch starts.
    pub fn started(&self) -> Arc<Notify> {
        self.started.clone()
    }

    /// Registers a player whose receiver `rx` has nothing unread: from now
    /// on the publisher writes for it, and `rx` can be dropped. `window` is
    /// its `out_merge`. Registers nothing (the player stays with the ring
    /// this time) when `rx` has unread deliveries, the publisher is busy,
    /// or the players already here have another window.
    pub fn enter(
        &self,
        rx: &broadcast::Receiver<Delivery>,
        sink: &Arc<Sink>,
        out: &Arc<Out>,
        filter: &PlayerFilter,
        chunk_size: usize,
        window: Duration,
    ) -> Entered {
        let Ok(mut inner) = self.inner.try_lock() else {
            return Entered::No;
        };
        // Sends happen under this lock: an empty receiver now means the
        // player has had every frame in the ring, the batch's included.
        if !rx.is_empty() || !inner.has_room() {
            return Entered::No;
        }
        if inner.entries.is_empty() {
            inner.window = window;
            inner.held = false;
        } else if inner.window != window {
            return Entered::No;
        }
        let from = inner.pending.len();
        inner.entries.push(Entry {
            sink: sink.clone(),
            out: out.clone(),
            filter: filter.clone(),
            chunk_size,
            from,
        });
        if !window.is_zero() && !inner.flusher {
            inner.flusher = true;
            return Entered::YesStartFlusher;
        }
        Entered::Yes
    }

    /// Takes a player back from the publisher: a receiver after the last
    /// frame put in the ring, and what of the batch was not written yet.
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
            let (_, rest) = inner.remove(i);
            return Handoff {
                rx: tx.subscribe(),
                rest,
            };
        }
        drop(inner);
        // Evicted between the first look and the lock: the handoff is set
        // under the lock, so it is there now.
        sink.take_handoff().unwrap_or_else(|| Handoff {
            rx: tx.subscribe(),
            rest: Vec::new(),
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

fn evict(e: Entry, rx: broadcast::Receiver<Delivery>, rest: Vec<Bytes>) {
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
        Arc<Stream>,
        broadcast::Receiver<Delivery>,
        PlayerFilter,
        Arc<Out>,
        UnixStream,
    ) {
        let s = Arc::new(Stream::new("live", "x", 1024));
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
        (s, rx, filter, Arc::new(Out::from(OwnedFd::from(a))), b)
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

    /// What the socket `got`, then the rest handed back, then the ring
    /// after it: every byte of `want` once, in order.
    fn assert_handed_back(mut got: Vec<u8>, h: Handoff, want: &[u8]) {
        for r in &h.rest {
            got.extend_from_slice(r);
        }
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

    /// The socket fills: the publisher hands the player back with the rest
    /// of the frame it could not finish and a receiver after it. What the
    /// socket got, the rest and the ring together are every frame once.
    #[test]
    fn a_full_socket_hands_back_every_byte_once() {
        let (s, rx, filter, out, mut b) = setup();
        let sink = Sink::new();
        assert!(s.enter_direct(&rx, &sink, &out, &filter, 4096, Duration::ZERO));
        drop(rx);
        let mut want = Vec::new();
        for i in 1..300u32 {
            let f = video(i * 33, i % 30 == 0, 10_000, 4096);
            want.extend_from_slice(&f.chunked);
            s.push(1, f, false, false);
        }
        assert_eq!(s.direct_players(), 0, "evicted when the socket filled");
        let h = s.leave_direct(&sink);
        let got = read_all(&mut b);
        assert_eq!(sink.take_bytes(), got.len() as u64);
        assert!(!got.is_empty() && got.len() < want.len());
        assert!(!h.rest.is_empty(), "the frame cut short");
        assert_handed_back(got, h, &want);
    }

    /// Leaving on its own, the player gets a receiver after the last frame
    /// written; a frame the publisher cannot write as it is (another chunk
    /// size, a publish event) evicts the player before it is sent.
    #[test]
    fn leaving_and_unfit_deliveries_go_through_the_ring() {
        let (s, rx, filter, out, mut b) = setup();
        let sink = Sink::new();
        assert!(s.enter_direct(&rx, &sink, &out, &filter, 4096, Duration::ZERO));
        drop(rx);
        let fs: Vec<_> = (1..4).map(|i| video(i * 33, false, 500, 4096)).collect();
        for f in &fs {
            s.push(1, f.clone(), false, false);
        }
        let want: Vec<u8> = fs.iter().flat_map(|f| f.chunked.to_vec()).collect();
        assert_eq!(read_all(&mut b), want);
        assert_eq!(sink.take_last_ts(), Some(99));
        let mut h = s.leave_direct(&sink);
        assert!(h.rest.is_empty() && frames_of(&mut h.rx).is_empty());
        s.push(1, video(132, false, 10, 4096), false, false);
        assert_eq!(frames_of(&mut h.rx).len(), 1, "after the last written");

        // Another chunk size: evicted before the send, so the ring has it.
        assert!(s.enter_direct(&h.rx, &sink, &out, &filter, 4096, Duration::ZERO));
        s.push(1, video(165, false, 10, 128), false, false);
        assert_eq!(s.direct_players(), 0);
        let mut h = s.leave_direct(&sink);
        assert_eq!(frames_of(&mut h.rx).len(), 1);
        assert!(read_all(&mut b).is_empty());

        // The publisher leaving: the player hears it from the ring.
        assert!(s.enter_direct(&h.rx, &sink, &out, &filter, 4096, Duration::ZERO));
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
        assert!(!s.enter_direct(&h.rx, &sink, &out, &filter, 4096, Duration::ZERO));
    }

    /// Held by the publisher for one read, frames reach the ring at once
    /// and the socket together at the release; a player that joins
    /// mid-batch (having read the first frames from the ring) gets only
    /// the later ones from the publisher.
    #[test]
    fn a_held_batch_goes_out_at_the_release_and_never_twice() {
        let (s, rx, filter, out, mut b) = setup();
        let sink = Sink::new();
        assert!(s.enter_direct(&rx, &sink, &out, &filter, 4096, Duration::ZERO));
        drop(rx);
        let mut ring = s.subscribe_live();
        let fs: Vec<_> = (1..7).map(|i| video(i * 33, false, 300, 4096)).collect();
        s.hold_direct();
        for f in &fs[..3] {
            s.push(1, f.clone(), false, false);
        }
        assert!(read_all(&mut b).is_empty(), "nothing written while held");
        assert_eq!(frames_of(&mut ring).len(), 3, "the ring has them at once");

        // A second player joins now: it has had the first three.
        let (c, mut d) = UnixStream::pair().unwrap();
        c.set_nonblocking(true).unwrap();
        d.set_nonblocking(true).unwrap();
        let out2 = Arc::new(Out::from(OwnedFd::from(c)));
        let sink2 = Sink::new();
        assert!(s.enter_direct(&ring, &sink2, &out2, &filter, 4096, Duration::ZERO));
        for f in &fs[3..] {
            s.push(1, f.clone(), false, false);
        }
        assert!(read_all(&mut b).is_empty());
        s.release_direct();
        let all: Vec<u8> = fs.iter().flat_map(|f| f.chunked.to_vec()).collect();
        let late: Vec<u8> = fs[3..].iter().flat_map(|f| f.chunked.to_vec()).collect();
        assert_eq!(read_all(&mut b), all);
        assert_eq!(read_all(&mut d), late);
        assert_eq!(sink.take_bytes(), all.len() as u64);
        assert_eq!(sink2.take_bytes(), late.len() as u64);
        assert_eq!(sink.take_last_ts(), Some(6 * 33));

        // Leaving mid-batch: the unwritten frames come back, in order.
        s.hold_direct();
        let g: Vec<_> = (7..10).map(|i| video(i * 33, false, 300, 4096)).collect();
        for f in &g {
            s.push(1, f.clone(), false, false);
        }
        let mut h = s.leave_direct(&sink);
        let rest: Vec<u8> = h.rest.iter().flat_map(|r| r.to_vec()).collect();
        let want: Vec<u8> = g.iter().flat_map(|f| f.chunked.to_vec()).collect();
        assert_eq!(rest, want);
        assert!(
            frames_of(&mut h.rx).is_empty(),
            "after the last in the ring"
        );
        s.release_direct();
        assert!(read_all(&mut b).is_empty());
        assert_eq!(read_all(&mut d), want, "the other player still gets them");
    }

    /// A batch the socket cannot take whole: what was written, the rest
    /// handed back and the ring after it are every frame once.
    #[test]
    fn a_batch_cut_short_hands_back_the_rest_in_order() {
        let (s, rx, filter, out, mut b) = setup();
        let sink = Sink::new();
        assert!(s.enter_direct(&rx, &sink, &out, &filter, 4096, Duration::ZERO));
        drop(rx);
        let mut want = Vec::new();
        s.hold_direct();
        for i in 1..200u32 {
            let f = video(i * 33, false, 10_000, 4096);
            want.extend_from_slice(&f.chunked);
            s.push(1, f, false, false);
        }
        s.release_direct();
        assert_eq!(s.direct_players(), 0, "evicted when the socket filled");
        let f = video(200 * 33, false, 10, 4096);
        want.extend_from_slice(&f.chunked);
        s.push(1, f, false, false);
        let h = s.leave_direct(&sink);
        let got = read_all(&mut b);
        assert_eq!(sink.take_bytes(), got.len() as u64);
        assert!(h.rest.len() > 1, "the cut frame and the ones after it");
        assert_handed_back(got, h, &want);
    }

    /// Under a window, frames wait until the next one would come too late
    /// or the window has passed; players with another window stay with
    /// the ring.
    #[test]
    fn a_window_gathers_frames_until_its_end() {
        let (s, rx, filter, out, mut b) = setup();
        let sink = Sink::new();
        let w = Duration::from_millis(200);
        assert!(s.enter_direct(&rx, &sink, &out, &filter, 4096, w));
        assert!(
            !s.enter_direct(&rx, &Sink::new(), &out, &filter, 4096, Duration::ZERO),
            "one window per stream"
        );
        drop(rx);
        let f1 = video(33, false, 300, 4096);
        let f2 = video(66, false, 300, 4096);
        s.push(1, f1.clone(), false, false);
        s.push(1, f2.clone(), false, false);
        assert!(read_all(&mut b).is_empty(), "the window is open");
        let due = s.direct.deadline().expect("a batch waits");
        assert!(due > Instant::now() && due <= Instant::now() + w);
        s.direct.flush_overdue(&s.tx);
        assert!(read_all(&mut b).is_empty(), "not yet overdue");
        std::thread::sleep(due - Instant::now() + Duration::from_millis(5));
        s.direct.flush_overdue(&s.tx);
        let want: Vec<u8> = [f1, f2].iter().flat_map(|f| f.chunked.to_vec()).collect();
        assert_eq!(read_all(&mut b), want);
        assert!(s.direct.deadline().is_none());
    }

    /// The flusher task lets a quiet publisher's batch go at the window's
    /// end, and ends with the stream.
    #[tokio::test]
    async fn the_flusher_sends_a_quiet_publishers_batch() {
        let (s, rx, filter, out, mut b) = setup();
        let sink = Sink::new();
        let w = Duration::from_millis(30);
        assert!(s.enter_direct(&rx, &sink, &out, &filter, 4096, w));
        drop(rx);
        let f = video(33, false, 300, 4096);
        let t = Instant::now();
        s.push(1, f.clone(), false, false);
        let mut got = Vec::new();
        while got.is_empty() && t.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            got = read_all(&mut b);
        }
        assert!(t.elapsed() >= w, "not before the window's end");
        assert_eq!(got, f.chunked.to_vec());
        let weak = Arc::downgrade(&s);
        drop(s);
        assert!(weak.upgrade().is_none(), "the flusher holds no stream");
    }

    /// A player as the test drives it: written by the publisher, or on
    /// its own "task" with a ring receiver and a queue, as the connection
    /// does it.
    enum Mode {
        Direct,
        Ring(
            broadcast::Receiver<Delivery>,
            std::collections::VecDeque<Bytes>,
        ),
    }

    struct Player {
        sink: Arc<Sink>,
        out: Arc<Out>,
        peer: UnixStream,
        mode: Mode,
        got: Vec<u8>,
    }

    /// Random pushes (held reads, another chunk size now and then),
    /// players leaving, catching up on the ring and coming back, sockets
    /// read at random: every player ends with every frame's bytes once, in
    /// order, with and without a window.
    #[test]
    fn random_schedules_lose_and_double_nothing() {
        for (seed, window) in [(1u64, 0), (2, 0), (3, 3), (4, 3), (5, 0)] {
            random_schedule(seed, Duration::from_millis(window));
        }
    }

    fn random_schedule(seed: u64, window: Duration) {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let (s, rx0, filter, _, _) = setup();
        let mut players: Vec<Player> = (0..4)
            .map(|_| {
                let (a, b) = UnixStream::pair().unwrap();
                a.set_nonblocking(true).unwrap();
                b.set_nonblocking(true).unwrap();
                Player {
                    sink: Sink::new(),
                    out: Arc::new(Out::from(OwnedFd::from(a))),
                    peer: b,
                    mode: Mode::Ring(rx0.resubscribe(), Default::default()),
                    got: Vec::new(),
                }
            })
            .collect();
        drop(rx0);
        let mut want = Vec::new();
        let mut ts = 0;
        // How often players entered, and came back with bytes unwritten.
        let (entered_n, rest_n) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
        let step = |p: &mut Player, s: &Arc<Stream>, rnd: &mut dyn FnMut(u64) -> u64| {
            match &mut p.mode {
                Mode::Direct => {
                    if rnd(4) == 0 {
                        let h = s.leave_direct(&p.sink);
                        rest_n.set(rest_n.get() + usize::from(!h.rest.is_empty()));
                        p.mode = Mode::Ring(h.rx, h.rest.into_iter().collect());
                    }
                }
                Mode::Ring(rx, q) => {
                    while let Ok(d) = rx.try_recv() {
                        if let Delivery::Frame(f) = d {
                            q.push_back(f.chunked.clone());
                        }
                    }
                    while let Some(b) = q.pop_front() {
                        match p.out.send(&b) {
                            Ok(n) if n == b.len() => {}
                            Ok(n) => {
                                q.push_front(b.slice(n..));
                                break;
                            }
                            Err(_) => {
                                q.push_front(b);
                                break;
                            }
                        }
                    }
                    if q.is_empty() && rnd(2) == 0 {
                        let entered = s.enter_direct(rx, &p.sink, &p.out, &filter, 4096, window);
                        if entered {
                            entered_n.set(entered_n.get() + 1);
                            p.mode = Mode::Direct;
                        }
                    }
                }
            }
            if rnd(3) == 0 {
                p.got.extend(read_all(&mut p.peer));
            }
        };
        for _ in 0..1500 {
            let held = rnd(3) == 0;
            if held {
                s.hold_direct();
            }
            for _ in 0..=rnd(4) {
                ts += 10;
                let chunk = if rnd(40) == 0 { 128 } else { 4096 };
                let f = video(ts, false, 1 + rnd(12_000) as usize, chunk);
                want.extend_from_slice(&f.chunked);
                s.push(1, f, false, false);
            }
            if held {
                s.release_direct();
            }
            if rnd(8) == 0 {
                s.direct.flush_overdue(&s.tx);
            }
            for p in players.iter_mut() {
                step(p, &s, &mut rnd);
            }
        }
        assert!(
            entered_n.get() > 100,
            "seed {seed}: {} entries",
            entered_n.get()
        );
        assert!(
            rest_n.get() > 10,
            "seed {seed}: {} handoffs with a rest",
            rest_n.get()
        );
        // Wind down: everyone back on its task, every queue written out.
        std::thread::sleep(window);
        s.direct.flush_overdue(&s.tx);
        for p in players.iter_mut() {
            if let Mode::Direct = p.mode {
                let h = s.leave_direct(&p.sink);
                p.mode = Mode::Ring(h.rx, h.rest.into_iter().collect());
            }
            for _ in 0..100_000 {
                let Mode::Ring(rx, q) = &mut p.mode else {
                    unreachable!()
                };
                if q.is_empty() && rx.is_empty() {
                    break;
                }
                step(p, &s, &mut |_| 1);
                p.got.extend(read_all(&mut p.peer));
            }
            p.got.extend(read_all(&mut p.peer));
            assert_eq!(p.got.len(), want.len(), "seed {seed}: every byte once");
            assert!(p.got == want, "seed {seed}: in order");
        }
    }
}
