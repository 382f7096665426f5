//! Binary upgrade on SIGUSR2: the old process hands every live connection
//! (socket and protocol state) to the binary at its own path, so a legacy
//! ffmpeg publisher and rtmpdump and ffmpeg players keep their TCP
//! connections and lose nothing. And a new binary that fails leaves the
//! old process serving everything.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A server run from its own copy of the binary, so a test can replace
/// the file the way a package upgrade does.
struct Installed {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Installed {
    fn start(port: u16, http: u16) -> Installed {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("sluice");
        std::fs::copy(BIN, &exe).unwrap();
        let conf = format!(
            "pid {d}/sluice.pid;
rtmp {{ drain_timeout 2s; server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}
http {{ server {{ listen 127.0.0.1:{http}; location /stat {{ rtmp_stat all; }} }} }}",
            d = dir.path().display()
        );
        let path = dir.path().join("sluice.conf");
        std::fs::write(&path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(&exe)
            .args(["serve", "-c"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        assert!(
            until(Duration::from_secs(10), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "server did not start"
        );
        Installed { child, dir, port }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("server.log")).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        until(limit, || self.log().contains(needle))
    }

    fn pid_file(&self) -> Option<u32> {
        std::fs::read_to_string(self.path("sluice.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn url(&self, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}", self.port)
    }

    fn usr2(&self) {
        kill("-USR2", self.child.id());
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        // The new process is not our child: find it through the pid file.
        if let Some(pid) = self.pid_file() {
            kill("-KILL", pid);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kill(sig: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// The recording holds every frame of the source from its first on, once,
/// in order (to the end with `to_end`), and decodes without an error.
fn assert_whole(src: &Path, rec: &Path, who: &str, to_end: bool) {
    let sent = coded_frames(src);
    let got = coded_frames(rec);
    assert!(got.len() > 200, "{who} got {} frames", got.len());
    let start = sent
        .iter()
        .position(|f| *f == got[0])
        .unwrap_or_else(|| panic!("{who}: the recording starts with a source frame"));
    let end = if to_end {
        sent.len()
    } else {
        (start + got.len()).min(sent.len())
    };
    assert_eq!(
        &sent[start..end],
        &got[..],
        "{who}: every frame from the join on, once, in order ({} sent from the join, {} got)",
        sent.len() - start,
        got.len()
    );
    assert_eq!(decode_errors(rec), "", "{who}: decode errors");
}

#[test]
fn sigusr2_hands_every_connection_to_the_new_binary() {
    let (port, http) = (free_port(), free_port());
    let mut old = Installed::start(port, http);
    let old_pid = old.child.id();
    assert_eq!(old.pid_file(), Some(old_pid));
    let src = make_source(old.dir.path(), 20);
    let url = old.url("cam");
    let publisher = ffmpeg_publish_file(&src, &url);
    std::thread::sleep(Duration::from_millis(1500));
    let rec_dump = old.path("rtmpdump.flv");
    let dump = rtmpdump(&url, &rec_dump, &[]);
    let rec_ff = old.path("ffmpeg.flv");
    // ffmpeg does not leave a live stream that ended (nor on SIGINT then):
    // it stops by itself after 14 s, well after the upgrade.
    let ff = ffmpeg_play(&url, &rec_ff, &["-t", "14"]);
    // A client stalled in its handshake cannot be moved: it must not hold
    // the others up (it stays with the old process, which drains it).
    let stalled = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Mid-GOP (a keyframe every second), with everyone streaming.
    std::thread::sleep(Duration::from_millis(3400));
    old.usr2();
    assert!(
        old.wait_log(
            "upgrade: the new process took over",
            Duration::from_secs(20)
        ),
        "{}",
        old.log()
    );
    let log = old.log();
    assert!(
        log.contains("connections=3 kept=0") && log.contains("left=1"),
        "the three streaming connections move, the stalled one stays: {log}"
    );
    let pause: u64 = log
        .split("pause_ms=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("pause_ms logged");
    assert!(
        pause < 3000,
        "the stalled client held the handover up: {pause} ms"
    );
    drop(stalled);
    // The pid file names the new process, the old one exits.
    let new_pid = old.pid_file().expect("pid file");
    assert_ne!(new_pid, old_pid);
    assert!(alive(new_pid));
    let t = Instant::now();
    while old.child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "old process still running: {}",
            old.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!old.path("sluice.pid.oldbin").exists());

    // The publisher never lost its connection.
    let out = wait_for(publisher, Duration::from_secs(40));
    assert!(
        out.status.success(),
        "ffmpeg publisher: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        old.log()
    );
    // Players keep waiting after a live stream ends: stop them once they
    // have had time to write the last frames.
    std::thread::sleep(Duration::from_millis(1500));
    interrupt(&dump);
    wait_for(dump, Duration::from_secs(15));
    let ff = wait_for(ff, Duration::from_secs(15));
    assert!(
        ff.status.success(),
        "{}",
        String::from_utf8_lossy(&ff.stderr)
    );
    assert_whole(&src, &rec_dump, "rtmpdump", true);
    assert_whole(&src, &rec_ff, "ffmpeg player", false);

    // No done or disconnect happened for them in the old process, and the
    // new one closed them in the end as its own.
    let log = old.log();
    assert_eq!(log.matches("handed over to the new process").count(), 3);
    assert!(
        log.contains("role=\"publisher\"") && log.contains("reason=\"peer closed\""),
        "{log}"
    );
    // /stat is the new process's, and it knows the stream's history.
    let (code, _) = http_get(http, "/stat");
    assert_eq!(code, 200);
}

#[test]
fn a_failed_upgrade_leaves_the_old_process_serving() {
    let (port, http) = (free_port(), free_port());
    let mut old = Installed::start(port, http);
    let pid = old.child.id();
    let src = make_source(old.dir.path(), 8);
    let url = old.url("cam");
    let publisher = ffmpeg_publish_file(&src, &url);
    std::thread::sleep(Duration::from_millis(1000));
    let rec = old.path("rtmpdump.flv");
    let dump = rtmpdump(&url, &rec, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    // The new binary exits at once.
    let exe = old.path("sluice");
    std::fs::remove_file(&exe).unwrap();
    std::fs::write(&exe, "#!/bin/sh\nexit 3\n").unwrap();
    Command::new("chmod").arg("755").arg(&exe).status().unwrap();
    old.usr2();
    assert!(
        old.wait_log("upgrade failed", Duration::from_secs(20)),
        "{}",
        old.log()
    );
    assert!(
        old.log().contains("exit status: 3"),
        "the reason is logged: {}",
        old.log()
    );
    assert!(old.child.try_wait().unwrap().is_none(), "old process alive");
    assert_eq!(old.pid_file(), Some(pid), "pid file restored");
    assert!(!old.path("sluice.pid.oldbin").exists());
    // New connections are accepted again.
    let short = make_source(old.dir.path(), 1);
    let o = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(&short)
        .args(["-c", "copy", "-f", "flv", &old.url("other")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // And the streams in progress lost nothing.
    let out = wait_for(publisher, Duration::from_secs(30));
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(1500));
    interrupt(&dump);
    wait_for(dump, Duration::from_secs(15));
    let sent = coded_frames(&src);
    let got = coded_frames(&rec);
    let start = sent.iter().position(|f| *f == got[0]).unwrap();
    assert_eq!(&sent[start..], &got[..]);
}
