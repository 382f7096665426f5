//! A session's protocol state as plain data, so that a live connection can
//! move to another process (binary upgrade, `server::handover`) and carry on
//! mid-message: chunk sizes both ways, each chunk stream's last header and
//! partial message, and the byte counters acknowledgements are based on.
//!
//! Restoring checks everything against the receiving side's limits, as if
//! it came from the peer: the state crosses a process boundary.

use serde::{Deserialize, Serialize};

use super::chunk::{DecoderLimits, MAX_CHUNK_SIZE, MAX_CSID};

/// One chunk stream's header state and partial message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkStreamState {
    pub csid: u32,
    pub timestamp: u32,
    pub delta: u32,
    pub length: u32,
    pub type_id: u8,
    pub stream_id: u32,
    pub extended: bool,
    /// The message being reassembled, when `in_progress`.
    #[serde(with = "b64")]
    pub partial: Vec<u8>,
    pub in_progress: bool,
}

/// The decoder side (what the peer sends us).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecoderState {
    pub chunk_size: u32,
    pub streams: Vec<ChunkStreamState>,
}

/// The whole session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    pub decoder: DecoderState,
    pub out_chunk_size: u32,
    pub received: u64,
    pub acked: u64,
    pub peer_window: Option<u32>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("chunk size {0} out of range")]
    ChunkSize(u32),
    #[error("chunk stream id {0} out of range")]
    Csid(u32),
    #[error("chunk stream {0} appears twice")]
    Duplicate(u32),
    #[error("{0} chunk streams, more than max_streams")]
    TooManyStreams(usize),
    #[error("partial message on chunk stream {0} is inconsistent with its length")]
    Partial(u32),
    #[error("message of {0} bytes exceeds max_message")]
    TooLarge(u32),
    #[error("partial messages exceed the reassembly limit")]
    Reassembly,
    #[error("acknowledged more bytes than received")]
    Acked,
}

impl DecoderState {
    /// Checks the state against `limits`; returns the bytes announced by
    /// messages in reassembly.
    pub fn check(&self, limits: &DecoderLimits) -> Result<usize, StateError> {
        if self.chunk_size == 0 || self.chunk_size > MAX_CHUNK_SIZE {
            return Err(StateError::ChunkSize(self.chunk_size));
        }
        if self.streams.len() > limits.max_streams {
            return Err(StateError::TooManyStreams(self.streams.len()));
        }
        let mut seen = std::collections::HashSet::new();
        let mut reassembly = 0usize;
        for s in &self.streams {
            if !(2..=MAX_CSID).contains(&s.csid) {
                return Err(StateError::Csid(s.csid));
            }
            if !seen.insert(s.csid) {
                return Err(StateError::Duplicate(s.csid));
            }
            if s.length as usize > limits.max_message {
                return Err(StateError::TooLarge(s.length));
            }
            if s.in_progress {
                if s.partial.is_empty() || s.partial.len() >= s.length as usize {
                    return Err(StateError::Partial(s.csid));
                }
                reassembly += s.length as usize;
            } else if !s.partial.is_empty() {
                return Err(StateError::Partial(s.csid));
            }
        }
        if reassembly > limits.max_reassembly {
            return Err(StateError::Reassembly);
        }
        Ok(reassembly)
    }
}

/// Serde for byte strings as base64 text: the state travels as JSON, where
/// a byte array would take four times the room.
pub mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, T: AsRef<[u8]>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v.as_ref()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: From<Vec<u8>>>(d: D) -> Result<T, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map(T::from)
            .map_err(serde::de::Error::custom)
    }
}
