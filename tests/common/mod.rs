//! Helpers for end-to-end tests: a `sluice serve` process on a free
//! loopback port, ffmpeg-generated sources, ffprobe counts.
#![allow(dead_code)]

pub mod ffmpeg9;
pub mod raw;
pub mod tls;

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// Polls `f` every 100 ms until it holds (true) or `limit` passes (false).
pub fn until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Starts `sluice serve` with `app_body` inside `application live {}`.
    pub fn start(app_body: &str) -> Server {
        let port = free_port();
        let conf = format!(
            "rtmp {{\n server {{\n  listen 127.0.0.1:{port};\n  application live {{\n   live on;\n   {app_body}\n  }}\n }}\n}}\n"
        );
        Self::with_config(&conf, port)
    }

    pub fn with_config(conf: &str, port: u16) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.conf");
        std::fs::write(&path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "-c"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, port, dir }
    }

    pub fn url(&self, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}", self.port)
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        let _ = std::fs::File::open(self.dir.path().join("server.log"))
            .map(|mut f| f.read_to_string(&mut s));
        s
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size of the server process, in KiB.
    pub fn rss_kb(&self) -> u64 {
        proc_status_kb(self.pid(), "VmRSS:")
    }

    /// Open file descriptors of the server process.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Waits up to 5 s for `needle` to appear in the server's log.
    pub fn wait_log(&self, needle: &str) -> bool {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM (starts a drain).
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Waits for the server process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                t.elapsed() < limit,
                "server did not exit within {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Coded audio/video payloads of an FLV file in order (sequence headers
/// left out: a moved publisher sends them again on purpose).
pub fn coded_frames(path: &Path) -> Vec<(u8, bytes::Bytes)> {
    let data = std::fs::read(path).unwrap();
    let mut buf = bytes::BytesMut::from(&data[..]);
    let mut p = sluice::flv::FlvParser::new();
    let mut out = Vec::new();
    while let Some(t) = p.next_tag(&mut buf).unwrap() {
        let seq = match t.tag_type {
            8 => sluice::flv::audio_info(&t.data).map(|i| i.sequence_header),
            9 => sluice::flv::video_info(&t.data)
                .map(|i| i.sequence_header || t.data.get(1) == Some(&2)),
            _ => continue,
        };
        if seq == Ok(false) {
            out.push((t.tag_type, t.data));
        }
    }
    out
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes an FLV source: testsrc 320x240 at 25 fps with a 1 s GOP (libx264)
/// and a 440 Hz sine (AAC), `secs` long.
pub fn make_source(dir: &Path, secs: u32) -> PathBuf {
    let out = dir.join(format!("src{secs}.flv"));
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &secs.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
        ])
        .args([
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv",
        ])
        .arg(&out)
        .status()
        .expect("ffmpeg is installed (scripts/test.sh installs it)");
    assert!(st.success());
    out
}

/// A high-bitrate source (noise compresses badly): about 10 Mbit/s, so a
/// stalled reader's socket buffers fill in a few seconds.
pub fn noisy_source(dir: &Path, secs: u32) -> PathBuf {
    let out = dir.join("noisy.flv");
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=25,noise=alls=60:allf=t",
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &secs.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
        .args(["-b:v", "10M", "-maxrate", "10M", "-bufsize", "2M"])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    out
}

/// (video packets, audio packets) as ffprobe counts them.
pub fn counts(path: &Path) -> (u64, u64) {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_packets",
            "-show_entries",
            "stream=codec_type,nb_read_packets",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let mut v = 0;
    let mut a = 0;
    for line in text.lines() {
        let mut it = line.split(',');
        match (it.next(), it.next().and_then(|n| n.trim().parse().ok())) {
            (Some("video"), Some(n)) => v = n,
            (Some("audio"), Some(n)) => a = n,
            _ => {}
        }
    }
    (v, a)
}

/// Errors ffmpeg reports while decoding the whole file.
pub fn decode_errors(path: &Path) -> String {
    let o = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let mut e = String::from_utf8_lossy(&o.stderr).into_owned();
    if !o.status.success() {
        e.push_str(&format!(" (exit {})", o.status));
    }
    e
}

