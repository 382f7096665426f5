//! A media message as the live layer shares it.
//!
//! A publisher's message is turned into one [`Frame`] when it arrives. The
//! frame holds the payload and, next to it, the complete chunked form that
//! players on message stream 1 (all real clients) receive: type-0 header
//! and type-3 continuations at the server's chunk size. Players then write
//! `frame.chunked` as is — one `Bytes` clone (an atomic increment) per player
//! and message, no per-player encoding, copying or allocation.

use bytes::{Bytes, BytesMut};

use crate::flv::MediaInfo;
use crate::rtmp::chunk;
use crate::rtmp::message::{csid, types};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Audio,
    Video,
    /// A data message: metadata or other script data (`onTextData`...).
    Data,
}

/// The message stream id the pre-chunked form is encoded for: the first
/// `createStream` of every connection gets it.
pub const SHARED_STREAM_ID: u32 = 1;

#[derive(Debug)]
pub struct Frame {
    pub kind: FrameKind,
    /// Timestamp as sent to players (monotonic per track, wrapping at 2^32
    /// as RTMP timestamps do).
    pub timestamp: u32,
    pub info: MediaInfo,
    pub payload: Bytes,
    /// The whole message chunked for [`SHARED_STREAM_ID`].
    pub chunked: Bytes,
}

impl Frame {
    pub fn new(
        kind: FrameKind,
        timestamp: u32,
        info: MediaInfo,
        payload: Bytes,
        chunk_size: usize,
        interleave: bool,
    ) -> Frame {
        let (cs, type_id) = frame_channel(kind, interleave);
        let mut out = BytesMut::new();
        chunk::encode_message(
            cs,
            timestamp,
            type_id,
            SHARED_STREAM_ID,
            &payload,
            chunk_size,
            &mut out,
        );
        Frame {
            kind,
            timestamp,
            info,
            payload,
            chunked: out.freeze(),
        }
    }

    pub fn is_video_key(&self) -> bool {
        self.kind == FrameKind::Video && self.info.keyframe
    }

    /// Encodes the frame for a player on another message stream (rare:
    /// a client that created more than one stream).
    pub fn encode_for(
        &self,
        stream_id: u32,
        chunk_size: usize,
        interleave: bool,
        out: &mut BytesMut,
    ) {
        let (cs, type_id) = frame_channel(self.kind, interleave);
        chunk::encode_message(
            cs,
            self.timestamp,
            type_id,
            stream_id,
            &self.payload,
            chunk_size,
            out,
        );
    }
}

/// Chunk stream and message type for a frame kind. With nginx-rtmp's
/// `interleave on`, audio and video share one chunk stream.
fn frame_channel(kind: FrameKind, interleave: bool) -> (u32, u8) {
    match kind {
        FrameKind::Audio if interleave => (csid::VIDEO, types::AUDIO),
        FrameKind::Audio => (csid::AUDIO, types::AUDIO),
        FrameKind::Video => (csid::VIDEO, types::VIDEO),
        FrameKind::Data => (csid::DATA, types::DATA_AMF0),
    }
}
