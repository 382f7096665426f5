//! The bad-input suite: what a public RTMP port receives from attackers and
//! broken encoders. Each case checks that only the offending connection is
//! closed, with a log line naming the cause, then that a normal ffmpeg
//! publish and play still work on the same server and that its memory
//! stayed under [`RSS_BOUND_KB`].

mod common;

use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::raw::*;
use common::*;
use sluice::rtmp::amf::{self, Amf};
use sluice::rtmp::chunk::encode_message;

/// The server's resident memory after any case. An idle server with one
/// stream is about 7 MiB; 1000 idle connections add about 6 MiB; the
/// stalled-player case peaks near 10 MiB. Every case here that could make
/// a naive server allocate gigabytes must stay under this.
const RSS_BOUND_KB: u64 = 32 * 1024;

// ---------------------------------------------------------------- health

fn source() -> &'static Path {
    static SRC: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = SRC.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        make_source(d.path(), 2);
        d
    });
    Box::leak(dir.path().join("src2.flv").into_boxed_path())
}

/// A normal ffmpeg publish and an ffmpeg play still work, the server is up,
/// nothing panicked, and memory is bounded.
fn healthy(s: &mut Server, case: &str) {
    assert!(s.alive(), "{case}: server died:\n{}", s.log());
    let name = format!("ok-{case}");
    let publisher = ffmpeg_publish_file(source(), &s.url(&name));
    std::thread::sleep(Duration::from_millis(600));
    let out = s.path(&format!("{name}.flv"));
    let play = wait_for(
        ffmpeg_play(&s.url(&name), &out, &["-frames:v", "15"]),
        Duration::from_secs(15),
    );
    assert!(
        play.status.success(),
        "{case}: play failed: {}",
        String::from_utf8_lossy(&play.stderr)
    );
    let (v, _) = counts(&out);
    assert!(v >= 15, "{case}: played {v} video frames");
    let published = wait_for(publisher, Duration::from_secs(15));
    assert!(published.status.success(), "{case}: publish failed");
    let log = s.log();
    assert!(!log.contains("panicked"), "{case}: {log}");
    let rss = s.rss_kb();
    assert!(rss < RSS_BOUND_KB, "{case}: RSS {rss} KiB");
    eprintln!("{case}: healthy, RSS {rss} KiB");
}

// ---------------------------------------------------------------- cases

#[test]
fn truncated_commands_at_every_offset() {
    let mut s = Server::start("");
    let connect = connect_body();
    let cases: Vec<(&str, Vec<u8>, u32, Vec<u8>)> = vec![
        ("connect", vec![], 0, connect.clone()),
        (
            "createStream",
            command(0, &connect),
            0,
            create_stream_body(),
        ),
        (
            "publish",
            [command(0, &connect), command(0, &create_stream_body())].concat(),
            1,
            publish_body("t"),
        ),
        (
            "play",
            [command(0, &connect), command(0, &create_stream_body())].concat(),
            1,
            play_body("t"),
        ),
    ];
    let mut conns = 0;
    for (what, prefix, sid, body) in &cases {
        // The byte stream stops at every offset, then the peer hangs up.
        let full = command(*sid, body);
        for k in 0..full.len() {
            let mut r = Raw::new(s.port);
            r.send(prefix);
            r.send(&full[..k]);
            let _ = r.s.shutdown(Shutdown::Write);
            assert!(r.closed_within(Duration::from_secs(5)), "{what} cut at {k}");
            conns += 1;
        }
        // A complete message whose AMF body is cut at every offset.
        for k in 0..body.len() {
            let mut r = Raw::new(s.port);
            r.send(prefix);
            r.send(&command(*sid, &body[..k]));
            let _ = r.s.shutdown(Shutdown::Write);
            assert!(r.closed_within(Duration::from_secs(5)), "{what} body {k}");
            conns += 1;
        }
    }
    eprintln!("{conns} truncated sessions");
    assert!(s.wait_log("AMF value truncated"), "{}", s.log());
    healthy(&mut s, "truncated");
}

