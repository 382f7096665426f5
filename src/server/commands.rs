//! Server-side handling of RTMP commands, media and deliveries, with the
//! replies and onStatus codes FMS and nginx-rtmp send.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info, warn};

use super::connection::{close, Close, Connected, Connection, Playing, Publishing};
use super::drain::Target;
use super::hooks::{Armed, PendingCmd};
use crate::config::access::Action;
use crate::config::Meta;
use crate::flv::{self, AUDIO_FOURCCS, VIDEO_FOURCCS};
use crate::live::player::PlayerFilter;
use crate::live::stream::{PublisherId, Takeover};
use crate::live::timestamp::TimestampFix;
use crate::live::{Delivery, Frame, FrameKind, StreamKey};
use crate::node::chain::{Play, Publish, Want};
use crate::rtmp::amf::object;
use crate::rtmp::message::on_status;
use crate::rtmp::{Amf, Command, UserControl};
use crate::telemetry::Cause;

/// Most message streams one connection may create.
const MAX_MESSAGE_STREAMS: u32 = 64;

/// Metadata fields kept with `meta on` (nginx-rtmp rebuilds metadata from
/// these; everything else the encoder sent is dropped).
const META_FIELDS: &[&str] = &[
    "width",
    "height",
    "displayWidth",
    "displayHeight",
    "duration",
    "framerate",
    "fps",
    "videodatarate",
    "videocodecid",
    "audiodatarate",
    "audiocodecid",
    "audiosamplerate",
    "audiochannels",
    "stereo",
    "profile",
    "level",
    // Enhanced RTMP v2: per-track metadata of multitrack streams.
    "videoTrackIdInfoMap",
    "audioTrackIdInfoMap",
];

/// The Enhanced RTMP fields a client may announce in `connect`.
const ENHANCED_FIELDS: [&str; 4] = [
    "fourCcList",
    "videoFourCcInfoMap",
    "audioFourCcInfoMap",
    "capsEx",
];

/// `capsEx` bits Sluice answers with: Reconnect (0x01, sent when draining),
/// Multitrack (0x02, cached and forwarded per track) and ModEx (0x04,
/// parsed and forwarded). TimestampNanoOffset (0x08) is forwarded as sent
/// but not applied to HLS, so it is not claimed.
const CAPS_EX: f64 = 7.0;

/// Enhanced RTMP negotiation: a client that announces any of the fields
/// learns what Sluice forwards (FourCC maps with CanForward, and the
/// legacy `fourCcList`) and its `capsEx`. Legacy clients get nothing new.
fn enhanced_answer(obj: &Amf) -> Vec<(String, Amf)> {
    if !ENHANCED_FIELDS.iter().any(|f| obj.get(f).is_some()) {
        return Vec::new();
    }
    const CAN_FORWARD: f64 = 4.0;
    let map = |list: &[&str]| {
        Amf::Object(
            list.iter()
                .map(|f| (f.to_string(), Amf::Number(CAN_FORWARD)))
                .collect(),
        )
    };
    let all = VIDEO_FOURCCS.iter().chain(AUDIO_FOURCCS.iter());
    vec![
        (
            "fourCcList".to_owned(),
            Amf::StrictArray(all.map(|f| Amf::str(f)).collect()),
        ),
        ("videoFourCcInfoMap".to_owned(), map(&VIDEO_FOURCCS)),
        ("audioFourCcInfoMap".to_owned(), map(&AUDIO_FOURCCS)),
        ("capsEx".to_owned(), Amf::Number(CAPS_EX)),
    ]
}

/// What a client announced of Enhanced RTMP, for the connect log line:
/// `fourCcList=[hvc1,av01] capsEx=3`, or `None` (no field logged).
fn enhanced_summary(obj: &Amf) -> Option<String> {
    let mut out = Vec::new();
    for f in ENHANCED_FIELDS {
        let Some(v) = obj.get(f) else { continue };
        let shown = match v {
            Amf::StrictArray(a) => {
                let names: Vec<_> = a.iter().filter_map(Amf::as_str).collect();
                format!("[{}]", names.join(","))
            }
            Amf::Object(_) | Amf::EcmaArray(_) => {
                let keys: Vec<_> = v
                    .props()
                    .unwrap_or_default()
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect();
                format!("{{{}}}", keys.join(","))
            }
            other => other
                .as_f64()
                .map_or_else(|| "?".to_owned(), |n| n.to_string()),
        };
        out.push(format!("{f}={shown}"));
    }
    (!out.is_empty()).then(|| out.join(" "))
}

