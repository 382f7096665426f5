//! HLS: the MPEG-TS muxer against ffmpeg's reading of it.

mod common;

use bytes::BytesMut;
use common::*;
use sluice::flv;
use sluice::hls::ts::{Muxer, VideoCodec};

#[test]
fn ts_muxer_output_has_every_frame_and_decodes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), 3);
    let data = std::fs::read(&src).unwrap();
    let mut buf = BytesMut::from(&data[..]);
    let mut p = flv::FlvParser::new();
    let mut m = Muxer::new(Some(VideoCodec::H264), true);
    let mut out = BytesMut::new();
    m.tables(&mut out);
    while let Some(t) = p.next_tag(&mut buf).unwrap() {
        let d = &t.data;
        match t.tag_type {
            flv::TAG_VIDEO if d[1] == 0 => m.video_config(VideoCodec::H264, &d[5..]).unwrap(),
            flv::TAG_VIDEO if d[1] == 1 => {
                let cts = flv::composition_offset(d);
                let key = d[0] >> 4 == 1;
                m.video(&d[5..], t.timestamp as u64, cts, key, &mut out)
                    .unwrap()
            }
            flv::TAG_AUDIO if d[1] == 0 => m.audio_config(&d[2..]).unwrap(),
            flv::TAG_AUDIO => m.audio(&d[2..], t.timestamp as u64, &mut out).unwrap(),
            _ => {}
        }
    }
    let ts = dir.path().join("out.ts");
    std::fs::write(&ts, &out).unwrap();
    assert_eq!(counts(&ts), counts(&src), "TS vs FLV (video, audio)");
    assert_eq!(decode_errors(&ts), "");
}
