//! The RTMP chunk stream: splitting messages into chunks and back.
//!
//! Decoding is incremental and bounded: a chunk is consumed only once all of
//! it is buffered, a message is never allocated from the length its header
//! claims (the buffer grows with the bytes that actually arrive), and the
//! number of chunk streams, the size of one message and the bytes held in
//! partial messages across all chunk streams are capped.
//!
//! Encoding always starts a message with a type-0 header and continues with
//! type-3 headers. That costs at most ten bytes per message over the
//! compressed forms, but makes the encoded bytes independent of what was
//! sent before on the connection, which is what lets one pre-chunked copy of
//! a media message be shared by every player (see `live::frame`).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Chunk size every connection starts with, in both directions.
pub const DEFAULT_CHUNK_SIZE: usize = 128;
/// Largest chunk size a peer may set (the field is 31 bits, but larger values
/// only serve to make us buffer more; nginx-rtmp caps at the same value).
pub const MAX_CHUNK_SIZE: u32 = 0xFF_FFFF;
/// Largest chunk stream id the 3-byte basic header can express.
pub const MAX_CSID: u32 = 65599;

/// A complete message as it came off the chunk stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub csid: u32,
    pub timestamp: u32,
    pub type_id: u8,
    pub stream_id: u32,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("type-{fmt} chunk on chunk stream {csid}, which has no previous header")]
    NoPreviousHeader { fmt: u8, csid: u32 },
    #[error("message of {len} bytes exceeds max_message {max}")]
    MessageTooLarge { len: u32, max: usize },
    #[error("more than max_streams ({0}) chunk streams in use")]
    TooManyStreams(usize),
    #[error("partial messages hold more than {0} bytes")]
    ReassemblyLimit(usize),
    #[error("invalid chunk size {0}")]
    BadChunkSize(u32),
}

/// Limits applied by the decoder.
#[derive(Debug, Clone, Copy)]
pub struct DecoderLimits {
    pub max_message: usize,
    pub max_streams: usize,
    pub max_reassembly: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits {
            max_message: 8 << 20,
            max_streams: 32,
            max_reassembly: 32 << 20,
        }
    }
}

#[derive(Default)]
struct StreamState {
    timestamp: u32,
    /// The value of the last timestamp field: absolute for type 0, delta
    /// for types 1 and 2. Type-3 new messages add it again.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Whether the last header carried an extended timestamp, which type-3
    /// chunks then repeat (FMS) or omit (some librtmp versions).
    extended: bool,
    partial: BytesMut,
    /// A multi-chunk message is being reassembled in `partial`; its
    /// announced length is counted in the decoder's `reassembly`.
    in_progress: bool,
}

/// Incremental chunk-stream decoder.
pub struct ChunkDecoder {
    chunk_size: usize,
    limits: DecoderLimits,
    /// By chunk stream id, in order of first use. A list, not a map: a
    /// peer uses a handful (at most `max_streams`), and a scan of a few
    /// ids costs less than hashing one, three times per chunk.
    streams: Vec<(u32, StreamState)>,
    /// Announced bytes of all messages being reassembled.
    reassembly: usize,
}

