//! `record`: ffmpeg publishes, Sluice writes FLV files, ffprobe reads them,
//! and `on_record_done` reports each file.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

/// Publishes a fresh `secs`-long source as `cam` with ffmpeg, to the end,
/// and gives the recorders a moment to close; returns the source.
fn publish_once(s: &Server, secs: u32) -> PathBuf {
    let src = make_source(s.dir.path(), secs);
    let out = wait_for(
        ffmpeg_publish_file(&src, &s.url("cam")),
        Duration::from_secs(20),
    );
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(500));
    src
}

/// Waits until `n` record_done calls arrived; returns their paths in order.
fn done_paths(hook: &HookServer, n: usize) -> Vec<(String, String, PathBuf)> {
    let t = Instant::now();
    loop {
        let reqs: Vec<_> = hook
            .requests()
            .into_iter()
            .filter(|r| r.get("call") == Some("record_done"))
            .collect();
        if reqs.len() >= n || t.elapsed() > Duration::from_secs(10) {
            return reqs
                .iter()
                .map(|r| {
                    (
                        r.get("recorder").unwrap_or_default().to_owned(),
                        r.get("name").unwrap_or_default().to_owned(),
                        PathBuf::from(r.get("path").unwrap_or_default()),
                    )
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_recording_has_every_frame_of_the_source() {
    let hook = HookServer::start(|_| (200, None, Duration::ZERO));
    let rec = tempfile::tempdir().unwrap();
    let s = Server::start(&format!(
        "record all; record_path {}; on_record_done {};",
        rec.path().display(),
        hook.url("/rec")
    ));
    let src = make_source(s.dir.path(), 3);
    let out = wait_for(
        ffmpeg_publish_file(&src, &s.url("cam?k=v")),
        Duration::from_secs(20),
    );
    assert!(out.status.success());
    let done = done_paths(&hook, 1);
    assert_eq!(done.len(), 1, "{done:?}");
    let (recorder, name, path) = &done[0];
    assert_eq!((recorder.as_str(), name.as_str()), ("", "cam"));
    assert_eq!(path, &rec.path().join("cam.flv"));
    let req = hook.wait_for("/rec", Duration::from_secs(1));
    assert_eq!(req.get("k"), Some("v"), "stream args are passed on");
    assert_eq!(req.get("app"), Some("live"));
    let (sv, sa) = counts(&src);
    assert_eq!(counts(path), (sv, sa), "recording vs source (video, audio)");
    assert_eq!(decode_errors(path), "");
}

#[test]
fn record_interval_rotates_without_losing_a_frame() {
    let hook = HookServer::start(|_| (200, None, Duration::ZERO));
    let rec = tempfile::tempdir().unwrap();
    // One GOP per second in the source: a new file at (nearly) every
    // keyframe, named by the millisecond it opened.
    let s = Server::start(&format!(
        "recorder parts {{ record all; record_interval 900ms; record_suffix -%H%M%S%3f.flv; \
         record_path {}; on_record_done {}; }}",
        rec.path().display(),
        hook.url("/rec")
    ));
    let src = publish_once(&s, 4);
    let done = done_paths(&hook, 3);
    assert!(done.len() >= 3, "expected several files: {done:?}");
    let mut video = 0;
    for (recorder, _, path) in &done {
        assert_eq!(recorder, "parts");
        let (v, _) = counts(path);
        assert!(v > 0, "{} has no video", path.display());
        assert_eq!(decode_errors(path), "", "{}", path.display());
        video += v;
    }
    let (sv, _) = counts(&src);
    assert_eq!(video, sv, "the parts together hold every video frame");
}

#[test]
fn record_max_size_closes_files_near_the_limit() {
    let hook = HookServer::start(|_| (200, None, Duration::ZERO));
    let rec = tempfile::tempdir().unwrap();
    let s = Server::start(&format!(
        "record video; record_max_size 16K; record_unique on; record_path {}; \
         on_record_done {};",
        rec.path().display(),
        hook.url("/rec")
    ));
    publish_once(&s, 4);
    let done = done_paths(&hook, 2);
    assert!(done.len() >= 2, "expected rotation: {done:?}");
    for (_, _, path) in &done {
        let size = std::fs::metadata(path).unwrap().len();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("cam-") && name.ends_with(".flv"), "{name}");
        let (v, a) = counts(path);
        assert!(v > 0 && a == 0, "{name}: video only, got ({v}, {a})");
        // Closed at the first frame that crosses the limit.
        assert!(size < 16 * 1024 + 16 * 1024, "{name}: {size} bytes");
    }
}

#[test]
fn record_notify_tells_the_publisher_and_record_lock_holds_the_file() {
    use bytes::BytesMut;
    use common::raw::*;
    let rec = tempfile::tempdir().unwrap();
    let s = Server::start(&format!(
        "record all; record_notify on; record_lock on; record_max_frames 3; record_path {};",
        rec.path().display()
    ));
    let mut r = ready(s.port);
    r.send(&command(1, &publish_body("n")));
    assert!(r.saw(b"NetStream.Record.Start", Duration::from_secs(5)));
    let path = rec.path().join("n.flv");
    let t = Instant::now();
    while !path.exists() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let other = std::fs::File::open(&path).unwrap();
    assert!(
        other.try_lock().is_err(),
        "the file is locked while recording"
    );
    let mut send = |ts: u32, body: &[u8]| {
        let mut m = BytesMut::new();
        sluice::rtmp::chunk::encode_message(6, ts, 9, 1, body, 128, &mut m);
        r.send(&m);
    };
    send(0, &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f]);
    send(0, &[0x17, 1, 0, 0, 0, 1]);
    send(40, &[0x27, 1, 0, 0, 0, 2]);
    send(80, &[0x27, 1, 0, 0, 0, 3]);
    assert!(
        r.saw(b"NetStream.Record.Stop", Duration::from_secs(5)),
        "record_max_frames closed the file"
    );
    let t = Instant::now();
    while other.try_lock().is_err() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(other.try_lock().is_ok(), "unlocked once closed");
}

#[test]
fn a_full_disk_stops_the_recorder_not_the_stream() {
    // /dev/full takes the file's place: every write fails with ENOSPC.
    let s = Server::start("record all; record_path /dev; record_suffix \"\";");
    let src = make_source(s.dir.path(), 3);
    let publisher = ffmpeg_publish_file(&src, &s.url("full"));
    std::thread::sleep(Duration::from_millis(300));
    let out = s.path("played.flv");
    let player = wait_for(
        ffmpeg_play(&s.url("full"), &out, &["-t", "2"]),
        Duration::from_secs(15),
    );
    assert!(player.status.success());
    let published = wait_for(publisher, Duration::from_secs(15));
    assert!(published.status.success(), "the publisher went on");
    let (v, _) = counts(&out);
    assert!(v >= 45, "the player got {v} video frames in 2 s");
    assert!(s.wait_log("recorder stopped"));
    let log = s.log();
    assert!(log.contains("recorder stopped"), "{log}");
    assert!(log.contains("No space left on device"), "{log}");
}

#[test]
fn record_append_continues_one_file_across_publishes() {
    let rec = tempfile::tempdir().unwrap();
    let s = Server::start(&format!(
        "record all; record_append on; record_path {};",
        rec.path().display()
    ));
    let src = make_source(s.dir.path(), 2);
    for _ in 0..2 {
        let out = wait_for(
            ffmpeg_publish_file(&src, &s.url("cam")),
            Duration::from_secs(20),
        );
        assert!(out.status.success());
        std::thread::sleep(Duration::from_millis(500));
    }
    let path = rec.path().join("cam.flv");
    let (sv, sa) = counts(&src);
    assert_eq!(counts(&path), (2 * sv, 2 * sa), "both sessions in one file");
}
