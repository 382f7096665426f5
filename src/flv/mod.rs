//! FLV: what a media payload is (keyframe, sequence header, codec), and the
//! FLV file format used by `sluice play -o`, `sluice publish` and recording.
//!
//! RTMP audio/video message bodies are FLV tag bodies, so the same
//! classification serves the live path and files. Enhanced RTMP
//! (veovera/enhanced-rtmp v1/v2) extends the first byte with an
//! "ExHeader" bit and a FourCC; we understand both forms.

use bytes::{BufMut, Bytes, BytesMut};

pub mod body;
pub mod configs;
pub mod sps;

pub use body::{Codec, Media, Packet};
pub use configs::{config_key, ConfigKey, Configs, TrackSet};

pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;

/// Video FourCCs we forward and advertise in the `connect` result.
pub const VIDEO_FOURCCS: [&str; 6] = ["avc1", "hvc1", "av01", "vp09", "vp08", "vvc1"];
/// Audio FourCCs of Enhanced RTMP v2 that we forward.
pub const AUDIO_FOURCCS: [&str; 6] = ["mp4a", "Opus", ".mp3", "fLaC", "ac-3", "ec-3"];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaInfo {
    pub keyframe: bool,
    /// Decoder configuration (AVC/HEVC/AV1 sequence start, AAC
    /// AudioSpecificConfig): cached and sent first to late joiners.
    pub sequence_header: bool,
    /// Legacy codec id (video 7 = AVC, audio 10 = AAC) or 0 for enhanced.
    pub codec_id: u8,
    /// FourCC for enhanced tags, e.g. `*b"hvc1"`.
    pub fourcc: Option<[u8; 4]>,
    /// The (first) track of an Enhanced RTMP multitrack message; 0 (the
    /// default track) otherwise.
    pub track: u8,
}

/// Which video keyframes start a GOP, a recording, a segment or a place to
/// resume: those of the lowest-numbered video track that has sent one
/// (track 0, the default, once it has). With one video track that is every
/// keyframe; with an Enhanced RTMP multitrack ladder, a start at another
/// rendition's keyframe would leave the first one without its keyframe
/// (the others then start at their own). Taking the lowest id, not the
/// first seen, keeps a reader that joined at another track's keyframe (a
/// relay, an edge) from anchoring on it for good.
#[derive(Debug, Default, Clone, Copy)]
pub struct Anchor(Option<u8>);

impl Anchor {
    /// Whether a video frame (`key`: a keyframe) of `track` is a start.
    pub fn is_start(&mut self, key: bool, track: u8) -> bool {
        if !key {
            return false;
        }
        if self.0.is_none_or(|a| track < a) {
            self.0 = Some(track);
        }
        self.0 == Some(track)
    }

