//! Graceful drain with RTMP Go Away, and targeted Go Away.
//!
//! Drain: the listeners close at once, every client that can move is sent
//! one signal (type 32 to clients that announced `supportsGoAway`,
//! `onStatus NetConnection.Connect.ReconnectRequest` to clients that only
//! announced `capsEx` bit 0x01, nothing to the others), everyone keeps being
//! served until they leave or `drain_timeout` passes, then the rest are
//! closed the normal way, so their `*_done`/`on_disconnect` notifications
//! are sent, and the process waits for those calls before it exits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// The process's drain phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// Go Away sent; still serving.
    Draining,
    /// `drain_timeout` passed: close now.
    Closing,
}

/// Whom a targeted Go Away is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Client(u64),
    /// Close this connection: its stream was taken over.
    Close(u64),
    Publisher {
        server: usize,
        app: String,
        name: String,
    },
}

/// What a connection is told from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    Phase(Phase),
    Target(Target),
    /// An onStatus for the connection's published stream (record_notify).
    Status {
        code: &'static str,
        description: String,
    },
    /// `/control/drop`: close the connection.
    Drop,
    /// `/control/redirect`: republish or replay under this name.
    Redirect(String),
    /// Binary upgrade: stop at the next command boundary and report to
    /// the collector (see `server::handover`).
    Handover(super::handover::Collector),
}

/// A connection's inbox for [`Signal`]s.
///
/// Each connection has its own, rather than all subscribing to one
/// broadcast channel: a connection waits on its inbox on every turn of its
/// loop, and a shared channel would make every one of those turns, on every
/// connection, take the same lock.
#[derive(Default)]
pub struct Mailbox {
    pub notify: Notify,
    inbox: Mutex<Vec<Signal>>,
}

impl Mailbox {
    fn post(&self, s: Signal) {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner()).push(s);
        self.notify.notify_one();
    }

    pub fn take(&self) -> Vec<Signal> {
        std::mem::take(&mut *self.inbox.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

pub struct Drain {
    phase: AtomicU8,
    conns: Mutex<HashMap<u64, Arc<Mailbox>>>,
    /// Clients sent a Go Away signal (drain or targeted).
    pub signalled: AtomicUsize,
    requested: Notify,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            phase: AtomicU8::new(Phase::Running as u8),
            conns: Mutex::new(HashMap::new()),
            signalled: AtomicUsize::new(0),
            requested: Notify::new(),
        }
    }
}

impl Drain {
    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Mailbox>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives connection `id` its inbox, with the current phase already in
    /// it when a drain is under way.
    pub fn register(&self, id: u64) -> Arc<Mailbox> {
        let mb = Arc::new(Mailbox::default());
        let mut conns = self.conns();
        let phase = self.phase();
        if phase != Phase::Running {
            mb.post(Signal::Phase(phase));
        }
        conns.insert(id, mb.clone());
        mb
    }

    /// The ids of every connection.
    pub fn ids(&self) -> Vec<u64> {
        self.conns().keys().copied().collect()
    }

    pub fn unregister(&self, id: u64) {
        self.conns().remove(&id);
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Running,
            1 => Phase::Draining,
            _ => Phase::Closing,
        }
    }

    /// Moves every connection to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        let conns = self.conns();
        self.phase.store(phase as u8, Ordering::Release);
        for mb in conns.values() {
            mb.post(Signal::Phase(phase));
        }
    }

    /// Starts a drain from inside the process (control endpoints).
    pub fn request(&self) {
        self.requested.notify_one();
    }

    pub async fn requested(&self) {
        self.requested.notified().await
    }

    /// Posts a signal to one connection; false when it is gone.
    pub fn post(&self, id: u64, s: Signal) -> bool {
        match self.conns().get(&id) {
            Some(mb) => {
                mb.post(s);
                true
            }
            None => false,
        }
    }

    /// Sends a targeted Go Away; connections that match signal their
    /// client. Returns how many connections it reached.
    pub fn target(&self, t: Target) -> usize {
        let conns = self.conns();
        match t {
            Target::Client(id) | Target::Close(id) => match conns.get(&id) {
                Some(mb) => {
                    mb.post(Signal::Target(t));
                    1
                }
                None => 0,
            },
            Target::Publisher { .. } => {
                for mb in conns.values() {
                    mb.post(Signal::Target(t.clone()));
                }
                conns.len()
            }
        }
    }

    pub fn signalled(&self) -> usize {
        self.signalled.load(Ordering::Relaxed)
    }
}

/// How long to wait for in-flight notifications after the last connection.
pub const NOTIFY_GRACE: Duration = Duration::from_secs(15);
