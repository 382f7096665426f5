//! One RTMP connection: a single task that reads, handles commands,
//! publishes frames or delivers them, and writes in batches.
//!
//! Writes are vectored: control replies and shared pre-chunked frames are
//! queued as `Bytes` and go out together in one `writev` per batch. A player
//! woken by the ring drains everything already queued for it (up to
//! [`BATCH`] deliveries) before writing, so a busy stream costs one syscall
//! per batch rather than one per message.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::socket::Socket;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tracing::{debug, info};

use super::hooks::{Armed, Pending, UpdateTimer};
use super::keepalive::{Action, Keepalive};
use super::Shared;
use crate::config::{AppConf, CoreConf};
use crate::live::frame::SHARED_STREAM_ID;
use crate::live::player::PlayerFilter;
use crate::live::timestamp::TimestampFix;
use crate::live::{Delivery, Frame, Stream, StreamKey};
use crate::netcall::Answer;
use crate::rtmp::chunk::DecoderLimits;
use crate::rtmp::handshake::ServerHandshake;
use crate::rtmp::{Amf, Message, Session};
use crate::telemetry::Cause;

/// Deliveries drained from the ring per write.
const BATCH: usize = 64;
/// Deliveries taken at the end of an `out_merge` window: a second of a
/// busy stream's frames.
const MERGE_BATCH: usize = 1024;
/// The longest `out_merge` honoured: beyond it the ring would outrun the
/// player and count it as slow.
const MAX_MERGE: Duration = Duration::from_secs(1);
/// Slices per writev call.
const IOV: usize = 64;
/// Housekeeping period: keepalive, idle publishers, on_update.
const TICK: Duration = Duration::from_secs(1);
/// How often a player blocked on a full socket checks how far the ring has
/// left it behind.
const STALL_CHECK: Duration = Duration::from_millis(500);

