//! A connection leaving for a new process, and arriving in one (binary
//! upgrade, see [`super::handover`]).
//!
//! Leaving happens at a command boundary: no notification is in flight and
//! every complete message received has been handled. What is left (bytes of
//! a chunk not complete yet, output not written yet) travels in the state,
//! together with everything the protocol remembers. The connection then
//! parks, holding its socket, until the old process knows whether the new
//! one took it: if not, it simply goes on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::oneshot;
use tracing::info;

use super::connection::{Close, Connected, Connection, Playing, Publishing};
use super::goaway::Capability;
use super::hooks::Armed;
use super::socket::Socket;
use super::Shared;
use crate::live::frame::FrameKind;
use crate::live::StreamKey;
use crate::node::chain::{Play, Publish};
use crate::node::handover::{
    ArmedState, ConnState, ConnectedState, PlayingState, PublishingState, Reply,
};
use crate::rtmp::chunk::DecoderLimits;
use crate::rtmp::{amf, Amf, Session};

impl Connection {
    /// At a command boundary with a handover asked for: reports to the
    /// collector and, if this connection moves in this phase, parks until
    /// the verdict. True when the new process took it.
    pub(super) async fn hand_over<S: Socket>(&mut self, sock: &mut S) -> Result<bool, Close> {
        let Some(c) = self.handover.take() else {
            return Ok(false);
        };
        let skip = |s: &Self| Reply::Skip {
            id: s.id,
            stream: s.playing.as_ref().map(|p| p.key.clone()),
        };
        // A file's play is not handed over: it ends in this process (see
        // the README's upgrade section).
        if self.playing.is_some() != c.players || self.session.has_pending() || self.vod.is_some() {
            let _ = c.tx.send(skip(self));
            return Ok(false);
        }
        // A player takes everything the ring holds: its publisher stopped
        // (moved in the first phase), so this is all it will get here.
        while let Some(p) = self.playing.as_mut() {
            let d = match p.rx.try_recv() {
                Ok(d) => Ok(d),
                Err(TryRecvError::Lagged(n)) => {
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n))
                }
                Err(_) => break,
            };
            self.on_delivery(d)?;
        }
        if self.close_after_flush.is_some() {
            let _ = c.tx.send(skip(self));
            return Ok(false);
        }
        let fd = match sock.dup_fd() {
            Ok(fd) => fd,
            Err(e) => {
                info!(
                    id = self.id,
                    "not handed over: cannot duplicate its socket: {e}"
                );
                let _ = c.tx.send(skip(self));
                return Ok(false);
            }
        };
        let state = Box::new(self.export(sock.kind()));
        let (tx, verdict) = oneshot::channel();
        if c.tx
            .send(Reply::Handed {
                state,
                fd,
                verdict: tx,
            })
            .is_err()
        {
            return Ok(false);
        }
        // Parked: nothing is read or written until the old process knows
        // whether the new one took over. A dropped verdict means no.
        Ok(verdict.await.unwrap_or(false))
    }

    fn export(&self, socket: crate::node::handover::SocketKind) -> ConnState {
        let mut output = Vec::new();
        for b in &self.outq {
            output.extend_from_slice(b);
        }
        output.extend_from_slice(&self.session.out);
        ConnState {
            id: self.id,
            addr: self.addr,
            socket,
            server: self.server,
            session: self.session.export(),
            input: self.input.to_vec(),
            output,
            connected: self.connected.as_ref().map(|c| ConnectedState {
                app_name: c.app_name.clone(),
                args: c.args.clone(),
                object: amf::encode_all(std::slice::from_ref(&c.object)).to_vec(),
                moves: moves_name(c.moves).to_owned(),
            }),
            next_stream_id: self.next_stream_id,
            publishing: self.publishing.as_ref().map(|p| PublishingState {
                name: p.key.name.clone(),
                stream_id: p.stream_id,
                ts: p.ts.clone(),
                last_ts: p.last_ts,
                track_bytes: p.track_bytes,
            }),
            playing: self.playing.as_ref().map(|p| PlayingState {
                name: p.key.name.clone(),
                stream_id: p.stream_id,
                filter: p.filter.clone(),
                last_ts: p.last_ts,
            }),
            armed: self.armed.as_ref().map(|a| ArmedState {
                publish: a.publish,
                started: a.started,
                name: a.name.clone(),
                args: a.args.clone(),
            }),
            updating: self.update.is_some(),
            go_away_sent: self.go_away_sent,
            bytes_out: self.bytes_out(),
            age_ms: self.started_at().elapsed().as_millis() as u64,
            role: (self.role.0.to_owned(), self.role.1.clone()),
        }
    }

    /// The old process's side once the new one took this connection: the
    /// stream ends here without a word to the client, and no done or
    /// disconnect notification fires (the new process owes them now).
    /// Modules still hear it, marked as moved, so recorders and pushes stop.
    pub(super) fn moved(mut self) {
        self.publish_counters();
        self.close_armed(true);
        if let Some(p) = self.publishing.take() {
            p.stream.unpublish(self.id);
            self.shared.registry.release(&p.key);
        }
        if let Some(p) = self.playing.take() {
            p.stream.unsubscribe();
            drop(p.rx);
            self.shared.registry.release(&p.key);
        }
        self.announce_disconnect(true);
        self.shared.stats.unregister(self.id);
        self.shared.drain.unregister(self.id);
        self.shared
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        crate::telemetry::closed(crate::telemetry::Cause::Handover);
        info!(
            id = self.id,
            addr = %self.addr,
            role = self.role.0,
            stream = self.role.1,
            "handed over to the new process"
        );
    }

    /// Rebuilds a connection from the state the previous process sent.
    /// Its streams must be in the registry already (publishers' streams
    /// come first, with their caches). Refused, with a reason, when this
    /// process cannot serve it: the old one then keeps it.
    pub fn resume(st: ConnState, shared: &Arc<Shared>) -> Result<Connection, String> {
        let config = shared.config();
        let server = config
            .servers
            .get(st.server)
            .ok_or_else(|| format!("server #{} is not in the new configuration", st.server))?;
        let core = &server.core;
        let limits = DecoderLimits {
            max_message: core.max_message,
            max_streams: core.max_streams,
            max_reassembly: core.max_message.saturating_mul(4),
        };
        let session = Session::import(limits, st.session).map_err(|e| e.to_string())?;
        if st.input.len() > core.max_message.saturating_add(1 << 16) {
            return Err("too many unparsed bytes".into());
        }
        let connected = match st.connected {
            None => None,
            Some(c) => {
                let app = server.app(&c.app_name).cloned().ok_or_else(|| {
                    format!("application {} is not in the new configuration", c.app_name)
                })?;
                let object = amf::decode_all(&c.object)
                    .map_err(|e| format!("connect object: {e}"))?
                    .into_iter()
                    .next()
                    .unwrap_or(Amf::Null);
                let moves = match c.moves.as_str() {
                    "goaway" => Capability::GoAway,
                    "reconnect" => Capability::Reconnect,
                    _ => Capability::None,
                };
                Some(Connected {
                    app,
                    app_name: c.app_name,
                    args: c.args,
                    object,
                    moves,
                })
            }
        };
        if (st.publishing.is_some() || st.playing.is_some()) && connected.is_none() {
            return Err("a stream without a connect".into());
        }
        let mut conn = Connection::new(st.id, st.addr, st.server, shared.clone());
        conn.session = session;
        conn.resume_io(BytesMut::from(&st.input[..]), Bytes::from(st.output));
        conn.connected = connected;
        conn.next_stream_id = st.next_stream_id;
        conn.go_away_sent = st.go_away_sent;
        conn.resume_counters(st.bytes_out, Duration::from_millis(st.age_ms));
        conn.armed = st.armed.map(|a| Armed {
            publish: a.publish,
            started: a.started,
            name: a.name,
            args: a.args,
        });
        conn.note_connected();
        let args = conn
            .armed
            .as_ref()
            .map(|a| a.args.clone())
            .unwrap_or_default();
        let queue = core.out_queue;
        if let Some(p) = st.publishing {
            let key = conn.key_for(&p.name);
            let stream = shared.registry.get_or_create(&key, queue);
            let who = crate::live::stream::PublisherId {
                id: conn.id,
                addr: conn.addr.ip(),
                relay: false,
            };
            // The stream came with this publisher already; this only
            // makes sure (and is a no-op when it is so).
            let _ = stream.publish(who, crate::live::stream::Takeover::Always);
            conn.stat.update(|i| {
                i.name = p.name.clone();
                i.role = crate::stats::Role::Publisher;
            });
            let session = conn.chain_session();
            if let Some(c) = &conn.connected {
                let ev = Publish {
                    session: &session,
                    key: &key,
                    stream: &stream,
                    app: &c.app,
                    args: &args,
                    kind: "live",
                    redirect: None,
                    derived: false,
                    resumed: true,
                };
                shared.modules.publish(shared, &ev);
            }
            conn.publishing = Some(Publishing {
                key,
                stream,
                stream_id: p.stream_id,
                ts: p.ts,
                last_media: Instant::now(),
                last_ts: p.last_ts,
                track_bytes: p.track_bytes,
            });
        }
        if let Some(p) = st.playing {
            let key = conn.key_for(&p.name);
            let stream = shared.registry.get_or_create(&key, queue);
            let rx = stream.subscribe_live();
            conn.stat.update(|i| {
                i.name = p.name.clone();
                i.role = crate::stats::Role::Player;
            });
            let session = conn.chain_session();
            if let Some(c) = &conn.connected {
                let ev = Play {
                    session: &session,
                    key: &key,
                    stream: Some(&stream),
                    app: &c.app,
                    args: &args,
                    published: stream.is_publishing(),
                    redirect: None,
                    resumed: true,
                };
                shared.modules.play(shared, &ev);
            }
            conn.playing = Some(Playing {
                key,
                stream,
                stream_id: p.stream_id,
                rx,
                filter: p.filter,
                last_ts: p.last_ts,
            });
        }
        conn.role = (
            match st.role.0.as_str() {
                "publisher" => "publisher",
                "player" => "player",
                _ => "none",
            },
            st.role.1,
        );
        if st.updating {
            conn.arm_update();
        }
        Ok(conn)
    }

    pub(super) fn key_for(&self, name: &str) -> StreamKey {
        StreamKey {
            server: self.server,
            app: self
                .connected
                .as_ref()
                .map(|c| c.app_name.clone())
                .unwrap_or_default(),
            name: name.to_owned(),
        }
    }
}

