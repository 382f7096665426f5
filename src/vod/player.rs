//! One VOD play: a cursor over a shared [`Index`], paced by [`Pacer`],
//! reading the samples it is about to send (at most one batch, about
//! [`super::pacer::MAX_BATCH_BYTES`]) on a blocking thread.
//!
//! [`Vod::next`] is polled from the connection's select loop, so it is
//! cancel-safe: a read in flight is kept in `reading` and awaited again on
//! the next call; the cursor moves only when a batch is delivered.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::task::JoinHandle;

use super::index::{Index, Kind};
use super::pacer::{Pacer, Step};
use super::source::{FileSource, ReadAt};

/// The largest sample sent: an RTMP message length is 24 bits.
pub const MAX_SAMPLE: u32 = (1 << 24) - 16;

/// One message to send.
#[derive(Debug, Clone)]
pub struct Out {
    pub kind: Kind,
    pub ts: u32,
    pub body: Bytes,
}

#[derive(Debug)]
pub enum Event {
    /// Messages to send now, in order.
    Send(Vec<Out>),
    /// Every sample was sent; `last_ts` is the last one's timestamp.
    End { last_ts: u32 },
    /// The file could not be read.
    Failed(String),
}

type Read = JoinHandle<io::Result<(usize, Vec<Out>)>>;

pub struct Vod {
    index: Arc<Index>,
    src: Arc<FileSource>,
    pacer: Pacer,
    clock: Instant,
    paused: bool,
    ended: bool,
    /// Metadata and decoder headers go before the next batch (start, seek).
    meta_due: bool,
    headers_due: bool,
    reading: Option<Read>,
    last_ts: u32,
}

impl Vod {
    /// A play of `index` from `start_ms` (the keyframe at or before it).
    pub fn new(index: Arc<Index>, src: Arc<FileSource>, start_ms: u64) -> Vod {
        let pos = index.seek(start_ms);
        Vod {
            pacer: Pacer::new(pos),
            index,
            src,
            clock: Instant::now(),
            paused: false,
            ended: false,
            meta_due: true,
            headers_due: true,
            reading: None,
            last_ts: 0,
        }
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Timestamp of the last sample sent.
    pub fn last_ts(&self) -> u32 {
        self.last_ts
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Moves to the keyframe at or before `ms`; the decoder headers are
    /// sent again first. Returns the timestamp landed on.
    pub fn seek(&mut self, ms: u64) -> u32 {
        self.abort_read();
        let pos = self.index.seek(ms);
        self.pacer.restart(pos);
        self.headers_due = true;
        self.ended = false;
        self.index.samples.get(pos).map_or(0, |s| s.ts)
    }

    pub fn pause(&mut self, on: bool) {
        if on {
            self.abort_read();
        } else if self.paused {
            // Pacing resumes from where it stopped, as if starting there.
            let pos = self.pacer.pos;
            self.pacer.restart(pos);
        }
        self.paused = on;
    }

    fn abort_read(&mut self) {
        if let Some(r) = self.reading.take() {
            r.abort();
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// Waits until something is due and returns it. Never returns while
    /// paused or after the end.
    pub async fn next(&mut self, buflen_ms: u64) -> Event {
        loop {
            if self.paused || self.ended {
                return std::future::pending().await;
            }
            if let Some(r) = self.reading.as_mut() {
                let got = r.await;
                self.reading = None;
                return match got {
                    Ok(Ok((end, mut outs))) => {
                        self.pacer.sent(end);
                        if let Some(o) = outs.last() {
                            self.last_ts = o.ts;
                        }
                        let mut first = self.preamble(outs.first().map_or(0, |o| o.ts));
                        if first.is_empty() {
                            Event::Send(outs)
                        } else {
                            first.append(&mut outs);
                            Event::Send(first)
                        }
                    }
                    Ok(Err(e)) => {
                        self.ended = true;
                        Event::Failed(e.to_string())
                    }
                    Err(e) => {
                        self.ended = true;
                        Event::Failed(format!("read task: {e}"))
                    }
                };
            }
            match self
                .pacer
                .step(&self.index.samples, self.now_ms(), buflen_ms)
            {
                Step::End => {
                    self.ended = true;
                    return Event::End {
                        last_ts: self.last_ts,
                    };
                }
                Step::Wait(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Step::Send(range) => {
                    let (index, src) = (self.index.clone(), self.src.clone());
                    self.reading = Some(tokio::task::spawn_blocking(move || {
                        read(&index, &*src, range)
                    }));
                }
            }
        }
    }

    /// Metadata and headers owed before samples at `ts`.
    fn preamble(&mut self, ts: u32) -> Vec<Out> {
        let mut v = Vec::new();
        if std::mem::take(&mut self.meta_due) {
            v.push(Out {
                kind: Kind::Data,
                ts: 0,
                body: crate::rtmp::amf::encode_all(&self.index.meta),
            });
        }
        if std::mem::take(&mut self.headers_due) {
            for (kind, body) in &self.index.headers {
                v.push(Out {
                    kind: *kind,
                    ts,
                    body: body.clone(),
                });
            }
        }
        v
    }
}

/// Reads samples `range` into one buffer, split into one body each.
pub fn read(
    index: &Index,
    src: &(impl ReadAt + ?Sized),
    range: std::ops::Range<usize>,
) -> io::Result<(usize, Vec<Out>)> {
    let samples = index.samples.get(range.clone()).unwrap_or_default();
    let total: usize = samples
        .iter()
        .filter(|s| s.size <= MAX_SAMPLE)
        .map(|s| s.size as usize + 9)
        .sum();
    let mut buf = BytesMut::with_capacity(total);
    let mut outs = Vec::with_capacity(samples.len());
    for s in samples {
        if s.size > MAX_SAMPLE {
            tracing::warn!(size = s.size, ts = s.ts, "play: sample too large, skipped");
            continue;
        }
        index.prefix(s, &mut buf);
        let at = buf.len();
        buf.resize(at + s.size as usize, 0);
        src.read_exact_at(&mut buf[at..], s.offset)?;
        outs.push(Out {
            kind: index.kind(s),
            ts: s.ts,
            body: buf.split().freeze(),
        });
    }
    Ok((range.end, outs))
}
