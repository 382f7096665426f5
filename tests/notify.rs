//! HTTP notifications and access control with real ffmpeg clients and a
//! real HTTP hook server.

mod common;

use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

const OK: (u16, Option<String>, Duration) = (200, None, Duration::ZERO);

fn server_with(srv_body: &str, app_body: &str) -> Server {
    let port = free_port();
    let conf = format!(
        "rtmp {{\n server {{\n  listen 127.0.0.1:{port};\n  {srv_body}\n  application live {{\n   live on;\n   publish_notify on;\n   {app_body}\n  }}\n }}\n}}\n"
    );
    Server::with_config(&conf, port)
}

fn all_hooks(h: &HookServer, method: &str) -> (String, String) {
    (
        format!(
            "notify_method {method}; on_connect {}; on_disconnect {};",
            h.url("/on_connect"),
            h.url("/on_disconnect")
        ),
        format!(
            "on_publish {}; on_play {}; on_publish_done {}; on_play_done {}; on_done {};",
            h.url("/on_publish"),
            h.url("/on_play"),
            h.url("/on_publish_done"),
            h.url("/on_play_done"),
            h.url("/on_done")
        ),
    )
}

/// Every call, its exact field set in nginx-rtmp's order, and the values for
/// a publish with connection and stream args and a play.
#[test]
fn fields_for_publish_with_args_and_play() {
    let hooks = HookServer::start(|_| OK);
    let (srv, app) = all_hooks(&hooks, "get");
    let s = server_with(&srv, &app);
    let src = make_source(s.dir.path(), 3);
    let purl = format!(
        "rtmp://127.0.0.1:{}/live?arg1=v1&arg2=v2/mystream?k=secret",
        s.port
    );
    let out = s.path("ff.flv");
    let player = ffmpeg_play(&s.url("mystream"), &out, &[]);
    sleep(Duration::from_millis(1500));
    let p = wait_for(ffmpeg_publish_file(&src, &purl), Duration::from_secs(20));
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    wait_for(player, Duration::from_secs(15));
    sleep(Duration::from_millis(500));
    let reqs = hooks.requests();
    let by = |path: &str, name_has: &str| {
        reqs.iter()
            .find(|r| r.path == path && r.raw.contains(name_has))
            .unwrap_or_else(|| panic!("no {path} with {name_has}: {reqs:#?}"))
            .clone()
    };
    let session = [
        "app", "flashver", "swfurl", "tcurl", "pageurl", "addr", "clientid",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        session.iter().chain(extra).copied().collect()
    };

    let c = by("/on_connect", "arg1=v1");
    assert_eq!(
        c.keys(),
        [
            "app", "flashver", "swfurl", "tcurl", "pageurl", "addr", "epoch", "call", "arg1",
            "arg2"
        ]
    );
    assert_eq!(c.get("app"), Some("live"));
    assert_eq!(
        c.get("tcurl"),
        Some(format!("rtmp://127.0.0.1:{}/live?arg1=v1&arg2=v2", s.port).as_str())
    );
    assert!(c
        .get("flashver")
        .unwrap()
        .starts_with("FMLE/3.0 (compatible; Lavf"));
    assert!(
        c.get("flashver").unwrap().len() > 32,
        "not truncated at 32 bytes like nginx"
    );
    assert_eq!(
        (c.get("call"), c.get("arg1"), c.get("arg2")),
        (Some("connect"), Some("v1"), Some("v2"))
    );
    assert_eq!(c.get("addr"), Some("127.0.0.1"));

    let p = by("/on_publish", "mystream");
    assert_eq!(p.keys(), with(&["call", "name", "type", "k"]));
    assert_eq!(
        (p.get("name"), p.get("type"), p.get("k")),
        (Some("mystream"), Some("live"), Some("secret"))
    );
    let pub_id = p.get("clientid").unwrap().to_owned();

    let pd = by("/on_publish_done", "mystream");
    assert_eq!(
        pd.keys(),
        with(&["call", "name", "bytes_in", "bytes_out", "k"])
    );
    assert_eq!(pd.get("clientid"), Some(pub_id.as_str()));
    assert!(pd.get("bytes_in").unwrap().parse::<u64>().unwrap() > 10_000);
    let dones: Vec<_> = reqs.iter().filter(|r| r.path == "/on_done").collect();
    assert_eq!(
        dones.len(),
        2,
        "one done for the publisher, one for the player"
    );
    let d = dones
        .iter()
        .find(|r| r.get("clientid") == Some(&pub_id))
        .unwrap();
    assert_eq!(
        d.keys(),
        with(&["call", "name", "bytes_in", "bytes_out", "k"])
    );

    let pl = by("/on_play", "mystream");
    assert_eq!(
        pl.keys(),
        with(&["call", "name", "start", "duration", "reset"])
    );
    assert_eq!(
        pl.get("start"),
        Some("4294965296"),
        "ffmpeg's -2000 as unsigned"
    );
    let pld = by("/on_play_done", "mystream");
    assert_eq!(pld.keys(), with(&["call", "name", "bytes_in", "bytes_out"]));

    // the harness's readiness probe (a bare TCP connect) disconnects too,
    // with an empty app; the two clients disconnect from "live"
    let discs: Vec<_> = reqs.iter().filter(|r| r.path == "/on_disconnect").collect();
    assert_eq!(
        discs
            .iter()
            .filter(|r| r.get("app") == Some("live"))
            .count(),
        2,
        "{discs:#?}"
    );
    assert_eq!(discs.len(), 3);
    let dp = discs
        .iter()
        .find(|r| r.get("clientid") == Some(&pub_id))
        .unwrap();
    assert_eq!(
        dp.keys(),
        with(&["call", "app", "bytes_in", "bytes_out", "arg1", "arg2"])
    );
    assert_eq!(dp.get("call"), Some("disconnect"));
}

