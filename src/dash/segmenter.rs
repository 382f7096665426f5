//! Cuts one stream into DASH fragments and keeps its manifest, without I/O,
//! as nginx-rtmp's dash module does: one fMP4 track per file (`.m4v` for
//! video, `.m4a` for audio), an init segment per track written with the
//! first manifest, fragments named by their start time in milliseconds,
//! cut at the first video keyframe once `dash_fragment` passed (or at twice
//! that whatever comes), and a dynamic MPD whose SegmentTimeline lists the
//! newest `dash_playlist_length / dash_fragment` fragments.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::PathBuf;

use bytes::Bytes;

use crate::fmp4::{self, Codec, Sample, Track};

pub use crate::config::dash::DashConf;

/// What the I/O side must do, in order (files written whole).
#[derive(Debug, PartialEq, Eq)]
pub enum DashOp {
    Write {
        path: PathBuf,
        data: Bytes,
    },
    Remove(PathBuf),
    /// The manifest at this path was rewritten (`on_playlist`).
    Playlist(PathBuf),
}

/// What the manifest says of the media, from metadata and configurations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Media {
    pub width: u32,
    pub height: u32,
    pub frame_rate: u32,
    /// kbit/s, from metadata.
    pub video_rate: u32,
    pub audio_rate: u32,
    pub sample_rate: u32,
    pub channels: u32,
}

struct Pending {
    data: Bytes,
    dts: u64,
    cts: i32,
    key: bool,
}

struct TrackState {
    track: Track,
    samples: Vec<Pending>,
    bytes: usize,
    /// The duration of the last sample written, for the next last one.
    last_duration: u32,
    /// A keyframe came: video samples are taken from it on.
    keyed: bool,
}

/// A fragment in the timeline: start and duration, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Frag {
    t: u64,
    d: u64,
}

/// A fragment's media data is cut here whatever the keyframes say.
const MAX_MDAT: usize = 10 << 20;

pub struct Segmenter {
    conf: DashConf,
    name: String,
    video: Option<TrackState>,
    audio: Option<TrackState>,
    /// Start of the open fragment.
    open: Option<u64>,
    frags: VecDeque<Frag>,
    retired: VecDeque<(Frag, u64)>,
    seq: u32,
    init_written: bool,
    /// Wall-clock ms of the first fragment (availabilityStartTime).
    start_wall: u64,
    media: Media,
}

impl Segmenter {
    pub fn new(conf: DashConf, name: &str) -> Segmenter {
        Segmenter {
            conf,
            name: name.to_owned(),
            video: None,
            audio: None,
            open: None,
            frags: VecDeque::new(),
            retired: VecDeque::new(),
            seq: 0,
            init_written: false,
            start_wall: 0,
            media: Media::default(),
        }
    }

    pub fn manifest_path(&self) -> PathBuf {
        if self.conf.nested {
            self.conf.path.join(&self.name).join("index.mpd")
        } else {
            self.conf.path.join(format!("{}.mpd", self.name))
        }
    }

    fn file(&self, what: &str, ext: &str) -> PathBuf {
        if self.conf.nested {
            self.conf
                .path
                .join(&self.name)
                .join(format!("{what}.{ext}"))
        } else {
            self.conf.path.join(format!("{}-{what}.{ext}", self.name))
        }
    }

    /// What the manifest says of the media (from metadata and the
    /// configurations), as it changes.
    pub fn set_media(&mut self, media: Media) {
        self.media = media;
    }

    /// A video configuration record (H.264, HEVC or AV1).
    pub fn video_config(&mut self, codec: Codec, width: u32, height: u32) {
        let track = Track {
            id: 1,
            codec,
            timescale: 1000,
            width: width.min(0xffff) as u16,
            height: height.min(0xffff) as u16,
            sample_rate: 0,
            channels: 0,
        };
        match &mut self.video {
            Some(v) => v.track = track,
            None => {
                self.video = Some(TrackState {
                    track,
                    samples: Vec::new(),
                    bytes: 0,
                    last_duration: 40,
                    keyed: false,
                })
            }
        }
    }

    /// An AAC AudioSpecificConfig.
    pub fn audio_config(&mut self, asc: Bytes, sample_rate: u32, channels: u32) {
        let track = Track {
            id: 1,
            codec: Codec::Aac(asc),
            timescale: 1000,
            width: 0,
            height: 0,
            sample_rate,
            channels: channels.min(0xffff) as u16,
        };
        match &mut self.audio {
            Some(a) => a.track = track,
            None => {
                self.audio = Some(TrackState {
                    track,
                    samples: Vec::new(),
                    bytes: 0,
                    last_duration: 23,
                    keyed: true,
                })
            }
        }
    }

