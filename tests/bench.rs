//! `sluice bench` as a load generator: against Sluice in-process it must
//! connect every player, match every frame to its publishing (so no loss
//! and a latency per frame), and time the first frame of each player.

mod common;

use std::time::Duration;

use sluice::client::bench::{bench, BenchOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_publishes_plays_and_matches_every_frame() {
    let (addr, _) = common::in_process().await;
    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("src.flv");
    // 2 s of 25 fps video with a keyframe per second, looped.
    std::fs::write(&flv, common::synthetic_flv(50, 86)).unwrap();

    let opts = BenchOptions {
        url: format!("rtmp://{addr}/live/b"),
        players: 40,
        streams: 2,
        publish: Some(flv),
        ramp: Some(100.0),
        duration: Duration::from_secs(4),
        warmup: Duration::from_millis(1500),
        churn: Some(10.0),
        churn_life: Duration::from_secs(1),
        // The server runs in this process.
        server_pid: Some(std::process::id()),
        http_flv: None,
        hls: None,
    };
    let r = bench(&opts).await.unwrap();
    println!("{}", r.render());
    assert!(r.publisher_errors.is_empty(), "{:?}", r.publisher_errors);
    assert_eq!(r.players.len(), 40);
    assert_eq!(r.connected(), 40, "{:?}", r.errors());
    assert!(r.errors().is_empty(), "{:?}", r.errors());
    for p in &r.players {
        // Sluice forwards timestamps as published: every frame matches.
        assert_eq!(p.unmatched, 0);
        assert_eq!(p.lost, [0, 0]);
        // ~4.4 s of 25 fps video at least, GOP cache included.
        assert!(p.frames[1] >= 100, "{:?}", p.frames);
        assert!(p.cached > 0, "the GOP cache should start every player");
        assert!(p.first_frame().is_some());
        assert!(p.behind[1] <= 2, "{:?}", p.behind);
    }
    assert!(r.latency().count() > 40 * 100);
    assert!(r.mbps() > 0.0);
    let usage = r.server.expect("/proc sampled");
    assert!(usage.cpu_secs > 0.0 && usage.rss_end_kb > 0);
    assert!(r.cpu_per_gb().is_some_and(|c| c > 0.0));
    // The bench's own CPU over the same window is reported beside the
    // server's (here both are this process).
    assert!(r.bench_cpu_secs.is_some_and(|c| c > 0.0));
    assert!(r.render().contains(" bench_cpu_s="));
    // 10/s for 3 s (a churn player must fit its 1 s life in the window).
    assert!((25..=35).contains(&r.churn.len()), "{}", r.churn.len());
    assert!(r.churn.iter().all(|p| p.first_frame().is_some()));
    assert!(r
        .render()
        .contains("RESULT players=40 connected=40 errors=0"));
}

/// The CLI with a third-party publisher: ffmpeg (libx264 + AAC) publishes,
/// `sluice bench` players skim what the server relays and must see
/// decodable video from their first frame on, with no errors.
#[test]
fn bench_cli_plays_an_ffmpeg_stream() {
    let s = common::Server::start("");
    let src = common::make_source(s.dir.path(), 8);
    let mut ff = common::ffmpeg_publish_file(&src, &s.url("ff"));
    std::thread::sleep(Duration::from_millis(1500));
    let bench = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["bench", &s.url("ff"), "--players", "20", "--duration", "3"])
        .args(["--ramp", "50"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = common::wait_for(bench, Duration::from_secs(30));
    let _ = ff.kill();
    let _ = ff.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let result = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .expect("RESULT line");
    let field = |k: &str| -> f64 {
        result
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing: {result}"))
            .parse()
            .unwrap_or(f64::NAN)
    };
    assert_eq!(field("connected"), 20.0, "{text}");
    assert_eq!(field("errors"), 0.0, "{text}");
    // 3 s of 25-30 fps video plus audio, for 20 players.
    assert!(field("frames") >= 20.0 * 100.0, "{text}");
    assert!(field("mbps") > 0.0, "{text}");
    // The GOP cache starts every player at once.
    assert!(field("ttff_p99_ms") < 1000.0, "{text}");
}

/// `--http-flv`: the players read HTTP-FLV from the same server the bench
/// publishes to over RTMP, and match every frame as RTMP players do.
#[test]
fn bench_http_flv_players_match_every_frame() {
    let port = common::free_port();
    let hport = common::free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n\
         http {{ server {{ listen 127.0.0.1:{hport}; location /live {{ flv_live on; }} }} }}\n"
    );
    let s = common::Server::with_config(&conf, port);
    let flv = s.path("src.flv");
    std::fs::write(&flv, common::synthetic_flv(50, 86)).unwrap();
    let bench = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["bench", &s.url("h"), "--players", "20", "--duration", "3"])
        .args(["--ramp", "50", "--publish"])
        .arg(&flv)
        .args(["--http-flv", &format!("http://127.0.0.1:{hport}/live")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = common::wait_for(bench, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let result = text.lines().find(|l| l.starts_with("RESULT")).unwrap();
    assert!(
        result.contains("connected=20 errors=0") && result.contains(" lost=0 "),
        "{result}"
    );
    let frames: u64 = result
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("frames="))
        .unwrap()
        .parse()
        .unwrap();
    // 20 players, 3 s and more of 25 fps video and 43 fps audio.
    assert!(frames > 20 * 3 * 60, "{result}");
}

/// `sluice bench --hls`: players follow the playlist Sluice writes and
/// fetch its segments over Sluice's own static file location, as browser
/// players would; every player gets segments, and the bytes delivered are
/// at least the stream's rate for the measured window.
#[test]
fn bench_hls_players_fetch_segments() {
    let port = common::free_port();
    let hport = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; hls on; \
         hls_path {hls}/hls; hls_fragment 1s; hls_playlist_length 4s; }} }} }}\n\
         http {{ server {{ listen 127.0.0.1:{hport}; location /hls {{ root {hls}; }} }} }}\n",
        hls = dir.path().display()
    );
    let s = common::Server::with_config(&conf, port);
    let flv = s.path("src.flv");
    std::fs::write(&flv, common::synthetic_flv(50, 86)).unwrap();
    let bench = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["bench", &s.url("h"), "--players", "10", "--duration", "3"])
        .args(["--ramp", "50", "--warmup", "2.5", "--publish"])
        .arg(&flv)
        .args(["--hls", &format!("http://127.0.0.1:{hport}/hls")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = common::wait_for(bench, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let result = text.lines().find(|l| l.starts_with("RESULT")).unwrap();
    assert!(result.contains("connected=10 errors=0"), "{result}");
    let mbps: f64 = result
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("mbps="))
        .unwrap()
        .parse()
        .unwrap();
    // Ten players of a stream of some 100 kbit/s or more: each fetched the
    // segments cut during the window, not just a playlist.
    assert!(mbps > 0.3, "{result}");
}
