//! Where notifications and access control hook into a connection's life:
//! checked calls suspend a command until their answer arrives, `done` and
//! `disconnect` calls are fired once when streams and connections end.

use std::time::Instant;

use tokio::sync::oneshot;
use tracing::{info, warn};

use super::connection::{close, Close, Connection};
use crate::config::access::{self, Action};
use crate::netcall::{Answer, Call, Form, SessionFields};
use crate::rtmp::{Amf, Command};
use crate::telemetry::Cause;

/// A command waiting for its notification's answer.
pub enum PendingCmd {
    Connect(Command),
    Publish {
        stream_id: u32,
        name: String,
        args: String,
        kind: String,
    },
    Play {
        stream_id: u32,
        name: String,
        args: String,
    },
    /// A publish waiting for the cluster directory's claim.
    Claim {
        stream_id: u32,
        name: String,
        args: String,
        kind: String,
    },
}

pub struct Pending {
    pub cmd: PendingCmd,
    pub rx: oneshot::Receiver<Answer>,
}

/// `on_update`: a call every `notify_update_timeout` while publishing or
/// playing; its answer can end the session.
pub struct UpdateTimer {
    pub started: Instant,
    pub next: Instant,
    /// When the call in flight was sent: the next one is due a full
    /// `notify_update_timeout` after it, however late its answer was read.
    pub sent: Instant,
    pub inflight: Option<oneshot::Receiver<Answer>>,
}

/// A publish or play that was announced (its hook sent or its stream
/// started): `*_done` and `done` are owed for it exactly once.
pub struct Armed {
    pub publish: bool,
    /// Whether the chain heard the publish or play start.
    pub started: bool,
    pub name: String,
    pub args: String,
}

