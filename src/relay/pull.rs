//! A pull: plays a stream from another server and publishes it locally,
//! once per node, for every local player.
//!
//! The same loop serves nginx-rtmp's `pull` (one fixed upstream) and the
//! cluster edge (whichever node owns the stream now). When an edge learns
//! that the owner changed, it opens the new upstream at once but keeps
//! feeding players from the old one until that stream ends — the moving
//! publisher sends the old node everything before its switch keyframe —
//! and meanwhile holds what the new upstream sends. Then it goes on with
//! the held frames from their first keyframe: players see each frame once,
//! with no gap, without re-subscribing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::ingest::Ingest;
use super::stat::PullStat;
use super::upstream::{self, Event, Handle};
use crate::client::RtmpUrl;
use crate::live::stream::{PublisherId, Takeover};
use crate::live::StreamKey;
use crate::node::Shared;
use crate::rtmp::{Amf, Message};

/// Where a pull gets its stream from.
pub enum Source {
    /// A `pull` directive or an `on_play` 3xx to an rtmp:// URL.
    Fixed {
        url: RtmpUrl,
        extra: Vec<(String, Amf)>,
        /// `rtmp_relay_ssl_trusted_certificate`, for an rtmps:// URL.
        ca: Option<std::path::PathBuf>,
    },
    /// A cluster edge: the node that owns the stream.
    Owner(crate::cluster::OwnerWatch),
}

/// How long a pull lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// `static`: from start-up until the server drains.
    Static,
    /// While the local stream has players.
    Players,
}

pub struct Pull {
    pub key: StreamKey,
    pub source: Source,
    pub keep: Keep,
    pub reconnect: Duration,
    pub buffer: Duration,
}

/// Frames a new upstream may send before the old one ends; past this the
/// edge cuts over (a GOP or two of a normal stream).
const HOLD_MAX: usize = 2048;
/// How long the old upstream may go on after the owner changed.
const HOLD_TIME: Duration = Duration::from_secs(5);
/// After the owner's stream ended with no change of owner: how long to wait
/// for its release (or a move) before playing the same owner again.
const OWNER_SETTLE: Duration = Duration::from_secs(3);

struct Next {
    up: Handle,
    held: VecDeque<Message>,
    since: Instant,
}

