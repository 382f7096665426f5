//! The connection side of Go Away: which signal a client gets, once.

use std::sync::atomic::Ordering;

use tracing::info;

use super::connection::Connection;
use super::drain::Target;
use crate::rtmp::amf::object;
use crate::rtmp::{Amf, Command};

/// What a client announced it can do when asked to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// `supportsGoAway: true` (boolean, or a non-zero number).
    GoAway,
    /// `capsEx` with bit 0x01 (Enhanced RTMP v2 Reconnect), no supportsGoAway.
    Reconnect,
    None,
}

/// The capability a `connect` announces: in its command object, or else in
/// an object among its extra arguments. ffmpeg can only add the latter
/// (`-rtmp_conn "O:1 NB:supportsGoAway:1 O:0"`), so ffmpeg-based tools can
/// declare Go Away support that way.
pub fn announced(object: &Amf, args: &[Amf]) -> Capability {
    std::iter::once(object)
        .chain(args.iter().filter(|a| a.props().is_some()))
        .map(capability)
        .find(|c| *c != Capability::None)
        .unwrap_or(Capability::None)
}

pub fn capability(connect_object: &Amf) -> Capability {
    if connect_object
        .get("supportsGoAway")
        .is_some_and(Amf::truthy)
    {
        Capability::GoAway
    } else if connect_object
        .get("capsEx")
        .and_then(Amf::as_f64)
        .is_some_and(|c| (c as u64) & 0x01 != 0)
    {
        Capability::Reconnect
    } else {
        Capability::None
    }
}

impl Connection {
    /// Sends this client its Go Away signal if it can move and was not
    /// signalled before. Returns whether a signal was sent.
    pub(super) fn go_away(&mut self, why: &str) -> bool {
        if self.go_away_sent {
            return false;
        }
        let Some(c) = &self.connected else {
            return false;
        };
        match c.moves {
            Capability::GoAway => {
                self.session.send_go_away();
                crate::telemetry::go_away("type32");
            }
            Capability::Reconnect => {
                let mut info = object([
                    ("level", Amf::str("status")),
                    ("code", Amf::str("NetConnection.Connect.ReconnectRequest")),
                    ("description", Amf::String(why.to_owned())),
                ]);
                // In a cluster, name a node that is not draining.
                let next = self.shared.cluster.as_ref().and_then(|cl| cl.suggest());
                if let (Some(url), Amf::Object(props)) = (next, &mut info) {
                    props.push((
                        "tcUrl".to_owned(),
                        Amf::String(format!("{url}/{}", c.app_name)),
                    ));
                }
                self.session
                    .send_command(0, &Command::new("onStatus", 0.0, Amf::Null, vec![info]));
                crate::telemetry::go_away("reconnect");
            }
            Capability::None => return false,
        }
        self.go_away_sent = true;
        if let Some(p) = &self.publishing {
            p.stream.mark_moving(self.id);
            if let Some(c) = &self.shared.cluster {
                c.moving(&p.key);
            }
        }
        self.shared.drain.signalled.fetch_add(1, Ordering::Relaxed);
        info!(id = self.id, addr = %self.addr, "go away sent: {why}");
        true
    }

    /// Whether a targeted Go Away is meant for this connection.
    pub(super) fn is_target(&self, t: &Target) -> bool {
        match t {
            Target::Client(id) => *id == self.id,
            Target::Close(_) => false,
            Target::Publisher { server, app, name } => self.publishing.as_ref().is_some_and(|p| {
                p.key.server == *server && &p.key.app == app && &p.key.name == name
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::amf::object;

    #[test]
    fn capability_rules() {
        assert_eq!(
            capability(&object([("supportsGoAway", Amf::Boolean(true))])),
            Capability::GoAway
        );
        assert_eq!(
            capability(&object([("supportsGoAway", Amf::Number(1.0))])),
            Capability::GoAway
        );
        assert_eq!(
            capability(&object([
                ("supportsGoAway", Amf::Boolean(true)),
                ("capsEx", Amf::Number(1.0))
            ])),
            Capability::GoAway,
            "one signal: type 32 wins"
        );
        assert_eq!(
            capability(&object([("capsEx", Amf::Number(3.0))])),
            Capability::Reconnect
        );
        assert_eq!(
            capability(&object([("capsEx", Amf::Number(2.0))])),
            Capability::None
        );
        assert_eq!(
            capability(&object([("supportsGoAway", Amf::Boolean(false))])),
            Capability::None
        );
        assert_eq!(capability(&Amf::Null), Capability::None);
        let extra = object([("supportsGoAway", Amf::Boolean(true))]);
        assert_eq!(
            announced(&object([("app", Amf::str("live"))]), &[Amf::Null, extra]),
            Capability::GoAway,
            "ffmpeg's rtmp_conn object"
        );
    }
}
