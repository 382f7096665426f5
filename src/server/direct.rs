//! A player's side of publisher-side writing (`live::direct`): when a
//! caught-up player hands its socket's writing to the publisher, and how
//! it takes it back before it does anything else with the connection.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::connection::Connection;
use super::socket::Socket;
use crate::live::direct::{Out, Sink};
use crate::live::frame::SHARED_STREAM_ID;
use crate::live::{Delivery, Stream};

/// Set to any value, players are never written to by the publisher (for
/// comparing the two paths in benchmarks).
const OFF_ENV: &str = "SLUICE_NO_DIRECT_WRITE";

/// A registration with a stream's publisher. Dropping it (a connection
/// ending in any way) takes the registration back, so the publisher never
/// writes for a connection that is gone.
pub(super) struct Registered {
    stream: Arc<Stream>,
    sink: Arc<Sink>,
    left: bool,
}

impl Registered {
    pub(super) fn sink(&self) -> &Sink {
        &self.sink
    }

    fn leave(mut self) -> crate::live::direct::Handoff {
        self.left = true;
        self.stream.leave_direct(&self.sink)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if !self.left {
            drop(self.stream.leave_direct(&self.sink));
        }
    }
}

/// What the connection keeps for direct writing.
#[derive(Default)]
pub(super) struct DirectState {
    /// A second descriptor of the socket, made once; `Some(None)` when the
    /// socket cannot be written around its owner (TLS) or it is switched
    /// off.
    out: Option<Option<Arc<Out>>>,
    /// Reused across registrations.
    sink: Option<Arc<Sink>>,
    pub(super) registered: Option<Registered>,
}

impl Connection {
    /// Whether this connection may be written to by its stream's publisher
    /// now: playing live on the shared chunk stream with a filter that
    /// passes frames as they are, and nothing of its own to write, wait
    /// for or hand over.
    /// An `out_merge` window goes with it: the publisher then batches.
    fn direct_fits(&self) -> bool {
        self.pending.is_none()
            && self.handover.is_none()
            && self.close_after_flush.is_none()
            && self.vod.is_none()
            && self.session.out.is_empty()
            && self.outq.is_empty()
            && self
                .playing
                .as_ref()
                .is_some_and(|p| p.stream_id == SHARED_STREAM_ID && p.filter.direct_ok())
    }

    /// Hands writing to the publisher when that fits and the ring has
    /// nothing unread for this player. Never waits.
    pub(super) fn try_enter_direct<S: Socket>(&mut self, sock: &S) {
        if self.direct.registered.is_some() || !self.direct_fits() {
            return;
        }
        // Players waiting for a publisher stay asleep on the ring: its
        // PublishStart wakes them, and they register then.
        if !self
            .playing
            .as_ref()
            .is_some_and(|p| p.stream.has_publisher())
        {
            return;
        }
        let out = self.direct.out.get_or_insert_with(|| {
            if std::env::var_os(OFF_ENV).is_some() || sock.has_pending_output() {
                return None;
            }
            sock.dup_fd().ok().map(|fd| Arc::new(Out::from(fd)))
        });
        let Some(out) = out.clone() else { return };
        let sink = self.direct.sink.get_or_insert_with(Sink::new).clone();
        let chunk = self.session.out_chunk_size();
        let window = self.merge_window();
        let Some(p) = self.playing.as_mut() else {
            return;
        };
        if !p
            .stream
            .enter_direct(&p.rx, &sink, &out, &p.filter, chunk, window)
        {
            return;
        }
        // The ring receiver would only pin frames now: the publisher
        // writes them. A closed stand-in takes its place until leaving.
        p.rx = broadcast::channel::<Delivery>(1).1;
        self.direct.registered = Some(Registered {
            stream: p.stream.clone(),
            sink,
            left: false,
        });
    }

    /// Counts what the publisher wrote for this player.
    pub(super) fn fold_direct(&mut self) {
        let Some(sink) = self.direct.sink.as_ref() else {
            return;
        };
        self.bytes_out += sink.take_bytes();
        if let (Some(ts), Some(p)) = (sink.take_last_ts(), self.playing.as_mut()) {
            p.last_ts = ts;
        }
    }

    /// Takes writing back: the ring from right after the last frame the
    /// publisher put in it, and what it had not written yet first.
    pub(super) fn leave_direct(&mut self) {
        let Some(reg) = self.direct.registered.take() else {
            return;
        };
        let h = reg.leave();
        self.fold_direct();
        if let Some(p) = self.playing.as_mut() {
            p.rx = h.rx;
        }
        for rest in h.rest.into_iter().rev() {
            self.outq.push_front(rest);
        }
    }

    /// Leaves when something since made direct writing wrong (output of
    /// its own, a command waiting, a pause...).
    pub(super) fn check_direct(&mut self) {
        if self.direct.registered.is_some() {
            self.fold_direct();
            if !self.direct_fits() {
                self.leave_direct();
            }
        }
    }

    pub(super) fn is_direct(&self) -> bool {
        self.direct.registered.is_some()
    }
}

/// Resolves when the publisher hands this player back; never without a
/// registration.
pub(super) async fn evicted(d: &DirectState) {
    match &d.registered {
        Some(r) => r.sink().evicted().await,
        None => std::future::pending().await,
    }
}
