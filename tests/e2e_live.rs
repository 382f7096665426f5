//! End-to-end: real ffmpeg, rtmpdump and Sluice's own client against a
//! `sluice serve` process.

mod common;

use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

/// Players attached before the publisher receive every coded frame of the
/// source, and what they record decodes without error.
#[test]
fn every_frame_reaches_ffmpeg_rtmpdump_and_sluice_players() {
    every_frame_reaches("publish_notify on;");
}

/// The same with writes merged over 200 ms windows (`out_merge`): frames
/// wait, none is lost.
#[test]
fn with_out_merge_every_frame_still_arrives() {
    every_frame_reaches("publish_notify on; out_merge 200ms;");
}

fn every_frame_reaches(app_conf: &str) {
    let srv = Server::start(app_conf);
    let src = make_source(srv.dir.path(), 6);
    let (src_v, src_a) = counts(&src);
    assert_eq!(src_v, 150);
    let url = srv.url("all");
    let (ff, rd, sp) = (srv.path("ff.flv"), srv.path("rd.flv"), srv.path("sp.flv"));
    let p_ff = ffmpeg_play(&url, &ff, &[]);
    let p_rd = rtmpdump(&url, &rd, &[]);
    let p_sp = sluice(&[
        "play",
        &url,
        "-o",
        sp.to_str().unwrap(),
        "--until-unpublish",
    ]);
    sleep(Duration::from_millis(1500));
    let publ = wait_for(ffmpeg_publish_file(&src, &url), Duration::from_secs(30));
    assert!(
        publ.status.success(),
        "{}",
        String::from_utf8_lossy(&publ.stderr)
    );
    for p in [p_ff, p_rd, p_sp] {
        wait_for(p, Duration::from_secs(15));
    }
    for (name, f) in [("ffmpeg", &ff), ("rtmpdump", &rd), ("sluice play", &sp)] {
        assert_eq!(counts(f), (src_v, src_a), "{name} received every frame");
        assert_eq!(decode_errors(f), "", "{name} recording decodes cleanly");
    }
}

/// A player joining mid-stream starts on a keyframe preceded by the
/// sequence headers, immediately (GOP cache), and decodes cleanly.
#[test]
fn late_joiners_start_on_a_keyframe_with_sequence_headers() {
    let srv = Server::start("");
    let src = make_source(srv.dir.path(), 10);
    let url = srv.url("late");
    let publ = ffmpeg_publish_file(&src, &url);
    sleep(Duration::from_millis(3400));
    let (ff, rd, sp) = (srv.path("ff.flv"), srv.path("rd.flv"), srv.path("sp.flv"));
    let started = Instant::now();
    let p_ff = ffmpeg_play(&url, &ff, &["-t", "2"]);
    // rtmpdump's --stop counts stream time from zero, which a live join
    // never sees; stop it with SIGINT like a person would.
    let p_rd = rtmpdump(&url, &rd, &[]);
    let p_sp = sluice(&["play", &url, "-o", sp.to_str().unwrap(), "--frames", "10"]);
    let out = wait_for(p_sp, Duration::from_secs(10));
    assert!(out.status.success());
    // 10 frames at 25 fps take 400 ms of real time after a GOP-cache start;
    // without the cache the player would first wait for the next keyframe.
    let sp_elapsed = started.elapsed();
    wait_for(p_ff, Duration::from_secs(15));
    sleep(Duration::from_millis(2500).saturating_sub(started.elapsed()));
    interrupt(&p_rd);
    wait_for(p_rd, Duration::from_secs(15));
    for (name, f) in [("ffmpeg", &ff), ("rtmpdump", &rd), ("sluice play", &sp)] {
        let (flags, width) = first_video_packet(f);
        assert!(
            flags.starts_with('K'),
            "{name}: first video packet flags {flags:?}"
        );
        assert_eq!(width, 320, "{name}: sequence header present");
        assert!(counts(f).0 >= 10, "{name}: got video");
        assert_eq!(decode_errors(f), "", "{name} decodes cleanly");
    }
    eprintln!("sluice play got 10 frames {sp_elapsed:?} after joining");
    let _ = wait_for(publ, Duration::from_secs(20));
}

