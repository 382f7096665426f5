//! Cluster mode on a real redis-server: play anywhere, rolling restart
//! with no frame lost, one publisher per name, and life without Redis.

mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        Self::start_on(free_port())
    }

    fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server)");
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(10), "redis did not start");
            sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `redis-cli GET key`.
    fn get(&self, key: &str) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "GET", key])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A cluster node on a free port, with `/stat` on a second free port
/// (`stat_port` reads it back from the config file).
fn node(redis: &Redis, id: &str) -> Server {
    let port = free_port();
    let http = free_port();
    let conf = format!(
        "rtmp {{ drain_timeout 10s;\n\
         cluster {{ registry redis://127.0.0.1:{}/0; advertise rtmp://127.0.0.1:{port}; node_id {id}; lease 3s; }}\n\
         server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n\
         http {{ server {{ listen 127.0.0.1:{http}; location /stat {{ rtmp_stat all; }} location /metrics {{ rtmp_metrics on; }} }} }}",
        redis.port
    );
    Server::with_config(&conf, port)
}

fn stat_port(s: &Server) -> u16 {
    let conf = std::fs::read_to_string(s.path("sluice.conf")).unwrap();
    let at = conf.rfind("listen 127.0.0.1:").unwrap() + "listen 127.0.0.1:".len();
    conf[at..].split(';').next().unwrap().parse().unwrap()
}

/// The headline: a publisher on node 1 and a player on node 3 (an edge
/// pull). Node 1 is stopped mid-stream; the publisher moves to node 2 at a
/// keyframe and node 3's edge follows: the player gets every coded frame
/// of the source once, payload for payload.
#[test]
fn rolling_restart_moves_publisher_and_edge_without_loss() {
    let redis = Redis::start();
    let mut n1 = node(&redis, "node-1");
    let n2 = node(&redis, "node-2");
    let n3 = node(&redis, "node-3");
    let src = make_source(n3.dir.path(), 16);
    let (p3, f3) = sluice_play(&n3, "m", "n3.flv", &["--until-unpublish"]);
    sleep(Duration::from_millis(800));
    let publ = sluice(&["publish", src.to_str().unwrap(), &n1.url("m"), &n2.url("m")]);
    assert!(n1.wait_log("publish"), "{}", n1.log());
    assert!(
        n3.wait_log("pull: playing upstream"),
        "node 3 pulls from the owner: {}",
        n3.log()
    );
    assert!(redis.get("sluice:owner:live/m").starts_with("node-1|"));
    let started = Instant::now();
    // Node 3's /stat shows its edge pull as the stream's publishing
    // client, with the rate it receives; it is no accepted connection.
    sleep(Duration::from_millis(2500));
    let (_, body) = http_get(stat_port(&n3), "/stat?format=json");
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let stream = &doc["servers"][0]["applications"][0]["live"]["streams"][0];
    assert_eq!(stream["name"], "m", "{doc}");
    let publisher = stream["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["publishing"] == true)
        .unwrap_or_else(|| panic!("the pull is the publishing client: {doc}"));
    assert!(publisher["flashver"].as_str().unwrap().contains("relay"));
    assert!(stream["bw_in"].as_u64().unwrap() > 20_000, "{doc}");
    assert!(stream["bw_video"].as_u64().unwrap() > 0, "{doc}");
    let (_, metrics) = http_get(stat_port(&n3), "/metrics");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("sluice_connections{role=\"publisher\"} 0"),
        "a pull is not counted as a connection: {metrics}"
    );
    // mid-GOP (1 s GOP)
    sleep(Duration::from_millis(5500).saturating_sub(started.elapsed()));
    n1.terminate();
    n1.wait_exit(Duration::from_secs(15));
    assert!(n1.log().contains("cluster: withdrawn"), "{}", n1.log());
    assert!(
        n3.wait_log("owner moved") || n3.log().contains("following the owner"),
        "{}",
        n3.log()
    );
    let out = wait_for(publ, Duration::from_secs(30));
    let report = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{report}");
    assert!(report.contains("moves 1, frames lost 0"), "{report}");
    let st = wait_for(p3, Duration::from_secs(15));
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );

    let source = coded_frames(&src);
    let got = coded_frames(&f3);
    eprintln!("source {} frames, node 3 got {}", source.len(), got.len());
    for l in n3.log().lines().filter(|l| l.contains("pull")) {
        eprintln!("node 3: {l}");
    }
    for l in n2.log().lines().filter(|l| l.contains(" publish ")) {
        eprintln!("node 2: {l}");
    }
    assert_eq!(
        got.len(),
        source.len(),
        "no frame lost or doubled on node 3"
    );
    assert!(got == source, "node 3 got the source, payload for payload");
    assert_eq!(
        redis.get("sluice:owner:live/m"),
        "",
        "the stream is released when its publisher leaves"
    );
}