#[test]
fn chunk_headers_without_a_first_header_and_the_largest_csid() {
    let mut s = Server::start("");
    for fmt in 1..=3u8 {
        let mut r = Raw::new(s.port);
        let mut b = vec![(fmt << 6) | 5];
        b.extend_from_slice(&[0u8; 7][..[0, 7, 3, 0][fmt as usize]]);
        b.extend_from_slice(&[0u8; 16]);
        r.send(&b);
        assert!(r.closed_within(Duration::from_secs(5)), "fmt {fmt}");
        let why = format!("type-{fmt} chunk on chunk stream 5, which has no previous header");
        assert!(s.wait_log(&why), "{}", s.log());
    }
    // csid 65599 is the largest the 3-byte basic header can say: valid.
    let mut r = Raw::new(s.port);
    let msg = chunked(65599, 20, 0, &connect_body(), 128);
    assert_eq!(&msg[..3], &[0x01, 0xFF, 0xFF]);
    r.send(&msg);
    assert!(
        r.saw(b"_result", Duration::from_secs(5)),
        "connect on 65599"
    );
    healthy(&mut s, "csid");
}

#[test]
fn chunk_sizes_and_announced_lengths() {
    let port = free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; max_message 16M; max_streams 64;\n\
         application live {{ live on; }} }} }}\n"
    );
    let mut s = Server::with_config(&conf, port);
    for size in [0u32, 1 << 31, 0x0100_0000] {
        let mut r = Raw::new(s.port);
        r.send(&chunked(2, 1, 0, &size.to_be_bytes(), 128));
        assert!(r.closed_within(Duration::from_secs(5)), "chunk size {size}");
        assert!(s.wait_log(&format!("invalid chunk size {size}")));
    }
    // A chunk size of 1 is legal, if silly: a connect still works.
    let mut r = Raw::new(s.port);
    r.send(&chunked(2, 1, 0, &1u32.to_be_bytes(), 128));
    r.send(&chunked(3, 20, 0, &connect_body(), 1));
    assert!(r.saw(b"_result", Duration::from_secs(5)), "chunk size 1");

    // The largest length the 24-bit field can announce (16 MiB - 1) on 64
    // chunk streams, 128 bytes sent on each: the announced lengths are
    // charged to the reassembly cap (4 x max_message) and refused there,
    // with nothing allocated for them.
    let before = s.rss_kb();
    let mut r = Raw::new(s.port);
    for i in 0..64u32 {
        r.send(&first_chunk(3 + i, 0xFF_FFFF));
    }
    assert!(r.closed_within(Duration::from_secs(5)));
    assert!(
        s.wait_log("partial messages hold more than 67108864 bytes"),
        "{}",
        s.log()
    );
    let grew = s.rss_kb().saturating_sub(before);
    assert!(grew < 8 * 1024, "RSS grew {grew} KiB");
    healthy(&mut s, "chunk-size");

    // With the default max_message (8 MiB), the first such header is
    // refused.
    let mut d = Server::start("");
    let mut r = Raw::new(d.port);
    r.send(&first_chunk(4, 0xFF_FFFF));
    assert!(r.closed_within(Duration::from_secs(5)));
    assert!(d.wait_log("message of 16777215 bytes exceeds max_message 8388608"));
    healthy(&mut d, "max-message");
}

/// The first 128-byte chunk of a video message announcing `len` bytes.
fn first_chunk(csid: u32, len: u32) -> Vec<u8> {
    let mut b = if csid < 64 {
        vec![csid as u8]
    } else {
        vec![0, (csid - 64) as u8]
    };
    b.extend_from_slice(&[0, 0, 0]);
    b.extend_from_slice(&len.to_be_bytes()[1..]);
    b.push(9);
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&[0x17; 128]);
    b
}

