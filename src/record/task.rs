//! Runs a [`Recording`] against a stream's ring and the filesystem.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::Local;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

use super::{Op, Recording};
use crate::config::RecorderConf;
use crate::live::{Delivery, Stream};

/// Called with each finished file's path: fires `on_record_done`. Built by
/// the server, which knows the session's notification fields.
pub type DoneHook = Box<dyn Fn(&str, &Path) + Send + Sync>;

/// Write buffer per open file. Larger writes go straight through.
const BUF: usize = 256 << 10;

/// Starts recording `stream` (just published) as `conf` says. The task
/// ends when publishing stops, the publisher changes, or a write fails.
pub fn spawn(stream: Arc<Stream>, conf: RecorderConf, name: String, done: DoneHook) {
    // Subscribe now, before the publisher's first frame can be pushed.
    let (_, mut rx) = stream.subscribe_quiet();
    tokio::spawn(async move {
        let id = conf.id.clone();
        let mut rec = Recording::new(conf, &name);
        let mut io = FileIo::default();
        let mut ops = Vec::new();
        rec.start(Instant::now(), Local::now(), &mut ops);
        loop {
            if let Err(e) = io.run(&mut ops, &id, &done).await {
                warn!(recorder = id, stream = name, path = %io.path_str(), "recorder stopped: {e}");
                return;
            }
            match rx.recv().await {
                Ok(Delivery::Frame(f)) => rec.on_frame(&f, Instant::now(), Local::now(), &mut ops),
                Ok(Delivery::PublishStart) | Ok(Delivery::PublishStop) | Err(RecvError::Closed) => {
                    rec.stop("publishing ended", &mut ops);
                    if let Err(e) = io.run(&mut ops, &id, &done).await {
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

#[derive(Default)]
struct FileIo {
    file: Option<(BufWriter<tokio::fs::File>, PathBuf)>,
}

impl FileIo {
    fn path_str(&self) -> String {
        self.file
            .as_ref()
            .map(|(_, p)| p.display().to_string())
            .unwrap_or_default()
    }

    async fn run(&mut self, ops: &mut Vec<Op>, id: &str, done: &DoneHook) -> std::io::Result<()> {
        for op in ops.drain(..) {
            match op {
                Op::Open(path) => {
                    let f = tokio::fs::File::create(&path).await.map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("cannot create {}: {e}", path.display()),
                        )
                    })?;
                    info!(recorder = id, path = %path.display(), "recording");
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
                    done(id, &path);
                }
            }
        }
        Ok(())
    }
}