impl ChunkDecoder {
    pub fn new(limits: DecoderLimits) -> Self {
        ChunkDecoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            streams: Vec::new(),
            reassembly: 0,
        }
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Applies the peer's Set Chunk Size.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(ChunkError::BadChunkSize(size));
        }
        self.chunk_size = size as usize;
        Ok(())
    }

    /// Drops the partial message of a chunk stream (Abort message).
    pub fn abort(&mut self, csid: u32) {
        if let Some(i) = self.find(csid) {
            let s = &mut self.streams[i].1;
            if s.in_progress {
                self.reassembly -= s.length as usize;
                s.partial = BytesMut::new();
                s.in_progress = false;
            }
        }
    }

    /// The decoder's state, for a connection moving to another process.
    pub fn export(&self) -> super::state::DecoderState {
        let mut streams: Vec<_> = self
            .streams
            .iter()
            .map(|&(csid, ref s)| super::state::ChunkStreamState {
                csid,
                timestamp: s.timestamp,
                delta: s.delta,
                length: s.length,
                type_id: s.type_id,
                stream_id: s.stream_id,
                extended: s.extended,
                partial: s.partial.to_vec(),
                in_progress: s.in_progress,
            })
            .collect();
        streams.sort_by_key(|s| s.csid);
        super::state::DecoderState {
            chunk_size: self.chunk_size as u32,
            streams,
        }
    }

    /// A decoder that continues where an exported one stopped.
    pub fn import(
        limits: DecoderLimits,
        st: super::state::DecoderState,
    ) -> Result<Self, super::state::StateError> {
        let reassembly = st.check(&limits)?;
        let streams = st
            .streams
            .into_iter()
            .map(|s| {
                let state = StreamState {
                    timestamp: s.timestamp,
                    delta: s.delta,
                    length: s.length,
                    type_id: s.type_id,
                    stream_id: s.stream_id,
                    extended: s.extended,
                    partial: BytesMut::from(&s.partial[..]),
                    in_progress: s.in_progress,
                };
                (s.csid, state)
            })
            .collect();
        Ok(ChunkDecoder {
            chunk_size: st.chunk_size as usize,
            limits,
            streams,
            reassembly,
        })
    }

    fn find(&self, csid: u32) -> Option<usize> {
        self.streams.iter().position(|(id, _)| *id == csid)
    }

    /// Consumes whole chunks from `input` until a message completes or more
    /// bytes are needed.
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            match self.decode_chunk(input)? {
                Step::NeedMore => return Ok(None),
                Step::Message(m) => return Ok(Some(m)),
                Step::Continue => {}
            }
        }
    }

    fn decode_chunk(&mut self, input: &mut BytesMut) -> Result<Step, ChunkError> {
        let buf = &input[..];
        if buf.is_empty() {
            return Ok(Step::NeedMore);
        }
        let Some((fmt, csid, h, mut pos)) = chunk_header(buf) else {
            return Ok(Step::NeedMore);
        };

        let idx = self.find(csid);
        if idx.is_none() {
            if fmt != 0 {
                return Err(ChunkError::NoPreviousHeader { fmt, csid });
            }
            if self.streams.len() >= self.limits.max_streams {
                return Err(ChunkError::TooManyStreams(self.limits.max_streams));
            }
        }
        let prev = idx.map(|i| &self.streams[i].1);
        let continuing = prev.is_some_and(|s| s.in_progress) && fmt == 3;

        // Work out the header this chunk implies without committing it.
        let (mut ts_field, length, type_id, stream_id) = match (fmt, prev) {
            (0, _) => (
                u24(&h[0..3]),
                u24(&h[3..6]),
                h[6],
                u32::from_le_bytes([h[7], h[8], h[9], h[10]]),
            ),
            (1, Some(p)) => (u24(&h[0..3]), u24(&h[3..6]), h[6], p.stream_id),
            (2, Some(p)) => (u24(&h[0..3]), p.length, p.type_id, p.stream_id),
            (_, Some(p)) => (p.delta, p.length, p.type_id, p.stream_id),
            (_, None) => return Err(ChunkError::NoPreviousHeader { fmt, csid }),
        };
        let extended = if fmt == 3 {
            prev.is_some_and(|p| p.extended)
        } else {
            ts_field >= 0xFF_FFFF
        };
        if extended {
            if buf.len() < pos + 4 {
                return Ok(Step::NeedMore);
            }
            let ext = u32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]);
            if fmt != 3 {
                ts_field = ext;
                pos += 4;
            } else if ext == ts_field {
                // Type 3 repeating the extended field (FMS, ffmpeg). Peers
                // that omit it send payload here instead, which will almost
                // never equal the previous value.
                pos += 4;
            }
        }
        if length as usize > self.limits.max_message {
            return Err(ChunkError::MessageTooLarge {
                len: length,
                max: self.limits.max_message,
            });
        }
        let already = if continuing {
            prev.map_or(0, |p| p.partial.len())
        } else {
            0
        };
        let take = (length as usize - already).min(self.chunk_size);
        if buf.len() < pos + take {
            return Ok(Step::NeedMore);
        }
        if !continuing
            && take < length as usize
            && self.reassembly + length as usize > self.limits.max_reassembly
        {
            // Checked against the announced length so a message that will
            // not fit is refused at its first chunk.
            return Err(ChunkError::ReassemblyLimit(self.limits.max_reassembly));
        }

        // Commit.
        let i = idx.unwrap_or_else(|| {
            self.streams.push((csid, StreamState::default()));
            self.streams.len() - 1
        });
        let buffered = input.len() - pos;
        let st = &mut self.streams[i].1;
        if !continuing {
            if st.in_progress {
                // A new header interrupts an unfinished message: drop it, as
                // ffmpeg does, rather than splice two messages together.
                self.reassembly -= st.length as usize;
                st.partial = BytesMut::new();
                st.in_progress = false;
            }
            st.timestamp = if fmt == 0 {
                ts_field
            } else {
                st.timestamp.wrapping_add(ts_field)
            };
            st.delta = ts_field;
            st.length = length;
            st.type_id = type_id;
            st.stream_id = stream_id;
            if fmt != 3 {
                st.extended = extended;
            }
        }
        input.advance(pos);
        let data = input.split_to(take);
        let payload = if !continuing && take == length as usize {
            // Whole message in one chunk: no copy.
            data.freeze()
        } else {
            if !continuing {
                st.in_progress = true;
                self.reassembly += length as usize;
                // Room for the whole message at once (no regrowth and
                // copy per chunk), but never more than has arrived: the
                // announced length alone allocates nothing.
                st.partial.reserve((length as usize).min(buffered));
            }
            st.partial.extend_from_slice(&data);
            if st.partial.len() < length as usize {
                return Ok(Step::Continue);
            }
            st.in_progress = false;
            self.reassembly -= length as usize;
            std::mem::take(&mut st.partial).freeze()
        };
        Ok(Step::Message(RawMessage {
            csid,
            timestamp: st.timestamp,
            type_id: st.type_id,
            stream_id: st.stream_id,
            payload,
        }))
    }
}

