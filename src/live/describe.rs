//! What a stream carries, for `/stat` and the dashboard: codec names,
//! profile and level, resolution, audio format.
//!
//! Read on demand from the stream's cached metadata and sequence headers,
//! never from the per-frame path: a `/stat` request pays for it, the
//! publisher does not. Names follow nginx-rtmp's (`H264`, `AAC`, `High`,
//! `LC`...) so existing stat.xsl pages show the same words; Enhanced RTMP
//! codecs get their common names (`HEVC`, `AV1`, `VP9`, `Opus`).

use serde::Serialize;

use super::frame::Frame;
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

/// Describes a stream from its cached onMetaData and sequence headers.
pub fn describe(meta: Option<&Frame>, video: Option<&Frame>, audio: Option<&Frame>) -> MediaDesc {
    let mut d = MediaDesc::default();
    if let Some(m) = meta {
        apply_meta(&mut d, &m.payload());
    }
    if let Some(v) = video {
        apply_video_config(&mut d.video, v.info.codec_id, v.info.fourcc, &v.payload());
    }
    if let Some(a) = audio {
        apply_audio_config(&mut d.audio, a.info.codec_id, a.info.fourcc, &a.payload());
    }
    d
}

fn num(o: &Amf, key: &str) -> Option<f64> {
    o.get(key).and_then(Amf::as_f64).filter(|v| v.is_finite())
}

fn apply_meta(d: &mut MediaDesc, payload: &[u8]) {
    let Ok(values) = amf::decode_all(payload) else {
        return;
    };
    let Some(o) = values.iter().find(|v| v.props().is_some()) else {
        return;
    };
    let clamp = |v: f64| v.clamp(0.0, u32::MAX as f64) as u32;
    d.video.width = num(o, "width").map_or(0, clamp);
    d.video.height = num(o, "height").map_or(0, clamp);
    d.video.frame_rate = num(o, "framerate")
        .or_else(|| num(o, "fps"))
        .map_or(0, |f| clamp(f.round()));
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

fn apply_video_config(v: &mut VideoDesc, codec_id: u8, fourcc: Option<[u8; 4]>, p: &[u8]) {
    let (name, record) = match fourcc {
        // Enhanced: byte 0, FourCC, then the configuration record.
        Some(f) => (fourcc_name(&f), p.get(5..)),
        // Legacy AVC/HEVC: byte 0, packet type, composition time (3).
        None => (video_codec_name(codec_id).to_owned(), p.get(5..)),
    };
    if !name.is_empty() {
        v.codec = name;
    }
    let Some(rec) = record else { return };
    if v.codec == "H264" && rec.len() >= 4 && rec[0] == 1 {
        // AVCDecoderConfigurationRecord: version, profile, compat, level.
        v.profile = avc_profile_name(rec[1]).to_owned();
        v.compat = rec[2];
        v.level = format!("{:.1}", rec[3] as f64 / 10.0);
    }
}

fn apply_audio_config(a: &mut AudioDesc, codec_id: u8, fourcc: Option<[u8; 4]>, p: &[u8]) {
    let (name, asc) = match fourcc {
        Some(f) => (fourcc_name(&f), p.get(5..)),
        None => (audio_codec_name(codec_id).to_owned(), p.get(2..)),
    };
    if !name.is_empty() {
        a.codec = name;
    }
    if a.codec != "AAC" {
        return;
    }
    // AudioSpecificConfig: object type (5 bits), frequency index (4),
    // channel configuration (4).
    let Some(&[b0, b1, ..]) = asc else { return };
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

    fn frame(kind: FrameKind, payload: &[u8]) -> Frame {
        let info = match kind {
            FrameKind::Video => video_info(payload).unwrap(),
            FrameKind::Audio => audio_info(payload).unwrap(),
            FrameKind::Data => crate::flv::MediaInfo {
                keyframe: false,
                sequence_header: false,
                codec_id: 0,
                fourcc: None,
            },
        };
        Frame::new(kind, 0, info, Bytes::copy_from_slice(payload), 128, false)
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
            Some(&frame(FrameKind::Video, &avc)),
            Some(&frame(FrameKind::Audio, &aac)),
        );
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
        let d = describe(None, Some(&frame(FrameKind::Video, &hevc)), None);
        assert_eq!(d.video.codec, "HEVC");
        assert_eq!(d.video.profile, "");
        // Metadata that is not AMF is ignored, not an error.
        let d = describe(Some(&frame(FrameKind::Data, &[0xff, 1, 2])), None, None);
        assert_eq!(d, MediaDesc::default());
    }
}
