//! DASH output, as nginx-rtmp's `dash` module writes it: fMP4 fragments
//! per track and a dynamic MPD under `dash_path`.

pub mod segmenter;
pub mod task;

use std::any::Any;
use std::sync::Arc;

use crate::node::chain::{Module, PlaylistWritten, Publish};
use crate::node::Shared;

/// The DASH module: a packager for every stream published in an
/// application with `dash on`.
#[derive(Default)]
pub struct Dash;

impl Module for Dash {
    fn name(&self) -> &'static str {
        "dash"
    }

    fn publish(&self, shared: &Arc<Shared>, ev: &Publish) {
        let Some(d) = &ev.app.dash else { return };
        let (shared, session) = (shared.clone(), ev.session.clone());
        let (app, name, args) = (ev.app.clone(), ev.key.name.clone(), ev.args.to_owned());
        let written: task::Written = Box::new(move |path| {
            let ev = PlaylistWritten {
                session: &session,
                app: &app,
                name: &name,
                args: &args,
                module: "dash",
                path,
            };
            shared.modules.playlist(&shared, &ev);
        });
        task::spawn(ev.stream.clone(), d.clone(), ev.key.name.clone(), written);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
