//! `sluice bench`: a load generator for any RTMP server.
//!
//! N players spread over S streams, optionally with one publisher per stream
//! looping an FLV file at real-time pace, a ramp-up rate, and churn (players
//! joining and leaving at a steady rate). With its own publishers the bench
//! matches every received frame to its sending through a shared
//! [`Timeline`], which gives end-to-end latency and exact loss: a player
//! that misses a frame sees a gap in the publisher's sequence numbers.
//!
//! It shares the machine with the server it measures, so each player is one
//! task with one reused read buffer and a [`Skimmer`] that never copies or
//! allocates per frame.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::conn::ClientConn;
use super::publish::send_tag;
use super::skim::{Skimmed, Skimmer};
use super::timeline::{track, Histogram, Timeline};
use crate::flv::{self, FlvParser, Tag};
use crate::rtmp::chunk::encode_message;
use crate::rtmp::message::{csid, types};
use crate::rtmp::RtmpUrl;
use crate::rtmp::{amf, Amf};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// `rtmp://host[:port]/app/name`; with several streams the names are
    /// `name-0`, `name-1`...
    pub url: String,
    pub players: usize,
    pub streams: usize,
    /// FLV file each stream's publisher loops; `None` plays what is there.
    pub publish: Option<std::path::PathBuf>,
    /// Players started per second; `None` starts them all at once.
    pub ramp: Option<f64>,
    /// Measured time, after the ramp.
    pub duration: Duration,
    /// Publishing time before the first player joins.
    pub warmup: Duration,
    /// Extra players joining per second, each leaving after `churn_life`.
    pub churn: Option<f64>,
    pub churn_life: Duration,
    /// Server process to sample from /proc: CPU over the window, RSS.
    pub server_pid: Option<u32>,
    /// Players read HTTP-FLV from `BASE/NAME.flv` instead of playing over
    /// RTMP (publishers still publish to `url`).
    pub http_flv: Option<String>,
    /// Players follow the HLS playlist `BASE/NAME.m3u8` and fetch its
    /// segments, as a browser player does (publishers still use `url`).
    pub hls: Option<String>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            url: String::new(),
            players: 100,
            streams: 1,
            publish: None,
            ramp: None,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            churn: None,
            churn_life: Duration::from_secs(2),
            server_pid: None,
            http_flv: None,
            hls: None,
        }
    }
}

/// What one player saw.
#[derive(Default)]
pub struct PlayerResult {
    /// Got NetStream.Play.Start or media.
    pub connected: bool,
    /// Coded frames received: audio, video.
    pub frames: [u64; 2],
    /// Frames the publisher sent between this player's first and last
    /// received frame that it never got.
    pub lost: [u64; 2],
    /// Frames received again, or out of order (at or before the last one).
    pub repeated: [u64; 2],
    /// Frames the publisher had sent that were not received at the end.
    pub behind: [u64; 2],
    /// Frames received that were published before `play` (GOP cache).
    pub cached: u64,
    /// Frames the timeline could not match (no bench publisher, or too old).
    pub unmatched: u64,
    /// Bytes read inside the measurement window.
    pub window_bytes: u64,
    pub latency: Histogram,
    /// Longest time between two coded frames arriving, in microseconds:
    /// the longest pause this player saw (a restart, an upgrade).
    pub max_gap_us: u64,
    last_arrival_us: Option<u64>,
    pub error: Option<String>,
    /// Connect start to the first coded frame, per track.
    first: [Option<Duration>; 2],
    first_seq: [Option<u64>; 2],
    last_seq: [Option<u64>; 2],
}

/// What a media message's first two bytes say.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Coded { key: bool },
    Header,
    Other,
}

fn classify(type_id: u8, head: [u8; 2]) -> Kind {
    let [h0, h1] = head;
    if type_id == types::VIDEO {
        let frame_type = (h0 >> 4) & 7;
        if frame_type == 5 {
            return Kind::Other; // command frame
        }
        let packet = if h0 & 0x80 != 0 {
            // Enhanced RTMP: packet type in the low nibble; 0 sequence
            // start, 1 coded frames, 2 sequence end, 3 coded frames X.
            match h0 & 0x0f {
                0 => return Kind::Header,
                1 | 3 => 1,
                _ => return Kind::Other,
            }
        } else if matches!(h0 & 0x0f, 7 | 12 | 13) {
            h1
        } else {
            1
        };
        match packet {
            0 => Kind::Header,
            1 => Kind::Coded {
                key: frame_type == 1,
            },
            _ => Kind::Other,
        }
    } else {
        match h0 >> 4 {
            10 if h1 == 0 => Kind::Header,
            9 if h0 & 0x0f == 0 => Kind::Header,
            _ => Kind::Coded { key: false },
        }
    }
}

