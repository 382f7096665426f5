//! What each split-out rendition receives, decided without I/O.
//!
//! A multitrack publish carries each video track in its own messages
//! (ffmpeg and OBS send one track per message; `ManyTracks` messages are
//! taken apart). Each track becomes a plain single-track stream that any
//! player, recorder or HLS segmenter reads. Messages that are not
//! multitrack (ffmpeg's track 0) pass unchanged. A multitrack message's
//! H.264 track becomes a legacy AVC tag (so Debian's ffmpeg 5.1,
//! Flash-era players and HLS all take it), other codecs single-track
//! Enhanced RTMP tags. The default audio track (id 0) goes with every
//! rendition, as a legacy AAC tag when it is AAC. Metadata follows, with
//! the rendition's own size when the publisher sent `videoTrackIdInfoMap`.
//!
//! From multitrack messages, ModEx prefixes (a sub-millisecond timestamp
//! offset) and video `Metadata` packets (HDR colour info) are not carried
//! over.

use bytes::{BufMut, Bytes, BytesMut};

use crate::flv::{body, Codec, Configs, Media, Packet};
use crate::live::{Frame, FrameKind};
use crate::rtmp::amf::{self, Amf};

/// One message for one rendition.
#[derive(Debug, Clone, PartialEq)]
pub struct Out {
    pub track: u8,
    pub kind: FrameKind,
    pub payload: Bytes,
}

/// Splits a stream's frames by video track, once it has two: the
/// directive's `Split` names the tracks that get a stream of their own.
pub struct Splitter {
    split: crate::config::Split,
    /// Renditions that exist: their first configuration came.
    live: crate::flv::TrackSet,
    /// Renditions waiting for a keyframe after frames were lost.
    skipping: crate::flv::TrackSet,
    /// The latest metadata (values after `@setDataFrame`) and the default
    /// audio track's configurations, for renditions that start later.
    meta: Option<Vec<Amf>>,
    audio: Configs<Bytes>,
    /// Whether a second video track has shown up. Until then nothing is
    /// split (a plain stream gets no `NAME_0` copy) and each track's
    /// configuration waits here.
    multitrack: bool,
    configs: Vec<(u8, Bytes)>,
}

/// Video tracks remembered before the split starts.
const MAX_TRACKS: usize = 32;

impl Splitter {
    pub fn new(split: crate::config::Split) -> Splitter {
        Splitter {
            split,
            live: Default::default(),
            skipping: Default::default(),
            meta: None,
            audio: Configs::default(),
            multitrack: false,
            configs: Vec::new(),
        }
    }

    /// The renditions `f` feeds, and what each gets. A rendition starts at
    /// its first video configuration, with the metadata and audio
    /// configuration sent before it.
    pub fn frame(&mut self, f: &Frame) -> Vec<Out> {
        let mut out = Vec::new();
        // Until a second video track shows up, only configurations and
        // metadata matter: a plain stream's media is not copied out of its
        // chunked form at all.
        if !self.multitrack && !f.info.sequence_header && f.kind != FrameKind::Data {
            return out;
        }
        let payload = f.payload();
        match f.kind {
            FrameKind::Data => {
                let Ok(values) = amf::decode_all(&payload) else {
                    return out;
                };
                if values.first().and_then(Amf::as_str) != Some("onMetaData") {
                    return out;
                }
                for t in self.live.iter() {
                    out.push(self.meta_for(&values, t));
                }
                self.meta = Some(values);
            }
            FrameKind::Audio => {
                let Ok(m) = body::parse(Media::Audio, &payload) else {
                    return out;
                };
                let Some(u) = m.units().find_map(|u| u.ok().filter(|u| u.track == 0)) else {
                    return out;
                };
                // A single-track message is a plain tag already.
                let audio = match m.multitrack {
                    None => payload.clone(),
                    Some(_) => match audio_tag(&u) {
                        Some(a) => a,
                        None => return out,
                    },
                };
                if u.packet.is_config() {
                    if let Some(key) = crate::flv::config_key(Media::Audio, &audio) {
                        self.audio.insert(key, audio.len(), audio.clone());
                    }
                }
                for t in self.live.iter() {
                    out.push(Out {
                        track: t,
                        kind: FrameKind::Audio,
                        payload: audio.clone(),
                    });
                }
            }
            FrameKind::Video => {
                let Ok(m) = body::parse(Media::Video, &payload) else {
                    return out;
                };
                for u in m.units().map_while(Result::ok) {
                    let tag = match m.multitrack {
                        None => Some(payload.clone()),
                        Some(_) => video_tag(m.frame_type, &u),
                    };
                    let Some(tag) = tag else { continue };
                    if u.packet == Packet::Config && !self.multitrack {
                        // Not split yet: keep each track's configuration
                        // until a second track shows the stream is
                        // multitrack, then start every rendition at once.
                        self.configs.retain(|(t, _)| *t != u.track);
                        if self.configs.len() < MAX_TRACKS {
                            self.configs.push((u.track, tag));
                        }
                        if self.configs.len() >= 2 {
                            self.multitrack = true;
                            for (t, cfg) in self.configs.clone() {
                                self.start(t, cfg, &mut out);
                            }
                        }
                        continue;
                    }
                    if !self.multitrack || self.split.suffix(u.track).is_none() {
                        continue;
                    }
                    if !self.live.contains(u.track) {
                        if u.packet == Packet::Config {
                            self.start(u.track, tag, &mut out);
                        }
                        continue;
                    }
                    if self.skipping.contains(u.track) && !u.packet.is_config() {
                        if !m.is_key() {
                            continue;
                        }
                        self.skipping.remove(u.track);
                    }
                    out.push(Out {
                        track: u.track,
                        kind: FrameKind::Video,
                        payload: tag,
                    });
                }
            }
        }
        out
    }

