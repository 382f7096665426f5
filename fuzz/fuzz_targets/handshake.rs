//! The server and client handshakes fed arbitrary bytes, split at arbitrary
//! points: they must answer, wait or refuse, never panic, and never consume
//! more than they were given.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice::rtmp::handshake::{ClientHandshake, ServerHandshake};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read sizes, so splits are explored too.
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let step = (step as usize % 64) * 97 + 1;

    let mut server = ServerHandshake::new();
    let mut client = ClientHandshake::new();
    let (mut s_in, mut c_in) = (BytesMut::new(), BytesMut::new());
    let (mut s_done, mut c_done) = (false, false);
    for piece in data.chunks(step) {
        let mut out = BytesMut::new();
        if !s_done {
            s_in.extend_from_slice(piece);
            match server.advance(&mut s_in, &mut out) {
                Ok(d) => s_done = d,
                Err(_) => s_done = true,
            }
        }
        if !c_done {
            c_in.extend_from_slice(piece);
            match client.advance(&mut c_in, &mut out) {
                Ok(d) => c_done = d,
                Err(_) => c_done = true,
            }
        }
        // A reply is S0S1S2 (3073 bytes) or C0C1 (+C2): never more.
        assert!(out.len() <= 2 * 3073);
    }
});