impl PlayerResult {
    /// Connect start to the first coded video frame (audio if none).
    pub fn first_frame(&self) -> Option<Duration> {
        self.first[1].or(self.first[0])
    }

    /// Accounts for one coded frame received at `now_us` (bench clock) by a
    /// player that sent `play` at `play_us`.
    fn on_frame(
        &mut self,
        track: usize,
        timestamp: u32,
        timeline: Option<&Timeline>,
        now_us: u64,
        play_us: u64,
    ) {
        self.frames[track] += 1;
        if let Some(last) = self.last_arrival_us {
            self.max_gap_us = self.max_gap_us.max(now_us.saturating_sub(last));
        }
        self.last_arrival_us = Some(now_us);
        let Some((seq, sent)) = timeline.and_then(|t| t.lookup(track, timestamp)) else {
            self.unmatched += 1;
            return;
        };
        if let Some(last) = self.last_seq[track] {
            if seq > last + 1 {
                self.lost[track] += seq - last - 1;
            } else if seq <= last {
                self.repeated[track] += 1;
            }
        }
        self.first_seq[track].get_or_insert(seq);
        self.last_seq[track] = Some(self.last_seq[track].map_or(seq, |l| l.max(seq)));
        if sent >= play_us {
            self.latency.record(now_us.saturating_sub(sent));
        } else {
            self.cached += 1;
        }
    }

    fn finish(&mut self, timeline: Option<&Timeline>) {
        if let Some(t) = timeline {
            for tr in 0..2 {
                if let Some(last) = self.last_seq[tr] {
                    self.behind[tr] = t.sent(tr).saturating_sub(last + 1);
                }
            }
        }
    }
}

/// One HTTP-FLV player: a GET of the stream's `.flv`, read as it comes,
/// each tag accounted for as an RTMP player accounts for a message.
///
/// HTTP-FLV timestamps start at 0 for each client, so the publisher's are
/// recovered from the first live video frame: once the cached frames have
/// gone by (200 ms after the first), a video frame that arrives is the
/// last one the publisher sent (frames are 33 ms apart, delivery takes a
/// few). Frames before that count, but are not matched.
async fn run_http_player(
    url: &str,
    timeline: Option<&Timeline>,
    epoch: std::time::Instant,
    window: Instant,
    r: &mut PlayerResult,
    started: Instant,
) -> anyhow::Result<()> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap_or_default()
    });
    let mut resp = client.get(url).send().await?;
    if !resp.status().is_success() {
        bail!("HTTP {}", resp.status());
    }
    r.connected = true;
    let play_us = std::time::Instant::now()
        .saturating_duration_since(epoch)
        .as_micros() as u64;
    let mut parser = FlvParser::new();
    let mut buf = BytesMut::new();
    let mut first_video: Option<Instant> = None;
    let mut offset: Option<u32> = None;
    while let Some(chunk) = resp.chunk().await? {
        let now_us = std::time::Instant::now()
            .saturating_duration_since(epoch)
            .as_micros() as u64;
        if Instant::now() >= window {
            r.window_bytes += chunk.len() as u64;
        }
        buf.extend_from_slice(&chunk);
        while let Some(tag) = parser.next_tag(&mut buf)? {
            let type_id = tag.tag_type;
            if type_id != types::AUDIO && type_id != types::VIDEO {
                continue;
            }
            let d = &tag.data;
            let head = [
                d.first().copied().unwrap_or(0),
                d.get(1).copied().unwrap_or(0),
            ];
            if let Kind::Coded { .. } = classify(type_id, head) {
                let tr = track(type_id);
                r.first[tr].get_or_insert_with(|| started.elapsed());
                if let (None, Some(tl), 1) = (offset, timeline, tr) {
                    let first = *first_video.get_or_insert_with(Instant::now);
                    if first.elapsed() >= Duration::from_millis(200) {
                        offset = Some(tl.last_timestamp(1).wrapping_sub(tag.timestamp));
                    }
                }
                match offset {
                    Some(o) => {
                        r.on_frame(tr, tag.timestamp.wrapping_add(o), timeline, now_us, play_us)
                    }
                    None => r.on_frame(tr, tag.timestamp, None, now_us, play_us),
                }
            }
        }
    }
    Ok(())
}

