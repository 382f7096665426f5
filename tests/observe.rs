//! Observe and control over HTTP with real clients: `/stat` (XML and
//! JSON), `/metrics`, and every `/control` endpoint, each effect seen on an
//! ffmpeg or rtmpdump client.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A server with a manual recorder `clip`, and the observe/control
/// locations on an HTTP port.
fn server(dir_note: &str) -> (Server, u16) {
    let port = free_port();
    let hport = free_port();
    let rec = tempfile::tempdir().unwrap().keep();
    let conf = format!(
        "# {dir_note}\n\
         rtmp {{ server {{ listen 127.0.0.1:{port}; drain_timeout 3s;\n\
           application live {{ live on;\n\
             recorder clip {{ record all manual; record_path {}; }} }} }} }}\n\
         http {{ server {{ listen 127.0.0.1:{hport};\n\
           location /stat {{ rtmp_stat all; rtmp_stat_stylesheet /stat.xsl; }}\n\
           location /control {{ rtmp_control all; }}\n\
           location /metrics {{ rtmp_metrics on; }} }} }}\n",
        rec.display()
    );
    (Server::with_config(&conf, port), hport)
}

fn text(hport: u16, path: &str) -> (u16, String) {
    let (status, body) = http_get(hport, path);
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// GET with an Accept header.
fn get_accept(hport: u16, path: &str, accept: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", hport)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: x\r\nAccept: {accept}\r\n\r\n"
    )
    .unwrap();
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    all.split_once("\r\n\r\n").unwrap().1.to_owned()
}

fn child_text<'a>(n: roxmltree::Node<'a, 'a>, name: &str) -> Option<&'a str> {
    n.children()
        .find(|c| c.has_tag_name(name))
        .map(|c| c.text().unwrap_or(""))
}

fn child<'a>(n: roxmltree::Node<'a, 'a>, name: &str) -> roxmltree::Node<'a, 'a> {
    n.children()
        .find(|c| c.has_tag_name(name))
        .unwrap_or_else(|| panic!("<{}> has no <{name}>", n.tag_name().name()))
}

fn num(n: roxmltree::Node, name: &str) -> u64 {
    child_text(n, name).unwrap().parse().unwrap()
}

