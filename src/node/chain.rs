//! The module chain: how features hear about sessions and streams.
//!
//! nginx-rtmp builds its features as modules that each insert a handler in
//! front of `next_publish`, `next_play`, `next_close_stream`... and call on
//! down the chain. Sluice keeps the idea and drops the manual linking: every
//! feature implements [`Module`], overriding only the events it needs, and
//! the [`Chain`] calls each module in its list in order. The connection code
//! raises events; it names no feature, and no feature names another.
//!
//! Gates are not part of the chain: access rules, the checked notifications
//! (`on_connect`, `on_publish`, `on_play`, `on_update`) and the cluster claim
//! decide *whether* a publish or play happens and may suspend the command,
//! so they stay with the connection. The chain hears about what happened.
//!
//! Handlers run on the task that raised the event and must not block: one
//! that has slow work to do (a file, a child process, an HTTP call) spawns
//! it. An event is never raised per frame.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use crate::config::{AppConf, RecorderConf};
use crate::live::{Stream, StreamKey};
use crate::netcall::SessionFields;

/// The session an event belongs to: a client connection, or an in-process
/// session (a pull, a multitrack rendition) that stands for one.
#[derive(Debug, Clone)]
pub struct Session {
    /// The connection id, also the inbox id of [`super::drain::Drain::post`].
    pub id: u64,
    /// The `server {}` block, by index.
    pub server: usize,
    /// What `connect` said, and the peer's address.
    pub fields: SessionFields,
    /// The peer's address and port.
    pub peer: Option<std::net::SocketAddr>,
}

/// A stream was published: it is live in the registry, and its publisher's
/// first frame has not been pushed yet (so a reader subscribed now misses
/// nothing).
pub struct Publish<'a> {
    pub session: &'a Session,
    pub key: &'a StreamKey,
    pub stream: &'a Arc<Stream>,
    pub app: &'a AppConf,
    /// The stream's `?args`, raw.
    pub args: &'a str,
    /// `live`, `record` or `append`, as the client sent it.
    pub kind: &'a str,
    /// An rtmp:// URL on_publish answered with: relay the stream there.
    pub redirect: Option<&'a str>,
    /// Published inside the process from another stream (a multitrack
    /// rendition), rather than by a client.
    pub derived: bool,
    /// Handed over, already publishing, by the process before this one
    /// (binary upgrade): one-shot actions for a new publish
    /// (`exec_publish`) do not run again; continuing ones (recorders, HLS,
    /// pushes, `exec_push`) start here as they stop there.
    pub resumed: bool,
}

/// A player joined a stream (subscribed; its first frames are queued).
pub struct Play<'a> {
    pub session: &'a Session,
    pub key: &'a StreamKey,
    /// The live stream joined; `None` for a video-on-demand play of a file
    /// (`play` locations), which no pull or `exec_pull` should feed.
    pub stream: Option<&'a Arc<Stream>>,
    pub app: &'a AppConf,
    pub args: &'a str,
    /// Whether the stream had a publisher when the player joined.
    pub published: bool,
    /// An rtmp:// URL on_play answered with: pull the stream from there.
    pub redirect: Option<&'a str>,
    /// Handed over, already playing, by the process before this one.
    pub resumed: bool,
}

/// Whether some module will bring an unpublished stream to a player (a
/// pull, an `exec_pull`), asked before the play is refused for want of a
/// publisher.
pub struct Want<'a> {
    pub key: &'a StreamKey,
    pub app: &'a AppConf,
    pub redirect: Option<&'a str>,
}

/// A publish or play ended, or was refused after it was announced.
pub struct CloseStream<'a> {
    pub session: &'a Session,
    pub app: &'a AppConf,
    /// The stream name (after any rename by on_publish/on_play).
    pub name: &'a str,
    pub args: &'a str,
    pub publish: bool,
    /// Whether [`Module::publish`] or [`Module::play`] was raised for it;
    /// false when a gate refused it after `on_publish`/`on_play` was sent.
    pub started: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The session moved to a new process (binary upgrade) and goes on
    /// there: no `*_done` is owed for it here.
    pub moved: bool,
}

/// A connection closed, connected to an application or not.
pub struct Disconnect<'a> {
    pub session: &'a Session,
    /// The application, when `connect` succeeded.
    pub app: Option<&'a AppConf>,
    /// The connection's `?args` (from `connect`).
    pub args: &'a str,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// How long the connection was open.
    pub duration: Duration,
    /// The connection moved to a new process and goes on there.
    pub moved: bool,
}

/// A recorder finished a file (or, for `record_started`, opened one).
pub struct RecordDone<'a> {
    pub session: &'a Session,
    pub app: &'a AppConf,
    /// The stream the file recorded.
    pub name: &'a str,
    pub args: &'a str,
    pub recorder: &'a RecorderConf,
    pub path: &'a Path,
}

/// A playlist was rewritten (HLS: after each segment), for `on_playlist`
/// (sergey-dryabzhinsky's fork).
pub struct PlaylistWritten<'a> {
    pub session: &'a Session,
    pub app: &'a AppConf,
    pub name: &'a str,
    pub args: &'a str,
    /// `hls` (or `dash`).
    pub module: &'static str,
    pub path: &'a Path,
}