#[test]
fn post_is_the_default_get_when_configured() {
    let hooks = HookServer::start(|_| OK);
    let s = server_with("", &format!("on_publish {};", hooks.url("/p")));
    let src = make_source(s.dir.path(), 1);
    let out = wait_for(
        ffmpeg_publish_file(&src, &s.url("a")),
        Duration::from_secs(15),
    );
    assert!(out.status.success());
    let r = hooks.wait_for("/p", Duration::from_secs(2));
    assert_eq!(r.method, "POST");
    assert_eq!(r.content_type, "application/x-www-form-urlencoded");
    assert_eq!(r.get("name"), Some("a"));

    let hooks = HookServer::start(|_| OK);
    let s = server_with(
        "notify_method get;",
        &format!("on_publish {};", hooks.url("/p")),
    );
    let out = wait_for(
        ffmpeg_publish_file(&src, &s.url("b")),
        Duration::from_secs(15),
    );
    assert!(out.status.success());
    let r = hooks.wait_for("/p", Duration::from_secs(2));
    assert_eq!(r.method, "GET");
    assert_eq!(r.get("name"), Some("b"));
}

#[test]
fn forbidden_publish_fails_fast_and_forbidden_connect_refuses() {
    let hooks = HookServer::start(|r| {
        if r.get("name") == Some("bad") || r.get("arg") == Some("deny") {
            (403, None, Duration::ZERO)
        } else {
            OK
        }
    });
    let s = server_with(
        &format!("on_connect {};", hooks.url("/c")),
        &format!("on_publish {};", hooks.url("/p")),
    );
    let src = make_source(s.dir.path(), 5);
    let t = Instant::now();
    let out = wait_for(
        ffmpeg_publish_file(&src, &s.url("bad")),
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "ffmpeg fails quickly: {:?}",
        t.elapsed()
    );
    assert!(
        s.log().contains("on_publish rejected: HTTP 403"),
        "{}",
        s.log()
    );

    let t = Instant::now();
    let url = format!("rtmp://127.0.0.1:{}/live?arg=deny/x", s.port);
    let out = wait_for(ffmpeg_publish_file(&src, &url), Duration::from_secs(10));
    assert!(!out.status.success());
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(
        s.log().contains("on_connect rejected: HTTP 403"),
        "{}",
        s.log()
    );
}

