//! Cuts one stream into HLS segments and keeps its playlist, without I/O.
//!
//! nginx-rtmp's rules, and its files byte for byte where they are plain
//! text:
//! - a segment ends at the first video keyframe once it is `hls_fragment`
//!   long (at any audio frame for audio-only streams), or wherever it
//!   passes `hls_max_fragment`; with `hls_fragment_slicing aligned`, where
//!   the timestamp crosses a multiple of `hls_fragment`;
//! - the playlist lists the newest `hls_playlist_length / hls_fragment`
//!   segments (`hls_type event`: all); the first segment of each publish
//!   follows an `#EXT-X-DISCONTINUITY`; with `hls_continuous` a publish
//!   continues the numbering of the playlist on disk ([`Segmenter::restore`]);
//! - with `hls_keys`, segments are AES-128-CBC encrypted, a new random key
//!   every `hls_fragments_per_key` segments, its file written before the
//!   segment and the playlist that name it, the IV being the key's id;
//! - audio frames are gathered into one PES packet for up to
//!   `hls_max_audio_delay` (`hls_audio_buffer_size` bytes), their
//!   timestamps counted from the sample rate while within `hls_sync`;
//! - a stream named after an `hls_variant` suffix also rewrites the master
//!   playlist of its ladder.
//!
//! With `hls_cleanup`, segments that left the playlist are deleted once
//! they are a whole playlist length old, so players still fetching them
//! succeed.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};

use super::ts::{Muxer, TsError, VideoCodec};

pub use crate::config::hls::{DateTime, HlsConf, HlsKeys, Naming, Slicing, Variant};

/// What the I/O side must do, in order. Files are written whole (to a
/// temporary name, then renamed), so a reader never sees half of one.
#[derive(Debug, PartialEq, Eq)]
pub enum HlsOp {
    Write {
        path: PathBuf,
        data: Bytes,
    },
    Remove(PathBuf),
    /// The media playlist at this path was rewritten (`on_playlist`).
    Playlist(PathBuf),
}

/// Where random keys come from: the OS's generator in production, a
/// counter in tests.
pub type KeySource = Box<dyn FnMut() -> [u8; 16] + Send>;

struct Current {
    seq: u64,
    id: u64,
    start_ms: u64,
    last_ms: u64,
    discont: bool,
    key: Option<(u64, [u8; 16])>,
    datetime: Option<String>,
    data: BytesMut,
}

#[derive(Debug, Clone, PartialEq)]
struct Done {
    seq: u64,
    id: u64,
    duration: f64,
    discont: bool,
    key_id: Option<u64>,
    datetime: Option<String>,
}

/// Audio frames waiting to go out as one PES packet (nginx-rtmp's
/// `aframe`), and the sample count its timestamps are derived from.
#[derive(Default)]
struct AudioBuf {
    es: Vec<u8>,
    /// 90 kHz timestamp of the first frame in `es`.
    pts: u64,
    /// Where the count of frames started, and how many since.
    base: u64,
    num: u64,
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
    /// Out of the playlist, awaiting deletion (with the time they left).
    retired: VecDeque<(Done, u64)>,
    /// Start of the aligned slice before the first segment opened.
    frag_ts: u64,
    key: Option<(u64, [u8; 16])>,
    /// Segments left under the current key.
    key_left: u64,
    keygen: KeySource,
    audio: AudioBuf,
}

/// A key from the operating system's generator.
pub fn random_key() -> [u8; 16] {
    use rand::RngCore;
    let mut k = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut k);
    k
}

