//! Go Away: zero-loss graceful drain and the signal rules.

mod common;

use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;
use sluice::client::conn::{status_code, ClientConn};
use sluice::client::RtmpUrl;
use sluice::config::Config;
use sluice::rtmp::{Amf, Message};
use sluice::server::Server as InProcess;

/// Server A drains mid-stream; `sluice publish` moves to B at a keyframe.
/// What the players on A and B recorded together is exactly the source.
#[test]
fn zero_loss_move_between_servers() {
    move_between_servers(false);
}

/// The same over rtmps:// on both servers, publisher and players alike,
/// trusting the test CA.
#[test]
fn zero_loss_move_between_rtmps_servers() {
    move_between_servers(true);
}

fn move_between_servers(tls: bool) {
    let certs = tempfile::tempdir().unwrap();
    common::tls::ca_and_leaf(certs.path());
    let d = certs.path().display();
    let ca = certs.path().join("ca.pem");
    let ca = ca.to_str().unwrap();
    let (port, tport) = (free_port(), free_port());
    let conf = format!(
        "rtmp {{ drain_timeout 10s; server {{ listen 127.0.0.1:{port}; listen 127.0.0.1:{tport} ssl;\n\
         ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;\n\
         application live {{ live on; }} }} }}"
    );
    let mut a = Server::with_config(&conf, port);
    let (bport, btport) = (free_port(), free_port());
    let b = Server::with_config(
        &conf
            .replace(&format!(":{port};"), &format!(":{bport};"))
            .replace(&format!(":{tport} "), &format!(":{btport} ")),
        bport,
    );
    let url = |plain: u16, secure: u16| {
        if tls {
            format!("rtmps://localhost:{secure}/live/m")
        } else {
            format!("rtmp://127.0.0.1:{plain}/live/m")
        }
    };
    let (ua, ub) = (url(port, tport), url(bport, btport));
    let src = make_source(a.dir.path(), 20);
    let (fa, fb) = (a.path("a.flv"), b.path("b.flv"));
    let pa = sluice(&[
        "play",
        &ua,
        "-o",
        fa.to_str().unwrap(),
        "--until-unpublish",
        "--ca",
        ca,
    ]);
    let pb = sluice(&[
        "play",
        &ub,
        "-o",
        fb.to_str().unwrap(),
        "--until-unpublish",
        "--ca",
        ca,
    ]);
    sleep(Duration::from_millis(1000));
    let publ = sluice(&["publish", src.to_str().unwrap(), &ua, &ub, "--ca", ca]);
    // mid-GOP (1 s GOP): the publisher must keep feeding A until the keyframe
    sleep(Duration::from_millis(6500));
    let t = Instant::now();
    a.terminate();
    let st = a.wait_exit(Duration::from_secs(15));
    let drain_took = t.elapsed();
    assert!(st.success(), "A exits 0 after its drain");
    assert!(
        drain_took < Duration::from_secs(10),
        "A exited within drain_timeout ({drain_took:?})"
    );
    assert!(
        b.log().contains("publish"),
        "the publisher reached B before A exited"
    );
    assert!(a.log().contains("go away sent"), "{}", a.log());

    let out = wait_for(publ, Duration::from_secs(30));
    let report = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{report}");
    assert!(report.contains("moves 1, frames lost 0"), "{report}");
    wait_for(pa, Duration::from_secs(10));
    wait_for(pb, Duration::from_secs(15));

    let source = coded_frames(&src);
    let on_a = coded_frames(&fa);
    let on_b = coded_frames(&fb);
    assert!(
        !on_a.is_empty() && !on_b.is_empty(),
        "both servers carried part of the stream"
    );
    assert_eq!(
        on_a.len() + on_b.len(),
        source.len(),
        "no frame lost or duplicated"
    );
    let joined: Vec<_> = on_a.iter().chain(on_b.iter()).cloned().collect();
    assert!(
        joined == source,
        "A's frames then B's frames are the source, payload for payload"
    );
    let first_b_video = &on_b.iter().find(|f| f.0 == 9).unwrap().1;
    assert!(
        sluice::flv::video_info(first_b_video).unwrap().keyframe,
        "B starts on a keyframe"
    );
    eprintln!(
        "tls {tls}: source {} frames: {} on A, {} on B; drain took {drain_took:?}",
        source.len(),
        on_a.len(),
        on_b.len()
    );
}

async fn client(url: &RtmpUrl, caps: Vec<(String, Amf)>) -> ClientConn {
    ClientConn::connect(url, caps).await.unwrap()
}

/// Reads messages for `d`, returning (got type 32, got ReconnectRequest).
async fn signals(c: &mut ClientConn, d: Duration) -> (bool, bool) {
    let mut got = (false, false);
    let _ = tokio::time::timeout(d, async {
        while let Ok(Some(m)) = c.next_message().await {
            if m == Message::GoAway {
                got.0 = true;
            }
            if status_code(&m).as_deref() == Some("NetConnection.Connect.ReconnectRequest") {
                got.1 = true;
            }
        }
    })
    .await;
    got
}

