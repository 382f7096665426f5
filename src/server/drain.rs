//! Graceful drain with RTMP Go Away, and targeted Go Away.
//!
//! Drain: the listeners close at once, every client that can move is sent
//! one signal (type 32 to clients that announced `supportsGoAway`,
//! `onStatus NetConnection.Connect.ReconnectRequest` to clients that only
//! announced `capsEx` bit 0x01, nothing to the others), everyone keeps being
//! served until they leave or `drain_timeout` passes, then the rest are
//! closed the normal way, so their `*_done`/`on_disconnect` notifications
//! are sent, and the process waits for those calls before it exits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{broadcast, watch, Notify};

/// The process's drain phase, watched by every connection.
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

pub struct Drain {
    pub phase: watch::Sender<Phase>,
    pub targeted: broadcast::Sender<Target>,
    /// Clients sent a Go Away signal (drain or targeted).
    pub signalled: AtomicUsize,
    requested: Notify,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            phase: watch::channel(Phase::Running).0,
            targeted: broadcast::channel(64).0,
            signalled: AtomicUsize::new(0),
            requested: Notify::new(),
        }
    }
}

impl Drain {
    /// Starts a drain from inside the process (control endpoints).
    pub fn request(&self) {
        self.requested.notify_one();
    }

    pub async fn requested(&self) {
        self.requested.notified().await
    }

    /// Sends a targeted Go Away; connections that match signal their
    /// client. Returns how many connections were listening.
    pub fn target(&self, t: Target) -> usize {
        self.targeted.send(t).unwrap_or(0)
    }

    pub fn signalled(&self) -> usize {
        self.signalled.load(Ordering::Relaxed)
    }
}

/// How long to wait for in-flight notifications after the last connection.
pub const NOTIFY_GRACE: Duration = Duration::from_secs(15);
