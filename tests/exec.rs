//! nginx-rtmp's exec directives with real ffmpeg children: transcoding
//! ladders (`exec_push`, `exec` with `exec_options`), respawn after a
//! kill -9, no child and no zombie after the publish, `exec_pull`, and
//! `exec_record_done` remuxing a recording to MP4.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Pids of processes whose command line contains `needle`.
fn pids(needle: &str) -> Vec<u32> {
    let out = Command::new("pgrep").args(["-f", needle]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// `WIDTHxHEIGHT` of the first video stream ffprobe finds at `url`.
fn probe_size(url: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-rw_timeout", "5000000"])
        .args([
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
        ])
        .args(["-of", "csv=p=0:s=x", url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_owned()
}

/// Children of `pid` that are zombies.
fn zombies(pid: u32) -> usize {
    let out = Command::new("ps")
        .args(["-o", "stat=", "--ppid", &pid.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with('Z'))
        .count()
}

fn ffmpeg_out(dir: &Path) -> String {
    format!("2>>{}/exec-$name.log", dir.display())
}

#[test]
fn exec_push_ladder_respawns_and_leaves_nothing_behind() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port};
  application src {{ live on; respawn_timeout 1s;
    exec_push ffmpeg -hide_banner -loglevel error -rw_timeout 3000000 -i rtmp://127.0.0.1:{port}/src/$name
      -c:v libx264 -preset ultrafast -s 160x90 -c:a copy -f flv rtmp://127.0.0.1:{port}/out/$name_low
      -c copy -f flv rtmp://127.0.0.1:{port}/out/$name_src {log};
  }}
  application out {{ live on; }}
}} }}",
        log = ffmpeg_out(dir.path())
    );
    let mut server = Server::with_config(&conf, port);
    let src = make_source(dir.path(), 30);
    let mut publisher = ffmpeg_publish_file(&src, &format!("rtmp://127.0.0.1:{port}/src/cam"));
    let low = format!("rtmp://127.0.0.1:{port}/out/cam_low");
    let marker = format!("127.0.0.1:{port}/out/cam_low");
    assert!(
        until(Duration::from_secs(20), || probe_size(&low) == "160x90"),
        "no 160x90 rendition: {}",
        server.log()
    );
    assert_eq!(
        probe_size(&format!("rtmp://127.0.0.1:{port}/out/cam_src")),
        "320x240"
    );
    let first = pids(&marker);
    assert_eq!(first.len(), 1, "one exec_push child: {first:?}");
    assert!(server.log().contains("exec: started"), "{}", server.log());

    // kill -9: respawned after respawn_timeout, and serving again.
    Command::new("kill")
        .args(["-9", &first[0].to_string()])
        .status()
        .unwrap();
    assert!(
        until(Duration::from_secs(10), || {
            let now = pids(&marker);
            now.len() == 1 && now[0] != first[0]
        }),
        "not respawned: {}",
        server.log()
    );
    assert!(server.log().contains("respawning in"), "{}", server.log());
    assert!(
        until(Duration::from_secs(20), || probe_size(&low) == "160x90"),
        "respawned child serves nothing"
    );

    // The publisher leaves: the child is stopped and reaped.
    let _ = publisher.kill();
    let _ = publisher.wait();
    assert!(
        until(Duration::from_secs(8), || pids(&marker).is_empty()),
        "exec_push child outlived its stream: {}",
        server.log()
    );
    assert_eq!(zombies(server.pid()), 0, "zombie children left");
    assert!(server.alive());
}

