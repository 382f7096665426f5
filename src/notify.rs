//! The notify module: nginx-rtmp's notifications that report rather than
//! decide: `on_publish_done`, `on_play_done`, `on_done`, `on_disconnect`
//! and `on_record_done`. Each is fired once, in its own task, and its
//! answer is ignored.
//!
//! The checked calls (`on_connect`, `on_publish`, `on_play`, `on_update`)
//! gate a command and stay with the connection; both kinds go through
//! [`crate::netcall`].

use std::any::Any;
use std::sync::Arc;

use crate::config::NotifyConf;
use crate::netcall::{Call, Form};
use crate::node::chain::{CloseStream, Disconnect, Module, PlaylistWritten, RecordDone};
use crate::node::Shared;

#[derive(Default)]
pub struct Notify;

fn call(conf: &NotifyConf, url: &str, name: &'static str, form: Form) -> Call {
    Call {
        url: url.to_owned(),
        method: conf.method,
        timeout: conf.timeout,
        form,
        name,
    }
}

/// Fires `url` (if set) for a recorder's file, as `call=<name>`.
fn recorded(shared: &Shared, ev: &RecordDone, url: Option<&str>, name: &'static str) {
    let Some(url) = url else {
        return;
    };
    let form = ev
        .session
        .fields
        .form()
        .field("call", name)
        .field("recorder", &ev.recorder.id)
        .field("name", ev.name)
        .field("path", &ev.path.display().to_string())
        .raw(ev.args);
    shared.netcall.fire(call(&ev.app.notify, url, name, form));
}

impl Module for Notify {
    fn name(&self) -> &'static str {
        "notify"
    }

    /// `on_playlist`: `call=playlist`, `module`, `name` and `path`, after
    /// the session's fields, as the sergey-dryabzhinsky fork sends it.
    fn playlist(&self, shared: &Arc<Shared>, ev: &PlaylistWritten) {
        let n = &ev.app.notify;
        let Some(url) = &n.on_playlist else { return };
        let form = ev
            .session
            .fields
            .form()
            .field("call", "playlist")
            .field("module", ev.module)
            .field("name", ev.name)
            .field("path", &ev.path.display().to_string())
            .raw(ev.args);
        shared.netcall.fire(call(n, url, "playlist", form));
    }

    /// `publish_done` or `play_done`, then `done`.
    fn close_stream(&self, shared: &Arc<Shared>, ev: &CloseStream) {
        if ev.moved {
            // It goes on in the new process, which owes the call.
            return;
        }
        let n = &ev.app.notify;
        let specific = if ev.publish {
            n.on_publish_done.as_ref().map(|u| (u, "publish_done"))
        } else {
            n.on_play_done.as_ref().map(|u| (u, "play_done"))
        };
        let done = n.on_done.as_ref().map(|u| (u, "done"));
        for (url, name) in specific.into_iter().chain(done) {
            let form = ev
                .session
                .fields
                .form()
                .field("call", name)
                .field("name", ev.name)
                .field("bytes_in", &ev.bytes_in.to_string())
                .field("bytes_out", &ev.bytes_out.to_string())
                .raw(ev.args);
            shared.netcall.fire(call(n, url, name, form));
        }
    }

    /// `on_disconnect`, for every connection, connected or not.
    fn disconnect(&self, shared: &Arc<Shared>, ev: &Disconnect) {
        if ev.moved {
            return;
        }
        let config = shared.config();
        let Some(server) = config.servers.get(ev.session.server).map(|s| &s.notify) else {
            return;
        };
        let Some(url) = &server.on_disconnect else {
            return;
        };
        let fields = &ev.session.fields;
        let form = fields
            .form()
            .field("call", "disconnect")
            .field("app", &fields.app)
            .field("bytes_in", &ev.bytes_in.to_string())
            .field("bytes_out", &ev.bytes_out.to_string())
            .raw(ev.args);
        let conf = ev.app.map_or(server, |a| &a.notify);
        shared.netcall.fire(call(conf, url, "disconnect", form));
    }

    /// `on_record_done`, with nginx-rtmp's fields: the session,
    /// `call=record_done`, `recorder`, `name`, `path` and the stream args.
    fn record_done(&self, shared: &Arc<Shared>, ev: &RecordDone) {
        recorded(
            shared,
            ev,
            ev.recorder.on_record_done.as_deref(),
            "record_done",
        );
    }

    /// `on_record_started` (sergey-dryabzhinsky fork), with the fields of
    /// `on_record_done`.
    fn record_started(&self, shared: &Arc<Shared>, ev: &RecordDone) {
        let url = ev.recorder.on_record_started.as_deref();
        recorded(shared, ev, url, "record_started");
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
