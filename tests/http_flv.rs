//! The `http {}` subset: HTTP-FLV played by ffmpeg and ffprobe, and static
//! files through `root`/`alias`.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

fn server_with_http(http_body: &str) -> (Server, u16) {
    let port = free_port();
    let hport = free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n\
         http {{ server {{ listen 127.0.0.1:{hport}; {http_body} }} }}\n"
    );
    (Server::with_config(&conf, port), hport)
}

#[test]
fn http_flv_plays_in_ffmpeg_and_ffprobe() {
    let (s, hport) = server_with_http("location /live { flv_live on; }");
    let src = make_source(s.dir.path(), 6);
    let publisher = ffmpeg_publish_file(&src, &s.url("cam"));
    std::thread::sleep(Duration::from_millis(1500));
    let url = format!("http://127.0.0.1:{hport}/live/cam.flv");
    let out = s.path("http.flv");
    let played = wait_for(
        ffmpeg_play(&url, &out, &["-t", "3"]),
        Duration::from_secs(15),
    );
    assert!(
        played.status.success(),
        "{}",
        String::from_utf8_lossy(&played.stderr)
    );
    let (v, a) = counts(&out);
    assert!(
        v >= 70 && a >= 100,
        "3 s over HTTP-FLV: {v} video, {a} audio"
    );
    assert_eq!(decode_errors(&out), "");
    let (flags, width) = first_video_packet(&out);
    assert!(flags.starts_with('K'), "starts at a keyframe: {flags}");
    assert_eq!(width, 320);
    // ffprobe straight from the URL.
    let codecs = probe_codecs(&url);
    assert!(
        codecs.contains("h264") && codecs.contains("aac"),
        "{codecs}"
    );
    assert!(wait_for(publisher, Duration::from_secs(15))
        .status
        .success());
    // Not publishing any more: 404.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(http_get(hport, "/live/cam.flv").0, 404);
    assert_eq!(http_get(hport, "/live/nobody.flv").0, 404);
}

#[test]
fn root_and_alias_serve_files_and_refuse_escapes() {
    let files = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(files.path().join("hls")).unwrap();
    std::fs::write(files.path().join("hls/a.m3u8"), "#EXTM3U\n").unwrap();
    let (_s, hport) = server_with_http(&format!(
        "location /hls {{ root {0}; }} location /media {{ alias {0}/hls; }}",
        files.path().display()
    ));
    assert_eq!(http_get(hport, "/hls/a.m3u8"), (200, b"#EXTM3U\n".to_vec()));
    assert_eq!(
        http_get(hport, "/media/a.m3u8"),
        (200, b"#EXTM3U\n".to_vec())
    );
    assert_eq!(http_get(hport, "/hls/missing.m3u8").0, 404);
    assert_eq!(http_get(hport, "/hls/../hls/a.m3u8").0, 400);
    assert_eq!(http_get(hport, "/elsewhere").0, 404);
}

#[test]
fn a_stalled_http_flv_client_does_not_slow_the_others() {
    let port = free_port();
    let hport = free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; out_queue 64; application live {{ live on; }} }} }}\n\
         http {{ server {{ listen 127.0.0.1:{hport}; location /live {{ flv_live on; }} }} }}\n"
    );
    let s = Server::with_config(&conf, port);
    let src = noisy_source(s.dir.path(), 12);
    let publisher = ffmpeg_publish_file(&src, &s.url("big"));
    std::thread::sleep(Duration::from_millis(800));
    // The stalled client asks and never reads.
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", hport)).unwrap();
    write!(stalled, "GET /live/big.flv HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let out = s.path("healthy.flv");
    let url = format!("http://127.0.0.1:{hport}/live/big.flv");
    let healthy = wait_for(
        ffmpeg_play(&url, &out, &["-t", "8"]),
        Duration::from_secs(20),
    );
    assert!(healthy.status.success());
    let (v, _) = counts(&out);
    assert!(v >= 190, "the healthy client got {v} video frames in 8 s");
    assert_eq!(decode_errors(&out), "");
    let log = s.log();
    assert!(
        log.contains("http-flv closed") && log.contains("slow player: stalled"),
        "{log}"
    );
    assert!(wait_for(publisher, Duration::from_secs(20))
        .status
        .success());
    drop(stalled);
}

/// HTTP-FLV with `out_merge 200ms`: what the client receives (read to the
/// end of the stream, raw) is the source's frames from its start point to
/// the end, payload for payload: windows delay frames, never drop them.
#[test]
fn http_flv_with_out_merge_loses_nothing() {
    let port = free_port();
    let hport = free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; out_merge 200ms; }} }} }}\n\
         http {{ server {{ listen 127.0.0.1:{hport}; location /live {{ flv_live on; }} }} }}\n"
    );
    let s = Server::with_config(&conf, port);
    let src = make_source(s.dir.path(), 6);
    let publisher = ffmpeg_publish_file(&src, &s.url("cam"));
    std::thread::sleep(Duration::from_millis(1500));
    let (code, body) = http_get(hport, "/live/cam.flv");
    assert_eq!(code, 200);
    let out = s.path("merged.flv");
    std::fs::write(&out, &body).unwrap();
    let (got, source) = (coded_frames(&out), coded_frames(&src));
    assert!(got.len() > 100, "{} frames", got.len());
    assert!(
        source.ends_with(&got),
        "{} frames received are not the source's last ones",
        got.len()
    );
    assert!(wait_for(publisher, Duration::from_secs(15))
        .status
        .success());
}
