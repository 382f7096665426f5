//! `listen` as nginx reads it: `proxy_protocol` (v1 and v2, the address in
//! the header is the one hooks, access rules and /stat see), `unix:PATH`
//! and `reuseport`. A small relay in front of Sluice plays the load
//! balancer: it prepends the header and pipes ffmpeg's bytes.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;

const OK: (u16, Option<String>, Duration) = (200, None, Duration::ZERO);

/// Copies both ways between two streams until either closes.
fn pipe<A, B>(a: A, b: B)
where
    A: Read + Write + Send + 'static + TryCloneStream,
    B: Read + Write + Send + 'static + TryCloneStream,
{
    let (mut a2, mut b2) = (a.dup(), b.dup());
    let (mut a, mut b) = (a, b);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut a, &mut b);
        b.close();
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut b2, &mut a2);
        a2.close();
    });
}

trait TryCloneStream: Sized {
    fn dup(&self) -> Self;
    fn close(&self);
}
impl TryCloneStream for TcpStream {
    fn dup(&self) -> Self {
        self.try_clone().unwrap()
    }
    fn close(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}
impl TryCloneStream for UnixStream {
    fn dup(&self) -> Self {
        self.try_clone().unwrap()
    }
    fn close(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

/// A relay on a free port: each client is piped to `connect()`, after
/// `header` is written to it.
fn relay<S>(header: Vec<u8>, connect: impl Fn() -> S + Send + 'static) -> u16
where
    S: Read + Write + Send + 'static + TryCloneStream,
{
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let mut up = connect();
            up.write_all(&header).unwrap();
            pipe(c, up);
        }
    });
    port
}

fn v2_header(ip: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend([0x21, 0x11, 0, 12]);
    h.extend(ip);
    h.extend([127, 0, 0, 1]);
    h.extend(port.to_be_bytes());
    h.extend(1935u16.to_be_bytes());
    h
}

#[test]
fn proxy_protocol_v1_and_v2_name_the_real_client() {
    let hooks = HookServer::start(|_| OK);
    let port = free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port} proxy_protocol reuseport;
  application live {{ live on; on_publish {pub}; on_play {play};
    deny publish 192.0.2.66; }}
}} }}",
        pub = hooks.url("/publish"),
        play = hooks.url("/play")
    );
    let server = Server::with_config(&conf, port);
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), 4);

    let v1 = relay(
        b"PROXY TCP4 203.0.113.7 127.0.0.1 40001 1935\r\n".to_vec(),
        move || TcpStream::connect(("127.0.0.1", port)).unwrap(),
    );
    let mut publisher = ffmpeg_publish_file(&src, &format!("rtmp://127.0.0.1:{v1}/live/cam"));
    let call = hooks.wait_for("/publish", Duration::from_secs(15));
    assert_eq!(call.get("addr"), Some("203.0.113.7"), "{:?}", call.keys());

    let v2 = relay(v2_header([198, 51, 100, 9], 40002), move || {
        TcpStream::connect(("127.0.0.1", port)).unwrap()
    });
    let out = dir.path().join("p.flv");
    let player = ffmpeg_play(
        &format!("rtmp://127.0.0.1:{v2}/live/cam"),
        &out,
        &["-t", "1"],
    );
    let call = hooks.wait_for("/play", Duration::from_secs(15));
    assert_eq!(call.get("addr"), Some("198.51.100.9"));
    wait_for(player, Duration::from_secs(20));
    let (video, _) = counts(&out);
    assert!(video > 0, "the proxied player got no video");

    // Access rules see the header's address too.
    let denied = relay(
        b"PROXY TCP4 192.0.2.66 127.0.0.1 40003 1935\r\n".to_vec(),
        move || TcpStream::connect(("127.0.0.1", port)).unwrap(),
    );
    let p = ffmpeg_publish_file(&src, &format!("rtmp://127.0.0.1:{denied}/live/other"));
    wait_for(p, Duration::from_secs(15));
    assert!(
        server.wait_log("publish denied by access rules"),
        "{}",
        server.log()
    );
    assert!(server.log().contains("192.0.2.66"));

    // No header: the connection is closed with a log line, the server
    // goes on.
    let mut raw = TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.write_all(&[3u8; 1537]).unwrap();
    assert!(
        server.wait_log("no PROXY protocol header"),
        "{}",
        server.log()
    );
    let _ = publisher.kill();
    let _ = publisher.wait();

    // reuseport: a second socket can bind the same port.
    let s = socket2_bind_reuseport(port);
    assert!(s, "SO_REUSEPORT not set on the listener");
}

/// Whether another socket with SO_REUSEPORT can bind `port` (it can only
/// if the listener set it too).
fn socket2_bind_reuseport(port: u16) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.set_reuseport(true).unwrap();
        s.bind(([127, 0, 0, 1], port).into()).is_ok()
    })
}

#[test]
fn unix_socket_listener_serves_rtmp() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("rtmp.sock");
    let port = free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; listen unix:{path};
  application live {{ live on; }} }} }}",
        path = sock.display()
    );
    let server = Server::with_config(&conf, port);
    assert!(sock.exists());
    let path = sock.clone();
    let front = relay(Vec::new(), move || UnixStream::connect(&path).unwrap());
    let src = make_source(dir.path(), 2);
    let p = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(&src)
        .args(["-c", "copy", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{front}/live/viaunix"))
        .output()
        .unwrap();
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    assert!(
        server.log().contains("stream=\"viaunix\""),
        "{}",
        server.log()
    );
}

use std::process::Command;