/// One HLS player, as hls.js plays a live stream: it reloads the playlist
/// (after a target duration when it moved on, half of one when it did not),
/// starts three segments from the end and fetches each new segment whole,
/// on a keep-alive connection of its own. It counts bytes, not frames: what
/// this measures is the server's cost of serving HLS to many players.
async fn run_hls_player(url: &str, window: Instant, r: &mut PlayerResult) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()?;
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b).to_owned();
    let mut next_seq: Option<u64> = None;
    loop {
        let resp = client.get(url).send().await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            // Not published yet, or its first segment is still being cut.
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        if !resp.status().is_success() {
            bail!("HTTP {} for the playlist", resp.status());
        }
        let body = resp.bytes().await?;
        let pl = m3u8_rs::parse_media_playlist_res(&body)
            .map_err(|e| anyhow::anyhow!("playlist: {e}"))?;
        let count = pl.segments.len() as u64;
        let first = pl.media_sequence;
        let from = next_seq
            .unwrap_or(first + count.saturating_sub(3))
            .max(first);
        let mut moved = false;
        for (i, seg) in pl.segments.iter().enumerate() {
            let seq = first + i as u64;
            if seq < from {
                continue;
            }
            let seg_url = if seg.uri.contains("://") {
                seg.uri.clone()
            } else {
                format!("{base}/{}", seg.uri)
            };
            let mut resp = client.get(&seg_url).send().await?;
            if !resp.status().is_success() {
                bail!("HTTP {} for {seg_url}", resp.status());
            }
            while let Some(chunk) = resp.chunk().await? {
                if Instant::now() >= window {
                    r.window_bytes += chunk.len() as u64;
                }
            }
            r.connected = true;
            next_seq = Some(seq + 1);
            moved = true;
        }
        let target = Duration::from_secs_f64(pl.target_duration.max(1) as f64);
        tokio::time::sleep(if moved { target } else { target / 2 }).await;
    }
}

/// Where player `i` plays: the stream's RTMP URL, its HTTP-FLV URL or its
/// HLS playlist.
fn play_url(o: &BenchOptions, streams: usize, i: usize) -> String {
    let rtmp = stream_url(&o.url, streams, i);
    let name = rtmp.rsplit('/').next().unwrap_or_default();
    if let Some(base) = &o.http_flv {
        format!("{}/{name}.flv", base.trim_end_matches('/'))
    } else if let Some(base) = &o.hls {
        format!("{}/{name}.m3u8", base.trim_end_matches('/'))
    } else {
        rtmp
    }
}

fn stream_url(base: &str, streams: usize, i: usize) -> String {
    if streams <= 1 {
        base.to_owned()
    } else {
        format!("{base}-{i}")
    }
}

/// One bench player: connects, plays, then skims until `until`.
async fn player(
    url: String,
    timeline: Option<Arc<Timeline>>,
    epoch: std::time::Instant,
    window: Instant,
    until: Instant,
) -> PlayerResult {
    let mut r = PlayerResult::default();
    let started = Instant::now();
    let run = run_player(&url, timeline.as_deref(), epoch, window, &mut r, started);
    match tokio::time::timeout_at(until, run).await {
        Ok(Err(e)) => r.error = Some(format!("{e:#}")),
        Ok(Ok(())) => r.error = Some("server closed the connection".into()),
        Err(_) => {}
    }
    r.finish(timeline.as_deref());
    r
}