/// One publisher per name cluster-wide: node 2 refuses while node 1 owns
/// the stream, and accepts once it is released.
#[test]
fn second_publisher_on_another_node_is_refused() {
    let redis = Redis::start();
    let n1 = node(&redis, "node-1");
    let n2 = node(&redis, "node-2");
    let src = make_source(n1.dir.path(), 4);
    let first = sluice(&["publish", src.to_str().unwrap(), &n1.url("dup")]);
    assert!(n1.wait_log("publish"));
    sleep(Duration::from_millis(500));
    let second = ffmpeg_publish_file(&src, &n2.url("dup"));
    let out = wait_for(second, Duration::from_secs(20));
    assert!(!out.status.success(), "ffmpeg's publish on node 2 fails");
    assert!(
        n2.log().contains("published on another node"),
        "{}",
        n2.log()
    );
    // Either node's /stat shows the cluster: both nodes, and the owner.
    let t = Instant::now();
    let view = loop {
        let (code, body) = http_get(stat_port(&n2), "/stat?format=json");
        assert_eq!(code, 200);
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let c = doc["cluster"].clone();
        let owned = c["streams"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"] == "live/dup"));
        if (owned && c["nodes"].as_array().map_or(0, |n| n.len()) == 2)
            || t.elapsed() > Duration::from_secs(5)
        {
            break c;
        }
        sleep(Duration::from_millis(200));
    };
    assert_eq!(view["node_id"], "node-2");
    assert_eq!(view["healthy"], true);
    let ids: Vec<&str> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["node-1", "node-2"], "{view}");
    let owner = view["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "live/dup")
        .map(|s| s["node"].clone());
    assert_eq!(owner, Some("node-1".into()), "{view}");
    let (_, xml) = http_get(stat_port(&n1), "/stat");
    let xml = String::from_utf8(xml).unwrap();
    assert!(
        xml.contains("<cluster>") && xml.contains("<node_id>node-1</node_id>"),
        "{xml}"
    );
    let out = wait_for(first, Duration::from_secs(20));
    assert!(out.status.success());
    // Released: node 2 may have it now.
    sleep(Duration::from_millis(300));
    let third = sluice(&[
        "publish",
        "--no-pace",
        src.to_str().unwrap(),
        &n2.url("dup"),
    ]);
    let out = wait_for(third, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Redis stops mid-stream: the node's local players keep getting every
/// frame, an existing edge keeps flowing, and the degradation is logged.
#[test]
fn local_streams_flow_while_redis_is_down() {
    let mut redis = Redis::start();
    let n1 = node(&redis, "node-1");
    let n2 = node(&redis, "node-2");
    let src = make_source(n1.dir.path(), 10);
    let (p1, f1) = sluice_play(&n1, "r", "local.flv", &["--until-unpublish"]);
    let (p2, f2) = sluice_play(&n2, "r", "edge.flv", &["--duration", "9"]);
    sleep(Duration::from_millis(800));
    let publ = sluice(&["publish", src.to_str().unwrap(), &n1.url("r")]);
    assert!(n2.wait_log("pull: playing upstream"), "{}", n2.log());
    let metrics = |s: &Server| String::from_utf8(http_get(stat_port(s), "/metrics").1).unwrap();
    assert!(
        metrics(&n2).contains("sluice_relays{kind=\"pull\"} 1"),
        "{}",
        metrics(&n2)
    );
    sleep(Duration::from_secs(3));
    assert!(metrics(&n1).contains("sluice_cluster_registry_up 1"));
    redis.stop();
    let t = Instant::now();
    while !metrics(&n1).contains("sluice_cluster_registry_up 0") {
        assert!(t.elapsed() < Duration::from_secs(6), "{}", metrics(&n1));
        sleep(Duration::from_millis(200));
    }
    let out = wait_for(publ, Duration::from_secs(30));
    assert!(out.status.success());
    wait_for(p1, Duration::from_secs(15));
    wait_for(p2, Duration::from_secs(15));
    assert!(
        n1.log().contains("registry unreachable"),
        "degradation logged: {}",
        n1.log()
    );
    let source = coded_frames(&src);
    let local = coded_frames(&f1);
    assert!(
        local == source,
        "the local player got every frame ({} of {})",
        local.len(),
        source.len()
    );
    let edge = coded_frames(&f2);
    // The edge player stops after 9 s of a 10 s source: it must have
    // gone well past the 3 s at which Redis stopped.
    assert!(
        edge.len() > source.len() * 7 / 10,
        "the edge kept flowing: {} of {}",
        edge.len(),
        source.len()
    );
    assert!(
        edge[..] == source[..edge.len()],
        "edge frames are the source's"
    );
}

/// Split brain: with Redis down, two nodes each accept a publisher of the
/// same name. When Redis returns, the first renewal to reach it wins and
/// the other node drops its publisher: one publisher per name again.
#[test]
fn conflict_after_redis_returns_leaves_one_publisher() {
    let mut redis = Redis::start();
    let rport = redis.port;
    let n1 = node(&redis, "node-1");
    let n2 = node(&redis, "node-2");
    redis.stop();
    let src = make_source(n1.dir.path(), 12);
    let a = sluice(&["publish", src.to_str().unwrap(), &n1.url("twin")]);
    let b = sluice(&["publish", src.to_str().unwrap(), &n2.url("twin")]);
    assert!(n1.wait_log("publish") && n2.wait_log("publish"));
    sleep(Duration::from_secs(2));
    assert!(n1.log().contains("registry unreachable"), "{}", n1.log());
    let redis = Redis::start_on(rport);
    // Renewals run every lease/3 (1 s); give both nodes a few.
    let t = Instant::now();
    let dropped = |s: &Server| s.log().contains("dropping the local publisher");
    while !(dropped(&n1) || dropped(&n2)) && t.elapsed() < Duration::from_secs(8) {
        sleep(Duration::from_millis(100));
    }
    sleep(Duration::from_secs(2));
    assert!(
        dropped(&n1) != dropped(&n2),
        "exactly one node gives way:\n{}\n{}",
        n1.log(),
        n2.log()
    );
    let winner = if dropped(&n1) { "node-2" } else { "node-1" };
    assert!(
        redis
            .get("sluice:owner:live/twin")
            .starts_with(&format!("{winner}|")),
        "Redis names the node that kept its publisher"
    );
    let (ra, rb) = (
        wait_for(a, Duration::from_secs(30)),
        wait_for(b, Duration::from_secs(30)),
    );
    // The dropped publisher reconnects (and is refused until the winner's
    // stream ends, then replays its GOP); the winner never reconnects.
    let report = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let undisturbed = [&ra, &rb]
        .iter()
        .filter(|o| report(o).contains(" 0 reconnects)"))
        .count();
    assert_eq!(undisturbed, 1, "{}\n{}", report(&ra), report(&rb));
}

/// Node loss: `kill -9` of the node that owns a stream. The publisher
/// (`sluice publish` with node 2 next) reconnects at once and replays its
/// GOP; node 2 may claim the stream as soon as node 1's liveness key is
/// gone (about 1.5 s), not when the 3 s lease runs out; node 3's edge
/// follows the new owner with its player attached. Reports the time from
/// the kill to the player's next frame, and the frames it lost.
#[test]
fn node_loss_is_back_in_under_three_seconds() {
    let redis = Redis::start();
    let n1 = node(&redis, "node-1");
    let n2 = node(&redis, "node-2");
    let n3 = node(&redis, "node-3");
    let src = make_source(n3.dir.path(), 16);
    let (p3, f3) = sluice_play(&n3, "k", "n3.flv", &["--until-unpublish"]);
    sleep(Duration::from_millis(800));
    let publ = sluice(&["publish", src.to_str().unwrap(), &n1.url("k"), &n2.url("k")]);
    assert!(n3.wait_log("pull: playing upstream"), "{}", n3.log());
    sleep(Duration::from_millis(5300));
    let size = || std::fs::metadata(&f3).map(|m| m.len()).unwrap_or(0);
    Command::new("kill")
        .args(["-9", &n1.pid().to_string()])
        .status()
        .unwrap();
    let killed = Instant::now();
    // The player's file stops growing, then grows again.
    let mut last = size();
    let mut still_since = Instant::now();
    let mut stalled = false;
    let back = loop {
        sleep(Duration::from_millis(10));
        let now = size();
        if now != last {
            if stalled {
                break killed.elapsed();
            }
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() > Duration::from_millis(250) {
            stalled = true;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "node 3's player never got video again: {}",
            n3.log()
        );
    };
    let out = wait_for(publ, Duration::from_secs(30));
    let report = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{report}");
    let _ = wait_for(p3, Duration::from_secs(15));
    let source = coded_frames(&src);
    let got = coded_frames(&f3);
    let missing = source.iter().filter(|f| !got.contains(f)).count();
    let doubled = (got.len() + missing).saturating_sub(source.len());
    eprintln!(
        "NODE LOSS: back after {:.2} s; node 3's player missed {missing} of {} frames and got {doubled} twice; publisher: {}",
        back.as_secs_f64(),
        source.len(),
        report.lines().last().unwrap_or_default()
    );
    assert!(
        back < Duration::from_secs(3),
        "back after {back:?}: {}",
        n3.log()
    );
    assert!(
        redis.get("sluice:owner:live/k").is_empty()
            || !redis.get("sluice:owner:live/k").starts_with("node-1|")
    );
}
