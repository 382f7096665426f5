//! A whole server-side session fed an arbitrary byte stream: the chunk
//! decoder under small limits, message parsing, AMF, aggregates, and the
//! media tag classifiers the live path runs on every frame.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice::rtmp::chunk::DecoderLimits;
use sluice::rtmp::{Message, Session};

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let step = step as usize + 1;
    let limits = DecoderLimits {
        max_message: 64 << 10,
        max_streams: 8,
        max_reassembly: 128 << 10,
    };
    let mut session = Session::new(limits);
    let mut input = BytesMut::new();
    for piece in data.chunks(step) {
        input.extend_from_slice(piece);
        session.note_received(piece.len());
        loop {
            match session.next_message(&mut input) {
                Ok(Some(msg)) => match msg {
                    Message::Video { payload, .. } => {
                        let _ = sluice::flv::video_info(&payload);
                        let _ = sluice::flv::composition_offset(&payload);
                    }
                    Message::Audio { payload, .. } => {
                        let _ = sluice::flv::audio_info(&payload);
                    }
                    _ => {}
                },
                Ok(None) => break,
                Err(_) => return,
            }
        }
        // Buffered input is bounded by what arrived, never by what a
        // header claimed.
        assert!(input.len() <= data.len());
    }
});
