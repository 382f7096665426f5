//! One audio or video message body, read track by track.
//!
//! A legacy FLV tag carries one track. Enhanced RTMP v2 adds ModEx prefixes
//! (a sub-millisecond timestamp offset, so far) in front of the packet
//! type, and multitrack messages: one track with an id (`OneTrack`), or
//! several, each with its id and size, sharing one FourCC (`ManyTracks`)
//! or each with its own (`ManyTracksManyCodecs`).
//!
//! Everything that needs more than "is this a keyframe" (the stream's
//! per-track header cache, HLS, the per-track split, `/stat`) reads
//! messages through [`parse`] and [`Message::units`], so the layout is
//! decoded in one place, checked against the bytes present, and never
//! allocates.

use super::{fourcc_error, fourcc_known, TagError, AUDIO_FOURCCS, VIDEO_FOURCCS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Media {
    Audio,
    Video,
}

impl Media {
    fn name(self) -> &'static str {
        match self {
            Media::Audio => "audio",
            Media::Video => "video",
        }
    }
}

/// How a track names its codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// A legacy FLV codec id (video 7 = AVC, audio 10 = AAC...).
    Legacy(u8),
    /// An Enhanced RTMP FourCC.
    FourCc([u8; 4]),
    /// An enhanced video command frame names none.
    None,
}

/// What a track's part of a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Packet {
    /// Decoder configuration: AVC/HEVC/AV1/VP9 record, AAC
    /// AudioSpecificConfig, Opus ID header...
    Config,
    /// Enhanced audio channel layout (`MultichannelConfig`).
    ChannelConfig,
    /// AV1's MPEG-2 TS descriptor (`MPEG2TSSequenceStart`).
    TsConfig,
    Coded,
    End,
    /// `VideoPacketType.Metadata` (colour info and the like).
    Metadata,
    /// A video command frame (frame type 5): no media.
    Command,
}

impl Packet {
    /// Kept for late joiners: without it a decoder cannot start.
    pub fn is_config(self) -> bool {
        matches!(
            self,
            Packet::Config | Packet::ChannelConfig | Packet::TsConfig
        )
    }
}

/// One track's part of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit<'a> {
    /// 0 outside multitrack messages: the spec's default track.
    pub track: u8,
    pub codec: Codec,
    pub packet: Packet,
    /// Composition time offset (PTS - DTS, ms) of AVC/HEVC/VVC coded
    /// frames; 0 otherwise.
    pub cts: i32,
    /// The codec's own bytes: after the composition offset, if any.
    pub data: &'a [u8],
}

/// A parsed message header; [`Message::units`] walks its tracks.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    p: &'a [u8],
    media: Media,
    /// Video frame type (1 key, 2 inter, 5 command...); 1 for audio, where
    /// every frame is a place to start.
    pub frame_type: u8,
    /// ModEx `TimestampOffsetNano`: nanoseconds to add to the message's
    /// timestamp, 0 when absent.
    pub nano_offset: u32,
    /// The AvMultitrackType of a multitrack message.
    pub multitrack: Option<u8>,
    packet: Packet,
    /// Enhanced `CodedFrames` (not `CodedFramesX`): AVC/HEVC/VVC tracks
    /// start with a composition offset.
    with_cts: bool,
    /// The codec shared by every track (None for ManyTracksManyCodecs).
    codec: Option<Codec>,
    /// Where the track loop starts.
    start: usize,
}

/// The most ModEx prefixes one message may carry. The spec defines one
/// kind; a loop of them is only ever an attack on the parser.
const MAX_MODEX: usize = 8;

fn take<'a>(
    p: &'a [u8],
    pos: &mut usize,
    n: usize,
    kind: &'static str,
) -> Result<&'a [u8], TagError> {
    let b = p.get(*pos..*pos + n).ok_or(TagError::Short(kind))?;
    *pos += n;
    Ok(b)
}

fn fourcc(p: &[u8], pos: &mut usize, media: Media) -> Result<Codec, TagError> {
    let f = take(p, pos, 4, media.name())?;
    let known = match media {
        Media::Video => &VIDEO_FOURCCS[..],
        Media::Audio => &AUDIO_FOURCCS[..],
    };
    if !fourcc_known(f, known) {
        return Err(fourcc_error(media.name(), f));
    }
    Ok(Codec::FourCc([f[0], f[1], f[2], f[3]]))
}

