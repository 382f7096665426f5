//! The FLV indexer of `play` with any file: it must not panic, must not
//! allocate from a claimed size, and what it indexes must lie inside the
//! file, in play order, with seeks landing on a sample. Every sample is
//! then read back as a player would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::vod::flv_file;

#[path = "vod_check.rs"]
mod vod_check;

fuzz_target!(|data: &[u8]| {
    let Ok(ix) = flv_file::index(data) else { return };
    vod_check::check(&ix, data);
});