/// Why a connection ends: a short, log-friendly reason and its cause for
/// metrics.
#[derive(Debug, thiserror::Error)]
pub enum Close {
    #[error("{1}")]
    Reason(Cause, String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Handed over to a new process (binary upgrade).
    #[error("handed over to the new process")]
    Moved,
}

impl Close {
    pub fn cause(&self) -> Cause {
        match self {
            Close::Reason(c, _) => *c,
            Close::Io(_) => Cause::Io,
            Close::Moved => Cause::Handover,
        }
    }
}

pub fn close(cause: Cause, reason: impl Into<String>) -> Close {
    Close::Reason(cause, reason.into())
}

/// What `connect` established. The args and the raw command object are what
/// notifications and Go Away need.
pub struct Connected {
    pub app: AppConf,
    /// The application name as the client sent it, without `?args`.
    pub app_name: String,
    /// Connection args from `?a=b` after the app (or in the tcUrl).
    pub args: String,
    /// The whole `connect` command object, every field kept.
    pub object: Amf,
    /// How this client can be moved (Go Away).
    pub moves: super::goaway::Capability,
}

pub struct Publishing {
    pub key: StreamKey,
    pub stream: Arc<Stream>,
    pub stream_id: u32,
    pub ts: TimestampFix,
    pub last_media: Instant,
    /// Timestamp of the last audio/video frame received (for on_update).
    pub last_ts: u32,
    /// Audio and video payload bytes received (for /stat's bw_audio and
    /// bw_video).
    pub track_bytes: [u64; 2],
}

pub struct Playing {
    pub key: StreamKey,
    pub stream: Arc<Stream>,
    pub stream_id: u32,
    pub rx: tokio::sync::broadcast::Receiver<Delivery>,
    pub filter: PlayerFilter,
    /// Timestamp of the last frame sent (for on_update).
    pub last_ts: u32,
}

pub struct Connection {
    pub id: u64,
    pub addr: SocketAddr,
    pub server: usize,
    pub shared: Arc<Shared>,
    pub session: Session,
    pub(super) input: BytesMut,
    pub(super) outq: VecDeque<Bytes>,
    pub connected: Option<Connected>,
    pub next_stream_id: u32,
    pub publishing: Option<Publishing>,
    pub playing: Option<Playing>,
    /// Set by a handler that wants the connection closed once the replies
    /// queued so far are written (e.g. after a Rejected status).
    pub close_after_flush: Option<Close>,
    pub(super) bytes_out: u64,
    started: Instant,
    keepalive: Keepalive,
    /// A command suspended until its notification answers.
    pub pending: Option<Pending>,
    /// A publish/play whose done notifications are owed.
    pub armed: Option<Armed>,
    /// on_update schedule for the active publish/play.
    pub update: Option<UpdateTimer>,
    /// A Go Away signal went to this client already.
    pub go_away_sent: bool,
    mailbox: Arc<super::drain::Mailbox>,
    /// This connection's entry in the shared stats table.
    pub stat: Arc<crate::stats::ConnStat>,
    /// Headers carried from a stream to the one a redirect publishes.
    pub carried: Vec<Arc<Frame>>,
    /// An on_publish/on_play 3xx to an rtmp:// URL: relay there.
    pub relay_to: Option<String>,
    /// The cluster directory granted this connection's publish.
    pub claimed: bool,
    /// Counters as last reported to stats and metrics.
    reported: crate::stats::Counters,
    /// When the once-a-second housekeeping last ran.
    last_tick: Instant,
    /// Role and stream for the close log, kept after the stream ends
    /// (publishers usually deleteStream before they hang up).
    pub role: (&'static str, String),
    /// The configuration this connection was accepted under; a publish or
    /// play takes the one in force (see [`Self::refresh_app`]).
    pub config: Arc<crate::config::Config>,
    /// A binary upgrade asked this connection to move (see
    /// `server::handover`): it does at its next command boundary.
    pub handover: Option<crate::node::handover::Collector>,
    /// A play of a file (`play` locations).
    pub vod: Option<super::vod::VodPlay>,
    /// The client's buffer length (`SetBufferLength`, else `buflen`), ms:
    /// how far ahead of real time a file is sent.
    pub buflen: u64,
    /// `play`'s start argument, ms, for the VOD play it starts.
    pub play_start: u64,
    /// Timestamp of the last VOD message sent (for /stat and on_update).
    pub vod_ts: u32,
    /// Writing handed to the stream's publisher (see `server::direct`).
    pub(super) direct: super::direct::DirectState,
}

impl Connection {
    pub fn new(id: u64, addr: SocketAddr, server: usize, shared: Arc<Shared>) -> Self {
        let config = shared.config();
        let core = &config.servers[server].core;
        let limits = DecoderLimits {
            max_message: core.max_message,
            max_streams: core.max_streams,
            max_reassembly: core.max_message.saturating_mul(4),
        };
        let now = Instant::now();
        let keepalive = Keepalive::new(core.ping, core.ping_timeout, core.timeout, now);
        let buflen = core.buflen.as_millis() as u64;
        Connection {
            id,
            addr,
            server,
            session: Session::new(limits),
            input: BytesMut::new(),
            outq: VecDeque::new(),
            connected: None,
            next_stream_id: 1,
            publishing: None,
            playing: None,
            close_after_flush: None,
            bytes_out: 0,
            started: now,
            keepalive,
            pending: None,
            armed: None,
            update: None,
            go_away_sent: false,
            mailbox: shared.drain.register(id),
            stat: shared.stats.register(id, addr),
            reported: Default::default(),
            carried: Vec::new(),
            relay_to: None,
            claimed: false,
            last_tick: now,
            role: ("none", String::new()),
            config,
            buflen,
            shared,
            handover: None,
            vod: None,
            play_start: 0,
            vod_ts: 0,
            direct: Default::default(),
        }
    }

    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }

    /// A resumed connection's unparsed input and unwritten output.
    pub(super) fn resume_io(&mut self, input: BytesMut, output: Bytes) {
        self.input = input;
        if !output.is_empty() {
            self.outq.push_back(output);
        }
    }

    /// A resumed connection's counters: what it sent, and since when it
    /// is open. Already reported by the old process, so not again here.
    pub(super) fn resume_counters(&mut self, bytes_out: u64, age: Duration) {
        self.bytes_out = bytes_out;
        self.started = Instant::now().checked_sub(age).unwrap_or(self.started);
        self.reported.bytes_in = self.session.bytes_received();
        self.reported.bytes_out = bytes_out;
    }

