//! Runs a [`Segmenter`] against a stream's ring and the filesystem. Like a
//! recorder, it is one more reader of the ring: the publisher never waits
//! for the disk, and a segmenter that falls a ring behind restarts at the
//! next keyframe.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

use super::segmenter::{HlsConf, HlsOp, Segmenter};
use super::ts::VideoCodec;
use crate::flv::{body, Codec, Media, Packet};
use crate::live::{Delivery, Frame, FrameKind, Stream};

/// Called after each playlist write, with its path.
pub type Written = Box<dyn Fn(&Path) + Send + Sync>;

/// Largest playlist `hls_continuous` reads back.
const PLAYLIST_MAX: u64 = 1 << 20;

pub fn spawn(stream: Arc<Stream>, conf: HlsConf, name: String, written: Written) {
    let (_, mut rx) = stream.subscribe_quiet();
    tokio::spawn(async move {
        let mut seg = Segmenter::new(conf, &name);
        if let Some(text) = read_small(&seg.playlist_path()).await {
            seg.restore(&text);
        }
        let mut ops = Vec::new();
        let mut warned = false;
        let mut skipping = false;
        info!(stream = name, playlist = %seg.playlist_path().display(), "hls");
        loop {
            match rx.recv().await {
                Ok(Delivery::Frame(f)) => {
                    if skipping && !(f.kind == FrameKind::Video && f.info.keyframe) {
                        continue;
                    }
                    skipping = false;
                    if let Err(e) = feed(&mut seg, &f, &mut ops) {
                        if !warned {
                            warn!(stream = name, "hls: frame skipped: {e}");
                            warned = true;
                        }
                    }
                }
                Ok(Delivery::PublishStart) | Ok(Delivery::PublishStop) | Err(RecvError::Closed) => {
                    seg.end(&mut ops);
                    let _ = run(&mut ops, &written).await;
                    return;
                }
                Err(RecvError::Lagged(n)) => {
                    warn!(
                        stream = name,
                        missed = n,
                        "hls fell behind the stream; skipping to the next keyframe"
                    );
                    skipping = true;
                }
            }
            if let Err(e) = run(&mut ops, &written).await {
                warn!(stream = name, "hls stopped: {e}");
                return;
            }
        }
    });
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Feeds the stream's default tracks (id 0: the only ones of a legacy
/// stream, the first of an Enhanced RTMP multitrack one) to the segmenter;
/// other tracks are not in the HLS output.
fn feed(seg: &mut Segmenter, f: &Frame, ops: &mut Vec<HlsOp>) -> Result<(), String> {
    let media = match f.kind {
        FrameKind::Video => Media::Video,
        FrameKind::Audio => Media::Audio,
        FrameKind::Data => return Ok(()),
    };
    let p = f.payload();
    let m = body::parse(media, &p).map_err(|e| e.to_string())?;
    let Some(u) = m.units().find_map(|u| u.ok().filter(|u| u.track == 0)) else {
        return Ok(());
    };
    let ts = f.timestamp as u64;
    match media {
        Media::Video => {
            let codec = match u.codec {
                Codec::Legacy(7) | Codec::FourCc([b'a', b'v', b'c', b'1']) => VideoCodec::H264,
                Codec::Legacy(12) | Codec::FourCc([b'h', b'v', b'c', b'1']) => VideoCodec::Hevc,
                _ => return Err("HLS carries H.264 and HEVC video only".into()),
            };
            match u.packet {
                Packet::Config => seg.video_config(codec, u.data).map_err(|e| e.to_string()),
                Packet::Coded => seg
                    .video(u.data, ts, u.cts, m.is_key(), wall_ms(), ops)
                    .map_err(|e| e.to_string()),
                _ => Ok(()),
            }
        }
        Media::Audio => {
            if !matches!(
                u.codec,
                Codec::Legacy(10) | Codec::FourCc([b'm', b'p', b'4', b'a'])
            ) {
                return Err("HLS carries AAC audio only".into());
            }
            match u.packet {
                Packet::Config => seg.audio_config(u.data).map_err(|e| e.to_string()),
                Packet::Coded => seg
                    .audio(u.data, ts, wall_ms(), ops)
                    .map_err(|e| e.to_string()),
                _ => Ok(()),
            }
        }
    }
}

/// Writes each file whole under a temporary name and renames it into place,
/// so web servers and players never read half a segment or playlist.
async fn run(ops: &mut Vec<HlsOp>, written: &Written) -> std::io::Result<()> {
    for op in ops.drain(..) {
        match op {
            HlsOp::Playlist(path) => written(&path),
            HlsOp::Write { path, data } => {
                if let Some(dir) = path.parent() {
                    tokio::fs::create_dir_all(dir).await?;
                }
                let tmp = tmp_name(&path);
                tokio::fs::write(&tmp, &data).await?;
                tokio::fs::rename(&tmp, &path).await?;
            }
            HlsOp::Remove(path) => {
                let _ = tokio::fs::remove_file(&path).await;
            }
        }
    }
    Ok(())
}

/// A playlist left on disk, if there is one of a sane size.
async fn read_small(path: &Path) -> Option<String> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    if meta.len() > PLAYLIST_MAX {
        return None;
    }
    tokio::fs::read_to_string(path).await.ok()
}

/// A temporary name unique to this write: the renditions of a ladder each
/// rewrite the same master playlist, and must not rename each other's
/// half-written file.
fn tmp_name(path: &Path) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}.tmp"));
    s.into()
}
