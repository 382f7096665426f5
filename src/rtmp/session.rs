//! The protocol layer of one RTMP connection, without I/O.
//!
//! A [`Session`] turns received bytes into [`Message`]s and messages to send
//! into bytes. It takes care of everything the peer expects from any RTMP
//! endpoint regardless of role: applying Set Chunk Size and Abort, answering
//! pings, and acknowledging received bytes per the peer's window. Roles
//! (server connection, publishing or playing client) sit on top and only see
//! commands, data and media.
//!
//! Output accumulates in [`Session::out`] until the I/O layer writes it, so a
//! whole batch of replies goes out in one write.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::amf::{self, Amf};
use super::chunk::{self, ChunkDecoder, ChunkError, DecoderLimits};
use super::message::{csid, split_aggregate, types, Command, Message, MessageError, UserControl};

/// Floor for the peer's acknowledgement window: a window of 0 or a few bytes
/// would otherwise make us acknowledge every read.
const MIN_ACK_WINDOW: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("message: {0}")]
    Message(#[from] MessageError),
}

pub struct Session {
    decoder: ChunkDecoder,
    out_chunk_size: usize,
    /// Bytes waiting to be written to the peer.
    pub out: BytesMut,
    received: u64,
    acked: u64,
    peer_window: Option<u32>,
    pending: VecDeque<Message>,
}

impl Session {
    pub fn new(limits: DecoderLimits) -> Self {
        Session {
            decoder: ChunkDecoder::new(limits),
            out_chunk_size: chunk::DEFAULT_CHUNK_SIZE,
            out: BytesMut::new(),
            received: 0,
            acked: 0,
            peer_window: None,
            pending: VecDeque::new(),
        }
    }

    /// The protocol state, for a connection moving to another process.
    /// Messages split out of an aggregate and not yet returned are not part
    /// of it: take them with [`Self::next_message`] first.
    pub fn export(&self) -> super::state::SessionState {
        super::state::SessionState {
            decoder: self.decoder.export(),
            out_chunk_size: self.out_chunk_size as u32,
            received: self.received,
            acked: self.acked,
            peer_window: self.peer_window,
        }
    }

    /// Whether messages split out of an aggregate wait to be returned.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// A session that continues an exported one.
    pub fn import(
        limits: DecoderLimits,
        st: super::state::SessionState,
    ) -> Result<Session, super::state::StateError> {
        use super::state::StateError;
        if st.out_chunk_size == 0 || st.out_chunk_size > chunk::MAX_CHUNK_SIZE {
            return Err(StateError::ChunkSize(st.out_chunk_size));
        }
        if st.acked > st.received {
            return Err(StateError::Acked);
        }
        Ok(Session {
            decoder: ChunkDecoder::import(limits, st.decoder)?,
            out_chunk_size: st.out_chunk_size as usize,
            out: BytesMut::new(),
            received: st.received,
            acked: st.acked,
            peer_window: st.peer_window,
            pending: VecDeque::new(),
        })
    }

    pub fn out_chunk_size(&self) -> usize {
        self.out_chunk_size
    }

    /// The peer's chunk size (what we decode with).
    pub fn in_chunk_size(&self) -> usize {
        self.decoder.chunk_size()
    }

    /// The acknowledgement window the peer asked for.
    pub fn peer_window(&self) -> Option<u32> {
        self.peer_window
    }

    /// Total bytes received from the peer so far.
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    /// Accounts for `n` bytes read from the socket and queues an
    /// Acknowledgement when the peer's window is reached.
    pub fn note_received(&mut self, n: usize) {
        self.received += n as u64;
        if let Some(w) = self.peer_window {
            if self.received - self.acked >= w.max(MIN_ACK_WINDOW) as u64 {
                self.acked = self.received;
                let seq = (self.received & 0xFFFF_FFFF) as u32;
                self.send_raw(csid::CONTROL, 0, types::ACK, 0, &seq.to_be_bytes());
            }
        }
    }