    /// When the connection was accepted.
    pub fn started_at(&self) -> Instant {
        self.started
    }

    pub fn core(&self) -> &CoreConf {
        &self.config.servers[self.server].core
    }

    /// Serves `sock`; `early` holds bytes already read from it (after a
    /// PROXY protocol header).
    pub async fn run<S: Socket>(mut self, mut sock: S, early: BytesMut) {
        self.input = early;
        self.shared.connections.fetch_add(1, Ordering::Relaxed);
        let served = self.serve(&mut sock).await;
        self.end(served);
    }

    /// Serves a connection handed over by the process before this one: no
    /// handshake, the state is already in place (see `Self::resume`).
    pub async fn run_resumed<S: Socket>(mut self, mut sock: S) {
        self.shared.connections.fetch_add(1, Ordering::Relaxed);
        let served = self.serve_loop(&mut sock).await;
        self.end(served);
    }

    fn end(mut self, served: Result<(), Close>) {
        // The publisher stops writing for this connection before anything
        // else, and what it wrote is counted.
        self.leave_direct();
        if matches!(served, Err(Close::Moved)) {
            return self.moved();
        }
        let (cause, reason) = match served {
            Ok(()) => (Cause::Normal, "server closed".to_owned()),
            Err(e) => (e.cause(), e.to_string()),
        };
        let dropped = self.playing.as_ref().map_or(0, |p| p.filter.dropped);
        self.pending = None;
        let app = self
            .connected
            .as_ref()
            .map(|c| c.app_name.clone())
            .unwrap_or_default();
        let (role, stream) = self.role.clone();
        self.stop_publishing();
        self.stop_playing();
        self.fire_done();
        self.fire_disconnect();
        self.publish_counters();
        self.shared.stats.unregister(self.id);
        self.shared.drain.unregister(self.id);
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
        crate::telemetry::closed(cause);
        info!(
            id = self.id,
            addr = %self.addr,
            app,
            stream,
            role,
            bytes_in = self.session.bytes_received(),
            bytes_out = self.bytes_out,
            dropped,
            duration_ms = self.started.elapsed().as_millis() as u64,
            reason,
            "closed"
        );
    }

    async fn serve<S: Socket>(&mut self, sock: &mut S) -> Result<(), Close> {
        self.handshake(sock).await?;
        // Whatever arrived with C2 is already chunk data.
        self.process_input()?;
        self.serve_loop(sock).await
    }