fn moves_name(c: Capability) -> &'static str {
    match c {
        Capability::GoAway => "goaway",
        Capability::Reconnect => "reconnect",
        Capability::None => "",
    }
}

/// A frame of a handed-over stream's cache, rebuilt as the publisher's
/// connection would have built it.
pub fn frame_from_state(
    f: crate::node::handover::FrameState,
    chunk: usize,
    interleave: bool,
) -> Option<crate::live::Frame> {
    let payload = Bytes::from(f.payload);
    let (kind, info) = match f.kind {
        0 => (FrameKind::Audio, crate::flv::audio_info(&payload).ok()?),
        1 => (FrameKind::Video, crate::flv::video_info(&payload).ok()?),
        _ => {
            let values = amf::decode_all(&payload).ok()?;
            return Some(crate::live::Frame::data(f.timestamp, &values, chunk));
        }
    };
    Some(crate::live::Frame::new(
        kind,
        f.timestamp,
        info,
        payload,
        chunk,
        interleave,
    ))
}

/// The other way: a cached frame as state.
pub fn frame_to_state(f: &crate::live::Frame) -> crate::node::handover::FrameState {
    crate::node::handover::FrameState {
        kind: match f.kind {
            FrameKind::Audio => 0,
            FrameKind::Video => 1,
            FrameKind::Data => 2,
        },
        timestamp: f.timestamp,
        payload: f.payload().to_vec(),
    }
}