    pub fn reset(&mut self) {
        self.0 = None;
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TagError {
    #[error("empty {0} tag")]
    Empty(&'static str),
    #[error("{0} tag too short")]
    Short(&'static str),
    #[error("unknown {kind} FourCC {fourcc:?}")]
    UnknownFourCc { kind: &'static str, fourcc: String },
    #[error("unknown enhanced {kind} packet type {ptype}")]
    BadPacketType { kind: &'static str, ptype: u8 },
    #[error("unknown {kind} multitrack type {mt}")]
    BadMultitrack { kind: &'static str, mt: u8 },
}

fn fourcc_known(f: &[u8], list: &[&str]) -> bool {
    list.iter().any(|k| k.as_bytes() == f)
}

fn fourcc_error(kind: &'static str, f: &[u8]) -> TagError {
    TagError::UnknownFourCc {
        kind,
        fourcc: String::from_utf8_lossy(f).into_owned(),
    }
}

/// Classifies a video tag body. Every track of a multitrack message is
/// checked; the info is the first track's.
pub fn video_info(p: &[u8]) -> Result<MediaInfo, TagError> {
    info(Media::Video, p)
}

/// Classifies an audio tag body.
pub fn audio_info(p: &[u8]) -> Result<MediaInfo, TagError> {
    info(Media::Audio, p)
}

fn info(media: Media, p: &[u8]) -> Result<MediaInfo, TagError> {
    let m = body::parse(media, p)?;
    let u = m.first()?;
    let (codec_id, fourcc) = match u.codec {
        Codec::Legacy(id) => (id, None),
        Codec::FourCc(f) => (0, Some(f)),
        Codec::None => (0, None),
    };
    Ok(MediaInfo {
        keyframe: m.is_key(),
        sequence_header: u.packet.is_config(),
        codec_id,
        fourcc,
        track: u.track,
    })
}

/// The composition time offset (PTS - DTS, ms) of an AVC/HEVC coded frame,
/// legacy or Enhanced RTMP (the first track of a multitrack message); 0
/// otherwise.
pub fn composition_offset(p: &[u8]) -> i32 {
    body::parse(Media::Video, p)
        .and_then(|m| m.units().next().unwrap_or(Err(TagError::Empty("video"))))
        .map_or(0, |u| u.cts)
}

// ------------------------------------------------------------------ files

/// One FLV tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub tag_type: u8,
    pub timestamp: u32,
    pub data: Bytes,
}

/// The 9-byte FLV header plus PreviousTagSize0.
pub fn file_header(audio: bool, video: bool) -> [u8; 13] {
    let flags = (audio as u8) << 2 | video as u8;
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// Appends one tag and its PreviousTagSize.
pub fn write_tag(tag_type: u8, timestamp: u32, data: &[u8], out: &mut BytesMut) {
    out.reserve(15 + data.len());
    put_tag_header(tag_type, timestamp, data.len(), out);
    out.put_slice(data);
    out.put_u32(11 + data.len() as u32);
}

/// Appends the 11-byte header of a tag whose `len` data bytes follow; the
/// caller then writes the data and the PreviousTagSize (11 + len).
pub fn put_tag_header(tag_type: u8, timestamp: u32, len: usize, out: &mut BytesMut) {
    out.put_u8(tag_type);
    out.put_uint(len as u64, 3);
    out.put_uint((timestamp & 0xFF_FFFF) as u64, 3);
    out.put_u8((timestamp >> 24) as u8);
    out.put_uint(0, 3);
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlvError {
    #[error("not an FLV file (bad signature)")]
    Signature,
    #[error("FLV header claims its data starts at byte {0}")]
    DataOffset(u32),
}

/// The header is 9 bytes in every FLV version; a larger data offset is
/// allowed by the format, but one beyond this would only make a reader
/// buffer up to 4 GiB before the first tag.
const MAX_DATA_OFFSET: u32 = 1024;

/// Incremental FLV parser: feed bytes, take tags. Tag sizes are 24-bit, so a
/// tag never needs more than 16 MiB, and nothing is allocated before a whole
/// tag is buffered.
#[derive(Default)]
pub struct FlvParser {
    header_done: bool,
}

impl FlvParser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn next_tag(&mut self, buf: &mut BytesMut) -> Result<Option<Tag>, FlvError> {
        if !self.header_done {
            if buf.len() < 9 {
                if !b"FLV".starts_with(&buf[..buf.len().min(3)]) {
                    return Err(FlvError::Signature);
                }
                return Ok(None);
            }
            if &buf[..3] != b"FLV" {
                return Err(FlvError::Signature);
            }
            let offset = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
            if offset > MAX_DATA_OFFSET {
                return Err(FlvError::DataOffset(offset));
            }
            let skip = (offset as usize).max(9) + 4;
            if buf.len() < skip {
                return Ok(None);
            }
            let _ = buf.split_to(skip);
            self.header_done = true;
        }
        if buf.len() < 11 {
            return Ok(None);
        }
        let size = ((buf[1] as usize) << 16) | ((buf[2] as usize) << 8) | buf[3] as usize;
        if buf.len() < 11 + size + 4 {
            return Ok(None);
        }
        let h = buf.split_to(11);
        let timestamp =
            ((h[7] as u32) << 24) | ((h[4] as u32) << 16) | ((h[5] as u32) << 8) | h[6] as u32;
        let data = buf.split_to(size).freeze();
        let _prev = buf.split_to(4);
        Ok(Some(Tag {
            tag_type: h[0] & 0x1f,
            timestamp,
            data,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_data_offset_is_refused_not_buffered() {
        let mut p = FlvParser::new();
        let mut b = BytesMut::from(&b"FLV\x01\x05\xff\xff\xff\xf0\0\0\0\0"[..]);
        assert_eq!(p.next_tag(&mut b), Err(FlvError::DataOffset(0xffff_fff0)));
    }

    #[test]
    fn the_anchor_is_the_lowest_track_with_a_keyframe() {
        let mut a = Anchor::default();
        assert!(!a.is_start(false, 1));
        assert!(a.is_start(true, 1), "the only track so far");
        assert!(a.is_start(true, 0), "track 0 takes over");
        assert!(!a.is_start(true, 1));
        assert!(a.is_start(true, 0));
    }

    #[test]
    fn legacy_avc_and_aac() {
        assert_eq!(
            video_info(&[0x17, 0, 0, 0, 0]).unwrap(),
            MediaInfo {
                keyframe: true,
                sequence_header: true,
                codec_id: 7,
                fourcc: None,
                track: 0
            }
        );
        assert!(
            !video_info(&[0x17, 2, 0, 0, 0]).unwrap().keyframe,
            "end of sequence"
        );
        let i = video_info(&[0x27, 1, 0, 0, 0]).unwrap();
        assert!(!i.keyframe && !i.sequence_header);
        assert!(audio_info(&[0xaf, 0, 0x12, 0x10]).unwrap().sequence_header);
        assert!(!audio_info(&[0xaf, 1, 0x21]).unwrap().sequence_header);
        assert_eq!(video_info(&[]), Err(TagError::Empty("video")));
        assert_eq!(video_info(&[0x17]), Err(TagError::Short("video")));
    }

    #[test]
    fn enhanced_video() {
        // keyframe (1), SequenceStart (0), hvc1
        let i = video_info(&[0x90, b'h', b'v', b'c', b'1', 1, 2]).unwrap();
        assert!(i.keyframe && i.sequence_header);
        assert_eq!(i.fourcc, Some(*b"hvc1"));
        // keyframe CodedFramesX av01
        let i = video_info(&[0x93, b'a', b'v', b'0', b'1', 9]).unwrap();
        assert!(i.keyframe && !i.sequence_header);
        // inter frame vp09
        assert!(
            !video_info(&[0xa1, b'v', b'p', b'0', b'9'])
                .unwrap()
                .keyframe
        );
        // ModEx wrapping CodedFrames: size 1+1 bytes of data, then 0x?1
        let i = video_info(&[0x97, 1, 0xAA, 0xBB, 0x01, b'a', b'v', b'c', b'1']).unwrap();
        assert!(i.keyframe);
        assert_eq!(
            video_info(&[0x91, b'x', b'y', b'z', b'w']),
            Err(TagError::UnknownFourCc {
                kind: "video",
                fourcc: "xyzw".into()
            })
        );
        assert_eq!(
            video_info(&[0x9e, b'a', b'v', b'c', b'1']),
            Err(TagError::BadPacketType {
                kind: "video",
                ptype: 14
            })
        );
        assert_eq!(
            video_info(&[0x91, b'a', b'v']),
            Err(TagError::Short("video"))
        );
    }

    #[test]
    fn composition_offsets() {
        assert_eq!(composition_offset(&[0x27, 1, 0, 0, 80, 9]), 80);
        assert_eq!(composition_offset(&[0x27, 1, 0xff, 0xff, 0xd8]), -40);
        assert_eq!(
            composition_offset(&[0x17, 0, 0, 0, 80]),
            0,
            "sequence header"
        );
        assert_eq!(
            composition_offset(&[0x91, b'h', b'v', b'c', b'1', 0, 0, 40]),
            40
        );
        assert_eq!(
            composition_offset(&[0x93, b'h', b'v', b'c', b'1', 0, 0, 40]),
            0,
            "CodedFramesX has none"
        );
        assert_eq!(composition_offset(&[0x27, 1, 0]), 0, "short");
    }

    #[test]
    fn enhanced_audio() {
        let i = audio_info(&[0x90, b'O', b'p', b'u', b's', 1]).unwrap();
        assert!(i.sequence_header);
        assert!(
            !audio_info(&[0x91, b'f', b'L', b'a', b'C'])
                .unwrap()
                .sequence_header
        );
        assert!(audio_info(&[0x93, b'f', b'L', b'a', b'C']).is_err());
    }

    #[test]
    fn file_roundtrip_incremental() {
        let mut out = BytesMut::new();
        out.extend_from_slice(&file_header(true, true));
        write_tag(TAG_VIDEO, 0x0123_4567, b"abc", &mut out);
        write_tag(TAG_AUDIO, 5, b"", &mut out);
        let mut p = FlvParser::new();
        let mut buf = BytesMut::new();
        let mut tags = vec![];
        for b in out.iter() {
            buf.extend_from_slice(&[*b]);
            while let Some(t) = p.next_tag(&mut buf).unwrap() {
                tags.push(t);
            }
        }
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].timestamp, 0x0123_4567);
        assert_eq!(&tags[0].data[..], b"abc");
        assert_eq!(
            FlvParser::new().next_tag(&mut BytesMut::from(&b"RIFF"[..])),
            Err(FlvError::Signature)
        );
    }
}
