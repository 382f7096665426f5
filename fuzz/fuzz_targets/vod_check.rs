//! What both VOD indexer targets check of an index built from `data`.

use sluice::vod::player;

/// Samples lie inside the file, in play order, within the sample cap;
/// seeks land on a sample; every sample reads back as a player reads it.
pub fn check(ix: &sluice::vod::Index, data: &[u8]) {
    assert!(ix.samples.len() <= sluice::vod::MAX_SAMPLES);
    for w in ix.samples.windows(2) {
        assert!(w[0].ts <= w[1].ts);
    }
    for s in &ix.samples {
        assert!(s.offset + s.size as u64 <= data.len() as u64);
        assert!((s.track as usize) < ix.tracks.len());
    }
    for ms in [0, 1, 1000, u64::MAX / 2] {
        assert!(ix.seek(ms) <= ix.samples.len());
    }
    let mut at = 0;
    while at < ix.samples.len() {
        let end = (at + 64).min(ix.samples.len());
        let (got, outs) = player::read(ix, data, at..end).expect("in-file samples read");
        assert_eq!(got, end);
        assert!(outs.len() <= end - at);
        at = end;
    }
}
