//! nginx-rtmp relays: `push` that follows Go Away, `pull ... static` that
//! survives an upstream restart, and on_play's 3xx to an rtmp:// URL.

mod common;

use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

/// The relay tests time moves against GOPs; run them one at a time so a
/// loaded 2-core machine does not stretch a move past a GOP.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn conf_on(port: u16, app_body: &str) -> String {
    format!(
        "rtmp {{ drain_timeout 10s; server {{ listen 127.0.0.1:{port}; application live {{ live on; {app_body} }} }} }}"
    )
}

/// Waits until nothing listens on `port` any more.
fn wait_closed(port: u16) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "port {port} still open"
        );
        sleep(Duration::from_millis(10));
    }
}

/// A pushes to B. B drains (a rolling restart: B2 takes over B's port);
/// the push moves at a keyframe. B's and B2's players together got the
/// source exactly, payload for payload.
#[test]
fn push_relay_follows_go_away_without_loss() {
    let _serial = serial();
    let pb = free_port();
    let mut b = Server::with_config(&conf_on(pb, ""), pb);
    let a = Server::start(&format!("push rtmp://127.0.0.1:{pb}/live;"));
    let src = make_source(a.dir.path(), 14);
    let (play_b, fb) = sluice_play(&b, "m", "b.flv", &["--until-unpublish"]);
    sleep(Duration::from_millis(800));
    let publ = sluice(&["publish", src.to_str().unwrap(), &a.url("m")]);
    assert!(b.wait_log("publish"), "the push reached B: {}", b.log());
    sleep(Duration::from_millis(4500));
    b.terminate();
    wait_closed(pb);
    let b2 = Server::with_config(&conf_on(pb, ""), pb);
    let (play_b2, fb2) = sluice_play(&b2, "m", "b2.flv", &["--until-unpublish"]);
    b.wait_exit(Duration::from_secs(15));
    let out = wait_for(publ, Duration::from_secs(30));
    assert!(out.status.success());
    let logs = || format!("A:\n{}\nB:\n{}\nB2:\n{}", a.log(), b.log(), b2.log());
    let mut play_b = play_b;
    let t = Instant::now();
    while play_b.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "B's player did not end\n{}",
            logs()
        );
        sleep(Duration::from_millis(50));
    }
    let st = wait_for(play_b2, Duration::from_secs(15));
    assert!(st.status.success(), "{}", logs());
    assert!(a.log().contains("push: moved after Go Away"), "{}", a.log());

    let source = coded_frames(&src);
    let on_b = coded_frames(&fb);
    let on_b2 = coded_frames(&fb2);
    eprintln!(
        "source {} frames: {} on B, {} on B2",
        source.len(),
        on_b.len(),
        on_b2.len()
    );
    for l in a.log().lines().filter(|l| l.contains("push")) {
        eprintln!("A: {l}");
    }
    for l in b2
        .log()
        .lines()
        .filter(|l| l.contains("publish") || l.contains("play"))
    {
        eprintln!("B2: {l}");
    }
    assert!(!on_b.is_empty() && !on_b2.is_empty());
    let joined: Vec<_> = on_b.iter().chain(on_b2.iter()).cloned().collect();
    assert_eq!(
        joined.len(),
        source.len(),
        "no frame lost or doubled\n{}",
        logs()
    );
    assert!(
        joined == source,
        "B then B2 is the source, payload for payload"
    );
}

/// A static pull starts by itself, and comes back after its upstream is
/// restarted.
#[test]
fn static_pull_reconnects_after_upstream_restart() {
    let _serial = serial();
    let pu = free_port();
    let u = Server::with_config(&conf_on(pu, ""), pu);
    let e = Server::start(&format!(
        "pull rtmp://127.0.0.1:{pu}/live/src name=mirror static; pull_reconnect 500ms;"
    ));
    let src = make_source(e.dir.path(), 6);
    assert!(
        e.wait_log("pull: playing upstream"),
        "static pull started: {}",
        e.log()
    );
    let publ = sluice(&["publish", src.to_str().unwrap(), &u.url("src")]);
    let (p1, f1) = sluice_play(&e, "mirror", "e1.flv", &["--frames", "40"]);
    let out = wait_for(p1, Duration::from_secs(15));
    assert!(out.status.success());
    assert!(coded_frames(&f1).iter().filter(|f| f.0 == 9).count() >= 40);
    drop(publ);
    drop(u); // killed: the pull loses its upstream
    sleep(Duration::from_millis(1500));
    let u2 = Server::with_config(&conf_on(pu, ""), pu);
    let publ2 = sluice(&["publish", src.to_str().unwrap(), &u2.url("src")]);
    let (p2, f2) = sluice_play(&e, "mirror", "e2.flv", &["--frames", "40"]);
    let out = wait_for(p2, Duration::from_secs(15));
    assert!(out.status.success(), "{}", e.log());
    assert!(coded_frames(&f2).iter().filter(|f| f.0 == 9).count() >= 40);
    assert!(
        e.log().matches("pull: playing upstream").count() >= 2,
        "{}",
        e.log()
    );
    wait_for(publ2, Duration::from_secs(20));
}

/// on_play answers 302 with an rtmp:// Location: the stream is pulled from
/// there and played locally, as nginx-rtmp does.
#[test]
fn on_play_redirect_to_rtmp_pulls() {
    let _serial = serial();
    let origin = Server::start("");
    let oport = origin.port;
    let hooks = HookServer::start(move |r| {
        if r.get("call") == Some("play") {
            (
                302,
                Some(format!("rtmp://127.0.0.1:{oport}/live/cam")),
                Duration::ZERO,
            )
        } else {
            (200, None, Duration::ZERO)
        }
    });
    let edge = Server::start(&format!("on_play {};", hooks.url("/play")));
    let src = make_source(origin.dir.path(), 5);
    let publ = sluice(&["publish", src.to_str().unwrap(), &origin.url("cam")]);
    assert!(origin.wait_log("publish"));
    let out = edge.path("x.flv");
    let p = ffmpeg_play(&edge.url("anything"), &out, &["-frames:v", "30"]);
    let res = wait_for(p, Duration::from_secs(20));
    assert!(res.status.success(), "{}", edge.log());
    let (v, _) = counts(&out);
    assert!(
        v >= 30,
        "ffmpeg decoded {v} video frames pulled from the origin"
    );
    assert!(
        edge.log().contains("on_play relays the stream"),
        "{}",
        edge.log()
    );
    wait_for(publ, Duration::from_secs(20));
}