/// Splits the start of `buf` into a chunk's format, chunk stream id,
/// message header (11, 7, 3 or 0 bytes, by format) and the length of all
/// that, or `None` when not all of it is buffered yet. The extended
/// timestamp, if any, follows.
pub fn chunk_header(buf: &[u8]) -> Option<(u8, u32, &[u8], usize)> {
    let b0 = *buf.first()?;
    let fmt = b0 >> 6;
    let (csid, pos) = match b0 & 0x3f {
        0 if buf.len() >= 2 => (64 + buf[1] as u32, 2),
        1 if buf.len() >= 3 => (64 + buf[1] as u32 + ((buf[2] as u32) << 8), 3),
        0 | 1 => return None,
        c => (c as u32, 1),
    };
    let len = [11, 7, 3, 0][fmt as usize];
    Some((fmt, csid, buf.get(pos..pos + len)?, pos + len))
}

/// A big-endian 24-bit field.
pub fn u24(b: &[u8]) -> u32 {
    ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32
}

enum Step {
    NeedMore,
    Continue,
    Message(RawMessage),
}

/// Writes a basic header for `csid` with format `fmt`.
fn put_basic_header(fmt: u8, csid: u32, out: &mut BytesMut) {
    match csid {
        2..=63 => out.put_u8((fmt << 6) | csid as u8),
        64..=319 => {
            out.put_u8(fmt << 6);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            let c = csid.clamp(320, MAX_CSID) - 64;
            out.put_u8((fmt << 6) | 1);
            out.put_u8(c as u8);
            out.put_u8((c >> 8) as u8);
        }
    }
}

/// Size of the encoding of a `len`-byte message with chunk size `chunk`.
pub fn encoded_len(csid: u32, timestamp: u32, len: usize, chunk: usize) -> usize {
    let basic = match csid {
        2..=63 => 1,
        64..=319 => 2,
        _ => 3,
    };
    let ext = if timestamp >= 0xFF_FFFF { 4 } else { 0 };
    let chunks = len.div_ceil(chunk).max(1);
    basic + 11 + ext + len + (chunks - 1) * (basic + ext)
}

