//! `sluice publish`: sends an FLV file or stdin to a server, paced by the
//! tags' timestamps so a file plays out in real time, and follows Go Away.
//!
//! The client announces `supportsGoAway: true` and `capsEx` with the
//! Reconnect bit. When the server sends Go Away (message type 32) or an
//! Enhanced RTMP `NetConnection.Connect.ReconnectRequest`, it keeps sending
//! to the old server up to the next video keyframe (the next audio frame for
//! audio-only input), publishes the same name on the next URL, sends the
//! metadata and sequence headers there, resumes from that keyframe, and
//! drops the old connection without FCUnpublish/deleteStream. No frame is
//! sent twice or skipped. An unexpected disconnect (a node lost) reconnects
//! at once to the next URL, going round the list with short pauses, and
//! replays the current GOP from its keyframe there, so a player of the new
//! server misses only what died in the old server's socket; when the GOP
//! is too large to keep, it resumes at the next keyframe and counts the
//! frames in between lost.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tracing::{info, warn};

use super::conn::{status_code, ClientConn};
use crate::flv::{self, Anchor, Configs, FlvParser, Media, Tag, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use crate::rtmp::message::types;
use crate::rtmp::RtmpUrl;
use crate::rtmp::{amf, Amf, Message};

#[derive(Debug, Default, Clone)]
pub struct PublishStats {
    /// Audio and video frames sent (sequence headers included).
    pub frames: u64,
    pub bytes: u64,
    /// Moves to another connection after Go Away / ReconnectRequest.
    pub moves: u64,
    /// Frames not delivered because a connection broke unexpectedly.
    pub lost: u64,
    /// Reconnects after unexpected disconnects.
    pub reconnects: u64,
}

/// What arrived from the server that matters to a publisher.
pub(crate) enum Signal {
    Move(Option<String>),
}

/// Publishes the FLV read from `input` to `urls[0]`, moving along `urls`
/// (wrapping; the same URL when there is one) when asked to.
pub async fn publish<R: AsyncRead + Unpin>(
    mut input: R,
    urls: &[String],
    pace: bool,
) -> anyhow::Result<PublishStats> {
    if urls.is_empty() {
        bail!("no URL to publish to");
    }
    let parsed: Vec<RtmpUrl> = urls
        .iter()
        .map(|u| RtmpUrl::parse(u).map_err(anyhow::Error::msg))
        .collect::<Result<_, _>>()?;
    let mut at = 0;
    let mut conn = open(&parsed[at]).await?;
    let mut parser = FlvParser::new();
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let mut stats = PublishStats::default();
    let start = tokio::time::Instant::now();
    let mut first_ts: Option<u32> = None;
    let mut headers = Headers::default();
    let mut move_to: Option<RtmpUrl> = None;
    // After an unexpected disconnect: skip to the next keyframe.
    let mut resync = false;
    // The tags since the last keyframe, to replay after an unexpected
    // disconnect; `None` once the GOP outgrew the bounds.
    let mut gop: Option<Vec<Tag>> = Some(Vec::new());
    let mut gop_bytes = 0usize;
    loop {
        let tag = match parser.next_tag(&mut buf).context("reading FLV input")? {
            Some(t) => t,
            None => {
                if conn.flush().await.is_err() {
                    // reported on the next write
                }
                if input.read_buf(&mut buf).await? == 0 {
                    break;
                }
                continue;
            }
        };
        if pace {
            let base = *first_ts.get_or_insert(tag.timestamp);
            let due = start + Duration::from_millis(tag.timestamp.wrapping_sub(base) as u64);
            if due > tokio::time::Instant::now() {
                let _ = conn.flush().await;
                tokio::time::sleep_until(due).await;
            }
        }
        match poll_signals(&mut conn) {
            Ok(Some(Signal::Move(tc_url))) if move_to.is_none() => {
                let next = match tc_url {
                    Some(t) => resolve(&parsed[at], &t),
                    None => parsed[(at + 1) % parsed.len()].clone(),
                };
                info!(
                    to = next.tc_url(),
                    "server asked us to move; moving at the next keyframe"
                );
                move_to = Some(next);
            }
            Ok(_) => {}
            Err(e) => {
                warn!("connection lost: {e:#}");
                (conn, at) = reconnect(&parsed, at, &mut stats).await?;
                move_to = None;
                match gop.as_deref() {
                    Some([first, rest @ ..]) => {
                        headers.replay(&mut conn, first);
                        for t in rest {
                            send_tag(&mut conn, t);
                        }
                        info!(frames = rest.len() + 1, "replayed the current GOP");
                    }
                    _ => resync = true,
                }
            }
        }
        let boundary = headers.is_boundary(&tag);
        if boundary {
            gop = Some(Vec::new());
            gop_bytes = 0;
        }
        if let Some(g) = gop.as_mut() {
            if tag.tag_type != TAG_SCRIPT {
                gop_bytes += tag.data.len();
                g.push(tag.clone());
            }
            if g.len() > GOP_MAX_TAGS || gop_bytes > GOP_MAX_BYTES {
                gop = None;
            }
        }
        headers.remember(&tag);
        if let Some(target) = move_to.take() {
            if boundary {
                match open(&target).await {
                    Ok(mut new) => {
                        headers.replay(&mut new, &tag);
                        let old = std::mem::replace(&mut conn, new);
                        old.abandon().await;
                        at = parsed
                            .iter()
                            .position(|u| u.addr() == target.addr())
                            .unwrap_or(at);
                        stats.moves += 1;
                        info!(to = %crate::redact::args(&target.tc_url()), "moved");
                    }
                    Err(e) => {
                        // Keep streaming here; try again at the next boundary.
                        warn!(
                            "cannot move to {}: {e:#}",
                            crate::redact::args(&target.tc_url())
                        );
                        move_to = Some(target);
                    }
                }
            } else {
                move_to = Some(target);
            }
        }
        if resync {
            if boundary {
                headers.replay(&mut conn, &tag);
                resync = false;
            } else {
                if tag.tag_type != TAG_SCRIPT {
                    stats.lost += 1;
                }
                continue;
            }
        }
        send_tag(&mut conn, &tag);
        if tag.tag_type != TAG_SCRIPT {
            stats.frames += 1;
            stats.bytes += tag.data.len() as u64;
        }
    }
    let name = conn.url.stream.clone();
    conn.unpublish(&name).await?;
    Ok(stats)
}

/// Connects to `url` announcing Go Away and Reconnect support, and starts
/// publishing its stream name.
async fn open(url: &RtmpUrl) -> anyhow::Result<ClientConn> {
    open_with(url, vec![], None).await
}

/// [`open`] with more fields in the connect object (a push relay's).
pub(crate) async fn open_with(
    url: &RtmpUrl,
    extra: Vec<(String, Amf)>,
    ca: Option<&std::path::Path>,
) -> anyhow::Result<ClientConn> {
    let mut caps = vec![
        ("supportsGoAway".to_owned(), Amf::Boolean(true)),
        ("capsEx".to_owned(), Amf::Number(1.0)),
    ];
    caps.extend(extra);
    let mut conn = ClientConn::connect_trusting(url, caps, ca).await?;
    conn.publish(&url.stream, "live").await?;
    Ok(conn)
}

/// Largest GOP kept for a replay after an unexpected disconnect.
const GOP_MAX_TAGS: usize = 4096;
const GOP_MAX_BYTES: usize = 32 << 20;
/// How long one reconnect attempt may take (a host that vanished answers
/// nothing at all).
const ATTEMPT: Duration = Duration::from_secs(3);

/// Reconnects after an unexpected disconnect: the next URL at once (the
/// one that failed is likely down), then round the list; after each round
/// with no answer, a pause growing from 250 ms to 4 s; 20 tries.
async fn reconnect(
    urls: &[RtmpUrl],
    at: usize,
    stats: &mut PublishStats,
) -> anyhow::Result<(ClientConn, usize)> {
    let mut pause = Duration::from_millis(250);
    for attempt in 0..20 {
        let i = (at + 1 + attempt) % urls.len();
        let r = tokio::time::timeout(ATTEMPT, open(&urls[i]))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")));
        match r {
            Ok(c) => {
                stats.reconnects += 1;
                info!(to = %crate::redact::args(&urls[i].tc_url()), "reconnected");
                return Ok((c, i));
            }
            Err(e) => warn!(
                "reconnect to {} failed: {e:#}",
                crate::redact::args(&urls[i].tc_url())
            ),
        }
        if (attempt + 1) % urls.len() == 0 {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(4));
        }
    }
    bail!("could not reconnect after 20 attempts")
}