/// AES-128-CBC with PKCS#7 padding, the IV being the key id (as nginx-rtmp
/// writes it in `#EXT-X-KEY`).
pub fn encrypt(data: &[u8], key: &[u8; 16], key_id: u64) -> Vec<u8> {
    use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
    let iv = (key_id as u128).to_be_bytes();
    cbc::Encryptor::<aes::Aes128>::new(key.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(data)
}

/// Most segments [`Segmenter::restore`] takes from a playlist on disk.
const RESTORE_MAX: usize = 4096;

impl Segmenter {
    pub fn new(conf: HlsConf, name: &str) -> Segmenter {
        Self::with_keys(conf, name, Box::new(random_key))
    }

    /// With keys from `keygen` (tests use a predictable one).
    pub fn with_keys(conf: HlsConf, name: &str, keygen: KeySource) -> Segmenter {
        Segmenter {
            conf,
            name: name.to_owned(),
            mux: Muxer::new(None, false),
            has_video: false,
            next_seq: 0,
            cur: None,
            listed: VecDeque::new(),
            retired: VecDeque::new(),
            frag_ts: 0,
            key: None,
            key_left: 0,
            keygen,
            audio: AudioBuf::default(),
        }
    }

    pub fn playlist_path(&self) -> PathBuf {
        if self.conf.nested {
            self.conf.path.join(&self.name).join("index.m3u8")
        } else {
            self.conf.path.join(format!("{}.m3u8", self.name))
        }
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        if self.conf.nested {
            self.conf.path.join(&self.name).join(format!("{id}.ts"))
        } else {
            self.conf.path.join(format!("{}-{id}.ts", self.name))
        }
    }

    fn key_path(&self, keys: &HlsKeys, id: u64) -> PathBuf {
        if self.conf.nested {
            keys.path.join(&self.name).join(format!("{id}.key"))
        } else {
            keys.path.join(format!("{}-{id}.key", self.name))
        }
    }

    /// `hls_continuous`: goes on from the playlist this stream left on
    /// disk, read as nginx-rtmp reads it: the media sequence, then each
    /// segment's duration, id (the digits before `.ts`), discontinuity and
    /// key id (from the IV). The next segment follows a discontinuity.
    pub fn restore(&mut self, text: &str) {
        if !self.conf.continuous {
            return;
        }
        let mut seq = 0u64;
        let (mut duration, mut discont, mut key_id) = (0.0f64, false, None);
        let mut frags: VecDeque<Done> = VecDeque::new();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                seq = v.trim().parse().unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("#EXT-X-KEY:") {
                key_id = v
                    .rsplit_once("IV=0x")
                    .and_then(|(_, h)| u128::from_str_radix(h.trim(), 16).ok())
                    .map(|iv| iv as u64);
            } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                duration = v
                    .split(',')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .parse()
                    .unwrap_or(0.0);
            } else if line.starts_with("#EXT-X-DISCONTINUITY") {
                discont = true;
            } else if !line.starts_with('#') && line.ends_with(".ts") {
                let stem = &line[..line.len() - 3];
                let digits = stem.len() - stem.trim_end_matches(|c: char| c.is_ascii_digit()).len();
                let id = stem[stem.len() - digits..].parse().unwrap_or(0);
                frags.push_back(Done {
                    seq: seq.saturating_add(frags.len() as u64),
                    id,
                    duration,
                    discont,
                    key_id: self.conf.keys.as_ref().and(key_id),
                    datetime: None,
                });
                if frags.len() > RESTORE_MAX {
                    frags.pop_front();
                }
                discont = false;
            }
        }
        if let Some(last) = frags.back() {
            self.next_seq = last.seq + 1;
        } else {
            self.next_seq = seq;
        }
        self.listed = frags;
        self.trim_window(0);
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
        self.update(ts_ms, key, 1, wall_ms, ops);
        let Some(cur) = self.cur.as_mut() else {
            return Ok(()); // before the first keyframe
        };
        cur.last_ms = cur.last_ms.max(ts_ms);
        self.mux.video(data, ts_ms, cts, key, &mut cur.data)
    }

    /// A raw AAC frame: gathered with the next ones into one PES packet.
    pub fn audio(
        &mut self,
        data: &[u8],
        ts_ms: u64,
        wall_ms: u64,
        ops: &mut Vec<HlsOp>,
    ) -> Result<(), TsError> {
        let size = data.len() + 7;
        if size > self.conf.audio_buffer_size {
            return Err(TsError::AudioTooBig(size));
        }
        let pts = ts_ms * 90;
        // Audio-only streams are cut here; with video, at its keyframes.
        self.update(ts_ms, !self.has_video, 2, wall_ms, ops);
        if let Some(cur) = self.cur.as_mut() {
            cur.last_ms = cur.last_ms.max(ts_ms);
        }
        if self.audio.es.len() + size > self.conf.audio_buffer_size {
            self.flush_audio();
            // Before the first segment there is nowhere to put it: the
            // oldest audio goes.
            self.audio.es.clear();
        }
        let first = self.audio.es.is_empty();
        self.mux.adts(data, &mut self.audio.es)?;
        if !first {
            self.audio.num += 1;
            return Ok(());
        }
        self.audio.pts = pts;
        let Some(rate) = self.mux.sample_rate().filter(|_| !self.conf.sync.is_zero()) else {
            return Ok(());
        };
        // AAC frames are 1024 samples: where this one should be.
        let est = self.audio.base + self.audio.num * 90_000 * 1024 / rate as u64;
        let drift = est as i64 - pts as i64;
        let sync = self.conf.sync.as_millis() as i64 * 90;
        if (-sync..=sync).contains(&drift) {
            self.audio.num += 1;
            self.audio.pts = est;
        } else {
            self.audio.base = pts;
            self.audio.num = 1;
        }
        Ok(())
    }

    /// Writes the gathered audio into the open segment.
    fn flush_audio(&mut self) {
        if self.audio.es.is_empty() {
            return;
        }
        let Some(cur) = self.cur.as_mut() else {
            return;
        };
        self.mux
            .audio_pes(&self.audio.es, self.audio.pts, &mut cur.data);
        self.audio.es.clear();
    }

    /// nginx-rtmp's `update_fragment`: cuts where due, and sends audio
    /// that waited `hls_max_audio_delay / flush_rate`.
    fn update(
        &mut self,
        ts_ms: u64,
        mut boundary: bool,
        flush_rate: u64,
        wall_ms: u64,
        ops: &mut Vec<HlsOp>,
    ) {
        let mut force = false;
        let mut duration = None;
        if let Some(c) = &self.cur {
            let d = ts_ms as i64 - c.start_ms as i64;
            if d > self.conf.max_fragment.as_millis() as i64 || d < -1000 {
                force = true;
            } else {
                duration = Some(d as u64);
            }
        }
        let frag = (self.conf.fragment.as_millis() as u64).max(1);
        match self.conf.slicing {
            Slicing::Plain => {
                if duration.is_some_and(|d| d < frag) {
                    boundary = false;
                }
            }
            Slicing::Aligned => {
                let start = self.cur.as_ref().map_or(self.frag_ts, |c| c.start_ms);
                let same = start / frag == ts_ms / frag;
                if self.cur.is_some() && same {
                    boundary = false;
                }
                if self.cur.is_none() && (self.frag_ts == 0 || same) {
                    self.frag_ts = ts_ms;
                    boundary = false;
                }
            }
        }
        if boundary || force {
            let discont = self.cur.is_none() || force;
            self.finish(ts_ms, false, ops);
            self.open(ts_ms, discont, wall_ms, ops);
        }
        let delay = self.conf.max_audio_delay.as_millis() as u64 * 90 / flush_rate;
        if self.cur.is_some() && !self.audio.es.is_empty() && self.audio.pts + delay < ts_ms * 90 {
            self.flush_audio();
        }
    }

    fn open(&mut self, ts_ms: u64, discont: bool, wall_ms: u64, ops: &mut Vec<HlsOp>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut id = match self.conf.naming {
            Naming::Sequential => seq,
            Naming::Timestamp => ts_ms,
            Naming::System => wall_ms,
        };
        if let Some(q) = id.checked_div(self.conf.granularity) {
            id = q * self.conf.granularity;
        }
        let key = match self.conf.keys.clone() {
            Some(k) => {
                if self.key_left == 0 {
                    let bytes = (self.keygen)();
                    self.key = Some((id, bytes));
                    self.key_left = if k.per_key == 0 {
                        u64::MAX
                    } else {
                        k.per_key - 1
                    };
                    // Before the segment and the playlist that name it.
                    ops.push(HlsOp::Write {
                        path: self.key_path(&k, id),
                        data: Bytes::copy_from_slice(&bytes),
                    });
                } else if k.per_key > 0 {
                    self.key_left -= 1;
                }
                self.key
            }
            None => None,
        };
        let datetime = match self.conf.datetime {
            DateTime::None => None,
            DateTime::System => chrono::DateTime::from_timestamp_millis(wall_ms as i64)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()),
            DateTime::Timestamp => {
                let ms = (wall_ms >> 32 << 32) + ts_ms;
                chrono::DateTime::from_timestamp_millis(ms as i64)
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3f-00:00").to_string())
            }
        };
        let mut data = BytesMut::new();
        self.mux.tables(&mut data);
        self.cur = Some(Current {
            seq,
            id,
            start_ms: ts_ms,
            last_ms: ts_ms,
            discont,
            key,
            datetime,
            data,
        });
        // A segment starts with audio, as nginx-rtmp's do (iOS wants it).
        self.flush_audio();
    }

    /// Ends the current segment at `end_ms` and rewrites the playlists.
    fn finish(&mut self, end_ms: u64, last: bool, ops: &mut Vec<HlsOp>) {
        let Some(cur) = self.cur.take() else {
            if last && !self.listed.is_empty() {
                self.playlists(last, ops);
            }
            return;
        };
        let end = if last {
            cur.last_ms.max(end_ms)
        } else {
            end_ms
        };
        let duration = end.saturating_sub(cur.start_ms) as f64 / 1000.0;
        let data = match cur.key {
            Some((kid, key)) => Bytes::from(encrypt(&cur.data, &key, kid)),
            None => cur.data.freeze(),
        };
        ops.push(HlsOp::Write {
            path: self.segment_path(cur.id),
            data,
        });
        self.listed.push_back(Done {
            seq: cur.seq,
            id: cur.id,
            duration,
            discont: cur.discont,
            key_id: cur.key.map(|k| k.0),
            datetime: cur.datetime,
        });
        self.trim_window(end);
        self.playlists(last, ops);
        if self.conf.cleanup {
            let keep = self.conf.playlist_length.as_millis() as u64;
            while self
                .retired
                .front()
                .is_some_and(|(_, at)| end.saturating_sub(*at) >= keep)
            {
                if let Some((d, _)) = self.retired.pop_front() {
                    ops.push(HlsOp::Remove(self.segment_path(d.id)));
                }
            }
        }
    }

    /// The window: `hls_playlist_length / hls_fragment` segments.
    fn trim_window(&mut self, now: u64) {
        if self.conf.event {
            return;
        }
        while self.listed.len() > self.conf.window() {
            if let Some(d) = self.listed.pop_front() {
                self.retired.push_back((d, now));
            }
        }
    }

    /// Publishing ended: the last segment and a final playlist (with
    /// `#EXT-X-ENDLIST` only when the next publish will not continue it).
    pub fn end(&mut self, ops: &mut Vec<HlsOp>) {
        self.flush_audio();
        self.finish(0, true, ops);
    }

    fn playlists(&self, last: bool, ops: &mut Vec<HlsOp>) {
        let path = self.playlist_path();
        ops.push(HlsOp::Write {
            path: path.clone(),
            data: Bytes::from(self.playlist(last && !self.conf.continuous)),
        });
        ops.push(HlsOp::Playlist(path));
        if let Some((base, _)) = self.variant() {
            ops.push(HlsOp::Write {
                path: self.conf.path.join(format!("{base}.m3u8")),
                data: Bytes::from(self.master(base)),
            });
        }
    }

    /// The stream's ladder name and its variant, when its name ends with
    /// an `hls_variant` suffix.
    fn variant(&self) -> Option<(&str, &Variant)> {
        self.conf.variants.iter().find_map(|v| {
            let base = self.name.strip_suffix(v.suffix.as_str())?;
            (!base.is_empty()).then_some((base, v))
        })
    }

    /// The master playlist of `base`'s ladder, as nginx-rtmp writes it.
    fn master(&self, base: &str) -> String {
        let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
        for v in &self.conf.variants {
            s.push_str("#EXT-X-STREAM-INF:PROGRAM-ID=1");
            for p in &v.params {
                s.push(',');
                s.push_str(p);
            }
            let index = if self.conf.nested { "/index" } else { "" };
            let _ = writeln!(s, "\n{}{base}{}{index}.m3u8", self.conf.base_url, v.suffix);
        }
        s
    }

    /// The media playlist, as nginx-rtmp writes it.
    fn playlist(&self, end_list: bool) -> String {
        let c = &self.conf;
        let mut max = c.fragment.as_secs();
        for d in &self.listed {
            if d.duration > max as f64 {
                max = (d.duration + 0.5) as u64;
            }
        }
        let mut s = String::new();
        let _ = write!(
            s,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-TARGETDURATION:{max}\n",
            self.listed.front().map_or(self.next_seq, |d| d.seq)
        );
        if c.event {
            s.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n");
        }
        match c.allow_cache {
            Some(true) => s.push_str("#EXT-X-ALLOW-CACHE:YES\n"),
            Some(false) => s.push_str("#EXT-X-ALLOW-CACHE:NO\n"),
            None => {}
        }
        let (name_part, sep) = match (c.nested, c.base_url.is_empty()) {
            (false, _) => (self.name.as_str(), "-"),
            (true, true) => ("", ""),
            (true, false) => (self.name.as_str(), "/"),
        };
        let mut prev_key = None;
        for (i, d) in self.listed.iter().enumerate() {
            if let Some(t) = d.datetime.as_ref().filter(|_| i == 0 || d.discont) {
                let _ = writeln!(s, "#EXT-X-PROGRAM-DATE-TIME:{t}");
            }
            if d.discont {
                s.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let (Some(k), Some(kid)) = (&c.keys, d.key_id) {
                if i == 0 || prev_key != Some(kid) {
                    let (kname, ksep) = match (c.nested, k.url.is_empty()) {
                        (false, _) => (self.name.as_str(), "-"),
                        (true, true) => ("", ""),
                        (true, false) => (self.name.as_str(), "/"),
                    };
                    let _ = writeln!(
                        s,
                        "#EXT-X-KEY:METHOD=AES-128,URI=\"{}{kname}{ksep}{kid}.key\",IV=0x{:032X}",
                        k.url, kid as u128
                    );
                }
                prev_key = Some(kid);
            }
            let _ = write!(
                s,
                "#EXTINF:{:.3},\n{}{name_part}{sep}{}.ts\n",
                d.duration, c.base_url, d.id
            );
        }
        if end_list {
            s.push_str("#EXT-X-ENDLIST\n");
        }
        s
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn conf() -> HlsConf {
        HlsConf {
            path: "/hls".into(),
            fragment: Duration::from_secs(2),
            max_fragment: Duration::from_secs(20),
            playlist_length: Duration::from_secs(6),
            ..Default::default()
        }
    }

    fn feed_from(seg: &mut Segmenter, from: u64, secs: u64) -> Vec<HlsOp> {
        let rec = [
            1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 3, 0x67, 1, 2, 1, 0, 2, 0x68, 3,
        ];
        seg.video_config(VideoCodec::H264, &rec).unwrap();
        seg.audio_config(&[0x12, 0x10]).unwrap();
        let mut ops = Vec::new();
        for i in from * 25..(from + secs) * 25 {
            let ts = i * 40;
            let key = i % 25 == 0; // a keyframe every second
            seg.video(&[0, 0, 0, 2, 0x65, 1], ts, 0, key, ts, &mut ops)
                .unwrap();
            seg.audio(&[0x21; 10], ts, ts, &mut ops).unwrap();
        }
        seg.end(&mut ops);
        ops
    }

    fn feed(seg: &mut Segmenter, secs: u64) -> Vec<HlsOp> {
        feed_from(seg, 0, secs)
    }

    /// Every media playlist written, as text.
    fn texts(ops: &[HlsOp]) -> Vec<String> {
        ops.iter()
            .filter_map(|o| match o {
                HlsOp::Write { data, .. } if data.starts_with(b"#EXTM3U") => {
                    let t = String::from_utf8(data.to_vec()).unwrap();
                    t.contains("#EXT-X-MEDIA-SEQUENCE").then_some(t)
                }
                _ => None,
            })
            .collect()
    }

    fn playlists(ops: &[HlsOp]) -> Vec<m3u8_rs::MediaPlaylist> {
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
        let mut c = conf();
        c.continuous = false;
        let mut s = Segmenter::new(c, "cam");
        let ops = feed(&mut s, 16);
        let pls = playlists(&ops);
        let last = pls.last().unwrap();
        assert!(last.end_list, "not continued: the list ends");
        // 16 s in 2 s segments: 8 made, the last 3 (6 s / 2 s) listed.
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
        // on_playlist hears every playlist write.
        let heard = ops
            .iter()
            .filter(|o| matches!(o, HlsOp::Playlist(_)))
            .count();
        assert_eq!(heard, pls.len());
    }

    /// The text nginx-rtmp writes: its first segment after a
    /// discontinuity, durations with three decimals, no ENDLIST when the
    /// next publish continues the list.
    #[test]
    fn the_playlist_is_written_as_nginx_rtmp_writes_it() {
        let mut s = Segmenter::new(conf(), "cam");
        let ops = feed(&mut s, 4);
        assert_eq!(
            texts(&ops).last().unwrap(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-TARGETDURATION:2\n\
             #EXT-X-DISCONTINUITY\n#EXTINF:2.000,\ncam-0.ts\n#EXTINF:1.960,\ncam-1.ts\n"
        );
    }

    #[test]
    fn nested_event_and_base_url() {
        let mut c = conf();
        c.nested = true;
        c.event = true;
        c.base_url = "http://cdn/hls/".into();
        let mut s = Segmenter::new(c, "cam");
        assert_eq!(s.playlist_path(), PathBuf::from("/hls/cam/index.m3u8"));
        let ops = feed(&mut s, 8);
        let last = playlists(&ops).pop().unwrap();
        assert_eq!(last.playlist_type, Some(m3u8_rs::MediaPlaylistType::Event));
        assert_eq!(last.segments.len(), 4, "event playlists keep everything");
        // nginx-rtmp: base URL, then the stream's directory.
        assert_eq!(last.segments[0].uri, "http://cdn/hls/cam/0.ts");
        assert!(!ops.iter().any(|o| matches!(o, HlsOp::Remove(_))));
    }

    /// hls_continuous: a new publish takes the numbering up from the
    /// playlist on disk, after a discontinuity.
    #[test]
    fn a_republish_continues_the_playlist() {
        let mut first = Segmenter::new(conf(), "cam");
        let ops = feed(&mut first, 8);
        let text = texts(&ops).pop().unwrap();
        let mut second = Segmenter::new(conf(), "cam");
        second.restore(&text);
        let ops = feed_from(&mut second, 100, 4);
        let pl = playlists(&ops).pop().unwrap();
        let uris: Vec<&str> = pl.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["cam-3.ts", "cam-4.ts", "cam-5.ts"]);
        assert_eq!(pl.media_sequence, 3);
        let disc: Vec<bool> = pl.segments.iter().map(|s| s.discontinuity).collect();
        assert_eq!(disc, [false, true, false]);
        // Off: numbering starts again.
        let mut c = conf();
        c.continuous = false;
        let mut third = Segmenter::new(c, "cam");
        third.restore(&text);
        let pl = playlists(&feed(&mut third, 2)).pop().unwrap();
        assert_eq!(pl.segments[0].uri, "cam-0.ts");
    }

    /// hls_keys: a key every two segments, its file first, `#EXT-X-KEY`
    /// as nginx-rtmp writes it, and segments that decrypt to MPEG-TS.
    #[test]
    fn keys_rotate_and_segments_decrypt() {
        use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
        let mut c = conf();
        c.playlist_length = Duration::from_secs(10);
        c.keys = Some(HlsKeys {
            path: "/keys".into(),
            url: "https://k.example/keys/".into(),
            per_key: 2,
        });
        let mut n = 0u8;
        let keygen: KeySource = Box::new(move || {
            n += 1;
            [n; 16]
        });
        let mut s = Segmenter::with_keys(c, "cam_low", keygen);
        let ops = feed(&mut s, 10);
        let order: Vec<String> = ops
            .iter()
            .filter_map(|o| match o {
                HlsOp::Write { path, .. } => Some(path.display().to_string()),
                _ => None,
            })
            .filter(|p| !p.ends_with(".m3u8"))
            .collect();
        assert_eq!(
            order,
            [
                "/keys/cam_low-0.key",
                "/hls/cam_low-0.ts",
                "/hls/cam_low-1.ts",
                "/keys/cam_low-2.key",
                "/hls/cam_low-2.ts",
                "/hls/cam_low-3.ts",
                "/keys/cam_low-4.key",
                "/hls/cam_low-4.ts",
            ]
        );
        let text = texts(&ops).pop().unwrap();
        assert!(
            text.contains(
                "#EXT-X-DISCONTINUITY\n#EXT-X-KEY:METHOD=AES-128,URI=\"https://k.example/keys/cam_low-0.key\",IV=0x00000000000000000000000000000000\n#EXTINF:2.000,\ncam_low-0.ts\n#EXTINF:2.000,\ncam_low-1.ts\n#EXT-X-KEY:METHOD=AES-128,URI=\"https://k.example/keys/cam_low-2.key\",IV=0x00000000000000000000000000000002\n"
            ),
            "{text}"
        );
        for op in &ops {
            let HlsOp::Write { path, data } = op else {
                continue;
            };
            if path.ends_with("cam_low-3.ts") {
                assert_ne!(data[0], 0x47, "encrypted");
                let iv = 2u128.to_be_bytes();
                let plain = cbc::Decryptor::<aes::Aes128>::new(&[2u8; 16].into(), &iv.into())
                    .decrypt_padded_vec_mut::<Pkcs7>(data)
                    .unwrap();
                assert_eq!(plain[0], 0x47);
                assert_eq!(plain.len() % 188, 0);
            }
        }
    }

    /// hls_variant: the master playlist of the ladder, byte for byte as
    /// nginx-rtmp wrote it for the same configuration.
    #[test]
    fn variants_write_the_master_playlist() {
        let mut c = conf();
        c.variants = vec![
            Variant {
                suffix: "_low".into(),
                params: vec!["BANDWIDTH=300000".into(), "RESOLUTION=320x240".into()],
            },
            Variant {
                suffix: "_hi".into(),
                params: vec!["BANDWIDTH=800000".into()],
            },
        ];
        let mut s = Segmenter::new(c.clone(), "cam_low");
        let ops = feed(&mut s, 3);
        let master = ops
            .iter()
            .find_map(|o| match o {
                HlsOp::Write { path, data } if path == &PathBuf::from("/hls/cam.m3u8") => {
                    Some(String::from_utf8(data.to_vec()).unwrap())
                }
                _ => None,
            })
            .expect("a master playlist");
        assert_eq!(
            master,
            "#EXTM3U\n#EXT-X-VERSION:3\n\
             #EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=300000,RESOLUTION=320x240\ncam_low.m3u8\n\
             #EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=800000\ncam_hi.m3u8\n"
        );
        assert!(m3u8_rs::parse_master_playlist_res(master.as_bytes()).is_ok());
        c.nested = true;
        let mut s = Segmenter::new(c, "cam_hi");
        let ops = feed(&mut s, 3);
        assert!(ops.iter().any(|o| matches!(o, HlsOp::Write { path, data }
            if path == &PathBuf::from("/hls/cam.m3u8")
                && String::from_utf8_lossy(data).contains("\ncam_hi/index.m3u8\n"))));
        // A stream that is only the suffix is no variant.
        let mut s = Segmenter::new(conf(), "_low");
        assert!(s.variant().is_none());
        let _ = feed(&mut s, 1);
    }

    /// hls_fragment_slicing aligned: cuts on multiples of hls_fragment of
    /// the timestamp, whatever the first one was.
    #[test]
    fn aligned_slicing_cuts_on_multiples() {
        let mut c = conf();
        c.slicing = Slicing::Aligned;
        let mut s = Segmenter::new(c, "cam");
        let ops = feed_from(&mut s, 3, 9);
        let pl = playlists(&ops).pop().unwrap();
        // From 3 s on: the first segment opens at 4 s, then 6, 8, 10.
        let uris: Vec<&str> = pl.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["cam-1.ts", "cam-2.ts", "cam-3.ts"]);
        assert!((pl.segments[0].duration - 2.0).abs() < 0.01);
    }

    /// Audio frames go out together: one PES packet per
    /// hls_max_audio_delay, not one per frame.
    #[test]
    fn audio_is_gathered_into_fewer_pes_packets() {
        let count = |ops: &[HlsOp]| {
            ops.iter()
                .filter_map(|o| match o {
                    HlsOp::Write { path, data } if path.extension().is_some_and(|e| e == "ts") => {
                        Some(data.windows(4).filter(|w| w == &[0, 0, 1, 0xc0]).count())
                    }
                    _ => None,
                })
                .sum::<usize>()
        };
        let mut s = Segmenter::new(conf(), "cam");
        let gathered = count(&feed(&mut s, 4));
        let mut c = conf();
        c.max_audio_delay = Duration::ZERO;
        let mut s = Segmenter::new(c, "cam");
        let single = count(&feed(&mut s, 4));
        assert!(gathered * 3 < single, "{gathered} vs {single}");
    }

    #[test]
    fn restore_takes_what_nginx_rtmp_wrote() {
        let nginx = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-TARGETDURATION:2\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"https://k.example/keys/cam_low-2.key\",IV=0x00000000000000000000000000000002\n\
            #EXTINF:2.000,\ncam_low-3.ts\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"https://k.example/keys/cam_low-4.key\",IV=0x00000000000000000000000000000004\n\
            #EXTINF:0.986,\ncam_low-4.ts\n";
        let mut c = conf();
        c.playlist_length = Duration::from_secs(10);
        c.keys = Some(HlsKeys {
            path: "/keys".into(),
            url: "https://k.example/keys/".into(),
            per_key: 2,
        });
        let mut s = Segmenter::with_keys(c, "cam_low", Box::new(|| [9; 16]));
        s.restore(nginx);
        assert_eq!(s.next_seq, 5);
        let text = texts(&feed(&mut s, 2)).pop().unwrap();
        assert!(
            text.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:3\n"),
            "{text}"
        );
        assert!(text.contains("IV=0x00000000000000000000000000000004\n#EXTINF:0.986,\ncam_low-4.ts\n#EXT-X-DISCONTINUITY\n#EXT-X-KEY:METHOD=AES-128,URI=\"https://k.example/keys/cam_low-5.key\",IV=0x00000000000000000000000000000005\n"), "{text}");
        // Garbage is no playlist, and no panic.
        let mut s = Segmenter::new(conf(), "x");
        s.restore("#EXT-X-MEDIA-SEQUENCE:zz\n#EXTINF:abc\n9999999999999999999999.ts\n.ts\n");
    }
}
