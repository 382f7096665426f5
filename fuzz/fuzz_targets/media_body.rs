//! Enhanced RTMP message bodies read track by track (ModEx, multitrack
//! sizes), the per-track configuration keys, the multitrack split's
//! rewriting and the /stat description of every track.
#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice::flv::{self, body, Media};
use sluice::live::{Frame, FrameKind};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    let (media, kind) = if sel & 1 == 0 {
        (Media::Video, FrameKind::Video)
    } else {
        (Media::Audio, FrameKind::Audio)
    };
    if let Ok(m) = body::parse(media, payload) {
        for u in m.units() {
            match u {
                Ok(u) => assert!(u.data.len() <= payload.len()),
                Err(_) => break,
            }
        }
    }
    let _ = flv::config_key(media, payload);
    let info = match kind {
        FrameKind::Video => flv::video_info(payload),
        _ => flv::audio_info(payload),
    };
    let Ok(info) = info else { return };
    let frame = Arc::new(Frame::new(kind, 0, info, Bytes::copy_from_slice(payload), 128, false));
    let mut split = sluice::split::rewrite::Splitter::new(sluice::config::Split::ById);
    for out in split.frame(&frame) {
        let _ = flv::video_info(&out.payload);
        let _ = flv::audio_info(&out.payload);
    }
    let _ = sluice::live::describe::describe(None, [frame].iter());
});