async fn run_player(
    url: &str,
    timeline: Option<&Timeline>,
    epoch: std::time::Instant,
    window: Instant,
    r: &mut PlayerResult,
    started: Instant,
) -> anyhow::Result<()> {
    if url.starts_with("http://") && url.ends_with(".m3u8") {
        return run_hls_player(url, window, r).await;
    }
    if url.starts_with("http://") {
        return run_http_player(url, timeline, epoch, window, r, started).await;
    }
    let url = RtmpUrl::parse(url).map_err(anyhow::Error::msg)?;
    let mut conn = ClientConn::connect(&url, vec![]).await?;
    conn.play(&url.stream).await?;
    let play_us = std::time::Instant::now()
        .saturating_duration_since(epoch)
        .as_micros() as u64;
    let parts = conn.into_parts();
    let mut sock = parts.sock;
    let mut skim = Skimmer::new(parts.chunk_size as u32);
    let mut window_ack = parts.peer_window.unwrap_or(0) as u64;
    let (mut received, mut acked) = (parts.received, parts.received);
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = parts.leftover.len().min(buf.len());
    buf[..filled].copy_from_slice(&parts.leftover[..filled]);
    let mut reply = BytesMut::new();
    loop {
        let now = std::time::Instant::now();
        let now_us = now.saturating_duration_since(epoch).as_micros() as u64;
        let mut failed = None;
        let used = skim.feed(&buf[..filled], |m| match m {
            Skimmed::Media {
                type_id,
                timestamp,
                head,
                ..
            } => {
                r.connected = true;
                if let Kind::Coded { .. } = classify(type_id, head) {
                    let tr = track(type_id);
                    r.first[tr].get_or_insert_with(|| started.elapsed());
                    r.on_frame(tr, timestamp, timeline, now_us, play_us);
                }
            }
            Skimmed::Other { type_id, body, .. } => match type_id {
                types::WINDOW_ACK_SIZE if body.len() >= 4 => {
                    window_ack = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as u64;
                }
                types::USER_CONTROL if body.len() >= 6 && body[1] == 6 => {
                    // PingRequest: answer with PingResponse (event 7).
                    let mut pong = [0u8; 6];
                    pong[1] = 7;
                    pong[2..].copy_from_slice(&body[2..6]);
                    encode_message(
                        csid::CONTROL,
                        0,
                        types::USER_CONTROL,
                        0,
                        &pong,
                        128,
                        &mut reply,
                    );
                }
                types::COMMAND_AMF0 => {
                    if let Some(code) = status(body) {
                        if code == "NetStream.Play.Start" {
                            r.connected = true;
                        } else if code.ends_with("Failed") || code.ends_with("StreamNotFound") {
                            failed = Some(code);
                        }
                    }
                }
                _ => {}
            },
        });
        let used = used.context("reading the chunk stream")?;
        if let Some(code) = failed {
            bail!("play failed: {code}");
        }
        buf.copy_within(used..filled, 0);
        filled -= used;
        if window_ack > 0 && received - acked >= window_ack {
            acked = received;
            let seq = (received as u32).to_be_bytes();
            encode_message(csid::CONTROL, 0, types::ACK, 0, &seq, 128, &mut reply);
        }
        if !reply.is_empty() {
            sock.write_all(&reply).await?;
            reply.clear();
        }
        if filled == buf.len() {
            bail!("a chunk header does not fit the read buffer");
        }
        let n = sock.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        received += n as u64;
        if Instant::now() >= window {
            r.window_bytes += n as u64;
        }
    }
}

/// The code of an `onStatus` command body.
fn status(body: &[u8]) -> Option<String> {
    let values = amf::decode_all(body).ok()?;
    if values.first().and_then(Amf::as_str) != Some("onStatus") {
        return None;
    }
    values
        .get(3)
        .and_then(|i| i.get("code"))
        .and_then(Amf::as_str)
        .map(str::to_owned)
}

/// The tags of an FLV file, read once and shared by every publisher.
pub fn load_flv(path: &Path) -> anyhow::Result<Vec<Tag>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut buf = BytesMut::from(&data[..]);
    let mut parser = FlvParser::new();
    let mut tags = Vec::new();
    while let Some(t) = parser.next_tag(&mut buf)? {
        tags.push(t);
    }
    if tags.is_empty() {
        bail!("{}: no FLV tags", path.display());
    }
    Ok(tags)
}

/// Metadata or a sequence header: sent once, not a coded frame.
/// What the publisher does with a tag: metadata and sequence headers go out
/// once; coded frames every lap (and are what players count); anything
/// else, like the AVC end-of-sequence ffmpeg writes last, is left out, as
/// it would end the stream for decoders mid-loop.
fn tag_kind(tag: &Tag) -> Kind {
    let head = [
        tag.data.first().copied().unwrap_or(0),
        tag.data.get(1).copied().unwrap_or(0),
    ];
    match tag.tag_type {
        flv::TAG_VIDEO | flv::TAG_AUDIO => classify(tag.tag_type, head),
        _ => Kind::Header,
    }
}