/// A feature. Every handler has a default that does nothing.
pub trait Module: Send + Sync + 'static {
    /// For logs and for [`Chain::get`].
    fn name(&self) -> &'static str;
    /// The server starts accepting (static pulls, `exec_static`).
    fn start(&self, _shared: &Arc<Shared>) {}
    fn publish(&self, _shared: &Arc<Shared>, _ev: &Publish) {}
    fn play(&self, _shared: &Arc<Shared>, _ev: &Play) {}
    /// Whether this module will publish `ev.key` for a player.
    fn wants(&self, _shared: &Arc<Shared>, _ev: &Want) -> bool {
        false
    }
    fn close_stream(&self, _shared: &Arc<Shared>, _ev: &CloseStream) {}
    fn disconnect(&self, _shared: &Arc<Shared>, _ev: &Disconnect) {}
    fn record_done(&self, _shared: &Arc<Shared>, _ev: &RecordDone) {}
    /// A recorder opened a file (the sergey-dryabzhinsky fork's
    /// `on_record_started` and `exec_record_started`).
    fn record_started(&self, _shared: &Arc<Shared>, _ev: &RecordDone) {}
    fn playlist(&self, _shared: &Arc<Shared>, _ev: &PlaylistWritten) {}
    /// Every stream has ended (drain or shutdown): release what outlives
    /// streams (child processes, open files). The server waits for the
    /// returned tasks (a bounded time) before it exits.
    fn stop(&self, _shared: &Arc<Shared>) -> Vec<tokio::task::JoinHandle<()>> {
        Vec::new()
    }
    /// SIGUSR1: reopen log files.
    fn reopen(&self) {}
    /// A metrics scrape is due: refresh this module's gauges.
    fn metrics(&self) {}
    fn as_any(&self) -> &dyn Any;
}

/// The modules of a node, in the order their handlers run.
#[derive(Default, Clone)]
pub struct Chain {
    modules: Vec<Arc<dyn Module>>,
}

impl Chain {
    pub fn new(modules: Vec<Arc<dyn Module>>) -> Chain {
        Chain { modules }
    }

    /// The module of type `T`, for its own state (running recorders for
    /// /control, for example).
    pub fn get<T: Module>(&self) -> Option<&T> {
        self.modules.iter().find_map(|m| m.as_any().downcast_ref())
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.modules.iter().map(|m| m.name()).collect()
    }

    pub fn start(&self, shared: &Arc<Shared>) {
        self.modules.iter().for_each(|m| m.start(shared));
    }

    pub fn publish(&self, shared: &Arc<Shared>, ev: &Publish) {
        self.modules.iter().for_each(|m| m.publish(shared, ev));
    }

    pub fn play(&self, shared: &Arc<Shared>, ev: &Play) {
        self.modules.iter().for_each(|m| m.play(shared, ev));
    }

    /// True when any module will bring the stream.
    pub fn wants(&self, shared: &Arc<Shared>, ev: &Want) -> bool {
        self.modules.iter().any(|m| m.wants(shared, ev))
    }

    pub fn close_stream(&self, shared: &Arc<Shared>, ev: &CloseStream) {
        self.modules.iter().for_each(|m| m.close_stream(shared, ev));
    }

    pub fn disconnect(&self, shared: &Arc<Shared>, ev: &Disconnect) {
        self.modules.iter().for_each(|m| m.disconnect(shared, ev));
    }

    pub fn record_done(&self, shared: &Arc<Shared>, ev: &RecordDone) {
        self.modules.iter().for_each(|m| m.record_done(shared, ev));
    }

    pub fn record_started(&self, shared: &Arc<Shared>, ev: &RecordDone) {
        self.modules
            .iter()
            .for_each(|m| m.record_started(shared, ev));
    }

    pub fn playlist(&self, shared: &Arc<Shared>, ev: &PlaylistWritten) {
        self.modules.iter().for_each(|m| m.playlist(shared, ev));
    }

    /// Stops every module, waiting at most `limit` for what they release.
    pub async fn stop(&self, shared: &Arc<Shared>, limit: Duration) {
        let tasks: Vec<_> = self.modules.iter().flat_map(|m| m.stop(shared)).collect();
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        let _ = tokio::time::timeout(limit, all).await;
    }

    pub fn reopen(&self) {
        self.modules.iter().for_each(|m| m.reopen());
    }

    pub fn metrics(&self) {
        self.modules.iter().for_each(|m| m.metrics());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Module for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }
        fn wants(&self, _: &Arc<Shared>, _: &Want) -> bool {
            self.0.fetch_add(1, Ordering::Relaxed);
            true
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    struct Other;
    impl Module for Other {
        fn name(&self) -> &'static str {
            "other"
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    #[test]
    fn get_finds_a_module_by_type() {
        let chain = Chain::new(vec![Arc::new(Other), Arc::new(Counter::default())]);
        assert_eq!(chain.names(), ["other", "counter"]);
        assert!(chain.get::<Counter>().is_some());
        let empty = Chain::default();
        assert!(empty.get::<Counter>().is_none());
    }
}
