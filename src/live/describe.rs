//! What a stream carries, for `/stat` and the dashboard: codec names,
//! profile and level, resolution, audio format.
//!
//! Read on demand from the stream's cached metadata and sequence headers,
//! never from the per-frame path: a `/stat` request pays for it, the
//! publisher does not. Names follow nginx-rtmp's (`H264`, `AAC`, `High`,
//! `LC`...) so existing stat.xsl pages show the same words; Enhanced RTMP
//! codecs get their common names (`HEVC`, `AV1`, `VP9`, `Opus`).

use serde::Serialize;

use std::sync::Arc;

use super::frame::{Frame, FrameKind};
use crate::flv::{body, Codec, Media, Packet};
use crate::rtmp::amf::{self, Amf};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VideoDesc {
    pub width: u32,
    pub height: u32,
    pub frame_rate: u32,
    pub codec: String,
    pub profile: String,
    pub compat: u8,
    /// AVC level as nginx prints it (`3.1`); empty when unknown.
    pub level: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AudioDesc {
    pub codec: String,
    pub profile: String,
    pub channels: u32,
    pub sample_rate: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MediaDesc {
    pub video: VideoDesc,
    pub audio: AudioDesc,
    /// Every track of an Enhanced RTMP multitrack stream, video first,
    /// by id; empty for the usual one video and one audio track.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<TrackDesc>,
}

/// One track of a multitrack stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackDesc {
    #[serde(rename = "type", serialize_with = "media_name")]
    pub kind: Media,
    pub id: u8,
    /// For video tracks; codec and profile from its configuration record,
    /// size from `videoTrackIdInfoMap`, else from the H.264 or HEVC SPS (track 0:
    /// the top-level fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoDesc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioDesc>,
}

fn media_name<S: serde::Serializer>(m: &Media, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match m {
        Media::Video => "video",
        Media::Audio => "audio",
    })
}

/// nginx-rtmp's names for legacy FLV video codec ids.
fn video_codec_name(id: u8) -> &'static str {
    match id {
        1 => "Jpeg",
        2 => "Sorenson-H263",
        3 => "Screen",
        4 => "On2-VP6",
        5 => "On2-VP6-Alpha",
        6 => "ScreenVideo2",
        7 => "H264",
        12 => "HEVC",
        _ => "",
    }
}

/// nginx-rtmp's names for legacy FLV audio formats.
fn audio_codec_name(id: u8) -> &'static str {
    match id {
        0 => "Uncompressed",
        1 => "ADPCM",
        2 => "MP3",
        3 => "LinearLE",
        4 => "Nellymoser16",
        5 => "Nellymoser8",
        6 => "Nellymoser",
        7 => "G711A",
        8 => "G711U",
        10 => "AAC",
        11 => "Speex",
        14 => "MP3-8K",
        15 => "DeviceSpecific",
        _ => "",
    }
}

fn fourcc_name(f: &[u8; 4]) -> String {
    match f {
        b"avc1" => "H264",
        b"hvc1" => "HEVC",
        b"av01" => "AV1",
        b"vp09" => "VP9",
        b"vp08" => "VP8",
        b"mp4a" => "AAC",
        b"Opus" => "Opus",
        b".mp3" => "MP3",
        b"fLaC" => "FLAC",
        b"ac-3" => "AC3",
        b"ec-3" => "EAC3",
        _ => return String::from_utf8_lossy(f).into_owned(),
    }
    .to_owned()
}

fn avc_profile_name(p: u8) -> &'static str {
    match p {
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 => "High 10",
        122 => "High 4:2:2",
        244 => "High 4:4:4",
        _ => "",
    }
}

fn aac_profile_name(object_type: u8) -> &'static str {
    match object_type {
        1 => "Main",
        2 => "LC",
        3 => "SSR",
        4 => "LTP",
        5 => "HE",
        29 => "HEv2",
        _ => "",
    }
}

const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Describes a stream from its cached onMetaData and decoder
/// configurations: the default (id 0) video and audio tracks at the top,
/// and with Enhanced RTMP multitrack, every track in `tracks`.
pub fn describe<'a>(
    meta: Option<&Frame>,
    configs: impl Iterator<Item = &'a Arc<Frame>>,
) -> MediaDesc {
    let mut d = MediaDesc::default();
    let meta = meta.and_then(|m| amf::decode_all(&m.payload()).ok());
    let props = meta
        .as_ref()
        .and_then(|v| v.iter().find(|v| v.props().is_some()));
    if let Some(o) = props {
        apply_meta(&mut d, o);
    }
    let mut multitrack = false;
    for f in configs {
        let media = match f.kind {
            FrameKind::Video => Media::Video,
            FrameKind::Audio => Media::Audio,
            FrameKind::Data => continue,
        };
        let payload = f.payload();
        let Ok(m) = body::parse(media, &payload) else {
            continue;
        };
        if m.packet() != Packet::Config {
            continue;
        }
        for u in m.units().map_while(Result::ok) {
            multitrack |= u.track != 0;
            let mut t = TrackDesc {
                kind: media,
                id: u.track,
                video: None,
                audio: None,
            };
            match media {
                Media::Video => {
                    let mut v = VideoDesc::default();
                    apply_video_config(&mut v, u.codec, u.data);
                    let info = props.and_then(|o| track_info(o, "videoTrackIdInfoMap", u.track));
                    if let Some(o) = info {
                        apply_video_meta(&mut v, o);
                    }
                    if u.track == 0 {
                        apply_video_config(&mut d.video, u.codec, u.data);
                        (v.width, v.height, v.frame_rate) =
                            (d.video.width, d.video.height, d.video.frame_rate);
                    }
                    t.video = Some(v);
                }
                Media::Audio => {
                    let mut a = AudioDesc::default();
                    apply_audio_config(&mut a, u.codec, u.data);
                    if u.track == 0 {
                        apply_audio_config(&mut d.audio, u.codec, u.data);
                    }
                    t.audio = Some(a);
                }
            }
            d.tracks.retain(|o| (o.kind, o.id) != (media, u.track));
            d.tracks.push(t);
        }
    }
    if !multitrack {
        d.tracks.clear();
    }
    d.tracks.sort_by_key(|t| (t.kind == Media::Audio, t.id));
    d
}

