//! 200 concurrent players of one stream, in-process with Sluice's own
//! client: every player receives every frame.

mod common;

use std::io::Cursor;
use std::time::{Duration, Instant};

use sluice::client::{play, publish};
use sluice::live::StreamKey;

const PLAYERS: usize = 200;
const VIDEO_FRAMES: u64 = 100; // 4 s at 25 fps
const AUDIO_FRAMES: u64 = 172; // 4 s of 1024-sample AAC at 44.1 kHz

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_players_receive_every_frame() {
    let (addr, shared) = common::in_process().await;
    let url = format!("rtmp://{addr}/live/fan");

    let players = tokio::spawn({
        let url = url.clone();
        async move { play::play_many(&url, PLAYERS, Duration::from_secs(60), true).await }
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
        Cursor::new(common::synthetic_flv(
            VIDEO_FRAMES as u32,
            AUDIO_FRAMES as u32,
        )),
        std::slice::from_ref(&url),
        true,
    )
    .await
    .unwrap();
    assert_eq!(stats.frames, VIDEO_FRAMES + AUDIO_FRAMES + 2);

    let results = players.await.unwrap();
    assert_eq!(results.len(), PLAYERS);
    for s in results {
        let s = s.expect("player failed");
        assert_eq!(s.video_frames, VIDEO_FRAMES);
        assert_eq!(s.keyframes, 4);
        assert_eq!(s.audio_frames, AUDIO_FRAMES);
        assert_eq!(s.started_on_key, Some(true));
    }
}
