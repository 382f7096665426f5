//! Security defaults and notification failures: stream keys stay out of
//! logs, an open application is announced at start, and a hook server that
//! is down, slow, failing, redirecting to itself or sending a huge body
//! fails the client closed, tells it why, leaks nothing, and leaves other
//! streams alone.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use common::raw::*;
use common::*;

fn hooked_server(srv_body: &str, apps: &str) -> Server {
    let port = free_port();
    let conf = format!(
        "rtmp {{\n server {{\n  listen 127.0.0.1:{port};\n  {srv_body}\n  \
         application live {{ live on; }}\n  {apps}\n }}\n}}\n"
    );
    Server::with_config(&conf, port)
}

#[test]
fn stream_keys_are_redacted_in_logs_unless_log_args_is_on() {
    let dead = format!("http://127.0.0.1:{}/play", free_port());
    for show in [false, true] {
        let port = free_port();
        let conf = format!(
            "rtmp {{\n {}\n server {{\n  listen 127.0.0.1:{port};\n  \
             application live {{ live on; notify_method get; on_play {dead}; }}\n }}\n}}\n",
            if show { "log_args on;" } else { "" }
        );
        let s = Server::with_config(&conf, port);
        let src = make_source(s.dir.path(), 2);
        let tcurl = format!("rtmp://127.0.0.1:{port}/live?key=s3cretA");
        let publisher = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
            .arg(&src)
            .args(["-c", "copy", "-rtmp_tcurl", &tcurl, "-f", "flv"])
            .arg(s.url("cam?token=s3cretB"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        // A player whose on_play hook is down: the error names the cause,
        // and (with `notify_method get`) the URL it would print carries
        // the args.
        let mut p = ready(s.port);
        p.send(&command(1, &play_body("cam?token=s3cretC")));
        assert!(p.saw(b"NetStream.Play.Failed", Duration::from_secs(5)));
        wait_for(publisher, Duration::from_secs(10));
        let log = s.log();
        assert!(log.contains("unreachable"), "{log}");
        if show {
            assert!(log.contains("key=s3cretA"), "log_args on shows args: {log}");
        } else {
            assert!(
                !log.contains("s3cret"),
                "a stream key reached the log: {log}"
            );
            assert!(log.contains("key=***"), "{log}");
        }
        // Never in what the client is told either.
        assert!(!String::from_utf8_lossy(&p.got).contains("s3cret"));
    }
}

#[test]
fn an_application_anyone_can_publish_to_is_announced() {
    let s = Server::start("");
    assert!(s.wait_log("application \"live\" lets anyone publish"));
    let hook = HookServer::start(|_| (200, None, Duration::ZERO));
    for locked in [
        format!("on_publish {};", hook.url("/p")),
        "allow publish 127.0.0.1; deny publish all;".to_owned(),
    ] {
        let s = Server::start(&locked);
        // The start-up lines are written before the port is accepted.
        std::thread::sleep(Duration::from_millis(200));
        assert!(!s.log().contains("lets anyone publish"), "{locked}");
    }
}

/// An HTTP server that answers `status` with a body that never ends
/// (1 GiB announced, written until the reader goes away).
fn huge_body_server(status: u16) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut rd = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while rd.read_line(&mut line).unwrap_or(0) > 0 && line.trim_end() != "" {
                    line.clear();
                }
                let mut w = conn;
                let head = format!("HTTP/1.1 {status} X\r\nContent-Length: 1073741824\r\n\r\n");
                if w.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let block = vec![b'z'; 64 << 10];
                while w.write_all(&block).is_ok() {}
            });
        }
    });
    port
}

#[test]
fn notification_failures_fail_closed_and_leak_nothing() {
    let hook = HookServer::start(|r| match r.path.as_str() {
        "/500" => (500, None, Duration::ZERO),
        "/503" => (503, None, Duration::ZERO),
        // Redirects to itself, forever if followed.
        "/loop" => (302, Some(r.path.clone()), Duration::ZERO),
        "/slow" => (200, None, Duration::from_secs(3)),
        _ => (200, None, Duration::ZERO),
    });
    let loop_url = hook.url("/loop");
    let huge_ok = huge_body_server(200);
    let huge_err = huge_body_server(500);
    let dead = free_port();
    let apps = format!(
        "application a500 {{ live on; on_publish {}; }}\n\
         application a503 {{ live on; on_publish {}; }}\n\
         application aloop {{ live on; on_publish {loop_url}; }}\n\
         application aslow {{ live on; netcall_timeout 1s; on_publish {}; }}\n\
         application adown {{ live on; on_publish http://127.0.0.1:{dead}/p; }}\n\
         application ahugeerr {{ live on; on_publish http://127.0.0.1:{huge_err}/p; }}\n\
         application ahugeok {{ live on; on_publish http://127.0.0.1:{huge_ok}/p; }}\n",
        hook.url("/500"),
        hook.url("/503"),
        hook.url("/slow"),
    );
    let mut s = hooked_server("", &apps);

    // A healthy stream runs through all of it.
    let src = make_source(s.dir.path(), 6);
    let publisher = ffmpeg_publish_file(&src, &s.url("healthy"));
    std::thread::sleep(Duration::from_millis(500));
    let out = s.path("healthy.flv");
    let player = ffmpeg_play(&s.url("healthy"), &out, &["-t", "4"]);

    let fds_before = s.fds();
    let cases: [(&str, &str); 6] = [
        ("a500", "HTTP 500"),
        ("a503", "HTTP 503"),
        ("aloop", "not a stream"),
        ("aslow", "timeout after 1s"),
        ("adown", "unreachable"),
        ("ahugeerr", "HTTP 500"),
    ];
    for round in 0..5 {
        for (app, why) in cases {
            let mut r = Raw::new(s.port);
            r.send(&command(0, &connect_body_for(app)));
            r.send(&command(0, &create_stream_body()));
            r.send(&command(1, &publish_body("x")));
            assert!(
                r.saw(b"NetStream.Publish.Unauthorized", Duration::from_secs(5)),
                "{app}: not refused"
            );
            assert!(
                r.saw(why.as_bytes(), Duration::from_secs(1)),
                "{app}: the client is not told why ({why})"
            );
            assert!(
                r.closed_within(Duration::from_secs(5)),
                "{app} round {round}"
            );
        }
        // A 2xx with a body that never ends is still a yes, at once.
        let mut r = Raw::new(s.port);
        r.send(&command(0, &connect_body_for("ahugeok")));
        r.send(&command(0, &create_stream_body()));
        r.send(&command(1, &publish_body("y")));
        assert!(r.saw(b"NetStream.Publish.Start", Duration::from_secs(5)));
    }

    // Nothing leaked: descriptors settle back (the hook client keeps a
    // small idle pool), and memory did not follow the huge bodies.
    let t = Instant::now();
    while s.fds() > fds_before + 8 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let fds_after = s.fds();
    eprintln!(
        "fds before {fds_before}, after {fds_after}; RSS {} KiB",
        s.rss_kb()
    );
    assert!(
        fds_after <= fds_before + 8,
        "fds {fds_before} -> {fds_after}"
    );
    assert!(s.rss_kb() < 32 * 1024, "RSS {} KiB", s.rss_kb());

    // The healthy stream went on untouched.
    let published = wait_for(publisher, Duration::from_secs(20));
    assert!(published.status.success());
    let played = wait_for(player, Duration::from_secs(10));
    assert!(played.status.success());
    let (v, _) = counts(&out);
    assert!(v >= 95, "healthy player got {v} video frames in 4 s");
    assert!(s.alive());
}
