//! A hand-driven RTMP client for tests that must send what real clients
//! never would, and the message builders it uses.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sluice::rtmp::amf::{self, Amf};
use sluice::rtmp::chunk::encode_message;
use sluice::rtmp::Command;

/// A hand-driven RTMP client that can send anything.
pub struct Raw {
    pub s: TcpStream,
    pub got: Vec<u8>,
}

impl Raw {
    /// Connects without a handshake.
    pub fn tcp(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        s.set_nodelay(true).unwrap();
        Raw { s, got: vec![] }
    }

    /// Connects and completes a plain handshake.
    pub fn new(port: u16) -> Raw {
        let mut r = Raw::tcp(port);
        let mut c0c1 = vec![7u8; 1537];
        c0c1[0] = 3;
        c0c1[1..9].fill(0);
        r.s.write_all(&c0c1).unwrap();
        let mut reply = vec![0u8; 3073];
        r.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        r.s.read_exact(&mut reply).unwrap();
        r.s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        r.s.write_all(&reply[1..1537]).unwrap();
        r
    }

    pub fn send(&mut self, b: &[u8]) {
        // The server may already have closed: that is what most cases want.
        let _ = self.s.write_all(b);
    }

    pub fn read_some(&mut self) -> Option<bool> {
        let mut buf = [0u8; 65536];
        match self.s.read(&mut buf) {
            Ok(0) => Some(true),
            Ok(n) => {
                self.got.extend_from_slice(&buf[..n]);
                Some(false)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(_) => Some(true),
        }
    }

    /// Whether the server closes the connection within `limit`.
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < limit {
            if self.read_some() == Some(true) {
                return true;
            }
        }
        false
    }

    /// Whether `needle` shows up in what the server sent within `limit`.
    pub fn saw(&mut self, needle: &[u8], limit: Duration) -> bool {
        let t = Instant::now();
        loop {
            if self.got.windows(needle.len()).any(|w| w == needle) {
                return true;
            }
            if t.elapsed() > limit || self.read_some() == Some(true) {
                return self.got.windows(needle.len()).any(|w| w == needle);
            }
        }
    }
}

pub fn chunked(csid: u32, type_id: u8, sid: u32, payload: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_message(csid, 0, type_id, sid, payload, chunk, &mut out);
    out.to_vec()
}

pub fn command(sid: u32, body: &[u8]) -> Vec<u8> {
    chunked(3, 20, sid, body, 128)
}

pub fn connect_body() -> Vec<u8> {
    connect_body_for("live")
}

pub fn connect_body_for(app: &str) -> Vec<u8> {
    let obj = amf::object([
        ("app", Amf::str(app)),
        ("flashVer", Amf::str("FMLE/3.0")),
        ("tcUrl", Amf::str(&format!("rtmp://127.0.0.1/{app}"))),
    ]);
    Command::new("connect", 1.0, obj, vec![]).encode().to_vec()
}

pub fn create_stream_body() -> Vec<u8> {
    Command::new("createStream", 2.0, Amf::Null, vec![])
        .encode()
        .to_vec()
}

pub fn publish_body(name: &str) -> Vec<u8> {
    let args = vec![Amf::str(name), Amf::str("live")];
    Command::new("publish", 3.0, Amf::Null, args)
        .encode()
        .to_vec()
}

pub fn play_body(name: &str) -> Vec<u8> {
    Command::new("play", 3.0, Amf::Null, vec![Amf::str(name)])
        .encode()
        .to_vec()
}

/// A connected raw client with stream 1 created.
pub fn ready(port: u16) -> Raw {
    let mut r = Raw::new(port);
    r.send(&command(0, &connect_body()));
    r.send(&command(0, &create_stream_body()));
    assert!(r.saw(b"_result", Duration::from_secs(5)));
    r
}