#[test]
fn stat_xml_tree_and_json_agree_with_a_publisher_and_two_players() {
    let (s, hport) = server("stat");
    let src = make_source(s.dir.path(), 10);
    let publisher = ffmpeg_publish_file(&src, &s.url("cam"));
    std::thread::sleep(Duration::from_millis(1500));
    let p1 = rtmpdump(&s.url("cam"), &s.path("a.flv"), &[]);
    let p2 = ffmpeg_play(&s.url("cam"), &s.path("b.flv"), &[]);
    std::thread::sleep(Duration::from_millis(3000));

    let (status, xml) = text(hport, "/stat");
    assert_eq!(status, 200);
    assert!(xml.contains("<?xml-stylesheet type=\"text/xsl\" href=\"/stat.xsl\" ?>"));
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let rtmp = doc.root_element();
    assert_eq!(rtmp.tag_name().name(), "rtmp");
    // Four: the test harness's start-up probe, then the three clients.
    assert_eq!(num(rtmp, "naccepted"), 4);
    assert!(num(rtmp, "bytes_in") > 50_000, "{xml}");
    assert!(num(rtmp, "bw_in") > 0 && num(rtmp, "bw_out") > 0);
    let app = child(child(rtmp, "server"), "application");
    assert_eq!(child_text(app, "name"), Some("live"));
    let live = child(app, "live");
    let streams: Vec<_> = live
        .children()
        .filter(|c| c.has_tag_name("stream"))
        .collect();
    assert_eq!(streams.len(), 1, "{xml}");
    let st = streams[0];
    assert_eq!(child_text(st, "name"), Some("cam"));
    assert_eq!(num(st, "nclients"), 3, "publisher + rtmpdump + ffmpeg");
    assert_eq!(num(live, "nclients"), 3);
    assert!(st.children().any(|c| c.has_tag_name("publishing")));
    assert!(num(st, "bw_video") > 0 && num(st, "bw_audio") > 0);
    assert!(num(st, "bytes_out") > 0 && num(st, "time") >= 3000);
    let clients: Vec<_> = st.children().filter(|c| c.has_tag_name("client")).collect();
    assert_eq!(clients.len(), 3);
    let pubs: Vec<_> = clients
        .iter()
        .filter(|c| c.children().any(|x| x.has_tag_name("publishing")))
        .collect();
    assert_eq!(pubs.len(), 1);
    assert!(child_text(*pubs[0], "flashver")
        .unwrap()
        .starts_with("FMLE"));
    for c in &clients {
        assert_eq!(child_text(*c, "address"), Some("127.0.0.1"));
        assert!(num(*c, "time") > 0);
    }
    let meta = child(st, "meta");
    let video = child(meta, "video");
    assert_eq!((num(video, "width"), num(video, "height")), (320, 240));
    assert_eq!(num(video, "frame_rate"), 25);
    assert_eq!(child_text(video, "codec"), Some("H264"));
    let audio = child(meta, "audio");
    assert_eq!(child_text(audio, "codec"), Some("AAC"));
    assert_eq!(num(audio, "sample_rate"), 44100);

    // The JSON form: same tree, same values (counters tick once a second,
    // so compare what cannot move between two requests).
    for j in [
        text(hport, "/stat?format=json").1,
        get_accept(hport, "/stat", "application/json"),
    ] {
        let j: Value = serde_json::from_str(&j).expect("valid JSON");
        assert_eq!(j["naccepted"], 4);
        let app = &j["servers"][0]["applications"][0];
        assert_eq!(app["name"], "live");
        assert_eq!(app["live"]["nclients"], num(live, "nclients"));
        let js = &app["live"]["streams"][0];
        assert_eq!(js["name"], "cam");
        assert_eq!(js["nclients"], num(st, "nclients"));
        assert_eq!(js["publishing"], true);
        let mut xml_ids: Vec<u64> = clients.iter().map(|c| num(*c, "id")).collect();
        let mut json_ids: Vec<u64> = js["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_u64().unwrap())
            .collect();
        xml_ids.sort();
        json_ids.sort();
        assert_eq!(xml_ids, json_ids);
        let jp: Vec<_> = js["clients"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["publishing"] == true)
            .collect();
        assert_eq!(jp[0]["id"].as_u64().unwrap(), num(*pubs[0], "id"));
        assert_eq!(jp[0]["flashver"], child_text(*pubs[0], "flashver").unwrap());
        let jv = &js["meta"]["video"];
        assert_eq!(jv["width"], num(video, "width"));
        assert_eq!(jv["height"], num(video, "height"));
        assert_eq!(jv["codec"], child_text(video, "codec").unwrap());
        assert_eq!(jv["profile"], child_text(video, "profile").unwrap());
        assert_eq!(
            js["meta"]["audio"]["sample_rate"],
            num(audio, "sample_rate")
        );
    }

    interrupt(&p1);
    interrupt(&p2);
    let _ = wait_for(p1, Duration::from_secs(10));
    let _ = wait_for(p2, Duration::from_secs(10));
    let _ = wait_for(publisher, Duration::from_secs(20));
    // Everyone gone: the stream leaves the document.
    assert!(until(Duration::from_secs(5), || !text(hport, "/stat")
        .1
        .contains("<stream>")));
}

/// Value of an unlabelled sample, or the sum of a labelled family's
/// samples matching `label` (e.g. `cause="handshake"`).
fn sample(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, v) = l.rsplit_once(' ')?;
            let (n, labels) = key.split_once('{').unwrap_or((key, ""));
            (n == name && labels.contains(label)).then(|| v.parse::<f64>().unwrap())
        })
        .sum()
}

