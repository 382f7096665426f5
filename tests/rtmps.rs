//! RTMPS: `listen ... ssl` with a self-signed certificate made by openssl.
//! ffmpeg publishes over rtmps:// and plays back over rtmps:// and plain
//! rtmp://; bad input on the TLS port (garbage, a plain RTMP handshake,
//! silence, a ClientHello and then silence) is closed within `timeout`
//! while the TLS stream beside it goes on.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::raw::Raw;
use common::tls::{ca_and_leaf, certificate};
use common::*;

/// A TLS 1.2 ClientHello (ECDHE-RSA/ECDSA AES-GCM, x25519): the server
/// answers it and then waits for a key exchange that never comes.
fn client_hello() -> Vec<u8> {
    let mut ext = Vec::new();
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x1d]);
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    ext.extend_from_slice(&[0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x08, 0x04, 0x04, 0x03]);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2f, 0xc0, 0x2b, 0x01, 0x00]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// ffmpeg playing `url` into `out` until the stream has been gone 3 s.
fn ffmpeg_player(url: &str, out: &Path) -> Child {
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-rw_timeout",
            "3000000",
        ])
        .args(["-i", url, "-c", "copy", "-f", "flv"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn ffmpeg_publishes_and_plays_over_rtmps_beside_bad_tls_input() {
    let work = tempfile::tempdir().unwrap();
    certificate(work.path());
    let (port, tls_port) = (free_port(), free_port());
    let d = work.path().display();
    let conf = format!(
        "rtmp {{ server {{
            listen 127.0.0.1:{port};
            listen 127.0.0.1:{tls_port} ssl;
            ssl_certificate {d}/cert.pem;
            ssl_certificate_key {d}/key.pem;
            ssl_protocols TLSv1.2 TLSv1.3;
            timeout 3s;
            application live {{ live on; }}
        }} }}"
    );
    let srv = Server::with_config(&conf, port);
    let src = make_source(work.path(), 8);
    let want = counts(&src);

    let secure = |n: &str| format!("rtmps://127.0.0.1:{tls_port}/live/{n}");
    let plain = |n: &str| format!("rtmp://127.0.0.1:{port}/live/{n}");
    let tls_out = work.path().join("tls.flv");
    let plain_out = work.path().join("plain.flv");
    let tls_player = ffmpeg_player(&secure("cam"), &tls_out);
    let plain_player = ffmpeg_player(&plain("cam"), &plain_out);
    std::thread::sleep(Duration::from_millis(1500));
    let publisher = ffmpeg_publish_file(&src, &secure("cam"));

    // Bad input on the TLS port while the TLS stream goes on.
    std::thread::sleep(Duration::from_millis(1000));
    let t = Instant::now();
    let mut garbage = Raw::tcp(tls_port);
    garbage.send(b"GET / HTTP/1.0\r\n\r\nthis is not TLS at all");
    let mut plain_hs = Raw::tcp(tls_port);
    let mut c0c1 = vec![0u8; 1537];
    c0c1[0] = 3;
    plain_hs.send(&c0c1);
    let mut silent = Raw::tcp(tls_port);
    let mut hello = Raw::tcp(tls_port);
    hello.send(&client_hello());
    assert!(
        garbage.closed_within(Duration::from_secs(2)),
        "garbage left open"
    );
    assert!(
        plain_hs.closed_within(Duration::from_secs(2)),
        "plain RTMP left open"
    );
    // The ClientHello was answered (a ServerHello record), then the
    // handshake stalls until `timeout`.
    assert!(
        hello.saw(&[0x16, 0x03, 0x03], Duration::from_secs(2)),
        "no ServerHello"
    );
    assert!(
        hello.closed_within(Duration::from_secs(5)),
        "stalled ClientHello left open"
    );
    assert!(
        silent.closed_within(Duration::from_secs(5)),
        "silent client left open"
    );
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(2500),
        "closed before timeout: {waited:?}"
    );
    assert!(waited < Duration::from_secs(7), "{waited:?}");

    let o = wait_for(publisher, Duration::from_secs(30));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (name, p, out) in [
        ("rtmps", tls_player, &tls_out),
        ("rtmp", plain_player, &plain_out),
    ] {
        let o = wait_for(p, Duration::from_secs(20));
        let _ = o;
        assert_eq!(counts(out), want, "{name} player frame counts");
        assert_eq!(decode_errors(out), "", "{name} player decode errors");
    }
    let log = srv.log();
    assert!(log.contains("TLS handshake failed"), "{log}");
    assert!(log.contains("no TLS handshake within"), "{log}");
}

