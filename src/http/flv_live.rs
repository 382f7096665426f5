//! HTTP-FLV: `GET /APP/NAME.flv` streams a live stream as one endless FLV
//! file (chunked transfer), for flv.js / mpegts.js and ffmpeg.
//!
//! A client is a player like any RTMP one: it joins the stream's ring with
//! the catch-up snapshot (metadata, sequence headers, the GOP so far), goes
//! through the same `PlayerFilter`, and the same slow-player policy applies:
//! a client a whole ring behind skips to the next keyframe, twice within
//! 10 s and it is dropped. Its body is fed through a small bounded channel,
//! so a client that stops reading costs the channel, not the server.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::flv;
use crate::live::player::PlayerFilter;
use crate::live::{Delivery, Frame, FrameKind, StreamKey};
use crate::node::Shared;

/// Body chunks queued per client before its feeder waits.
const QUEUE: usize = 64;
/// Size of the pieces a joining client's GOP is sent in.
const BURST_CHUNK: usize = 32 << 10;

pub async fn serve(shared: &Arc<Shared>, path: &str) -> Response {
    let Some((app, name)) = split(path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // The first RTMP server block with a live application of that name.
    let config = shared.config();
    let found = config.servers.iter().enumerate().find_map(|(i, s)| {
        s.apps
            .iter()
            .find(|a| a.name == app && a.live)
            .map(|a| (i, a.clone(), s.core.out_queue))
    });
    let Some((server, conf, queue)) = found else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let key = StreamKey {
        server,
        app: app.to_owned(),
        name: name.to_owned(),
    };
    if !shared.registry.get(&key).is_some_and(|s| s.is_publishing()) {
        return (StatusCode::NOT_FOUND, "stream not found\n").into_response();
    }
    let (stream, snap, mut rx) = shared.registry.subscribe(&key, queue);
    let (tx, body_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUE);
    let shared = shared.clone();
    info!(app, stream = name, "http-flv play");
    tokio::spawn(async move {
        let mut filter = PlayerFilter::new(conf.wait_key, conf.wait_video);
        let mut epoch: Option<u32> = None;
        let lap = queue.max(16).next_power_of_two();
        let mut out = BytesMut::new();
        out.extend_from_slice(&flv::file_header(true, true));
        for f in snap.headers() {
            tag(f, &mut epoch, &mut out);
        }
        // The GOP goes in pieces of about BURST_CHUNK: one buffer of a whole
        // GOP per client (half a megabyte at 4 Mbit/s) left malloc holding
        // that much per client after it was sent.
        let mut burst = Ok(());
        for f in &snap.gop {
            if filter.admit(f) {
                tag(f, &mut epoch, &mut out);
                if out.len() >= BURST_CHUNK {
                    burst = send(&tx, std::mem::take(&mut out).freeze(), &rx, lap).await;
                    if burst.is_err() {
                        break;
                    }
                }
            }
        }
        // `out_merge`, as for RTMP players: after a frame, wait out the
        // window without reading the ring, then take what gathered.
        let window = conf.out_merge.min(MAX_MERGE);
        // Each body chunk takes its buffer with it (`take`, not `split`):
        // a split leaves the rest of the allocation with `out`, and the
        // GOP burst's (about a second of media) then stayed with every
        // client for good: 660 KB per player at 4 Mbit/s.
        if burst.is_ok() {
            burst = send(&tx, std::mem::take(&mut out).freeze(), &rx, lap).await;
        }
        let reason = match burst {
            Err(r) => r,
            Ok(()) => loop {
                let d = rx.recv().await;
                if let Err(r) = take(d, &mut filter, &mut epoch, &mut out) {
                    break r;
                }
                if out.is_empty() {
                    continue;
                }
                if !window.is_zero() {
                    tokio::time::sleep(window).await;
                    let mut ended = None;
                    loop {
                        let d = match rx.try_recv() {
                            Ok(d) => Ok(d),
                            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                            Err(TryRecvError::Closed) => Err(RecvError::Closed),
                            Err(TryRecvError::Empty) => break,
                        };
                        if let Err(r) = take(d, &mut filter, &mut epoch, &mut out) {
                            ended = Some(r);
                            break;
                        }
                    }
                    if let Some(r) = ended {
                        // What the window gathered still goes out.
                        let _ = send(&tx, std::mem::take(&mut out).freeze(), &rx, lap).await;
                        break r;
                    }
                }
                if let Err(r) = send(&tx, std::mem::take(&mut out).freeze(), &rx, lap).await {
                    break r;
                }
            },
        };
        info!(
            app = key.app,
            stream = key.name,
            reason,
            dropped = filter.dropped,
            "http-flv closed"
        );
        stream.unsubscribe();
        drop(rx);
        shared.registry.release(&key);
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(body_rx));
    (
        [
            (header::CONTENT_TYPE, "video/x-flv"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
        .into_response()
}

/// The longest `out_merge` honoured (as for RTMP players).
const MAX_MERGE: std::time::Duration = std::time::Duration::from_secs(1);

/// Acts on one delivery: a frame the filter admits becomes a tag in `out`.
/// `Err` names why the play ends.
fn take(
    d: Result<Delivery, RecvError>,
    filter: &mut PlayerFilter,
    epoch: &mut Option<u32>,
    out: &mut BytesMut,
) -> Result<(), &'static str> {
    match d {
        Ok(Delivery::Frame(f)) => {
            if filter.admit(&f) {
                tag(&f, epoch, out);
            }
        }
        Ok(Delivery::PublishStart) => filter.restart(),
        Ok(Delivery::PublishStop) | Err(RecvError::Closed) => return Err("stream ended"),
        Err(RecvError::Lagged(n)) => {
            if let Err(e) = filter.on_lag(n, std::time::Instant::now()) {
                debug!("http-flv: {e}");
                return Err("slow player");
            }
        }
    }
    Ok(())
}

/// Queues body bytes for the client. While its queue is full (it is not
/// reading), the ring goes on without it; once the ring has lapped it twice
/// it is dropped, as a stalled RTMP player is.
async fn send(
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    b: Bytes,
    rx: &tokio::sync::broadcast::Receiver<Delivery>,
    lap: usize,
) -> Result<(), &'static str> {
    // The usual case, a client keeping up: no timer at all.
    let b = match tx.try_send(Ok(b)) {
        Ok(()) => return Ok(()),
        Err(mpsc::error::TrySendError::Closed(_)) => return Err("client left"),
        Err(mpsc::error::TrySendError::Full(b)) => b,
    };
    let fut = tx.send(b);
    tokio::pin!(fut);
    loop {
        tokio::select! {
            r = &mut fut => return r.map_err(|_| "client left"),
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                if rx.len() > 2 * lap {
                    return Err("slow player: stalled");
                }
            }
        }
    }
}

/// `/live/cam.flv` → (`live`, `cam`); `/a/b/cam.flv` → (`a/b`, `cam`).
fn split(path: &str) -> Option<(&str, &str)> {
    let p = path.strip_prefix('/')?.strip_suffix(".flv")?;
    let (app, name) = p.rsplit_once('/')?;
    (!app.is_empty() && !name.is_empty()).then_some((app, name))
}

/// Appends `f` as an FLV tag, timestamps starting at 0 for this client.
fn tag(f: &Frame, epoch: &mut Option<u32>, out: &mut BytesMut) {
    // Metadata and sequence headers go out at the current time (0 before
    // any media) without setting it: the first coded frame is time 0.
    let header = f.kind == FrameKind::Data || f.info.sequence_header;
    let ts = match (*epoch, header) {
        (Some(e), true) => f.timestamp.saturating_sub(e),
        (None, true) => 0,
        (_, false) => f.timestamp.wrapping_sub(*epoch.get_or_insert(f.timestamp)),
    };
    f.write_flv_tag(ts, out);
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths() {
        assert_eq!(super::split("/live/cam.flv"), Some(("live", "cam")));
        assert_eq!(super::split("/a/b/cam.flv"), Some(("a/b", "cam")));
        assert_eq!(super::split("/cam.flv"), None);
        assert_eq!(super::split("/live/.flv"), None);
    }
}
