//! Reload (SIGHUP and `sluice reload`) with an ffmpeg publisher and an
//! rtmpdump player running through three of them: one adds an application,
//! one changes an `on_publish` URL, one is a broken file. Nobody is
//! dropped, the player's recording holds every source frame from its join
//! on, once, in order, and /stat keeps its uptime and counters.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const OK: (u16, Option<String>, Duration) = (200, None, Duration::ZERO);

fn conf(port: u16, http: u16, dir: &std::path::Path, hook: &str, extra: &str) -> String {
    format!(
        "pid {d}/sluice.pid;
rtmp {{ server {{ listen 127.0.0.1:{port};
  application live {{ live on; on_publish {hook}; }}
  {extra}
}} }}
http {{ server {{ listen 127.0.0.1:{http}; location /stat {{ rtmp_stat all; }} }} }}",
        d = dir.display()
    )
}

fn publish_once(src: &std::path::Path, url: &str) -> bool {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(src)
        .args(["-c", "copy", "-f", "flv", url])
        .output()
        .unwrap()
        .status
        .success()
}

/// `<tag>N</tag>` of an XML text.
fn tag(xml: &str, name: &str) -> u64 {
    let open = format!("<{name}>");
    xml.split(&open)
        .nth(1)
        .and_then(|r| r.split('<').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn three_reloads_drop_nothing() {
    let hook_a = HookServer::start(|_| OK);
    let hook_b = HookServer::start(|_| OK);
    let (port, http) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let a = hook_a.url("/a");
    let server = Server::with_config(&conf(port, http, dir.path(), &a, ""), port);
    let conf_path = server.dir.path().join("sluice.conf");
    let pid_file = dir.path().join("sluice.pid");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        server.pid().to_string(),
        "pid file"
    );
    let src = make_source(dir.path(), 14);
    let short = make_source(dir.path(), 1);
    let url = format!("rtmp://127.0.0.1:{port}/live/cam");
    let publisher = ffmpeg_publish_file(&src, &url);
    std::thread::sleep(Duration::from_millis(1500));
    let rec = dir.path().join("rtmpdump.flv");
    let player = rtmpdump(&url, &rec, &[]);
    std::thread::sleep(Duration::from_millis(1000));
    let (_, stat) = http_get(http, "/stat");
    let stat = String::from_utf8_lossy(&stat).into_owned();
    let (uptime0, accepted0) = (tag(&stat, "uptime"), tag(&stat, "naccepted"));
    let hup = || {
        Command::new("kill")
            .args(["-HUP", &server.pid().to_string()])
            .status()
            .unwrap();
    };

    // 1: a new application and a new listener, published to at once.
    let port2 = free_port();
    let extra = "application extra { live on; }";
    let with_listener = format!("listen 127.0.0.1:{port2}; {extra}");
    std::fs::write(&conf_path, conf(port, http, dir.path(), &a, &with_listener)).unwrap();
    hup();
    assert!(
        server.wait_log("reload: new configuration in force"),
        "{}",
        server.log()
    );
    assert!(
        publish_once(&short, &format!("rtmp://127.0.0.1:{port}/extra/x")),
        "publish to the new application: {}",
        server.log()
    );
    assert!(publish_once(
        &short,
        &format!("rtmp://127.0.0.1:{port2}/extra/z")
    ));

    // 2: a new on_publish URL, through `sluice reload`: the next publish
    // calls it.
    let b = hook_b.url("/b");
    std::fs::write(&conf_path, conf(port, http, dir.path(), &b, extra)).unwrap();
    let o = Command::new(BIN)
        .args(["reload", "-c"])
        .arg(&conf_path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = Instant::now();
    while server
        .log()
        .matches("reload: new configuration in force")
        .count()
        < 2
    {
        assert!(t.elapsed() < Duration::from_secs(5), "{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(publish_once(
        &short,
        &format!("rtmp://127.0.0.1:{port}/live/second")
    ));
    let call = hook_b.wait_for("/b", Duration::from_secs(5));
    assert_eq!(call.get("name"), Some("second"));
    assert!(hook_a
        .requests()
        .iter()
        .all(|r| r.get("name") != Some("second")));

    // 3: a broken file is refused, and the configuration in force serves.
    std::fs::write(&conf_path, "rtmp { server { listen 1935; live maybe; } }").unwrap();
    hup();
    assert!(server.wait_log("reload refused; the old configuration keeps serving"));
    assert!(
        server.log().contains("invalid value \"maybe\""),
        "{}",
        server.log()
    );
    assert!(publish_once(
        &short,
        &format!("rtmp://127.0.0.1:{port}/extra/y")
    ));

    // The first publisher and player went through all three.
    let out = wait_for(publisher, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "publisher: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // rtmpdump keeps waiting after a live stream ends: stop it as a person
    // would, once it has had time to write the last frames.
    std::thread::sleep(Duration::from_millis(1500));
    interrupt(&player);
    wait_for(player, Duration::from_secs(15));
    let sent = coded_frames(&src);
    let got = coded_frames(&rec);
    assert!(got.len() > 100, "player got {} frames", got.len());
    let start = sent
        .iter()
        .position(|f| *f == got[0])
        .expect("the recording starts with a source frame");
    assert_eq!(
        &sent[start..],
        &got[..],
        "every frame from the join on, once, in order"
    );
    assert_eq!(decode_errors(&rec), "");

    let (_, stat) = http_get(http, "/stat");
    let stat = String::from_utf8_lossy(&stat).into_owned();
    assert!(tag(&stat, "uptime") >= uptime0, "uptime reset: {stat}");
    assert!(
        tag(&stat, "naccepted") > accepted0,
        "counters reset: {stat}"
    );
    drop(server);
}

#[test]
fn sighup_never_stops_the_server() {
    let s = Server::start("");
    for _ in 0..3 {
        Command::new("kill")
            .args(["-HUP", &s.pid().to_string()])
            .status()
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut s = s;
    assert!(s.alive(), "SIGHUP stopped the server");
    assert!(s.log().contains("SIGHUP"), "{}", s.log());
}