/// Flags of the first video packet ("K__" for a keyframe) and the video
/// stream's width, which ffprobe only knows from the sequence header.
pub fn first_video_packet(path: &Path) -> (String, u32) {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=flags:stream=width",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut lines = text.lines();
    let first_flags = lines.next().unwrap_or_default().to_owned();
    let width = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    (first_flags, width)
}

/// Waits for a child with a deadline, killing it when the deadline passes.
pub fn wait_for(mut child: Child, limit: Duration) -> Output {
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "process did not finish within {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn ffmpeg_play(url: &str, out: &Path, extra: &[&str]) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i", url])
        .args(extra)
        .args(["-c", "copy", "-f", "flv"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn ffmpeg_publish_file(src: &Path, url: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(src)
        .args(["-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn rtmpdump(url: &str, out: &Path, extra: &[&str]) -> Child {
    Command::new("rtmpdump")
        .args(["-q", "--live", "-r", url, "-o"])
        .arg(out)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn sluice(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends SIGINT (rtmpdump and ffmpeg finish their files on it).
/// `sluice play` of `name` on `server` into `file` in its folder, with
/// `extra` flags (`--until-unpublish`, `--duration 9`...).
pub fn sluice_play(server: &Server, name: &str, file: &str, extra: &[&str]) -> (Child, PathBuf) {
    let out = server.path(file);
    let url = server.url(name);
    let o = out.to_str().unwrap().to_owned();
    let mut args: Vec<&str> = vec!["play", &url, "-o", &o];
    args.extend_from_slice(extra);
    (sluice(&args), out)
}

pub fn interrupt(child: &Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
}

/// One request seen by [`HookServer`].
#[derive(Debug, Clone)]
pub struct HookReq {
    pub method: String,
    pub path: String,
    pub content_type: String,
    /// The form fields, from the body (POST) or the query (GET), in order.
    pub fields: Vec<(String, String)>,
    pub raw: String,
}

impl HookReq {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
    pub fn keys(&self) -> Vec<&str> {
        self.fields.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// What the hook server answers: status, optional Location, delay.
pub type HookRule = dyn Fn(&HookReq) -> (u16, Option<String>, Duration) + Send + Sync;

/// A plain HTTP/1.1 server on loopback that records every request and
/// answers by a rule, standing in for an auth backend.
pub struct HookServer {
    pub port: u16,
    reqs: std::sync::Arc<std::sync::Mutex<Vec<HookReq>>>,
}

fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), unescape(v))
        })
        .collect()
}

pub fn unescape(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(x) = u8::from_str_radix(&v[i + 1..i + 3], 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl HookServer {
    pub fn start(
        rule: impl Fn(&HookReq) -> (u16, Option<String>, Duration) + Send + Sync + 'static,
    ) -> HookServer {
        use std::io::{BufRead, BufReader, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let reqs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let rule: std::sync::Arc<HookRule> = std::sync::Arc::new(rule);
        let r2 = reqs.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let reqs = r2.clone();
                let rule = rule.clone();
                std::thread::spawn(move || {
                    let mut rd = BufReader::new(conn.try_clone().unwrap());
                    let mut w = conn;
                    loop {
                        let mut line = String::new();
                        if rd.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut parts = line.split_whitespace();
                        let method = parts.next().unwrap_or_default().to_owned();
                        let target = parts.next().unwrap_or_default().to_owned();
                        let mut len = 0;
                        let mut ctype = String::new();
                        loop {
                            let mut h = String::new();
                            if rd.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            let (k, v) = h.split_once(':').unwrap_or((h, ""));
                            match k.to_ascii_lowercase().as_str() {
                                "content-length" => len = v.trim().parse().unwrap_or(0),
                                "content-type" => ctype = v.trim().to_owned(),
                                _ => {}
                            }
                        }
                        let mut body = vec![0; len];
                        if std::io::Read::read_exact(&mut rd, &mut body).is_err() {
                            return;
                        }
                        let body = String::from_utf8_lossy(&body).into_owned();
                        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                        let raw = if method == "GET" {
                            query.to_owned()
                        } else {
                            body
                        };
                        let req = HookReq {
                            method,
                            path: path.to_owned(),
                            content_type: ctype,
                            fields: parse_form(&raw),
                            raw,
                        };
                        reqs.lock().unwrap().push(req.clone());
                        let (status, location, delay) = rule(&req);
                        std::thread::sleep(delay);
                        let loc = location
                            .map(|l| format!("Location: {l}\r\n"))
                            .unwrap_or_default();
                        let resp = format!("HTTP/1.1 {status} X\r\n{loc}Content-Length: 0\r\n\r\n");
                        if w.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        HookServer { port, reqs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<HookReq> {
        self.reqs.lock().unwrap().clone()
    }

    /// Waits until a request for `path` has arrived.
    pub fn wait_for(&self, path: &str, limit: Duration) -> HookReq {
        let t = Instant::now();
        loop {
            if let Some(r) = self.requests().into_iter().find(|r| r.path == path) {
                return r;
            }
            assert!(
                t.elapsed() < limit,
                "no {path} call; got {:?}",
                self.requests()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A synthetic FLV: AVC and AAC sequence headers, then 25 fps video with a
/// keyframe every 25 frames (6 KiB keyframes, 1.5 KiB others) and 1024-sample
/// AAC frames at 44.1 kHz. Every payload carries its index (bytes 5..9), so
/// gaps and duplicates show. Payloads need not decode; the server only reads
/// their headers.
pub fn synthetic_flv(video_frames: u32, audio_frames: u32) -> Vec<u8> {
    use sluice::flv;
    let mut out = bytes::BytesMut::new();
    out.extend_from_slice(&flv::file_header(true, true));
    flv::write_tag(
        flv::TAG_VIDEO,
        0,
        &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f],
        &mut out,
    );
    flv::write_tag(flv::TAG_AUDIO, 0, &[0xaf, 0, 0x12, 0x10], &mut out);
    let mut tags: Vec<(u32, u8, Vec<u8>)> = Vec::new();
    for i in 0..video_frames {
        let key = i % 25 == 0;
        let mut body = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        body.extend_from_slice(&i.to_be_bytes());
        body.resize(if key { 6144 } else { 1536 }, i as u8);
        tags.push((i * 40, flv::TAG_VIDEO, body));
    }
    for i in 0..audio_frames {
        let mut body = vec![0xaf, 1, 0, 0, 0];
        body.extend_from_slice(&i.to_be_bytes());
        body.resize(200, i as u8);
        tags.push((
            (i as u64 * 1024 * 1000 / 44100) as u32,
            flv::TAG_AUDIO,
            body,
        ));
    }
    tags.sort_by_key(|t| t.0);
    for (ts, kind, body) in tags {
        flv::write_tag(kind, ts, &body, &mut out);
    }
    out.to_vec()
}

/// A `Vm*:` field of /proc/PID/status, in KiB (0 when unreadable).
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A Sluice server in this process with one `live` application on a free
/// loopback port: its address and shared state (for white-box checks).
pub async fn in_process() -> (std::net::SocketAddr, std::sync::Arc<sluice::server::Shared>) {
    let conf = "rtmp { server { listen 127.0.0.1:0; application live { live on; } } }";
    let config = sluice::config::Config::parse(conf, "test").unwrap();
    let server = sluice::server::Server::bind(config, sluice::modules::all())
        .await
        .unwrap();
    let addr = server.local_addrs()[0];
    let shared = server.shared();
    tokio::spawn(server.run(std::future::pending()));
    (addr, shared)
}

/// A plain HTTP/1.0 GET: (status, body).
pub fn http_get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Write::write_fmt(
        &mut s,
        format_args!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n"),
    )
    .unwrap();
    let mut all = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut all);
    let text = String::from_utf8_lossy(&all);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| all[i + 4..].to_vec())
        .unwrap_or_default();
    (status, body)
}

/// ffmpeg publishing a generated source with Go Away declared through
/// rtmp_conn, logging at verbose so an unknown message type 0x20 shows.
pub fn ffmpeg_publish_goaway(src: &std::path::Path, url: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "verbose", "-re", "-i"])
        .arg(src)
        .args(["-c", "copy", "-rtmp_conn", "O:1 NB:supportsGoAway:1 O:0"])
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The codec names ffprobe finds at `url` (a file, or an HTTP URL), one per
/// line.
pub fn probe_codecs(url: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name"])
        .args(["-of", "csv=p=0", url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sluice check -c PATH`: whether it passed, and what it printed on stderr.
pub fn check_config(path: &Path) -> (bool, String) {
    let o = Command::new(BIN)
        .args(["check", "-c"])
        .arg(path)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}