    /// A coded video frame (the configuration record's NAL length form).
    pub fn video(
        &mut self,
        data: Bytes,
        ts: u64,
        cts: i32,
        key: bool,
        wall_ms: u64,
        ops: &mut Vec<DashOp>,
    ) {
        if self.video.is_none() {
            return;
        }
        self.update(key, ts, wall_ms, ops);
        if self.open.is_none() {
            return;
        }
        if let Some(v) = self.video.as_mut() {
            if !v.keyed && !key {
                // Nothing decodes before the first keyframe.
                return;
            }
            v.keyed = true;
            v.bytes += data.len();
            v.samples.push(Pending {
                data,
                dts: ts,
                cts,
                key,
            });
        }
    }

    /// A raw AAC frame.
    pub fn audio(&mut self, data: Bytes, ts: u64, wall_ms: u64, ops: &mut Vec<DashOp>) {
        if self.audio.is_none() {
            return;
        }
        self.update(false, ts, wall_ms, ops);
        if self.open.is_none() {
            return;
        }
        if let Some(a) = self.audio.as_mut() {
            a.bytes += data.len();
            a.samples.push(Pending {
                data,
                dts: ts,
                cts: 0,
                key: true,
            });
        }
    }

    /// nginx-rtmp's `update_fragments`.
    fn update(&mut self, mut boundary: bool, ts: u64, wall_ms: u64, ops: &mut Vec<DashOp>) {
        let has_video = self.video.is_some();
        if self.open.is_none() {
            // The first fragment opens with the first frame, as nginx-rtmp's
            // (its video starts at the first keyframe: see `video`).
            if self.start_wall == 0 {
                self.start_wall = wall_ms;
            }
            self.open = Some(ts);
            return;
        }
        let frag = self.conf.fragment.as_millis() as u64;
        let hit = match self.open {
            Some(start) if ts >= start => {
                let d = ts - start;
                if d >= frag * 2 {
                    boundary = true;
                }
                d >= frag
            }
            Some(start) => start - ts > 1000,
            None => false,
        };
        if has_video && !hit {
            boundary = false;
        }
        if !has_video && self.audio.is_some() {
            boundary = hit;
        }
        let big = |t: &Option<TrackState>| t.as_ref().is_some_and(|t| t.bytes >= MAX_MDAT);
        if big(&self.video) || big(&self.audio) {
            boundary = true;
        }
        if boundary {
            self.close(ts, wall_ms, ops);
            self.open = Some(ts);
        }
    }

    /// Writes the open fragment's files (ending at `end`) and the manifest.
    fn close(&mut self, end: u64, wall_ms: u64, ops: &mut Vec<DashOp>) {
        let Some(start) = self.open.take() else {
            return;
        };
        if !self.init_written {
            self.init_written = true;
            for (t, ext) in [(&self.video, "m4v"), (&self.audio, "m4a")] {
                if let Some(t) = t {
                    ops.push(DashOp::Write {
                        path: self.file("init", ext),
                        data: Bytes::from(fmp4::init_segment(std::slice::from_ref(&t.track))),
                    });
                }
            }
        }
        self.seq += 1;
        let seq = self.seq;
        for (which, ext) in [(0, "m4v"), (1, "m4a")] {
            let path = self.file(&start.to_string(), ext);
            let t = if which == 0 {
                &mut self.video
            } else {
                &mut self.audio
            };
            let Some(t) = t.as_mut() else { continue };
            if t.samples.is_empty() {
                continue;
            }
            let pending = std::mem::take(&mut t.samples);
            t.bytes = 0;
            let mut samples = Vec::with_capacity(pending.len());
            for (i, p) in pending.iter().enumerate() {
                let next = pending.get(i + 1).map_or(end, |n| n.dts);
                let duration = if next > p.dts {
                    (next - p.dts).min(u32::MAX as u64) as u32
                } else {
                    t.last_duration
                };
                t.last_duration = duration;
                samples.push(Sample {
                    data: p.data.clone(),
                    duration,
                    cts: p.cts,
                    key: p.key,
                });
            }
            let base = pending[0].dts;
            ops.push(DashOp::Write {
                path,
                data: Bytes::from(fmp4::media_segment(seq, &t.track, base, &samples)),
            });
        }
        self.frags.push_back(Frag {
            t: start,
            d: end.saturating_sub(start),
        });
        while self.frags.len() > self.conf.window() {
            if let Some(f) = self.frags.pop_front() {
                self.retired.push_back((f, end));
            }
        }
        let path = self.manifest_path();
        ops.push(DashOp::Write {
            path: path.clone(),
            data: Bytes::from(self.manifest(wall_ms)),
        });
        ops.push(DashOp::Playlist(path));
        if self.conf.cleanup {
            let keep = self.conf.playlist_length.as_millis() as u64;
            while self
                .retired
                .front()
                .is_some_and(|(_, at)| end.saturating_sub(*at) >= keep)
            {
                if let Some((f, _)) = self.retired.pop_front() {
                    for (t, ext) in [(self.video.is_some(), "m4v"), (self.audio.is_some(), "m4a")] {
                        if t {
                            ops.push(DashOp::Remove(self.file(&f.t.to_string(), ext)));
                        }
                    }
                }
            }
        }
    }

