//! The RTMP handshake, both sides, without I/O.
//!
//! Two flavours exist in the wild:
//! * the plain handshake of the published spec, where S2 echoes C1;
//! * the "digest" (FP9, "complex") handshake used by Flash Player, ffmpeg
//!   and many encoders, where C1 and S1 carry an HMAC-SHA256 digest at an
//!   offset derived from their own bytes, and S2 is signed with a key derived
//!   from the client's digest. ffmpeg as a *player* verifies S1 and S2 when
//!   S1 announces a server version, so answering it properly matters.
//!
//! The server answers in the flavour the client used: a C1 with a non-zero
//! version field and a valid digest gets a digest answer, anything else the
//! plain echo.

use bytes::{Buf, BytesMut};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Size of C1/C2/S1/S2.
pub const PACKET: usize = 1536;
const DIGEST: usize = 32;

/// The 32 bytes shared by both well-known keys (public constants of the
/// Flash handshake).
const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
const FP_TEXT: &[u8] = b"Genuine Adobe Flash Player 001";
const FMS_TEXT: &[u8] = b"Genuine Adobe Flash Media Server 001";

fn fp_key() -> Vec<u8> {
    [FP_TEXT, &KEY_TAIL].concat()
}

fn fms_key() -> Vec<u8> {
    [FMS_TEXT, &KEY_TAIL].concat()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandshakeError {
    #[error("unsupported RTMP version {0} in C0/S0 (encrypted RTMPE is not supported)")]
    Version(u8),
    #[error("server's S1/S2 failed digest validation")]
    BadServerDigest,
}

// HMAC accepts keys of any length; the error case cannot happen.
#[allow(clippy::expect_used)]
fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Digest offset for the two layouts: the 4 bytes at `base` sum to an offset
/// in the 728-byte window that follows them.
fn digest_offset(pkt: &[u8], base: usize) -> usize {
    let sum: usize = pkt[base..base + 4].iter().map(|b| *b as usize).sum();
    sum % 728 + base + 4
}

/// HMAC of the packet with the 32 digest bytes at `off` left out.
fn packet_digest(pkt: &[u8], off: usize, key: &[u8]) -> [u8; 32] {
    hmac(key, &[&pkt[..off], &pkt[off + DIGEST..]])
}

/// Finds a valid digest in a C1/S1 made with `key`, trying both layouts.
pub fn find_digest(pkt: &[u8], key: &[u8]) -> Option<usize> {
    [772, 8]
        .into_iter()
        .map(|b| digest_offset(pkt, b))
        .find(|&off| {
            let d = packet_digest(pkt, off, key);
            d[..] == pkt[off..off + DIGEST]
        })
}

/// Writes a digest into `pkt` using the layout whose offset bytes start at `base`.
fn imprint(pkt: &mut [u8], base: usize, key: &[u8]) -> usize {
    let off = digest_offset(pkt, base);
    let d = packet_digest(pkt, off, key);
    pkt[off..off + DIGEST].copy_from_slice(&d);
    off
}

fn random_packet() -> Vec<u8> {
    let mut p = vec![0u8; PACKET];
    rand::thread_rng().fill_bytes(&mut p[8..]);
    p
}

/// Server side: accumulates C0C1 then C2 and writes S0S1S2.
#[derive(Default)]
pub struct ServerHandshake {
    sent_reply: bool,
    /// Whether the client used the digest handshake (for logs and stats).
    pub digest: bool,
}

impl ServerHandshake {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes handshake bytes from `input`, appending any reply to `out`.
    /// Returns `Ok(true)` when the handshake is complete; bytes after C2 are
    /// left in `input` for the chunk decoder.
    pub fn advance(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<bool, HandshakeError> {
        if !self.sent_reply {
            if input.is_empty() {
                return Ok(false);
            }
            if input[0] != 3 {
                return Err(HandshakeError::Version(input[0]));
            }
            if input.len() < 1 + PACKET {
                return Ok(false);
            }
            let c1 = input[1..1 + PACKET].to_vec();
            input.advance(1 + PACKET);
            out.extend_from_slice(&[3]);
            self.reply(&c1, out);
            self.sent_reply = true;
        }
        if input.len() < PACKET {
            return Ok(false);
        }
        // C2 content is not checked: many clients send garbage there.
        input.advance(PACKET);
        Ok(true)
    }

    fn reply(&mut self, c1: &[u8], out: &mut BytesMut) {
        let client_digest = if c1[4..8] != [0, 0, 0, 0] {
            find_digest(c1, &fp_key()[..FP_TEXT.len()])
        } else {
            None
        };
        let Some(c_off) = client_digest else {
            // plain: S1 random with zero version, S2 echoes C1
            let s1 = random_packet();
            out.extend_from_slice(&s1);
            out.extend_from_slice(c1);
            return;
        };
        self.digest = true;
        // Use the same layout as the client did.
        let base = if c_off >= 776 { 772 } else { 8 };
        let mut s1 = random_packet();
        s1[4..8].copy_from_slice(&[4, 5, 0, 1]);
        imprint(&mut s1, base, &fms_key()[..FMS_TEXT.len()]);
        out.extend_from_slice(&s1);

        let mut s2 = random_packet();
        let key = hmac(&fms_key(), &[&c1[c_off..c_off + DIGEST]]);
        let sig = hmac(&key, &[&s2[..PACKET - DIGEST]]);
        s2[PACKET - DIGEST..].copy_from_slice(&sig);
        out.extend_from_slice(&s2);
    }
}

/// Client side: the plain handshake. Every server accepts it, and it does
/// not commit us to the digest checks that some servers get wrong.
#[derive(Default)]
pub struct ClientHandshake {
    started: bool,
}

impl ClientHandshake {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes C0C1 on the first call; later calls wait for S0S1S2 and write
    /// C2. Returns `Ok(true)` once complete.
    pub fn advance(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<bool, HandshakeError> {
        if !self.started {
            self.started = true;
            out.extend_from_slice(&[3]);
            out.extend_from_slice(&random_packet());
        }
        if input.is_empty() {
            return Ok(false);
        }
        if input[0] != 3 {
            return Err(HandshakeError::Version(input[0]));
        }
        if input.len() < 1 + 2 * PACKET {
            return Ok(false);
        }
        // C2 echoes S1.
        out.extend_from_slice(&input[1..1 + PACKET]);
        input.advance(1 + 2 * PACKET);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c1_with_digest(base: usize) -> (Vec<u8>, usize) {
        let mut c1 = random_packet();
        c1[4..8].copy_from_slice(&[0x80, 0, 7, 2]);
        let off = imprint(&mut c1, base, &fp_key()[..FP_TEXT.len()]);
        (c1, off)
    }

    /// Checks the server's answer the way ffmpeg's rtmp client does.
    fn verify_like_ffmpeg(c1: &[u8], c_off: usize, reply: &[u8]) {
        assert_eq!(reply[0], 3);
        let s1 = &reply[1..1 + PACKET];
        let s2 = &reply[1 + PACKET..];
        assert!(s1[4] >= 3, "server version announced");
        assert!(
            find_digest(s1, &fms_key()[..FMS_TEXT.len()]).is_some(),
            "S1 digest"
        );
        let key = hmac(&fms_key(), &[&c1[c_off..c_off + 32]]);
        let sig = hmac(&key, &[&s2[..PACKET - 32]]);
        assert_eq!(&sig[..], &s2[PACKET - 32..], "S2 signature");
    }

    #[test]
    fn digest_handshake_both_layouts() {
        for base in [8, 772] {
            let (c1, off) = c1_with_digest(base);
            assert_eq!(find_digest(&c1, &fp_key()[..30]), Some(off));
            let mut input = BytesMut::new();
            input.extend_from_slice(&[3]);
            input.extend_from_slice(&c1);
            let mut hs = ServerHandshake::new();
            let mut out = BytesMut::new();
            assert!(!hs.advance(&mut input, &mut out).unwrap());
            assert!(hs.digest);
            assert_eq!(out.len(), 1 + 2 * PACKET);
            verify_like_ffmpeg(&c1, off, &out);
            // C2 plus the first chunk bytes arrive together
            input.extend_from_slice(&[0u8; PACKET]);
            input.extend_from_slice(&[0x03, 0xAA]);
            assert!(hs.advance(&mut input, &mut BytesMut::new()).unwrap());
            assert_eq!(&input[..], &[0x03, 0xAA]);
        }
    }

    #[test]
    fn plain_handshake_echoes_c1() {
        let mut c1 = random_packet();
        c1[..4].copy_from_slice(&[0, 0, 1, 0]);
        let mut input = BytesMut::from(&[3u8][..]);
        let mut hs = ServerHandshake::new();
        let mut out = BytesMut::new();
        // byte-at-a-time delivery
        for b in &c1 {
            assert!(!hs.advance(&mut input, &mut out).unwrap());
            input.extend_from_slice(&[*b]);
        }
        assert!(!hs.advance(&mut input, &mut out).unwrap());
        assert!(!hs.digest);
        assert_eq!(&out[1 + PACKET..], &c1[..]);
    }

    #[test]
    fn client_and_server_meet() {
        let mut client = ClientHandshake::new();
        let mut server = ServerHandshake::new();
        let (mut c2s, mut s2c) = (BytesMut::new(), BytesMut::new());
        let mut c_done = client.advance(&mut s2c, &mut c2s).unwrap();
        let mut s_done = false;
        for _ in 0..4 {
            s_done |= server.advance(&mut c2s, &mut s2c).unwrap();
            c_done |= client.advance(&mut s2c, &mut c2s).unwrap();
        }
        assert!(c_done && s_done);
        assert!(c2s.is_empty() && s2c.is_empty());
    }

    #[test]
    fn bad_version_is_rejected() {
        let mut input = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        let err = ServerHandshake::new().advance(&mut input, &mut BytesMut::new());
        assert_eq!(err, Err(HandshakeError::Version(b'G')));
    }
}
