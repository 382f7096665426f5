//! Cuts one stream into HLS segments and keeps its playlist, without I/O.
//!
//! nginx-rtmp's rules: a segment ends at the first video keyframe once it
//! is `hls_fragment` long (at any audio frame for audio-only streams), or
//! wherever it reaches `hls_max_fragment`. The playlist lists the newest
//! segments that fit in `hls_playlist_length` (`hls_type event`: all), and
//! with `hls_cleanup` segments that left it are deleted once they are a
//! whole playlist length old, so players still fetching them succeed.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use m3u8_rs::{MediaPlaylist, MediaPlaylistType, MediaSegment};

use super::ts::{Muxer, TsError, VideoCodec};

pub use crate::config::hls::{HlsConf, Naming};

/// What the I/O side must do, in order. Files are written whole (to a
/// temporary name, then renamed), so a reader never sees half of one.
#[derive(Debug, PartialEq, Eq)]
pub enum HlsOp {
    Write { path: PathBuf, data: Bytes },
    Remove(PathBuf),
}

struct Current {
    seq: u64,
    file: String,
    start_ms: u64,
    last_ms: u64,
    data: BytesMut,
}

struct Done {
    seq: u64,
    file: String,
    duration: f32,
}

pub struct Segmenter {
    conf: HlsConf,
    name: String,
    mux: Muxer,
    has_video: bool,
    next_seq: u64,
    cur: Option<Current>,
    /// In the playlist.
    listed: VecDeque<Done>,
    /// Out of the playlist, awaiting deletion (with their age in ms).
    retired: VecDeque<(Done, u64)>,
}

impl Segmenter {
    pub fn new(conf: HlsConf, name: &str) -> Segmenter {
        Segmenter {
            conf,
            name: name.to_owned(),
            mux: Muxer::new(None, false),
            has_video: false,
            next_seq: 0,
            cur: None,
            listed: VecDeque::new(),
            retired: VecDeque::new(),
        }
    }

    pub fn playlist_path(&self) -> PathBuf {
        if self.conf.nested {
            self.conf.path.join(&self.name).join("index.m3u8")
        } else {
            self.conf.path.join(format!("{}.m3u8", self.name))
        }
    }

    fn segment_path(&self, file: &str) -> PathBuf {
        if self.conf.nested {
            self.conf.path.join(&self.name).join(file)
        } else {
            self.conf.path.join(file)
        }
    }

    pub fn video_config(&mut self, codec: VideoCodec, rec: &[u8]) -> Result<(), TsError> {
        self.has_video = true;
        self.mux.video_config(codec, rec)
    }

    pub fn audio_config(&mut self, asc: &[u8]) -> Result<(), TsError> {
        self.mux.audio_config(asc)
    }

    /// A coded video frame (length-prefixed NAL units).
    pub fn video(
        &mut self,
        data: &[u8],
        ts_ms: u64,
        cts: i32,
        key: bool,
        wall_ms: u64,
        ops: &mut Vec<HlsOp>,
    ) -> Result<(), TsError> {
        self.cut_if_due(ts_ms, key, wall_ms, ops);
        let Some(cur) = self.cur.as_mut() else {
            return Ok(()); // before the first keyframe
        };
        cur.last_ms = cur.last_ms.max(ts_ms);
        self.mux.video(data, ts_ms, cts, key, &mut cur.data)
    }

    /// A raw AAC frame.
    pub fn audio(
        &mut self,
        data: &[u8],
        ts_ms: u64,
        wall_ms: u64,
        ops: &mut Vec<HlsOp>,
    ) -> Result<(), TsError> {
        if !self.has_video {
            self.cut_if_due(ts_ms, true, wall_ms, ops);
        }
        let Some(cur) = self.cur.as_mut() else {
            return Ok(());
        };
        cur.last_ms = cur.last_ms.max(ts_ms);
        self.mux.audio(data, ts_ms, &mut cur.data)
    }

    fn cut_if_due(&mut self, ts_ms: u64, boundary: bool, wall_ms: u64, ops: &mut Vec<HlsOp>) {
        let elapsed = self
            .cur
            .as_ref()
            .map(|c| Duration::from_millis(ts_ms.saturating_sub(c.start_ms)));
        let due = match elapsed {
            None => boundary,
            Some(e) => (boundary && e >= self.conf.fragment) || e >= self.conf.max_fragment,
        };
        if !due {
            return;
        }
        self.finish(ts_ms, false, ops);
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = match self.conf.naming {
            Naming::Sequential => seq,
            Naming::Timestamp => ts_ms,
            Naming::System => wall_ms,
        };
        let file = if self.conf.nested {
            format!("{id}.ts")
        } else {
            format!("{}-{id}.ts", self.name)
        };
        let mut data = BytesMut::new();
        self.mux.tables(&mut data);
        self.cur = Some(Current {
            seq,
            file,
            start_ms: ts_ms,
            last_ms: ts_ms,
            data,
        });
    }

