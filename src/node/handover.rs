//! What a live connection carries when it moves to a new process (binary
//! upgrade on SIGUSR2): its socket and its state as plain data. The moving
//! itself (the Unix socket, the order, the fallback) is
//! `server::handover`; these types sit here, below the connection code and
//! the drain's signals, so that both can name them.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::live::player::PlayerFilter;
use crate::live::timestamp::TimestampFix;
use crate::rtmp::state::{b64, SessionState};

/// Which kind of socket a connection runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SocketKind {
    Tcp,
    Unix,
}

/// What `connect` established.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectedState {
    pub app_name: String,
    pub args: String,
    /// The connect command object, AMF0-encoded.
    #[serde(with = "b64")]
    pub object: Vec<u8>,
    /// Go Away capability: "goaway", "reconnect" or "".
    pub moves: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishingState {
    pub name: String,
    pub stream_id: u32,
    pub ts: TimestampFix,
    pub last_ts: u32,
    pub track_bytes: [u64; 2],
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PlayingState {
    pub name: String,
    pub stream_id: u32,
    /// What the player was sent so far decides what it may be sent next
    /// (the keyframe it waits for, pause, receiveAudio/Video).
    pub filter: PlayerFilter,
    pub last_ts: u32,
}

/// Done notifications owed for the current publish or play.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArmedState {
    pub publish: bool,
    pub started: bool,
    pub name: String,
    pub args: String,
}

/// One connection, between two commands: nothing is half-handled, except
/// bytes not yet parsed and output not yet written, which travel with it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConnState {
    pub id: u64,
    pub addr: SocketAddr,
    pub socket: SocketKind,
    pub server: usize,
    pub session: SessionState,
    /// Received, not yet parsed (part of a chunk).
    #[serde(with = "b64")]
    pub input: Vec<u8>,
    /// Queued for the peer, not yet written: written first by the new
    /// process.
    #[serde(with = "b64")]
    pub output: Vec<u8>,
    pub connected: Option<ConnectedState>,
    pub next_stream_id: u32,
    pub publishing: Option<PublishingState>,
    pub playing: Option<PlayingState>,
    pub armed: Option<ArmedState>,
    /// on_update was scheduled.
    pub updating: bool,
    pub go_away_sent: bool,
    pub bytes_out: u64,
    /// How long the connection has been open, in milliseconds.
    pub age_ms: u64,
    pub role: (String, String),
}

/// A frame of a stream's late-joiner cache.
#[derive(Debug, Serialize, Deserialize)]
pub struct FrameState {
    /// 0 audio, 1 video, 2 data.
    pub kind: u8,
    pub timestamp: u32,
    #[serde(with = "b64")]
    pub payload: Vec<u8>,
}

/// A published stream, handed over before its connections so that late
/// joiners in the new process start at once.
#[derive(Debug, Serialize, Deserialize)]
pub struct StreamState {
    pub server: usize,
    pub app: String,
    pub name: String,
    pub publisher: u64,
    pub publisher_addr: std::net::IpAddr,
    pub age_ms: Option<u64>,
    pub frames: Vec<FrameState>,
}

/// A connection's answer to [`crate::node::drain::Signal::Handover`].
pub enum Reply {
    /// Parked: `state` and a duplicate of its socket. It waits on
    /// `verdict`: true when the new process took it (it then ends without
    /// notifications), false to go on here.
    Handed {
        state: Box<ConnState>,
        fd: OwnedFd,
        verdict: oneshot::Sender<bool>,
    },
    /// Not moving in this phase; `stream` is what it plays, if anything.
    Skip {
        id: u64,
        stream: Option<crate::live::StreamKey>,
    },
}

/// Where connections send their [`Reply`].
#[derive(Clone)]
pub struct Collector {
    pub tx: mpsc::UnboundedSender<Reply>,
    /// Phase 1 moves everyone but players; phase 2 moves players.
    pub players: bool,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Collector(players: {})", self.players)
    }
}

impl PartialEq for Collector {
    fn eq(&self, other: &Self) -> bool {
        self.tx.same_channel(&other.tx) && self.players == other.players
    }
}

impl Eq for Collector {}
