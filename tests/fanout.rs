//! 200 concurrent players of one stream, in-process with Sluice's own
//! client: every player receives every frame.

use std::io::Cursor;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sluice::client::{bench, publish};
use sluice::config::Config;
use sluice::flv;
use sluice::live::StreamKey;
use sluice::server::Server;

const PLAYERS: usize = 200;
const VIDEO_FRAMES: u64 = 100; // 4 s at 25 fps
const AUDIO_FRAMES: u64 = 172; // 4 s of 1024-sample AAC at 44.1 kHz

/// A synthetic FLV: AVC and AAC sequence headers, then 25 fps video with a
/// keyframe each second (6 KiB keyframes, 1.5 KiB others) and AAC audio.
/// Payloads need not decode; the server only reads their headers.
fn synthetic_flv() -> Vec<u8> {
    let mut out = BytesMut::new();
    out.extend_from_slice(&flv::file_header(true, true));
    flv::write_tag(
        flv::TAG_VIDEO,
        0,
        &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f],
        &mut out,
    );
    flv::write_tag(flv::TAG_AUDIO, 0, &[0xaf, 0, 0x12, 0x10], &mut out);
    let mut tags: Vec<(u32, u8, Vec<u8>)> = Vec::new();
    for i in 0..VIDEO_FRAMES {
        let key = i % 25 == 0;
        let mut body = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        body.resize(if key { 6144 } else { 1536 }, i as u8);
        tags.push(((i * 40) as u32, flv::TAG_VIDEO, body));
    }
    for i in 0..AUDIO_FRAMES {
        let mut body = vec![0xaf, 1];
        body.resize(200, i as u8);
        tags.push(((i * 1024 * 1000 / 44100) as u32, flv::TAG_AUDIO, body));
    }
    tags.sort_by_key(|t| t.0);
    for (ts, kind, body) in tags {
        flv::write_tag(kind, ts, &body, &mut out);
    }
    out.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_players_receive_every_frame() {
    let conf = "rtmp { server { listen 127.0.0.1:0; application live { live on; } } }";
    let server = Server::bind(Config::parse(conf, "test").unwrap())
        .await
        .unwrap();
    let addr = server.local_addrs()[0];
    let shared = server.shared();
    tokio::spawn(server.run(std::future::pending()));
    let url = format!("rtmp://{addr}/live/fan");

    let players = tokio::spawn({
        let url = url.clone();
        async move { bench::bench(&url, PLAYERS, Duration::from_secs(60), true).await }
    });
    // Wait until every player is subscribed before publishing.
    let key = StreamKey {
        server: 0,
        app: "live".into(),
        name: "fan".into(),
    };
    let t = Instant::now();
    while shared.registry.get(&key).map_or(0, |s| s.players()) < PLAYERS {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "players did not all join"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = publish::publish(
        Cursor::new(synthetic_flv()),
        std::slice::from_ref(&url),
        true,
    )
    .await
    .unwrap();
    assert_eq!(stats.frames, VIDEO_FRAMES + AUDIO_FRAMES + 2);

    let report = players.await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors.first());
    assert_eq!(report.connected, PLAYERS);
    for s in &report.per_player {
        assert_eq!(s.video_frames, VIDEO_FRAMES);
        assert_eq!(s.keyframes, 4);
        assert_eq!(s.audio_frames, AUDIO_FRAMES);
        assert_eq!(s.started_on_key, Some(true));
    }
}
