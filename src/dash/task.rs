//! Runs a DASH [`Segmenter`] against a stream's ring and the filesystem,
//! as the HLS task does: one more reader of the ring, never holding the
//! publisher up; a packager that falls a ring behind restarts at the next
//! keyframe.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

use super::segmenter::{DashConf, DashOp, Media, Segmenter};
use crate::flv::{body, Codec, Media as Kind, Packet};
use crate::fmp4;
use crate::live::{Delivery, Frame, FrameKind, Stream};
use crate::rtmp::{amf, Amf};

/// Called after each manifest write, with its path.
pub type Written = Box<dyn Fn(&Path) + Send + Sync>;

pub fn spawn(stream: Arc<Stream>, conf: DashConf, name: String, written: Written) {
    let (snap, mut rx) = stream.subscribe_quiet();
    tokio::spawn(async move {
        let mut p = Packager {
            seg: Segmenter::new(conf, &name),
            media: Media::default(),
            meta: None,
            configs: Vec::new(),
            last_ts: 0,
            warned: false,
        };
        info!(stream = name, manifest = %p.seg.manifest_path().display(), "dash");
        let mut ops = Vec::new();
        for f in snap.headers() {
            p.feed(f, &name, &mut ops);
        }
        let mut skipping = false;
        loop {
            match rx.recv().await {
                Ok(Delivery::Frame(f)) => {
                    if skipping && !(f.kind == FrameKind::Video && f.info.keyframe) {
                        continue;
                    }
                    skipping = false;
                    p.feed(&f, &name, &mut ops);
                }
                Ok(Delivery::PublishStart) | Ok(Delivery::PublishStop) | Err(RecvError::Closed) => {
                    p.seg.end(p.last_ts, wall_ms(), &mut ops);
                    let _ = run(&mut ops, &written).await;
                    return;
                }
                Err(RecvError::Lagged(n)) => {
                    warn!(
                        stream = name,
                        missed = n,
                        "dash fell behind the stream; skipping to the next keyframe"
                    );
                    skipping = true;
                }
            }
            if let Err(e) = run(&mut ops, &written).await {
                warn!(stream = name, "dash stopped: {e}");
                return;
            }
        }
    });
}

struct Packager {
    seg: Segmenter,
    media: Media,
    meta: Option<Arc<Frame>>,
    configs: Vec<Arc<Frame>>,
    last_ts: u64,
    warned: bool,
}

impl Packager {
    fn feed(&mut self, f: &Arc<Frame>, name: &str, ops: &mut Vec<DashOp>) {
        if let Err(e) = self.try_feed(f, ops) {
            if !self.warned {
                warn!(stream = name, "dash: frame skipped: {e}");
                self.warned = true;
            }
        }
    }

    /// The default tracks (id 0) of the stream, as the HLS task takes them.
    fn try_feed(&mut self, f: &Arc<Frame>, ops: &mut Vec<DashOp>) -> Result<(), String> {
        let kind = match f.kind {
            FrameKind::Video => Kind::Video,
            FrameKind::Audio => Kind::Audio,
            FrameKind::Data => {
                self.meta = Some(f.clone());
                self.describe();
                return Ok(());
            }
        };
        let payload = f.payload();
        let m = body::parse(kind, &payload).map_err(|e| e.to_string())?;
        let Some(u) = m.units().find_map(|u| u.ok().filter(|u| u.track == 0)) else {
            return Ok(());
        };
        let ts = f.timestamp as u64;
        self.last_ts = self.last_ts.max(ts);
        let data = payload.slice_ref(u.data);
        match (kind, u.packet) {
            (Kind::Video, Packet::Config) => {
                let codec = match u.codec {
                    Codec::Legacy(7) | Codec::FourCc([b'a', b'v', b'c', b'1']) => {
                        fmp4::Codec::Avc(data)
                    }
                    Codec::Legacy(12) | Codec::FourCc([b'h', b'v', b'c', b'1']) => {
                        fmp4::Codec::Hevc(data)
                    }
                    Codec::FourCc([b'a', b'v', b'0', b'1']) => fmp4::Codec::Av1(data),
                    _ => return Err("DASH carries H.264, HEVC and AV1 video".into()),
                };
                self.configs.push(f.clone());
                self.describe();
                self.seg
                    .video_config(codec, self.media.width, self.media.height);
            }
            (Kind::Video, Packet::Coded) => {
                self.seg.video(data, ts, u.cts, m.is_key(), wall_ms(), ops)
            }
            (Kind::Audio, Packet::Config) => {
                if !matches!(
                    u.codec,
                    Codec::Legacy(10) | Codec::FourCc([b'm', b'p', b'4', b'a'])
                ) {
                    return Err("DASH carries AAC audio".into());
                }
                self.configs.push(f.clone());
                self.describe();
                let (rate, channels) = asc_rate(&data);
                self.media.sample_rate = rate;
                self.seg.set_media(self.media.clone());
                self.seg.audio_config(data, rate, channels);
            }
            (Kind::Audio, Packet::Coded) => self.seg.audio(data, ts, wall_ms(), ops),
            _ => {}
        }
        Ok(())
    }

    /// Width, height and frame rate from the configurations and metadata
    /// (as /stat shows them); bit rates from the metadata, as nginx-rtmp.
    fn describe(&mut self) {
        let d = crate::live::describe::describe(self.meta.as_deref(), self.configs.iter());
        self.media.width = d.video.width;
        self.media.height = d.video.height;
        self.media.frame_rate = d.video.frame_rate;
        if d.audio.sample_rate > 0 {
            self.media.sample_rate = d.audio.sample_rate;
        }
        self.media.channels = d.audio.channels;
        if let Some(values) = self
            .meta
            .as_ref()
            .and_then(|m| amf::decode_all(&m.payload()).ok())
        {
            let num = |k: &str| {
                values
                    .iter()
                    .find_map(|v| v.get(k))
                    .and_then(Amf::as_f64)
                    .unwrap_or(0.0) as u32
            };
            self.media.video_rate = num("videodatarate");
            self.media.audio_rate = num("audiodatarate");
        }
        self.seg.set_media(self.media.clone());
    }
}

/// Sample rate and channels of an AudioSpecificConfig.
fn asc_rate(asc: &Bytes) -> (u32, u32) {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    if asc.len() < 2 {
        return (0, 0);
    }
    let index = (((asc[0] & 7) << 1) | (asc[1] >> 7)) as usize;
    let channels = ((asc[1] >> 3) & 0x0f) as u32;
    (RATES.get(index).copied().unwrap_or(0), channels)
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Writes each file whole under a unique temporary name and renames it.
async fn run(ops: &mut Vec<DashOp>, written: &Written) -> std::io::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    for op in ops.drain(..) {
        match op {
            DashOp::Playlist(path) => written(&path),
            DashOp::Write { path, data } => {
                if let Some(dir) = path.parent() {
                    tokio::fs::create_dir_all(dir).await?;
                }
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut tmp = path.as_os_str().to_owned();
                tmp.push(format!(".{n}.tmp"));
                tokio::fs::write(&tmp, &data).await?;
                tokio::fs::rename(&tmp, &path).await?;
            }
            DashOp::Remove(path) => {
                let _ = tokio::fs::remove_file(&path).await;
            }
        }
    }
    Ok(())
}