/// How far each lap shifts timestamps: past the latest timestamp on any
/// track (tags are in order per track, not overall: ffmpeg's audio runs
/// past its last video frame), so the next lap never goes back in time.
fn lap_span(tags: &[Tag]) -> u32 {
    let first = tags.first().map_or(0, |t| t.timestamp);
    tags.iter()
        .map(|t| t.timestamp.wrapping_sub(first))
        .max()
        .unwrap_or(0)
        + 40
}

/// Publishes `tags` in a loop at real-time pace until `until`, recording
/// every coded frame in `timeline` just before it is written. Metadata and
/// sequence headers go out once; later loops continue the timestamps.
async fn publisher(
    url: String,
    tags: Arc<Vec<Tag>>,
    timeline: Arc<Timeline>,
    until: Instant,
) -> anyhow::Result<u64> {
    let url = RtmpUrl::parse(&url).map_err(anyhow::Error::msg)?;
    let mut conn = ClientConn::connect(&url, vec![]).await?;
    conn.publish(&url.stream, "live").await?;
    let first = tags[0].timestamp;
    let span = lap_span(&tags);
    let start = Instant::now();
    let mut sent = 0u64;
    for lap in 0u32.. {
        for tag in tags.iter() {
            let kind = tag_kind(tag);
            let header = match kind {
                Kind::Header => true,
                Kind::Coded { .. } => false,
                Kind::Other => continue,
            };
            if lap > 0 && header {
                continue;
            }
            let ts = tag.timestamp.wrapping_sub(first) + lap * span;
            let due = start + Duration::from_millis(ts as u64);
            if due >= until {
                return Ok(sent);
            }
            if due > Instant::now() {
                conn.flush().await?;
                tokio::time::sleep_until(due).await;
            }
            conn.poll_incoming()?;
            let mut t = tag.clone();
            t.timestamp = ts;
            send_tag(&mut conn, &t);
            if !header {
                let type_id = if tag.tag_type == flv::TAG_VIDEO {
                    types::VIDEO
                } else {
                    types::AUDIO
                };
                timeline.record(track(type_id), ts, std::time::Instant::now());
                sent += 1;
            }
        }
    }
    Ok(sent)
}

#[derive(Default)]
pub struct BenchReport {
    pub players: Vec<PlayerResult>,
    pub churn: Vec<PlayerResult>,
    pub publisher_errors: Vec<String>,
    pub published: u64,
    /// Length of the measurement window.
    pub window: Duration,
    /// Whether frames could be matched (the bench published them).
    pub matched: bool,
    pub server: Option<ServerUsage>,
    /// This bench process's own CPU over the same window: it shares the
    /// machine's cores with the server, so its cost is reported beside
    /// the server's (a cheaper bench leaves the server more room).
    pub bench_cpu_secs: Option<f64>,
}

/// The server's CPU over the measurement window and its memory, from /proc.
#[derive(Debug, Clone, Copy)]
pub struct ServerUsage {
    pub cpu_secs: f64,
    /// RSS before any bench connection, and at the end of the window.
    pub rss_before_kb: u64,
    pub rss_end_kb: u64,
}

/// utime+stime in seconds and VmRSS in kB of `pid`.
fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are
    // the 14th and 15th fields overall.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // /proc counts in USER_HZ, which Linux fixes at 100 for this ABI.
    let hz = 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((ticks as f64 / hz, rss))
}

impl BenchReport {
    pub fn connected(&self) -> usize {
        self.players.iter().filter(|p| p.connected).count()
    }
    pub fn errors(&self) -> Vec<&str> {
        self.players
            .iter()
            .filter_map(|p| p.error.as_deref())
            .collect()
    }
    pub fn frames(&self) -> u64 {
        self.players.iter().map(|p| p.frames[0] + p.frames[1]).sum()
    }
    pub fn lost(&self) -> u64 {
        self.players.iter().map(|p| p.lost[0] + p.lost[1]).sum()
    }
    pub fn repeated(&self) -> u64 {
        self.players
            .iter()
            .map(|p| p.repeated[0] + p.repeated[1])
            .sum()
    }
    pub fn lossy_players(&self) -> usize {
        self.players
            .iter()
            .filter(|p| p.lost[0] + p.lost[1] > 0)
            .count()
    }
    /// The longest pause any player saw between two frames, in ms.
    pub fn max_gap_ms(&self) -> f64 {
        self.players.iter().map(|p| p.max_gap_us).max().unwrap_or(0) as f64 / 1e3
    }

