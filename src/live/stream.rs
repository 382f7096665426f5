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
use crate::flv::{Anchor, Configs};

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
    /// Every track's decoder configuration, in the order they came.
    pub configs: Vec<Arc<Frame>>,
    /// Frames from the latest keyframe of the stream's first video track
    /// on (empty without gop_cache). Other tracks' frames before their own
    /// keyframe are in it too: players skip them (`PlayerFilter`).
    pub gop: Vec<Arc<Frame>>,
}

impl Snapshot {
    /// Metadata, then every configuration: what a player needs before
    /// media.
    pub fn headers(&self) -> impl Iterator<Item = &Arc<Frame>> {
        self.meta.iter().chain(self.configs.iter())
    }
}

/// See [`Stream::view`].
#[derive(Debug, Clone)]
pub struct StreamView {
    pub publisher: Option<u64>,
    pub since: Option<std::time::Instant>,
    pub players: usize,
    pub media: super::describe::MediaDesc,
}

#[derive(Debug, thiserror::Error)]
#[error("already publishing")]
pub struct AlreadyPublishing;

pub use crate::config::Takeover;

/// Who publishes a stream.
#[derive(Debug, Clone, Copy)]
pub struct PublisherId {
    pub id: u64,
    pub addr: std::net::IpAddr,
    /// A pull (relay or cluster edge): any client publishing the stream
    /// here takes it over, whatever `publish_takeover` says.
    pub relay: bool,
}

#[derive(Default)]
struct State {
    publisher: Option<PublisherId>,
    /// The publisher was sent Go Away: a takeover is expected.
    moving: bool,
    /// Last audio and video timestamps sent to players, and the highest
    /// video presentation time (timestamp + composition offset: with
    /// B-frames it runs ahead), so a new publisher can continue above all.
    last_ts: [u32; 2],
    max_pts: i64,
    players: usize,
    /// When the current publisher started (the stream's `time` in /stat).
    since: Option<std::time::Instant>,
    meta: Option<Arc<Frame>>,
    configs: Configs<Arc<Frame>>,
    /// The video track whose keyframes start a GOP: the first one to send
    /// a keyframe. (With a multitrack ladder, a GOP restarted at every
    /// track's keyframe would lose the other tracks' keyframes.)
    anchor: Anchor,
    gop: Vec<Arc<Frame>>,
    gop_bytes: usize,
    /// False until the first video keyframe, and after an overflow.
    gop_valid: bool,
}

pub struct Stream {
    pub app: String,
    pub name: String,
    pub(super) tx: broadcast::Sender<Delivery>,
    state: Mutex<State>,
    /// Players the publisher writes to itself (see `live::direct`).
    pub(super) direct: super::direct::Direct,
    /// Whether there is a publisher, readable without the lock (players
    /// of an unpublished stream do not register with `direct`).
    live: std::sync::atomic::AtomicBool,
}