fn si24(b: &[u8]) -> i32 {
    ((((b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32) << 8) as i32) >> 8
}

/// Reads a message's header: legacy or enhanced, through ModEx prefixes
/// and the multitrack byte.
pub fn parse(media: Media, p: &[u8]) -> Result<Message<'_>, TagError> {
    let kind = media.name();
    let b0 = *p.first().ok_or(TagError::Empty(kind))?;
    let mut m = Message {
        p,
        media,
        frame_type: 1,
        nano_offset: 0,
        multitrack: None,
        packet: Packet::Coded,
        with_cts: false,
        codec: None,
        start: 1,
    };
    let enhanced = match media {
        Media::Video => b0 & 0x80 != 0,
        Media::Audio => b0 >> 4 == 9,
    };
    if !enhanced {
        return legacy(m, b0);
    }
    if media == Media::Video {
        m.frame_type = (b0 >> 4) & 0x07;
    }
    let mut ptype = b0 & 0x0f;
    let mut pos = 1;
    let mut modex = 0;
    while ptype == 7 {
        modex += 1;
        if modex > MAX_MODEX {
            return Err(TagError::BadPacketType { kind, ptype });
        }
        let mut size = take(p, &mut pos, 1, kind)?[0] as usize + 1;
        if size == 256 {
            let b = take(p, &mut pos, 2, kind)?;
            size = u16::from_be_bytes([b[0], b[1]]) as usize + 1;
        }
        let data = take(p, &mut pos, size, kind)?;
        let next = take(p, &mut pos, 1, kind)?[0];
        // ModEx type 0: TimestampOffsetNano, a UI24 of nanoseconds.
        if next >> 4 == 0 && data.len() >= 3 {
            m.nano_offset = (data[0] as u32) << 16 | (data[1] as u32) << 8 | data[2] as u32;
        }
        ptype = next & 0x0f;
    }
    if media == Media::Video && m.frame_type == 5 && ptype != 4 {
        // A command frame: one command byte, no FourCC, no media.
        m.packet = Packet::Command;
        m.codec = Some(Codec::None);
        m.start = pos;
        return Ok(m);
    }
    let multitrack_type = match media {
        Media::Video => 6,
        Media::Audio => 5,
    };
    if ptype == multitrack_type {
        let b = take(p, &mut pos, 1, kind)?[0];
        let mt = b >> 4;
        ptype = b & 0x0f;
        if mt > 2 {
            return Err(TagError::BadMultitrack { kind, mt });
        }
        if ptype == multitrack_type || ptype == 7 {
            return Err(TagError::BadPacketType { kind, ptype });
        }
        m.multitrack = Some(mt);
        if mt != 2 {
            m.codec = Some(fourcc(p, &mut pos, media)?);
        }
    } else {
        m.codec = Some(fourcc(p, &mut pos, media)?);
    }
    m.packet = match (media, ptype) {
        (_, 0) => Packet::Config,
        (_, 1) => Packet::Coded,
        (_, 2) => Packet::End,
        (Media::Video, 3) => Packet::Coded,
        (Media::Video, 4) => Packet::Metadata,
        (Media::Video, 5) => Packet::TsConfig,
        (Media::Audio, 4) => Packet::ChannelConfig,
        _ => return Err(TagError::BadPacketType { kind, ptype }),
    };
    m.with_cts = media == Media::Video && ptype == 1;
    m.start = pos;
    Ok(m)
}

fn legacy(mut m: Message<'_>, b0: u8) -> Result<Message<'_>, TagError> {
    let p = m.p;
    match m.media {
        Media::Video => {
            let codec_id = b0 & 0x0f;
            m.frame_type = b0 >> 4;
            m.codec = Some(Codec::Legacy(codec_id));
            if m.frame_type == 5 {
                m.packet = Packet::Command;
            } else if matches!(codec_id, 7 | 12) {
                // AVC, and the widespread legacy HEVC id 12: a packet type
                // and a composition offset.
                let ptype = *p.get(1).ok_or(TagError::Short("video"))?;
                m.packet = match ptype {
                    0 => Packet::Config,
                    2 => Packet::End,
                    _ => Packet::Coded,
                };
                m.start = 2;
                m.with_cts = true;
            }
        }
        Media::Audio => {
            let format = b0 >> 4;
            m.codec = Some(Codec::Legacy(format));
            if format == 10 {
                let ptype = *p.get(1).ok_or(TagError::Short("audio"))?;
                m.packet = if ptype == 0 {
                    Packet::Config
                } else {
                    Packet::Coded
                };
                m.start = 2;
            }
        }
    }
    Ok(m)
}

impl<'a> Message<'a> {
    /// The packet type shared by every track of the message.
    pub fn packet(&self) -> Packet {
        self.packet
    }

    /// Whether this is a place where a decoder can start: a video keyframe
    /// that carries a picture, or any audio frame.
    pub fn is_key(&self) -> bool {
        self.frame_type == 1 && !matches!(self.packet, Packet::End | Packet::Command)
    }

    pub fn units(&self) -> Units<'a> {
        Units {
            m: *self,
            pos: self.start,
            done: false,
        }
    }

    /// The first track's part; every track is checked on the way, so a
    /// message that lies about a later track's size is an error.
    pub fn first(&self) -> Result<Unit<'a>, TagError> {
        let mut first = None;
        for u in self.units() {
            let u = u?;
            first.get_or_insert(u);
        }
        first.ok_or(TagError::Short(self.media.name()))
    }
}