impl Connection {
    pub(super) fn session_fields(&self) -> SessionFields {
        let c = self.connected.as_ref();
        let get = |k: &str| {
            c.and_then(|c| c.object.get(k))
                .and_then(Amf::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        SessionFields {
            app: c.map(|c| c.app_name.clone()).unwrap_or_default(),
            flashver: get("flashVer"),
            swfurl: get("swfUrl"),
            tcurl: get("tcUrl"),
            pageurl: get("pageUrl"),
            addr: self.addr.ip().to_canonical().to_string(),
            clientid: self.id,
        }
    }

    fn call(&self, url: &str, name: &'static str, form: Form) -> Call {
        let notify = match &self.connected {
            Some(c) => &c.app.notify,
            None => &self.config.servers[self.server].notify,
        };
        Call {
            url: url.to_owned(),
            method: notify.method,
            timeout: notify.timeout,
            form,
            name,
        }
    }

    /// Sends a checked call; the command resumes in [`Self::on_answer`].
    pub(super) fn suspend(&mut self, call: Call, cmd: PendingCmd) {
        let (tx, rx) = oneshot::channel();
        let notifier = self.shared.netcall.clone();
        tokio::spawn(async move {
            let _ = tx.send(notifier.call(&call).await);
        });
        self.pending = Some(Pending { cmd, rx });
    }

    /// `on_connect`, built from the connect command itself as nginx does
    /// (no clientid; `epoch`; the connection args raw).
    pub(super) fn connect_hook(&self, cmd: &Command) -> Option<Call> {
        let url = self.config.servers[self.server].notify.on_connect.clone()?;
        let o = &cmd.object;
        let get = |k: &str| {
            o.get(k)
                .and_then(Amf::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let raw_app = get("app");
        let (app, mut args) = super::commands::split_args(&raw_app);
        if args.is_empty() {
            args = get("tcUrl")
                .split_once('?')
                .map(|(_, a)| a.to_owned())
                .unwrap_or_default();
        }
        let epoch = self
            .started_at()
            .duration_since(self.shared.started)
            .as_millis();
        let form = Form::new()
            .field("app", &app)
            .field("flashver", &get("flashVer"))
            .field("swfurl", &get("swfUrl"))
            .field("tcurl", &get("tcUrl"))
            .field("pageurl", &get("pageUrl"))
            .field("addr", &self.addr.ip().to_canonical().to_string())
            .field("epoch", &epoch.to_string())
            .field("call", "connect")
            .raw(&args);
        Some(self.call(&url, "connect", form))
    }

    pub(super) fn publish_hook(&self, name: &str, args: &str, kind: &str) -> Option<Call> {
        let url = self.connected.as_ref()?.app.notify.on_publish.clone()?;
        let form = self
            .session_fields()
            .form()
            .field("call", "publish")
            .field("name", name)
            .field("type", kind)
            .raw(args);
        Some(self.call(&url, "publish", form))
    }

    pub(super) fn play_hook(&self, name: &str, args: &str, cmd: &Command) -> Option<Call> {
        let url = self.connected.as_ref()?.app.notify.on_play.clone()?;
        // start/duration as unsigned 32-bit milliseconds, as nginx prints them
        let ms = |i: usize, d: f64| (cmd.arg_f64(i).unwrap_or(d) as i64 as u32).to_string();
        let reset = cmd.args.get(3).is_some_and(Amf::truthy) as u8;
        let form = self
            .session_fields()
            .form()
            .field("call", "play")
            .field("name", name)
            .field("start", &ms(1, -2000.0))
            .field("duration", &ms(2, 0.0))
            .field("reset", &reset.to_string())
            .raw(args);
        Some(self.call(&url, "play", form))
    }

    /// Access rules for publish/play; false after queuing the refusal.
    pub(super) fn access_allows(&mut self, stream_id: u32, action: Action) -> bool {
        let Some(c) = &self.connected else {
            return false;
        };
        if access::permits(&c.app.access, self.addr.ip(), action) {
            return true;
        }
        let (code, what) = match action {
            Action::Publish => ("NetStream.Publish.Unauthorized", "publish"),
            Action::Play => ("NetStream.Play.Failed", "play"),
        };
        warn!(id = self.id, addr = %self.addr, "{what} denied by access rules");
        self.status(stream_id, "error", code, &format!("Access denied ({what})"));
        self.close_after_flush = Some(close(
            Cause::Rejected,
            format!("{what} denied by access rules"),
        ));
        false
    }

    /// Resumes the suspended command with its answer.
    pub(super) fn on_answer(&mut self, cmd: PendingCmd, answer: Answer) -> Result<(), Close> {
        match (cmd, answer) {
            (PendingCmd::Connect(cmd), Answer::Continue) => self.finish_connect(cmd, None),
            (PendingCmd::Connect(cmd), Answer::Redirect(url))
                if url.to_ascii_lowercase().starts_with("rtmp://")
                    && self.config.servers[self.server].notify.send_redirect =>
            {
                self.send_connect_redirect(&cmd, &url);
                Ok(())
            }
            (PendingCmd::Connect(cmd), Answer::Redirect(app)) => {
                info!(id = self.id, app, "on_connect redirected the application");
                self.finish_connect(cmd, Some(app))
            }
            (PendingCmd::Connect(cmd), Answer::Reject(why)) => {
                warn!(id = self.id, addr = %self.addr, "connect rejected by on_connect: {why}");
                self.send_error(
                    cmd.transaction,
                    "NetConnection.Connect.Rejected",
                    &format!("Rejected by on_connect ({why})"),
                );
                self.close_after_flush = Some(close(
                    Cause::Rejected,
                    format!("on_connect rejected: {why}"),
                ));
                Ok(())
            }
            (
                PendingCmd::Publish {
                    stream_id,
                    name,
                    args,
                    kind,
                },
                answer,
            ) => match self.stream_answer(stream_id, name, answer, Action::Publish) {
                Some(name) => self.finish_publish(stream_id, name, args, kind),
                None => Ok(()),
            },
            (
                PendingCmd::Play {
                    stream_id,
                    name,
                    args,
                },
                answer,
            ) => match self.stream_answer(stream_id, name, answer, Action::Play) {
                Some(name) => self.finish_play(stream_id, name, args),
                None => Ok(()),
            },
            (
                PendingCmd::Claim {
                    stream_id,
                    name,
                    args,
                    kind,
                },
                Answer::Continue,
            ) => {
                self.claimed = true;
                self.finish_publish(stream_id, name, args, kind)
            }
            // A claim answers Continue or Reject(owner node).
            (
                PendingCmd::Claim {
                    stream_id, name, ..
                },
                Answer::Reject(owner) | Answer::Redirect(owner),
            ) => {
                warn!(id = self.id, addr = %self.addr, stream = name, owner, "publish refused: the stream is published on another node");
                self.status(
                    stream_id,
                    "error",
                    "NetStream.Publish.BadName",
                    &format!("Already publishing on node {owner}"),
                );
                self.close_after_flush = Some(close(
                    Cause::Rejected,
                    format!("publish refused: already publishing on node {owner}"),
                ));
                Ok(())
            }
        }
    }

    /// Asks the cluster directory for the stream before publishing; the
    /// publish resumes in [`Self::on_answer`].
    pub(super) fn suspend_claim(&mut self, cmd: PendingCmd, key: crate::live::StreamKey) {
        let Some(cluster) = self.shared.cluster.clone() else {
            return;
        };
        let (tx, rx) = oneshot::channel();
        let id = self.id;
        tokio::spawn(async move {
            let a = match cluster.claim(&key, id).await {
                Ok(()) => Answer::Continue,
                Err(owner) => Answer::Reject(owner),
            };
            let _ = tx.send(a);
        });
        self.pending = Some(Pending { cmd, rx });
    }

    /// Interprets on_publish/on_play's answer: the stream name to go on
    /// with (renamed by a 3xx), or `None` after queuing the refusal.
    fn stream_answer(
        &mut self,
        stream_id: u32,
        name: String,
        answer: Answer,
        action: Action,
    ) -> Option<String> {
        let (code, what) = match action {
            Action::Publish => ("NetStream.Publish.Unauthorized", "publish"),
            Action::Play => ("NetStream.Play.Failed", "play"),
        };
        let why = match answer {
            Answer::Continue => return Some(name),
            Answer::Redirect(loc) if loc.starts_with("rtmp://") => {
                // As nginx-rtmp: relay from (play) or to (publish) there,
                // under the local name, or under a name made from the URL
                // with notify_relay_redirect.
                let rename = self
                    .connected
                    .as_ref()
                    .is_some_and(|c| c.app.notify.relay_redirect);
                info!(id = self.id, stream = name, url = %crate::redact::args(&loc), "on_{what} relays the stream");
                self.relay_to = Some(loc.clone());
                if rename {
                    use md5::{Digest, Md5};
                    let new = Md5::digest(loc.as_bytes())
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>();
                    self.armed_rename(&new);
                    return Some(new);
                }
                return Some(name);
            }
            // nginx-rtmp would take an http:// or /path Location as the new
            // stream name; that is an HTTP redirect (to the hook itself, or
            // a login page), never a rename anyone meant, so it fails closed.
            Answer::Redirect(loc) if loc.contains("://") || loc.starts_with('/') => {
                format!(
                    "redirected to {}, which is not a stream",
                    crate::redact::args(&loc)
                )
            }
            Answer::Redirect(new) => {
                info!(
                    id = self.id,
                    from = name,
                    to = %crate::redact::args(&new),
                    "on_{what} renamed the stream"
                );
                self.armed_rename(&new);
                return Some(new);
            }
            Answer::Reject(why) => why,
        };
        warn!(id = self.id, addr = %self.addr, "{what} rejected by on_{what}: {why}");
        self.status(
            stream_id,
            "error",
            code,
            &format!("Rejected by on_{what} ({why})"),
        );
        self.close_after_flush = Some(close(Cause::Rejected, format!("on_{what} rejected: {why}")));
        None
    }

    /// `notify_send_redirect`: tells the client to connect to `url`, as
    /// the sergey-dryabzhinsky fork does (FMS's `ex.redirect`; encoders that
    /// call themselves FMLE get it as onStatus and netStatus, others as
    /// `_error`), then `close`.
    fn send_connect_redirect(&mut self, cmd: &Command, url: &str) {
        use crate::rtmp::amf::object;
        info!(id = self.id, url = %crate::redact::args(url), "on_connect redirects the client");
        let info = object([
            ("level", Amf::str("error")),
            ("code", Amf::str("NetConnection.Connect.Rejected")),
            ("description", Amf::str("Connect here")),
            (
                "ex",
                object([("code", Amf::Number(302.0)), ("redirect", Amf::str(url))]),
            ),
        ]);
        let fmle = cmd
            .object
            .get("flashVer")
            .and_then(Amf::as_str)
            .is_some_and(|v| v.starts_with("FMLE/"));
        let methods: &[&str] = if fmle {
            &["onStatus", "netStatus"]
        } else {
            &["_error"]
        };
        for m in methods {
            let c = Command::new(m, cmd.transaction, Amf::Null, vec![info.clone()]);
            self.session.send_command(0, &c);
        }
        self.session
            .send_command(0, &Command::new("close", 0.0, Amf::Null, vec![]));
        self.close_after_flush = Some(close(Cause::Rejected, "on_connect: client redirected"));
    }

    fn armed_rename(&mut self, new: &str) {
        if let Some(a) = self.armed.as_mut() {
            a.name = new.to_owned();
        }
    }

    /// Starts the on_update schedule when the app has one.
    pub(super) fn arm_update(&mut self) {
        let Some(n) = self.connected.as_ref().map(|c| &c.app.notify) else {
            return;
        };
        if n.on_update.is_none() || n.update_timeout.is_zero() {
            return;
        }
        let now = Instant::now();
        self.update = Some(UpdateTimer {
            started: now,
            next: now + n.update_timeout,
            sent: now,
            inflight: None,
        });
    }

    /// Sends due on_update calls and acts on their answers: a valid non-2xx
    /// answer ends the session; with `notify_update_strict on`, so does a
    /// timeout or a failed connection.
    pub(super) fn poll_update(&mut self, now: Instant) -> Result<(), Close> {
        // Runs every tick for every connection: bail out before touching
        // the configuration when no update is scheduled.
        let Some(u) = self.update.as_mut() else {
            return Ok(());
        };
        let Some(n) = self.connected.as_ref().map(|c| &c.app.notify) else {
            return Ok(());
        };
        let (timeout, strict) = (n.update_timeout, n.update_strict);
        if n.on_update.is_none() {
            return Ok(());
        }
        if let Some(rx) = u.inflight.as_mut() {
            let answer = match rx.try_recv() {
                Ok(a) => a,
                Err(oneshot::error::TryRecvError::Empty) => return Ok(()),
                Err(_) => Answer::Reject("notification task failed".into()),
            };
            u.inflight = None;
            u.next = u.sent + timeout;
            if let Answer::Reject(why) = answer {
                if strict || why.starts_with("HTTP ") {
                    warn!(id = self.id, addr = %self.addr, "on_update rejected: {why}");
                    return Err(close(Cause::Rejected, format!("on_update rejected: {why}")));
                }
                warn!(
                    id = self.id,
                    "on_update failed, ignored (notify_update_strict off): {why}"
                );
            }
            return Ok(());
        }
        if now < u.next {
            return Ok(());
        }
        let time = now.duration_since(u.started).as_secs();
        let (call, ts, name, args) = match (&self.publishing, &self.playing, &self.armed) {
            (Some(p), _, Some(a)) => ("update_publish", p.last_ts, a.name.clone(), a.args.clone()),
            (_, Some(p), Some(a)) => ("update_play", p.last_ts, a.name.clone(), a.args.clone()),
            _ => return Ok(()),
        };
        let form = self
            .session_fields()
            .form()
            .field("call", call)
            .field("time", &time.to_string())
            .field("timestamp", &ts.to_string())
            .field("name", &name)
            .raw(&args);
        let Some(url) = self
            .connected
            .as_ref()
            .and_then(|c| c.app.notify.on_update.clone())
        else {
            return Ok(());
        };
        let call = self.call(&url, "update", form);
        let (tx, rx) = oneshot::channel();
        let notifier = self.shared.netcall.clone();
        tokio::spawn(async move {
            let _ = tx.send(notifier.call(&call).await);
        });
        if let Some(u) = self.update.as_mut() {
            u.inflight = Some(rx);
            u.sent = now;
        }
        Ok(())
    }
}