    /// Ends the current segment at `end_ms` and rewrites the playlist.
    fn finish(&mut self, end_ms: u64, last: bool, ops: &mut Vec<HlsOp>) {
        let Some(cur) = self.cur.take() else {
            if last {
                ops.push(self.playlist(true));
            }
            return;
        };
        let end = if last {
            cur.last_ms.max(end_ms)
        } else {
            end_ms
        };
        let duration = end.saturating_sub(cur.start_ms) as f32 / 1000.0;
        ops.push(HlsOp::Write {
            path: self.segment_path(&cur.file),
            data: cur.data.freeze(),
        });
        self.listed.push_back(Done {
            seq: cur.seq,
            file: cur.file,
            duration,
        });
        // The window: as many of the newest segments as fit the length.
        if !self.conf.event {
            let limit = self.conf.playlist_length.as_secs_f32();
            while self.listed.len() > 1
                && self.listed.iter().map(|d| d.duration).sum::<f32>() > limit
            {
                if let Some(d) = self.listed.pop_front() {
                    self.retired.push_back((d, end));
                }
            }
        }
        ops.push(self.playlist(last));
        if self.conf.cleanup {
            let keep = self.conf.playlist_length.as_millis() as u64;
            while self
                .retired
                .front()
                .is_some_and(|(_, at)| end.saturating_sub(*at) >= keep)
            {
                if let Some((d, _)) = self.retired.pop_front() {
                    ops.push(HlsOp::Remove(self.segment_path(&d.file)));
                }
            }
        }
    }

    /// Publishing ended: the last segment and a final playlist.
    pub fn end(&mut self, ops: &mut Vec<HlsOp>) {
        self.finish(0, true, ops);
    }

    fn playlist(&self, end_list: bool) -> HlsOp {
        let segments: Vec<MediaSegment> = self
            .listed
            .iter()
            .map(|d| MediaSegment {
                uri: format!("{}{}", self.conf.base_url, d.file),
                duration: d.duration,
                ..Default::default()
            })
            .collect();
        let target = self
            .listed
            .iter()
            .map(|d| d.duration.ceil() as u64)
            .max()
            .unwrap_or(self.conf.fragment.as_secs().max(1));
        let pl = MediaPlaylist {
            version: Some(3),
            target_duration: target,
            media_sequence: self.listed.front().map_or(0, |d| d.seq),
            segments,
            end_list,
            playlist_type: self.conf.event.then_some(MediaPlaylistType::Event),
            ..Default::default()
        };
        let mut text = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = pl.write_to(&mut text);
        HlsOp::Write {
            path: self.playlist_path(),
            data: Bytes::from(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf() -> HlsConf {
        HlsConf {
            path: "/hls".into(),
            fragment: Duration::from_secs(2),
            max_fragment: Duration::from_secs(20),
            playlist_length: Duration::from_secs(6),
            nested: false,
            cleanup: true,
            naming: Naming::Sequential,
            event: false,
            base_url: String::new(),
        }
    }

    fn feed(seg: &mut Segmenter, secs: u64) -> Vec<HlsOp> {
        let rec = [
            1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 3, 0x67, 1, 2, 1, 0, 2, 0x68, 3,
        ];
        seg.video_config(VideoCodec::H264, &rec).unwrap();
        seg.audio_config(&[0x12, 0x10]).unwrap();
        let mut ops = Vec::new();
        for i in 0..secs * 25 {
            let ts = i * 40;
            let key = i % 25 == 0; // a keyframe every second
            seg.video(&[0, 0, 0, 2, 0x65, 1], ts, 0, key, ts, &mut ops)
                .unwrap();
            seg.audio(&[0x21; 10], ts, ts, &mut ops).unwrap();
        }
        seg.end(&mut ops);
        ops
    }

    fn playlists(ops: &[HlsOp]) -> Vec<MediaPlaylist> {
        ops.iter()
            .filter_map(|o| match o {
                HlsOp::Write { path, data } if path.extension().is_some_and(|e| e == "m3u8") => {
                    match m3u8_rs::parse_media_playlist_res(data) {
                        Ok(p) => Some(p),
                        Err(e) => panic!("invalid playlist: {e:?}"),
                    }
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn segments_cut_at_keyframes_and_the_window_slides() {
        let mut s = Segmenter::new(conf(), "cam");
        let ops = feed(&mut s, 16);
        let pls = playlists(&ops);
        let last = pls.last().unwrap();
        assert!(last.end_list);
        // 16 s in 2 s segments: 8 made, the last 3 (6 s) listed.
        assert_eq!(last.media_sequence, 5);
        let uris: Vec<&str> = last.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["cam-5.ts", "cam-6.ts", "cam-7.ts"]);
        for seg in &last.segments {
            assert!((seg.duration - 2.0).abs() < 0.05, "{}", seg.duration);
        }
        assert_eq!(last.target_duration, 2);
        let removed: Vec<_> = ops
            .iter()
            .filter_map(|o| match o {
                HlsOp::Remove(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        // cam-0 left the playlist at 8 s and is deleted 6 s later; cam-1
        // left at 10 s and is still there at the end (15.96 s).
        assert_eq!(removed, vec![PathBuf::from("/hls/cam-0.ts")]);
        for op in &ops {
            if let HlsOp::Write { path, data } = op {
                if path.extension().is_some_and(|e| e == "ts") {
                    assert_eq!(data.len() % 188, 0);
                }
            }
        }
    }

    #[test]
    fn nested_event_and_base_url() {
        let mut c = conf();
        c.nested = true;
        c.event = true;
        c.base_url = "http://cdn/hls/cam/".into();
        let mut s = Segmenter::new(c, "cam");
        assert_eq!(s.playlist_path(), PathBuf::from("/hls/cam/index.m3u8"));
        let ops = feed(&mut s, 8);
        let last = playlists(&ops).pop().unwrap();
        assert_eq!(last.playlist_type, Some(MediaPlaylistType::Event));
        assert_eq!(last.segments.len(), 4, "event playlists keep everything");
        assert_eq!(last.segments[0].uri, "http://cdn/hls/cam/0.ts");
        assert!(!ops.iter().any(|o| matches!(o, HlsOp::Remove(_))));
    }
}
