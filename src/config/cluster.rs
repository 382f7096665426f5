//! The `cluster {}` block (Sluice, `rtmp {}` scope):
//!
//! ```text
//! cluster {
//!     registry  redis://127.0.0.1:6379/0;   # the stream directory
//!     advertise rtmp://10.0.0.5:1935;       # how other nodes reach us
//!     node_id   node-a;                     # unique in the cluster
//!     lease     10s;                        # ownership lease (default 10s)
//! }
//! ```

use std::time::Duration;

use super::syntax::{err, ConfigError, Directive};
use super::units::parse_msec;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConf {
    pub registry: String,
    /// `rtmp://host:port` (any path is dropped).
    pub advertise: String,
    pub node_id: String,
    /// How long ownership outlives a node that stopped refreshing it.
    pub lease: Duration,
}

/// Reads the block; every problem is reported against its directive.
pub fn parse(block: &Directive, errors: &mut Vec<ConfigError>) -> Option<ClusterConf> {
    let mut registry = None;
    let mut advertise = None;
    let mut node_id = None;
    let mut lease = Duration::from_secs(10);
    let before = errors.len();
    for d in block.block.as_deref().unwrap_or_default() {
        let one = match d.args.as_slice() {
            [v] if d.block.is_none() => v.clone(),
            _ => {
                errors.push(err(
                    &d.pos,
                    format!("\"{}\" in cluster {{}} takes one value", d.name),
                ));
                continue;
            }
        };
        match d.name.as_str() {
            "registry" if one.starts_with("redis://") || one.starts_with("rediss://") => {
                registry = Some(one)
            }
            "registry" => errors.push(err(
                &d.pos,
                format!("invalid registry \"{one}\": expected redis://host:port/db"),
            )),
            "advertise" => match crate::rtmp::RtmpUrl::parse(&one) {
                Ok(u) => advertise = Some(format!("rtmp://{}", u.addr())),
                Err(e) => errors.push(err(&d.pos, format!("invalid advertise URL: {e}"))),
            },
            "node_id" if valid_id(&one) => node_id = Some(one),
            "node_id" => errors.push(err(
                &d.pos,
                format!("invalid node_id \"{one}\": use letters, digits, '-', '_' or '.'"),
            )),
            "lease" => match parse_msec(&one) {
                Some(ms) if ms >= 1000 => lease = Duration::from_millis(ms),
                _ => errors.push(err(&d.pos, "\"lease\" must be a time of at least 1s")),
            },
            _ => errors.push(err(
                &d.pos,
                format!("unknown directive \"{}\" in cluster {{}}", d.name),
            )),
        }
    }
    for (what, v) in [
        ("registry", &registry),
        ("advertise", &advertise),
        ("node_id", &node_id),
    ] {
        if v.is_none() && errors.len() == before {
            errors.push(err(&block.pos, format!("cluster {{}} needs \"{what}\"")));
        }
    }
    Some(ClusterConf {
        registry: registry?,
        advertise: advertise?,
        node_id: node_id?,
        lease,
    })
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}
