//! The FLV file reader (used by `sluice publish`) and the tag classifiers,
//! including Enhanced RTMP FourCC headers.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice::flv::FlvParser;

fuzz_target!(|data: &[u8]| {
    let mut p = FlvParser::new();
    let mut buf = BytesMut::new();
    for piece in data.chunks(257) {
        buf.extend_from_slice(piece);
        loop {
            match p.next_tag(&mut buf) {
                Ok(Some(tag)) => {
                    let _ = sluice::flv::video_info(&tag.data);
                    let _ = sluice::flv::audio_info(&tag.data);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
