//! FLV: what a media payload is (keyframe, sequence header, codec), and the
//! FLV file format used by `sluice play -o`, `sluice publish` and recording.
//!
//! RTMP audio/video message bodies are FLV tag bodies, so the same
//! classification serves the live path and files. Enhanced RTMP
//! (veovera/enhanced-rtmp v1/v2) extends the first byte with an
//! "ExHeader" bit and a FourCC; we understand both forms.

use bytes::{BufMut, Bytes, BytesMut};

pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;

/// Video FourCCs we forward and advertise in the `connect` result.
pub const VIDEO_FOURCCS: [&str; 5] = ["avc1", "hvc1", "av01", "vp09", "vp08"];
/// Audio FourCCs of Enhanced RTMP v2 that we forward.
pub const AUDIO_FOURCCS: [&str; 6] = ["mp4a", "Opus", ".mp3", "fLaC", "ac-3", "ec-3"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaInfo {
    pub keyframe: bool,
    /// Decoder configuration (AVC/HEVC/AV1 sequence start, AAC
    /// AudioSpecificConfig): cached and sent first to late joiners.
    pub sequence_header: bool,
    /// Legacy codec id (video 7 = AVC, audio 10 = AAC) or 0 for enhanced.
    pub codec_id: u8,
    /// FourCC for enhanced tags, e.g. `*b"hvc1"`.
    pub fourcc: Option<[u8; 4]>,
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

/// Skips Enhanced RTMP ModEx prefixes, returning the real packet type and
/// the offset of the byte that follows it.
fn skip_modex(p: &[u8], mut pos: usize, kind: &'static str) -> Result<(u8, usize), TagError> {
    // Each ModEx: size (UI8 + 1, or UI16 + 1 when the byte is 0xFF), data,
    // then a byte whose low nibble is the next packet type.
    for _ in 0..8 {
        let mut size = *p.get(pos).ok_or(TagError::Short(kind))? as usize + 1;
        pos += 1;
        if size == 256 {
            let b = p.get(pos..pos + 2).ok_or(TagError::Short(kind))?;
            size = u16::from_be_bytes([b[0], b[1]]) as usize + 1;
            pos += 2;
        }
        pos += size;
        let next = *p.get(pos).ok_or(TagError::Short(kind))?;
        pos += 1;
        if next & 0x0f != 7 {
            return Ok((next & 0x0f, pos));
        }
    }
    Err(TagError::BadPacketType { kind, ptype: 7 })
}

/// Classifies a video tag body.
pub fn video_info(p: &[u8]) -> Result<MediaInfo, TagError> {
    let b0 = *p.first().ok_or(TagError::Empty("video"))?;
    if b0 & 0x80 == 0 {
        let codec_id = b0 & 0x0f;
        // AVC/HEVC end-of-sequence (packet type 2) is flagged key by
        // encoders but is no place to start decoding.
        let keyframe = b0 >> 4 == 1 && !(matches!(codec_id, 7 | 12) && p.get(1) == Some(&2));
        // AVC (7) and the widespread legacy HEVC id (12) carry a packet type.
        let sequence_header = matches!(codec_id, 7 | 12) && p.get(1) == Some(&0);
        if matches!(codec_id, 7 | 12) && p.len() < 2 {
            return Err(TagError::Short("video"));
        }
        return Ok(MediaInfo {
            keyframe,
            sequence_header,
            codec_id,
            fourcc: None,
        });
    }
    let frame_type = (b0 >> 4) & 0x07;
    let mut ptype = b0 & 0x0f;
    let mut pos = 1;
    if ptype == 7 {
        (ptype, pos) = skip_modex(p, pos, "video")?;
    }
    if ptype == 6 {
        // Multitrack: a byte of (multitrack type << 4 | packet type), then
        // the FourCC of the first track.
        let b = *p.get(pos).ok_or(TagError::Short("video"))?;
        ptype = b & 0x0f;
        pos += 1;
    }
    if ptype > 5 {
        return Err(TagError::BadPacketType {
            kind: "video",
            ptype,
        });
    }
    let f = p.get(pos..pos + 4).ok_or(TagError::Short("video"))?;
    if !fourcc_known(f, &VIDEO_FOURCCS) {
        return Err(fourcc_error("video", f));
    }
    Ok(MediaInfo {
        // Frame type 5 is a command frame, never a decodable start.
        keyframe: frame_type == 1 && ptype != 2,
        sequence_header: ptype == 0 || ptype == 5,
        codec_id: 0,
        fourcc: Some([f[0], f[1], f[2], f[3]]),
    })
}

/// The composition time offset (PTS - DTS, ms) of an AVC/HEVC coded frame,
/// legacy or Enhanced RTMP (`avc1`/`hvc1` CodedFrames); 0 otherwise.
pub fn composition_offset(p: &[u8]) -> i32 {
    let si24 =
        |b: &[u8]| ((((b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32) << 8) as i32) >> 8;
    match p {
        [b0, 1, c @ ..] if b0 & 0x80 == 0 && matches!(b0 & 0x0f, 7 | 12) && c.len() >= 3 => si24(c),
        [b0, f0, f1, f2, f3, c @ ..]
            if b0 & 0x80 != 0
                && b0 & 0x0f == 1
                && matches!(&[*f0, *f1, *f2, *f3], b"avc1" | b"hvc1")
                && c.len() >= 3 =>
        {
            si24(c)
        }
        _ => 0,
    }
}

/// Classifies an audio tag body.
pub fn audio_info(p: &[u8]) -> Result<MediaInfo, TagError> {
    let b0 = *p.first().ok_or(TagError::Empty("audio"))?;
    let format = b0 >> 4;
    if format != 9 {
        if format == 10 && p.len() < 2 {
            return Err(TagError::Short("audio"));
        }
        return Ok(MediaInfo {
            keyframe: true,
            sequence_header: format == 10 && p[1] == 0,
            codec_id: format,
            fourcc: None,
        });
    }
    let mut ptype = b0 & 0x0f;
    let mut pos = 1;
    if ptype == 7 {
        (ptype, pos) = skip_modex(p, pos, "audio")?;
    }
    if ptype == 5 {
        let b = *p.get(pos).ok_or(TagError::Short("audio"))?;
        ptype = b & 0x0f;
        pos += 1;
    }
    if !matches!(ptype, 0 | 1 | 2 | 4) {
        return Err(TagError::BadPacketType {
            kind: "audio",
            ptype,
        });
    }
    let f = p.get(pos..pos + 4).ok_or(TagError::Short("audio"))?;
    if !fourcc_known(f, &AUDIO_FOURCCS) {
        return Err(fourcc_error("audio", f));
    }
    Ok(MediaInfo {
        keyframe: true,
        sequence_header: ptype == 0 || ptype == 4,
        codec_id: 0,
        fourcc: Some([f[0], f[1], f[2], f[3]]),
    })
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
    fn legacy_avc_and_aac() {
        assert_eq!(
            video_info(&[0x17, 0, 0, 0, 0]).unwrap(),
            MediaInfo {
                keyframe: true,
                sequence_header: true,
                codec_id: 7,
                fourcc: None
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
