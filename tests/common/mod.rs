//! Helpers for end-to-end tests: a `sluice serve` process on a free
//! loopback port, ffmpeg-generated sources, ffprobe counts.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sluice");

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
pub fn interrupt(child: &Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
}