#[test]
fn metrics_parse_as_prometheus_text_and_move() {
    let (s, hport) = server("metrics");
    // The start-up probe's connection (Server::with_config waits for the
    // port to answer) is counted once the server accepts it, which on a
    // loaded machine can be after a first scrape: wait for it.
    let t = std::time::Instant::now();
    let (status, before) = loop {
        let (status, m) = text(hport, "/metrics");
        if sample(&m, "sluice_connections_accepted_total", "") >= 1.0
            || t.elapsed() > Duration::from_secs(3)
        {
            break (status, m);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status, 200);
    // Every line is a comment, blank, or `name{labels} value`.
    let check = |m: &str| {
        for l in m
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (key, v) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            assert!(v.parse::<f64>().is_ok(), "bad value in {l:?}");
            let name = key.split('{').next().unwrap();
            assert!(
                name.starts_with("sluice_")
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad name in {l:?}"
            );
            assert_eq!(key.contains('{'), key.ends_with('}'), "{l:?}");
        }
    };
    check(&before);

    let src = make_source(s.dir.path(), 4);
    let publisher = ffmpeg_publish_file(&src, &s.url("cam"));
    std::thread::sleep(Duration::from_millis(2500));
    // A peer that fails the handshake.
    let mut bad = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    bad.write_all(&[9u8; 1537]).unwrap();
    let _ = bad.read(&mut [0u8; 16]);
    std::thread::sleep(Duration::from_millis(300));
    let during = text(hport, "/metrics").1;
    check(&during);
    assert_eq!(
        sample(&during, "sluice_connections", "role=\"publisher\""),
        1.0
    );
    assert_eq!(sample(&during, "sluice_streams", ""), 1.0);
    let _ = wait_for(publisher, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(500));
    let after = text(hport, "/metrics").1;
    check(&after);
    assert_eq!(
        sample(&after, "sluice_connections_accepted_total", "")
            - sample(&before, "sluice_connections_accepted_total", ""),
        2.0,
        "the publisher and the bad peer"
    );
    assert!(
        sample(&after, "sluice_bytes_received_total", "")
            > sample(&before, "sluice_bytes_received_total", "") + 50_000.0
    );
    assert!(sample(&after, "sluice_bytes_sent_total", "") > 0.0);
    assert_eq!(
        sample(
            &after,
            "sluice_connections_closed_total",
            "cause=\"handshake\""
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, "sluice_connections", "role=\"publisher\""),
        0.0
    );
    assert_eq!(sample(&after, "sluice_streams", ""), 0.0);
}

#[test]
fn control_drop_and_redirect_act_on_real_clients() {
    let (s, hport) = server("drop");
    let src = make_source(s.dir.path(), 20);
    let pa = ffmpeg_publish_file(&src, &s.url("a"));
    let pb = ffmpeg_publish_file(&src, &s.url("b"));
    std::thread::sleep(Duration::from_millis(1500));
    let mut player = rtmpdump(&s.url("a"), &s.path("p.flv"), &[]);
    std::thread::sleep(Duration::from_millis(1000));

    // Errors, as nginx-rtmp answers them.
    assert_eq!(text(hport, "/control/drop/everyone?app=live").0, 500);
    assert_eq!(
        text(hport, "/control/redirect/subscriber?app=live&name=a"),
        (500, "newname not specified".into())
    );
    assert_eq!(
        text(hport, "/control/drop/client?srv=7"),
        (500, "Server index out of range".into())
    );
    assert_eq!(text(hport, "/control/nothing/here").0, 404);
    // No match: a count of 0, nobody touched.
    assert_eq!(
        text(hport, "/control/drop/subscriber?app=live&name=zzz").1,
        "0"
    );

    // redirect/subscriber: the rtmpdump player moves from a to b.
    let (st, n) = text(
        hport,
        "/control/redirect/subscriber?app=live&name=a&newname=b",
    );
    assert_eq!((st, n.as_str()), (200, "1"));
    assert!(
        until(Duration::from_secs(5), || {
            let j: Value = serde_json::from_str(&text(hport, "/stat?format=json").1).unwrap();
            let streams = j["servers"][0]["applications"][0]["live"]["streams"].clone();
            let b = streams
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == "b")
                .cloned();
            b.is_some_and(|b| b["nclients"] == 2)
        }),
        "player now counted on b"
    );
    let grown = std::fs::metadata(s.path("p.flv")).unwrap().len();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        std::fs::metadata(s.path("p.flv")).unwrap().len() > grown,
        "the redirected player keeps receiving media"
    );

    // drop/subscriber: rtmpdump sees its connection closed and exits.
    let (_, n) = text(hport, "/control/drop/subscriber?app=live&name=b");
    assert_eq!(n, "1");
    assert!(
        until(Duration::from_secs(5), || player
            .try_wait()
            .unwrap()
            .is_some()),
        "rtmpdump exits once dropped"
    );
    assert!(s.wait_log("reason=\"dropped by /control\""));

    // drop/publisher by clientid: that ffmpeg fails, the other goes on.
    let j: Value = serde_json::from_str(&text(hport, "/stat?format=json").1).unwrap();
    let streams = j["servers"][0]["applications"][0]["live"]["streams"]
        .as_array()
        .unwrap()
        .clone();
    let a_id = streams.iter().find(|s| s["name"] == "a").unwrap()["clients"][0]["id"]
        .as_u64()
        .unwrap();
    let (_, n) = text(
        hport,
        &format!("/control/drop/publisher?app=live&name=a&clientid={a_id}"),
    );
    assert_eq!(n, "1");
    let out = wait_for(pa, Duration::from_secs(10));
    assert!(!out.status.success(), "ffmpeg publishing a was cut off");
    let mut pb = pb;
    assert!(pb.try_wait().unwrap().is_none(), "b still publishing");

    // redirect/publisher: b's ffmpeg now publishes as c.
    let (_, n) = text(
        hport,
        "/control/redirect/publisher?app=live&name=b&newname=c",
    );
    assert_eq!(n, "1");
    assert!(until(Duration::from_secs(5), || {
        let x = text(hport, "/stat").1;
        x.contains("<name>c</name>") && !x.contains("<name>b</name>")
    }));
    let v = ffmpeg_play(&s.url("c"), &s.path("c.flv"), &["-t", "2"]);
    let out = wait_for(v, Duration::from_secs(15));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (video, _) = counts(&s.path("c.flv"));
    assert!(video >= 25, "played c: {video} video frames");
    let _ = pb.kill();
}

