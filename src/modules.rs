//! The feature modules a node runs, in chain order (nginx's `ngx_modules`).
//!
//! The only place that names every feature: the server takes the list it
//! is given, so tests can run a node with fewer.

use std::sync::Arc;

use crate::node::Chain;

/// Every feature, in the order its handlers run.
pub fn all() -> Chain {
    Chain::new(vec![
        Arc::new(crate::notify::Notify),
        Arc::new(crate::record::Record::default()),
        Arc::new(crate::hls::Hls),
        Arc::new(crate::dash::Dash),
        Arc::new(crate::relay::Relays::default()),
        Arc::new(crate::split::Split),
        Arc::new(crate::exec::Exec::default()),
        Arc::new(crate::access_log::AccessLog::default()),
    ])
}
