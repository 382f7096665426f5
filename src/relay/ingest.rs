//! An in-process publisher: media a relay receives from another server,
//! turned into [`Frame`]s of a local stream exactly as a publishing
//! connection's media is, so players cannot tell the difference.
//!
//! A pull can change upstream while the local stream lives on (an edge that
//! follows a moved publisher). [`Ingest::switch`] then shifts timestamps so
//! no track goes back, and drops what the new upstream sends before its
//! first video keyframe.

use std::sync::Arc;

use crate::flv;
use crate::live::timestamp::TimestampFix;
use crate::live::{Frame, FrameKind, Stream};
use crate::rtmp::{Amf, Message};
use crate::stats::Counters;

pub struct Ingest {
    pub stream: Arc<Stream>,
    /// The publisher id this ingest pushes as.
    pub id: u64,
    ts: TimestampFix,
    chunk_size: usize,
    gop_cache: bool,
    interleave: bool,
    /// After a switch: wait for a video keyframe (when the stream has video).
    resync: bool,
    seen_video: bool,
    pub frames: u64,
    /// Media payload bytes taken, and the last timestamp: the pull's row in
    /// /stat.
    pub counters: Counters,
}

impl Ingest {
    pub fn new(
        stream: Arc<Stream>,
        id: u64,
        chunk_size: usize,
        gop_cache: bool,
        interleave: bool,
    ) -> Self {
        Ingest {
            stream,
            id,
            ts: TimestampFix::new(),
            chunk_size,
            gop_cache,
            interleave,
            resync: false,
            seen_video: false,
            frames: 0,
            counters: Counters::default(),
        }
    }

    /// A new upstream follows: continue above every timestamp players got
    /// and start at its first keyframe.
    pub fn switch(&mut self) {
        self.ts = TimestampFix::continuing(self.stream.takeover_floor());
        self.resync = self.seen_video;
    }

    /// Whether `m` is where a switched-to upstream may start.
    pub fn is_start(m: &Message) -> bool {
        match m {
            Message::Video { payload, .. } => {
                flv::video_info(payload).is_ok_and(|i| i.keyframe && !i.sequence_header)
            }
            _ => false,
        }
    }

    /// Takes one message from the upstream; anything but media is ignored.
    pub fn accept(&mut self, m: Message) {
        let (kind, ts, payload) = match m {
            Message::Audio {
                timestamp, payload, ..
            } => (FrameKind::Audio, timestamp, payload),
            Message::Video {
                timestamp, payload, ..
            } => (FrameKind::Video, timestamp, payload),
            Message::Data {
                timestamp, values, ..
            } => return self.data(timestamp, values),
            _ => return,
        };
        let info = match kind {
            FrameKind::Video => flv::video_info(&payload),
            _ => flv::audio_info(&payload),
        };
        let Ok(info) = info else { return };
        if kind == FrameKind::Video {
            self.seen_video = true;
        }
        if self.resync && !info.sequence_header {
            if kind == FrameKind::Video && info.keyframe {
                self.resync = false;
            } else {
                return;
            }
        }
        let track = if kind == FrameKind::Video { 1 } else { 0 };
        let ts = self.ts.fix_track(ts, track, info.track);
        self.frames += 1;
        let c = &mut self.counters;
        c.bytes_in += payload.len() as u64;
        match kind {
            FrameKind::Video => c.video += payload.len() as u64,
            _ => c.audio += payload.len() as u64,
        }
        c.timestamp = ts;
        let frame = Frame::new(kind, ts, info, payload, self.chunk_size, self.interleave);
        self.stream
            .push(self.id, Arc::new(frame), self.gop_cache, false);
    }

    /// Metadata passes through as the upstream sent it (it already went
    /// through the upstream's `meta` setting).
    fn data(&mut self, ts: u32, mut values: Vec<Amf>) {
        let is_meta = crate::live::frame::strip_set_data_frame(&mut values);
        let ts = self.ts.fix(ts, 2);
        let frame = Frame::data(if is_meta { 0 } else { ts }, &values, self.chunk_size);
        self.stream.push(self.id, Arc::new(frame), false, is_meta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::stream::{PublisherId, Takeover};
    use bytes::Bytes;

    fn video(ts: u32, key: bool) -> Message {
        let b0 = if key { 0x17 } else { 0x27 };
        Message::Video {
            timestamp: ts,
            stream_id: 1,
            payload: Bytes::from(vec![b0, 1, 0, 0, 0, 9, 9]),
        }
    }

    #[test]
    fn switch_waits_for_a_keyframe_and_keeps_time_going() {
        let s = Arc::new(Stream::new("live", "s", 64));
        let who = PublisherId {
            id: 7,
            addr: std::net::Ipv4Addr::LOCALHOST.into(),
            relay: true,
        };
        s.publish(who, Takeover::Off).unwrap();
        let (_, mut rx) = s.subscribe();
        let mut i = Ingest::new(s.clone(), 7, 4096, true, false);
        i.accept(video(1000, true));
        i.accept(video(1040, false));
        i.switch();
        i.accept(video(0, false)); // before the new upstream's keyframe
        i.accept(video(40, true));
        let mut got = vec![];
        while let Ok(crate::live::Delivery::Frame(f)) = rx.try_recv() {
            got.push((f.timestamp, f.info.keyframe));
        }
        assert_eq!(got, vec![(1000, true), (1040, false), (1041, true)]);
    }
}