    async fn serve_loop<S: Socket>(&mut self, sock: &mut S) -> Result<(), Close> {
        // One timer, set to when housekeeping is next due: an idle
        // connection sleeps until its next ping instead of waking every
        // second (2000 idle players cost nothing that grows with them).
        let mut armed = self.next_due();
        let timer = tokio::time::sleep_until(armed.into());
        tokio::pin!(timer);
        // `out_merge`: while set, live media waits in the queue (and in the
        // ring, unread) until this instant, then goes out in one write.
        let mut merge_until: Option<Instant> = None;
        let merge_timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(merge_timer);
        loop {
            // Something done since (output of its own, a pause) may end
            // the publisher's writing for this player.
            self.check_direct();
            // Something done since may be due sooner (counters to report,
            // a publisher's idle limit): bring the timer forward.
            let due = self.next_due();
            if due < armed {
                armed = due;
                timer.as_mut().reset(due.into());
            }
            if self.handover.is_some() && self.pending.is_none() && self.close_after_flush.is_none()
            {
                if self.hand_over(sock).await? {
                    return Err(Close::Moved);
                }
                continue;
            }
            if merge_until.is_some()
                && (self.close_after_flush.is_some() || self.handover.is_some())
            {
                merge_until = None;
            }
            if merge_until.is_none() && !self.flush(sock).await? {
                // A signal came while the socket was full.
                for sig in self.mailbox.take() {
                    self.on_signal(sig)?;
                }
                continue;
            }
            if let Some(r) = self.close_after_flush.take() {
                return Err(r);
            }
            // Housekeeping runs here too, not only on the timer branch: a
            // busy connection always has a read or a delivery ready first.
            let now = Instant::now();
            if now.duration_since(self.last_tick) >= TICK && now >= armed {
                self.last_tick = now;
                self.on_tick()?;
                armed = self.next_due();
                timer.as_mut().reset(armed.into());
                continue;
            }
            // Caught up with nothing to do: let the publisher write.
            if merge_until.is_none() {
                self.try_enter_direct(sock);
            }
            let direct = self.is_direct();
            enum Ev {
                Evicted,
                Readable(std::io::Result<()>),
                Delivery(Result<Delivery, RecvError>),
                Answer(Answer),
                Vod(super::vod::VodEv),
                Signal,
                Tick,
                Merged,
            }
            // While a command waits for its hook, stop reading once a
            // message's worth is buffered: the client must not grow it.
            let can_read = self.pending.is_none() || self.input.len() < self.core().max_message;
            // Branches in order of how often they fire; `biased` polls them
            // in that order and stops at the first ready one.
            let ev = tokio::select! {
                biased;
                r = sock.readable(), if can_read => Ev::Readable(r),
                d = next_delivery(&mut self.playing), if merge_until.is_none() && !direct => Ev::Delivery(d),
                _ = super::direct::evicted(&self.direct), if direct => Ev::Evicted,
                a = pending_answer(&mut self.pending) => Ev::Answer(a),
                v = super::vod::next_vod(&mut self.vod, self.buflen) => Ev::Vod(v),
                _ = self.mailbox.notify.notified() => Ev::Signal,
                _ = &mut timer => Ev::Tick,
                _ = &mut merge_timer, if merge_until.is_some() => Ev::Merged,
            };
            // Anything but housekeeping may read, write or change what is
            // played: take writing back from the publisher first.
            if direct && !matches!(ev, Ev::Tick) {
                self.leave_direct();
            }
            match ev {
                Ev::Evicted => crate::telemetry::direct_evicted(),
                Ev::Readable(r) => {
                    r?;
                    // Players rarely send anything: they hold no read
                    // buffer between reads (see `process_input`).
                    let room = if self.publishing.is_some() { 64 } else { 4 } * 1024;
                    self.input.reserve(room);
                    let n = match read_now(sock, &mut self.input).await {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e.into()),
                    };
                    if n == 0 {
                        return Err(close(Cause::Normal, "peer closed"));
                    }
                    self.keepalive.received(Instant::now());
                    self.session.note_received(n);
                    // The players the publisher writes for get what this
                    // read brought in one write each (`live::direct`).
                    let held = self.publishing.as_ref().map(|p| p.stream.clone());
                    if let Some(s) = &held {
                        s.hold_direct();
                    }
                    let r = self.process_input();
                    if let Some(s) = held {
                        s.release_direct();
                    }
                    r?;
                }
                Ev::Delivery(d) => {
                    self.on_delivery(d)?;
                    self.drain_deliveries(BATCH)?;
                    let window = self.merge_window();
                    if !window.is_zero() {
                        let until = Instant::now() + window;
                        merge_until = Some(until);
                        merge_timer.as_mut().reset(until.into());
                    }
                }
                Ev::Merged => {
                    // Everything the window gathered, in one write.
                    merge_until = None;
                    self.drain_deliveries(MERGE_BATCH)?;
                }
                Ev::Answer(a) => {
                    if let Some(p) = self.pending.take() {
                        self.on_answer(p.cmd, a)?;
                    }
                    self.process_input()?;
                }
                Ev::Vod(v) => self.on_vod(v)?,
                Ev::Signal => {
                    for sig in self.mailbox.take() {
                        self.on_signal(sig)?;
                    }
                }
                Ev::Tick => {
                    self.last_tick = Instant::now();
                    self.on_tick()?;
                    armed = self.next_due();
                    timer.as_mut().reset(armed.into());
                }
            }
        }
    }