pub(crate) fn poll_signals(conn: &mut ClientConn) -> anyhow::Result<Option<Signal>> {
    let mut sig = None;
    for m in conn.poll_incoming()? {
        match &m {
            Message::GoAway => sig = Some(Signal::Move(None)),
            _ if status_code(&m).as_deref() == Some("NetConnection.Connect.ReconnectRequest") => {
                let tc = match &m {
                    Message::Command { command, .. } => command
                        .args
                        .first()
                        .and_then(|i| i.get("tcUrl"))
                        .and_then(Amf::as_str)
                        .map(str::to_owned),
                    _ => None,
                };
                sig = Some(Signal::Move(tc));
            }
            _ => {}
        }
    }
    Ok(sig)
}

/// Resolves a ReconnectRequest `tcUrl` (absolute, `//host/app` or
/// `/app`) against the current URL; the stream name stays the same.
pub fn resolve(current: &RtmpUrl, tc_url: &str) -> RtmpUrl {
    let abs = if tc_url.starts_with("rtmp://") || tc_url.starts_with("rtmps://") {
        tc_url.to_owned()
    } else if let Some(rest) = tc_url.strip_prefix("//") {
        format!("{}://{rest}", current.scheme())
    } else if tc_url.starts_with('/') {
        format!("{}://{}{tc_url}", current.scheme(), current.addr())
    } else {
        current.tc_url()
    };
    RtmpUrl::parse(&format!("{}/{}", abs.trim_end_matches('/'), current.stream))
        .unwrap_or_else(|_| current.clone())
}

