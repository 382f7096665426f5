//! Sluice's own RTMP client: `publish`, `play` and `bench`, built on the
//! same sans-IO protocol core as the server.

pub mod bench;
pub mod conn;
pub mod play;
pub mod publish;
pub mod skim;
pub mod timeline;
pub mod tls;
pub use crate::rtmp::RtmpUrl;
