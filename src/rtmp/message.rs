//! Typed RTMP messages: protocol control, user control, commands, data and
//! media, parsed from and serialized to raw message payloads.

use bytes::{BufMut, Bytes, BytesMut};

use super::amf::{self, Amf, AmfError};
use super::chunk::RawMessage;

pub mod types {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACK: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
    /// RTMP Go Away (facebookarchive/rtmp-go-away): empty payload.
    pub const GO_AWAY: u8 = 32;
}

/// Chunk stream ids we send on, as nginx-rtmp assigns them.
pub mod csid {
    pub const CONTROL: u32 = 2;
    pub const COMMAND: u32 = 3;
    pub const AUDIO: u32 = 6;
    pub const VIDEO: u32 = 7;
    pub const DATA: u32 = 5;
}

/// User control events (message type 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControl {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    SetBufferLength { stream_id: u32, ms: u32 },
    StreamIsRecorded(u32),
    PingRequest(u32),
    PingResponse(u32),
    Other(u16),
}

impl UserControl {
    fn parse(p: &[u8]) -> Result<Self, MessageError> {
        let u32_at = |i: usize| {
            p.get(i..i + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(MessageError::Short("user control"))
        };
        if p.len() < 2 {
            return Err(MessageError::Short("user control"));
        }
        Ok(match u16::from_be_bytes([p[0], p[1]]) {
            0 => UserControl::StreamBegin(u32_at(2)?),
            1 => UserControl::StreamEof(u32_at(2)?),
            2 => UserControl::StreamDry(u32_at(2)?),
            3 => UserControl::SetBufferLength {
                stream_id: u32_at(2)?,
                ms: u32_at(6)?,
            },
            4 => UserControl::StreamIsRecorded(u32_at(2)?),
            6 => UserControl::PingRequest(u32_at(2)?),
            7 => UserControl::PingResponse(u32_at(2)?),
            other => UserControl::Other(other),
        })
    }

    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(10);
        let (kind, a, c) = match *self {
            UserControl::StreamBegin(s) => (0, s, None),
            UserControl::StreamEof(s) => (1, s, None),
            UserControl::StreamDry(s) => (2, s, None),
            UserControl::SetBufferLength { stream_id, ms } => (3, stream_id, Some(ms)),
            UserControl::StreamIsRecorded(s) => (4, s, None),
            UserControl::PingRequest(t) => (6, t, None),
            UserControl::PingResponse(t) => (7, t, None),
            UserControl::Other(k) => (k, 0, None),
        };
        b.put_u16(kind);
        b.put_u32(a);
        if let Some(c) = c {
            b.put_u32(c);
        }
        b.freeze()
    }
}

/// A command (`connect`, `publish`, ...) with its transaction id, command
/// object and further arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub transaction: f64,
    pub object: Amf,
    pub args: Vec<Amf>,
}

impl Command {
    pub fn new(name: &str, transaction: f64, object: Amf, args: Vec<Amf>) -> Self {
        Command {
            name: name.to_owned(),
            transaction,
            object,
            args,
        }
    }

    pub fn arg_str(&self, i: usize) -> Option<&str> {
        self.args.get(i).and_then(Amf::as_str)
    }

