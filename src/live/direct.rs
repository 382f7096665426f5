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

/// The players of one stream written to by its publisher.
#[derive(Default)]
pub struct Direct {
    entries: Mutex<Vec<Entry>>,
}

impl Direct {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `d` into the ring and, for a frame, writes it to every
    /// registered player that can take it as it is. Players that cannot
    /// are evicted first, so that the ring delivers it to them.
    pub fn deliver(&self, tx: &broadcast::Sender<Delivery>, d: Delivery) {
        let mut entries = self.lock();
        if entries.is_empty() {
            let _ = tx.send(d);
            return;
        }
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
        let Ok(mut entries) = self.entries.try_lock() else {
            return false;
        };
        // Sends happen under this lock: an empty receiver now means the
        // publisher's next frame is the first one it writes for us.
        if !rx.is_empty() {
            return false;
        }
        entries.push(Entry {
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
        let mut entries = self.lock();
        if let Some(i) = entries.iter().position(|e| Arc::ptr_eq(&e.sink, sink)) {
            entries.swap_remove(i);
            return Handoff {
                rx: tx.subscribe(),
                rest: None,
            };
        }
        drop(entries);
        // Evicted between the first look and the lock: the handoff is set
        // under the lock, so it is there now.
        sink.take_handoff().unwrap_or_else(|| Handoff {
            rx: tx.subscribe(),
            rest: None,
        })
    }

    /// How many players the publisher writes for.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn evict(e: Entry, rx: broadcast::Receiver<Delivery>, rest: Option<Bytes>) {
    *e.sink.handoff.lock().unwrap_or_else(|p| p.into_inner()) = Some(Handoff { rx, rest });
    e.sink.notify.notify_one();
}
