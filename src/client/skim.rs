//! A chunk-stream reader for load generation: it walks chunk headers and
//! skips media payloads instead of reassembling them.
//!
//! `sluice bench` runs thousands of players on the same two cores as the
//! server it measures, so a player must cost next to nothing per frame. The
//! full [`crate::rtmp::chunk::ChunkDecoder`] copies every multi-chunk
//! message into a fresh buffer; this reader keeps only the first two bytes
//! of an audio or video payload (enough to tell a keyframe from a sequence
//! header) and buffers only small control and command messages, in buffers
//! it reuses. Nothing is allocated per frame. Like the decoder it is
//! sans-IO: bytes in, events out.

use std::fmt;

use crate::rtmp::chunk::{chunk_header, u24};

/// Largest non-media message buffered (commands, control, metadata).
const MAX_CONTROL: usize = 1 << 20;
/// Largest media message accepted (same cap as the client's decoder).
const MAX_MEDIA: u32 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkimError {
    NoPreviousHeader(u32),
    TooLarge { type_id: u8, len: u32 },
    BadChunkSize(u32),
}

impl fmt::Display for SkimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkimError::NoPreviousHeader(c) => {
                write!(f, "chunk on chunk stream {c} with no previous header")
            }
            SkimError::TooLarge { type_id, len } => {
                write!(f, "message type {type_id} of {len} bytes is too large")
            }
            SkimError::BadChunkSize(n) => write!(f, "invalid chunk size {n}"),
        }
    }
}

impl std::error::Error for SkimError {}

/// One complete message.
#[derive(Debug, PartialEq, Eq)]
pub enum Skimmed<'a> {
    /// Audio (8) or video (9): its first two payload bytes (zero-padded).
    Media {
        type_id: u8,
        timestamp: u32,
        len: u32,
        head: [u8; 2],
    },
    /// Anything else, whole.
    Other {
        type_id: u8,
        stream_id: u32,
        body: &'a [u8],
    },
}

#[derive(Default)]
struct ChunkStream {
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    /// Payload bytes of the current message still to come; 0 between
    /// messages.
    left: u32,
    head: [u8; 2],
    head_len: u8,
    body: Vec<u8>,
}

impl ChunkStream {
    fn is_media(&self) -> bool {
        self.type_id == 8 || self.type_id == 9
    }
}

pub struct Skimmer {
    chunk_size: u32,
    streams: Vec<(u32, ChunkStream)>,
    /// Chunk stream whose chunk payload is being read, and its bytes left.
    current: Option<(usize, u32)>,
}

impl Default for Skimmer {
    fn default() -> Self {
        Self::new(128)
    }
}

impl Skimmer {
    pub fn new(chunk_size: u32) -> Self {
        Skimmer {
            chunk_size: chunk_size.max(1),
            streams: Vec::new(),
            current: None,
        }
    }

    /// Applies the peer's Set Chunk Size.
    pub fn set_chunk_size(&mut self, n: u32) -> Result<(), SkimError> {
        if n == 0 || n > 0xFF_FFFF {
            return Err(SkimError::BadChunkSize(n));
        }
        self.chunk_size = n;
        Ok(())
    }