/// Splits `name?args` into its parts.
pub fn split_args(s: &str) -> (String, String) {
    match s.split_once('?') {
        Some((n, a)) => (n.to_owned(), a.to_owned()),
        None => (s.to_owned(), String::new()),
    }
}

fn result(txn: f64, object: Amf, args: Vec<Amf>) -> Command {
    Command::new("_result", txn, object, args)
}

impl Connection {
    pub(super) fn on_command(&mut self, stream_id: u32, cmd: Command) -> Result<(), Close> {
        debug!(id = self.id, name = %cmd.name, stream_id, "command");
        match cmd.name.as_str() {
            "connect" => self.on_connect(cmd),
            _ if self.connected.is_none() => Err(close(
                Cause::Protocol,
                format!("\"{}\" before connect", cmd.name),
            )),
            "createStream" => {
                if self.next_stream_id > MAX_MESSAGE_STREAMS {
                    return Err(close(Cause::Protocol, "too many createStream"));
                }
                let id = self.next_stream_id;
                self.next_stream_id += 1;
                self.session.send_command(
                    0,
                    &result(cmd.transaction, Amf::Null, vec![Amf::Number(id as f64)]),
                );
                Ok(())
            }
            "releaseStream" => {
                self.session
                    .send_command(0, &result(cmd.transaction, Amf::Null, vec![Amf::Undefined]));
                Ok(())
            }
            "FCPublish" => {
                let name = cmd.arg_str(0).unwrap_or_default().to_owned();
                let st = object([
                    ("code", Amf::str("NetStream.Publish.Start")),
                    ("description", Amf::String(name)),
                ]);
                self.session
                    .send_command(0, &Command::new("onFCPublish", 0.0, Amf::Null, vec![st]));
                Ok(())
            }
            "FCUnpublish" => {
                let name = cmd.arg_str(0).unwrap_or_default().to_owned();
                let st = object([
                    ("code", Amf::str("NetStream.Unpublish.Success")),
                    ("description", Amf::String(name)),
                ]);
                self.session
                    .send_command(0, &Command::new("onFCUnpublish", 0.0, Amf::Null, vec![st]));
                Ok(())
            }
            "publish" => self.on_publish(stream_id, cmd),
            "play" => self.on_play(stream_id, cmd),
            "deleteStream" => {
                let sid = cmd.arg_f64(0).map_or(stream_id, |v| v as u32);
                self.close_stream(sid);
                Ok(())
            }
            "closeStream" => {
                self.close_stream(stream_id);
                Ok(())
            }
            "getStreamLength" => {
                self.session.send_command(
                    0,
                    &result(cmd.transaction, Amf::Null, vec![Amf::Number(0.0)]),
                );
                Ok(())
            }
            "receiveAudio" | "receiveVideo" => {
                let on = cmd.args.first().is_none_or(Amf::truthy);
                if let Some(p) = self.playing.as_mut() {
                    if cmd.name == "receiveAudio" {
                        p.filter.receive_audio = on;
                    } else {
                        p.filter.receive_video = on;
                    }
                }
                Ok(())
            }
            "seek" => {
                let ms = cmd.arg_f64(0).unwrap_or(0.0);
                self.vod_seek(ms);
                Ok(())
            }
            "pause" | "pauseRaw" => {
                let pause = cmd.args.first().is_none_or(Amf::truthy);
                if self.vod_pause(pause) {
                    return Ok(());
                }
                if let Some(p) = self.playing.as_mut() {
                    let sid = p.stream_id;
                    if pause {
                        p.filter.paused = true;
                        self.status(sid, "status", "NetStream.Pause.Notify", "Paused live");
                    } else {
                        p.filter.resume();
                        self.status(sid, "status", "NetStream.Unpause.Notify", "Unpaused live");
                    }
                }
                Ok(())
            }
            // Replies and notifications from the client need no answer.
            "_result" | "_error" | "onBWDone" | "_checkbw" | "onStatus" => Ok(()),
            "close" => Err(close(Cause::Normal, "client sent close")),
            other => {
                debug!(id = self.id, command = other, "unknown command");
                self.send_error(
                    cmd.transaction,
                    "NetConnection.Call.Failed",
                    &format!("Method not found ({other})"),
                );
                Ok(())
            }
        }
    }

