//! The access_log module: nginx-rtmp's `access_log`, one line per
//! connection when it closes, in a `log_format` (or `combined`).
//!
//! Like nginx-rtmp's log module it remembers, per session, the last stream
//! published or played (`$name`, `$args`, `$command`) and writes at
//! disconnect. Lines go through a bounded queue to one writer task, so a
//! slow or full disk never holds a connection: when the queue is full the
//! line is dropped and counted in the log. SIGUSR1 reopens the files (what
//! logrotate sends nginx).

use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tracing::warn;

use crate::config::access_log::{LogOp, LogVar};
use crate::node::chain::{Disconnect, Module, Play, Publish};
use crate::node::Shared;

/// Lines waiting for the writer; past this they are dropped.
const QUEUE: usize = 4096;

/// What the log module remembers of a session's streams.
#[derive(Default, Clone)]
struct Entry {
    name: String,
    args: String,
    play: bool,
    publish: bool,
}

enum Msg {
    Line(PathBuf, String),
    Reopen,
}

#[derive(Default)]
pub struct AccessLog {
    sessions: Mutex<HashMap<u64, Entry>>,
    writer: OnceLock<mpsc::Sender<Msg>>,
    dropped: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The values of one line.
pub struct Line<'a> {
    pub connection: u64,
    pub remote_addr: &'a str,
    pub app: &'a str,
    pub flashver: &'a str,
    pub swfurl: &'a str,
    pub tcurl: &'a str,
    pub pageurl: &'a str,
    pub name: &'a str,
    pub args: &'a str,
    pub play: bool,
    pub publish: bool,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub session_secs: u64,
    pub now: chrono::DateTime<chrono::Local>,
}

