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

use std::any::Any;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::config::relay::RelayTarget;

use crate::config::AppConf;
use crate::live::{Stream, StreamKey};
use crate::node::chain::{Module, Play, Publish, Want};
use crate::node::Shared;
use pull::{Keep, Pull, Source};

/// The relay module, and the relays running in this process.
#[derive(Default)]
pub struct Relays {
    /// Streams with a pull running (one per stream and node).
    pulls: Mutex<HashSet<StreamKey>>,
    /// Pushes running.
    pushes: Arc<AtomicUsize>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Module for Relays {
    fn name(&self) -> &'static str {
        "relay"
    }

    fn start(&self, shared: &Arc<Shared>) {
        Self::start_statics(shared);
    }

    /// A stream was published: start its pushes, and the push to where
    /// on_publish redirected it.
    fn publish(&self, _shared: &Arc<Shared>, ev: &Publish) {
        let matching = ev
            .app
            .relay
            .pushes
            .iter()
            .filter(|t| t.matches(&ev.key.name));
        for t in matching {
            let reconnect = ev.app.relay.push_reconnect;
            let p = push::Push::new(ev.key.clone(), ev.stream.clone(), t.clone(), reconnect);
            self.spawn_push(p);
        }
        if let Some(url) = ev.redirect {
            self.push_to(ev.app, ev.key, ev.stream, url);
        }
    }

    /// A player joined: pull the stream when it is not published here, or
    /// when on_play redirected it.
    fn play(&self, shared: &Arc<Shared>, ev: &Play) {
        if ev.stream.is_none() {
            return; // a file: nothing to pull
        }
        if !ev.published || ev.redirect.is_some() {
            Self::pull_for_player(shared, ev.app, ev.key, ev.redirect);
        }
    }

    fn wants(&self, shared: &Arc<Shared>, ev: &Want) -> bool {
        ev.redirect.is_some()
            || shared.cluster.is_some()
            || ev.app.relay.pulls.iter().any(|t| t.matches(&ev.key.name))
    }

    fn metrics(&self) {
        let (pushes, pulls) = self.counts();
        metrics::gauge!("sluice_relays", "kind" => "push").set(pushes as f64);
        metrics::gauge!("sluice_relays", "kind" => "pull").set(pulls as f64);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Relays {
    /// (pushes, pulls) running, for metrics.
    pub fn counts(&self) -> (usize, usize) {
        (self.pushes.load(Ordering::Relaxed), lock(&self.pulls).len())
    }

    /// Runs a push, counted while it runs.
    fn spawn_push(&self, p: push::Push) {
        let count = self.pushes.clone();
        count.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            push::run(p).await;
            count.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// A pull of `key` ended (called by the pull itself).
    pub fn pull_ended(shared: &Shared, key: &StreamKey) {
        if let Some(r) = shared.modules.get::<Relays>() {
            lock(&r.pulls).remove(key);
        }
    }

    /// Whether a player-driven pull of `key` still has players.
    pub fn wanted(shared: &Shared, key: &StreamKey) -> bool {
        shared.registry.get(key).is_some_and(|s| s.players() > 0)
    }

    /// Starts `p` unless a pull of the same stream runs already.
    pub fn start_pull(shared: &Arc<Shared>, p: Pull) {
        let Some(r) = shared.modules.get::<Relays>() else {
            return;
        };
        if !lock(&r.pulls).insert(p.key.clone()) {
            return;
        }
        tokio::spawn(pull::run(shared.clone(), p));
    }

    /// An on_publish 3xx to an rtmp:// URL: push the stream there.
    fn push_to(&self, app: &AppConf, key: &StreamKey, stream: &Arc<Stream>, url: &str) {
        let Ok(mut target) = RelayTarget::parse(&[url.to_owned()], false) else {
            return;
        };
        target.trusted_ca = app.relay.trusted_ca.clone();
        let p = push::Push::new(
            key.clone(),
            stream.clone(),
            target,
            app.relay.push_reconnect,
        );
        self.spawn_push(p);
    }

    /// A player joined `key`, which is not published here: pull it from
    /// `redirect` (an on_play 3xx), a matching `pull`, or the cluster's
    /// owner, in that order.
    fn pull_for_player(
        shared: &Arc<Shared>,
        app: &AppConf,
        key: &StreamKey,
        redirect: Option<&str>,
    ) {
        let source = if let Some(url) = redirect {
            let Ok(t) = RelayTarget::parse(&[url.to_owned()], true) else {
                return;
            };
            Source::Fixed {
                url: t.url_for(&key.name),
                extra: vec![],
                ca: app.relay.trusted_ca.clone(),
            }
        } else if let Some(t) = app.relay.pulls.iter().find(|t| t.matches(&key.name)) {
            Source::Fixed {
                url: t.url_for(&key.name),
                extra: t.connect_fields(),
                ca: t.trusted_ca.clone(),
            }
        } else if let Some(c) = &shared.cluster {
            Source::Owner(c.watch(key))
        } else {
            return;
        };
        let reconnect: Duration = app.relay.pull_reconnect;
        Self::start_pull(
            shared,
            Pull {
                key: key.clone(),
                source,
                keep: Keep::Players,
                reconnect,
                buffer: app.relay.buffer,
            },
        );
    }

    /// Starts every `static` pull.
    pub fn start_statics(shared: &Arc<Shared>) {
        let config = shared.config();
        for (server, s) in config.servers.iter().enumerate() {
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
                                ca: t.trusted_ca.clone(),
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
