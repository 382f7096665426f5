//! A connection playing a file (`play` locations): opening it, sending
//! what its [`Vod`] cursor says is due, and the stream commands that act on
//! it (`seek`, `pause`, `closeStream`), with nginx-rtmp's statuses.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::connection::{close, Close, Connection};
use crate::config::play::{PlayConf, PlayEntry};
use crate::node::chain::Play;
use crate::rtmp::amf::object;
use crate::rtmp::{Amf, UserControl};
use crate::telemetry::Cause;
use crate::vod::locate::{self, Wanted};
use crate::vod::player::{Event, Vod, Wire};
use crate::vod::source::FileSource;
use crate::vod::{cache, fetch, Index, VodError};

/// An opened file: its shared index and the open file.
pub struct Opened {
    pub index: Arc<Index>,
    pub src: Arc<FileSource>,
    pub path: PathBuf,
}

type Opening = JoinHandle<Result<Option<Opened>, VodError>>;

pub enum VodState {
    /// Locations are being tried (a fetch may be running).
    Opening(Opening),
    Playing(Box<Vod>),
}

/// The VOD play of a connection.
pub struct VodPlay {
    pub stream_id: u32,
    pub name: String,
    pub args: String,
    /// Where to start, ms (`play`'s start argument).
    pub start: u64,
    pub state: VodState,
}

/// What the select loop hands back.
pub enum VodEv {
    Opened(Result<Option<Opened>, VodError>),
    Media(Event),
}

pub async fn next_vod(vod: &mut Option<VodPlay>, buflen: u64) -> VodEv {
    match vod.as_mut().map(|v| &mut v.state) {
        Some(VodState::Opening(h)) => VodEv::Opened(match h.await {
            Ok(r) => r,
            Err(e) => Err(VodError::Format(format!("open task: {e}"))),
        }),
        Some(VodState::Playing(v)) => VodEv::Media(v.next(buflen).await),
        None => std::future::pending().await,
    }
}

/// Tries every location in order; the first that has the file wins.
async fn open(
    conf: PlayConf,
    wanted: Wanted,
    addr: String,
    args: String,
    idle: std::time::Duration,
) -> Result<Option<Opened>, VodError> {
    for entry in &conf.entries {
        let (src, path) = match entry {
            PlayEntry::Dir(dir) => {
                let path = locate::under(dir, &wanted.file);
                let p = path.clone();
                match tokio::task::spawn_blocking(move || FileSource::open(&p)).await {
                    Ok(Ok(src)) => (src, path),
                    _ => continue,
                }
            }
            PlayEntry::Http(base) => {
                let url = fetch::url(base, &wanted.file, &addr, &args);
                let keep = conf
                    .local_path
                    .as_ref()
                    .map(|d| locate::under(d, &wanted.file));
                match fetch::fetch(&url, &conf.temp_path, keep, idle).await? {
                    Some(f) => (f.source, f.path),
                    None => continue,
                }
            }
        };
        let format = wanted.format;
        let p = path.clone();
        let (index, src) =
            tokio::task::spawn_blocking(move || cache::get(&p, &src, format).map(|ix| (ix, src)))
                .await
                .map_err(|e| VodError::Format(format!("index task: {e}")))??;
        return Ok(Some(Opened {
            index,
            src: Arc::new(src),
            path,
        }));
    }
    Ok(None)
}

