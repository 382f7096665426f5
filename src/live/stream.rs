//! One live stream: at most one publisher, any number of players.
//!
//! Fan-out uses a bounded broadcast ring (`tokio::sync::broadcast`) of
//! `Arc`-shared frames: the publisher pushes each frame once, and each player
//! task pulls from the ring at its own pace on whatever core it runs on. A
//! player that falls `out_queue` messages behind is told by the ring how much
//! it missed (it never holds the publisher back and never grows memory); its
//! connection then skips to the next keyframe, or leaves if it keeps lagging.
//!
//! The small mutex here guards the late-joiner caches (metadata, sequence
//! headers, GOP). Only the publisher takes it per frame; a player takes it
//! once, when it joins, so the cache snapshot and its ring position line up
//! exactly: no frame is missed or doubled between the two.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use super::frame::{Frame, FrameKind};

/// Upper bounds for the GOP cache of one stream. A GOP larger than this
/// (very long keyframe interval at high bitrate) is not cached; late
/// joiners then wait for the next keyframe, as with nginx-rtmp.
const GOP_MAX_BYTES: usize = 64 << 20;
const GOP_MAX_FRAMES: usize = 8192;

/// What a player receives from the ring.
#[derive(Clone, Debug)]
pub enum Delivery {
    Frame(Arc<Frame>),
    PublishStart,
    PublishStop,
}

/// What a joining player gets before live frames: enough to start decoding
/// immediately.
#[derive(Default)]
pub struct Snapshot {
    pub publishing: bool,
    pub meta: Option<Arc<Frame>>,
    pub video_seq: Option<Arc<Frame>>,
    pub audio_seq: Option<Arc<Frame>>,
    /// Frames from the latest video keyframe on (empty without gop_cache).
    pub gop: Vec<Arc<Frame>>,
}

#[derive(Debug, thiserror::Error)]
#[error("already publishing")]
pub struct AlreadyPublishing;

#[derive(Default)]
struct State {
    publisher: Option<u64>,
    players: usize,
    meta: Option<Arc<Frame>>,
    video_seq: Option<Arc<Frame>>,
    audio_seq: Option<Arc<Frame>>,
    gop: Vec<Arc<Frame>>,
    gop_bytes: usize,
    /// False until the first video keyframe, and after an overflow.
    gop_valid: bool,
}

pub struct Stream {
    pub app: String,
    pub name: String,
    tx: broadcast::Sender<Delivery>,
    state: Mutex<State>,
}

impl Stream {
    pub fn new(app: &str, name: &str, queue: usize) -> Stream {
        let (tx, _) = broadcast::channel(queue.max(16));
        Stream {
            app: app.to_owned(),
            name: name.to_owned(),
            tx,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take every other player down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes connection `id` the publisher.
    pub fn publish(&self, id: u64) -> Result<(), AlreadyPublishing> {
        let mut s = self.lock();
        if s.publisher.is_some() {
            return Err(AlreadyPublishing);
        }
        s.publisher = Some(id);
        s.meta = None;
        s.video_seq = None;
        s.audio_seq = None;
        s.gop.clear();
        s.gop_bytes = 0;
        s.gop_valid = false;
        let _ = self.tx.send(Delivery::PublishStart);
        Ok(())
    }

    pub fn unpublish(&self, id: u64) {
        let mut s = self.lock();
        if s.publisher == Some(id) {
            s.publisher = None;
            s.gop.clear();
            s.gop_bytes = 0;
            s.gop_valid = false;
            let _ = self.tx.send(Delivery::PublishStop);
        }
    }

    pub fn is_publishing(&self) -> bool {
        self.lock().publisher.is_some()
    }

    /// Publishes one frame to every player and updates the caches.
    pub fn push(&self, frame: Arc<Frame>, gop_cache: bool, cache_meta: bool) {
        let mut s = self.lock();
        if frame.info.sequence_header {
            match frame.kind {
                FrameKind::Video => s.video_seq = Some(frame.clone()),
                FrameKind::Audio => s.audio_seq = Some(frame.clone()),
                FrameKind::Data => {}
            }
        } else if frame.kind == FrameKind::Data {
            if cache_meta {
                s.meta = Some(frame.clone());
            }
        } else if gop_cache {
            if frame.is_video_key() {
                s.gop.clear();
                s.gop_bytes = 0;
                s.gop_valid = true;
            }
            if s.gop_valid {
                s.gop_bytes += frame.payload.len();
                s.gop.push(frame.clone());
                if s.gop_bytes > GOP_MAX_BYTES || s.gop.len() > GOP_MAX_FRAMES {
                    s.gop.clear();
                    s.gop_bytes = 0;
                    s.gop_valid = false;
                }
            }
        }
        // No receivers is fine: frames are simply not kept.
        let _ = self.tx.send(Delivery::Frame(frame));
    }

    /// Joins a player: returns the catch-up snapshot and a ring receiver
    /// positioned right after it.
    pub fn subscribe(&self) -> (Snapshot, broadcast::Receiver<Delivery>) {
        let mut s = self.lock();
        s.players += 1;
        let snap = Snapshot {
            publishing: s.publisher.is_some(),
            meta: s.meta.clone(),
            video_seq: s.video_seq.clone(),
            audio_seq: s.audio_seq.clone(),
            gop: s.gop.clone(),
        };
        (snap, self.tx.subscribe())
    }

    pub fn unsubscribe(&self) {
        let mut s = self.lock();
        s.players = s.players.saturating_sub(1);
    }

    pub fn players(&self) -> usize {
        self.lock().players
    }

    /// True when nobody publishes or plays: the registry may drop it.
    pub fn is_idle(&self) -> bool {
        let s = self.lock();
        s.publisher.is_none() && s.players == 0
    }
}