    fn on_signal(&mut self, sig: super::drain::Signal) -> Result<(), Close> {
        use super::drain::{Signal, Target};
        match sig {
            Signal::Phase(p) => self.on_phase(p),
            Signal::Target(Target::Close(id)) if id == self.id => {
                Err(close(Cause::Takeover, "taken over by a new publisher"))
            }
            Signal::Status { code, description } => {
                if let Some(sid) = self.publishing.as_ref().map(|p| p.stream_id) {
                    self.status(sid, "status", code, &description);
                }
                Ok(())
            }
            Signal::Drop => Err(close(Cause::Control, "dropped by /control")),
            Signal::Redirect(name) => {
                self.redirect(name);
                Ok(())
            }
            Signal::Handover(c) => {
                self.handover = Some(c);
                Ok(())
            }
            Signal::Target(t) => {
                if self.is_target(&t) {
                    self.go_away("Moved by the operator");
                }
                Ok(())
            }
        }
    }

    async fn handshake<S: Socket>(&mut self, sock: &mut S) -> Result<(), Close> {
        let timeout = self.core().timeout;
        let mut hs = ServerHandshake::new();
        let fut = async {
            loop {
                let mut out = BytesMut::new();
                let done = hs
                    .advance(&mut self.input, &mut out)
                    .map_err(|e| close(Cause::Handshake, format!("handshake: {e}")))?;
                if !out.is_empty() {
                    sock.write_all(&out).await?;
                    self.bytes_out += out.len() as u64;
                }
                if done {
                    return Ok::<_, Close>(());
                }
                self.input.reserve(4096);
                let n = sock.read_buf(&mut self.input).await?;
                if n == 0 {
                    return Err(close(
                        Cause::HandshakeAborted,
                        "peer closed during handshake",
                    ));
                }
                // counted in bytes_in; no ack window is set yet
                self.session.note_received(n);
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| close(Cause::HandshakeTimeout, "handshake timeout"))??;
        debug!(id = self.id, digest = hs.digest, "handshake done");
        Ok(())
    }

    fn process_input(&mut self) -> Result<(), Close> {
        while self.close_after_flush.is_none() && self.pending.is_none() {
            let msg = match self.session.next_message(&mut self.input) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => return Err(close(Cause::Protocol, format!("protocol error: {e}"))),
            };
            self.on_message(msg)?;
        }
        if self.input.is_empty() && self.publishing.is_none() && self.input.capacity() > 0 {
            // Thousands of idle players must not each pin a read buffer.
            self.input = BytesMut::new();
        }
        Ok(())
    }

    fn on_message(&mut self, msg: Message) -> Result<(), Close> {
        match msg {
            Message::Command { stream_id, command } => self.on_command(stream_id, command)?,
            Message::Audio {
                timestamp,
                stream_id,
                payload,
            } => self.on_media(crate::live::FrameKind::Audio, timestamp, stream_id, payload)?,
            Message::Video {
                timestamp,
                stream_id,
                payload,
            } => self.on_media(crate::live::FrameKind::Video, timestamp, stream_id, payload)?,
            Message::Data {
                timestamp,
                stream_id,
                values,
                ..
            } => self.on_data(timestamp, stream_id, values)?,
            Message::GoAway => debug!(id = self.id, "ignoring Go Away from a client"),
            Message::UserControl(crate::rtmp::UserControl::SetBufferLength { ms, .. }) => {
                self.buflen = ms as u64;
            }
            _ => {}
        }
        Ok(())
    }

    fn on_phase(&mut self, phase: super::drain::Phase) -> Result<(), Close> {
        match phase {
            super::drain::Phase::Running => Ok(()),
            super::drain::Phase::Draining => {
                self.go_away("The server is shutting down");
                Ok(())
            }
            super::drain::Phase::Closing => Err(close(Cause::Timeout, "drain timeout")),
        }
    }

    /// Copies this connection's counters to its stats entry.
    pub(super) fn publish_counters(&mut self) {
        let mut c = crate::stats::Counters {
            bytes_in: self.session.bytes_received(),
            bytes_out: self.bytes_out,
            ..Default::default()
        };
        if let Some(p) = &self.playing {
            c.dropped = p.filter.dropped;
            c.timestamp = p.last_ts;
        }
        if self.vod.is_some() {
            c.timestamp = self.vod_ts;
        }
        if let Some(p) = &self.publishing {
            [c.audio, c.video] = p.track_bytes;
            c.timestamp = p.last_ts;
        }
        self.stat.set_counters(c);
        let r = &self.reported;
        crate::telemetry::traffic(
            c.bytes_in - r.bytes_in.min(c.bytes_in),
            c.bytes_out - r.bytes_out.min(c.bytes_out),
            c.dropped - r.dropped.min(c.dropped),
        );
        self.reported = c;
    }

