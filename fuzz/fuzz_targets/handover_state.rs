//! What the new process of a binary upgrade reads from the old one: frame
//! headers, messages, and a connection's protocol state, restored against
//! the usual limits. It crosses a process boundary, so it is checked as if
//! a peer had sent it: nothing may panic, nothing may allocate from a
//! claimed length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::rtmp::chunk::DecoderLimits;
use sluice::rtmp::Session;
use sluice::server::handover::wire;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 5 {
        let _ = wire::parse_header([data[0], data[1], data[2], data[3], data[4]]);
    }
    if let Ok(wire::Msg::Conn(c)) = wire::decode(data) {
        let limits = DecoderLimits::default();
        if let Ok(mut s) = Session::import(limits, c.session) {
            // A restored session decodes what follows.
            let mut input = bytes::BytesMut::from(&c.input[..]);
            while let Ok(Some(_)) = s.next_message(&mut input) {}
        }
    }
});