#[test]
fn control_record_start_stop_writes_a_playable_file() {
    let (s, hport) = server("record");
    let src = make_source(s.dir.path(), 12);
    let publisher = ffmpeg_publish_file(&src, &s.url("cam"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        text(hport, "/control/record/start?app=live&name=cam&rec=nope"),
        (500, "Recorder not found".into())
    );
    assert_eq!(
        text(hport, "/control/record/pause?app=live&name=cam&rec=clip"),
        (500, "Undefined method".into())
    );
    // Nobody publishes "zzz": nothing to do.
    assert_eq!(
        text(hport, "/control/record/start?app=live&name=zzz&rec=clip").0,
        204
    );
    let (st, path) = text(hport, "/control/record/start?app=live&name=cam&rec=clip");
    assert_eq!(st, 200);
    assert!(path.ends_with(".flv"), "{path}");
    // Already recording: nothing to do.
    assert_eq!(
        text(hport, "/control/record/start?app=live&name=cam&rec=clip").0,
        204
    );
    std::thread::sleep(Duration::from_millis(3000));
    let (st, stopped) = text(hport, "/control/record/stop?app=live&name=cam&rec=clip");
    assert_eq!((st, stopped.as_str()), (200, path.as_str()));
    assert_eq!(
        text(hport, "/control/record/stop?app=live&name=cam&rec=clip").0,
        204
    );
    std::thread::sleep(Duration::from_millis(500));
    let (v, a) = counts(std::path::Path::new(&path));
    assert!((50..=110).contains(&v), "about 3 s of video: {v}");
    assert!(a > 50, "audio too: {a}");
    assert_eq!(decode_errors(std::path::Path::new(&path)), "");
    let _ = wait_for(publisher, Duration::from_secs(20));
}

#[test]
fn control_goaway_reaches_ffmpeg_and_drain_stops_the_server() {
    let (mut s, hport) = server("goaway");
    let src = make_source(s.dir.path(), 8);
    let mover = ffmpeg_publish_goaway(&src, &s.url("mover"));
    let plain = ffmpeg_publish_file(&src, &s.url("plain"));
    std::thread::sleep(Duration::from_millis(1500));
    // The plain ffmpeg did not announce Go Away: nobody is signalled.
    assert_eq!(
        text(hport, "/control/goaway/publisher?app=live&name=plain").1,
        "0"
    );
    assert_eq!(text(hport, "/control/goaway/subscriber?app=live").0, 500);
    let (st, n) = text(hport, "/control/goaway/publisher?app=live&name=mover");
    assert_eq!((st, n.as_str()), (200, "1"));
    let out = wait_for(mover, Duration::from_secs(20));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("Unknown packet type received 0x20"),
        "ffmpeg got message type 32: {log}"
    );
    let (_, m) = text(hport, "/metrics");
    assert_eq!(
        sample(&m, "sluice_goaway_sent_total", "form=\"type32\""),
        1.0
    );

    // drain: answered with the count of clients that can move (the plain
    // ffmpeg cannot), then the server drains and exits.
    let (st, n) = text(hport, "/control/drain");
    assert_eq!((st, n.as_str()), (200, "0"));
    let status = s.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    assert!(s.log().contains("drain complete"));
    let _ = wait_for(plain, Duration::from_secs(15));
}