    /// Publishing ended: the last fragment, up to the last frame's
    /// timestamp (as nginx-rtmp measures it), and the manifest.
    pub fn end(&mut self, last_ts: u64, wall_ms: u64, ops: &mut Vec<DashOp>) {
        self.close(last_ts, wall_ms, ops);
    }

    /// The MPD, as nginx-rtmp writes it.
    fn manifest(&self, wall_ms: u64) -> String {
        let m = &self.media;
        let iso = |ms: u64| {
            chrono::DateTime::from_timestamp_millis(ms as i64)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default()
        };
        let frag_s = self.conf.fragment.as_millis() as u64 / 1000;
        let mut s = String::new();
        let _ = write!(
            s,
            "<?xml version=\"1.0\"?>\n<MPD\n    type=\"dynamic\"\n    xmlns=\"urn:mpeg:dash:schema:mpd:2011\"\n    \
             availabilityStartTime=\"{}\"\n    publishTime=\"{}\"\n    minimumUpdatePeriod=\"PT{frag_s}S\"\n    \
             minBufferTime=\"PT{frag_s}S\"\n    timeShiftBufferDepth=\"PT{}S\"\n    \
             profiles=\"urn:hbbtv:dash:profile:isoff-live:2012,urn:mpeg:dash:profile:isoff-live:2011\"\n    \
             xmlns:xsi=\"http://www.w3.org/2011/XMLSchema-instance\"\n    \
             xsi:schemaLocation=\"urn:mpeg:DASH:schema:MPD:2011 DASH-MPD.xsd\">\n  <Period start=\"PT0S\" id=\"dash\">\n",
            iso(self.start_wall),
            iso(wall_ms),
            self.conf.fragment.as_millis() as u64 / 250 + 1
        );
        let (name, sep) = if self.conf.nested {
            ("", "")
        } else {
            (self.name.as_str(), "-")
        };
        let timeline = |s: &mut String| {
            for f in &self.frags {
                let _ = writeln!(s, "             <S t=\"{}\" d=\"{}\"/>", f.t, f.d);
            }
        };
        if let Some(v) = &self.video {
            let (codecs, id) = video_codecs(&v.track.codec);
            let _ = write!(
                s,
                "    <AdaptationSet\n        id=\"1\"\n        segmentAlignment=\"true\"\n        maxWidth=\"{w}\"\n        \
                 maxHeight=\"{h}\"\n        maxFrameRate=\"{r}\">\n      <Representation\n          id=\"{n}_{id}\"\n          \
                 mimeType=\"video/mp4\"\n          codecs=\"{codecs}\"\n          width=\"{w}\"\n          height=\"{h}\"\n          \
                 frameRate=\"{r}\"\n          startWithSAP=\"1\"\n          bandwidth=\"{b}\">\n        <SegmentTemplate\n            \
                 timescale=\"1000\"\n            media=\"{name}{sep}$Time$.m4v\"\n            initialization=\"{name}{sep}init.m4v\">\n          \
                 <SegmentTimeline>\n",
                w = m.width,
                h = m.height,
                r = m.frame_rate,
                n = self.name,
                b = m.video_rate as u64 * 1000,
            );
            timeline(&mut s);
            s.push_str("          </SegmentTimeline>\n        </SegmentTemplate>\n      </Representation>\n    </AdaptationSet>\n");
        }
        if let Some(a) = &self.audio {
            let sbr = matches!(&a.track.codec, Codec::Aac(asc) if asc.first().is_some_and(|b| b >> 3 == 5));
            let _ = write!(
                s,
                "    <AdaptationSet\n        id=\"2\"\n        segmentAlignment=\"true\">\n      <AudioChannelConfiguration\n          \
                 schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\"\n          value=\"1\"/>\n      \
                 <Representation\n          id=\"{n}_AAC\"\n          mimeType=\"audio/mp4\"\n          codecs=\"mp4a.{c}\"\n          \
                 audioSamplingRate=\"{r}\"\n          startWithSAP=\"1\"\n          bandwidth=\"{b}\">\n        <SegmentTemplate\n            \
                 timescale=\"1000\"\n            media=\"{name}{sep}$Time$.m4a\"\n            initialization=\"{name}{sep}init.m4a\">\n          \
                 <SegmentTimeline>\n",
                n = self.name,
                c = if sbr { "40.5" } else { "40.2" },
                r = m.sample_rate,
                b = m.audio_rate as u64 * 1000,
            );
            timeline(&mut s);
            s.push_str("          </SegmentTimeline>\n        </SegmentTemplate>\n      </Representation>\n    </AdaptationSet>\n");
        }
        s.push_str("  </Period>\n");
        if let Some((scheme, uri)) = &self.conf.clock {
            let _ = write!(
                s,
                "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:{scheme}:2014\"\n       value=\"{uri}\" />\n"
            );
        }
        s.push_str("</MPD>\n");
        s
    }
}

