//! Indexes an FLV file: one pass over its tag headers (each tag's body is
//! skipped, not read), keeping where each audio/video tag is, its
//! timestamp and whether it is a keyframe, the first `onMetaData`, and the
//! first decoder header of each kind.
//!
//! Bounds: a tag's 24-bit size is checked against the file before it is
//! used; only the metadata and the headers are read whole, each at most
//! [`MAX_HEADER`]; a truncated last tag ends the index where the file
//! ends, with a note in the log.

use bytes::Bytes;
use tracing::warn;

use super::index::{Codec, Index, Kind, Sample, Track};
use super::source::ReadAt;
use super::{bad, VodError, MAX_SAMPLES};
use crate::flv::{self, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use crate::rtmp::{amf, Amf};

/// The largest metadata or decoder header read into memory.
pub const MAX_HEADER: usize = 1 << 20;

const AUDIO: u8 = 0;
const VIDEO: u8 = 1;
const DATA: u8 = 2;

pub fn index(src: &(impl ReadAt + ?Sized)) -> Result<Index, VodError> {
    let len = src.size();
    let mut head = [0u8; 9];
    src.read_exact_at(&mut head, 0)
        .or_else(|_| bad("not an FLV file: shorter than its header"))?;
    if &head[..3] != b"FLV" {
        return bad("not an FLV file (bad signature)");
    }
    let data = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) as u64;
    if !(9..=1024).contains(&data) {
        return bad(format!("FLV header claims its data starts at byte {data}"));
    }
    let mut ix = Index {
        format: "flv",
        tracks: vec![
            Track {
                kind: Kind::Audio,
                codec: Codec::Flv,
            },
            Track {
                kind: Kind::Video,
                codec: Codec::Flv,
            },
            Track {
                kind: Kind::Data,
                codec: Codec::Flv,
            },
        ],
        ..Default::default()
    };
    let mut have_header = [false; 2];
    let mut meta: Option<Vec<Amf>> = None;
    let mut off = data + 4;
    // 11 header bytes and enough of the body to classify it.
    let mut h = [0u8; 11 + 16];
    while off + 11 <= len {
        let n = src.read_at(&mut h, off)?;
        if n < 11 {
            break;
        }
        let tag_type = h[0] & 0x1F;
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]);
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body = off + 11;
        if body + size as u64 > len {
            warn!(
                offset = off,
                size, len, "flv: last tag truncated, played up to it"
            );
            break;
        }
        let filtered = h[0] & 0x20 != 0;
        let seen = &h[11..n.min(11 + size as usize)];
        let read_whole = || -> Result<Bytes, VodError> {
            if size as usize > MAX_HEADER {
                return bad(format!("flv: {size}-byte header or metadata tag"));
            }
            let mut b = vec![0u8; size as usize];
            src.read_exact_at(&mut b, body)?;
            Ok(Bytes::from(b))
        };
        let push = |track: u8, key: bool, ix: &mut Index| -> Result<(), VodError> {
            if ix.samples.len() >= MAX_SAMPLES {
                return bad(format!("flv: more than {MAX_SAMPLES} tags"));
            }
            ix.samples.push(Sample {
                offset: body,
                size,
                ts,
                cts: 0,
                track,
                key,
            });
            Ok(())
        };
        match tag_type {
            _ if filtered || size == 0 => {}
            TAG_VIDEO | TAG_AUDIO => {
                let (track, info) = if tag_type == TAG_VIDEO {
                    (VIDEO, flv::video_info(seen))
                } else {
                    (AUDIO, flv::audio_info(seen))
                };
                let (key, config) =
                    info.map_or((false, false), |i| (i.keyframe, i.sequence_header));
                let kind = if track == VIDEO {
                    Kind::Video
                } else {
                    Kind::Audio
                };
                if config && !have_header[track as usize] {
                    have_header[track as usize] = true;
                    ix.headers.push((kind, read_whole()?));
                } else {
                    // Audio has no keyframes: every frame is a place to start.
                    push(track, key || track == AUDIO, &mut ix)?;
                }
            }
            TAG_SCRIPT => {
                if meta.is_none() {
                    let b = read_whole()?;
                    match amf::decode_all(&b) {
                        Ok(v) if v.first().and_then(Amf::as_str) == Some("onMetaData") => {
                            meta = Some(v);
                        }
                        _ => push(DATA, false, &mut ix)?,
                    }
                } else {
                    push(DATA, false, &mut ix)?;
                }
            }
            _ => {}
        }
        off = body + size as u64 + 4;
    }
    if ix.samples.is_empty() {
        return bad("flv: no audio or video tags");
    }
    let meta_duration = meta
        .as_ref()
        .and_then(|m| m.get(1))
        .and_then(|o| o.get("duration"))
        .and_then(Amf::as_f64)
        .filter(|d| d.is_finite() && *d > 0.0);
    ix.finish();
    if let Some(d) = meta_duration {
        ix.duration_ms = (d * 1000.0) as u64;
    }
    ix.meta = with_duration(meta, ix.duration_ms);
    Ok(ix)
}

