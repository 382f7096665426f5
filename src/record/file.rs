//! One recorder's decisions, without I/O: when a file opens and closes, and
//! the FLV bytes that go into it.
//!
//! The rules are nginx-rtmp's: the first file opens when publishing starts
//! (`manual` recorders wait for /control); `record_interval` starts a new
//! file at the first keyframe after the interval; `record_max_size` and
//! `record_max_frames` close the file, and the next keyframe opens a new
//! one. Every file starts with the FLV header, the metadata and the
//! sequence headers seen so far, so each plays on its own, and its
//! timestamps start at 0.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Local};

use crate::config::RecorderConf;
use crate::flv::{self, Anchor, Configs, TrackSet};
use crate::live::{Frame, FrameKind};

/// What the I/O side must do, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Op {
    /// Create (truncate) this file, or with `append` open it for appending.
    Open { path: PathBuf, append: bool },
    /// Append to the open file.
    Write(Bytes),
    /// Flush and close the open file; `why` is for the log.
    Close { path: PathBuf, why: &'static str },
}

struct Open {
    path: PathBuf,
    opened: Instant,
    bytes: u64,
    frames: u64,
    /// Timestamp of the first frame written; the file's time 0 (or
    /// `shift`, when appending).
    epoch: Option<u32>,
    shift: u32,
    /// Metadata and sequence headers already in this file.
    meta: bool,
    configs: Configs<Arc<Frame>>,
    /// Video tracks whose keyframe is in the file: another track's frames
    /// wait for its own keyframe, so every track decodes from its start.
    started: TrackSet,
}

pub struct Recording {
    conf: RecorderConf,
    name: String,
    open: Option<Open>,
    meta: Option<Arc<Frame>>,
    /// Every track's decoder configuration (Enhanced RTMP multitrack has
    /// one per track).
    configs: Configs<Arc<Frame>>,
    /// Whose keyframes open and split files.
    anchor: Anchor,
    /// After a lag: nothing is written until the next keyframe.
    skipping: bool,
    /// `record/stop` or the end of publishing: no more files.
    stopped: bool,
    /// Looks at an existing file for `record_append`.
    probe: fn(&Path) -> Option<Tail>,
}

/// The end of an existing FLV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    pub size: u64,
    pub last_ts: u32,
}

/// Reads the size and last tag timestamp of an FLV file, if it exists and
/// holds more than a header. (Called from the recorder task, never from
/// the live path; it reads 15 bytes.)
pub fn flv_tail(path: &Path) -> Option<Tail> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let size = f.metadata().ok()?.len();
    if size <= 13 {
        return None;
    }
    let mut b4 = [0u8; 4];
    f.seek(SeekFrom::Start(size - 4)).ok()?;
    f.read_exact(&mut b4).ok()?;
    let prev = u32::from_be_bytes(b4) as u64;
    let mut last_ts = 0;
    if prev >= 11 && prev + 4 + 13 <= size {
        let mut h = [0u8; 11];
        f.seek(SeekFrom::Start(size - 4 - prev)).ok()?;
        f.read_exact(&mut h).ok()?;
        last_ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
    }
    Some(Tail { size, last_ts })
}

impl Recording {
    pub fn new(conf: RecorderConf, name: &str) -> Recording {
        Recording {
            conf,
            name: name.to_owned(),
            open: None,
            meta: None,
            configs: Configs::default(),
            anchor: Anchor::default(),
            skipping: false,
            stopped: false,
            probe: flv_tail,
        }
    }

    /// Replaces the filesystem probe (tests).
    pub fn with_probe(mut self, probe: fn(&Path) -> Option<Tail>) -> Self {
        self.probe = probe;
        self
    }

    pub fn conf(&self) -> &RecorderConf {
        &self.conf
    }

    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Publishing started: open the first file, unless `manual`.
    pub fn start(&mut self, now: Instant, wall: DateTime<Local>, ops: &mut Vec<Op>) {
        if !self.conf.manual {
            self.open_file(now, wall, ops);
        }
    }