/// The RFC 6381 codec string of a video track, and the Representation id
/// suffix nginx-rtmp uses (`H264`).
fn video_codecs(c: &Codec) -> (String, &'static str) {
    match c {
        Codec::Avc(r) if r.len() >= 4 => {
            (format!("avc1.{:02x}{:02x}{:02x}", r[1], r[2], r[3]), "H264")
        }
        Codec::Hevc(r) if r.len() >= 13 => {
            // general_profile_space/tier/idc, compatibility flags (bit
            // reversed), level, as ISO/IEC 14496-15 spells the string.
            let space = ["", "A", "B", "C"][(r[1] >> 6) as usize];
            let tier = if r[1] & 0x20 != 0 { 'H' } else { 'L' };
            let compat = u32::from_be_bytes([r[2], r[3], r[4], r[5]]).reverse_bits();
            (
                format!("hvc1.{space}{}.{compat:X}.{tier}{}.B0", r[1] & 0x1f, r[12]),
                "HEVC",
            )
        }
        Codec::Av1(r) if r.len() >= 3 => {
            let profile = r[1] >> 5;
            let level = r[1] & 0x1f;
            let tier = if r[2] & 0x80 != 0 { 'H' } else { 'M' };
            let bits = if r[2] & 0x40 != 0 {
                if r[2] & 0x20 != 0 {
                    12
                } else {
                    10
                }
            } else {
                8
            };
            (format!("av01.{profile}.{level:02}{tier}.{bits:02}"), "AV1")
        }
        Codec::Avc(_) => ("avc1".into(), "H264"),
        Codec::Hevc(_) => ("hvc1".into(), "HEVC"),
        _ => ("av01".into(), "AV1"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn conf() -> DashConf {
        DashConf {
            path: "/dash".into(),
            fragment: Duration::from_secs(2),
            playlist_length: Duration::from_secs(6),
            cleanup: true,
            nested: false,
            clock: None,
        }
    }

    fn media() -> Media {
        Media {
            width: 320,
            height: 240,
            frame_rate: 25,
            video_rate: 500,
            audio_rate: 64,
            sample_rate: 44100,
            channels: 2,
        }
    }

    fn feed(seg: &mut Segmenter, from_s: u64, secs: u64) -> Vec<DashOp> {
        let avc = Bytes::from_static(&[
            1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 3, 0x67, 1, 2, 1, 0, 2, 0x68, 3,
        ]);
        seg.video_config(Codec::Avc(avc), 320, 240);
        seg.audio_config(Bytes::from_static(&[0x12, 0x10]), 44100, 2);
        seg.set_media(media());
        let mut ops = Vec::new();
        for i in from_s * 25..(from_s + secs) * 25 {
            let ts = i * 40;
            seg.video(
                Bytes::from_static(&[0, 0, 0, 2, 0x65, 1]),
                ts,
                0,
                i % 25 == 0,
                1_000_000,
                &mut ops,
            );
            seg.audio(Bytes::from_static(&[0x21; 10]), ts, 1_000_000, &mut ops);
        }
        seg.end((from_s + secs) * 1000, 1_002_000, &mut ops);
        ops
    }

    fn writes(ops: &[DashOp]) -> Vec<String> {
        ops.iter()
            .filter_map(|o| match o {
                DashOp::Write { path, .. } => Some(path.display().to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn files_are_named_and_ordered_as_nginx_rtmp_names_them() {
        let mut s = Segmenter::new(conf(), "cam");
        let ops = feed(&mut s, 0, 5);
        let w = writes(&ops);
        assert_eq!(
            &w[..5],
            [
                "/dash/cam-init.m4v",
                "/dash/cam-init.m4a",
                "/dash/cam-0.m4v",
                "/dash/cam-0.m4a",
                "/dash/cam.mpd"
            ]
        );
        assert!(w.contains(&"/dash/cam-2000.m4v".to_owned()));
        assert!(w.contains(&"/dash/cam-4000.m4a".to_owned()));
        let mut c = conf();
        c.nested = true;
        let mut s = Segmenter::new(c, "cam");
        let w = writes(&feed(&mut s, 0, 3));
        assert_eq!(
            &w[..3],
            [
                "/dash/cam/init.m4v",
                "/dash/cam/init.m4a",
                "/dash/cam/0.m4v"
            ]
        );
        assert!(w.contains(&"/dash/cam/index.mpd".to_owned()));
    }

    #[test]
    fn the_timeline_slides_and_old_fragments_go() {
        let mut s = Segmenter::new(conf(), "cam");
        let ops = feed(&mut s, 0, 16);
        let mpd = ops
            .iter()
            .rev()
            .find_map(|o| match o {
                DashOp::Write { path, data } if path.ends_with("cam.mpd") => {
                    Some(String::from_utf8(data.to_vec()).unwrap())
                }
                _ => None,
            })
            .unwrap();
        // 6 s / 2 s: the three newest fragments, in both adaptation sets.
        let entries: Vec<&str> = mpd.lines().filter(|l| l.contains("<S t=")).collect();
        assert_eq!(
            entries,
            [
                "             <S t=\"10000\" d=\"2000\"/>",
                "             <S t=\"12000\" d=\"2000\"/>",
                "             <S t=\"14000\" d=\"2000\"/>",
                "             <S t=\"10000\" d=\"2000\"/>",
                "             <S t=\"12000\" d=\"2000\"/>",
                "             <S t=\"14000\" d=\"2000\"/>",
            ]
        );
        assert!(mpd.contains("codecs=\"avc1.64001f\"") && mpd.contains("bandwidth=\"500000\""));
        assert!(
            mpd.contains("timeShiftBufferDepth=\"PT9S\"")
                && mpd.contains("minimumUpdatePeriod=\"PT2S\"")
        );
        let removed: Vec<String> = ops
            .iter()
            .filter_map(|o| match o {
                DashOp::Remove(p) => Some(p.display().to_string()),
                _ => None,
            })
            .collect();
        assert!(
            removed.contains(&"/dash/cam-0.m4v".to_owned()),
            "{removed:?}"
        );
        assert!(!removed.contains(&"/dash/cam-8000.m4v".to_owned()));
        assert_eq!(
            ops.iter()
                .filter(|o| matches!(o, DashOp::Playlist(_)))
                .count(),
            8
        );
    }

    #[test]
    fn clock_compensation_adds_utc_timing() {
        let mut c = conf();
        c.clock = Some(("http-head", "http://t.example/time".into()));
        let mut s = Segmenter::new(c, "cam");
        let ops = feed(&mut s, 0, 3);
        let DashOp::Write { data, .. } = ops
            .iter()
            .rev()
            .find(|o| matches!(o, DashOp::Write { path, .. } if path.ends_with("cam.mpd")))
            .unwrap()
        else {
            unreachable!()
        };
        let mpd = String::from_utf8_lossy(data);
        assert!(mpd.ends_with(
            "  </Period>\n  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-head:2014\"\n       value=\"http://t.example/time\" />\n</MPD>\n"
        ), "{mpd}");
    }

    #[test]
    fn codec_strings() {
        // HEVC Main, level 3 (90), from an hvcC.
        let hvcc = Bytes::from_static(&[1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 90]);
        assert_eq!(video_codecs(&Codec::Hevc(hvcc)).0, "hvc1.1.6.L90.B0");
        // AV1 main profile, level 8, Main tier, 8 bit.
        let av1c = Bytes::from_static(&[0x81, 0x08, 0x0c, 0]);
        assert_eq!(video_codecs(&Codec::Av1(av1c)).0, "av01.0.08M.08");
    }
}