#[test]
fn redirect_renames_the_published_stream() {
    let hooks = HookServer::start(|r| {
        if r.get("name") == Some("orig") {
            (302, Some("renamed".into()), Duration::ZERO)
        } else {
            OK
        }
    });
    let s = server_with("", &format!("on_publish {};", hooks.url("/p")));
    let src = make_source(s.dir.path(), 4);
    let out = s.path("renamed.flv");
    let player = sluice(&[
        "play",
        &s.url("renamed"),
        "-o",
        out.to_str().unwrap(),
        "--until-unpublish",
    ]);
    sleep(Duration::from_millis(1000));
    let p = wait_for(
        ffmpeg_publish_file(&src, &s.url("orig")),
        Duration::from_secs(20),
    );
    assert!(p.status.success());
    wait_for(player, Duration::from_secs(10));
    assert_eq!(
        counts(&out),
        counts(&src),
        "the player of 'renamed' got the stream"
    );
}

#[test]
fn hook_down_or_too_slow_rejects() {
    // nothing listens on this port
    let dead = format!("http://127.0.0.1:{}/p", free_port());
    let s = server_with("", &format!("on_publish {dead};"));
    let src = make_source(s.dir.path(), 3);
    let out = wait_for(
        ffmpeg_publish_file(&src, &s.url("x")),
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    assert!(s.log().contains("unreachable"), "{}", s.log());

    let slow = HookServer::start(|_| (200, None, Duration::from_secs(4)));
    let s = server_with(
        "",
        &format!("netcall_timeout 1s; on_publish {};", slow.url("/p")),
    );
    let t = Instant::now();
    let out = wait_for(
        ffmpeg_publish_file(&src, &s.url("y")),
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "rejected at netcall_timeout"
    );
    assert!(s.log().contains("timeout after 1s"), "{}", s.log());
}

#[test]
fn garbage_connection_still_fires_on_disconnect() {
    use std::io::Write;
    let hooks = HookServer::start(|_| OK);
    let s = server_with(&format!("on_disconnect {};", hooks.url("/d")), "");
    let mut c = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    drop(c);
    let r = hooks.wait_for("/d", Duration::from_secs(5));
    assert_eq!(r.get("call"), Some("disconnect"));
    assert_eq!(r.get("app"), Some(""));
    assert_eq!(r.get("addr"), Some("127.0.0.1"));
}

#[test]
fn allow_deny_in_order() {
    let s = server_with("", "deny publish all; allow publish 127.0.0.1;");
    let src = make_source(s.dir.path(), 2);
    let out = wait_for(
        ffmpeg_publish_file(&src, &s.url("x")),
        Duration::from_secs(10),
    );
    assert!(
        !out.status.success(),
        "the first matching rule (deny all) wins"
    );
    assert!(s.log().contains("publish denied by access rules"));

    let s = server_with(
        "",
        "allow publish 127.0.0.1; deny publish all; deny play all;",
    );
    let out = wait_for(
        ffmpeg_publish_file(&src, &s.url("y")),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "allowed by the first rule");
    let p = wait_for(
        sluice(&["play", &s.url("y"), "-o", "-", "--duration", "1"]),
        Duration::from_secs(10),
    );
    assert!(!p.status.success(), "play denied");
}

#[test]
fn on_update_repeats_and_a_non_2xx_answer_ends_the_session() {
    let hooks = HookServer::start(|r| {
        if r.get("name") == Some("cut") {
            (403, None, Duration::ZERO)
        } else {
            OK
        }
    });
    let s = server_with(
        "",
        &format!("notify_update_timeout 1s; on_update {};", hooks.url("/u")),
    );
    let src = make_source(s.dir.path(), 4);
    let out = wait_for(
        ffmpeg_publish_file(&src, &s.url("keep")),
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "2xx updates keep the session");
    let ups: Vec<_> = hooks
        .requests()
        .into_iter()
        .filter(|r| r.path == "/u")
        .collect();
    assert!(ups.len() >= 2, "{ups:#?}");
    assert_eq!(
        ups[0].keys(),
        [
            "app",
            "flashver",
            "swfurl",
            "tcurl",
            "pageurl",
            "addr",
            "clientid",
            "call",
            "time",
            "timestamp",
            "name"
        ]
    );
    assert_eq!(ups[0].get("call"), Some("update_publish"));
    assert!(ups[1].get("timestamp").unwrap().parse::<u32>().unwrap() > 1000);

    let t = Instant::now();
    let out = wait_for(
        ffmpeg_publish_file(&src, &s.url("cut")),
        Duration::from_secs(20),
    );
    assert!(!out.status.success(), "403 on update drops the publisher");
    assert!(t.elapsed() < Duration::from_secs(4));
    assert!(s.log().contains("on_update rejected: HTTP 403"));
}

#[test]
fn client_leaving_while_its_hook_is_pending_gets_each_notification_once() {
    let hooks = HookServer::start(|r| {
        if r.path == "/p" {
            (200, None, Duration::from_secs(3))
        } else {
            OK
        }
    });
    let s = server_with(
        &format!("on_disconnect {};", hooks.url("/d")),
        &format!(
            "on_publish {}; on_done {};",
            hooks.url("/p"),
            hooks.url("/done")
        ),
    );
    let src = make_source(s.dir.path(), 5);
    let mut publ = ffmpeg_publish_file(&src, &s.url("gone"));
    hooks.wait_for("/p", Duration::from_secs(5));
    let _ = publ.kill();
    let _ = publ.wait();
    // let the slow hook answer after the client is gone
    sleep(Duration::from_millis(3500));
    let reqs = hooks.requests();
    let n = |path: &str| {
        reqs.iter()
            .filter(|r| r.path == path && r.get("app") == Some("live"))
            .count()
    };
    assert_eq!(n("/d"), 1, "{reqs:#?}");
    assert_eq!(n("/done"), 1, "{reqs:#?}");
    assert!(
        s.log().contains("role=\"none\""),
        "never became a publisher"
    );
}

#[test]
fn redirect_on_connect_changes_the_application() {
    let hooks = HookServer::start(|r| {
        if r.get("app") == Some("old") {
            (302, Some("live".into()), Duration::ZERO)
        } else {
            OK
        }
    });
    let s = server_with(&format!("on_connect {};", hooks.url("/c")), "");
    let src = make_source(s.dir.path(), 2);
    let out = s.path("p.flv");
    let player = sluice(&[
        "play",
        &s.url("moved"),
        "-o",
        out.to_str().unwrap(),
        "--until-unpublish",
    ]);
    sleep(Duration::from_millis(1000));
    let url = format!("rtmp://127.0.0.1:{}/old/moved", s.port);
    let p = wait_for(ffmpeg_publish_file(&src, &url), Duration::from_secs(15));
    assert!(
        p.status.success(),
        "app 'old' does not exist; the redirect made it 'live'"
    );
    wait_for(player, Duration::from_secs(10));
    assert_eq!(counts(&out), counts(&src));
}

/// `notify_send_redirect on` (sergey-dryabzhinsky fork): on_connect's 3xx
/// to an rtmp:// URL reaches the client as FMS's connect redirect
/// (`ex.redirect`), then `close`; rtmpdump shows both.
#[test]
fn notify_send_redirect_tells_the_client_where_to_connect() {
    let hooks = HookServer::start(|_| (302, Some("rtmp://10.9.8.7/live".into()), Duration::ZERO));
    let port = free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; notify_send_redirect on; on_connect {};
  application live {{ live on; }} }} }}",
        hooks.url("/connect")
    );
    let server = Server::with_config(&conf, port);
    let out = std::process::Command::new("rtmpdump")
        .args([
            "-V",
            "-m",
            "5",
            "-r",
            &format!("rtmp://127.0.0.1:{port}/live/x"),
        ])
        .args(["-o", "/dev/null"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rtmp://10.9.8.7/live"), "{err}");
    assert!(err.contains("Connect here"), "{err}");
    assert!(err.contains("server invoking <close>"), "{err}");
    assert!(server.wait_log("on_connect redirects the client"));
}
