//! Raising the module chain's events from a connection. The connection
//! knows when a publish or play starts and ends and when it closes; what
//! happens then is up to the modules (see [`crate::node::chain`]).

use super::connection::Connection;
use crate::node::chain::{CloseStream, Disconnect, Session};

impl Connection {
    /// A reload reaches this connection at its next publish or play: the
    /// application's settings (hooks, access rules, recorders, HLS, exec)
    /// come from the configuration in force, if it still has the
    /// application; a removed application keeps serving its sessions.
    pub(super) fn refresh_app(&mut self) {
        let current = self.shared.config();
        if std::sync::Arc::ptr_eq(&current, &self.config) {
            return;
        }
        let Some(c) = self.connected.as_mut() else {
            return;
        };
        if let Some(app) = current
            .servers
            .get(self.server)
            .and_then(|s| s.app(&c.app_name))
        {
            c.app = app.clone();
            self.config = current;
        }
    }

    /// This connection, as the chain's events name it.
    pub(super) fn chain_session(&self) -> Session {
        Session {
            id: self.id,
            server: self.server,
            fields: self.session_fields(),
            peer: Some(self.addr),
        }
    }

    /// Closes the armed publish or play: the chain hears `close_stream`
    /// (the notify module's `publish_done`/`play_done` and `done`).
    pub(super) fn fire_done(&mut self) {
        self.close_armed(false);
    }

    /// The same, `moved` when the session goes on in a new process (binary
    /// upgrade): modules stop their work without a `*_done`.
    pub(super) fn close_armed(&mut self, moved: bool) {
        self.update = None;
        let Some(a) = self.armed.take() else { return };
        let Some(c) = &self.connected else { return };
        let session = self.chain_session();
        let ev = CloseStream {
            session: &session,
            app: &c.app,
            name: &a.name,
            args: &a.args,
            publish: a.publish,
            started: a.started,
            bytes_in: self.session.bytes_received(),
            bytes_out: self.bytes_out(),
            moved,
        };
        self.shared.modules.close_stream(&self.shared, &ev);
    }

    /// The connection closed: the chain hears `disconnect`, connected or
    /// not.
    pub(super) fn fire_disconnect(&mut self) {
        self.announce_disconnect(false);
    }

    /// The same, `moved` as in [`Self::close_armed`].
    pub(super) fn announce_disconnect(&mut self, moved: bool) {
        let session = self.chain_session();
        let ev = Disconnect {
            session: &session,
            app: self.connected.as_ref().map(|c| &c.app),
            args: self.connected.as_ref().map_or("", |c| c.args.as_str()),
            bytes_in: self.session.bytes_received(),
            bytes_out: self.bytes_out(),
            duration: self.started_at().elapsed(),
            moved,
        };
        self.shared.modules.disconnect(&self.shared, &ev);
    }
}