impl Stream {
    pub fn new(app: &str, name: &str, queue: usize) -> Stream {
        let (tx, _) = broadcast::channel(queue.max(16));
        Stream {
            app: app.to_owned(),
            name: name.to_owned(),
            tx,
            state: Mutex::new(State::default()),
            direct: Default::default(),
            live: Default::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take every other player down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `who` the publisher. With a publisher in place, `rule` decides
    /// whether `who` takes over: players stay attached and the caches stay
    /// (the new publisher starts with its sequence headers and a keyframe).
    /// Returns the publisher taken over from, which the caller must close.
    pub fn publish(
        &self,
        who: PublisherId,
        rule: Takeover,
    ) -> Result<Option<PublisherId>, AlreadyPublishing> {
        let mut s = self.lock();
        if let Some(old) = s.publisher {
            if old.id == who.id {
                // The same session again: a connection handed back after
                // a failed upgrade (see `server::handover`).
                return Ok(None);
            }
            let allowed = old.relay
                || match rule {
                    Takeover::Off => false,
                    Takeover::GoAway => s.moving,
                    Takeover::Addr => s.moving || old.addr == who.addr,
                    Takeover::Always => true,
                };
            if !allowed {
                return Err(AlreadyPublishing);
            }
            s.publisher = Some(who);
            s.moving = false;
            return Ok(Some(old));
        }
        s.publisher = Some(who);
        self.live.store(true, std::sync::atomic::Ordering::Relaxed);
        s.moving = false;
        s.since = Some(std::time::Instant::now());
        s.last_ts = [0, 0];
        s.max_pts = 0;
        s.meta = None;
        s.configs.clear();
        s.anchor.reset();
        s.gop.clear();
        s.gop_bytes = 0;
        s.gop_valid = false;
        self.direct.deliver(&self.tx, Delivery::PublishStart);
        Ok(None)
    }

    /// The publisher `id` was sent Go Away.
    pub fn mark_moving(&self, id: u64) {
        let mut s = self.lock();
        if s.publisher.is_some_and(|p| p.id == id) {
            s.moving = true;
        }
    }

    /// The timestamp a publisher taking over must start at or above: past
    /// every audio and video timestamp and every video presentation time
    /// players got, so their decoders never see time go back.
    pub fn takeover_floor(&self) -> [u32; 2] {
        let s = self.lock();
        let above = (s.max_pts + 1).clamp(0, u32::MAX as i64) as u32;
        [s.last_ts[0].max(above), s.last_ts[1].max(above)]
    }

    pub fn unpublish(&self, id: u64) {
        let mut s = self.lock();
        if s.publisher.is_some_and(|p| p.id == id) {
            s.publisher = None;
            self.live.store(false, std::sync::atomic::Ordering::Relaxed);
            s.since = None;
            s.gop.clear();
            s.gop_bytes = 0;
            s.gop_valid = false;
            self.direct.deliver(&self.tx, Delivery::PublishStop);
        }
    }

    /// The current publisher's id.
    pub fn publisher(&self) -> Option<u64> {
        self.lock().publisher.map(|p| p.id)
    }

    pub fn is_publishing(&self) -> bool {
        self.lock().publisher.is_some()
    }

    /// Publishes one frame to every player and updates the caches.
    /// Frames from anyone but the current publisher `from` (one taken over
    /// an instant ago) are dropped.
    pub fn push(&self, from: u64, frame: Arc<Frame>, gop_cache: bool, cache_meta: bool) {
        let mut s = self.lock();
        if s.publisher.is_none_or(|p| p.id != from) {
            return;
        }
        match frame.kind {
            FrameKind::Audio => s.last_ts[0] = frame.timestamp,
            FrameKind::Video => {
                s.last_ts[1] = frame.timestamp;
                let pts =
                    frame.timestamp as i64 + crate::flv::composition_offset(frame.head()) as i64;
                s.max_pts = s.max_pts.max(pts);
            }
            FrameKind::Data => {}
        }
        if frame.info.sequence_header {
            if let Some(key) = frame.config_key() {
                // A publisher that took over repeats unchanged headers:
                // players already have them.
                if s.configs
                    .get(&key)
                    .is_some_and(|old| old.payload() == frame.payload())
                {
                    return;
                }
                s.configs.insert(key, frame.payload_len(), frame.clone());
            }
        } else if frame.kind == FrameKind::Data {
            if cache_meta {
                s.meta = Some(frame.clone());
            }
        } else if gop_cache {
            if frame.is_start(&mut s.anchor) {
                s.gop.clear();
                s.gop_bytes = 0;
                s.gop_valid = true;
            }
            if s.gop_valid {
                s.gop_bytes += frame.payload_len();
                s.gop.push(frame.clone());
                if s.gop_bytes > GOP_MAX_BYTES || s.gop.len() > GOP_MAX_FRAMES {
                    s.gop.clear();
                    s.gop_bytes = 0;
                    s.gop_valid = false;
                }
            }
        }
        // No receivers is fine: frames are simply not kept.
        self.direct.deliver(&self.tx, Delivery::Frame(frame));
    }

    /// Joins a player: returns the catch-up snapshot and a ring receiver
    /// positioned right after it.
    pub fn subscribe(&self) -> (Snapshot, broadcast::Receiver<Delivery>) {
        let mut s = self.lock();
        s.players += 1;
        let snap = Snapshot {
            publishing: s.publisher.is_some(),
            meta: s.meta.clone(),
            configs: s.configs.iter().cloned().collect(),
            gop: s.gop.clone(),
        };
        (snap, self.tx.subscribe())
    }

    /// A ring receiver for an internal reader (a recorder): not a player,
    /// so not counted, and no catch-up snapshot is needed.
    pub fn subscribe_quiet(&self) -> (Snapshot, broadcast::Receiver<Delivery>) {
        let s = self.lock();
        let snap = Snapshot {
            publishing: s.publisher.is_some(),
            meta: s.meta.clone(),
            configs: s.configs.iter().cloned().collect(),
            gop: Vec::new(),
        };
        (snap, self.tx.subscribe())
    }

    pub fn unsubscribe(&self) {
        let mut s = self.lock();
        s.players = s.players.saturating_sub(1);
    }

    /// The cached metadata and sequence headers, in the order a player
    /// needs them.
    pub fn headers(&self) -> Vec<Arc<Frame>> {
        let s = self.lock();
        s.meta.iter().chain(s.configs.iter()).cloned().collect()
    }

    /// What another process needs to go on with this stream where it
    /// stands (binary upgrade): the publisher, how long it has published,
    /// and the frames a late joiner gets (metadata, configurations, GOP).
    pub fn export(
        &self,
    ) -> (
        Option<PublisherId>,
        Option<std::time::Duration>,
        Vec<Arc<Frame>>,
    ) {
        let s = self.lock();
        let frames = s
            .meta
            .iter()
            .chain(s.configs.iter())
            .chain(s.gop.iter())
            .cloned()
            .collect();
        (s.publisher, s.since.map(|t| t.elapsed()), frames)
    }

    /// The other half of [`Self::export`]: `who` publishes, for `age`
    /// already, and `frames` fill the caches as if just received. Nobody
    /// is subscribed yet, so nothing is delivered.
    pub fn import(
        &self,
        who: PublisherId,
        age: Option<std::time::Duration>,
        frames: Vec<Arc<Frame>>,
        gop_cache: bool,
    ) {
        let _ = self.publish(who, Takeover::Always);
        for f in frames {
            let meta = f.kind == FrameKind::Data;
            self.push(who.id, f, gop_cache, meta);
        }
        let since = age.and_then(|a| std::time::Instant::now().checked_sub(a));
        if let Some(t) = since {
            self.lock().since = Some(t);
        }
    }

    /// Joins a player that was already sent everything up to now (one
    /// handed over from another process): a ring receiver, no snapshot.
    pub fn subscribe_live(&self) -> broadcast::Receiver<Delivery> {
        let mut s = self.lock();
        s.players += 1;
        self.tx.subscribe()
    }

    /// Hands this player's writing to the publisher (see `live::direct`),
    /// with its `out_merge` window: false when `rx` has unread
    /// deliveries, the publisher is busy, or the players it writes for
    /// have another window.
    pub fn enter_direct(
        self: &Arc<Self>,
        rx: &broadcast::Receiver<Delivery>,
        sink: &Arc<super::direct::Sink>,
        out: &Arc<super::direct::Out>,
        filter: &super::player::PlayerFilter,
        chunk_size: usize,
        window: std::time::Duration,
    ) -> bool {
        use super::direct::Entered;
        match self.direct.enter(rx, sink, out, filter, chunk_size, window) {
            Entered::No => false,
            Entered::Yes => true,
            Entered::YesStartFlusher => {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(flusher(Arc::downgrade(self), self.direct.started()));
                }
                true
            }
        }
    }

    /// The publisher starts on what one read brought: the frames it pushes
    /// go to the ring at once, and to the players it writes for together
    /// at [`Self::release_direct`] (one write each instead of one per
    /// frame).
    pub fn hold_direct(&self) {
        self.direct.hold();
    }

    /// The publisher is through with one read (see [`Self::hold_direct`]).
    pub fn release_direct(&self) {
        self.direct.release(&self.tx);
    }

    /// Takes a player's writing back from the publisher.
    pub fn leave_direct(&self, sink: &Arc<super::direct::Sink>) -> super::direct::Handoff {
        self.direct.leave(&self.tx, sink)
    }

    /// Whether the stream has a publisher (a relaxed read, no lock: for
    /// decisions that a moment's staleness cannot break).
    pub fn has_publisher(&self) -> bool {
        self.live.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many players the publisher writes to itself.
    pub fn direct_players(&self) -> usize {
        self.direct.len()
    }

    /// A consistent look at the stream for `/stat` (not for the hot path).
    pub fn view(&self) -> StreamView {
        let s = self.lock();
        StreamView {
            publisher: s.publisher.map(|p| p.id),
            since: s.since,
            players: s.players,
            media: super::describe::describe(s.meta.as_deref(), s.configs.iter()),
        }
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

/// Lets a stream's windowed batches (`out_merge` players written by the
/// publisher) go at the end of their window when the publisher sends
/// nothing more: without it a quiet publisher would hold the last frames
/// until its next one. It sleeps until a batch starts, then until that
/// batch's deadline; it holds the stream only while it looks, and ends
/// when the stream is gone.
async fn flusher(stream: std::sync::Weak<Stream>, started: Arc<tokio::sync::Notify>) {
    loop {
        let deadline = match stream.upgrade() {
            Some(s) => s.direct.deadline(),
            None => return,
        };
        match deadline {
            Some(t) => {
                tokio::time::sleep_until(t.into()).await;
                match stream.upgrade() {
                    Some(s) => s.direct.flush_overdue(&s.tx),
                    None => return,
                }
            }
            None => started.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(id: u64, relay: bool) -> PublisherId {
        PublisherId {
            id,
            addr: std::net::Ipv4Addr::new(10, 0, 0, id as u8).into(),
            relay,
        }
    }

    fn media(kind: FrameKind, payload: &'static [u8]) -> Arc<Frame> {
        let info = match kind {
            FrameKind::Video => crate::flv::video_info(payload).unwrap(),
            _ => crate::flv::audio_info(payload).unwrap(),
        };
        let p = bytes::Bytes::from_static(payload);
        Arc::new(Frame::new(kind, 0, info, p, 4096, false))
    }

    /// ffmpeg 9's two-rendition layout: a late joiner gets both tracks'
    /// configurations, and the GOP starts at track 0's keyframe even when
    /// track 1 has one of its own later.
    #[test]
    fn multitrack_configs_and_gop_for_late_joiners() {
        use FrameKind::{Audio, Video};
        let s = Stream::new("live", "x", 64);
        s.publish(who(1, false), Takeover::Off).unwrap();
        let frames = [
            media(Video, &[0x17, 0, 0, 0, 0, 1, 100]),
            media(Video, &[0x96, 0x00, b'a', b'v', b'c', b'1', 1, 1, 77]),
            media(Audio, &[0xaf, 0, 0x12, 0x10]),
            media(Audio, &[0x95, 0x00, b'm', b'p', b'4', b'a', 1, 0x11, 0x88]),
            media(Audio, &[0x95, 0x04, b'm', b'p', b'4', b'a', 1, 1, 1, 0]),
            media(Video, &[0x17, 1, 0, 0, 0, 0xA0]),
            media(
                Video,
                &[0x96, 0x01, b'a', b'v', b'c', b'1', 1, 0, 0, 0, 0xA1],
            ),
            media(Video, &[0x27, 1, 0, 0, 0, 0xB0]),
            media(
                Video,
                &[0x96, 0x01, b'a', b'v', b'c', b'1', 1, 0, 0, 0, 0xA2],
            ),
        ];
        for f in &frames {
            s.push(1, f.clone(), true, true);
        }
        let (snap, mut rx) = s.subscribe();
        assert_eq!(snap.configs.len(), 5, "every track's configurations");
        assert_eq!(snap.gop.len(), 4, "from track 0's keyframe on");
        assert!(Arc::ptr_eq(&snap.gop[0], &frames[5]));
        // The same configuration again (a takeover) is not sent twice, a
        // changed one is.
        s.push(1, media(Video, &[0x17, 0, 0, 0, 0, 1, 100]), true, true);
        assert!(rx.try_recv().is_err());
        s.push(1, media(Video, &[0x17, 0, 0, 0, 0, 1, 77]), true, true);
        assert!(rx.try_recv().is_ok());
        assert_eq!(s.subscribe().0.configs.len(), 5);
    }

    #[test]
    fn a_client_takes_a_relayed_stream_over_but_not_a_published_one() {
        let s = Stream::new("live", "x", 16);
        s.publish(who(1, true), Takeover::Off).unwrap();
        let old = s.publish(who(2, false), Takeover::Off).unwrap();
        assert_eq!(old.map(|p| p.id), Some(1), "the pull gives way");
        assert_eq!(s.publisher(), Some(2));
        assert!(s.publish(who(3, false), Takeover::Off).is_err());
    }
}