/// Type 32 reaches supportsGoAway clients and never legacy ones;
/// ReconnectRequest reaches capsEx-only clients; new connections are
/// refused during the drain; legacy clients are served until
/// drain_timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_gets_which_signal_and_refusal_during_drain() {
    let conf =
        "rtmp { drain_timeout 3s; server { listen 127.0.0.1:0; application live { live on; } } }";
    let server = InProcess::bind(Config::parse(conf, "t").unwrap(), sluice::modules::all())
        .await
        .unwrap();
    let addr = server.local_addrs()[0];
    let shared = server.shared();
    let done = tokio::spawn(server.run(std::future::pending()));
    let url = RtmpUrl::parse(&format!("rtmp://{addr}/live/s")).unwrap();

    let mut goaway = client(&url, vec![("supportsGoAway".into(), Amf::Boolean(true))]).await;
    let mut both = client(
        &url,
        vec![
            ("supportsGoAway".into(), Amf::Number(1.0)),
            ("capsEx".into(), Amf::Number(1.0)),
        ],
    )
    .await;
    let mut caps = client(&url, vec![("capsEx".into(), Amf::Number(1.0))]).await;
    let mut legacy = client(&url, vec![]).await;

    let t = Instant::now();
    shared.drain.request();
    let (g, b, c, l) = tokio::join!(
        signals(&mut goaway, Duration::from_millis(800)),
        signals(&mut both, Duration::from_millis(800)),
        signals(&mut caps, Duration::from_millis(800)),
        signals(&mut legacy, Duration::from_millis(800)),
    );
    assert_eq!(g, (true, false), "supportsGoAway: type 32");
    assert_eq!(b, (true, false), "both declared: one signal, type 32");
    assert_eq!(c, (false, true), "capsEx only: ReconnectRequest");
    assert_eq!(l, (false, false), "legacy: nothing");

    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "new connections are refused during the drain"
    );
    // The legacy client is still served, then closed at drain_timeout.
    let closed = tokio::time::timeout(Duration::from_secs(6), async {
        loop {
            match legacy.next_message().await {
                Ok(Some(_)) => {}
                _ => return t.elapsed(),
            }
        }
    })
    .await
    .expect("closed by the drain");
    assert!(
        closed >= Duration::from_millis(2900),
        "served until drain_timeout: {closed:?}"
    );
    done.await.unwrap().unwrap();
    assert_eq!(shared.drain.signalled(), 3);
}

/// A targeted Go Away to a publisher that follows it back to the same
/// server: the new connection takes the stream over, the player stays
/// attached and sees every frame once, in order, with monotonic timestamps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_server_takeover_keeps_the_player_attached_without_gap() {
    use sluice::server::drain::Target;
    let conf = "rtmp { server { listen 127.0.0.1:0; application live { live on; } } }";
    let server = InProcess::bind(Config::parse(conf, "t").unwrap(), sluice::modules::all())
        .await
        .unwrap();
    let addr = server.local_addrs()[0];
    let shared = server.shared();
    tokio::spawn(server.run(std::future::pending()));
    let url = format!("rtmp://{addr}/live/t");
    let u = RtmpUrl::parse(&url).unwrap();

    let mut player = client(&u, vec![]).await;
    player.play(&u.stream).await.unwrap();
    let publisher = tokio::spawn({
        let url = url.clone();
        async move {
            let flv = common::synthetic_flv(100, 0);
            sluice::client::publish::publish(std::io::Cursor::new(flv), &[url], true).await
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let n = shared.drain.target(Target::Publisher {
        server: 0,
        app: "live".into(),
        name: "t".into(),
    });
    assert!(n > 0);

    let mut seen = Vec::new();
    let mut last_ts = 0;
    let mut sequence_headers = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), player.next_message()).await {
            Ok(Ok(Some(Message::Video {
                payload, timestamp, ..
            }))) => {
                if payload[1] == 0 {
                    sequence_headers += 1;
                    continue;
                }
                assert!(timestamp >= last_ts, "timestamps never go back");
                last_ts = timestamp;
                seen.push(u32::from_be_bytes(payload[5..9].try_into().unwrap()));
            }
            Ok(Ok(Some(Message::UserControl(sluice::rtmp::UserControl::StreamEof(_))))) => break,
            Ok(Ok(Some(_))) => {}
            other => panic!("player lost: {other:?}"),
        }
    }
    let stats = publisher.await.unwrap().unwrap();
    assert_eq!((stats.moves, stats.lost), (1, 0));
    assert_eq!(
        seen,
        (0..100).collect::<Vec<u32>>(),
        "every frame once, in order"
    );
    assert_eq!(
        sequence_headers, 1,
        "the unchanged sequence header is not sent again"
    );
}

/// A legacy ffmpeg publisher (no supportsGoAway) keeps streaming through
/// the drain until drain_timeout, then is closed; the server exits 0.
#[test]
fn legacy_ffmpeg_publisher_is_served_until_drain_timeout() {
    let port = free_port();
    let conf = format!(
        "rtmp {{ drain_timeout 3s; server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}"
    );
    let mut srv = Server::with_config(&conf, port);
    let src = make_source(srv.dir.path(), 15);
    let mut publ = ffmpeg_publish_file(&src, &srv.url("legacy"));
    sleep(Duration::from_millis(1500));
    let t = Instant::now();
    srv.terminate();
    sleep(Duration::from_millis(2000));
    assert!(
        publ.try_wait().unwrap().is_none(),
        "still streaming during the drain"
    );
    let st = srv.wait_exit(Duration::from_secs(10));
    let took = t.elapsed();
    assert!(st.success());
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    let log = srv.log();
    assert!(log.contains("reason=\"drain timeout\""), "{log}");
    assert!(log.contains("forced=1"), "{log}");
    assert!(
        !log.contains("go away sent"),
        "a legacy client gets no signal"
    );
    let out = wait_for(publ, Duration::from_secs(10));
    assert!(!out.status.success(), "ffmpeg saw the connection close");
}
