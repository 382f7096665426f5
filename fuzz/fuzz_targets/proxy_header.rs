//! PROXY protocol headers: any bytes parse without panicking; a complete
//! header never claims more bytes than it was given, and parsing any
//! prefix of them says "incomplete" or fails, never a different header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::proxy_protocol as proxy;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(h)) = proxy::parse(data) {
        assert!(h.len <= data.len());
        assert!(h.len <= proxy::V2_MAX);
        for cut in 0..h.len {
            assert!(!matches!(proxy::parse(&data[..cut]), Ok(Some(_))));
        }
    }
});
