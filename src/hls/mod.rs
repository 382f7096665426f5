//! HLS output: MPEG-TS segments cut at keyframes and a playlist, where
//! nginx-rtmp's `hls_path` puts them.

pub mod segmenter;
pub mod task;
pub mod ts;

use std::any::Any;
use std::sync::Arc;

use crate::node::chain::{Module, PlaylistWritten, Publish};
use crate::node::Shared;

/// The HLS module: a segmenter for every stream published in an
/// application with `hls on`.
#[derive(Default)]
pub struct Hls;

impl Module for Hls {
    fn name(&self) -> &'static str {
        "hls"
    }

    fn publish(&self, shared: &Arc<Shared>, ev: &Publish) {
        let Some(h) = &ev.app.hls else { return };
        // After each playlist write: the chain hears it (on_playlist).
        let (shared, session) = (shared.clone(), ev.session.clone());
        let (app, name, args) = (ev.app.clone(), ev.key.name.clone(), ev.args.to_owned());
        let written: task::Written = Box::new(move |path| {
            let ev = PlaylistWritten {
                session: &session,
                app: &app,
                name: &name,
                args: &args,
                module: "hls",
                path,
            };
            shared.modules.playlist(&shared, &ev);
        });
        task::spawn(ev.stream.clone(), h.clone(), ev.key.name.clone(), written);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