    /// Opens a file now (also `record/start` for manual recorders).
    pub fn open_file(&mut self, now: Instant, wall: DateTime<Local>, ops: &mut Vec<Op>) {
        if self.open.is_some() || self.stopped {
            return;
        }
        let path = super::path::make(&self.conf, &self.name, wall);
        let append = self.conf.append;
        // record_append: continue an existing file after its last tag, in
        // time too (as nginx-rtmp does), without a second FLV header.
        let tail = if append { (self.probe)(&path) } else { None };
        ops.push(Op::Open {
            path: path.clone(),
            append,
        });
        let mut head = BytesMut::new();
        if tail.is_none() {
            head.extend_from_slice(&flv::file_header(
                self.conf.audio,
                self.conf.video || self.conf.keyframes,
            ));
        }
        let shift = tail.map_or(0, |t| t.last_ts);
        let mut open = Open {
            path,
            opened: now,
            bytes: 0,
            frames: 0,
            shift,
            epoch: None,
            meta: false,
            configs: Configs::default(),
            started: TrackSet::default(),
        };
        if let Some(m) = self.meta.as_ref().filter(|m| self.wants(m)) {
            m.write_flv_tag(shift, &mut head);
            open.meta = true;
        }
        for (key, f) in self.configs.entries() {
            if self.wants(f) {
                f.write_flv_tag(shift, &mut head);
                open.configs.insert(*key, f.payload_len(), f.clone());
            }
        }
        open.bytes = tail.map_or(0, |t| t.size) + head.len() as u64;
        ops.push(Op::Write(head.freeze()));
        self.open = Some(open);
    }

    /// `record/start` from /control, mid-stream: opens a file whose media
    /// starts at the next keyframe, so it decodes from its first frame.
    pub fn open_on_request(&mut self, now: Instant, wall: DateTime<Local>, ops: &mut Vec<Op>) {
        if self.open.is_none() && !self.stopped {
            self.open_file(now, wall, ops);
            self.skipping = true;
        }
    }

    /// Closes the current file, if any.
    pub fn close_file(&mut self, why: &'static str, ops: &mut Vec<Op>) {
        if let Some(o) = self.open.take() {
            ops.push(Op::Close { path: o.path, why });
        }
    }

    /// Publishing ended (or the recorder was stopped): close for good.
    pub fn stop(&mut self, why: &'static str, ops: &mut Vec<Op>) {
        self.close_file(why, ops);
        self.stopped = true;
    }

    /// The ring overtook the recorder: frames are gone, so the file stays
    /// decodable only from the next keyframe on.
    pub fn lagged(&mut self) {
        self.skipping = true;
    }

    pub fn on_frame(
        &mut self,
        f: &Arc<Frame>,
        now: Instant,
        wall: DateTime<Local>,
        ops: &mut Vec<Op>,
    ) {
        let seq = f.info.sequence_header;
        match f.kind {
            FrameKind::Data if is_metadata(f) => {
                self.meta = Some(f.clone());
                // Metadata belongs at the top of a file: written when it
                // comes before any media (right after publish), else kept
                // for the next file.
                if let Some(o) = self.open.as_mut().filter(|o| o.epoch.is_none() && !o.meta) {
                    let mut out = BytesMut::new();
                    f.write_flv_tag(o.shift, &mut out);
                    o.bytes += out.len() as u64;
                    o.meta = true;
                    ops.push(Op::Write(out.freeze()));
                }
                return;
            }
            _ => {}
        }
        let key = f.config_key();
        if let Some(k) = key {
            self.configs.insert(k, f.payload_len(), f.clone());
        }
        let keyframe = !seq && f.is_start(&mut self.anchor);
        if keyframe && !self.conf.manual && !self.stopped {
            self.skipping = false;
            match (&self.open, self.conf.interval) {
                (Some(o), Some(iv)) if now.duration_since(o.opened) >= iv => {
                    self.close_file("record_interval", ops);
                    self.open_file(now, wall, ops);
                }
                (None, _) => self.open_file(now, wall, ops),
                _ => {}
            }
        } else if keyframe {
            self.skipping = false;
        }
        if self.skipping || !self.wants(f) {
            return;
        }
        let Some(o) = self.open.as_mut() else {
            return;
        };
        if let Some(k) = key {
            // Already in the file (written at open) unless it changed.
            if o.configs.get(&k).is_some_and(|w| Arc::ptr_eq(w, f)) {
                return;
            }
            o.configs.insert(k, f.payload_len(), f.clone());
        } else if f.kind == FrameKind::Video && !seq {
            if f.info.keyframe {
                o.started.insert(f.info.track);
            } else if !o.started.contains(f.info.track) {
                return;
            }
        }
        let epoch = *o.epoch.get_or_insert(f.timestamp);
        let mut out = BytesMut::new();
        f.write_flv_tag(
            o.shift.wrapping_add(f.timestamp.wrapping_sub(epoch)),
            &mut out,
        );
        o.bytes += out.len() as u64;
        if f.kind != FrameKind::Data && !seq {
            o.frames += 1;
        }
        ops.push(Op::Write(out.freeze()));
        let c = &self.conf;
        if c.max_size > 0 && o.bytes >= c.max_size {
            self.close_file("record_max_size", ops);
        } else if c.max_frames > 0 && o.frames >= c.max_frames {
            self.close_file("record_max_frames", ops);
        }
    }

