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

/// How messages are framed for this player: written once, in the
/// blocking read, straight into the bytes the socket gets.
#[derive(Debug, Clone, Copy)]
pub struct Wire {
    pub chunk_size: usize,
    pub stream_id: u32,
}

impl Wire {
    fn put(&self, kind: Kind, ts: u32, body: &[u8], out: &mut BytesMut) {
        use crate::rtmp::message::csid;
        let cs = match kind {
            Kind::Audio => csid::AUDIO,
            Kind::Video => csid::VIDEO,
            Kind::Data => csid::DATA,
        };
        crate::rtmp::chunk::encode_message(
            cs,
            ts,
            kind.type_id(),
            self.stream_id,
            body,
            self.chunk_size,
            out,
        );
    }
}

#[derive(Debug)]
pub enum Event {
    /// Chunked messages to write now, in order.
    Send(Bytes),
    /// Every sample was sent; `last_ts` is the last one's timestamp.
    End { last_ts: u32 },
    /// The file could not be read.
    Failed(String),
}

type Read = JoinHandle<io::Result<(usize, u32, Bytes)>>;

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
    wire: Wire,
    /// Try the page cache first (off once the file's filesystem says it
    /// cannot tell).
    try_cached: bool,
}

impl Vod {
    /// A play of `index` from `start_ms` (the keyframe at or before it).
    pub fn new(index: Arc<Index>, src: Arc<FileSource>, start_ms: u64, wire: Wire) -> Vod {
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
            wire,
            try_cached: true,
        }
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Timestamp of the last sample sent.
    pub fn last_ts(&self) -> u32 {
        self.last_ts
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
                    Ok(Ok(done)) => self.deliver(done),
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
                    // From the page cache, here, when the batch is there
                    // (a file being played usually is): no thread hop.
                    if self.try_cached {
                        match batch(&self.index, &*self.src, range.clone(), self.wire, true) {
                            Ok(done) => return self.deliver(done),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                                self.try_cached = false;
                            }
                            Err(e) => {
                                self.ended = true;
                                return Event::Failed(e.to_string());
                            }
                        }
                    }
                    let (index, src, w) = (self.index.clone(), self.src.clone(), self.wire);
                    self.reading = Some(tokio::task::spawn_blocking(move || {
                        batch(&index, &*src, range, w, false)
                    }));
                }
            }
        }
    }

    /// Hands over a batch read: the cursor moves past it.
    fn deliver(&mut self, (end, last_ts, wire): (usize, u32, Bytes)) -> Event {
        let first_ts = self.index.samples.get(self.pacer.pos).map_or(0, |s| s.ts);
        self.pacer.sent(end);
        self.last_ts = last_ts;
        match self.preamble(first_ts) {
            Some(mut b) => {
                b.extend_from_slice(&wire);
                Event::Send(b.freeze())
            }
            None => Event::Send(wire),
        }
    }

    /// Metadata and headers owed before samples at `ts`, chunked.
    fn preamble(&mut self, ts: u32) -> Option<BytesMut> {
        let meta = std::mem::take(&mut self.meta_due);
        let headers = std::mem::take(&mut self.headers_due);
        if !meta && !headers {
            return None;
        }
        let mut b = BytesMut::new();
        if meta {
            let body = crate::rtmp::amf::encode_all(&self.index.meta);
            self.wire.put(Kind::Data, 0, &body, &mut b);
        }
        if headers {
            for (kind, body) in &self.index.headers {
                self.wire.put(*kind, ts, body, &mut b);
            }
        }
        Some(b)
    }
}

/// Reads samples `range`, each as one RTMP body (its FLV tag header, then
/// its bytes) handed to `sink` with its kind and timestamp. Returns the end
/// of the range. One scratch buffer serves the whole batch.
pub fn read_with(
    index: &Index,
    src: &(impl ReadAt + ?Sized),
    range: std::ops::Range<usize>,
    sink: impl FnMut(Kind, u32, &[u8]),
) -> io::Result<usize> {
    read_samples(index, src, range, false, sink)
}

/// [`read_with`], `cached`: from the page cache only, failing with
/// `WouldBlock` as soon as a sample is not there.
fn read_samples(
    index: &Index,
    src: &(impl ReadAt + ?Sized),
    range: std::ops::Range<usize>,
    cached: bool,
    mut sink: impl FnMut(Kind, u32, &[u8]),
) -> io::Result<usize> {
    let samples = index.samples.get(range.clone()).unwrap_or_default();
    let mut buf = BytesMut::new();
    for s in samples {
        if s.size > MAX_SAMPLE {
            tracing::warn!(size = s.size, ts = s.ts, "play: sample too large, skipped");
            continue;
        }
        buf.clear();
        index.prefix(s, &mut buf);
        let at = buf.len();
        buf.resize(at + s.size as usize, 0);
        if cached {
            src.read_exact_at_cached(&mut buf[at..], s.offset)?;
        } else {
            src.read_exact_at(&mut buf[at..], s.offset)?;
        }
        sink(index.kind(s), s.ts, &buf);
    }
    Ok(range.end)
}

/// Samples `range` chunked for `w`: (end of the range, last timestamp,
/// bytes to write).
fn batch(
    index: &Index,
    src: &(impl ReadAt + ?Sized),
    range: std::ops::Range<usize>,
    w: Wire,
    cached: bool,
) -> io::Result<(usize, u32, Bytes)> {
    let mut out = BytesMut::new();
    let mut last = 0;
    let end = read_samples(index, src, range, cached, |kind, ts, body| {
        last = ts;
        w.put(kind, ts, body, &mut out);
    })?;
    Ok((end, last, out.freeze()))
}

/// [`read_with`] into one message each (tests and fuzzing).
pub fn read(
    index: &Index,
    src: &(impl ReadAt + ?Sized),
    range: std::ops::Range<usize>,
) -> io::Result<(usize, Vec<Out>)> {
    let mut outs = Vec::new();
    let end = read_with(index, src, range, |kind, ts, body| {
        outs.push(Out {
            kind,
            ts,
            body: Bytes::copy_from_slice(body),
        })
    })?;
    Ok((end, outs))
}
