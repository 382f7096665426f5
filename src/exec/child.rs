//! Running exec children: one-shot commands, and managed children that are
//! respawned while they are wanted and stopped when they are not.
//!
//! Every child runs in its own process group, so stopping it reaches what
//! it started too (a shell and its ffmpeg). Every child is waited for by
//! the task that started it: no zombie is left, whatever happens. Its
//! stdin and stdout are /dev/null and its stderr goes to the log at debug
//! level, line by line, unless the command redirects them.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::eval::{Prepared, Redirect};

/// How long a stopped child may take to exit before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Longest stderr line logged; the rest of a longer one is cut.
const MAX_LINE: usize = 1024;

/// Where one of a child's standard streams goes.
enum Slot {
    Null,
    Log,
    File(std::fs::File),
}

fn open(r: &Redirect) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    match r {
        Redirect::Write { path, append, .. } => {
            if *append {
                o.append(true).create(true);
            } else {
                o.write(true).create(true).truncate(true);
            }
            o.open(path)
        }
        Redirect::Read { path, .. } => o.read(true).open(path),
        Redirect::Dup { .. } => Err(std::io::Error::other("not a file")),
    }
}

fn stdio(slot: &Slot) -> std::io::Result<Stdio> {
    Ok(match slot {
        Slot::Null => Stdio::null(),
        Slot::Log => Stdio::piped(),
        Slot::File(f) => Stdio::from(f.try_clone()?),
    })
}

/// Starts `cmd` in its own process group; `label` names it in logs.
fn spawn(cmd: &Prepared, label: &str) -> std::io::Result<Child> {
    let mut slots = [Slot::Null, Slot::Null, Slot::Log];
    for r in &cmd.redirects {
        let (fd, slot) = match r {
            Redirect::Write { fd, .. } | Redirect::Read { fd, .. } => (*fd, Slot::File(open(r)?)),
            Redirect::Dup { fd, to } => {
                let src = slots.get(*to as usize).ok_or_else(|| {
                    std::io::Error::other(format!("cannot redirect to descriptor {to}"))
                })?;
                let s = match src {
                    Slot::Null => Slot::Null,
                    Slot::Log => Slot::Log,
                    Slot::File(f) => Slot::File(f.try_clone()?),
                };
                (*fd, s)
            }
        };
        match slots.get_mut(fd as usize) {
            Some(s) => *s = slot,
            None => warn!(
                exec = label,
                fd, "exec: only descriptors 0, 1 and 2 can be redirected"
            ),
        }
    }
    let mut c = Command::new(&cmd.program);
    c.args(&cmd.args)
        .stdin(stdio(&slots[0])?)
        .stdout(stdio(&slots[1])?)
        .stderr(stdio(&slots[2])?)
        .process_group(0)
        .kill_on_drop(false);
    let mut child = c.spawn()?;
    let outputs = [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn ReadPipe>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn ReadPipe>),
    ];
    for pipe in outputs.into_iter().flatten() {
        tokio::spawn(log_lines(pipe, label.to_owned()));
    }
    Ok(child)
}

trait ReadPipe: tokio::io::AsyncRead + Unpin + Send {}
impl<T: tokio::io::AsyncRead + Unpin + Send> ReadPipe for T {}

/// Logs what a child writes, a line at a time (ffmpeg ends its progress
/// lines with `\r`), at most [`MAX_LINE`] bytes of each.
async fn log_lines(mut pipe: Box<dyn ReadPipe>, label: String) {
    let mut buf = [0u8; 4096];
    let mut line = Vec::with_capacity(256);
    let mut cut = false;
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' || b == b'\r' {
                if !line.is_empty() {
                    debug!(exec = label, "{}", String::from_utf8_lossy(&line));
                }
                line.clear();
                cut = false;
            } else if line.len() < MAX_LINE {
                line.push(b);
            } else if !cut {
                cut = true;
            }
        }
    }
    if !line.is_empty() {
        debug!(exec = label, "{}", String::from_utf8_lossy(&line));
    }
}

/// Stops `child` with `signal` (its whole process group), then SIGKILL
/// after [`STOP_GRACE`], and reaps it.
async fn stop(child: &mut Child, signal: i32, label: &str) {
    let Some(pid) = child.id() else {
        let _ = child.wait().await;
        return;
    };
    let pg = Pid::from_raw(pid as i32);
    let sig = Signal::try_from(signal).unwrap_or(Signal::SIGKILL);
    info!(exec = label, pid, signal = %sig, "exec: stopping child");
    let _ = killpg(pg, sig);
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        warn!(exec = label, pid, "exec: child did not stop; killing it");
        let _ = killpg(pg, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    // What the child started in its group goes too.
    let _ = killpg(pg, Signal::SIGKILL);
}

/// Runs a one-shot command (`exec_publish`, `exec_record_done`...) and
/// reaps it; a command that cannot start gets one log line.
pub fn run_once(cmd: Prepared, label: String) {
    match spawn(&cmd, &label) {
        Ok(mut child) => {
            info!(
                exec = label,
                program = cmd.program,
                pid = child.id(),
                "exec: started"
            );
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(s) if s.success() => debug!(exec = label, "exec: done"),
                    Ok(s) => info!(exec = label, status = %s, "exec: command failed"),
                    Err(e) => warn!(exec = label, "exec: wait failed: {e}"),
                }
            });
        }
        Err(e) => warn!(
            exec = label,
            program = cmd.program,
            "exec: cannot start: {e}"
        ),
    }
}

/// A managed child (`exec_push`, `exec_pull`, `exec_static`): running, or
/// waiting to be respawned, until it is stopped or dropped.
pub struct Managed {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Managed {
    /// Starts `cmd`, respawned `respawn` after each exit when set.
    pub fn start(cmd: Prepared, label: String, signal: i32, respawn: Option<Duration>) -> Managed {
        let (tx, mut rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut failed_before = false;
            loop {
                match spawn(&cmd, &label) {
                    Ok(mut child) => {
                        failed_before = false;
                        info!(
                            exec = label,
                            program = cmd.program,
                            pid = child.id(),
                            "exec: started"
                        );
                        tokio::select! {
                            status = child.wait() => {
                                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                                match respawn {
                                    Some(t) => info!(exec = label, status, "exec: child exited; respawning in {t:?}"),
                                    None => info!(exec = label, status, "exec: child exited (respawn off)"),
                                }
                            }
                            _ = &mut rx => {
                                stop(&mut child, signal, &label).await;
                                return;
                            }
                        }
                    }
                    Err(e) if !failed_before => {
                        failed_before = true;
                        warn!(
                            exec = label,
                            program = cmd.program,
                            "exec: cannot start: {e}"
                        );
                    }
                    Err(e) => debug!(exec = label, "exec: cannot start again: {e}"),
                }
                let Some(t) = respawn else { return };
                tokio::select! {
                    _ = tokio::time::sleep(t) => {}
                    _ = &mut rx => return,
                }
            }
        });
        Managed {
            stop: Some(tx),
            task,
        }
    }

    /// Stops the child; the returned handle completes once it is reaped.
    pub fn stop(mut self) -> tokio::task::JoinHandle<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let (_, task) = (self.stop, self.task);
        task
    }
}