/// `videoTrackIdInfoMap` / `audioTrackIdInfoMap` entry of a track: an
/// object keyed by the track id.
fn track_info<'a>(o: &'a Amf, map: &str, id: u8) -> Option<&'a Amf> {
    o.get(map)?.get(&id.to_string())
}

fn num(o: &Amf, key: &str) -> Option<f64> {
    o.get(key).and_then(Amf::as_f64).filter(|v| v.is_finite())
}

fn clamp(v: f64) -> u32 {
    v.clamp(0.0, u32::MAX as f64) as u32
}

fn apply_video_meta(v: &mut VideoDesc, o: &Amf) {
    v.width = num(o, "width").map_or(v.width, clamp);
    v.height = num(o, "height").map_or(v.height, clamp);
    v.frame_rate = num(o, "framerate")
        .or_else(|| num(o, "fps"))
        .map_or(v.frame_rate, |f| clamp(f.round()));
}

fn apply_meta(d: &mut MediaDesc, o: &Amf) {
    apply_video_meta(&mut d.video, o);
    if let Some(id) = num(o, "videocodecid") {
        d.video.codec = video_codec_name(clamp(id).min(255) as u8).to_owned();
    }
    if let Some(id) = num(o, "audiocodecid") {
        d.audio.codec = audio_codec_name(clamp(id).min(255) as u8).to_owned();
    }
    d.audio.sample_rate = num(o, "audiosamplerate").map_or(0, clamp);
    d.audio.channels = match o.get("stereo") {
        Some(Amf::Boolean(true)) => 2,
        Some(Amf::Boolean(false)) => 1,
        _ => num(o, "audiochannels").map_or(0, clamp),
    };
}

fn codec_name(codec: Codec, legacy: fn(u8) -> &'static str) -> String {
    match codec {
        Codec::FourCc(f) => fourcc_name(&f),
        Codec::Legacy(id) => legacy(id).to_owned(),
        Codec::None => String::new(),
    }
}

/// `rec` is the track's configuration record.
fn apply_video_config(v: &mut VideoDesc, codec: Codec, rec: &[u8]) {
    let name = codec_name(codec, video_codec_name);
    if !name.is_empty() {
        v.codec = name;
    }
    if v.codec == "H264" && rec.len() >= 4 && rec[0] == 1 {
        // AVCDecoderConfigurationRecord: version, profile, compat, level.
        v.profile = avc_profile_name(rec[1]).to_owned();
        v.compat = rec[2];
        v.level = format!("{:.1}", rec[3] as f64 / 10.0);
    }
    let size = match v.codec.as_str() {
        "H264" => crate::flv::sps::avc_record_size(rec),
        "HEVC" => crate::flv::sps::hevc_record_size(rec),
        _ => None,
    };
    if let Some((w, h)) = size {
        (v.width, v.height) = (w, h);
    }
}

