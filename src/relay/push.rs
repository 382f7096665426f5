//! A push: republishes a local stream on another server, for as long as
//! it is published here.
//!
//! The push reads the stream's ring like a recorder does (it never holds
//! the publisher back) and publishes with Sluice's own client, announcing
//! Go Away and Enhanced RTMP Reconnect. When its target drains, it moves
//! the way `sluice publish` does: it keeps sending to the old connection up
//! to the next keyframe, opens the same URL again (or the ReconnectRequest's
//! `tcUrl`), replays metadata and sequence headers, and goes on from that
//! keyframe there. A broken connection is reopened after 250 ms, and after
//! `push_reconnect` when that fails;
//! it resumes at a keyframe.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tracing::{info, warn};

use super::RelayTarget;
use crate::client::conn::ClientConn;
use crate::client::publish::{open_with, poll_signals, resolve, send_tag, Headers, Signal};
use crate::client::RtmpUrl;
use crate::flv::{Tag, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use crate::live::{Delivery, Frame, FrameKind, Snapshot, Stream, StreamKey};

/// The first retry after a push lost an established connection (a node
/// lost, a connection reset): quick, since the target, or the node that
/// replaces it, usually answers at once; `push_reconnect` applies after a
/// failed attempt.
const QUICK_RETRY: Duration = Duration::from_millis(250);

pub struct Push {
    key: StreamKey,
    stream: Arc<Stream>,
    target: RelayTarget,
    reconnect: Duration,
    snap: Snapshot,
    rx: broadcast::Receiver<Delivery>,
}

impl Push {
    /// Joins the stream's ring now, on the caller's task: the publisher's
    /// first frames (its first keyframe above all) may follow at once, and
    /// a push that joined later, when its task first ran, would start a
    /// whole GOP late.
    pub fn new(
        key: StreamKey,
        stream: Arc<Stream>,
        target: RelayTarget,
        reconnect: Duration,
    ) -> Push {
        let (snap, rx) = stream.subscribe_quiet();
        Push {
            key,
            stream,
            target,
            reconnect,
            snap,
            rx,
        }
    }
}

fn tag(f: &Frame) -> Tag {
    Tag {
        tag_type: match f.kind {
            FrameKind::Audio => TAG_AUDIO,
            FrameKind::Video => TAG_VIDEO,
            FrameKind::Data => TAG_SCRIPT,
        },
        timestamp: f.timestamp,
        data: f.payload(),
    }
}

async fn open(url: &RtmpUrl, target: &RelayTarget) -> anyhow::Result<ClientConn> {
    open_with(url, target.connect_fields(), target.trusted_ca.as_deref()).await
}

pub async fn run(p: Push) {
    let Push { snap, mut rx, .. } = p;
    let url = p.target.url_for(&p.key.name);
    let what = format!(
        "{}/{} -> {}",
        p.key.app,
        p.key.name,
        crate::redact::args(&p.target.url)
    );
    let mut headers = Headers::default();
    for f in snap.headers() {
        headers.remember(&tag(f));
    }
    let mut conn: Option<ClientConn> = None;
    // Start (and restart) at a boundary, with the headers first.
    let mut resync = true;
    let mut retry_at = Instant::now();
    let mut move_to: Option<RtmpUrl> = None;
    let (mut frames, mut moves) = (0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        if conn.is_none() && Instant::now() >= retry_at {
            match open(&url, &p.target).await {
                Ok(c) => {
                    info!(push = what, "push: publishing");
                    conn = Some(c);
                    resync = true;
                }
                Err(e) => {
                    warn!(
                        push = what,
                        "push failed: {e:#}; retrying in {:?}", p.reconnect
                    );
                    retry_at = Instant::now() + p.reconnect;
                }
            }
        }
        let d = tokio::select! {
            d = rx.recv() => d,
            _ = tick.tick() => {
                let mut lost = false;
                if let Some(c) = conn.as_mut() {
                    check(c, &url, &mut move_to, &mut lost);
                }
                if lost {
                    warn!(push = what, "push connection lost; reconnecting");
                    conn = None;
                    retry_at = Instant::now() + p.reconnect.min(QUICK_RETRY);
                }
                continue;
            }
        };
        let f = match d {
            Ok(Delivery::Frame(f)) => f,
            Ok(Delivery::PublishStart) => continue,
            Ok(Delivery::PublishStop) | Err(RecvError::Closed) => {
                if p.stream.is_publishing() {
                    continue;
                }
                break;
            }
            Err(RecvError::Lagged(n)) => {
                warn!(
                    push = what,
                    missed = n,
                    "push fell behind; resuming at a keyframe"
                );
                resync = true;
                continue;
            }
        };
        let t = tag(&f);
        let boundary = headers.is_boundary(&t);
        headers.remember(&t);
        let Some(c) = conn.as_mut() else { continue };
        let mut lost = false;
        check(c, &url, &mut move_to, &mut lost);
        if lost {
            warn!(push = what, "push connection lost; reconnecting");
            conn = None;
            retry_at = Instant::now() + p.reconnect.min(QUICK_RETRY);
            continue;
        }
        if boundary {
            if let Some(target) = move_to.take() {
                match open(&target, &p.target).await {
                    Ok(mut new) => {
                        headers.replay(&mut new, &t);
                        if let Some(old) = conn.replace(new) {
                            old.abandon().await;
                        }
                        moves += 1;
                        info!(push = what, "push: moved after Go Away");
                    }
                    // Keep sending here; try again at the next keyframe.
                    Err(e) => {
                        warn!(push = what, "push cannot move yet: {e:#}");
                        move_to = Some(target);
                    }
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        if resync {
            if !boundary {
                continue;
            }
            headers.replay(c, &t);
            resync = false;
        }
        send_tag(c, &t);
        frames += 1;
        // Write in batches: whatever else is already in the ring goes out
        // with this frame.
        if rx.is_empty() && c.flush().await.is_err() {
            warn!(push = what, "push write failed; reconnecting");
            conn = None;
            retry_at = Instant::now() + p.reconnect.min(QUICK_RETRY);
        }
    }
    if let Some(mut c) = conn {
        let _ = c.flush().await;
        let _ = c.unpublish(&url.stream).await;
    }
    info!(push = what, frames, moves, "push: stopped");
}

/// Reads what the target sent: a Go Away or ReconnectRequest arms a move.
fn check(c: &mut ClientConn, url: &RtmpUrl, move_to: &mut Option<RtmpUrl>, lost: &mut bool) {
    match poll_signals(c) {
        Ok(Some(Signal::Move(tc))) if move_to.is_none() => {
            let next = match tc {
                Some(t) => resolve(url, &t),
                None => url.clone(),
            };
            info!(to = %crate::redact::args(&next.tc_url()), "push target asked us to move; moving at the next keyframe");
            *move_to = Some(next);
        }
        Ok(_) => {}
        Err(_) => *lost = true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::MediaInfo;
    use crate::live::stream::{PublisherId, Takeover};

    /// The publisher's first keyframe can be pushed before a spawned push
    /// task first runs; the push must have joined the ring already.
    #[test]
    fn a_push_sees_the_first_frame_pushed_after_it_is_made() {
        let stream = Arc::new(Stream::new("live", "m", 16));
        let who = PublisherId {
            id: 1,
            addr: std::net::Ipv4Addr::LOCALHOST.into(),
            relay: false,
        };
        stream.publish(who, Takeover::Off).unwrap();
        let key = StreamKey {
            server: 0,
            app: "live".into(),
            name: "m".into(),
        };
        let target = RelayTarget::parse(&["rtmp://127.0.0.1:1/live".into()], false).unwrap();
        let mut p = Push::new(key, stream.clone(), target, Duration::from_secs(3));
        let info = MediaInfo {
            keyframe: true,
            sequence_header: false,
            codec_id: 7,
            fourcc: None,
            track: 0,
        };
        let key_frame = Frame::new(
            FrameKind::Video,
            0,
            info,
            bytes::Bytes::from_static(&[0x17, 1, 0, 0, 0, 9]),
            4096,
            false,
        );
        stream.push(1, Arc::new(key_frame), true, true);
        match p.rx.try_recv() {
            Ok(Delivery::Frame(f)) => assert!(f.is_video_key()),
            _ => panic!("the push missed the first keyframe"),
        }
    }
}
