//! Runs a [`Recording`] against a stream's ring and the filesystem.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::Local;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

use super::{Op, Recording};
use tokio::sync::mpsc;

use crate::config::RecorderConf;
use crate::live::{Delivery, Stream, StreamKey};

/// Called with the recorder id and a file's path, on the recorder's task.
pub type Hook = Box<dyn Fn(&str, &Path) + Send + Sync>;

/// What the rest of the server hears from a recorder.
pub struct Events {
    /// A file was opened (`record_notify`: NetStream.Record.Start).
    pub opened: Hook,
    /// A file was finished (`on_record_done`, NetStream.Record.Stop).
    pub done: Hook,
}

/// `record/start|stop` from /control: open or close a file now. The reply
/// is the path opened or closed, or None when there was nothing to do (a
/// file already open, or none open).
pub struct Ctl {
    pub start: bool,
    pub reply: tokio::sync::oneshot::Sender<Option<PathBuf>>,
}

/// The control inboxes of running recorders, by stream and recorder id.
#[derive(Default)]
pub struct Controls {
    map: std::sync::Mutex<std::collections::HashMap<(StreamKey, String), mpsc::Sender<Ctl>>>,
}

impl Controls {
    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(StreamKey, String), mpsc::Sender<Ctl>>>
    {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The inbox of recorder `rec` of stream `key`, if it runs.
    pub fn get(&self, key: &StreamKey, rec: &str) -> Option<mpsc::Sender<Ctl>> {
        self.map().get(&(key.clone(), rec.to_owned())).cloned()
    }
}

/// Write buffer per open file. Larger writes go straight through.
const BUF: usize = 256 << 10;

/// Starts recording `stream` (just published) as `conf` says. The task
/// ends when publishing stops, the publisher changes, or a write fails.
pub fn spawn(
    stream: Arc<Stream>,
    conf: RecorderConf,
    key: StreamKey,
    controls: Arc<Controls>,
    events: Events,
) {
    // Subscribe now, before the publisher's first frame can be pushed.
    let (_, mut rx) = stream.subscribe_quiet();
    let (ctl_tx, mut ctl) = mpsc::channel::<Ctl>(4);
    let slot = (key.clone(), conf.id.clone());
    controls.map().insert(slot.clone(), ctl_tx.clone());
    let name = key.name;
    tokio::spawn(async move {
        // Unregisters this recorder however the task ends, unless a newer
        // recorder of the same stream took the slot.
        let _guard = Unregister {
            controls,
            slot,
            tx: ctl_tx,
        };
        let id = conf.id.clone();
        let mut io = FileIo {
            file: None,
            lock: conf.lock,
        };
        let mut rec = Recording::new(conf, &name);
        let mut ops = Vec::new();
        rec.start(Instant::now(), Local::now(), &mut ops);
        loop {
            if let Err(e) = io.run(&mut ops, &id, &events).await {
                warn!(recorder = id, stream = name, path = %io.path_str(), "recorder stopped: {e}");
                return;
            }
            let d = tokio::select! {
                d = rx.recv() => d,
                Some(c) = ctl.recv() => {
                    let before = ops.len();
                    if c.start {
                        rec.open_on_request(Instant::now(), Local::now(), &mut ops);
                    } else {
                        rec.close_file("record/stop", &mut ops);
                    }
                    let path = ops[before..].iter().find_map(|op| match op {
                        Op::Open { path, .. } | Op::Close { path, .. } => Some(path.clone()),
                        Op::Write(_) => None,
                    });
                    let _ = c.reply.send(path);
                    continue;
                }
            };
            match d {
                Ok(Delivery::Frame(f)) => rec.on_frame(&f, Instant::now(), Local::now(), &mut ops),
                Ok(Delivery::PublishStart) | Ok(Delivery::PublishStop) | Err(RecvError::Closed) => {
                    rec.stop("publishing ended", &mut ops);
                    if let Err(e) = io.run(&mut ops, &id, &events).await {
                        warn!(recorder = id, stream = name, "recorder stopped: {e}");
                    }
                    return;
                }
                Err(RecvError::Lagged(n)) => {
                    warn!(
                        recorder = id,
                        stream = name,
                        missed = n,
                        "recorder fell behind the stream; skipping to the next keyframe"
                    );
                    rec.lagged();
                }
            }
        }
    });
}

struct Unregister {
    controls: Arc<Controls>,
    slot: (StreamKey, String),
    tx: mpsc::Sender<Ctl>,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        let mut m = self.controls.map();
        if m.get(&self.slot).is_some_and(|t| t.same_channel(&self.tx)) {
            m.remove(&self.slot);
        }
    }
}

struct FileIo {
    file: Option<(BufWriter<tokio::fs::File>, PathBuf)>,
    /// `record_lock`: hold an exclusive lock on the file while writing.
    lock: bool,
}

impl FileIo {
    fn path_str(&self) -> String {
        self.file
            .as_ref()
            .map(|(_, p)| p.display().to_string())
            .unwrap_or_default()
    }

    async fn run(&mut self, ops: &mut Vec<Op>, id: &str, events: &Events) -> std::io::Result<()> {
        for op in ops.drain(..) {
            match op {
                Op::Open { path, append } => {
                    let f = create(path.clone(), append, self.lock).await?;
                    info!(recorder = id, path = %path.display(), "recording");
                    (events.opened)(id, &path);
                    self.file = Some((BufWriter::with_capacity(BUF, f), path));
                }
                Op::Write(b) => {
                    if let Some((f, _)) = self.file.as_mut() {
                        f.write_all(&b).await?;
                    }
                }
                Op::Close { path, why } => {
                    if let Some((mut f, _)) = self.file.take() {
                        f.flush().await?;
                        f.into_inner().sync_all().await?;
                    }
                    info!(recorder = id, path = %path.display(), why, "recording done");
                    (events.done)(id, &path);
                }
            }
        }
        Ok(())
    }
}

/// Creates (truncates) a recording, or opens it to append, locked when asked: other processes that
/// honour advisory locks (a mover, an uploader) then wait for it to finish.
async fn create(path: PathBuf, append: bool, lock: bool) -> std::io::Result<tokio::fs::File> {
    let f = tokio::task::spawn_blocking(move || {
        let mut o = std::fs::OpenOptions::new();
        if append {
            o.append(true).create(true);
        } else {
            o.write(true).create(true).truncate(true);
        }
        let f = o.open(&path).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))
        })?;
        if lock {
            f.try_lock().map_err(|e| {
                std::io::Error::other(format!("cannot lock {}: {e}", path.display()))
            })?;
        }
        Ok::<_, std::io::Error>(f)
    })
    .await
    .map_err(std::io::Error::other)??;
    Ok(tokio::fs::File::from_std(f))
}