#[test]
fn amf_bombs_and_odd_markers() {
    let mut s = Server::start("");
    let head: Vec<u8> = amf::encode_all(&[Amf::str("connect"), Amf::Number(1.0)]).to_vec();
    let with = |v: &[u8]| [head.clone(), v.to_vec()].concat();
    let mut nest = Vec::new();
    for _ in 0..100_000 {
        nest.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
    }
    let bombs: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "long string 0xFFFFFFFF",
            with(&[0x0c, 0xFF, 0xFF, 0xFF, 0xFF, b'a']),
            "AMF value truncated",
        ),
        (
            "strict array 2^32-1",
            with(&[0x0a, 0xFF, 0xFF, 0xFF, 0xFF, 0x05, 0x05]),
            "AMF value truncated",
        ),
        (
            "ECMA array 2^32-1",
            with(&[0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x09]),
            "application not found",
        ),
        ("nesting bomb", with(&nest), "AMF nesting deeper than"),
        (
            "AMF3 string 2^28",
            with(&[0x11, 0x06, 0xFF, 0xFF, 0xFF, 0xFF]),
            "AMF value truncated",
        ),
    ];
    for (what, body, why) in &bombs {
        let mut r = Raw::new(s.port);
        r.send(&command(0, body));
        assert!(r.closed_within(Duration::from_secs(5)), "{what}");
        assert!(s.wait_log(why), "{what}: {}", s.log());
    }
    // Markers that are legal but unusual in a command object: reference,
    // AVM+ (AMF3), Date, XML. The connection is answered or closed, and
    // nothing else is affected.
    let odd: Vec<(&str, Vec<u8>)> = vec![
        ("reference", with(&[0x07, 0x00, 0x05])),
        ("AVM+", with(&[0x11, 0x0a, 0x0b, 0x01, 0x01])),
        ("Date", with(&[0x0b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
        ("XML", with(&[0x0f, 0, 0, 0, 3, b'<', b'a', b'>'])),
        ("unknown marker", with(&[0x42])),
    ];
    for (what, body) in &odd {
        let mut r = Raw::new(s.port);
        r.send(&command(0, body));
        let t = Instant::now();
        let answered =
            r.saw(b"_error", Duration::from_secs(2)) || r.saw(b"_result", Duration::ZERO);
        assert!(
            answered || r.closed_within(Duration::from_secs(5)),
            "{what}: neither answered nor closed"
        );
        eprintln!("{what}: answered={answered} in {:?}", t.elapsed());
    }
    healthy(&mut s, "amf");
}

#[test]
fn unknown_message_types_and_amf3_garbage() {
    let mut s = Server::start("");
    let mut r = Raw::new(s.port);
    for t in [
        0u8, 7, 10, 11, 12, 13, 14, 16, 19, 21, 23, 30, 31, 33, 100, 255,
    ] {
        r.send(&chunked(4, t, 0, &[0xAB; 40], 128));
    }
    r.send(&command(0, &connect_body()));
    assert!(
        r.saw(b"_result", Duration::from_secs(5)),
        "unknown types are ignored"
    );

    // AMF3 command (type 17) and data (type 15) bodies of garbage.
    let mut r = ready(s.port);
    r.send(&chunked(
        3,
        17,
        0,
        &[0x00, 0x11, 0x0a, 0xFF, 0xFF, 0xFF, 0xFF],
        128,
    ));
    assert!(
        r.closed_within(Duration::from_secs(5)),
        "AMF3 command garbage"
    );
    let mut r = ready(s.port);
    r.send(&command(1, &publish_body("g")));
    assert!(r.saw(b"NetStream.Publish.Start", Duration::from_secs(5)));
    r.send(&chunked(
        5,
        15,
        1,
        &[0x00, 0x11, 0x09, 0xFF, 0xFF, 0xFF, 0x7F],
        128,
    ));
    let closed = r.closed_within(Duration::from_secs(2));
    eprintln!("AMF3 data garbage: closed={closed}");
    assert!(s.wait_log("bad AMF"), "{}", s.log());
    healthy(&mut s, "unknown-types");
}

#[test]
fn enhanced_rtmp_headers_that_lie() {
    let mut s = Server::start("");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown FourCC",
            vec![0x90, b'x', b'y', b'z', b'w', 0, 0, 0],
            "unknown video FourCC",
        ),
        (
            "bad packet type",
            vec![0x9e, b'h', b'v', b'c', b'1', 0, 0, 0],
            "unknown enhanced video packet type",
        ),
        ("short body", vec![0x91, b'h', b'v'], "video tag too short"),
    ];
    for (what, payload, why) in &cases {
        let mut r = ready(s.port);
        r.send(&command(1, &publish_body(what)));
        assert!(r.saw(b"NetStream.Publish.Start", Duration::from_secs(5)));
        r.send(&chunked(6, 9, 1, payload, 128));
        assert!(r.closed_within(Duration::from_secs(5)), "{what}");
        assert!(s.wait_log(why), "{what}: {}", s.log());
    }
    healthy(&mut s, "enhanced");
}