#[test]
fn a_listen_ssl_without_a_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.conf");
    std::fs::write(
        &path,
        "rtmp {\n server {\n  listen 1935 ssl;\n  application live { live on; }\n }\n}\n",
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no \"ssl_certificate\""), "{err}");
    // A certificate file that is not one: the server refuses to start.
    std::fs::write(dir.path().join("c.pem"), "not a certificate").unwrap();
    let port = free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {d}/c.pem; ssl_certificate_key {d}/c.pem; application live {{ live on; }} }} }}",
        d = dir.path().display()
    );
    std::fs::write(&path, conf).unwrap();
    let o = Command::new(BIN)
        .args(["serve", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ssl_certificate"), "{err}");
}

/// The SHA-256 fingerprint of the certificate a TLS server presents.
fn presented(port: u16) -> String {
    let s = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null 2>/dev/null \
             | openssl x509 -noout -fingerprint -sha256"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&s.stdout).trim().to_owned()
}

fn fingerprint(pem: &Path) -> String {
    let s = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem)
        .output()
        .unwrap();
    String::from_utf8_lossy(&s.stdout).trim().to_owned()
}

#[test]
fn a_reload_rereads_the_certificate_and_open_sessions_keep_theirs() {
    let work = tempfile::tempdir().unwrap();
    certificate(work.path());
    let first = fingerprint(&work.path().join("cert.pem"));
    let (port, tls_port) = (free_port(), free_port());
    let d = work.path().display();
    let conf = format!(
        "rtmp {{ server {{
            listen 127.0.0.1:{port};
            listen 127.0.0.1:{tls_port} ssl;
            ssl_certificate {d}/cert.pem;
            ssl_certificate_key {d}/key.pem;
            application live {{ live on; }}
        }} }}"
    );
    let srv = Server::with_config(&conf, port);
    assert_eq!(presented(tls_port), first);
    // A TLS publisher that stays connected across the reload.
    let src = make_source(work.path(), 6);
    let want = counts(&src);
    let out = work.path().join("out.flv");
    let player = ffmpeg_player(&format!("rtmp://127.0.0.1:{port}/live/cam"), &out);
    std::thread::sleep(Duration::from_millis(800));
    let publisher = ffmpeg_publish_file(&src, &format!("rtmps://127.0.0.1:{tls_port}/live/cam"));
    std::thread::sleep(Duration::from_millis(1500));
    // A new certificate and key in the same files, then SIGHUP.
    let fresh = work.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    certificate(&fresh);
    std::fs::copy(fresh.join("cert.pem"), work.path().join("cert.pem")).unwrap();
    std::fs::copy(fresh.join("key.pem"), work.path().join("key.pem")).unwrap();
    let second = fingerprint(&work.path().join("cert.pem"));
    assert_ne!(first, second);
    Command::new("kill")
        .args(["-HUP", &srv.pid().to_string()])
        .status()
        .unwrap();
    assert!(until(Duration::from_secs(10), || presented(tls_port) == second));
    let o = wait_for(publisher, Duration::from_secs(30));
    assert!(
        o.status.success(),
        "the TLS publisher broke: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = wait_for(player, Duration::from_secs(20));
    assert_eq!(counts(&out), want);
}

/// Pushes to an rtmps:// Sluice, trusted through
/// `rtmp_relay_ssl_trusted_certificate`, and Sluice's own client over
/// rtmps:// with `--ca`; without the CA, the push is refused with the
/// certificate problem in the log.
#[test]
fn pushes_and_sluice_clients_go_over_rtmps_when_trusted() {
    let work = tempfile::tempdir().unwrap();
    ca_and_leaf(work.path());
    let d = work.path().display();
    // B: the TLS target.
    let (b_port, b_tls) = (free_port(), free_port());
    let b = Server::with_config(
        &format!(
            "rtmp {{ server {{ listen 127.0.0.1:{b_port}; listen 127.0.0.1:{b_tls} ssl;
               ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;
               application live {{ live on; }} }} }}"
        ),
        b_port,
    );
    // A: pushes there, trusted or not.
    let a_port = free_port();
    let a = Server::with_config(
        &format!(
            "rtmp {{ server {{ listen 127.0.0.1:{a_port};
               application live {{ live on; push rtmps://localhost:{b_tls}/live;
                   rtmp_relay_ssl_trusted_certificate {d}/ca.pem; }}
               application untrusted {{ live on; push rtmps://127.0.0.1:{b_tls}/live/bad; }}
             }} }}"
        ),
        a_port,
    );
    let src = make_source(work.path(), 6);
    let want = counts(&src);
    let out = work.path().join("pushed.flv");
    let player = ffmpeg_player(&format!("rtmp://127.0.0.1:{b_port}/live/cam"), &out);
    std::thread::sleep(Duration::from_millis(1000));
    let publisher = ffmpeg_publish_file(&src, &format!("rtmp://127.0.0.1:{a_port}/live/cam"));
    let bad = ffmpeg_publish_file(&src, &format!("rtmp://127.0.0.1:{a_port}/untrusted/cam"));
    assert!(wait_for(publisher, Duration::from_secs(30))
        .status
        .success());
    let _ = wait_for(bad, Duration::from_secs(30));
    let _ = wait_for(player, Duration::from_secs(20));
    assert_eq!(counts(&out), want, "frames pushed over rtmps");
    assert_eq!(decode_errors(&out), "");
    let log = a.log();
    assert!(log.contains("invalid peer certificate"), "{log}");
    assert!(
        !b.log().contains("name=\"bad\""),
        "the untrusted push was not refused"
    );

    // sluice publish and play over rtmps:// with --ca.
    let ca = work.path().join("ca.pem");
    let ca = ca.to_str().unwrap();
    let url = format!("rtmps://localhost:{b_tls}/live/cli");
    let played = work.path().join("cli.flv");
    let play = Command::new(BIN)
        .args([
            "play",
            &url,
            "-o",
            played.to_str().unwrap(),
            "--until-unpublish",
            "--ca",
            ca,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let o = Command::new(BIN)
        .args(["publish", src.to_str().unwrap(), &url, "--ca", ca])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = wait_for(play, Duration::from_secs(20));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(counts(&played), want, "sluice play over rtmps");
    // Without the CA the client refuses the server.
    let o = Command::new(BIN)
        .args(["play", &url, "-o", "/dev/null", "--duration", "2"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("certificate"),
        "{o:?}"
    );
}

/// A TCP forwarder that puts a PROXY v1 header naming `client` in front of
/// each connection, as a load balancer does; returns its port.
fn proxy_front(to: u16, client: &'static str) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { return };
            let Ok(mut up) = std::net::TcpStream::connect(("127.0.0.1", to)) else {
                return;
            };
            use std::io::Write;
            let header = format!("PROXY TCP4 {client} 127.0.0.1 40000 {to}\r\n");
            up.write_all(header.as_bytes()).unwrap();
            let (mut a, mut b) = (c.try_clone().unwrap(), up.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut a, &mut b);
                let _ = b.shutdown(std::net::Shutdown::Write);
            });
            let (mut a, mut b) = (up, c);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut a, &mut b);
                let _ = b.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

