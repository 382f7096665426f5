//! access_log side by side with Debian's nginx + libnginx-mod-rtmp: one
//! nginx.conf, the same ffmpeg sessions (a publisher with stream args, a
//! player), and the lines both write compared with what differs by nature
//! (times, byte counts, connection numbers, ports) masked. Also: SIGUSR1
//! reopens the files, as logrotate expects.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const NGINX_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

fn conf(port: u16, dir: &Path) -> String {
    let d = dir.display();
    format!(
        "load_module {NGINX_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 64; }}
rtmp {{
    log_format tagged '$connection|$remote_addr|$app|$name|$args|$command|$flashver|'
                      '$swfurl|$tcurl|$pageurl|$bytes_sent|$bytes_received|'
                      '$session_time|$session_readable_time|[$time_local]|$msec';
    access_log {d}/combined.log;
    access_log {d}/tagged.log tagged;
    server {{
        listen 127.0.0.1:{port};
        application live {{ live on; }}
    }}
}}
"
    )
}

/// Masks what differs between two servers by nature.
fn mask(line: &str) -> String {
    let mut out = String::new();
    let mut digits = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !digits {
                out.push('N');
            }
            digits = true;
        } else {
            digits = false;
            out.push(c);
        }
    }
    // Session lengths differ by a second or so: "(Ns)" and "Nm Ns" alike.
    out.replace("Nm Ns", "Ns")
}

fn lines(path: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(mask)
        .collect();
    v.sort();
    v
}

/// Runs the same publish then play through the server at `port`, then
/// waits for both lines in `log`.
fn session(port: u16, src: &Path, dir: &Path, log: &Path) {
    let p = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(src)
        .args(["-c", "copy", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/cam?key=abc"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let out = dir.join("play.flv");
    let player = play(&format!("rtmp://127.0.0.1:{port}/live/cam"), &out, "1");
    // An ffmpeg player of nginx-rtmp may not stop at -t; it stops when the
    // publisher has gone (rw_timeout).
    wait_for(player, Duration::from_secs(20));
    let o = wait_for(p, Duration::from_secs(20));
    assert!(o.status.success());
    let t = Instant::now();
    while std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .count()
        < 2
    {
        assert!(t.elapsed() < Duration::from_secs(10), "no lines in {log:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An ffmpeg player that stops after `secs` of media, or 2 s after the
/// stream stops flowing (an ffmpeg player of nginx-rtmp may not stop at
/// `-t` alone).
fn play(url: &str, out: &Path, secs: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-rw_timeout", "2000000", "-i", url, "-t", secs])
        .args(["-c", "copy", "-f", "flv"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn lines_match_nginx_rtmp_for_the_same_sessions() {
    assert!(
        Path::new(NGINX_MODULE).exists(),
        "Debian's libnginx-mod-rtmp is needed (scripts/test.sh installs it)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let src = make_source(tmp.path(), 3);

    let ndir = tmp.path().join("nginx");
    std::fs::create_dir_all(&ndir).unwrap();
    let nport = free_port();
    std::fs::write(ndir.join("nginx.conf"), conf(nport, &ndir)).unwrap();
    let nginx = Nginx(
        Command::new("/usr/sbin/nginx")
            .args(["-p"])
            .arg(&ndir)
            .args(["-c"])
            .arg(ndir.join("nginx.conf"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", nport)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "nginx did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    session(nport, &src, &ndir, &ndir.join("tagged.log"));
    drop(nginx);

    let sdir = tmp.path().join("sluice");
    std::fs::create_dir_all(&sdir).unwrap();
    let sport = free_port();
    let server = Server::with_config(&conf(sport, &sdir), sport);
    session(sport, &src, &sdir, &sdir.join("tagged.log"));

    for log in ["combined.log", "tagged.log"] {
        let (n, s) = (lines(&ndir.join(log)), lines(&sdir.join(log)));
        assert_eq!(s, n, "{log} differs from nginx-rtmp's\n{}", server.log());
        assert_eq!(n.len(), 2, "{n:?}");
    }

    // logrotate: move the file away, SIGUSR1, and the next line goes to a
    // new file at the configured path.
    let moved = sdir.join("combined.log.1");
    std::fs::rename(sdir.join("combined.log"), &moved).unwrap();
    Command::new("kill")
        .args(["-USR1", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(server.wait_log("SIGUSR1: reopening log files"));
    let url = format!("rtmp://127.0.0.1:{sport}/live/none");
    wait_for(
        play(&url, &sdir.join("x.flv"), "0.1"),
        Duration::from_secs(10),
    );
    let t = Instant::now();
    while !sdir.join("combined.log").exists() {
        assert!(t.elapsed() < Duration::from_secs(10), "not reopened");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read_to_string(&moved).unwrap().lines().count(), 2);
}