    /// Whether this recorder writes `f` at all.
    fn wants(&self, f: &Frame) -> bool {
        match f.kind {
            FrameKind::Audio => self.conf.audio,
            FrameKind::Video => {
                self.conf.video
                    || (self.conf.keyframes && (f.info.keyframe || f.info.sequence_header))
            }
            FrameKind::Data => self.conf.audio || self.conf.video || self.conf.keyframes,
        }
    }
}

fn is_metadata(f: &Frame) -> bool {
    // AMF0 string "onMetaData" (after @setDataFrame is stripped); the
    // first chunk holds it, so nothing is copied.
    f.head().starts_with(b"\x02\x00\x0aonMetaData")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::{FlvParser, MediaInfo};
    use std::time::Duration;

    fn conf() -> RecorderConf {
        RecorderConf {
            audio: true,
            video: true,
            path: "/rec".into(),
            suffix: ".flv".into(),
            ..Default::default()
        }
    }

    fn frame(kind: FrameKind, ts: u32, key: bool, seq: bool) -> Arc<Frame> {
        let payload = match (kind, seq) {
            (FrameKind::Video, true) => vec![0x17, 0, 0, 0, 0, 1],
            (FrameKind::Video, false) => vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 9],
            (FrameKind::Audio, true) => vec![0xaf, 0, 0x12, 0x10],
            (FrameKind::Audio, false) => vec![0xaf, 1, 7],
            (FrameKind::Data, _) => b"\x02\x00\x0aonMetaData\x05".to_vec(),
        };
        let info = MediaInfo {
            keyframe: key,
            sequence_header: seq,
            codec_id: 7,
            fourcc: None,
            track: 0,
        };
        Arc::new(Frame::new(
            kind,
            ts,
            info,
            Bytes::from(payload),
            4096,
            false,
        ))
    }

    /// A finished file: its path, its tags (type, timestamp), why it closed.
    type File = (PathBuf, Vec<(u8, u32)>, &'static str);

    /// Runs frames through a recorder; returns each file.
    fn run(c: RecorderConf, frames: &[(Arc<Frame>, u64)]) -> Vec<File> {
        let t0 = Instant::now();
        let wall = Local::now();
        let mut r = Recording::new(c, "cam");
        let mut ops = Vec::new();
        r.start(t0, wall, &mut ops);
        for (f, at_ms) in frames {
            r.on_frame(f, t0 + Duration::from_millis(*at_ms), wall, &mut ops);
        }
        r.stop("end", &mut ops);
        let mut files = Vec::new();
        let mut cur: Option<(PathBuf, BytesMut)> = None;
        for op in ops {
            match op {
                Op::Open { path, .. } => cur = Some((path, BytesMut::new())),
                Op::Write(b) => cur.as_mut().unwrap().1.extend_from_slice(&b),
                Op::Close { path, why } => {
                    let (p, mut data) = cur.take().unwrap();
                    assert_eq!(p, path);
                    let mut parser = FlvParser::new();
                    let mut tags = Vec::new();
                    while let Some(t) = parser.next_tag(&mut data).unwrap() {
                        tags.push((t.tag_type, t.timestamp));
                    }
                    assert!(data.is_empty(), "whole tags only");
                    files.push((p, tags, why));
                }
            }
        }
        files
    }

    #[test]
    fn one_file_with_everything_from_the_start() {
        let f = vec![
            (frame(FrameKind::Data, 0, false, false), 0),
            (frame(FrameKind::Video, 0, true, true), 0),
            (frame(FrameKind::Audio, 0, false, true), 0),
            (frame(FrameKind::Audio, 5, false, false), 5),
            (frame(FrameKind::Video, 10, true, false), 10),
            (frame(FrameKind::Video, 50, false, false), 50),
        ];
        let files = run(conf(), &f);
        assert_eq!(files.len(), 1);
        let (path, tags, why) = &files[0];
        assert_eq!(path, &PathBuf::from("/rec/cam.flv"));
        assert_eq!(
            tags,
            &vec![(18, 0), (9, 0), (8, 0), (8, 5), (9, 10), (9, 50)]
        );
        assert_eq!(*why, "end");
    }

    #[test]
    fn max_frames_closes_and_the_next_keyframe_reopens_with_headers() {
        let mut c = conf();
        c.max_frames = 2;
        c.audio = false;
        let f = vec![
            (frame(FrameKind::Data, 0, false, false), 0),
            (frame(FrameKind::Video, 0, true, true), 0),
            (frame(FrameKind::Video, 0, true, false), 0),
            (frame(FrameKind::Video, 40, false, false), 40),
            (frame(FrameKind::Video, 80, false, false), 80), // dropped: closed
            (frame(FrameKind::Video, 120, true, false), 120),
            (frame(FrameKind::Video, 160, false, false), 160),
        ];
        let files = run(c, &f);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].1, vec![(18, 0), (9, 0), (9, 0), (9, 40)]);
        assert_eq!(files[0].2, "record_max_frames");
        // metadata and the sequence header again, then time from 0
        assert_eq!(files[1].1, vec![(18, 0), (9, 0), (9, 0), (9, 40)]);
        assert_eq!(files[1].2, "record_max_frames");
    }

    #[test]
    fn interval_rotates_at_the_first_keyframe_after_it() {
        let mut c = conf();
        c.interval = Some(Duration::from_millis(100));
        let f = vec![
            (frame(FrameKind::Video, 0, true, true), 0),
            (frame(FrameKind::Video, 0, true, false), 0),
            (frame(FrameKind::Video, 80, true, false), 80),
            (frame(FrameKind::Video, 120, false, false), 120),
            (frame(FrameKind::Video, 160, true, false), 160),
        ];
        let files = run(c, &f);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].2, "record_interval");
        assert_eq!(files[0].1, vec![(9, 0), (9, 0), (9, 80), (9, 120)]);
        assert_eq!(files[1].1, vec![(9, 0), (9, 0)]);
    }

    #[test]
    fn keyframes_only_and_lag_skips_to_a_keyframe() {
        let mut c = conf();
        c.video = false;
        c.audio = false;
        c.keyframes = true;
        let t0 = Instant::now();
        let wall = Local::now();
        let mut r = Recording::new(c, "k");
        let mut ops = Vec::new();
        r.start(t0, wall, &mut ops);
        r.on_frame(&frame(FrameKind::Video, 0, true, false), t0, wall, &mut ops);
        r.on_frame(
            &frame(FrameKind::Video, 40, false, false),
            t0,
            wall,
            &mut ops,
        );
        r.on_frame(
            &frame(FrameKind::Audio, 40, false, false),
            t0,
            wall,
            &mut ops,
        );
        let writes = ops.iter().filter(|o| matches!(o, Op::Write(_))).count();
        assert_eq!(writes, 2, "header and the keyframe");
        r.lagged();
        ops.clear();
        r.on_frame(
            &frame(FrameKind::Video, 80, true, false),
            t0,
            wall,
            &mut ops,
        );
        assert_eq!(ops.len(), 1, "a keyframe ends the skip");
    }

    #[test]
    fn append_continues_after_the_last_tag_without_a_header() {
        let mut c = conf();
        c.append = true;
        fn existing(_: &Path) -> Option<Tail> {
            Some(Tail {
                size: 1000,
                last_ts: 5000,
            })
        }
        let t0 = Instant::now();
        let wall = Local::now();
        let mut r = Recording::new(c, "cam").with_probe(existing);
        let mut ops = Vec::new();
        r.start(t0, wall, &mut ops);
        r.on_frame(
            &frame(FrameKind::Video, 700, true, false),
            t0,
            wall,
            &mut ops,
        );
        r.on_frame(
            &frame(FrameKind::Video, 740, false, false),
            t0,
            wall,
            &mut ops,
        );
        assert!(matches!(&ops[0], Op::Open { append: true, .. }));
        let mut data = BytesMut::new();
        for op in &ops[1..] {
            if let Op::Write(b) = op {
                data.extend_from_slice(b);
            }
        }
        assert!(!data.starts_with(b"FLV"), "no second header");
        // Parse the appended tags behind a fresh header.
        let mut whole = BytesMut::from(&flv::file_header(true, true)[..]);
        whole.extend_from_slice(&data);
        let mut p = FlvParser::new();
        let mut ts = Vec::new();
        while let Some(t) = p.next_tag(&mut whole).unwrap() {
            ts.push(t.timestamp);
        }
        assert_eq!(ts, vec![5000, 5040]);
    }

    #[test]
    fn flv_tail_reads_the_last_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.flv");
        assert_eq!(flv_tail(&path), None);
        let mut b = BytesMut::from(&flv::file_header(true, true)[..]);
        flv::write_tag(9, 40, &[0x17, 1], &mut b);
        flv::write_tag(9, 0x0123_4567, &[0x27, 1, 2, 3], &mut b);
        std::fs::write(&path, &b).unwrap();
        assert_eq!(
            flv_tail(&path),
            Some(Tail {
                size: b.len() as u64,
                last_ts: 0x0123_4567
            })
        );
    }
}
