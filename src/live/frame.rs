//! A media message as the live layer shares it.
//!
//! A publisher's message is turned into one [`Frame`] when it arrives. The
//! frame holds the payload and, next to it, the complete chunked form that
//! players on message stream 1 (all real clients) receive: type-0 header
//! and type-3 continuations at the server's chunk size. Players then write
//! `frame.chunked` as is — one `Bytes` clone (an atomic increment) per player
//! and message, no per-player encoding, copying or allocation.
//!
//! Only the chunked form is kept: the payload is read back out of it when
//! needed (rarely: another message stream id, a sequence header compared).
//! Keeping both would double the memory of every stream's ring and GOP
//! cache.

use bytes::{Bytes, BytesMut};

use crate::flv::{config_key, Anchor, ConfigKey, Media, MediaInfo};
use crate::rtmp::chunk;
use crate::rtmp::message::{csid, types};
use crate::rtmp::Amf;

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
    /// The whole message chunked for [`SHARED_STREAM_ID`].
    pub chunked: Bytes,
    /// Length of the type-0 header, of each continuation header, the
    /// chunk size used and the payload length.
    header_len: usize,
    cont_len: usize,
    chunk_size: usize,
    payload_len: usize,
}

/// A data message's values as a stream keeps them: without the
/// `@setDataFrame` a publisher puts in front. Returns whether they are
/// `onMetaData` (cached for late joiners).
pub fn strip_set_data_frame(values: &mut Vec<Amf>) -> bool {
    if values.first().and_then(Amf::as_str) == Some("@setDataFrame") {
        values.remove(0);
    }
    values.first().and_then(Amf::as_str) == Some("onMetaData")
}

impl Frame {
    /// A data message (metadata, `onTextData`...) as a frame. Rebuilt
    /// `onMetaData` (`meta on`, and what a relay receives) goes at timestamp
    /// 0, as nginx-rtmp sends it: ffmpeg 6 and later read an `onMetaData` at
    /// any other timestamp (a relayed stream's, a publisher's after a
    /// takeover) as a subtitle packet, and grow a subtitle stream.
    pub fn data(timestamp: u32, values: &[Amf], chunk_size: usize) -> Frame {
        let info = MediaInfo {
            keyframe: false,
            sequence_header: false,
            codec_id: 0,
            fourcc: None,
            track: 0,
        };
        let payload = crate::rtmp::amf::encode_all(values);
        Frame::new(FrameKind::Data, timestamp, info, payload, chunk_size, false)
    }

    pub fn new(
        kind: FrameKind,
        timestamp: u32,
        info: MediaInfo,
        payload: Bytes,
        chunk_size: usize,
        interleave: bool,
    ) -> Frame {
        let (cs, type_id) = frame_channel(kind, interleave);
        let chunk_size = chunk_size.max(1);
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
        // What one more chunk adds: a continuation header.
        let cont_len =
            chunk::encoded_len(cs, timestamp, 2, 1) - chunk::encoded_len(cs, timestamp, 2, 2);
        Frame {
            kind,
            timestamp,
            info,
            chunked: out.freeze(),
            header_len: chunk::encoded_len(cs, timestamp, 0, chunk_size),
            cont_len,
            chunk_size,
            payload_len: payload.len(),
        }
    }

    /// The chunk size of [`Self::chunked`].
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// The payload's first chunk (at least its first 128 bytes, or all of
    /// it): enough to classify the frame or read its composition offset.
    pub fn head(&self) -> &[u8] {
        let end = self.header_len + self.payload_len.min(self.chunk_size);
        &self.chunked[self.header_len..end]
    }

    /// The payload: a view of the chunked form when it is one chunk, a
    /// copy without the continuation headers otherwise.
    pub fn payload(&self) -> Bytes {
        if self.payload_len <= self.chunk_size {
            return self.chunked.slice(self.header_len..);
        }
        let mut out = BytesMut::with_capacity(self.payload_len);
        self.put_payload(&mut out);
        out.freeze()
    }

    /// Appends the payload, skipping the continuation headers.
    fn put_payload(&self, out: &mut BytesMut) {
        let mut pos = self.header_len;
        let mut left = self.payload_len;
        while left > 0 {
            let take = left.min(self.chunk_size);
            out.extend_from_slice(&self.chunked[pos..pos + take]);
            left -= take;
            pos += take + self.cont_len;
        }
    }

    /// Appends the frame as an FLV tag at `ts`, copying the payload once,
    /// straight out of the chunked form (no intermediate buffer).
    pub fn write_flv_tag(&self, ts: u32, out: &mut BytesMut) {
        let tag_type = match self.kind {
            FrameKind::Audio => crate::flv::TAG_AUDIO,
            FrameKind::Video => crate::flv::TAG_VIDEO,
            FrameKind::Data => crate::flv::TAG_SCRIPT,
        };
        out.reserve(15 + self.payload_len);
        crate::flv::put_tag_header(tag_type, ts, self.payload_len, out);
        self.put_payload(out);
        out.extend_from_slice(&(11 + self.payload_len as u32).to_be_bytes());
    }

    pub fn is_video_key(&self) -> bool {
        self.kind == FrameKind::Video && self.info.keyframe
    }

    /// A keyframe of the stream's first video track: see [`Anchor`].
    pub fn is_start(&self, anchor: &mut Anchor) -> bool {
        anchor.is_start(self.is_video_key(), self.info.track)
    }

    /// For a decoder configuration (a sequence header), which tracks and
    /// what it configures: its place in a [`crate::flv::Configs`].
    pub fn config_key(&self) -> Option<ConfigKey> {
        let media = match self.kind {
            FrameKind::Video => Media::Video,
            FrameKind::Audio => Media::Audio,
            FrameKind::Data => return None,
        };
        if !self.info.sequence_header {
            return None;
        }
        config_key(media, &self.payload())
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
            &self.payload(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_reads_back_from_the_chunked_form() {
        let info = crate::flv::video_info(&[0x17, 1, 0, 0, 0]).unwrap();
        for (len, ts) in [
            (0usize, 0u32),
            (5, 40),
            (128, 40),
            (129, 40),
            (1000, 0x0100_0000),
        ] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let f = Frame::new(
                FrameKind::Video,
                ts,
                info,
                Bytes::from(payload.clone()),
                128,
                false,
            );
            assert_eq!(&f.payload()[..], &payload[..], "len {len}");
            assert_eq!(f.payload_len(), len);
            assert_eq!(f.head(), &payload[..len.min(128)]);
            let mut other = BytesMut::new();
            f.encode_for(SHARED_STREAM_ID, 128, false, &mut other);
            assert_eq!(&other[..], &f.chunked[..]);
            let (mut tag, mut expect) = (BytesMut::new(), BytesMut::new());
            f.write_flv_tag(ts.wrapping_add(7), &mut tag);
            crate::flv::write_tag(9, ts.wrapping_add(7), &payload, &mut expect);
            assert_eq!(tag, expect, "flv tag, len {len}");
        }
    }
}