    /// Consumes what it can of `input`, calling `on` for each complete
    /// message, and returns how many bytes it consumed; the caller keeps
    /// the rest for the next call. Set Chunk Size is applied here, before
    /// the next chunk is read.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut on: impl FnMut(Skimmed<'_>),
    ) -> Result<usize, SkimError> {
        let mut pos = 0;
        loop {
            if let Some((idx, left)) = self.current {
                let take = (left as usize).min(input.len() - pos);
                if take == 0 {
                    return Ok(pos);
                }
                let data = &input[pos..pos + take];
                pos += take;
                let st = &mut self.streams[idx].1;
                let offset = st.length - st.left;
                if st.is_media() {
                    for (i, b) in data.iter().enumerate().take(2) {
                        let at = offset as usize + i;
                        if at < 2 {
                            st.head[at] = *b;
                            st.head_len = st.head_len.max(at as u8 + 1);
                        }
                    }
                } else {
                    st.body.extend_from_slice(data);
                }
                st.left -= take as u32;
                let chunk_left = left - take as u32;
                self.current = (chunk_left > 0).then_some((idx, chunk_left));
                if st.left == 0 {
                    self.current = None;
                    self.complete(idx, &mut on)?;
                }
                continue;
            }
            match self.header(&input[pos..])? {
                Some(n) => pos += n,
                None => return Ok(pos),
            }
        }
    }

    fn complete(&mut self, idx: usize, on: &mut impl FnMut(Skimmed<'_>)) -> Result<(), SkimError> {
        let st = &mut self.streams[idx].1;
        if st.is_media() {
            let mut head = [0; 2];
            head[..st.head_len as usize].copy_from_slice(&st.head[..st.head_len as usize]);
            on(Skimmed::Media {
                type_id: st.type_id,
                timestamp: st.timestamp,
                len: st.length,
                head,
            });
            return Ok(());
        }
        let body = std::mem::take(&mut st.body);
        let (type_id, stream_id) = (st.type_id, st.stream_id);
        if type_id == 1 && body.len() >= 4 {
            let n = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) & 0x7fff_ffff;
            self.set_chunk_size(n)?;
        }
        on(Skimmed::Other {
            type_id,
            stream_id,
            body: &body,
        });
        let st = &mut self.streams[idx].1;
        st.body = body;
        st.body.clear();
        Ok(())
    }

    /// Parses one chunk header at the start of `buf`; returns its length,
    /// or `None` when more bytes are needed.
    fn header(&mut self, buf: &[u8]) -> Result<Option<usize>, SkimError> {
        let Some((fmt, csid, h, mut pos)) = chunk_header(buf) else {
            return Ok(None);
        };
        let idx = match self.streams.iter().position(|(c, _)| *c == csid) {
            Some(i) => i,
            None if fmt == 0 => {
                self.streams.push((csid, ChunkStream::default()));
                self.streams.len() - 1
            }
            None => return Err(SkimError::NoPreviousHeader(csid)),
        };
        let st = &mut self.streams[idx].1;
        let extended = if fmt == 3 {
            st.extended
        } else {
            u24(&h[0..3]) == 0xFF_FFFF
        };
        let ext = if extended {
            if buf.len() < pos + 4 {
                return Ok(None);
            }
            pos += 4;
            Some(u32::from_be_bytes([
                buf[pos - 4],
                buf[pos - 3],
                buf[pos - 2],
                buf[pos - 1],
            ]))
        } else {
            None
        };
        if fmt == 3 && st.left > 0 {
            // Continuation chunk of the current message.
            self.current = Some((idx, st.left.min(self.chunk_size)));
            return Ok(Some(pos));
        }
        let field = match fmt {
            3 => st.delta,
            _ => ext.unwrap_or_else(|| u24(&h[0..3])),
        };
        if fmt <= 1 {
            st.length = u24(&h[3..6]);
            st.type_id = h[6];
        }
        if fmt == 0 {
            st.stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
            st.timestamp = field;
        } else {
            st.timestamp = st.timestamp.wrapping_add(field);
        }
        if fmt != 3 {
            st.extended = extended;
        }
        st.delta = field;
        let too_large = if st.is_media() {
            st.length > MAX_MEDIA
        } else {
            st.length as usize > MAX_CONTROL
        };
        if too_large {
            return Err(SkimError::TooLarge {
                type_id: st.type_id,
                len: st.length,
            });
        }
        st.left = st.length;
        st.head_len = 0;
        st.body.clear();
        if st.length == 0 {
            self.complete(idx, &mut |_| {})?;
            return Ok(Some(pos));
        }
        self.current = Some((idx, st.left.min(self.chunk_size)));
        Ok(Some(pos))
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::rtmp::chunk::encode_message;

    fn collect(sk: &mut Skimmer, wire: &[u8], step: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for piece in wire.chunks(step) {
            buf.extend_from_slice(piece);
            let used = sk
                .feed(&buf, |m| out.push(format!("{m:?}")))
                .expect("valid stream");
            buf.drain(..used);
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn skims_media_and_keeps_control_messages_at_any_split() {
        let mut wire = BytesMut::new();
        // Set Chunk Size 300 at the default 128, then a 1000-byte video
        // message and a command at 300.
        encode_message(2, 0, 1, 0, &300u32.to_be_bytes(), 128, &mut wire);
        let mut video = vec![0x17, 0x01];
        video.resize(1000, 7);
        encode_message(7, 0x0100_0000, 9, 1, &video, 300, &mut wire);
        encode_message(3, 5, 20, 1, b"hello", 300, &mut wire);
        // Compressed headers: type 1 then type 3 on the audio stream.
        encode_message(6, 40, 8, 1, &[0xaf, 0x01, 9, 9], 300, &mut wire);
        wire.extend_from_slice(&[0x46, 0, 0, 23, 0, 0, 3, 8, 0xaf, 0x00, 1]);
        wire.extend_from_slice(&[0xc6, 0xaf, 0x01, 2]);
        for step in [1, 7, 128, 5000] {
            let got = collect(&mut Skimmer::default(), &wire, step);
            assert_eq!(got.len(), 6, "step {step}: {got:?}");
            assert!(got[1].contains("type_id: 9, timestamp: 16777216, len: 1000, head: [23, 1]"));
            assert!(got[2].contains("type_id: 20") && got[2].contains("[104, 101, 108, 108, 111]"));
            assert!(
                got[4].contains("timestamp: 63, len: 3, head: [175, 0]"),
                "{}",
                got[4]
            );
            assert!(
                got[5].contains("timestamp: 86, len: 3, head: [175, 1]"),
                "{}",
                got[5]
            );
        }
    }

    #[test]
    fn refuses_headerless_chunks_and_huge_control_messages() {
        let mut sk = Skimmer::default();
        assert_eq!(
            sk.feed(&[0x45, 0, 0, 0, 0, 0, 1, 8], |_| {}),
            Err(SkimError::NoPreviousHeader(5))
        );
        let mut sk = Skimmer::default();
        let hdr = [0x03, 0, 0, 0, 0x7f, 0xff, 0xff, 20, 0, 0, 0, 0];
        assert!(matches!(
            sk.feed(&hdr, |_| {}),
            Err(SkimError::TooLarge { type_id: 20, .. })
        ));
    }
}
