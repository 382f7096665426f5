//! The shared stats table follows real clients: ffmpeg publishing and
//! rtmpdump playing show up with their roles, names and byte counts.

mod common;

use std::time::Duration;

use common::*;
use sluice::stats::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_follow_a_publisher_and_a_player() {
    let (addr, shared) = common::in_process().await;
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), 4);
    let url = format!("rtmp://{addr}/live/cam");
    let publisher = ffmpeg_publish_file(&src, &url);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let out = dir.path().join("p.flv");
    let player = rtmpdump(&url, &out, &[]);
    tokio::time::sleep(Duration::from_millis(2200)).await;

    let conns = shared.stats.connections();
    let p = conns
        .iter()
        .find(|c| c.info.role == Role::Publisher)
        .expect("publisher listed");
    assert_eq!((p.info.app.as_str(), p.info.name.as_str()), ("live", "cam"));
    assert!(p.info.flashver.starts_with("FMLE"), "{:?}", p.info);
    assert!(
        p.counters.bytes_in > 10_000,
        "publisher bytes_in {}",
        p.counters.bytes_in
    );
    let v = conns
        .iter()
        .find(|c| c.info.role == Role::Player)
        .expect("player listed");
    assert_eq!(v.info.name, "cam");
    assert!(
        v.counters.bytes_out > 5_000,
        "player bytes_out {}",
        v.counters.bytes_out
    );
    assert!(v.uptime_ms >= 1000);

    interrupt(&player);
    let _ = wait_for(player, Duration::from_secs(10));
    let _ = wait_for(publisher, Duration::from_secs(15));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        shared.stats.connections().is_empty(),
        "closed connections leave"
    );
    let (bytes_in, bytes_out) = shared.stats.totals();
    assert!(bytes_in >= p.counters.bytes_in && bytes_out >= v.counters.bytes_out);
    assert_eq!(
        shared
            .stats
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}
