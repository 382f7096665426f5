//! Command and data messages (types 20, 17, 18, 15) with arbitrary bodies,
//! and the accessors the server uses on them.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice::rtmp::chunk::RawMessage;
use sluice::rtmp::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let type_id = [20, 17, 18, 15, 22][kind as usize % 5];
    let raw = RawMessage {
        csid: 3,
        timestamp: 0,
        type_id,
        stream_id: 1,
        payload: Bytes::copy_from_slice(body),
    };
    if let Ok(Message::Command { command, .. }) = Message::parse(raw) {
        for i in 0..4 {
            let _ = command.arg_str(i);
            let _ = command.arg_f64(i);
        }
        for key in ["app", "tcUrl", "supportsGoAway", "capsEx", "objectEncoding"] {
            let _ = command.object.get(key).map(|v| v.truthy());
        }
        let _ = command.encode();
    }
});