#[test]
fn timestamps_backwards_jumping_and_wrapping_stay_monotonic() {
    let mut s = Server::start("");
    let mut r = ready(s.port);
    r.send(&command(1, &publish_body("ts")));
    assert!(r.saw(b"NetStream.Publish.Start", Duration::from_secs(5)));
    let seq = [0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f];
    let mut m = BytesMut::new();
    encode_message(6, 0, 9, 1, &seq, 128, &mut m);
    r.send(&m);
    let out = s.path("ts.flv");
    let player = rtmpdump(&s.url("ts"), &out, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let stamps: [u32; 10] = [
        0,
        40,
        80,
        20,          // backwards
        120,         // forwards again
        3_600_000,   // a one-hour jump
        0xFFFF_FFC0, // near the wrap...
        0xFFFF_FFF0,
        0x10, // ...and over it
        0x50,
    ];
    for (i, ts) in stamps.iter().enumerate() {
        let mut body = vec![if i == 0 { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        body.extend_from_slice(&(i as u32).to_be_bytes());
        let mut m = BytesMut::new();
        encode_message(6, *ts, 9, 1, &body, 128, &mut m);
        r.send(&m);
        std::thread::sleep(Duration::from_millis(30));
    }
    std::thread::sleep(Duration::from_millis(500));
    interrupt(&player);
    wait_for(player, Duration::from_secs(10));
    let data = std::fs::read(&out).unwrap();
    let mut buf = BytesMut::from(&data[..]);
    let mut p = sluice::flv::FlvParser::new();
    let mut got = Vec::new();
    while let Ok(Some(t)) = p.next_tag(&mut buf) {
        if t.tag_type == 9 && t.data.get(1) == Some(&1) {
            got.push(t.timestamp);
        }
    }
    assert_eq!(got.len(), stamps.len(), "every frame delivered: {got:?}");
    // FLV keeps 32 bits, so unwrap the players' view the way RTMP does.
    let mut prev: i64 = -1;
    let mut ext = 0i64;
    let mut last = None;
    for t in &got {
        ext += last.map_or(*t as i64, |l: u32| t.wrapping_sub(l) as i32 as i64);
        last = Some(*t);
        assert!(ext >= prev, "timestamps went back: {got:?}");
        prev = ext;
    }
    healthy(&mut s, "timestamps");
}

#[test]
fn slowloris_half_open_handshakes() {
    let port = free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; timeout 3s;\n\
         application live {{ live on; }} }} }}\n"
    );
    let mut s = Server::with_config(&conf, port);
    let mut held = Vec::new();
    for i in 0..300 {
        let mut r = Raw::tcp(port);
        match i % 3 {
            0 => {}
            1 => r.send(&[3]),
            _ => r.send(&[3; 700]),
        }
        held.push(r);
    }
    let t = Instant::now();
    // Service goes on while they hang.
    healthy(&mut s, "slowloris-during");
    for (i, r) in held.iter_mut().enumerate() {
        let left = Duration::from_secs(10).saturating_sub(t.elapsed());
        assert!(r.closed_within(left), "half-open connection {i} still open");
    }
    eprintln!("300 half-open handshakes closed after {:?}", t.elapsed());
    assert!(s.wait_log("handshake timeout"));
    healthy(&mut s, "slowloris-after");
}

#[test]
fn a_thousand_idle_connections() {
    raise_fd_limit(4096);
    let mut s = Server::start("");
    let before = s.rss_kb();
    let mut held = Vec::new();
    for i in 0..1000 {
        let mut r = Raw::new(s.port);
        if i % 2 == 0 {
            r.send(&command(0, &connect_body()));
        }
        held.push(r);
    }
    let t = Instant::now();
    while s.fds() < 1000 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(s.fds() >= 1000, "server holds {} fds", s.fds());
    let grew = s.rss_kb().saturating_sub(before);
    eprintln!("1000 idle connections: +{grew} KiB");
    assert!(grew < 40 * 1024, "1000 idle connections cost {grew} KiB");
    healthy(&mut s, "idle-1000");
    drop(held);
}