    /// Returns the next message for the role layer, handling protocol
    /// control internally (those messages are still returned, for logging).
    pub fn next_message(&mut self, input: &mut BytesMut) -> Result<Option<Message>, SessionError> {
        if let Some(m) = self.pending.pop_front() {
            return Ok(Some(m));
        }
        let Some(raw) = self.decoder.decode(input)? else {
            return Ok(None);
        };
        let msg = Message::parse(raw)?;
        match &msg {
            Message::SetChunkSize(n) => self.decoder.set_chunk_size(*n)?,
            Message::Abort(c) => self.decoder.abort(*c),
            Message::WindowAckSize(w) => self.peer_window = Some(*w),
            Message::UserControl(UserControl::PingRequest(t)) => {
                self.send_user_control(UserControl::PingResponse(*t));
            }
            Message::Aggregate {
                timestamp,
                stream_id,
                payload,
            } => {
                for part in split_aggregate(*timestamp, payload) {
                    let stream_id = *stream_id;
                    let (timestamp, payload) = (part.timestamp, part.payload);
                    self.pending.push_back(match part.type_id {
                        types::AUDIO => Message::Audio {
                            timestamp,
                            stream_id,
                            payload,
                        },
                        types::VIDEO => Message::Video {
                            timestamp,
                            stream_id,
                            payload,
                        },
                        types::DATA_AMF0 => match amf::decode_all(&payload) {
                            Ok(values) => Message::Data {
                                timestamp,
                                stream_id,
                                values,
                                payload,
                            },
                            Err(_) => continue,
                        },
                        type_id => Message::Other { type_id },
                    });
                }
                return Ok(self.pending.pop_front());
            }
            _ => {}
        }
        Ok(Some(msg))
    }

    /// Queues a message, chunked at our current outgoing chunk size.
    pub fn send_raw(
        &mut self,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) {
        chunk::encode_message(
            csid,
            timestamp,
            type_id,
            stream_id,
            payload,
            self.out_chunk_size,
            &mut self.out,
        );
    }

    /// Announces and switches to a new outgoing chunk size.
    pub fn set_chunk_size(&mut self, size: usize) {
        let size = size.clamp(1, chunk::MAX_CHUNK_SIZE as usize);
        self.send_raw(
            csid::CONTROL,
            0,
            types::SET_CHUNK_SIZE,
            0,
            &(size as u32).to_be_bytes(),
        );
        self.out_chunk_size = size;
    }

    pub fn send_window_ack_size(&mut self, size: u32) {
        self.send_raw(
            csid::CONTROL,
            0,
            types::WINDOW_ACK_SIZE,
            0,
            &size.to_be_bytes(),
        );
    }

    pub fn send_peer_bandwidth(&mut self, size: u32, limit: u8) {
        let mut b = [0u8; 5];
        b[..4].copy_from_slice(&size.to_be_bytes());
        b[4] = limit;
        self.send_raw(csid::CONTROL, 0, types::SET_PEER_BANDWIDTH, 0, &b);
    }

    pub fn send_user_control(&mut self, uc: UserControl) {
        self.send_raw(csid::CONTROL, 0, types::USER_CONTROL, 0, &uc.encode());
    }

    pub fn send_command(&mut self, stream_id: u32, cmd: &Command) {
        let body = cmd.encode();
        let cs = if stream_id == 0 {
            csid::COMMAND
        } else {
            csid::DATA
        };
        self.send_raw(cs, 0, types::COMMAND_AMF0, stream_id, &body);
    }

    pub fn send_data(&mut self, stream_id: u32, timestamp: u32, values: &[Amf]) {
        let body = amf::encode_all(values);
        self.send_raw(csid::DATA, timestamp, types::DATA_AMF0, stream_id, &body);
    }

    pub fn send_go_away(&mut self) {
        self.send_raw(csid::CONTROL, 0, types::GO_AWAY, 0, &[]);
    }

