//! The fMP4 writer (DASH) with any samples and any configuration record:
//! every box it writes must nest exactly, and the data offset of a
//! fragment must land on its first sample in the `mdat`.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice::fmp4::{init_segment, media_segment, Codec, Sample, Track};

/// Walks the boxes of `data` (recursing into containers); false when a
/// size does not add up.
fn nests(data: &[u8]) -> bool {
    let mut p = 0;
    while p < data.len() {
        if p + 8 > data.len() {
            return false;
        }
        let size = u32::from_be_bytes([data[p], data[p + 1], data[p + 2], data[p + 3]]) as usize;
        if size < 8 || p + size > data.len() {
            return false;
        }
        let kind = &data[p + 4..p + 8];
        if matches!(kind, b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"mvex" | b"moof" | b"traf" | b"dinf")
            && !nests(&data[p + 8..p + size])
        {
            return false;
        }
        p += size;
    }
    true
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let split = (data[0] as usize).min(data.len() - 1);
    let (record, rest) = data[1..].split_at(split.min(data.len() - 1));
    let codec = match data[1] % 4 {
        0 => Codec::Avc(Bytes::copy_from_slice(record)),
        1 => Codec::Hevc(Bytes::copy_from_slice(record)),
        2 => Codec::Av1(Bytes::copy_from_slice(record)),
        _ => Codec::Aac(Bytes::copy_from_slice(record)),
    };
    let track = Track {
        id: 1,
        codec,
        timescale: 1000,
        width: u16::from(data[2]) * 8,
        height: u16::from(data[3]) * 8,
        sample_rate: 44100,
        channels: 2,
    };
    assert!(nests(&init_segment(std::slice::from_ref(&track))));
    let samples: Vec<Sample> = rest
        .chunks(7)
        .map(|c| Sample {
            data: Bytes::copy_from_slice(c),
            duration: u32::from(c[0]) * 3,
            cts: i32::from(c.get(1).copied().unwrap_or(0) as i8) * 40,
            key: c[0] & 1 == 0,
        })
        .collect();
    let seg = media_segment(7, &track, u64::from(data[0]) << 33, &samples);
    assert!(nests(&seg));
    if let Some(first) = samples.first() {
        let styp = u32::from_be_bytes([seg[0], seg[1], seg[2], seg[3]]) as usize;
        let at = seg.windows(4).position(|w| w == b"trun").unwrap() + 12;
        let offset = u32::from_be_bytes([seg[at], seg[at + 1], seg[at + 2], seg[at + 3]]) as usize;
        assert_eq!(&seg[styp + offset..styp + offset + first.data.len()], &first.data[..]);
    }
});