    /// Takes up to `max` more deliveries that are ready, without waiting.
    fn drain_deliveries(&mut self, max: usize) -> Result<(), Close> {
        for _ in 0..max {
            let Some(p) = self.playing.as_mut() else {
                break;
            };
            match p.rx.try_recv() {
                Ok(d) => self.on_delivery(Ok(d))?,
                Err(TryRecvError::Lagged(n)) => self.on_delivery(Err(RecvError::Lagged(n)))?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// This player's `out_merge` window (zero: write each frame at once),
    /// at most [`MAX_MERGE`].
    pub(super) fn merge_window(&self) -> Duration {
        self.connected
            .as_ref()
            .map_or(Duration::ZERO, |c| c.app.out_merge.min(MAX_MERGE))
    }

    /// When [`Self::on_tick`] next has work: a second after the last one
    /// while counters have news for /stat or an `on_update` answer
    /// is awaited, else at the earliest of the connect timeout, the
    /// keepalive's next step, the idle-publisher limit and the next
    /// `on_update`.
    fn next_due(&self) -> Instant {
        let soon = self.last_tick + TICK;
        let mut due = self.keepalive.next_due();
        if self.connected.is_none() {
            due = due.min(self.started + self.core().timeout);
        }
        if self.session.bytes_received() != self.reported.bytes_in
            || self.bytes_out != self.reported.bytes_out
        {
            due = due.min(soon);
        }
        if let (Some(p), Some(c)) = (&self.publishing, &self.connected) {
            if let Some(limit) = c.app.drop_idle_publisher {
                due = due.min(p.last_media + limit);
            }
        }
        if let Some(u) = &self.update {
            due = due.min(if u.inflight.is_some() { soon } else { u.next });
        }
        // The publisher's writes for this player are counted on a tick,
        // while there is a publisher (idle players of an unpublished
        // stream sleep).
        if self.is_direct()
            && self
                .playing
                .as_ref()
                .is_some_and(|p| p.stream.has_publisher())
        {
            due = due.min(soon);
        }
        // Never more than once a second, as before: whatever was due and
        // could not be done (an `on_update` with nothing to report) waits
        // for the next second rather than spinning.
        due.max(soon)
    }

    fn on_tick(&mut self) -> Result<(), Close> {
        let now = Instant::now();
        self.publish_counters();
        if self.connected.is_none() && now.duration_since(self.started) >= self.core().timeout {
            return Err(close(Cause::Timeout, "no connect within timeout"));
        }
        match self.keepalive.poll(now) {
            Action::Nothing => {}
            Action::SendPing => {
                let t = self.started.elapsed().as_millis() as u32;
                self.session
                    .send_user_control(crate::rtmp::UserControl::PingRequest(t));
            }
            Action::Dead(r) => return Err(close(Cause::Timeout, r)),
        }
        if let (Some(p), Some(c)) = (&self.publishing, &self.connected) {
            if let Some(limit) = c.app.drop_idle_publisher {
                if now.duration_since(p.last_media) >= limit {
                    return Err(close(Cause::Timeout, "drop_idle_publisher: no media"));
                }
            }
        }
        self.poll_update(now)
    }

    /// Queues a frame for this player: the shared pre-chunked bytes when the
    /// player is on the shared message stream, else a private encoding.
    pub fn send_frame(&mut self, f: &Frame, stream_id: u32) {
        if stream_id == SHARED_STREAM_ID && f.chunk_size() == self.session.out_chunk_size() {
            if !self.session.out.is_empty() {
                self.outq.push_back(self.session.take_output());
            }
            self.outq.push_back(f.chunked.clone());
        } else {
            let chunk = self.session.out_chunk_size();
            let interleave = self.connected.as_ref().is_some_and(|c| c.app.interleave);
            f.encode_for(stream_id, chunk, interleave, &mut self.session.out);
        }
    }

    /// Queues bytes already chunked for this connection (a file's batch),
    /// after whatever the session queued before them.
    pub fn queue_wire(&mut self, wire: Bytes) {
        if !self.session.out.is_empty() {
            self.outq.push_back(self.session.take_output());
        }
        self.outq.push_back(wire);
    }

    /// Writes everything queued: straight away when the socket has room
    /// (the usual case), waiting for writability only when it is full.
    /// Returns false, with output left, when a signal arrived while it
    /// waited.
    async fn flush<S: Socket>(&mut self, sock: &mut S) -> Result<bool, Close> {
        if !self.session.out.is_empty() {
            self.outq.push_back(self.session.take_output());
        }
        while !self.outq.is_empty() {
            let mut iov = [IoSlice::new(&[]); IOV];
            let mut n_iov = 0;
            for (slot, b) in iov.iter_mut().zip(self.outq.iter()) {
                *slot = IoSlice::new(b);
                n_iov += 1;
            }
            let n = match sock.try_write_vectored(&iov[..n_iov]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if !self.wait_writable(sock).await? {
                        return Ok(false);
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Err(close(Cause::SlowPlayer, "peer stopped reading"));
            }
            self.bytes_out += n as u64;
            let mut left = n;
            while left > 0 {
                let Some(front) = self.outq.front_mut() else {
                    break;
                };
                if front.len() <= left {
                    left -= front.len();
                    self.outq.pop_front();
                } else {
                    front.advance(left);
                    left = 0;
                }
            }
        }
        while sock.has_pending_output() {
            match sock.try_write_vectored(&[]) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if !self.wait_writable(sock).await? {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }
}

impl Connection {
    /// Waits for room in the socket. Gives up after `timeout` (nginx-rtmp's
    /// send timeout), or sooner for a player that has stalled: once the
    /// ring has lapped it twice while its socket stayed full, it can no
    /// longer be brought back to a keyframe in time and only pins memory.
    /// (A player that lapped once and then drains is skipped to the next
    /// keyframe by the ring's `Lagged` report instead.)
    /// Returns false when a signal arrived first.
    async fn wait_writable<S: Socket>(&mut self, sock: &mut S) -> Result<bool, Close> {
        let timeout = self.core().timeout;
        let lap = self.core().out_queue.max(16).next_power_of_two();
        let start = Instant::now();
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(close(Cause::SlowPlayer, "write timeout"));
            }
            let wait = async {
                tokio::select! {
                    r = sock.writable() => r.map(|()| true),
                    _ = self.mailbox.notify.notified() => Ok(false),
                }
            };
            match tokio::time::timeout(left.min(STALL_CHECK), wait).await {
                Ok(r) => return Ok(r?),
                Err(_) => {
                    let behind = self.playing.as_ref().map_or(0, |p| p.rx.len());
                    if behind > 2 * lap {
                        return Err(close(
                            Cause::SlowPlayer,
                            format!(
                            "slow player: stalled while {behind} messages went by (queue {lap})"
                        ),
                        ));
                    }
                }
            }
        }
    }
}

async fn pending_answer(pending: &mut Option<Pending>) -> Answer {
    match pending {
        // A hook task that died answers as a rejection.
        Some(p) => (&mut p.rx)
            .await
            .unwrap_or(Answer::Reject("notification task failed".into())),
        None => std::future::pending().await,
    }
}

/// Reads what has arrived, with one `poll_read` that never waits. Unlike
/// `try_read`, a read that does not fill the buffer tells tokio the socket
/// is drained (epoll is edge-triggered), which saves the second `recv` that
/// would only answer "would block": a publisher makes one read syscall per
/// batch of messages instead of two.
async fn read_now<S: Socket>(sock: &mut S, buf: &mut bytes::BytesMut) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| {
        match tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut *sock), cx, buf) {
            std::task::Poll::Pending => {
                std::task::Poll::Ready(Err(std::io::ErrorKind::WouldBlock.into()))
            }
            ready => ready,
        }
    })
    .await
}

async fn next_delivery(playing: &mut Option<Playing>) -> Result<Delivery, RecvError> {
    match playing {
        Some(p) => p.rx.recv().await,
        None => std::future::pending().await,
    }
}