    /// Starts rendition `track` (when it has a name) with the metadata,
    /// the audio configuration and its video configuration `cfg`.
    fn start(&mut self, track: u8, cfg: Bytes, out: &mut Vec<Out>) {
        if self.split.suffix(track).is_none() || self.live.contains(track) {
            return;
        }
        self.live.insert(track);
        if let Some(values) = &self.meta {
            out.push(self.meta_for(values, track));
        }
        for a in self.audio.iter() {
            out.push(Out {
                track,
                kind: FrameKind::Audio,
                payload: a.clone(),
            });
        }
        out.push(Out {
            track,
            kind: FrameKind::Video,
            payload: cfg,
        });
    }

    /// Frames were lost: each rendition resumes at its next keyframe.
    pub fn lagged(&mut self) {
        self.skipping = self.live;
    }

    /// The metadata of rendition `track`: the publisher's, with the
    /// track's own entry of `videoTrackIdInfoMap` over the top-level video
    /// fields (or, for tracks other than 0 without one, no size at all
    /// rather than the default track's), and without the track maps.
    fn meta_for(&self, values: &[Amf], track: u8) -> Out {
        let mut values = values.to_vec();
        if let Some(props) = values.get_mut(1).and_then(props_mut) {
            let own = props
                .iter()
                .find(|(k, _)| k == "videoTrackIdInfoMap")
                .and_then(|(_, m)| m.get(&track.to_string()))
                .and_then(Amf::props)
                .map(<[_]>::to_vec);
            props.retain(|(k, _)| k != "videoTrackIdInfoMap" && k != "audioTrackIdInfoMap");
            if track != 0 || own.is_some() {
                props.retain(|(k, _)| !VIDEO_FIELDS.contains(&k.as_str()));
            }
            props.extend(own.unwrap_or_default());
        }
        Out {
            track,
            kind: FrameKind::Data,
            payload: amf::encode_all(&values),
        }
    }
}

/// Top-level metadata fields that describe the default video track.
const VIDEO_FIELDS: [&str; 6] = [
    "width",
    "height",
    "videodatarate",
    "videocodecid",
    "displayWidth",
    "displayHeight",
];

fn props_mut(v: &mut Amf) -> Option<&mut Vec<(String, Amf)>> {
    match v {
        Amf::Object(p) | Amf::EcmaArray(p) => Some(p),
        _ => None,
    }
}

/// A single-track tag for `u`, a track of a multitrack message (so an
/// Enhanced RTMP one), or `None` for what is not carried over.
fn video_tag(frame_type: u8, u: &body::Unit<'_>) -> Option<Bytes> {
    let ptype = match u.packet {
        Packet::Config => 0,
        Packet::Coded => 1,
        Packet::End => 2,
        _ => return None,
    };
    let Codec::FourCc(f) = u.codec else {
        return None;
    };
    let mut b = BytesMut::with_capacity(u.data.len() + 8);
    let cts = (u.cts as u32).to_be_bytes();
    if &f == b"avc1" {
        b.put_u8(frame_type << 4 | 7);
        b.put_u8(ptype);
        b.put_slice(&cts[1..]);
    } else {
        b.put_u8(0x80 | frame_type << 4 | ptype);
        b.put_slice(&f);
        if ptype == 1 && matches!(&f, b"hvc1" | b"vvc1") {
            b.put_slice(&cts[1..]);
        }
    }
    b.put_slice(u.data);
    Some(b.freeze())
}