pub(crate) fn send_tag(conn: &mut ClientConn, tag: &Tag) {
    match tag.tag_type {
        TAG_AUDIO => conn.queue_media(types::AUDIO, tag.timestamp, &tag.data),
        TAG_VIDEO => conn.queue_media(types::VIDEO, tag.timestamp, &tag.data),
        TAG_SCRIPT => conn.queue_media(types::DATA_AMF0, tag.timestamp, &set_data_frame(&tag.data)),
        _ => {}
    }
}

/// Metadata and sequence headers seen so far, replayed on a new connection.
#[derive(Default)]
pub(crate) struct Headers {
    meta: Option<Tag>,
    /// Every track's decoder configuration.
    configs: Configs<Tag>,
    seen_video: bool,
    anchor: Anchor,
}

impl Headers {
    pub(crate) fn remember(&mut self, tag: &Tag) {
        match tag.tag_type {
            TAG_SCRIPT => self.meta = Some(tag.clone()),
            TAG_VIDEO | TAG_AUDIO => {
                let media = if tag.tag_type == TAG_VIDEO {
                    Media::Video
                } else {
                    Media::Audio
                };
                match flv::config_key(media, &tag.data) {
                    Some(key) => self.configs.insert(key, tag.data.len(), tag.clone()),
                    // Coded video: from now on only keyframes are starts. (A
                    // video configuration alone is not: audio that comes
                    // before the first keyframe is still a place to start,
                    // so a push made at publish time relays it.)
                    None if media == Media::Video => self.seen_video = true,
                    None => {}
                }
            }
            _ => {}
        }
    }

    /// A place where a new connection can start decoding: a video keyframe,
    /// or any audio frame when the input has no video.
    pub(crate) fn is_boundary(&mut self, tag: &Tag) -> bool {
        match tag.tag_type {
            TAG_VIDEO => flv::video_info(&tag.data)
                .is_ok_and(|i| !i.sequence_header && self.anchor.is_start(i.keyframe, i.track)),
            TAG_AUDIO => {
                !self.seen_video && flv::audio_info(&tag.data).is_ok_and(|i| !i.sequence_header)
            }
            _ => false,
        }
    }

    /// Sends metadata and sequence headers (not `current` itself) first.
    pub(crate) fn replay(&self, conn: &mut ClientConn, current: &Tag) {
        for t in self.meta.iter().chain(self.configs.iter()) {
            if t != current {
                let mut t = t.clone();
                t.timestamp = current.timestamp;
                send_tag(conn, &t);
            }
        }
    }
}

/// Script tags carry `onMetaData`; RTMP publishers send it behind
/// `@setDataFrame` so the server keeps it for late joiners.
fn set_data_frame(data: &Bytes) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 16);
    amf::encode(&Amf::str("@setDataFrame"), &mut out);
    out.extend_from_slice(data);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_request_tc_url_resolution() {
        let cur = RtmpUrl::parse("rtmp://10.0.0.1:1935/live/cam?k=1").unwrap();
        assert_eq!(
            resolve(&cur, "rtmp://b.example:1936/live").tc_url(),
            "rtmp://b.example:1936/live"
        );
        assert_eq!(
            resolve(&cur, "//192.0.2.7/other").tc_url(),
            "rtmp://192.0.2.7:1935/other"
        );
        assert_eq!(
            resolve(&cur, "/realtimeapp").tc_url(),
            "rtmp://10.0.0.1:1935/realtimeapp"
        );
        assert_eq!(resolve(&cur, "/realtimeapp").stream, "cam?k=1");
    }
}
