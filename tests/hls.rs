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

#[test]
fn hls_from_an_ffmpeg_publish_plays_over_http() {
    use std::time::Duration;
    let files = tempfile::tempdir().unwrap();
    let hls_dir = files.path().join("hls");
    let port = free_port();
    let hport = free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; hls on; \
         hls_path {}; hls_fragment 2s; hls_playlist_length 6s; hls_continuous off; }} }} }}\n\
         http {{ server {{ listen 127.0.0.1:{hport}; location /hls {{ root {}; }} }} }}\n",
        hls_dir.display(),
        files.path().display()
    );
    let s = Server::with_config(&conf, port);
    let src = make_source(s.dir.path(), 10);
    let publisher = ffmpeg_publish_file(&src, &s.url("cam"));
    let url = format!("http://127.0.0.1:{hport}/hls/cam.m3u8");
    // Live: after a few segments, the playlist parses and ffprobe plays it.
    std::thread::sleep(Duration::from_secs(7));
    let text = std::fs::read(hls_dir.join("cam.m3u8")).unwrap();
    let pl = m3u8_rs::parse_media_playlist_res(&text).expect("valid playlist");
    assert!(!pl.end_list);
    assert!(pl.segments.len() >= 2, "{pl:?}");
    for seg in &pl.segments {
        // hls_fragment 2s, cut at the next keyframe (1 s GOP).
        assert!(
            (1.9..=3.1).contains(&seg.duration),
            "segment {} lasts {}",
            seg.uri,
            seg.duration
        );
        assert!(hls_dir.join(&seg.uri).exists());
    }
    let codecs = probe_codecs(&url);
    assert!(
        codecs.contains("h264") && codecs.contains("aac"),
        "{codecs}"
    );
    assert!(wait_for(publisher, Duration::from_secs(20))
        .status
        .success());
    std::thread::sleep(Duration::from_millis(500));
    // Ended: ENDLIST, and the whole window decodes cleanly over HTTP.
    let text = std::fs::read(hls_dir.join("cam.m3u8")).unwrap();
    let pl = m3u8_rs::parse_media_playlist_res(&text).expect("valid playlist");
    assert!(pl.end_list);
    let window: f32 = pl.segments.iter().map(|s| s.duration).sum();
    assert!(window <= 6.0 + 3.1, "window {window} s");
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i", &url, "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