    /// Takes everything queued for the peer.
    pub fn take_output(&mut self) -> Bytes {
        self.out.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_are_answered_and_acks_follow_the_window() {
        let mut peer = Session::new(Default::default());
        peer.send_window_ack_size(5000);
        peer.send_user_control(UserControl::PingRequest(42));
        let mut wire = BytesMut::from(&peer.take_output()[..]);

        let mut s = Session::new(Default::default());
        let first = wire.len() as u32;
        s.note_received(wire.len());
        assert_eq!(
            s.next_message(&mut wire).unwrap(),
            Some(Message::WindowAckSize(5000))
        );
        assert!(matches!(
            s.next_message(&mut wire).unwrap(),
            Some(Message::UserControl(_))
        ));
        let mut back = BytesMut::from(&s.take_output()[..]);
        let mut p2 = Session::new(Default::default());
        assert_eq!(
            p2.next_message(&mut back).unwrap(),
            Some(Message::UserControl(UserControl::PingResponse(42)))
        );
        // 6000 bytes later an ack for the running total is due, once
        s.note_received(6000);
        s.note_received(10);
        let mut back = BytesMut::from(&s.take_output()[..]);
        // the ack carries the running total at the moment the window filled
        assert_eq!(
            p2.next_message(&mut back).unwrap(),
            Some(Message::Ack(first + 6000))
        );
        assert_eq!(p2.next_message(&mut back).unwrap(), None);
    }

    /// A session exported mid-message (after a Set Chunk Size, with half a
    /// video message buffered) and imported elsewhere decodes the rest as
    /// the original would, and acknowledges on the same schedule.
    #[test]
    fn export_import_continues_mid_message() {
        let mut peer = Session::new(Default::default());
        peer.send_window_ack_size(5000);
        peer.set_chunk_size(1000);
        peer.send_raw(csid::VIDEO, 40, types::VIDEO, 1, &[7u8; 2500]);
        peer.send_raw(csid::VIDEO, 80, types::VIDEO, 1, &[8u8; 300]);
        let wire = peer.take_output();
        for cut in 0..wire.len() {
            let got = decode_moving_at(&wire, cut);
            assert_eq!(got, [(40, 2500), (80, 300)], "cut at {cut}");
        }
    }

    fn decode_moving_at(wire: &[u8], cut: usize) -> Vec<(u32, usize)> {
        let mut s = Session::new(Default::default());
        let mut input = BytesMut::from(&wire[..cut]);
        s.note_received(cut);
        let mut got = Vec::new();
        while let Some(m) = s.next_message(&mut input).unwrap() {
            got.push(m);
        }
        let json = serde_json::to_string(&s.export()).unwrap();
        let st: super::super::state::SessionState = serde_json::from_str(&json).unwrap();
        let mut moved = Session::import(Default::default(), st).unwrap();
        input.extend_from_slice(&wire[cut..]);
        moved.note_received(wire.len() - cut);
        while let Some(m) = moved.next_message(&mut input).unwrap() {
            got.push(m);
        }
        assert_eq!(moved.bytes_received(), wire.len() as u64);
        assert_eq!(moved.in_chunk_size(), 1000);
        got.iter()
            .filter_map(|m| match m {
                Message::Video {
                    timestamp, payload, ..
                } => Some((*timestamp, payload.len())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn import_refuses_inconsistent_state() {
        let mut st = Session::new(Default::default()).export();
        st.acked = 10;
        assert!(Session::import(Default::default(), st.clone()).is_err());
        st.acked = 0;
        st.decoder
            .streams
            .push(super::super::state::ChunkStreamState {
                csid: 6,
                timestamp: 0,
                delta: 0,
                length: 10,
                type_id: 9,
                stream_id: 1,
                extended: false,
                partial: vec![0; 20],
                in_progress: true,
            });
        assert!(Session::import(Default::default(), st.clone()).is_err());
        st.decoder.streams[0].length = u32::MAX;
        assert!(Session::import(Default::default(), st).is_err());
    }

    #[test]
    fn tiny_window_does_not_storm() {
        let mut s = Session::new(Default::default());
        s.peer_window = Some(0);
        for _ in 0..100 {
            s.note_received(100);
        }
        // 10_000 bytes with the 4096 floor: two acks, not a hundred
        let mut out = BytesMut::from(&s.take_output()[..]);
        let mut p = Session::new(Default::default());
        let mut acks = 0;
        while let Some(Message::Ack(_)) = p.next_message(&mut out).unwrap() {
            acks += 1;
        }
        assert_eq!(acks, 2);
    }
}