impl Connection {
    /// `play` in an application with `play` locations, once access and
    /// `on_play` allowed it: the locations are tried on a task of their
    /// own, and the select loop picks up its answer ([`VodEv::Opened`]).
    pub(super) fn start_vod(
        &mut self,
        stream_id: u32,
        name: String,
        args: String,
    ) -> Result<(), Close> {
        let Some(app) = self.connected.as_ref().map(|c| c.app.clone()) else {
            return Err(close(Cause::Protocol, "no app"));
        };
        let wanted = match locate::resolve(&name) {
            Ok(w) => w,
            Err(e) => {
                warn!(id = self.id, addr = %self.addr, name, "play: bad name: {e}");
                self.status(stream_id, "error", "NetStream.Play.Failed", "Bad name");
                self.close_after_flush = Some(close(
                    Cause::Rejected,
                    format!("play: bad name '{name}': {e}"),
                ));
                return Ok(());
            }
        };
        self.stop_vod(false);
        let conf = app.play.clone();
        let idle = app.notify.timeout;
        let addr = self.addr.ip().to_string();
        let task = tokio::spawn(open(conf, wanted, addr, args.clone(), idle));
        self.vod = Some(VodPlay {
            stream_id,
            name,
            args,
            start: std::mem::take(&mut self.play_start),
            state: VodState::Opening(task),
        });
        Ok(())
    }

    pub(super) fn on_vod(&mut self, ev: VodEv) -> Result<(), Close> {
        match ev {
            VodEv::Opened(r) => self.vod_opened(r),
            VodEv::Media(Event::Send(wire)) => {
                if let Some(VodState::Playing(p)) = self.vod.as_ref().map(|v| &v.state) {
                    self.vod_ts = p.last_ts();
                }
                self.queue_wire(wire);
                Ok(())
            }
            VodEv::Media(Event::End { last_ts }) => {
                let Some(sid) = self.vod.as_ref().map(|v| v.stream_id) else {
                    return Ok(());
                };
                let duration = self.vod_duration_secs();
                info!(id = self.id, last_ts, "play: vod done");
                self.session.send_user_control(UserControl::StreamEof(sid));
                self.play_status(sid, "NetStream.Play.Complete", duration);
                self.status(sid, "status", "NetStream.Play.Stop", "Stopped");
                Ok(())
            }
            VodEv::Media(Event::Failed(e)) => {
                let Some(v) = self.vod.take() else {
                    return Ok(());
                };
                warn!(id = self.id, addr = %self.addr, name = v.name, "play: vod read failed: {e}");
                self.session
                    .send_user_control(UserControl::StreamEof(v.stream_id));
                self.status(
                    v.stream_id,
                    "status",
                    "NetStream.Play.Stop",
                    "Stop video on demand",
                );
                Ok(())
            }
        }
    }

    fn vod_duration_secs(&self) -> f64 {
        match self.vod.as_ref().map(|v| &v.state) {
            Some(VodState::Playing(p)) => p.index().duration_ms as f64 / 1000.0,
            _ => 0.0,
        }
    }

    /// `onPlayStatus`, as nginx-rtmp sends it at the end of a file.
    fn play_status(&mut self, sid: u32, code: &str, duration: f64) {
        let info = object([
            ("code", Amf::str(code)),
            ("level", Amf::str("status")),
            ("duration", Amf::Number(duration)),
            ("bytes", Amf::Number(0.0)),
        ]);
        self.session
            .send_data(sid, 0, &[Amf::str("onPlayStatus"), info]);
    }

