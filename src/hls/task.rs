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
use crate::flv;
use crate::live::{Delivery, Frame, FrameKind, Stream};

pub fn spawn(stream: Arc<Stream>, conf: HlsConf, name: String) {
    let (_, mut rx) = stream.subscribe_quiet();
    tokio::spawn(async move {
        let mut seg = Segmenter::new(conf, &name);
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
                    let _ = run(&mut ops).await;
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
            if let Err(e) = run(&mut ops).await {
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

fn feed(seg: &mut Segmenter, f: &Frame, ops: &mut Vec<HlsOp>) -> Result<(), String> {
    let p = f.payload();
    let ts = f.timestamp as u64;
    match f.kind {
        FrameKind::Video => {
            let (codec, body, ptype, cts) = match (p.first().map(|b| b & 0x8f), f.info.fourcc) {
                // Legacy AVC: [type|7][packet type][cts 24][data].
                (Some(7), None) => (
                    VideoCodec::H264,
                    p.get(5..).unwrap_or_default(),
                    p.get(1).copied().unwrap_or(9),
                    flv::composition_offset(&p),
                ),
                (_, Some(fourcc)) if &fourcc == b"hvc1" => {
                    // Enhanced: [flags|type][fourcc][cts 24 for type 1][data].
                    let ptype = p[0] & 0x0f;
                    match ptype {
                        0 => (VideoCodec::Hevc, p.get(5..).unwrap_or_default(), 0, 0),
                        1 => (
                            VideoCodec::Hevc,
                            p.get(8..).unwrap_or_default(),
                            1,
                            p.get(5..8).map_or(0, |c| {
                                (((c[0] as i32) << 16 | (c[1] as i32) << 8 | c[2] as i32) << 8) >> 8
                            }),
                        ),
                        3 => (VideoCodec::Hevc, p.get(5..).unwrap_or_default(), 1, 0),
                        _ => return Ok(()),
                    }
                }
                _ => return Err("HLS carries H.264 and HEVC video only".into()),
            };
            match ptype {
                0 => seg.video_config(codec, body).map_err(|e| e.to_string()),
                1 => seg
                    .video(body, ts, cts, f.info.keyframe, wall_ms(), ops)
                    .map_err(|e| e.to_string()),
                _ => Ok(()),
            }
        }
        FrameKind::Audio => {
            if p.first().map(|b| b >> 4) != Some(10) {
                return Err("HLS carries AAC audio only".into());
            }
            match p.get(1) {
                Some(0) => seg.audio_config(&p[2..]).map_err(|e| e.to_string()),
                Some(1) => seg
                    .audio(&p[2..], ts, wall_ms(), ops)
                    .map_err(|e| e.to_string()),
                _ => Ok(()),
            }
        }
        FrameKind::Data => Ok(()),
    }
}

/// Writes each file whole under a temporary name and renames it into place,
/// so web servers and players never read half a segment or playlist.
async fn run(ops: &mut Vec<HlsOp>) -> std::io::Result<()> {
    for op in ops.drain(..) {
        match op {
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

fn tmp_name(path: &Path) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    s.into()
}
