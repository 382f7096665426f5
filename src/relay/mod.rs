//! Relays: nginx-rtmp's `push` and `pull`, and the cluster edge pull.
//!
//! Like nginx-rtmp's relay module this hooks into publish and play events
//! and knows nothing of the other features: a push starts when a stream is
//! published in an application with `push`; a pull starts when a player
//! asks for a stream that is not published here and a `pull` (or the
//! cluster directory) says where it is; a `static` pull starts with the
//! server. Relay sessions are in-process, so they fire no
//! connect/disconnect notifications, as in nginx-rtmp.

pub mod ingest;
pub mod pull;
pub mod push;
pub mod stat;
pub mod upstream;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

pub use crate::config::relay::RelayTarget;

use crate::live::{Stream, StreamKey};
use crate::server::Shared;
use pull::{Keep, Pull, Source};

/// The relays running in this process.
#[derive(Default)]
pub struct Relays {
    /// Streams with a pull running (one per stream and node).
    pulls: Mutex<HashSet<StreamKey>>,
    /// Pushes running.
    pushes: std::sync::atomic::AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Relays {
    /// (pushes, pulls) running, for metrics.
    pub fn counts(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering;
        (self.pushes.load(Ordering::Relaxed), lock(&self.pulls).len())
    }

    /// Runs a push, counted while it runs.
    fn spawn_push(shared: &Arc<Shared>, p: push::Push) {
        use std::sync::atomic::Ordering;
        let shared = shared.clone();
        shared.relays.pushes.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            push::run(p).await;
            shared.relays.pushes.fetch_sub(1, Ordering::Relaxed);
        });
    }

    pub fn pull_ended(&self, key: &StreamKey) {
        lock(&self.pulls).remove(key);
    }

    /// Whether a player-driven pull of `key` still has players.
    pub fn wanted(&self, shared: &Shared, key: &StreamKey) -> bool {
        shared.registry.get(key).is_some_and(|s| s.players() > 0)
    }

    /// Starts `p` unless a pull of the same stream runs already.
    pub fn start_pull(shared: &Arc<Shared>, p: Pull) {
        if !lock(&shared.relays.pulls).insert(p.key.clone()) {
            return;
        }
        tokio::spawn(pull::run(shared.clone(), p));
    }

    /// A stream was published by a client: start its pushes.
    pub fn on_publish(shared: &Arc<Shared>, key: &StreamKey, stream: &Arc<Stream>) {
        let Some(app) = shared.config.servers[key.server].app(&key.app) else {
            return;
        };
        for t in app.relay.pushes.iter().filter(|t| t.matches(&key.name)) {
            let p = push::Push::new(
                key.clone(),
                stream.clone(),
                t.clone(),
                app.relay.push_reconnect,
            );
            Self::spawn_push(shared, p);
        }
    }

    /// An on_publish 3xx to an rtmp:// URL: push the stream there.
    pub fn push_to(shared: &Arc<Shared>, key: &StreamKey, stream: &Arc<Stream>, url: &str) {
        let Ok(target) = RelayTarget::parse(&[url.to_owned()], false) else {
            return;
        };
        let reconnect = shared.config.servers[key.server]
            .app(&key.app)
            .map_or(std::time::Duration::from_secs(3), |a| {
                a.relay.push_reconnect
            });
        let p = push::Push::new(key.clone(), stream.clone(), target, reconnect);
        Self::spawn_push(shared, p);
    }

    /// A player joined `key`, which is not published here: pull it from
    /// `redirect` (an on_play 3xx), a matching `pull`, or the cluster's
    /// owner, in that order.
    pub fn on_play(shared: &Arc<Shared>, key: &StreamKey, redirect: Option<&str>) {
        let Some(app) = shared.config.servers[key.server].app(&key.app) else {
            return;
        };
        let source = if let Some(url) = redirect {
            let Ok(t) = RelayTarget::parse(&[url.to_owned()], true) else {
                return;
            };
            Source::Fixed {
                url: t.url_for(&key.name),
                extra: vec![],
            }
        } else if let Some(t) = app.relay.pulls.iter().find(|t| t.matches(&key.name)) {
            Source::Fixed {
                url: t.url_for(&key.name),
                extra: t.connect_fields(),
            }
        } else if let Some(c) = &shared.cluster {
            Source::Owner(c.watch(key))
        } else {
            return;
        };
        Self::start_pull(
            shared,
            Pull {
                key: key.clone(),
                source,
                keep: Keep::Players,
                reconnect: app.relay.pull_reconnect,
                buffer: app.relay.buffer,
            },
        );
    }

    /// Starts every `static` pull.
    pub fn start_statics(shared: &Arc<Shared>) {
        for (server, s) in shared.config.servers.iter().enumerate() {
            for app in &s.apps {
                for t in &app.relay.statics {
                    let name = t.name.clone().unwrap_or_default();
                    Self::start_pull(
                        shared,
                        Pull {
                            key: StreamKey {
                                server,
                                app: app.name.clone(),
                                name: name.clone(),
                            },
                            source: Source::Fixed {
                                url: t.url_for(&name),
                                extra: t.connect_fields(),
                            },
                            keep: Keep::Static,
                            reconnect: app.relay.pull_reconnect,
                            buffer: app.relay.buffer,
                        },
                    );
                }
            }
        }
    }
}
