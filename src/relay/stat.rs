//! A pull's row among the connections in `/stat`.
//!
//! A pull is not a connection any listener accepted, yet it is the
//! publisher of its local stream: without a row, an edge's streams would
//! show no publisher and a `bw_in` of zero. The row lives while the pull
//! publishes locally and carries the ingest's media byte counts (payload
//! bytes: chunk headers are not counted), refreshed on the pull's tick.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::ingest::Ingest;
use crate::client::RtmpUrl;
use crate::live::StreamKey;
use crate::node::Shared;
use crate::stats::{ConnStat, Role};

pub struct PullStat {
    shared: Arc<Shared>,
    id: u64,
    key: StreamKey,
    row: Option<Arc<ConnStat>>,
}

impl PullStat {
    pub fn new(shared: Arc<Shared>, id: u64, key: StreamKey) -> Self {
        PullStat {
            shared,
            id,
            key,
            row: None,
        }
    }

    /// Follows the pull's state: a row while `ingest` publishes, the
    /// current `upstream` as its tcUrl. With `counters`, copies the
    /// ingest's counters too (the once-a-second path of a connection).
    pub fn sync(&mut self, ingest: Option<&Ingest>, upstream: Option<&RtmpUrl>, counters: bool) {
        match (ingest, &self.row) {
            (Some(_), None) => {
                let Some(up) = upstream else { return };
                let addr = up
                    .addr()
                    .parse()
                    .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, up.port)));
                let row = self.shared.stats.register_relay(self.id, addr);
                row.update(|i| {
                    i.server = self.key.server;
                    i.app = self.key.app.clone();
                    i.name = self.key.name.clone();
                    i.role = Role::Publisher;
                    i.flashver = format!("Sluice {} relay", env!("CARGO_PKG_VERSION"));
                    i.tcurl = crate::redact::args(&up.tc_url()).into_owned();
                    i.relay = true;
                });
                self.row = Some(row);
            }
            (Some(i), Some(row)) if counters => {
                row.set_counters(i.counters);
                if let Some(up) = upstream {
                    let tc = crate::redact::args(&up.tc_url()).into_owned();
                    if row.info().tcurl != tc {
                        row.update(|i| i.tcurl = tc);
                    }
                }
            }
            (None, Some(_)) => self.remove(),
            _ => {}
        }
    }

    fn remove(&mut self) {
        if self.row.take().is_some() {
            self.shared.stats.unregister(self.id);
        }
    }
}

impl Drop for PullStat {
    fn drop(&mut self) {
        self.remove();
    }
}
