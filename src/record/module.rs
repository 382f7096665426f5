//! The record module: starts an application's recorders when a stream is
//! published there (a client's own stream, or a multitrack rendition).
//!
//! What a recorder tells the rest of the server goes out as events, not
//! calls to other features: `record_notify` is an onStatus to the
//! publisher, through its connection's inbox, and a finished file raises
//! [`Chain::record_done`](crate::node::Chain::record_done), which the
//! notify and exec modules act on.

use std::any::Any;
use std::sync::Arc;

use super::task::{spawn, Controls, Events, Hook};
use crate::node::chain::{Module, Publish, RecordDone};
use crate::node::drain::Signal;
use crate::node::Shared;

/// The record module, and the control inboxes of running recorders
/// (/control's record/start|stop).
#[derive(Default)]
pub struct Record {
    pub controls: Arc<Controls>,
}

impl Module for Record {
    fn name(&self) -> &'static str {
        "record"
    }

    fn publish(&self, shared: &Arc<Shared>, ev: &Publish) {
        if ev.app.recorders.is_empty() {
            return;
        }
        let app = Arc::new(ev.app.clone());
        for conf in &ev.app.recorders {
            let mut conf = conf.clone();
            // A publish handed over from the previous process (binary
            // upgrade) goes on in the file that process was writing.
            conf.append |= ev.resumed;
            let conf = Arc::new(conf);
            let session = Arc::new(ev.session.clone());
            let (name, args) = (ev.key.name.clone(), ev.args.to_owned());
            // record_notify: an onStatus to the publisher.
            let status = {
                let (shared, notify, me) = (shared.clone(), conf.notify, session.id);
                Arc::new(move |code: &'static str, recorder: &str| {
                    if notify {
                        let description = recorder.to_owned();
                        shared.drain.post(me, Signal::Status { code, description });
                    }
                })
            };
            let start = status.clone();
            let (shared1, conf1, app1) = (shared.clone(), conf.clone(), app.clone());
            let (session1, name1, args1) = (session.clone(), name.clone(), args.clone());
            let opened: Hook = Box::new(move |recorder, path| {
                start("NetStream.Record.Start", recorder);
                shared1.modules.record_started(
                    &shared1,
                    &RecordDone {
                        session: &session1,
                        app: &app1,
                        name: &name1,
                        args: &args1,
                        recorder: &conf1,
                        path,
                    },
                );
            });
            let (shared2, conf2, app) = (shared.clone(), conf.clone(), app.clone());
            let done: Hook = Box::new(move |recorder, path| {
                status("NetStream.Record.Stop", recorder);
                shared2.modules.record_done(
                    &shared2,
                    &RecordDone {
                        session: &session,
                        app: &app,
                        name: &name,
                        args: &args,
                        recorder: &conf2,
                        path,
                    },
                );
            });
            let events = Events { opened, done };
            let (stream, key) = (ev.stream.clone(), ev.key.clone());
            spawn(stream, (*conf).clone(), key, self.controls.clone(), events);
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