    pub fn arg_f64(&self, i: usize) -> Option<f64> {
        self.args.get(i).and_then(Amf::as_f64)
    }

    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(128);
        amf::encode(&Amf::str(&self.name), &mut b);
        amf::encode(&Amf::Number(self.transaction), &mut b);
        amf::encode(&self.object, &mut b);
        for a in &self.args {
            amf::encode(a, &mut b);
        }
        b.freeze()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    SetChunkSize(u32),
    Abort(u32),
    Ack(u32),
    WindowAckSize(u32),
    SetPeerBandwidth {
        size: u32,
        limit: u8,
    },
    UserControl(UserControl),
    Audio {
        timestamp: u32,
        stream_id: u32,
        payload: Bytes,
    },
    Video {
        timestamp: u32,
        stream_id: u32,
        payload: Bytes,
    },
    /// A data message (`@setDataFrame`, `onMetaData`, ...). `payload` is the
    /// AMF0 body, with the AMF3 format byte removed for type 15.
    Data {
        timestamp: u32,
        stream_id: u32,
        values: Vec<Amf>,
        payload: Bytes,
    },
    Command {
        stream_id: u32,
        command: Command,
    },
    Aggregate {
        timestamp: u32,
        stream_id: u32,
        payload: Bytes,
    },
    GoAway,
    /// Shared objects and unknown types: ignored, never fatal.
    Other {
        type_id: u8,
    },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MessageError {
    #[error("{0} message too short")]
    Short(&'static str),
    #[error("bad AMF in {kind}: {err}")]
    Amf { kind: &'static str, err: AmfError },
    #[error("command message without a name")]
    NoCommandName,
}

fn be32(p: &[u8], what: &'static str) -> Result<u32, MessageError> {
    p.get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(MessageError::Short(what))
}

/// AMF3 command and data messages start with a format byte (0 = the body
/// is AMF0 with AVM+ switches). Strip it.
fn strip_amf3_prefix(p: &Bytes) -> Bytes {
    if p.first() == Some(&0) {
        p.slice(1..)
    } else {
        p.clone()
    }
}

impl Message {
    pub fn parse(raw: RawMessage) -> Result<Message, MessageError> {
        use types::*;
        let p = &raw.payload;
        let (timestamp, stream_id) = (raw.timestamp, raw.stream_id);
        Ok(match raw.type_id {
            SET_CHUNK_SIZE => Message::SetChunkSize(be32(p, "set chunk size")?),
            ABORT => Message::Abort(be32(p, "abort")?),
            ACK => Message::Ack(be32(p, "acknowledgement")?),
            WINDOW_ACK_SIZE => Message::WindowAckSize(be32(p, "window ack size")?),
            SET_PEER_BANDWIDTH => Message::SetPeerBandwidth {
                size: be32(p, "set peer bandwidth")?,
                limit: *p.get(4).ok_or(MessageError::Short("set peer bandwidth"))?,
            },
            USER_CONTROL => Message::UserControl(UserControl::parse(p)?),
            AUDIO => Message::Audio {
                timestamp,
                stream_id,
                payload: raw.payload,
            },
            VIDEO => Message::Video {
                timestamp,
                stream_id,
                payload: raw.payload,
            },
            DATA_AMF0 | DATA_AMF3 => {
                let payload = if raw.type_id == DATA_AMF3 {
                    strip_amf3_prefix(p)
                } else {
                    raw.payload.clone()
                };
                let values = amf::decode_all(&payload)
                    .map_err(|err| MessageError::Amf { kind: "data", err })?;
                Message::Data {
                    timestamp,
                    stream_id,
                    values,
                    payload,
                }
            }
            COMMAND_AMF0 | COMMAND_AMF3 => {
                let body = if raw.type_id == COMMAND_AMF3 {
                    strip_amf3_prefix(p)
                } else {
                    raw.payload.clone()
                };
                let mut d = amf::Decoder::new(&body);
                let err = |err| MessageError::Amf {
                    kind: "command",
                    err,
                };
                let name = match d.amf0().map_err(err)? {
                    Amf::String(s) => s,
                    _ => return Err(MessageError::NoCommandName),
                };
                // Transaction id and command object may be absent in
                // sloppy clients' notifications; default them.
                let transaction = if d.is_empty() {
                    0.0
                } else {
                    d.amf0().map_err(err)?.as_f64().unwrap_or(0.0)
                };
                let object = if d.is_empty() {
                    Amf::Null
                } else {
                    d.amf0().map_err(err)?
                };
                let mut args = Vec::new();
                while !d.is_empty() {
                    args.push(d.amf0().map_err(err)?);
                }
                Message::Command {
                    stream_id,
                    command: Command {
                        name,
                        transaction,
                        object,
                        args,
                    },
                }
            }
            AGGREGATE => Message::Aggregate {
                timestamp,
                stream_id,
                payload: raw.payload,
            },
            GO_AWAY => Message::GoAway,
            type_id => Message::Other { type_id },
        })
    }
}

/// One sub-message of an aggregate message.
#[derive(Debug, PartialEq, Eq)]
pub struct AggregatePart {
    pub type_id: u8,
    pub timestamp: u32,
    pub payload: Bytes,
}

/// Splits an aggregate message (FLV-tag-like records) into its parts, with
/// timestamps rebased on the aggregate's own timestamp. Malformed tails are
/// dropped, never read past.
pub fn split_aggregate(timestamp: u32, payload: &Bytes) -> Vec<AggregatePart> {
    let mut parts = Vec::new();
    let mut pos = 0;
    let mut base: Option<u32> = None;
    while payload.len() - pos >= 11 {
        let h = &payload[pos..pos + 11];
        let size = ((h[1] as usize) << 16) | ((h[2] as usize) << 8) | h[3] as usize;
        let ts = ((h[7] as u32) << 24) | ((h[4] as u32) << 16) | ((h[5] as u32) << 8) | h[6] as u32;
        if payload.len() - pos - 11 < size {
            break;
        }
        let first = *base.get_or_insert(ts);
        parts.push(AggregatePart {
            type_id: h[0],
            timestamp: timestamp.wrapping_add(ts.wrapping_sub(first)),
            payload: payload.slice(pos + 11..pos + 11 + size),
        });
        pos += 11 + size + 4;
        if pos > payload.len() {
            break;
        }
    }
    parts
}

/// Builds the `onStatus` command the way FMS and nginx-rtmp send it.
pub fn on_status(level: &str, code: &str, description: &str) -> Command {
    Command::new(
        "onStatus",
        0.0,
        Amf::Null,
        vec![amf::object([
            ("level", Amf::str(level)),
            ("code", Amf::str(code)),
            ("description", Amf::str(description)),
        ])],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(type_id: u8, payload: &[u8]) -> RawMessage {
        RawMessage {
            csid: 3,
            timestamp: 0,
            type_id,
            stream_id: 0,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn control_messages() {
        assert_eq!(
            Message::parse(raw(1, &[0, 0, 0x10, 0])).unwrap(),
            Message::SetChunkSize(4096)
        );
        assert_eq!(
            Message::parse(raw(6, &[0, 0x4c, 0x4b, 0x40, 2])).unwrap(),
            Message::SetPeerBandwidth {
                size: 5_000_000,
                limit: 2
            }
        );
        assert_eq!(
            Message::parse(raw(4, &[0, 3, 0, 0, 0, 1, 0, 0, 0x0b, 0xb8])).unwrap(),
            Message::UserControl(UserControl::SetBufferLength {
                stream_id: 1,
                ms: 3000
            })
        );
        assert_eq!(
            Message::parse(raw(4, &[0, 6, 0])),
            Err(MessageError::Short("user control"))
        );
        assert_eq!(Message::parse(raw(32, &[])).unwrap(), Message::GoAway);
        assert_eq!(
            Message::parse(raw(99, &[1, 2])).unwrap(),
            Message::Other { type_id: 99 }
        );
        for uc in [
            UserControl::PingRequest(77),
            UserControl::SetBufferLength {
                stream_id: 1,
                ms: 5,
            },
        ] {
            assert_eq!(UserControl::parse(&uc.encode()).unwrap(), uc);
        }
    }

    #[test]
    fn commands_amf0_and_amf3_wrapped() {
        let cmd = Command::new(
            "play",
            4.0,
            Amf::Null,
            vec![Amf::str("cam"), Amf::Number(-2000.0)],
        );
        let body = cmd.encode();
        let Message::Command { command, .. } = Message::parse(raw(20, &body)).unwrap() else {
            panic!()
        };
        assert_eq!(command, cmd);
        let mut amf3 = vec![0u8];
        amf3.extend_from_slice(&body);
        let Message::Command { command, .. } = Message::parse(raw(17, &amf3)).unwrap() else {
            panic!()
        };
        assert_eq!(command, cmd);
        assert_eq!(
            Message::parse(raw(20, &[0x05])),
            Err(MessageError::NoCommandName)
        );
    }

    #[test]
    fn aggregate_split() {
        let mut p = Vec::new();
        for (t, ts, body) in [(9u8, 1000u32, &b"vv"[..]), (8, 1020, &b"a"[..])] {
            p.extend_from_slice(&[
                t,
                0,
                0,
                body.len() as u8,
                (ts >> 16) as u8,
                (ts >> 8) as u8,
                ts as u8,
                0,
                0,
                0,
                0,
            ]);
            p.extend_from_slice(body);
            p.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
        }
        let parts = split_aggregate(5000, &Bytes::from(p));
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].type_id, parts[0].timestamp), (9, 5000));
        assert_eq!(
            (parts[1].type_id, parts[1].timestamp, &parts[1].payload[..]),
            (8, 5020, &b"a"[..])
        );
        assert!(split_aggregate(
            0,
            &Bytes::from_static(&[9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0])
        )
        .is_empty());
    }
}