    /// Answers transaction `txn` with `_error` and an error info object.
    pub(super) fn send_error(&mut self, txn: f64, code: &str, description: &str) {
        let info = object([
            ("level", Amf::str("error")),
            ("code", Amf::str(code)),
            ("description", Amf::str(description)),
        ]);
        self.session
            .send_command(0, &Command::new("_error", txn, Amf::Null, vec![info]));
    }

    pub(super) fn status(&mut self, stream_id: u32, level: &str, code: &str, desc: &str) {
        self.session
            .send_command(stream_id, &on_status(level, code, desc));
    }

    fn on_connect(&mut self, cmd: Command) -> Result<(), Close> {
        if self.connected.is_some() {
            return Err(close(Cause::Protocol, "second connect on one connection"));
        }
        match self.connect_hook(&cmd) {
            Some(call) => self.suspend(call, PendingCmd::Connect(cmd)),
            None => self.finish_connect(cmd, None)?,
        }
        Ok(())
    }

    /// Completes `connect`, with the application renamed by on_connect's
    /// redirect when `app_override` is set.
    pub(super) fn finish_connect(
        &mut self,
        cmd: Command,
        app_override: Option<String>,
    ) -> Result<(), Close> {
        let obj = cmd.object;
        let moves = super::goaway::announced(&obj, &cmd.args);
        let get = |k: &str| {
            obj.get(k)
                .and_then(Amf::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let raw_app = get("app");
        let tc_url = get("tcUrl");
        let (mut app_name, mut args) = split_args(&raw_app);
        // Some clients put the instance in the app ("live/instance"): the
        // application is the first path segment, as in nginx-rtmp.
        if let Some((first, _)) = app_name.split_once('/') {
            app_name = first.to_owned();
        }
        if let Some(app) = app_override {
            app_name = app;
        }
        if args.is_empty() {
            if let Some((_, a)) = tc_url.split_once('?') {
                args = a.to_owned();
            }
        }
        let Some(app) = self.config.servers[self.server].app(&app_name).cloned() else {
            warn!(id = self.id, addr = %self.addr, app = app_name, "connect rejected: application not found");
            self.send_error(
                cmd.transaction,
                "NetConnection.Connect.Rejected",
                &format!("Application not found: {app_name}"),
            );
            self.close_after_flush = Some(close(
                Cause::Rejected,
                format!("unknown application \"{app_name}\""),
            ));
            return Ok(());
        };
        let object_encoding = obj
            .get("objectEncoding")
            .and_then(Amf::as_f64)
            .unwrap_or(0.0);
        let core = self.core().clone();
        self.session.send_window_ack_size(core.ack_window);
        self.session.send_peer_bandwidth(core.ack_window, 2);
        self.session.set_chunk_size(core.chunk_size);

        let mut props = vec![
            ("fmsVer".to_owned(), Amf::str("FMS/3,0,1,123")),
            ("capabilities".to_owned(), Amf::Number(31.0)),
            ("mode".to_owned(), Amf::Number(1.0)),
        ];
        props.extend(enhanced_answer(&obj));
        let info = object([
            ("level", Amf::str("status")),
            ("code", Amf::str("NetConnection.Connect.Success")),
            ("description", Amf::str("Connection succeeded.")),
            ("objectEncoding", Amf::Number(object_encoding)),
        ]);
        self.session
            .send_command(0, &result(cmd.transaction, Amf::Object(props), vec![info]));
        info!(
            id = self.id,
            addr = %self.addr,
            app = app_name,
            flashver = get("flashVer"),
            tcurl = %crate::redact::args(&tc_url),
            enhanced = enhanced_summary(&obj).as_deref(),
            "connect"
        );
        self.connected = Some(Connected {
            app,
            app_name,
            args,
            object: obj,
            moves,
        });
        self.note_connected();
        Ok(())
    }

    /// Copies what `connect` said to this connection's stats entry.
    pub(super) fn note_connected(&mut self) {
        let Some(c) = &self.connected else { return };
        let get = |k: &str| {
            c.object
                .get(k)
                .and_then(Amf::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (server, app_name, moves) = (self.server, c.app_name.clone(), c.moves);
        self.stat.update(|i| {
            i.server = server;
            i.app = app_name;
            i.flashver = get("flashVer");
            i.swfurl = get("swfUrl");
            i.pageurl = get("pageUrl");
            i.tcurl = crate::redact::args(&get("tcUrl")).into_owned();
            i.moves = match moves {
                super::goaway::Capability::GoAway => "goaway",
                super::goaway::Capability::Reconnect => "reconnect",
                super::goaway::Capability::None => "",
            };
        });
    }

    fn stream_key(&self, name: &str) -> StreamKey {
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

    fn on_publish(&mut self, stream_id: u32, cmd: Command) -> Result<(), Close> {
        self.refresh_app();
        let (name, args) = split_args(cmd.arg_str(0).unwrap_or_default());
        let kind = cmd.arg_str(1).unwrap_or("live").to_owned();
        let app = self
            .connected
            .as_ref()
            .map(|c| c.app.clone())
            .ok_or_else(|| close(Cause::Protocol, "no app"))?;
        if name.is_empty() {
            self.status(
                stream_id,
                "error",
                "NetStream.Publish.BadName",
                "No stream name",
            );
            return Ok(());
        }
        if !app.live {
            self.status(
                stream_id,
                "error",
                "NetStream.Publish.BadName",
                "Live is off in this application",
            );
            return Ok(());
        }
        if self.publishing.is_some() || self.playing.is_some() {
            self.status(
                stream_id,
                "error",
                "NetStream.Publish.BadConnection",
                "Stream already in use on this connection",
            );
            return Ok(());
        }
        if !self.access_allows(stream_id, Action::Publish) {
            return Ok(());
        }
        self.fire_done();
        self.armed = Some(Armed {
            publish: true,
            started: false,
            name: name.clone(),
            args: args.clone(),
        });
        match self.publish_hook(&name, &args, &kind) {
            Some(call) => self.suspend(
                call,
                PendingCmd::Publish {
                    stream_id,
                    name,
                    args,
                    kind,
                },
            ),
            None => self.finish_publish(stream_id, name, args, kind)?,
        }
        Ok(())
    }

    /// Completes `publish` once access and on_publish allowed it (and,
    /// in a cluster, once the directory granted the stream).
    pub(super) fn finish_publish(
        &mut self,
        stream_id: u32,
        name: String,
        args: String,
        kind: String,
    ) -> Result<(), Close> {
        let key = self.stream_key(&name);
        if self.shared.cluster.is_some() && !self.claimed {
            let cmd = PendingCmd::Claim {
                stream_id,
                name,
                args,
                kind,
            };
            self.suspend_claim(cmd, key);
            return Ok(());
        }
        self.claimed = false;
        let queue = self.core().out_queue;
        let who = PublisherId {
            id: self.id,
            addr: self.addr.ip(),
            relay: false,
        };
        let rule = self
            .connected
            .as_ref()
            .map_or(Takeover::Off, |c| c.app.takeover);
        let Ok((stream, replaced)) = self.shared.registry.publish(&key, queue, who, rule) else {
            warn!(id = self.id, addr = %self.addr, app = key.app, stream = name, "publish refused: already publishing");
            self.status(
                stream_id,
                "error",
                "NetStream.Publish.BadName",
                "Already publishing",
            );
            return Ok(());
        };
        let ts = match replaced {
            Some(old) => {
                info!(
                    id = self.id,
                    old = old.id,
                    app = key.app,
                    stream = name,
                    "publish takes the stream over"
                );
                self.shared.drain.target(Target::Close(old.id));
                TimestampFix::continuing(stream.takeover_floor())
            }
            None => TimestampFix::new(),
        };
        self.session
            .send_user_control(UserControl::StreamBegin(stream_id));
        self.status(
            stream_id,
            "status",
            "NetStream.Publish.Start",
            "Start publishing",
        );
        info!(id = self.id, addr = %self.addr, app = key.app, stream = name, "publish");
        if let Some(c) = &self.shared.cluster {
            // Owned by us now, whoever published it here before.
            c.note_publisher(&key, self.id);
        }
        let redirect = self.relay_to.take();
        if let Some(a) = self.armed.as_mut() {
            a.started = true;
        }
        let session = self.chain_session();
        if let Some(c) = &self.connected {
            let ev = Publish {
                session: &session,
                key: &key,
                stream: &stream,
                app: &c.app,
                args: &args,
                kind: &kind,
                redirect: redirect.as_deref(),
                derived: false,
                resumed: false,
            };
            self.shared.modules.publish(&self.shared, &ev);
        }
        self.stat.update(|i| {
            i.name = name.clone();
            i.role = crate::stats::Role::Publisher;
        });
        self.role = ("publisher", name);
        self.publishing = Some(Publishing {
            key,
            stream,
            stream_id,
            ts,
            last_media: Instant::now(),
            last_ts: 0,
            track_bytes: [0, 0],
        });
        if let Some(p) = &self.publishing {
            for f in std::mem::take(&mut self.carried) {
                let is_meta = f.kind == FrameKind::Data;
                p.stream.push(self.id, f, false, is_meta);
            }
        }
        self.arm_update();
        Ok(())
    }

    fn on_play(&mut self, stream_id: u32, cmd: Command) -> Result<(), Close> {
        self.refresh_app();
        let (name, args) = split_args(cmd.arg_str(0).unwrap_or_default());
        let app = self
            .connected
            .as_ref()
            .map(|c| c.app.clone())
            .ok_or_else(|| close(Cause::Protocol, "no app"))?;
        if (!app.live && !app.play.is_vod()) || name.is_empty() {
            self.status(
                stream_id,
                "error",
                "NetStream.Play.StreamNotFound",
                "No such stream",
            );
            return Ok(());
        }
        if self.publishing.is_some() {
            self.status(
                stream_id,
                "error",
                "NetStream.Play.Failed",
                "Connection is publishing",
            );
            return Ok(());
        }
        if !self.access_allows(stream_id, Action::Play) {
            return Ok(());
        }
        self.stop_playing();
        self.stop_vod(false);
        self.fire_done();
        // nginx-rtmp: a negative start (live) plays a file from its start.
        self.play_start = cmd.arg_f64(1).filter(|s| *s > 0.0).unwrap_or(0.0) as u64;
        self.armed = Some(Armed {
            publish: false,
            started: false,
            name: name.clone(),
            args: args.clone(),
        });
        match self.play_hook(&name, &args, &cmd) {
            Some(call) => self.suspend(
                call,
                PendingCmd::Play {
                    stream_id,
                    name,
                    args,
                },
            ),
            None => self.finish_play(stream_id, name, args)?,
        }
        Ok(())
    }

    /// Completes `play` once access and on_play allowed it: a file when
    /// the application has `play` locations, else the live stream.
    pub(super) fn finish_play(
        &mut self,
        stream_id: u32,
        name: String,
        args: String,
    ) -> Result<(), Close> {
        let vod = self.connected.as_ref().is_some_and(|c| c.app.play.is_vod());
        if vod {
            return self.start_vod(stream_id, name, args);
        }
        self.finish_live_play(stream_id, name, args)
    }

    /// Joins the live stream `name`.
    pub(super) fn finish_live_play(
        &mut self,
        stream_id: u32,
        name: String,
        args: String,
    ) -> Result<(), Close> {
        let app = self
            .connected
            .as_ref()
            .map(|c| c.app.clone())
            .ok_or_else(|| close(Cause::Protocol, "no app"))?;
        let key = self.stream_key(&name);
        let published = |s: &Self| {
            s.shared
                .registry
                .get(&key)
                .is_some_and(|s| s.is_publishing())
        };
        let wanted = |s: &Self| {
            let ev = Want {
                key: &key,
                app: &app,
                redirect: s.relay_to.as_deref(),
            };
            s.shared.modules.wants(&s.shared, &ev)
        };
        if !app.idle_streams && !published(self) && !wanted(self) {
            self.status(
                stream_id,
                "error",
                "NetStream.Play.StreamNotFound",
                "No such stream",
            );
            self.close_after_flush = Some(close(
                Cause::Rejected,
                "play: stream not found (idle_streams off)",
            ));
            return Ok(());
        }
        let queue = self.core().out_queue;
        self.session
            .send_user_control(UserControl::StreamBegin(stream_id));
        self.status(
            stream_id,
            "status",
            "NetStream.Play.Reset",
            "Playing and resetting stream.",
        );
        self.status(stream_id, "status", "NetStream.Play.Start", "Start live");
        self.session.send_data(
            stream_id,
            0,
            &[
                Amf::str("|RtmpSampleAccess"),
                Amf::Boolean(true),
                Amf::Boolean(true),
            ],
        );
        let (stream, snap, rx) = self.shared.registry.subscribe(&key, queue);
        let redirect = self.relay_to.take();
        if let Some(a) = self.armed.as_mut() {
            a.started = true;
        }
        let session = self.chain_session();
        let ev = Play {
            session: &session,
            key: &key,
            stream: Some(&stream),
            app: &app,
            args: &args,
            published: snap.publishing,
            redirect: redirect.as_deref(),
            resumed: false,
        };
        self.shared.modules.play(&self.shared, &ev);
        let mut filter = PlayerFilter::new(app.wait_key, app.wait_video);
        if snap.publishing && app.publish_notify {
            self.status(
                stream_id,
                "status",
                "NetStream.Play.PublishNotify",
                "Start publishing",
            );
        }
        info!(id = self.id, addr = %self.addr, app = key.app, stream = name, "play");
        self.stat.update(|i| {
            i.name = name.clone();
            i.role = crate::stats::Role::Player;
        });
        self.role = ("player", name);
        for f in snap.headers() {
            self.send_frame(f, stream_id);
        }
        for f in &snap.gop {
            if filter.admit(f) {
                self.send_frame(f, stream_id);
            }
        }
        self.playing = Some(Playing {
            key,
            stream,
            stream_id,
            rx,
            filter,
            last_ts: 0,
        });
        self.arm_update();
        Ok(())
    }

    /// `/control/redirect`: as nginx-rtmp does, close the stream and
    /// publish or play again under `name` (`name?args` splits as in a
    /// command), through access rules and notifications like a client's own
    /// command.
    pub(super) fn redirect(&mut self, name: String) {
        if self.pending.is_some() {
            return;
        }
        let cmd = |verb: &str, args: Vec<Amf>| Command::new(verb, 0.0, Amf::Null, args);
        let r = if let Some(p) = self.publishing.as_ref() {
            let sid = p.stream_id;
            info!(id = self.id, to = name, "redirect: publish");
            // The encoder sent its headers once, at its own publish: the new
            // stream gets them from the old one (nginx-rtmp keeps them per
            // session, to the same effect).
            self.carried = p.stream.headers();
            self.close_stream(sid);
            self.fire_done();
            self.on_publish(
                sid,
                cmd("publish", vec![Amf::String(name), Amf::str("live")]),
            )
        } else if let Some(sid) = self.playing.as_ref().map(|p| p.stream_id) {
            info!(id = self.id, to = name, "redirect: play");
            self.on_play(sid, cmd("play", vec![Amf::String(name)]))
        } else {
            return;
        };
        if let Err(e) = r {
            self.close_after_flush = Some(e);
        }
    }

    fn close_stream(&mut self, stream_id: u32) {
        if self
            .publishing
            .as_ref()
            .is_some_and(|p| p.stream_id == stream_id)
        {
            self.stop_publishing();
            self.status(
                stream_id,
                "status",
                "NetStream.Unpublish.Success",
                "Stop publishing",
            );
        }
        if self
            .playing
            .as_ref()
            .is_some_and(|p| p.stream_id == stream_id)
        {
            self.stop_playing();
        }
        if self.vod.as_ref().is_some_and(|v| v.stream_id == stream_id) {
            self.stop_vod(true);
        }
    }

    pub(super) fn stop_publishing(&mut self) {
        if let Some(p) = self.publishing.take() {
            self.stat.update(|i| i.role = crate::stats::Role::None);
            p.stream.unpublish(self.id);
            if let Some(c) = &self.shared.cluster {
                c.release(&p.key, self.id);
            }
            self.shared.registry.release(&p.key);
        }
    }

    pub(super) fn stop_playing(&mut self) {
        if let Some(p) = self.playing.take() {
            self.stat.update(|i| i.role = crate::stats::Role::None);
            p.stream.unsubscribe();
            drop(p.rx);
            self.shared.registry.release(&p.key);
        }
    }

    pub(super) fn on_media(
        &mut self,
        kind: FrameKind,
        ts: u32,
        stream_id: u32,
        payload: Bytes,
    ) -> Result<(), Close> {
        let chunk = self.core().chunk_size;
        let Some(app) = self
            .connected
            .as_ref()
            .map(|c| (c.app.gop_cache, c.app.interleave))
        else {
            return Ok(());
        };
        let Some(p) = self.publishing.as_mut() else {
            return Ok(());
        };
        if p.stream_id != stream_id {
            return Ok(());
        }
        let (info, track) = match kind {
            FrameKind::Video => (flv::video_info(&payload), 1),
            _ => (flv::audio_info(&payload), 0),
        };
        let info = match info {
            Ok(i) => i,
            Err(flv::TagError::Empty(_)) => return Ok(()), // harmless, skip
            Err(e) => {
                return Err(close(
                    Cause::BadMedia,
                    format!("bad media from publisher: {e}"),
                ))
            }
        };
        p.last_media = Instant::now();
        p.track_bytes[track] += payload.len() as u64;
        let ts = p.ts.fix_track(ts, track, info.track);
        p.last_ts = ts;
        let frame = Arc::new(Frame::new(kind, ts, info, payload, chunk, app.1));
        p.stream.push(self.id, frame, app.0, false);
        Ok(())
    }

    pub(super) fn on_data(
        &mut self,
        ts: u32,
        stream_id: u32,
        mut values: Vec<Amf>,
    ) -> Result<(), Close> {
        let Some(meta_mode) = self.connected.as_ref().map(|c| c.app.meta) else {
            return Ok(());
        };
        let chunk = self.core().chunk_size;
        let Some(p) = self.publishing.as_mut() else {
            return Ok(());
        };
        if p.stream_id != stream_id {
            return Ok(());
        }
        let is_meta = crate::live::frame::strip_set_data_frame(&mut values);
        if is_meta {
            let body = values.get(1).cloned().unwrap_or(Amf::Null);
            let body = match meta_mode {
                Meta::Off => return Ok(()),
                Meta::Copy => body,
                Meta::On => {
                    let mut props = vec![("Server".to_owned(), Amf::str("Sluice"))];
                    if let Some(src) = body.props() {
                        props.extend(
                            src.iter()
                                .filter(|(k, _)| META_FIELDS.contains(&k.as_str()))
                                .cloned(),
                        );
                    }
                    Amf::Object(props)
                }
            };
            values = vec![Amf::str("onMetaData"), body];
        }
        let ts = p.ts.fix(ts, 2);
        // nginx-rtmp sends rebuilt metadata (`meta on`) at timestamp 0 and
        // copied metadata at the publisher's.
        let ts = if is_meta && meta_mode == Meta::On {
            0
        } else {
            ts
        };
        let frame = Arc::new(Frame::data(ts, &values, chunk));
        p.stream.push(self.id, frame, false, is_meta);
        Ok(())
    }

    /// Runs for every frame for every player: it reads only the few app
    /// flags that publish events need, never clones configuration.
    pub(super) fn on_delivery(&mut self, d: Result<Delivery, RecvError>) -> Result<(), Close> {
        let Some((play_restart, publish_notify, idle_streams)) = self
            .connected
            .as_ref()
            .map(|c| (c.app.play_restart, c.app.publish_notify, c.app.idle_streams))
        else {
            return Ok(());
        };
        let Some(p) = self.playing.as_mut() else {
            return Ok(());
        };
        let sid = p.stream_id;
        match d {
            Ok(Delivery::Frame(f)) => {
                if p.filter.admit(&f) {
                    if f.kind != FrameKind::Data {
                        p.last_ts = f.timestamp;
                    }
                    self.send_frame(&f, sid);
                }
            }
            Ok(Delivery::PublishStart) => {
                p.filter.restart();
                self.session
                    .send_user_control(UserControl::StreamBegin(sid));
                if play_restart {
                    self.status(sid, "status", "NetStream.Play.Start", "Start live");
                }
                if publish_notify {
                    self.status(
                        sid,
                        "status",
                        "NetStream.Play.PublishNotify",
                        "Start publishing",
                    );
                }
            }
            Ok(Delivery::PublishStop) => {
                self.session.send_user_control(UserControl::StreamEof(sid));
                if play_restart {
                    self.status(sid, "status", "NetStream.Play.Stop", "Stop live");
                }
                if publish_notify {
                    self.status(
                        sid,
                        "status",
                        "NetStream.Play.UnpublishNotify",
                        "Stop publishing",
                    );
                }
                if !idle_streams {
                    self.close_after_flush =
                        Some(close(Cause::Normal, "publisher left (idle_streams off)"));
                }
            }
            Err(RecvError::Lagged(n)) => {
                p.filter
                    .on_lag(n, Instant::now())
                    .map_err(|e| close(Cause::SlowPlayer, e.to_string()))?;
                debug!(
                    id = self.id,
                    missed = n,
                    "player lagged; skipping to next keyframe"
                );
            }
            Err(RecvError::Closed) => return Err(close(Cause::Normal, "stream closed")),
        }
        Ok(())
    }
}