#[test]
fn a_stalled_player_beside_a_healthy_one() {
    let port = free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; out_queue 64;\n\
         application live {{ live on; }} }} }}\n"
    );
    let mut s = Server::with_config(&conf, port);
    let src = noisy_source(s.dir.path(), 12);
    let publisher = ffmpeg_publish_file(&src, &s.url("big"));
    std::thread::sleep(Duration::from_millis(500));

    // The stalled player plays and never reads again.
    let mut stalled = ready(s.port);
    shrink_rcvbuf(&stalled.s);
    stalled.send(&command(1, &play_body("big")));
    let healthy_out = s.path("healthy.flv");
    let healthy_player = ffmpeg_play(&s.url("big"), &healthy_out, &["-t", "9"]);

    let t = Instant::now();
    let mut peak = 0;
    while t.elapsed() < Duration::from_secs(9) {
        peak = peak.max(s.rss_kb());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        s.wait_log("slow player: stalled"),
        "stalled player not closed: {}",
        s.log()
    );
    let played = wait_for(healthy_player, Duration::from_secs(15));
    assert!(played.status.success());
    let published = wait_for(publisher, Duration::from_secs(20));
    assert!(published.status.success(), "the publisher was not slowed");
    let (v, _) = counts(&healthy_out);
    assert!(v >= 200, "healthy player got {v} video frames in 9 s");
    assert_eq!(decode_errors(&healthy_out), "");
    let healthy_line = s
        .log()
        .lines()
        .filter(|l| l.contains("closed") && l.contains("role=\"player\""))
        .filter(|l| !l.contains("slow player"))
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert!(
        healthy_line.iter().any(|l| l.contains("dropped=0")),
        "healthy player dropped frames: {healthy_line:?}"
    );
    let stalled_line = s
        .log()
        .lines()
        .find(|l| l.contains("slow player: stalled"))
        .map(str::to_owned)
        .unwrap_or_default();
    eprintln!("stalled player closed ({stalled_line}); peak RSS {peak} KiB");
    assert!(peak < RSS_BOUND_KB, "peak RSS {peak} KiB");
    drop(stalled);
    healthy(&mut s, "stalled");
}

fn shrink_rcvbuf(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 4096;
    // SAFETY: setsockopt on a socket we own, with a correctly sized int.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[test]
fn max_connections_and_dead_peers() {
    let port = free_port();
    let conf = format!(
        "rtmp {{ max_connections 50; server {{ listen 127.0.0.1:{port}; ping 1s; ping_timeout 1s;\n\
         application live {{ live on; }} }} }}\n"
    );
    let mut s = Server::with_config(&conf, port);
    // 50 peers connect, then never answer anything (not even pings).
    let mut held: Vec<Raw> = (0..50).map(|_| ready(port)).collect();
    let mut extra = Raw::tcp(port);
    assert!(
        extra.closed_within(Duration::from_secs(3)),
        "the 51st connection is refused"
    );
    assert!(s.wait_log("max_connections reached"));
    let t = Instant::now();
    for (i, r) in held.iter_mut().enumerate() {
        let left = Duration::from_secs(8).saturating_sub(t.elapsed());
        assert!(r.closed_within(left), "dead peer {i} still connected");
    }
    eprintln!("50 dead peers closed after {:?}", t.elapsed());
    assert!(s.wait_log("ping timeout"));
    healthy(&mut s, "max-connections");
}

#[test]
fn a_window_ack_size_of_one_is_not_an_ack_storm() {
    let mut s = Server::start("");
    let mut r = Raw::new(s.port);
    r.send(&chunked(2, 5, 0, &1u32.to_be_bytes(), 128));
    r.send(&command(0, &connect_body()));
    r.send(&command(0, &create_stream_body()));
    r.send(&command(1, &publish_body("w")));
    assert!(r.saw(b"NetStream.Publish.Start", Duration::from_secs(5)));
    let sent = 256 << 10;
    let mut body = vec![0x27, 1, 0, 0, 0];
    body.resize(4096, 0xAA);
    for i in 0..sent / 4096 {
        let mut m = BytesMut::new();
        encode_message(6, i as u32 * 40, 9, 1, &body, 128, &mut m);
        r.send(&m);
    }
    let _ = r.saw(b"never", Duration::from_secs(1));
    let mut session = sluice::rtmp::Session::new(Default::default());
    let mut input = BytesMut::from(&r.got[..]);
    let mut acks = 0;
    loop {
        match session.next_message(&mut input) {
            Ok(Some(sluice::rtmp::Message::Ack(_))) => acks += 1,
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => panic!("server output: {e}"),
        }
    }
    eprintln!("{acks} acknowledgements for {sent} bytes with a window of 1");
    assert!(acks >= 1, "acknowledgements are still sent");
    assert!(acks <= sent / 4096 + 4, "{acks} acknowledgements: a storm");
    healthy(&mut s, "ack-window");
}