/// `asc` is the track's configuration (AudioSpecificConfig for AAC).
fn apply_audio_config(a: &mut AudioDesc, codec: Codec, asc: &[u8]) {
    let name = codec_name(codec, audio_codec_name);
    if !name.is_empty() {
        a.codec = name;
    }
    if a.codec != "AAC" {
        return;
    }
    // AudioSpecificConfig: object type (5 bits), frequency index (4),
    // channel configuration (4).
    let &[b0, b1, ..] = asc else { return };
    let object_type = b0 >> 3;
    let freq = ((b0 & 0x07) << 1) | (b1 >> 7);
    let chan = (b1 >> 3) & 0x0f;
    a.profile = aac_profile_name(object_type).to_owned();
    if let Some(&r) = AAC_RATES.get(freq as usize) {
        a.sample_rate = r;
    }
    if chan > 0 {
        a.channels = chan as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::{audio_info, video_info};
    use crate::live::FrameKind;
    use bytes::Bytes;

    fn frame(kind: FrameKind, payload: &[u8]) -> Arc<Frame> {
        let info = match kind {
            FrameKind::Video => video_info(payload).unwrap(),
            FrameKind::Audio => audio_info(payload).unwrap(),
            FrameKind::Data => crate::flv::MediaInfo {
                keyframe: false,
                sequence_header: false,
                codec_id: 0,
                fourcc: None,
                track: 0,
            },
        };
        Arc::new(Frame::new(
            kind,
            0,
            info,
            Bytes::copy_from_slice(payload),
            128,
            false,
        ))
    }

    #[test]
    fn avc_aac_with_metadata() {
        let meta = amf::encode_all(&[
            Amf::str("onMetaData"),
            amf::object([
                ("width", Amf::Number(1280.0)),
                ("height", Amf::Number(720.0)),
                ("framerate", Amf::Number(29.97)),
                ("videocodecid", Amf::Number(7.0)),
                ("audiocodecid", Amf::Number(10.0)),
                ("audiosamplerate", Amf::Number(48000.0)),
                ("stereo", Amf::Boolean(true)),
            ]),
        ]);
        // AVC sequence header: High profile (100), compat 0, level 3.1.
        let avc = [0x17, 0, 0, 0, 0, 1, 100, 0, 31, 0xff, 0xe1, 0, 0];
        // AAC LC, 44.1 kHz, 2 channels: 0x12 0x10.
        let aac = [0xaf, 0, 0x12, 0x10];
        let d = describe(
            Some(&frame(FrameKind::Data, &meta)),
            [frame(FrameKind::Video, &avc), frame(FrameKind::Audio, &aac)].iter(),
        );
        assert!(d.tracks.is_empty(), "one track of each: no track list");
        assert_eq!(
            (d.video.width, d.video.height, d.video.frame_rate),
            (1280, 720, 30)
        );
        assert_eq!(
            (
                d.video.codec.as_str(),
                d.video.profile.as_str(),
                d.video.level.as_str()
            ),
            ("H264", "High", "3.1")
        );
        assert_eq!(
            (d.audio.codec.as_str(), d.audio.profile.as_str()),
            ("AAC", "LC")
        );
        assert_eq!((d.audio.channels, d.audio.sample_rate), (2, 44100));
    }

    #[test]
    fn enhanced_hevc_and_garbage() {
        let hevc = [0x90, b'h', b'v', b'c', b'1', 1, 2, 3];
        let d = describe(None, [frame(FrameKind::Video, &hevc)].iter());
        assert_eq!(d.video.codec, "HEVC");
        assert_eq!(d.video.profile, "");
        // Metadata that is not AMF is ignored, not an error.
        let d = describe(Some(&frame(FrameKind::Data, &[0xff, 1, 2])), [].iter());
        assert_eq!(d, MediaDesc::default());
    }

    /// ffmpeg 9's layout: track 0 legacy, track 1 in OneTrack messages;
    /// the second video track's size from `videoTrackIdInfoMap`.
    #[test]
    fn multitrack_lists_every_track() {
        let meta = amf::encode_all(&[
            Amf::str("onMetaData"),
            amf::object([
                ("width", Amf::Number(1280.0)),
                ("height", Amf::Number(720.0)),
                (
                    "videoTrackIdInfoMap",
                    amf::object([(
                        "1",
                        amf::object([
                            ("width", Amf::Number(640.0)),
                            ("height", Amf::Number(360.0)),
                        ]),
                    )]),
                ),
            ]),
        ]);
        let configs = [
            frame(FrameKind::Video, &[0x17, 0, 0, 0, 0, 1, 100, 0, 31]),
            frame(
                FrameKind::Video,
                &[0x96, 0x00, b'h', b'v', b'c', b'1', 1, 1, 2],
            ),
            frame(FrameKind::Audio, &[0xaf, 0, 0x12, 0x10]),
            frame(
                FrameKind::Audio,
                &[0x95, 0x00, b'm', b'p', b'4', b'a', 1, 0x11, 0x88],
            ),
            frame(
                FrameKind::Audio,
                &[0x95, 0x04, b'm', b'p', b'4', b'a', 1, 1, 1, 0],
            ),
        ];
        let d = describe(Some(&frame(FrameKind::Data, &meta)), configs.iter());
        assert_eq!(d.video.codec, "H264", "the top level is track 0");
        let t: Vec<_> = d.tracks.iter().map(|t| (t.kind, t.id)).collect();
        assert_eq!(
            t,
            vec![
                (Media::Video, 0),
                (Media::Video, 1),
                (Media::Audio, 0),
                (Media::Audio, 1)
            ]
        );
        let v1 = d.tracks[1].video.as_ref().unwrap();
        assert_eq!((v1.codec.as_str(), v1.width, v1.height), ("HEVC", 640, 360));
        assert_eq!(d.tracks[0].video.as_ref().unwrap().width, 1280);
        let a1 = d.tracks[3].audio.as_ref().unwrap();
        assert_eq!((a1.codec.as_str(), a1.sample_rate), ("AAC", 48000));
        let json = serde_json::to_string(&d.tracks[3]).unwrap();
        assert!(
            json.starts_with(r#"{"type":"audio","id":1,"audio":"#),
            "{json}"
        );
    }
}