    pub fn max_behind(&self) -> u64 {
        self.players
            .iter()
            .map(|p| p.behind[0].max(p.behind[1]))
            .max()
            .unwrap_or(0)
    }
    pub fn window_bytes(&self) -> u64 {
        self.players.iter().map(|p| p.window_bytes).sum()
    }
    pub fn mbps(&self) -> f64 {
        self.window_bytes() as f64 * 8.0 / self.window.as_secs_f64().max(1e-3) / 1e6
    }
    /// Server CPU-seconds per delivered GB; none when no media flowed
    /// (idle players receive only a few control bytes).
    pub fn cpu_per_gb(&self) -> Option<f64> {
        let gb = self.window_bytes() as f64 / 1e9;
        self.server.filter(|_| gb > 0.0).map(|s| s.cpu_secs / gb)
    }
    /// Server RSS growth per connected player, in kB.
    pub fn rss_per_player_kb(&self) -> Option<f64> {
        let n = self.connected();
        self.server
            .filter(|_| n > 0)
            .map(|s| (s.rss_end_kb as f64 - s.rss_before_kb as f64) / n as f64)
    }
    pub fn latency(&self) -> Histogram {
        let mut h = Histogram::default();
        for p in &self.players {
            h.merge(&p.latency);
        }
        h
    }
    pub fn first_frame(players: &[PlayerResult]) -> Histogram {
        let mut h = Histogram::default();
        for p in players {
            if let Some(d) = p.first_frame() {
                h.record(d.as_micros() as u64);
            }
        }
        h
    }

    /// The human summary and one `RESULT key=value...` line for scripts.
    pub fn render(&self) -> String {
        let ms = |v: Option<u64>| v.map_or("n/a".to_owned(), |v| format!("{:.2}", v as f64 / 1e3));
        let lat = self.latency();
        let ttff = Self::first_frame(&self.players);
        let errors = self.errors();
        let mut s = format!(
            "players {}/{} connected, {} errors; delivered {:.1} Mbps over {:.1} s\n",
            self.connected(),
            self.players.len(),
            errors.len(),
            self.mbps(),
            self.window.as_secs_f64()
        );
        if self.matched {
            s += &format!(
                "frames received {} lost {} ({} players with loss) repeated {}, max behind at end {}, published {}, \
                 longest pause {:.1} ms\n\
                 latency ms p50 {} p95 {} p99 {} max {} ({} samples)\n",
                self.frames(),
                self.lost(),
                self.lossy_players(),
                self.repeated(),
                self.max_behind(),
                self.published,
                self.max_gap_ms(),
                ms(lat.quantile(0.5)),
                ms(lat.quantile(0.95)),
                ms(lat.quantile(0.99)),
                ms((lat.count() > 0).then(|| lat.max())),
                lat.count()
            );
        } else {
            s += &format!(
                "frames received {} (loss and latency need --publish)\n",
                self.frames()
            );
        }
        s += &format!(
            "first frame ms p50 {} p99 {} max {}\n",
            ms(ttff.quantile(0.5)),
            ms(ttff.quantile(0.99)),
            ms((ttff.count() > 0).then(|| ttff.max()))
        );
        let churn_ttff = Self::first_frame(&self.churn);
        if !self.churn.is_empty() {
            let ok = self
                .churn
                .iter()
                .filter(|p| p.first_frame().is_some())
                .count();
            s += &format!(
                "churn joins {} got frames {} first frame ms p50 {} p99 {}\n",
                self.churn.len(),
                ok,
                ms(churn_ttff.quantile(0.5)),
                ms(churn_ttff.quantile(0.99)),
            );
        }
        if let Some(u) = self.server {
            s += &format!(
                "server cpu {:.2} s ({} CPU-s/GB), rss {} -> {} kB ({} kB per player); bench cpu {} s\n",
                u.cpu_secs,
                self.cpu_per_gb()
                    .map_or("n/a".into(), |v| format!("{v:.3}")),
                u.rss_before_kb,
                u.rss_end_kb,
                self.rss_per_player_kb()
                    .map_or("n/a".into(), |v| format!("{v:.1}")),
                self.bench_cpu_secs
                    .map_or("n/a".into(), |v| format!("{v:.2}")),
            );
        }
        if let Some(e) = errors.first() {
            s += &format!("first player error: {e}\n");
        }
        if let Some(e) = self.publisher_errors.first() {
            s += &format!("first publisher error: {e}\n");
        }
        let opt = |v: Option<u64>| v.map_or("nan".to_owned(), |v| format!("{:.3}", v as f64 / 1e3));
        s += &format!(
            "RESULT players={} connected={} errors={} mbps={:.1} frames={} lost={} repeated={} lossy_players={} \
             max_behind={} lat_p50_ms={} lat_p95_ms={} lat_p99_ms={} ttff_p50_ms={} ttff_p99_ms={} \
             churn_joins={} churn_ttff_p50_ms={} churn_ttff_p99_ms={} publisher_errors={} \
             cpu_s={} cpu_per_gb={} rss_kb={} rss_per_player_kb={} max_gap_ms={:.1} bench_cpu_s={}",
            self.players.len(),
            self.connected(),
            errors.len(),
            self.mbps(),
            self.frames(),
            self.lost(),
            self.repeated(),
            self.lossy_players(),
            self.max_behind(),
            opt(lat.quantile(0.5)),
            opt(lat.quantile(0.95)),
            opt(lat.quantile(0.99)),
            opt(ttff.quantile(0.5)),
            opt(ttff.quantile(0.99)),
            self.churn.len(),
            opt(churn_ttff.quantile(0.5)),
            opt(churn_ttff.quantile(0.99)),
            self.publisher_errors.len(),
            self.server.map_or("nan".into(), |u| format!("{:.3}", u.cpu_secs)),
            self.cpu_per_gb().map_or("nan".into(), |v| format!("{v:.3}")),
            self.server.map_or("nan".into(), |u| u.rss_end_kb.to_string()),
            self.rss_per_player_kb()
                .map_or("nan".into(), |v| format!("{v:.1}")),
            self.max_gap_ms(),
            self.bench_cpu_secs
                .map_or("nan".into(), |v| format!("{v:.3}")),
        );
        s
    }
}