/// `sluice publish` of an FLV file is played back by ffmpeg, frame for frame.
#[test]
fn sluice_publish_is_played_by_ffmpeg() {
    let srv = Server::start("publish_notify on;");
    let src = make_source(srv.dir.path(), 4);
    let url = srv.url("sp");
    let ff = srv.path("ff.flv");
    let p_ff = ffmpeg_play(&url, &ff, &[]);
    sleep(Duration::from_millis(1500));
    let out = wait_for(
        sluice(&["publish", src.to_str().unwrap(), &url]),
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(p_ff, Duration::from_secs(15));
    assert_eq!(counts(&ff), counts(&src));
    assert_eq!(decode_errors(&ff), "");
}

/// `ffmpeg ... -f flv - | sluice publish - URL` works.
#[test]
fn sluice_publish_from_stdin_pipe() {
    let srv = Server::start("publish_notify on;");
    let src = make_source(srv.dir.path(), 3);
    let url = srv.url("pipe");
    let sp = srv.path("sp.flv");
    let p_sp = sluice(&[
        "play",
        &url,
        "-o",
        sp.to_str().unwrap(),
        "--until-unpublish",
    ]);
    sleep(Duration::from_millis(1000));
    let cmd = format!(
        "ffmpeg -hide_banner -loglevel error -i {} -c copy -f flv - | {BIN} publish - {url}",
        src.display()
    );
    let st = std::process::Command::new("sh")
        .args(["-c", &cmd])
        .status()
        .unwrap();
    assert!(st.success());
    wait_for(p_sp, Duration::from_secs(15));
    assert_eq!(counts(&sp), counts(&src));
}

/// A second publisher of the same name is refused with BadName and the
/// first one is unharmed. (All test clients share 127.0.0.1, which the
/// default `publish_takeover addr` would let take over: pin nginx-rtmp's rule.)
#[test]
fn second_publisher_gets_bad_name() {
    let srv = Server::start("publish_takeover off;");
    let src = make_source(srv.dir.path(), 10);
    let url = srv.url("dup");
    let mut first = ffmpeg_publish_file(&src, &url);
    sleep(Duration::from_millis(1500));
    let t = Instant::now();
    let second = wait_for(ffmpeg_publish_file(&src, &url), Duration::from_secs(10));
    assert!(!second.status.success(), "second publisher must fail");
    assert!(t.elapsed() < Duration::from_secs(5), "and fail quickly");
    assert!(
        srv.log().contains("already publishing"),
        "server logs the refusal"
    );
    assert!(
        first.try_wait().unwrap().is_none(),
        "first publisher still running"
    );
    let sp = srv.path("sp.flv");
    let out = wait_for(
        sluice(&["play", &url, "-o", sp.to_str().unwrap(), "--duration", "2"]),
        Duration::from_secs(10),
    );
    assert!(out.status.success());
    assert!(counts(&sp).0 >= 25, "first publisher's stream still flows");
    let _ = first.kill();
    let _ = first.wait();
}

/// Connection log lines: one at connect, one at close with role, bytes and reason.
#[test]
fn connection_close_is_logged_with_role_and_reason() {
    let srv = Server::start("publish_notify on;");
    let src = make_source(srv.dir.path(), 2);
    let url = srv.url("logged");
    let out = wait_for(ffmpeg_publish_file(&src, &url), Duration::from_secs(15));
    assert!(out.status.success());
    sleep(Duration::from_millis(300));
    let log = srv.log();
    let line = log
        .lines()
        .find(|l| l.contains("closed") && l.contains("publisher"))
        .unwrap_or_else(|| panic!("no close line in {log}"));
    for field in [
        "app=\"live\"",
        "stream=\"logged\"",
        "bytes_in=",
        "bytes_out=",
        "duration_ms=",
        "reason=",
    ] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
}

/// nginx-rtmp #1152: an encoder reconnecting from the same address while its
/// old connection is still open takes the stream over (default
/// `publish_takeover addr`) instead of getting "already publishing"; the
/// player stays attached and the old publisher is closed.
#[test]
fn same_address_publisher_takes_over() {
    let srv = Server::start("");
    let src = make_source(srv.dir.path(), 10);
    let url = srv.url("retake");
    let mut first = ffmpeg_publish_file(&src, &url);
    sleep(Duration::from_millis(1500));
    let sp = srv.path("sp.flv");
    let player = sluice(&["play", &url, "-o", sp.to_str().unwrap(), "--duration", "5"]);
    sleep(Duration::from_millis(1000));
    let mut second = ffmpeg_publish_file(&src, &url);
    let t = Instant::now();
    while first.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(5), "old publisher closed");
        sleep(Duration::from_millis(50));
    }
    assert!(
        second.try_wait().unwrap().is_none(),
        "new publisher streaming"
    );
    let out = wait_for(player, Duration::from_secs(10));
    assert!(out.status.success());
    assert!(srv.log().contains("publish takes the stream over"));
    assert!(
        counts(&sp).0 >= 100,
        "the player kept receiving: {:?}",
        counts(&sp)
    );
    assert_eq!(decode_errors(&sp), "", "and what it got decodes");
    let _ = second.kill();
    let _ = second.wait();
}
