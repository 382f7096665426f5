//! `multitrack_split` (Sluice): each video track of an Enhanced RTMP
//! multitrack publish is also served as a stream of its own, with the
//! default audio track. An OBS Enhanced Broadcasting ladder published as
//! `event` becomes `event_0`, `event_1`... (or the suffixes the directive
//! names), and each of those records, cuts HLS, pushes and plays like any
//! published stream, with no transcoding.
//!
//! The split is one more reader of the published stream's ring (joined on
//! the publisher's task, so it sees the first frame), and each rendition
//! is a stream published by that reader. A rendition's stream appears at
//! its track's first configuration, once the publish has shown a second
//! video track (a plain stream is never copied), and ends with the publish. A client
//! that publishes a rendition's name itself takes it over, as it would a
//! pull. Renditions are local to the node: they are not claimed in a
//! cluster's directory.

pub mod rewrite;

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

use crate::config::AppConf;
use crate::flv::MediaInfo;
use crate::live::stream::{PublisherId, Takeover};
use crate::live::{Delivery, Frame, FrameKind, Stream, StreamKey};
use crate::node::chain::{Module, Publish, Session};
use crate::node::Shared;

/// The split module.
#[derive(Default)]
pub struct Split;

impl Module for Split {
    fn name(&self) -> &'static str {
        "split"
    }

    /// Starts splitting a stream a client just published, when its
    /// application has `multitrack_split`. A rendition's own publish is
    /// raised on the chain like any other, with the publisher's session,
    /// so recorders, HLS, pushes and exec apply to it.
    fn publish(&self, shared: &Arc<Shared>, ev: &Publish) {
        if ev.derived {
            return;
        }
        if let Some(split) = ev.app.split.clone() {
            let origin = Origin {
                session: ev.session.clone(),
                args: ev.args.to_owned(),
            };
            start(shared, ev.key, ev.stream, split, origin);
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The publish a split comes from, for its renditions' events.
struct Origin {
    session: Session,
    args: String,
}

fn start(
    shared: &Arc<Shared>,
    key: &StreamKey,
    stream: &Arc<Stream>,
    split: crate::config::Split,
    origin: Origin,
) {
    let config = shared.config();
    let Some(app) = config.servers[key.server].app(&key.app) else {
        return;
    };
    let (_, mut rx) = stream.subscribe_quiet();
    let (shared, key, app) = (shared.clone(), key.clone(), app.clone());
    tokio::spawn(async move {
        let mut splitter = rewrite::Splitter::new(split.clone());
        let mut renditions: HashMap<u8, Option<Rendition>> = HashMap::new();
        loop {
            match rx.recv().await {
                Ok(Delivery::Frame(f)) => {
                    for out in splitter.frame(&f) {
                        let r = renditions.entry(out.track).or_insert_with(|| {
                            let suffix = split.suffix(out.track)?;
                            Rendition::start(&shared, &key, &app, &suffix, &origin)
                        });
                        if let Some(r) = r {
                            r.push(&f, out);
                        }
                    }
                }
                Ok(Delivery::PublishStart | Delivery::PublishStop) | Err(RecvError::Closed) => {
                    break
                }
                Err(RecvError::Lagged(n)) => {
                    warn!(
                        stream = key.name,
                        missed = n,
                        "multitrack split fell behind; renditions resume at their keyframes"
                    );
                    splitter.lagged();
                }
            }
        }
        for r in renditions.into_values().flatten() {
            r.end(&shared);
        }
    });
}

/// One rendition's stream, published by the split.
struct Rendition {
    key: StreamKey,
    stream: Arc<Stream>,
    id: u64,
    chunk_size: usize,
    interleave: bool,
    gop_cache: bool,
}

impl Rendition {
    /// Publishes `PARENT<suffix>` and starts what a publish starts there:
    /// the chain's publish event. `None` when a client publishes that name.
    fn start(
        shared: &Arc<Shared>,
        parent: &StreamKey,
        app: &AppConf,
        suffix: &str,
        origin: &Origin,
    ) -> Option<Rendition> {
        let key = StreamKey {
            server: parent.server,
            app: parent.app.clone(),
            name: format!("{}{suffix}", parent.name),
        };
        let config = shared.config();
        let core = &config.servers[key.server].core;
        let id = shared.next_id();
        let who = PublisherId {
            id,
            addr: std::net::Ipv4Addr::LOCALHOST.into(),
            relay: true,
        };
        let Ok((stream, _)) = shared
            .registry
            .publish(&key, core.out_queue, who, Takeover::Off)
        else {
            warn!(
                stream = key.name,
                "multitrack split: the name is published by a client; rendition not served"
            );
            return None;
        };
        info!(
            app = key.app,
            stream = key.name,
            parent = parent.name,
            "multitrack split: rendition"
        );
        shared.modules.publish(
            shared,
            &Publish {
                session: &origin.session,
                key: &key,
                stream: &stream,
                app,
                args: &origin.args,
                kind: "live",
                redirect: None,
                derived: true,
                resumed: false,
            },
        );
        Some(Rendition {
            key,
            stream,
            id,
            chunk_size: core.chunk_size,
            interleave: app.interleave,
            gop_cache: app.gop_cache,
        })
    }

    /// Publishes `out`, taken from the parent's frame `f`.
    fn push(&self, f: &Frame, out: rewrite::Out) {
        let info = match out.kind {
            FrameKind::Video => crate::flv::video_info(&out.payload),
            FrameKind::Audio => crate::flv::audio_info(&out.payload),
            FrameKind::Data => Ok(MediaInfo::default()),
        };
        let Ok(info) = info else { return };
        let frame = Frame::new(
            out.kind,
            f.timestamp,
            info,
            out.payload,
            self.chunk_size,
            self.interleave,
        );
        let meta = out.kind == FrameKind::Data;
        self.stream
            .push(self.id, Arc::new(frame), self.gop_cache, meta);
    }

    fn end(self, shared: &Shared) {
        self.stream.unpublish(self.id);
        shared.registry.release(&self.key);
    }
}