/// `onMetaData` with `duration` set (seconds), added when the file had
/// none or zero (a recording of a live stream).
pub fn with_duration(meta: Option<Vec<Amf>>, ms: u64) -> Vec<Amf> {
    let secs = Amf::Number(ms as f64 / 1000.0);
    let mut v = meta.unwrap_or_else(|| vec![Amf::str("onMetaData"), Amf::EcmaArray(Vec::new())]);
    if v.len() < 2 {
        v.push(Amf::EcmaArray(Vec::new()));
    }
    match &mut v[1] {
        Amf::Object(p) | Amf::EcmaArray(p) => match p.iter_mut().find(|(k, _)| k == "duration") {
            Some((_, d)) if d.as_f64().is_some_and(|d| d > 0.0) => {}
            Some((_, d)) => *d = secs,
            None => p.push(("duration".into(), secs)),
        },
        other => *other = Amf::EcmaArray(vec![("duration".into(), secs)]),
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn file(tags: &[(u8, u32, &[u8])]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.extend_from_slice(&flv::file_header(true, true));
        for (t, ts, d) in tags {
            flv::write_tag(*t, *ts, d, &mut b);
        }
        b.to_vec()
    }

    #[test]
    fn indexes_tags_headers_and_metadata() {
        let meta = amf::encode_all(&[
            Amf::str("onMetaData"),
            Amf::EcmaArray(vec![("width".into(), Amf::Number(320.0))]),
        ]);
        let f = file(&[
            (TAG_SCRIPT, 0, &meta),
            (TAG_VIDEO, 0, &[0x17, 0, 0, 0, 0, 1, 2]),
            (TAG_AUDIO, 0, &[0xAF, 0, 0x12, 0x10]),
            (TAG_VIDEO, 0, &[0x17, 1, 0, 0, 0, 9]),
            (TAG_AUDIO, 21, &[0xAF, 1, 5]),
            (TAG_VIDEO, 40, &[0x27, 1, 0, 0, 0, 9]),
            (TAG_VIDEO, 1000, &[0x17, 1, 0, 0, 0, 9]),
        ]);
        let ix = index(&f[..]).unwrap();
        assert_eq!(ix.headers.len(), 2);
        assert_eq!(ix.samples.len(), 4);
        assert_eq!(ix.samples[0].track, VIDEO);
        assert!(ix.samples[0].key);
        assert_eq!(ix.samples[1].track, AUDIO);
        assert_eq!(ix.samples[1].size, 3);
        assert_eq!(ix.duration_ms, 1000);
        assert_eq!(ix.seek(1200), 3);
        let d = ix.meta[1].get("duration").and_then(Amf::as_f64);
        assert_eq!(d, Some(1.0));
        assert_eq!(ix.meta[1].get("width").and_then(Amf::as_f64), Some(320.0));
    }

    #[test]
    fn truncated_and_garbage() {
        let f = file(&[
            (TAG_VIDEO, 0, &[0x17, 1, 0, 0, 0, 9]),
            (TAG_VIDEO, 40, &[0x27, 1, 0, 0, 0, 9]),
        ]);
        let ix = index(&f[..f.len() - 6]).unwrap();
        assert_eq!(ix.samples.len(), 1);
        assert!(index(&b"FLV"[..]).is_err());
        assert!(index(&b"XYZ\x01\x05\x00\x00\x00\x09"[..]).is_err());
        let mut huge = f.clone();
        huge[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(index(&huge[..]).is_err());
    }
}