/// The tracks of a message, in order. Stops after the first error.
pub struct Units<'a> {
    m: Message<'a>,
    pos: usize,
    done: bool,
}

impl<'a> Units<'a> {
    fn next_unit(&mut self) -> Result<Unit<'a>, TagError> {
        let m = &self.m;
        let (p, kind) = (m.p, m.media.name());
        let mut track = 0;
        let mut codec = m.codec.unwrap_or(Codec::None);
        let mut end = p.len();
        match m.multitrack {
            None => self.done = true,
            Some(mt) => {
                if mt == 2 {
                    codec = fourcc(p, &mut self.pos, m.media)?;
                }
                track = take(p, &mut self.pos, 1, kind)?[0];
                if mt == 0 {
                    self.done = true;
                } else {
                    let s = take(p, &mut self.pos, 3, kind)?;
                    let size = (s[0] as usize) << 16 | (s[1] as usize) << 8 | s[2] as usize;
                    end = self.pos + size;
                    if end > p.len() {
                        return Err(TagError::Short(kind));
                    }
                    self.done = end == p.len();
                }
            }
        }
        let mut data = &p[self.pos.min(end)..end];
        self.pos = end;
        let mut cts = 0;
        let with_cts = match codec {
            Codec::Legacy(id) => m.with_cts && matches!(id, 7 | 12),
            Codec::FourCc(f) => m.with_cts && matches!(&f, b"avc1" | b"hvc1" | b"vvc1"),
            Codec::None => false,
        };
        if with_cts && (m.packet != Packet::Config || matches!(codec, Codec::Legacy(_))) {
            // Legacy AVC/HEVC sequence headers carry a (zero) offset too.
            // A frame too short for one has no picture either: empty.
            if m.packet != Packet::Config {
                cts = data.get(..3).map_or(0, si24);
            }
            data = data.get(3..).unwrap_or_default();
        }
        Ok(Unit {
            track,
            codec,
            packet: m.packet,
            cts,
            data,
        })
    }
}