/// Runs the load described by `o`.
pub async fn bench(o: &BenchOptions) -> anyhow::Result<BenchReport> {
    let streams = o.streams.max(1);
    let epoch = std::time::Instant::now();
    let tags = match &o.publish {
        Some(p) => Some(Arc::new(load_flv(p)?)),
        None => None,
    };
    let ramp_time = match o.ramp {
        Some(r) if r > 0.0 => Duration::from_secs_f64(o.players as f64 / r),
        _ => Duration::ZERO,
    };
    let before = o.server_pid.and_then(proc_usage);
    let t0 = Instant::now();
    let warmup = if tags.is_some() {
        o.warmup
    } else {
        Duration::ZERO
    };
    let window = t0 + warmup + ramp_time;
    let until = window + o.duration;
    let sampler = o.server_pid.map(|pid| {
        tokio::spawn(async move {
            tokio::time::sleep_until(window).await;
            let me = std::process::id();
            let start = (proc_usage(pid), proc_usage(me));
            tokio::time::sleep_until(until - Duration::from_millis(50)).await;
            let end = (proc_usage(pid), proc_usage(me));
            let bench = match (start.1, end.1) {
                (Some((c0, _)), Some((c1, _))) => Some(c1 - c0),
                _ => None,
            };
            Some((start.0?, end.0?, bench))
        })
    });
    let mut timelines = Vec::new();
    let mut pubs = JoinSet::new();
    for i in 0..streams {
        let tl = tags.as_ref().map(|_| Arc::new(Timeline::new(epoch)));
        if let (Some(tags), Some(tl)) = (&tags, &tl) {
            let url = stream_url(&o.url, streams, i);
            // A little past `until` so players see frames to the end.
            let stop = until + Duration::from_millis(500);
            pubs.spawn(publisher(url, tags.clone(), tl.clone(), stop));
        }
        timelines.push(tl);
    }
    tokio::time::sleep_until(t0 + warmup).await;
    let mut players = JoinSet::new();
    let gap = o
        .ramp
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(1.0 / r));
    for i in 0..o.players {
        if let Some(g) = gap {
            tokio::time::sleep_until(t0 + warmup + g * i as u32).await;
        }
        let s = i % streams;
        players.spawn(player(
            play_url(o, streams, s),
            timelines[s].clone(),
            epoch,
            window,
            until,
        ));
    }
    let mut churn = JoinSet::new();
    if let Some(rate) = o.churn.filter(|r| *r > 0.0) {
        let gap = Duration::from_secs_f64(1.0 / rate);
        let mut next = window;
        let mut i = 0usize;
        while next + o.churn_life <= until {
            tokio::time::sleep_until(next).await;
            let s = i % streams;
            // Churn players' bytes stay out of the delivered-Mbps window.
            churn.spawn(player(
                play_url(o, streams, s),
                timelines[s].clone(),
                epoch,
                until,
                next + o.churn_life,
            ));
            i += 1;
            next += gap;
        }
    }
    let mut report = BenchReport {
        window: o.duration,
        matched: tags.is_some(),
        ..Default::default()
    };
    while let Some(r) = players.join_next().await {
        report.players.push(r?);
    }
    if let (Some(s), Some((_, rss0))) = (sampler, before) {
        if let Some(((c0, _), (c1, rss1), bench)) = s.await? {
            report.bench_cpu_secs = bench;
            report.server = Some(ServerUsage {
                cpu_secs: c1 - c0,
                rss_before_kb: rss0,
                rss_end_kb: rss1,
            });
        }
    }
    while let Some(r) = churn.join_next().await {
        report.churn.push(r?);
    }
    while let Some(r) = pubs.join_next().await {
        match r? {
            Ok(n) => report.published += n,
            Err(e) => report.publisher_errors.push(format!("{e:#}")),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The end of an ffmpeg FLV: audio past the last video frame, then an
    /// AVC end-of-sequence. Laps must start after the audio (or the server
    /// clamps the next lap's first audio and players see it as lost), and
    /// the end-of-sequence is not a frame anyone counts.
    #[test]
    fn laps_follow_the_latest_track_and_skip_end_of_sequence() {
        let tag = |tag_type, timestamp, data: &'static [u8]| Tag {
            tag_type,
            timestamp,
            data: bytes::Bytes::from_static(data),
        };
        let tags = vec![
            tag(9, 0, &[0x17, 0]),
            tag(9, 0, &[0x17, 1]),
            tag(8, 23, &[0xaf, 1]),
            tag(9, 9960, &[0x27, 1]),
            tag(8, 10065, &[0xaf, 1]),
            tag(9, 9960, &[0x17, 2]),
        ];
        assert_eq!(lap_span(&tags), 10105);
        assert_eq!(tag_kind(&tags[0]), Kind::Header);
        assert_eq!(tag_kind(&tags[1]), Kind::Coded { key: true });
        assert_eq!(tag_kind(&tags[5]), Kind::Other);
    }

    #[test]
    fn classifies_legacy_and_enhanced_heads() {
        assert_eq!(classify(9, [0x17, 0]), Kind::Header);
        assert_eq!(classify(9, [0x17, 1]), Kind::Coded { key: true });
        assert_eq!(classify(9, [0x27, 1]), Kind::Coded { key: false });
        assert_eq!(classify(9, [0x17, 2]), Kind::Other);
        assert_eq!(classify(9, [0x57, 0]), Kind::Other);
        assert_eq!(classify(9, [0x90, b'h']), Kind::Header);
        assert_eq!(classify(9, [0x91, b'h']), Kind::Coded { key: true });
        assert_eq!(classify(9, [0xa3, b'h']), Kind::Coded { key: false });
        assert_eq!(classify(8, [0xaf, 0]), Kind::Header);
        assert_eq!(classify(8, [0xaf, 1]), Kind::Coded { key: false });
        assert_eq!(classify(8, [0x2f, 0]), Kind::Coded { key: false });
    }

    #[test]
    fn gaps_in_the_publisher_sequence_are_loss() {
        let epoch = std::time::Instant::now();
        let tl = Timeline::new(epoch);
        for i in 0..10u32 {
            tl.record(1, i * 33, epoch + Duration::from_millis(i as u64 * 33));
        }
        let mut p = PlayerResult::default();
        // Joined at 100 ms: frames 0..=3 came from the cache.
        let play_us = 100_000;
        for i in [0u32, 1, 2, 3, 4, 5, 8, 9] {
            p.on_frame(1, i * 33, Some(&tl), i as u64 * 33_000 + 2_000, play_us);
        }
        p.on_frame(1, 12345, Some(&tl), 0, play_us);
        p.finish(Some(&tl));
        assert_eq!(p.frames[1], 9);
        assert_eq!(p.lost[1], 2);
        assert_eq!(p.unmatched, 1);
        assert_eq!(p.cached, 4);
        assert_eq!(p.latency.count(), 4);
        assert!((1900..=2000).contains(&p.latency.quantile(0.5).unwrap()));
        assert_eq!(p.behind[1], 0);
    }
}
