//! AMF0 (with AVM+ switches to AMF3): decode arbitrary bytes; whatever
//! decodes must re-encode and decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::rtmp::amf;

fuzz_target!(|data: &[u8]| {
    let Ok(values) = amf::decode_all(data) else {
        return;
    };
    let again = amf::encode_all(&values);
    let back = amf::decode_all(&again).expect("re-encoded AMF0 decodes");
    assert_eq!(format!("{values:?}"), format!("{back:?}"));
});
