//! `hls_*` settings of an application, as the HLS muxer reads them.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    Sequential,
    /// The stream timestamp (ms) of the segment's start.
    Timestamp,
    /// Wall-clock milliseconds at the segment's start.
    System,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HlsConf {
    pub path: PathBuf,
    pub fragment: Duration,
    pub max_fragment: Duration,
    pub playlist_length: Duration,
    /// `NAME/index.m3u8` and `NAME/N.ts` instead of `NAME.m3u8`, `NAME-N.ts`.
    pub nested: bool,
    pub cleanup: bool,
    pub naming: Naming,
    /// `hls_type event`: the playlist keeps every segment.
    pub event: bool,
    pub base_url: String,
}