impl<'a> Iterator for Units<'a> {
    type Item = Result<Unit<'a>, TagError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.next_unit();
        if r.is_err() {
            self.done = true;
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(media: Media, p: &[u8]) -> Vec<Unit<'_>> {
        parse(media, p)
            .unwrap()
            .units()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    #[test]
    fn legacy_avc_and_aac_are_track_zero() {
        let u = units(Media::Video, &[0x17, 1, 0, 0, 40, 0xAA]);
        assert_eq!(u.len(), 1);
        assert_eq!(
            (u[0].track, u[0].codec, u[0].packet, u[0].cts, u[0].data),
            (0, Codec::Legacy(7), Packet::Coded, 40, &[0xAA][..])
        );
        let u = units(Media::Video, &[0x17, 0, 0, 0, 0, 1, 100]);
        assert_eq!((u[0].packet, u[0].data), (Packet::Config, &[1, 100][..]));
        let u = units(Media::Audio, &[0xaf, 0, 0x12, 0x10]);
        assert_eq!(
            (u[0].packet, u[0].data),
            (Packet::Config, &[0x12, 0x10][..])
        );
        let u = units(Media::Audio, &[0x2f, 0xff, 0xfb]);
        assert_eq!(
            (u[0].codec, u[0].data),
            (Codec::Legacy(2), &[0xff, 0xfb][..])
        );
    }

    /// What ffmpeg 9 sends for a second audio and a second video track:
    /// OneTrack multitrack messages with track id 1.
    #[test]
    fn ffmpeg_one_track_messages() {
        let seq = [0x95, 0x00, b'm', b'p', b'4', b'a', 1, 0x12, 0x08];
        let u = units(Media::Audio, &seq);
        assert_eq!(
            (u[0].track, u[0].packet, u[0].data),
            (1, Packet::Config, &[0x12, 0x08][..])
        );
        let chan = [0x95, 0x04, b'm', b'p', b'4', b'a', 1, 1, 1, 0];
        assert_eq!(units(Media::Audio, &chan)[0].packet, Packet::ChannelConfig);
        let key = [0x96, 0x01, b'a', b'v', b'c', b'1', 1, 0, 0, 80, 0x65];
        let m = parse(Media::Video, &key).unwrap();
        assert!(m.is_key());
        let u = m.first().unwrap();
        assert_eq!(
            (u.track, u.codec, u.cts, u.data),
            (1, Codec::FourCc(*b"avc1"), 80, &[0x65][..])
        );
        let inter = [0xa6, 0x03, b'h', b'v', b'c', b'1', 2, 0x01];
        let m = parse(Media::Video, &inter).unwrap();
        assert!(!m.is_key());
        assert_eq!(m.first().unwrap().data, &[0x01]);
    }

    #[test]
    fn many_tracks_and_many_codecs() {
        // ManyTracks, shared av01: track 0 (2 bytes), track 3 (1 byte).
        let p = [
            0x96, 0x11, b'a', b'v', b'0', b'1', 0, 0, 0, 2, 7, 8, 3, 0, 0, 1, 9,
        ];
        let u = units(Media::Video, &p);
        assert_eq!(u.len(), 2);
        assert_eq!((u[0].track, u[0].data), (0, &[7, 8][..]));
        assert_eq!((u[1].track, u[1].data), (3, &[9][..]));
        // ManyTracksManyCodecs audio: Opus track 0, mp4a track 1.
        let p = [
            0x95, 0x21, b'O', b'p', b'u', b's', 0, 0, 0, 1, 5, b'm', b'p', b'4', b'a', 1, 0, 0, 0,
        ];
        let u = units(Media::Audio, &p);
        assert_eq!(u[0].codec, Codec::FourCc(*b"Opus"));
        assert_eq!((u[1].codec, u[1].track), (Codec::FourCc(*b"mp4a"), 1));
        assert!(u[1].data.is_empty());
        // A size beyond the message is an error, not a short read.
        let bad = [0x96, 0x11, b'a', b'v', b'0', b'1', 0, 0, 0, 9, 7];
        assert_eq!(
            parse(Media::Video, &bad).unwrap().first(),
            Err(TagError::Short("video"))
        );
    }

    #[test]
    fn modex_timestamp_offset_then_multitrack() {
        // ModEx: 3 bytes of data (500000 ns), type 0, next packet type 6.
        let p = [
            0x97, 2, 0x07, 0xA1, 0x20, 0x06, 0x01, b'a', b'v', b'c', b'1', 2, 0, 0, 0, 0x41,
        ];
        let m = parse(Media::Video, &p).unwrap();
        assert_eq!(m.nano_offset, 500_000);
        assert_eq!(m.multitrack, Some(0));
        let u = m.first().unwrap();
        assert_eq!((u.track, u.packet, u.data), (2, Packet::Coded, &[0x41][..]));
    }

    #[test]
    fn command_frames_and_bad_headers() {
        let m = parse(Media::Video, &[0xd1, 0x00]).unwrap();
        assert_eq!(m.packet(), Packet::Command);
        assert!(!m.is_key());
        assert_eq!(
            parse(Media::Video, &[0x96, 0x36, b'a', b'v', b'c', b'1']).err(),
            Some(TagError::BadMultitrack {
                kind: "video",
                mt: 3
            })
        );
        assert_eq!(
            parse(Media::Video, &[0x96, 0x06, b'a', b'v', b'c', b'1']).err(),
            Some(TagError::BadPacketType {
                kind: "video",
                ptype: 6
            })
        );
        let modex_loop = [
            0x97, 0, 0, 0x07, 0, 0, 0x07, 0, 0, 0x07, 0, 0, 0x07, 0, 0, 0x07, 0, 0, 0x07, 0, 0,
            0x07, 0, 0, 0x07, 0, 0, 0x07,
        ];
        assert!(parse(Media::Video, &modex_loop).is_err());
    }
}