/// At most `max - 1` bytes of `s`, on a character boundary: nginx-rtmp
/// keeps connect and stream strings in fixed buffers (`flashver` in 32
/// bytes, URLs, names and args in 256), and its log shows what they kept.
fn cut(s: &str, max: usize) -> &str {
    if s.len() < max {
        return s;
    }
    let mut end = max - 1;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Renders `ops` as nginx-rtmp does (byte counts are its 32-bit ones,
/// strings cut where its buffers end).
pub fn render(ops: &[LogOp], l: &Line) -> String {
    let mut out = String::with_capacity(128);
    for op in ops {
        match op {
            LogOp::Text(t) => out.push_str(t),
            LogOp::Var(v) => match v {
                LogVar::Connection => out.push_str(&l.connection.to_string()),
                LogVar::RemoteAddr => out.push_str(l.remote_addr),
                LogVar::App => out.push_str(cut(l.app, 256)),
                LogVar::Flashver => out.push_str(cut(l.flashver, 32)),
                LogVar::Swfurl => out.push_str(cut(l.swfurl, 256)),
                LogVar::Tcurl => out.push_str(cut(l.tcurl, 256)),
                LogVar::Pageurl => out.push_str(cut(l.pageurl, 256)),
                LogVar::Command => out.push_str(match (l.play, l.publish) {
                    (false, false) => "NONE",
                    (true, false) => "PLAY",
                    (false, true) => "PUBLISH",
                    (true, true) => "PLAY+PUBLISH",
                }),
                LogVar::Name => out.push_str(cut(l.name, 256)),
                LogVar::Args => out.push_str(cut(l.args, 256)),
                LogVar::BytesSent => out.push_str(&(l.bytes_sent as u32).to_string()),
                LogVar::BytesReceived => out.push_str(&(l.bytes_received as u32).to_string()),
                LogVar::TimeLocal => {
                    out.push_str(&l.now.format("%d/%b/%Y:%H:%M:%S %z").to_string())
                }
                LogVar::Msec => {
                    let ms = l.now.timestamp_millis();
                    out.push_str(&format!("{}.{:03}", ms / 1000, ms % 1000));
                }
                LogVar::SessionTime => out.push_str(&l.session_secs.to_string()),
                LogVar::SessionReadableTime => out.push_str(&readable(l.session_secs)),
            },
        }
    }
    out.push('\n');
    out
}

/// `1d 2h 3m 4s`, leading zero units left out, as nginx-rtmp writes it.
fn readable(v: u64) -> String {
    let (d, h, m, s) = (v / 86400, v / 3600 % 24, v / 60 % 60, v % 60);
    let mut out = String::new();
    if d > 0 {
        out.push_str(&format!("{d}d "));
    }
    if d > 0 || h > 0 {
        out.push_str(&format!("{h}h "));
    }
    if d > 0 || h > 0 || m > 0 {
        out.push_str(&format!("{m}m "));
    }
    out.push_str(&format!("{s}s"));
    out
}

/// The writer task: appends lines to their files, opened on first use and
/// again after a reopen.
async fn writer(mut rx: mpsc::Receiver<Msg>) {
    let mut files: HashMap<PathBuf, tokio::fs::File> = HashMap::new();
    let mut failed: HashMap<PathBuf, SystemTime> = HashMap::new();
    while let Some(m) = rx.recv().await {
        let (path, line) = match m {
            Msg::Reopen => {
                files.clear();
                continue;
            }
            Msg::Line(p, l) => (p, l),
        };
        if !files.contains_key(&path) {
            let open = tokio::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .await;
            match open {
                Ok(f) => {
                    files.insert(path.clone(), f);
                }
                Err(e) => {
                    // One line a minute per file, as nginx-rtmp.
                    let quiet = failed
                        .get(&path)
                        .is_some_and(|t| t.elapsed().is_ok_and(|d| d.as_secs() < 60));
                    if !quiet {
                        warn!(path = %path.display(), "access_log: cannot open: {e}");
                        failed.insert(path.clone(), SystemTime::now());
                    }
                    continue;
                }
            }
        }
        if let Some(f) = files.get_mut(&path) {
            if let Err(e) = f.write_all(line.as_bytes()).await {
                warn!(path = %path.display(), "access_log: write failed: {e}");
                files.remove(&path);
            }
        }
    }
}

impl AccessLog {
    fn note(&self, id: u64, name: &str, args: &str, publish: bool) {
        let mut s = lock(&self.sessions);
        let e = s.entry(id).or_default();
        e.name = name.to_owned();
        e.args = args.to_owned();
        if publish {
            e.publish = true;
        } else {
            e.play = true;
        }
    }
}

impl Module for AccessLog {
    fn name(&self) -> &'static str {
        "access_log"
    }

    fn start(&self, _shared: &Arc<Shared>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        if self.writer.set(tx).is_ok() {
            tokio::spawn(writer(rx));
        }
    }

    fn publish(&self, _shared: &Arc<Shared>, ev: &Publish) {
        if !ev.derived && !ev.app.access_log.is_empty() {
            self.note(ev.session.id, &ev.key.name, ev.args, true);
        }
    }

    fn play(&self, _shared: &Arc<Shared>, ev: &Play) {
        if !ev.app.access_log.is_empty() {
            self.note(ev.session.id, &ev.key.name, ev.args, false);
        }
    }

    fn disconnect(&self, _shared: &Arc<Shared>, ev: &Disconnect) {
        let entry = lock(&self.sessions)
            .remove(&ev.session.id)
            .unwrap_or_default();
        // As nginx-rtmp: a connection that never reached an application
        // (no `connect`, or a refused one) has no log line.
        let Some(app) = ev.app else { return };
        if ev.moved {
            // Logged by the new process when the session really ends.
            return;
        }
        let logs = &app.access_log;
        let Some(tx) = self.writer.get() else { return };
        if logs.is_empty() {
            return;
        }
        let f = &ev.session.fields;
        let line = Line {
            connection: ev.session.id,
            remote_addr: &f.addr,
            app: &f.app,
            flashver: &f.flashver,
            swfurl: &f.swfurl,
            tcurl: &f.tcurl,
            pageurl: &f.pageurl,
            name: &entry.name,
            args: &entry.args,
            play: entry.play,
            publish: entry.publish,
            bytes_sent: ev.bytes_out,
            bytes_received: ev.bytes_in,
            session_secs: ev.duration.as_secs(),
            now: chrono::Local::now(),
        };
        for log in logs {
            let text = render(&log.format, &line);
            if tx.try_send(Msg::Line(log.path.clone(), text)).is_err() {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    warn!(dropped = n, "access_log: writer behind; lines dropped");
                }
            }
        }
    }

    fn reopen(&self) {
        if let Some(tx) = self.writer.get() {
            let _ = tx.try_send(Msg::Reopen);
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::access_log::{compile, COMBINED};

    #[test]
    fn combined_as_nginx_rtmp_writes_it() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-30T03:04:05+01:00")
            .unwrap()
            .with_timezone(&chrono::Local);
        let l = Line {
            connection: 7,
            remote_addr: "127.0.0.1",
            app: "live",
            flashver: "FMLE/3.0 (compatible; Lavf59.27.100)",
            swfurl: "",
            tcurl: "rtmp://127.0.0.1:1935/live",
            pageurl: "",
            name: "cam",
            args: "k=v",
            play: false,
            publish: true,
            bytes_sent: 3856,
            bytes_received: (1 << 32) + 5,
            session_secs: 3723,
            now,
        };
        let text = render(&compile(COMBINED).unwrap(), &l);
        let time = now.format("%d/%b/%Y:%H:%M:%S %z").to_string();
        assert_eq!(
            text,
            format!("127.0.0.1 [{time}] PUBLISH \"live\" \"cam\" \"k=v\" - 5 3856 \"\" \"FMLE/3.0 (compatible; Lavf59.27\" (1h 2m 3s)\n")
        );
        assert_eq!(readable(59), "59s");
        assert_eq!(readable(86400 + 61), "1d 0h 1m 1s");
    }
}