    fn vod_opened(&mut self, r: Result<Option<Opened>, VodError>) -> Result<(), Close> {
        let Some(v) = self.vod.as_mut() else {
            return Ok(());
        };
        let (sid, name, args) = (v.stream_id, v.name.clone(), v.args.clone());
        let opened = match r {
            Ok(Some(o)) => o,
            Ok(None) => {
                self.vod = None;
                let live = self.connected.as_ref().is_some_and(|c| c.app.live);
                if live {
                    // Not a file here: the live stream of that name.
                    info!(
                        id = self.id,
                        name, "play: no such file, playing the live stream"
                    );
                    return self.finish_live_play(sid, name, args);
                }
                info!(id = self.id, addr = %self.addr, name, "play: vod not found");
                self.status(
                    sid,
                    "error",
                    "NetStream.Play.StreamNotFound",
                    "Video on demand stream not found",
                );
                return Ok(());
            }
            Err(e) => {
                self.vod = None;
                warn!(id = self.id, addr = %self.addr, name, "play: cannot play the file: {e}");
                self.status(
                    sid,
                    "error",
                    "NetStream.Play.Failed",
                    "Video on demand stream cannot be played",
                );
                return Ok(());
            }
        };
        let start = v.start;
        info!(
            id = self.id,
            addr = %self.addr,
            name,
            file = %opened.path.display(),
            format = opened.index.format,
            samples = opened.index.samples.len(),
            duration_ms = opened.index.duration_ms,
            start,
            "play vod"
        );
        let wire = Wire {
            chunk_size: self.session.out_chunk_size(),
            stream_id: sid,
        };
        let vod = Vod::new(opened.index, opened.src, start, wire);
        v.state = VodState::Playing(Box::new(vod));
        self.session
            .send_user_control(UserControl::StreamBegin(sid));
        self.status(
            sid,
            "status",
            "NetStream.Play.Start",
            "Start video on demand",
        );
        self.session
            .send_user_control(UserControl::StreamIsRecorded(sid));
        self.session.send_data(
            sid,
            0,
            &[
                Amf::str("|RtmpSampleAccess"),
                Amf::Boolean(true),
                Amf::Boolean(true),
            ],
        );
        if let Some(a) = self.armed.as_mut() {
            a.started = true;
        }
        let key = self.key_for(&name);
        if let Some(c) = &self.connected {
            let session = self.chain_session();
            let ev = Play {
                session: &session,
                key: &key,
                stream: None,
                app: &c.app,
                args: &args,
                published: false,
                redirect: None,
                resumed: false,
            };
            self.shared.modules.play(&self.shared, &ev);
        }
        self.stat.update(|i| {
            i.name = name.clone();
            i.role = crate::stats::Role::Player;
        });
        self.role = ("player", name);
        self.arm_update();
        Ok(())
    }

    /// `seek`: to the keyframe at or before the offset.
    pub(super) fn vod_seek(&mut self, ms: f64) -> bool {
        let Some(v) = self.vod.as_mut() else {
            return false;
        };
        let sid = v.stream_id;
        let VodState::Playing(p) = &mut v.state else {
            v.start = ms.max(0.0) as u64;
            return true;
        };
        let landed = p.seek(ms.max(0.0) as u64);
        info!(id = self.id, to_ms = ms as u64, landed, "play: vod seek");
        self.session.send_user_control(UserControl::StreamEof(sid));
        self.status(sid, "status", "NetStream.Seek.Notify", "Seeking");
        self.session
            .send_user_control(UserControl::StreamBegin(sid));
        true
    }

    /// `pause`: stop or go on sending.
    pub(super) fn vod_pause(&mut self, pause: bool) -> bool {
        let Some(v) = self.vod.as_mut() else {
            return false;
        };
        let sid = v.stream_id;
        let VodState::Playing(p) = &mut v.state else {
            return true;
        };
        p.pause(pause);
        if pause {
            self.status(
                sid,
                "status",
                "NetStream.Pause.Notify",
                "Paused video on demand",
            );
        } else {
            self.status(
                sid,
                "status",
                "NetStream.Unpause.Notify",
                "Unpaused video on demand",
            );
        }
        true
    }

    /// Ends the VOD play (closeStream, deleteStream, a new play); `notify`
    /// sends nginx-rtmp's end-of-stream statuses.
    pub(super) fn stop_vod(&mut self, notify: bool) {
        let Some(v) = self.vod.take() else { return };
        if let VodState::Opening(h) = &v.state {
            h.abort();
        }
        self.stat.update(|i| i.role = crate::stats::Role::None);
        if notify && matches!(v.state, VodState::Playing(_)) {
            self.session
                .send_user_control(UserControl::StreamEof(v.stream_id));
            self.status(
                v.stream_id,
                "status",
                "NetStream.Play.Stop",
                "Stop video on demand",
            );
        }
    }
}
