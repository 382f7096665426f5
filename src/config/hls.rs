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

/// `hls_fragment_slicing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slicing {
    /// A segment ends at the first keyframe once it is `hls_fragment` long.
    Plain,
    /// Segments end where the timestamp crosses a multiple of
    /// `hls_fragment`, so every rendition of a ladder cuts at the same
    /// points.
    Aligned,
}

/// `hls_datetime` (sergey-dryabzhinsky's fork): `#EXT-X-PROGRAM-DATE-TIME`
/// on the first segment and after each discontinuity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateTime {
    None,
    /// The wall clock when the segment opened.
    System,
    /// The stream timestamp within the current 2^32 ms epoch.
    Timestamp,
}

/// One `hls_variant SUFFIX PARAMS...`: streams named `BASE` + `SUFFIX`
/// are listed in the master playlist `BASE.m3u8` with these
/// `EXT-X-STREAM-INF` attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub suffix: String,
    pub params: Vec<String>,
}

/// `hls_keys on` with its settings: AES-128 segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsKeys {
    /// `hls_key_path` (default: `hls_path`).
    pub path: PathBuf,
    /// `hls_key_url`: prefix of the key URI in the playlist.
    pub url: String,
    /// `hls_fragments_per_key`: a new key every N segments; 0 keeps one
    /// key for the whole publish.
    pub per_key: u64,
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
    /// `hls_fragment_naming_granularity`: ids rounded down to a multiple.
    pub granularity: u64,
    /// `hls_type event`: the playlist keeps every segment.
    pub event: bool,
    pub base_url: String,
    /// `hls_continuous` (on by default, as in nginx-rtmp): a new publish
    /// continues the playlist on disk, after a discontinuity.
    pub continuous: bool,
    pub slicing: Slicing,
    pub variants: Vec<Variant>,
    pub keys: Option<HlsKeys>,
    pub datetime: DateTime,
    /// `hls_allow_client_cache on|off`: `#EXT-X-ALLOW-CACHE:YES|NO`.
    pub allow_cache: Option<bool>,
    /// `hls_sync`: audio timestamps within this of the ones counted from
    /// the sample rate are replaced by them (no jitter from 1 ms RTMP
    /// timestamps); 0 disables.
    pub sync: Duration,
    /// `hls_max_audio_delay`: audio frames are gathered into one PES packet
    /// for at most this long.
    pub max_audio_delay: Duration,
    /// `hls_audio_buffer_size`: and at most this many bytes.
    pub audio_buffer_size: usize,
}

impl HlsConf {
    /// nginx-rtmp's window: `hls_playlist_length / hls_fragment` segments.
    pub fn window(&self) -> usize {
        let f = self.fragment.as_millis().max(1);
        ((self.playlist_length.as_millis() / f) as usize).max(1)
    }
}

impl Default for HlsConf {
    /// nginx-rtmp's defaults (the path aside).
    fn default() -> Self {
        HlsConf {
            path: PathBuf::new(),
            fragment: Duration::from_secs(5),
            max_fragment: Duration::from_secs(50),
            playlist_length: Duration::from_secs(30),
            nested: false,
            cleanup: true,
            naming: Naming::Sequential,
            granularity: 0,
            event: false,
            base_url: String::new(),
            continuous: true,
            slicing: Slicing::Plain,
            variants: Vec::new(),
            keys: None,
            datetime: DateTime::None,
            allow_cache: None,
            sync: Duration::from_millis(2),
            max_audio_delay: Duration::from_millis(300),
            audio_buffer_size: 1 << 20,
        }
    }
}