pub async fn run(shared: Arc<Shared>, mut p: Pull) {
    let config = shared.config();
    let Some(app) = config
        .servers
        .get(p.key.server)
        .and_then(|s| s.app(&p.key.app))
        .cloned()
    else {
        return;
    };
    let core = config.servers[p.key.server].core.clone();
    let id = shared.next_id();
    let what = format!("{}/{}", p.key.app, p.key.name);
    if let Source::Owner(w) = &mut p.source {
        w.refresh().await;
    }
    let mut ingest: Option<Ingest> = None;
    let mut cur: Option<Handle> = None;
    let mut next: Option<Next> = None;
    let mut retry_at = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut row = PullStat::new(shared.clone(), id, p.key.clone());
    loop {
        row.sync(ingest.as_ref(), cur.as_ref().map(|h| &h.url), false);
        if shared.drain.phase() != crate::node::drain::Phase::Running {
            break;
        }
        if p.keep == Keep::Players && !super::Relays::wanted(&shared, &p.key) {
            debug!(stream = what, "pull: no players left");
            break;
        }
        if cur.is_none() && Instant::now() >= retry_at {
            if let Some(url) = target(&p.source) {
                let (extra, ca) = match &p.source {
                    Source::Fixed { extra, ca, .. } => (extra.clone(), ca.clone()),
                    Source::Owner(_) => (vec![], None),
                };
                match upstream::start(&url, extra, ca.as_deref(), p.buffer.as_millis() as u32).await
                {
                    Ok(h) => {
                        info!(stream = what, from = %crate::redact::args(&url.tc_url()), "pull: playing upstream");
                        match ingest.as_mut() {
                            Some(i) => i.switch(),
                            None => {
                                let who = PublisherId {
                                    id,
                                    addr: std::net::Ipv4Addr::LOCALHOST.into(),
                                    relay: true,
                                };
                                match shared.registry.publish(
                                    &p.key,
                                    core.out_queue,
                                    who,
                                    Takeover::Off,
                                ) {
                                    Ok((stream, _)) => {
                                        ingest = Some(Ingest::new(
                                            stream,
                                            id,
                                            core.chunk_size,
                                            app.gop_cache,
                                            app.interleave,
                                        ))
                                    }
                                    Err(_) => {
                                        info!(
                                            stream = what,
                                            "pull: the stream is published here; not pulling"
                                        );
                                        break;
                                    }
                                }
                            }
                        }
                        cur = Some(h);
                    }
                    Err(e) => {
                        warn!(
                            stream = what,
                            "pull failed: {e:#}; retrying in {:?}", p.reconnect
                        );
                        retry_at = Instant::now() + p.reconnect;
                    }
                }
            }
        }
        tokio::select! {
            ev = next_event(&mut cur) => match ev {
                Event::Media(m) => {
                    if let Some(i) = ingest.as_mut() {
                        i.accept(m);
                    }
                }
                Event::Ended(why) => {
                    let ended = cur.take().map(|h| h.url.addr());
                    if let Some(n) = next.take() {
                        info!(stream = what, to = %n.up.url.addr(), "pull: {why}; continuing from the new upstream");
                        cut_over(ingest.as_mut(), n.held);
                        cur = Some(n.up);
                        continue;
                    }
                    match &mut p.source {
                        Source::Fixed { .. } => {
                            info!(stream = what, "pull: {why}; reconnecting in {:?}", p.reconnect);
                            if let Some(i) = ingest.take() {
                                i.stream.unpublish(id);
                            }
                            retry_at = Instant::now() + p.reconnect;
                        }
                        Source::Owner(w) => {
                            // The owner may have changed an instant ago,
                            // before the notification reached us: ask.
                            w.refresh().await;
                            if w.current().is_none() {
                                info!(stream = what, "pull: {why}; the stream has no owner any more");
                                if let Some(i) = ingest.take() {
                                    i.stream.unpublish(id);
                                }
                            } else if w.url().map(|u| u.addr()) == ended {
                                // Its stream ended on the same owner: its
                                // release is probably on its way to the
                                // directory. Wait for it (the change feed
                                // wakes us) before asking the owner again.
                                info!(stream = what, "pull: {why}; waiting for the owner's next move");
                                retry_at = Instant::now() + OWNER_SETTLE;
                            } else {
                                info!(stream = what, "pull: {why}; following the owner");
                                retry_at = Instant::now();
                            }
                        }
                    }
                }
            },
            ev = next_event_held(&mut next) => match ev {
                Event::Media(m) => {
                    let full = next.as_mut().is_some_and(|n| {
                        n.held.push_back(m);
                        n.held.len() > HOLD_MAX || n.since.elapsed() > HOLD_TIME
                    });
                    if let Some(n) = next.take_if(|_| full) {
                        warn!(stream = what, "pull: the old upstream did not end; cutting over");
                        cut_over(ingest.as_mut(), n.held);
                        cur = Some(n.up);
                    }
                }
                Event::Ended(why) => {
                    debug!(stream = what, "pull: next upstream ended: {why}");
                    next = None;
                }
            },
            owner = owner_changed(&mut p.source) => {
                let Some(url) = owner else {
                    // Released (or now ours): a stream with no upstream
                    // left has ended here too.
                    if cur.is_none() && next.is_none() {
                        if let Some(i) = ingest.take() {
                            info!(stream = what, "pull: the stream has no owner any more");
                            i.stream.unpublish(id);
                        }
                    }
                    continue;
                };
                let same = |h: &Option<Handle>| h.as_ref().is_some_and(|h| h.url.addr() == url.addr());
                if same(&cur) || next.as_ref().is_some_and(|n| n.up.url.addr() == url.addr()) {
                    continue;
                }
                if cur.is_none() {
                    retry_at = Instant::now();
                    continue;
                }
                match upstream::start(&url, vec![], None, p.buffer.as_millis() as u32).await {
                    Ok(up) => {
                        info!(stream = what, to = %url.addr(), "pull: owner moved; opening the new upstream");
                        next = Some(Next { up, held: VecDeque::new(), since: Instant::now() });
                    }
                    Err(e) => warn!(stream = what, "pull: cannot reach the new owner yet: {e:#}"),
                }
            }
            _ = tick.tick() => row.sync(ingest.as_ref(), cur.as_ref().map(|h| &h.url), true),
        }
    }
    drop(cur);
    drop(next);
    if let Some(i) = ingest {
        i.stream.unpublish(id);
        info!(
            stream = what,
            frames = i.frames,
            bytes = i.counters.bytes_in,
            "pull: stopped"
        );
    }
    shared.registry.release(&p.key);
    super::Relays::pull_ended(&shared, &p.key);
}

/// Feeds what the new upstream sent while the old one finished, from its
/// first keyframe (sequence headers and metadata before it too).
fn cut_over(ingest: Option<&mut Ingest>, held: VecDeque<Message>) {
    let Some(i) = ingest else { return };
    i.switch();
    for m in held {
        i.accept(m);
    }
}

async fn next_event(cur: &mut Option<Handle>) -> Event {
    match cur {
        Some(h) => h.next().await,
        None => std::future::pending().await,
    }
}

async fn next_event_held(next: &mut Option<Next>) -> Event {
    match next {
        Some(n) => n.up.next().await,
        None => std::future::pending().await,
    }
}

/// The URL to pull from now, if any.
fn target(source: &Source) -> Option<RtmpUrl> {
    match source {
        Source::Fixed { url, .. } => Some(url.clone()),
        Source::Owner(w) => w.url(),
    }
}

/// Resolves when an edge's owner changes, with the new owner's URL.
async fn owner_changed(source: &mut Source) -> Option<RtmpUrl> {
    match source {
        Source::Fixed { .. } => std::future::pending().await,
        Source::Owner(w) => {
            w.changed().await;
            w.url()
        }
    }
}
