//! `sluice play`: plays a stream and writes what the server sends as FLV.

use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::conn::{status_code, ClientConn};
use crate::flv;
use crate::rtmp::RtmpUrl;
use crate::rtmp::{Amf, Message, UserControl};

#[derive(Debug, Default, Clone)]
pub struct PlayStats {
    pub video_frames: u64,
    pub audio_frames: u64,
    pub keyframes: u64,
    pub bytes: u64,
    /// Time from sending `play` to the first media message.
    pub first_frame: Option<Duration>,
    /// Whether the first video frame was a keyframe (or sequence header).
    pub started_on_key: Option<bool>,
    /// Every `onStatus`/`onPlayStatus` code, in order.
    pub statuses: Vec<String>,
}

/// Something a player does during a play, at a time after it started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// `seek` to this many ms.
    Seek(f64),
    /// `pause` (true) or resume (false).
    Pause(bool),
}

pub struct PlayOptions {
    pub duration: Option<Duration>,
    /// Stop when the publisher leaves (StreamEOF / UnpublishNotify).
    pub until_unpublish: bool,
    /// Stop after this many video frames.
    pub max_video_frames: Option<u64>,
    /// `play`'s start argument (ms); live (-2000) when `None`.
    pub start: Option<f64>,
    /// Seeks and pauses, by time after `play` was sent.
    pub actions: Vec<(Duration, Action)>,
    /// The buffer length announced (SetBufferLength), ms; 3000 when `None`.
    pub buffer: Option<u32>,
}

/// Plays `url`, writing FLV to `out` when given.
pub async fn play<W: AsyncWrite + Unpin>(
    url: &str,
    mut out: Option<W>,
    opts: &PlayOptions,
) -> anyhow::Result<PlayStats> {
    let url = RtmpUrl::parse(url).map_err(anyhow::Error::msg)?;
    let mut conn = ClientConn::connect(&url, vec![]).await?;
    conn.play_from(
        &url.stream,
        opts.start.unwrap_or(-2000.0),
        opts.buffer.unwrap_or(3000),
    )
    .await?;
    let started = Instant::now();
    let t0 = tokio::time::Instant::now();
    let deadline = opts.duration.map(|d| t0 + d);
    let mut actions = opts.actions.clone();
    actions.sort_by_key(|a| a.0);
    let mut actions = actions.into_iter().peekable();
    let mut stats = PlayStats::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    if let Some(w) = out.as_mut() {
        w.write_all(&flv::file_header(true, true)).await?;
    }
    loop {
        let action_at = actions.peek().map(|a| t0 + a.0);
        let wake = match (deadline, action_at) {
            (Some(d), Some(a)) => Some(d.min(a)),
            (d, a) => d.or(a),
        };
        let now = tokio::time::Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            break;
        }
        // A due action goes first: `timeout_at` polls the read before its
        // deadline, so a player with a backlog would otherwise never get to it.
        if action_at.is_some_and(|a| a <= now) {
            if let Some((_, a)) = actions.next() {
                match a {
                    Action::Seek(ms) => conn.seek(ms).await?,
                    Action::Pause(on) => conn.pause(on).await?,
                }
            }
            continue;
        }
        let next = conn.next_message();
        let msg = match wake {
            Some(w) => match tokio::time::timeout_at(w, next).await {
                Ok(m) => m?,
                // The action is due: the top of the loop runs it.
                Err(_) if action_at == Some(w) => continue,
                Err(_) => break,
            },
            None => next.await?,
        };
        let Some(msg) = msg else { break };
        match &msg {
            Message::Audio {
                timestamp, payload, ..
            }
            | Message::Video {
                timestamp, payload, ..
            } => {
                let video = matches!(msg, Message::Video { .. });
                stats.first_frame.get_or_insert_with(|| started.elapsed());
                stats.bytes += payload.len() as u64;
                let tag = if video {
                    let info = flv::video_info(payload).ok();
                    let key = info.is_some_and(|i| i.keyframe || i.sequence_header);
                    stats.started_on_key.get_or_insert(key);
                    if info.is_some_and(|i| !i.sequence_header) {
                        stats.video_frames += 1;
                        if info.is_some_and(|i| i.keyframe) {
                            stats.keyframes += 1;
                        }
                    }
                    flv::TAG_VIDEO
                } else {
                    if flv::audio_info(payload).is_ok_and(|i| !i.sequence_header) {
                        stats.audio_frames += 1;
                    }
                    flv::TAG_AUDIO
                };
                flv::write_tag(tag, *timestamp, payload, &mut buf);
            }
            Message::Data {
                timestamp,
                values,
                payload,
                ..
            } => {
                if values.first().and_then(Amf::as_str) == Some("onPlayStatus") {
                    let code = values
                        .get(1)
                        .and_then(|o| o.get("code"))
                        .and_then(Amf::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let done = code == "NetStream.Play.Complete";
                    stats.statuses.push(code);
                    if done {
                        break;
                    }
                    continue;
                }
                // Only real script data goes to the file, not |RtmpSampleAccess.
                if values
                    .first()
                    .and_then(Amf::as_str)
                    .is_some_and(|n| !n.starts_with('|'))
                {
                    flv::write_tag(flv::TAG_SCRIPT, *timestamp, payload, &mut buf);
                }
            }
            Message::UserControl(UserControl::StreamEof(_)) if opts.until_unpublish => break,
            _ => {
                if let Some(code) = status_code(&msg) {
                    stats.statuses.push(code.clone());
                    match code.as_str() {
                        "NetStream.Play.StreamNotFound" | "NetStream.Play.Failed" => {
                            bail!("play failed: {code}")
                        }
                        "NetStream.Play.UnpublishNotify" | "NetStream.Play.Stop"
                            if opts.until_unpublish =>
                        {
                            break
                        }
                        _ => {}
                    }
                }
            }
        }
        if buf.len() >= 32 * 1024 {
            if let Some(w) = out.as_mut() {
                w.write_all(&buf).await?;
            }
            buf.clear();
        }
        if opts
            .max_video_frames
            .is_some_and(|m| stats.video_frames >= m)
        {
            break;
        }
    }
    if let Some(w) = out.as_mut() {
        w.write_all(&buf).await?;
        w.flush().await?;
    }
    Ok(stats)
}

/// Runs `players` players of `url` concurrently with the full decoder, for
/// `duration` or until the publisher leaves (`until_unpublish`). Tests use
/// it to check every frame; `sluice bench` is the lighter load generator.
pub async fn play_many(
    url: &str,
    players: usize,
    duration: Duration,
    until_unpublish: bool,
) -> Vec<anyhow::Result<PlayStats>> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..players {
        let url = url.to_owned();
        set.spawn(async move {
            let opts = PlayOptions {
                duration: Some(duration),
                until_unpublish,
                max_video_frames: None,
                start: None,
                actions: Vec::new(),
                buffer: None,
            };
            play::<tokio::io::Sink>(&url, None, &opts).await
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.map_err(anyhow::Error::from).and_then(|r| r));
    }
    out
}
