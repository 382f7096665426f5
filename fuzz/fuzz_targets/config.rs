//! The nginx configuration parser and interpreter on arbitrary text.
//! `include` is left out: it reads the filesystem.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("include") {
        return;
    }
    let _ = sluice::config::Config::parse(text, "fuzz.conf");
});
