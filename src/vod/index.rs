//! What a VOD file holds, in the form players need: samples in play order
//! (their place in the file, timestamps, keyframes), the decoder headers to
//! send first, and the metadata. Built once per file, shared read-only by
//! every player of it.

use bytes::{BufMut, Bytes, BytesMut};

use crate::rtmp::Amf;

/// How a track's samples become RTMP message bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// An FLV file's tag body: already an RTMP body.
    Flv,
    /// H.264 from MP4: legacy FLV AVC packets (codec id 7).
    Avc,
    /// HEVC from MP4: Enhanced RTMP `hvc1` coded frames with composition
    /// time.
    Hevc,
    /// AV1 from MP4: Enhanced RTMP `av01`.
    Av1,
    /// AAC from MP4: legacy FLV AAC packets (sound format 10).
    Aac,
    /// MP3 from MP4: legacy FLV MP3 (sound format 2), no header.
    Mp3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Audio,
    Video,
    /// An FLV script tag after the first (cue points and the like).
    Data,
}

impl Kind {
    /// The RTMP message type.
    pub fn type_id(self) -> u8 {
        match self {
            Kind::Audio => 8,
            Kind::Video => 9,
            Kind::Data => 18,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Track {
    pub kind: Kind,
    pub codec: Codec,
}

/// One sample (an FLV tag body, or an MP4 sample), 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Where its bytes start in the file.
    pub offset: u64,
    pub size: u32,
    /// Decoding timestamp, ms.
    pub ts: u32,
    /// Composition offset (PTS - DTS), ms.
    pub cts: i32,
    /// Index into [`Index::tracks`].
    pub track: u8,
    pub key: bool,
}

#[derive(Debug, Default)]
pub struct Index {
    /// "flv" or "mp4", for logs.
    pub format: &'static str,
    pub tracks: Vec<Track>,
    /// Every sample of every track, by timestamp.
    pub samples: Vec<Sample>,
    /// Decoder configurations as RTMP bodies (AVC/HEVC/AV1 sequence start,
    /// AAC AudioSpecificConfig), sent before the first sample and again
    /// after a seek.
    pub headers: Vec<(Kind, Bytes)>,
    /// `onMetaData`'s values, with `duration`.
    pub meta: Vec<Amf>,
    pub duration_ms: u64,
    /// Positions in `samples` of the video keyframes a seek can land on.
    pub(super) keys: Vec<u32>,
}

impl Index {
    /// Sorts the samples into play order and notes the seek points;
    /// `tracks`, `samples`, `headers` and `meta` are filled by a demuxer.
    pub fn finish(&mut self) {
        // Stable: samples of one timestamp keep their file/track order.
        self.samples.sort_by_key(|s| s.ts);
        let has_video = self.tracks.iter().any(|t| t.kind == Kind::Video);
        self.keys = self
            .samples
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.key
                    && (!has_video
                        || self.tracks.get(s.track as usize).map(|t| t.kind) == Some(Kind::Video))
            })
            .map(|(i, _)| i as u32)
            .collect();
        if self.duration_ms == 0 {
            self.duration_ms = self.samples.last().map_or(0, |s| s.ts as u64);
        }
    }

    /// Where a play from `ms` starts: the keyframe at or before it (the
    /// first one when `ms` is before every keyframe).
    pub fn seek(&self, ms: u64) -> usize {
        if ms == 0 {
            return 0;
        }
        let at = self
            .keys
            .partition_point(|&i| (self.samples[i as usize].ts as u64) <= ms);
        match at {
            0 => self.keys.first().map_or(0, |&i| i as usize),
            n => self.keys[n - 1] as usize,
        }
    }

    /// The bytes an RTMP body of `s` starts with, before the sample's own
    /// bytes: the FLV audio/video tag header its codec needs.
    pub fn prefix(&self, s: &Sample, out: &mut BytesMut) {
        let Some(t) = self.tracks.get(s.track as usize) else {
            return;
        };
        let cts = (s.cts.clamp(-(1 << 23), (1 << 23) - 1) as u32) & 0xFF_FFFF;
        let frame = if s.key { 1u8 } else { 2 };
        match t.codec {
            Codec::Flv => {}
            Codec::Avc => {
                out.put_u8(frame << 4 | 7);
                out.put_u8(1);
                out.put_uint(cts as u64, 3);
            }
            Codec::Hevc => {
                out.put_u8(0x80 | frame << 4 | 1);
                out.put_slice(b"hvc1");
                out.put_uint(cts as u64, 3);
            }
            Codec::Av1 => {
                out.put_u8(0x80 | frame << 4 | 1);
                out.put_slice(b"av01");
            }
            Codec::Aac => out.put_slice(&[0xAF, 1]),
            Codec::Mp3 => out.put_u8(0x2F),
        }
    }

    pub fn kind(&self, s: &Sample) -> Kind {
        self.tracks
            .get(s.track as usize)
            .map_or(Kind::Data, |t| t.kind)
    }
}

/// The RTMP body of a decoder configuration for `codec`.
pub fn header_body(codec: Codec, config: &[u8]) -> Option<Bytes> {
    let mut b = BytesMut::with_capacity(config.len() + 5);
    match codec {
        Codec::Avc => b.put_slice(&[0x17, 0, 0, 0, 0]),
        Codec::Hevc => {
            b.put_u8(0x90);
            b.put_slice(b"hvc1");
        }
        Codec::Av1 => {
            b.put_u8(0x90);
            b.put_slice(b"av01");
        }
        Codec::Aac => b.put_slice(&[0xAF, 0]),
        Codec::Mp3 | Codec::Flv => return None,
    }
    b.put_slice(config);
    Some(b.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ts: u32, track: u8, key: bool) -> Sample {
        Sample {
            offset: 0,
            size: 1,
            ts,
            cts: 0,
            track,
            key,
        }
    }

    #[test]
    fn seek_lands_on_the_keyframe_at_or_before() {
        let mut ix = Index {
            tracks: vec![
                Track {
                    kind: Kind::Audio,
                    codec: Codec::Aac,
                },
                Track {
                    kind: Kind::Video,
                    codec: Codec::Avc,
                },
            ],
            samples: vec![
                s(0, 1, true),
                s(0, 0, true),
                s(40, 1, false),
                s(1000, 1, true),
                s(1010, 0, true),
                s(2000, 1, true),
            ],
            ..Default::default()
        };
        ix.finish();
        assert_eq!(ix.seek(0), 0);
        assert_eq!(ix.seek(999), 0);
        assert_eq!(ix.seek(1000), 3);
        assert_eq!(ix.seek(1500), 3);
        assert_eq!(ix.seek(99_999), 5);
        assert_eq!(ix.duration_ms, 2000);
    }

    #[test]
    fn prefixes() {
        let ix = Index {
            tracks: vec![Track {
                kind: Kind::Video,
                codec: Codec::Hevc,
            }],
            ..Default::default()
        };
        let mut b = BytesMut::new();
        let mut x = s(0, 0, true);
        x.cts = 80;
        ix.prefix(&x, &mut b);
        assert_eq!(&b[..], &[0x91, b'h', b'v', b'c', b'1', 0, 0, 80]);
    }
}