/// Appends one message to `out` as a type-0 chunk followed by type-3
/// continuation chunks (which repeat the extended timestamp, as FMS does).
pub fn encode_message(
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
    chunk_size: usize,
    out: &mut BytesMut,
) {
    out.reserve(encoded_len(csid, timestamp, payload.len(), chunk_size));
    let ext = timestamp >= 0xFF_FFFF;
    put_basic_header(0, csid, out);
    let ts24 = if ext { 0xFF_FFFF } else { timestamp };
    out.put_uint(ts24 as u64, 3);
    out.put_uint(payload.len() as u64, 3);
    out.put_u8(type_id);
    out.put_u32_le(stream_id);
    if ext {
        out.put_u32(timestamp);
    }
    let mut chunks = payload.chunks(chunk_size.max(1));
    if let Some(first) = chunks.next() {
        out.put_slice(first);
    }
    for c in chunks {
        put_basic_header(3, csid, out);
        if ext {
            out.put_u32(timestamp);
        }
        out.put_slice(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(dec: &mut ChunkDecoder, bytes: &[u8]) -> Vec<RawMessage> {
        let mut input = BytesMut::from(bytes);
        let mut out = vec![];
        while let Some(m) = dec.decode(&mut input).unwrap() {
            out.push(m);
        }
        assert!(input.is_empty(), "left over: {:?}", &input[..]);
        out
    }

    #[test]
    fn known_answer_type0_single_chunk() {
        // csid 3, ts 0x000102, len 3, type 20, msid 1 (little-endian), "abc"
        let wire = [0x03, 0, 1, 2, 0, 0, 3, 20, 1, 0, 0, 0, b'a', b'b', b'c'];
        let mut out = BytesMut::new();
        encode_message(3, 0x102, 20, 1, b"abc", 128, &mut out);
        assert_eq!(&out[..], &wire);
        let m = decode_all(&mut ChunkDecoder::new(Default::default()), &wire);
        assert_eq!(
            m,
            vec![RawMessage {
                csid: 3,
                timestamp: 0x102,
                type_id: 20,
                stream_id: 1,
                payload: Bytes::from_static(b"abc")
            }]
        );
    }

    #[test]
    fn every_fmt_and_basic_header_size() {
        // Hand-built stream: fmt0 on csid 70 (2-byte basic header), then
        // fmt1 (new length/type), fmt2 (delta only), fmt3 (same again).
        let mut w = vec![0x00, 70 - 64, 0, 0, 10, 0, 0, 2, 9, 1, 0, 0, 0, b'v', b'0'];
        w.extend_from_slice(&[0x40, 6, 0, 0, 5, 0, 0, 1, 8, b'a']);
        w.extend_from_slice(&[0x80, 6, 0, 0, 7, b'b']);
        w.extend_from_slice(&[0xC0, 6, b'c']);
        // csid 65599 via 3-byte basic header: (65599-64) = 0xFFFF
        w.extend_from_slice(&[0x01, 0xFF, 0xFF, 0, 0, 1, 0, 0, 1, 8, 1, 0, 0, 0, b'x']);
        let m = decode_all(&mut ChunkDecoder::new(Default::default()), &w);
        let ts: Vec<_> = m.iter().map(|m| (m.csid, m.timestamp, m.type_id)).collect();
        assert_eq!(
            ts,
            vec![
                (70, 10, 9),
                (70, 15, 8),
                (70, 22, 8),
                (70, 29, 8),
                (65599, 1, 8)
            ]
        );
        assert_eq!(&m[3].payload[..], b"c");
    }

    #[test]
    fn multi_chunk_and_chunk_size_change_mid_stream() {
        let payload: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut wire = BytesMut::new();
        encode_message(6, 40, 9, 1, &payload, 128, &mut wire);
        let mut dec = ChunkDecoder::new(Default::default());
        let m = decode_all(&mut dec, &wire);
        assert_eq!(&m[0].payload[..], &payload[..]);
        // the peer switches to 4096 and sends the same message again
        dec.set_chunk_size(4096).unwrap();
        let mut wire = BytesMut::new();
        encode_message(6, 80, 9, 1, &payload, 4096, &mut wire);
        assert_eq!(wire.len(), 12 + 1000);
        let m = decode_all(&mut dec, &wire);
        assert_eq!((m[0].timestamp, m[0].payload.len()), (80, 1000));
    }

    #[test]
    fn extended_timestamps_with_and_without_type3_repeat() {
        let payload = vec![7u8; 300];
        let mut fms = BytesMut::new();
        encode_message(4, 0x0100_0000, 8, 1, &payload, 128, &mut fms);
        assert_eq!(fms.len(), encoded_len(4, 0x0100_0000, 300, 128));
        let m = decode_all(&mut ChunkDecoder::new(Default::default()), &fms);
        assert_eq!((m[0].timestamp, m[0].payload.len()), (0x0100_0000, 300));

        // librtmp-style: type 3 continuation without the extended field
        let mut lib = vec![
            0x04, 0xff, 0xff, 0xff, 0, 1, 0x2c, 8, 1, 0, 0, 0, 0x01, 0, 0, 0,
        ];
        lib.extend_from_slice(&payload[..128]);
        lib.push(0xC4);
        lib.extend_from_slice(&payload[128..256]);
        lib.push(0xC4);
        lib.extend_from_slice(&payload[256..]);
        let m = decode_all(&mut ChunkDecoder::new(Default::default()), &lib);
        assert_eq!(
            (m[0].timestamp, &m[0].payload[..]),
            (0x0100_0000, &payload[..])
        );
    }

    #[test]
    fn byte_at_a_time_interleaved_streams() {
        let a = vec![1u8; 500];
        let b = vec![2u8; 300];
        let mut ea = BytesMut::new();
        encode_message(4, 0, 8, 1, &a, 128, &mut ea);
        let mut eb = BytesMut::new();
        encode_message(6, 0, 9, 1, &b, 128, &mut eb);
        // interleave: a's first chunk, b's first chunk, rest of a, rest of b
        let split_a = 12 + 128;
        let split_b = 12 + 128;
        let mut wire = Vec::new();
        wire.extend_from_slice(&ea[..split_a]);
        wire.extend_from_slice(&eb[..split_b]);
        wire.extend_from_slice(&ea[split_a..]);
        wire.extend_from_slice(&eb[split_b..]);
        let mut dec = ChunkDecoder::new(Default::default());
        let mut input = BytesMut::new();
        let mut got = vec![];
        for byte in wire {
            input.extend_from_slice(&[byte]);
            while let Some(m) = dec.decode(&mut input).unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].payload.len(), 500);
        assert_eq!(got[1].payload.len(), 300);
    }

    #[test]
    fn limits() {
        let mut dec = ChunkDecoder::new(Default::default());
        let mut input = BytesMut::from(&[0x43, 0, 0, 0, 0, 0, 1, 8][..]);
        assert_eq!(
            dec.decode(&mut input),
            Err(ChunkError::NoPreviousHeader { fmt: 1, csid: 3 })
        );
        for bad in [0, 0x8000_0000, 0x0100_0000] {
            assert_eq!(dec.set_chunk_size(bad), Err(ChunkError::BadChunkSize(bad)));
        }
        // 16 MiB announced
        let mut input = BytesMut::from(&[0x03, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0][..]);
        assert!(matches!(
            dec.decode(&mut input),
            Err(ChunkError::MessageTooLarge { .. })
        ));
        // too many chunk streams
        let limits = DecoderLimits {
            max_streams: 2,
            ..Default::default()
        };
        let mut dec = ChunkDecoder::new(limits);
        let mut input = BytesMut::new();
        for csid in 3..6u8 {
            input.extend_from_slice(&[csid, 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 0]);
        }
        assert!(dec.decode(&mut input).unwrap().is_some());
        assert!(dec.decode(&mut input).unwrap().is_some());
        assert_eq!(dec.decode(&mut input), Err(ChunkError::TooManyStreams(2)));
        // reassembly cap across chunk streams
        let limits = DecoderLimits {
            max_message: 1 << 20,
            max_streams: 64,
            max_reassembly: 1 << 20,
        };
        let mut dec = ChunkDecoder::new(limits);
        let mut input = BytesMut::new();
        input.extend_from_slice(&[0x03, 0, 0, 0, 0x09, 0, 0, 9, 1, 0, 0, 0]);
        input.extend_from_slice(&[0; 128]);
        input.extend_from_slice(&[0x04, 0, 0, 0, 0x09, 0, 0, 9, 1, 0, 0, 0]);
        input.extend_from_slice(&[0; 128]);
        // the first message's chunk is held, the second one is refused
        assert_eq!(
            dec.decode(&mut input),
            Err(ChunkError::ReassemblyLimit(1 << 20))
        );
        assert_eq!(input.len(), 12 + 128);
    }
}