#[test]
fn exec_with_options_runs_for_the_named_stream_only_and_feeds_hls() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let hls = dir.path().join("hls");
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port};
  application ingest {{ live ON; exec_options on;
    exec ffmpeg -hide_banner -loglevel error -rw_timeout 3000000 -i rtmp://127.0.0.1:{port}/$app/$name
      -c:v libx264 -preset ultrafast -g 25 -vf scale=128:-2 -c:a copy -f flv rtmp://127.0.0.1:{port}/hls/${{name}}_mobile name=cam {log};
  }}
  application hls {{ live on; hls on; hls_path {hls}; hls_fragment 1s; }}
}} }}",
        hls = hls.display(),
        log = ffmpeg_out(dir.path())
    );
    let server = Server::with_config(&conf, port);
    let src = make_source(dir.path(), 20);
    let mut cam = ffmpeg_publish_file(&src, &format!("rtmp://127.0.0.1:{port}/ingest/cam"));
    let mut other = ffmpeg_publish_file(&src, &format!("rtmp://127.0.0.1:{port}/ingest/other"));
    let playlist = hls.join("cam_mobile.m3u8");
    assert!(
        until(Duration::from_secs(25), || playlist.exists()
            && probe_size(playlist.to_str().unwrap()) == "128x96"),
        "no HLS rendition: {}",
        server.log()
    );
    assert!(pids(&format!("{port}/hls/other_mobile")).is_empty());
    assert_eq!(pids(&format!("{port}/hls/cam_mobile")).len(), 1);
    for p in [&mut cam, &mut other] {
        let _ = p.kill();
        let _ = p.wait();
    }
    assert!(until(Duration::from_secs(8), || pids(&format!(
        "{port}/hls/cam_mobile"
    ))
    .is_empty()));
}

#[test]
fn exec_pull_publishes_for_a_player_and_stops_after_it() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port};
  application gen {{ live on; idle_streams off;
    exec_pull ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc=size=128x72:rate=25
      -c:v libx264 -preset ultrafast -g 25 -f flv rtmp://127.0.0.1:{port}/$app/$name {log};
  }}
}} }}",
        log = ffmpeg_out(dir.path())
    );
    let server = Server::with_config(&conf, port);
    let out = dir.path().join("pulled.flv");
    let player = ffmpeg_play(
        &format!("rtmp://127.0.0.1:{port}/gen/bars"),
        &out,
        &["-t", "3"],
    );
    let o = wait_for(player, Duration::from_secs(30));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (video, _) = counts(&out);
    assert!(video >= 25, "player got {video} frames: {}", server.log());
    assert!(
        until(Duration::from_secs(8), || pids(&format!("{port}/gen/bars"))
            .is_empty()),
        "exec_pull child outlived its last player: {}",
        server.log()
    );
}

#[test]
fn exec_record_done_remuxes_the_recording_and_event_commands_see_their_variables() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port};
  application live {{ live on; record all; record_path {d};
    exec_publish sh -c \"echo publish $name $app $args $addr > {d}/publish.txt\";
    exec_publish_done touch {d}/done-$name;
    exec_record_done ffmpeg -hide_banner -loglevel error -y -i $path -c copy $dirname/$basename.mp4;
    exec_record_started touch $dirname/started-$filename;
  }}
}} }}"
    );
    let server = Server::with_config(&conf, port);
    let src = make_source(dir.path(), 3);
    let p = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(&src)
        .args(["-c", "copy", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/rec?k=v"))
        .output()
        .unwrap();
    assert!(p.status.success());
    let mp4 = dir.path().join("rec.mp4");
    assert!(
        until(Duration::from_secs(15), || probe_codecs(
            mp4.to_str().unwrap()
        )
        .contains("h264")),
        "no MP4 from exec_record_done: {}",
        server.log()
    );
    assert!(probe_codecs(mp4.to_str().unwrap()).contains("aac"));
    assert!(until(Duration::from_secs(5), || dir
        .path()
        .join("done-rec")
        .exists()));
    let publish = std::fs::read_to_string(dir.path().join("publish.txt")).unwrap();
    assert_eq!(publish.trim(), "publish rec live k=v 127.0.0.1");
}

#[test]
fn exec_static_runs_from_start_to_shutdown() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    // A command line no other process has.
    let sleep = format!("sleep 300.{port}");
    let conf = format!(
        "rtmp {{ exec_static sh -c \"touch {d}/started; exec {sleep}\";
  exec_kill_signal term;
  server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}",
        d = dir.path().display()
    );
    let mut server = Server::with_config(&conf, port);
    assert!(
        until(Duration::from_secs(5), || dir
            .path()
            .join("started")
            .exists()
            && pids(&sleep).len() == 1),
        "{}",
        server.log()
    );
    server.terminate();
    server.wait_exit(Duration::from_secs(20));
    assert!(
        server.log().contains("exec: stopping child"),
        "{}",
        server.log()
    );
    assert!(
        until(Duration::from_secs(5), || pids(&sleep).is_empty()),
        "exec_static child outlived the server"
    );
}