/// A single-track tag for the default audio track of a multitrack
/// message.
fn audio_tag(u: &body::Unit<'_>) -> Option<Bytes> {
    let Codec::FourCc(f) = u.codec else {
        return None;
    };
    let mut b = BytesMut::with_capacity(u.data.len() + 6);
    if &f == b"mp4a" && matches!(u.packet, Packet::Config | Packet::Coded) {
        // Legacy AAC: the rate/size/type bits are fixed for AAC.
        b.put_u8(0xaf);
        b.put_u8(if u.packet == Packet::Config { 0 } else { 1 });
    } else {
        let ptype = match u.packet {
            Packet::Config => 0,
            Packet::End => 2,
            Packet::ChannelConfig => 4,
            _ => 1,
        };
        b.put_u8(0x90 | ptype);
        b.put_slice(&f);
    }
    b.put_slice(u.data);
    Some(b.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Split;

    fn frame(kind: FrameKind, payload: &[u8]) -> Frame {
        let info = match kind {
            FrameKind::Video => crate::flv::video_info(payload).unwrap(),
            FrameKind::Audio => crate::flv::audio_info(payload).unwrap(),
            FrameKind::Data => Default::default(),
        };
        Frame::new(kind, 40, info, Bytes::copy_from_slice(payload), 4096, false)
    }

    fn meta() -> Frame {
        let values = [
            Amf::str("onMetaData"),
            amf::object([
                ("width", Amf::Number(320.0)),
                ("framerate", Amf::Number(25.0)),
            ]),
        ];
        frame(FrameKind::Data, &amf::encode_all(&values))
    }

    #[test]
    fn ffmpeg_renditions_become_plain_streams() {
        let mut s = Splitter::new(Split::ById);
        let aac = [0xaf, 0, 0x12, 0x10];
        let cfg0 = [0x17, 0, 0, 0, 0, 1, 100, 0, 31];
        let key0 = [0x17, 1, 0, 0, 0, 0x65];
        // A plain stream is not split.
        for (kind, p) in [
            (FrameKind::Audio, &aac[..]),
            (FrameKind::Video, &cfg0[..]),
            (FrameKind::Video, &key0[..]),
        ] {
            assert!(s.frame(&frame(kind, p)).is_empty());
        }
        assert!(s.frame(&meta()).is_empty());
        // A second track's configuration starts both renditions, each with
        // metadata (track 1's without track 0's size), audio and video
        // configuration, in that order.
        let cfg1 = [0x96, 0x00, b'a', b'v', b'c', b'1', 1, 1, 66, 0, 11];
        let out = s.frame(&frame(FrameKind::Video, &cfg1));
        let tracks: Vec<_> = out.iter().map(|o| (o.track, o.kind)).collect();
        use FrameKind::{Audio, Data, Video};
        assert_eq!(
            tracks,
            [
                (0, Data),
                (0, Audio),
                (0, Video),
                (1, Data),
                (1, Audio),
                (1, Video)
            ]
        );
        let m0 = amf::decode_all(&out[0].payload).unwrap();
        assert_eq!(m0[1].get("width").and_then(Amf::as_f64), Some(320.0));
        let m1 = amf::decode_all(&out[3].payload).unwrap();
        assert!(m1[1].get("width").is_none() && m1[1].get("framerate").is_some());
        assert_eq!(&out[1].payload[..], &aac);
        assert_eq!(&out[2].payload[..], &cfg0, "track 0 passes as is");
        assert_eq!(&out[5].payload[..], &[0x17, 0, 0, 0, 0, 1, 66, 0, 11]);
        // Coded frames: a legacy AVC tag with the composition offset.
        let key1 = [0x96, 0x01, b'a', b'v', b'c', b'1', 1, 0, 0, 80, 0x65];
        let out = s.frame(&frame(FrameKind::Video, &key1));
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0].payload[..], &[0x17, 1, 0, 0, 80, 0x65]);
        // Audio goes to both renditions; a second audio track to none.
        let out = s.frame(&frame(FrameKind::Audio, &[0xaf, 1, 0x21]));
        assert_eq!(out.len(), 2);
        let a1 = [0x95, 0x01, b'm', b'p', b'4', b'a', 1, 0x21];
        assert!(s.frame(&frame(FrameKind::Audio, &a1)).is_empty());
        // After a lag, inter frames wait for their track's keyframe.
        s.lagged();
        let inter1 = [0xa6, 0x01, b'a', b'v', b'c', b'1', 1, 0, 0, 0, 0x41];
        assert!(s.frame(&frame(FrameKind::Video, &inter1)).is_empty());
        assert_eq!(s.frame(&frame(FrameKind::Video, &key1)).len(), 1);
        assert_eq!(s.frame(&frame(FrameKind::Video, &inter1)).len(), 1);
    }

    #[test]
    fn named_suffixes_leave_other_tracks_out_and_hevc_stays_enhanced() {
        let cfg0 = [0x17, 0, 0, 0, 0, 1, 100, 0, 31];
        let cfg1 = [0x96, 0x00, b'h', b'v', b'c', b'1', 1, 1, 2];
        let mut s = Splitter::new(Split::Suffixes(vec!["_hi".into()]));
        assert!(s.frame(&frame(FrameKind::Video, &cfg0)).is_empty());
        let out = s.frame(&frame(FrameKind::Video, &cfg1));
        assert!(out.iter().all(|o| o.track == 0), "no suffix for track 1");
        let mut s = Splitter::new(Split::ById);
        s.frame(&frame(FrameKind::Video, &cfg0));
        let out = s.frame(&frame(FrameKind::Video, &cfg1));
        assert_eq!(&out[1].payload[..], &[0x90, b'h', b'v', b'c', b'1', 1, 2]);
        let coded = [0xa6, 0x01, b'h', b'v', b'c', b'1', 1, 0, 0, 40, 9];
        let out = s.frame(&frame(FrameKind::Video, &coded));
        assert_eq!(
            &out[0].payload[..],
            &[0xa1, b'h', b'v', b'c', b'1', 0, 0, 40, 9]
        );
    }
}