/// nginx's stunnel-style `stream {}` TLS front, unchanged, is served as
/// RTMPS directly: ffmpeg publishes through it and plays through a second
/// one that takes a PROXY header before the TLS, whose client address
/// Sluice then reports.
#[test]
fn a_stream_tls_front_is_served_as_rtmps() {
    let work = tempfile::tempdir().unwrap();
    certificate(work.path());
    let (port, front, pfront) = (free_port(), free_port(), free_port());
    let d = work.path().display();
    let conf = format!(
        "stream {{
            upstream rtmp_backend {{ server 127.0.0.1:{port}; }}
            server {{
                listen 127.0.0.1:{front} ssl;
                proxy_pass rtmp_backend;
                ssl_certificate {d}/cert.pem;
                ssl_certificate_key {d}/key.pem;
                ssl_session_cache shared:SSL:10m;
            }}
            server {{
                listen 127.0.0.1:{pfront} ssl proxy_protocol;
                proxy_pass 127.0.0.1:{port};
                ssl_certificate {d}/cert.pem;
                ssl_certificate_key {d}/key.pem;
            }}
        }}
        rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}"
    );
    let srv = Server::with_config(&conf, port);
    let src = make_source(work.path(), 6);
    let want = counts(&src);
    let lb = proxy_front(pfront, "203.0.113.9");
    let out = work.path().join("out.flv");
    let player = ffmpeg_player(&format!("rtmps://127.0.0.1:{lb}/live/cam"), &out);
    std::thread::sleep(Duration::from_millis(1500));
    let publisher = ffmpeg_publish_file(&src, &format!("rtmps://127.0.0.1:{front}/live/cam"));
    let o = wait_for(publisher, Duration::from_secs(30));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = wait_for(player, Duration::from_secs(20));
    assert_eq!(counts(&out), want, "player through the PROXY+TLS front");
    assert_eq!(decode_errors(&out), "");
    let log = srv.log();
    assert!(log.contains("addr=203.0.113.9:40000"), "{log}");
    assert!(!log.contains("outside rtmp"), "{log}");
}

/// Sessions resume: by session id over TLS 1.2 and by ticket over TLS 1.3
/// (openssl s_client reports "Reused").
#[test]
fn tls_sessions_resume() {
    let work = tempfile::tempdir().unwrap();
    certificate(work.path());
    let (port, tls_port) = (free_port(), free_port());
    let d = work.path().display();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; listen 127.0.0.1:{tls_port} ssl;
            ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;
            application live {{ live on; }} }} }}"
    );
    let _srv = Server::with_config(&conf, port);
    // s_client reads for a second before its stdin ends, so a TLS 1.3
    // ticket (sent after the handshake) is received.
    let client = |args: &str| {
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "sleep 1 | timeout 10 openssl s_client -connect 127.0.0.1:{tls_port} {args} 2>/dev/null"
            ))
            .current_dir(work.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("New,") || l.starts_with("Reused,"))
            .map(|l| l.split(',').next().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    let v12 = client("-tls1_2 -reconnect");
    assert_eq!(v12.first().map(String::as_str), Some("New"), "{v12:?}");
    assert!(
        v12.len() >= 2 && v12[1..].iter().all(|l| l == "Reused"),
        "TLS 1.2: {v12:?}"
    );
    assert_eq!(client("-tls1_3 -sess_out s.pem"), ["New"]);
    assert_eq!(
        client("-tls1_3 -sess_in s.pem"),
        ["Reused"],
        "TLS 1.3 ticket"
    );
}
