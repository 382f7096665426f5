//! Sluice: an RTMP live-streaming server, a drop-in for nginx-rtmp-module.
//!
//! * [`rtmp`]: the protocol core, sans I/O;
//! * [`flv`]: media tag classification and the FLV file format;
//! * [`config`]: nginx-rtmp's configuration language;
//! * [`live`]: the stream registry and fan-out to players;
//! * [`netcall`]: the HTTP client of notifications;
//! * [`node`]: what a running node shares, and the [`node::Chain`] of
//!   feature modules that hear publish, play, close and disconnect events;
//! * [`modules`]: the list of feature modules;
//! * [`notify`], [`record`], [`hls`], [`exec`], [`access_log`]: features on
//!   the chain;
//! * [`server`]: the tokio runtime side: listeners and connections;
//! * [`http`]: HTTP-FLV, files, `/stat`, `/control`, `/metrics`, dashboard;
//! * [`client`]: Sluice's own RTMP client (`publish`, `play`, `bench`);
//! * [`relay`]: `push`/`pull` relays and the cluster edge pull;
//! * [`cluster`]: the shared stream directory (Redis);
//! * [`split`]: each video track of a multitrack publish as its own stream.
//!
//! `docs/design.md` describes how a media message flows from a publisher's
//! socket to N players.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod access_log;
pub mod client;
pub mod cluster;
pub mod config;
pub mod dash;
pub mod exec;
pub mod flv;
pub mod fmp4;
pub mod hls;
pub mod http;
pub mod live;
pub mod modules;
pub mod netcall;
pub mod node;
pub mod notify;
pub mod proxy_protocol;
pub mod record;
pub mod redact;
pub mod relay;
pub mod rtmp;
pub mod sdnotify;
pub mod server;
pub mod split;
pub mod stats;
pub mod telemetry;
pub mod tls;
pub mod vod;
