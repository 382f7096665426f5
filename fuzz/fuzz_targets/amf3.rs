//! AMF3 values (the CVE-2015-8270..72 area in librtmp): references,
//! traits, externalizable objects and lengths claimed by the peer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::rtmp::amf::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut d = Decoder::new(data);
    while !d.is_empty() {
        if d.amf3().is_err() {
            break;
        }
    }
});
