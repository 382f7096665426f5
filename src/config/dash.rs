//! `dash_*` settings of an application, as the DASH packager reads them.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashConf {
    pub path: PathBuf,
    /// `dash_fragment` (nginx-rtmp: 5s).
    pub fragment: Duration,
    /// `dash_playlist_length` (30s): the timeline lists
    /// `dash_playlist_length / dash_fragment` fragments.
    pub playlist_length: Duration,
    pub cleanup: bool,
    /// `NAME/index.mpd`, `NAME/init.m4v`, `NAME/T.m4v` instead of
    /// `NAME.mpd`, `NAME-init.m4v`, `NAME-T.m4v`.
    pub nested: bool,
    /// `dash_clock_compensation ntp|http_head|http_iso` with
    /// `dash_clock_helper_uri` (sergey-dryabzhinsky fork): a `UTCTiming`
    /// element (`ntp`, `http-head` or `http-iso`) and its URI.
    pub clock: Option<(&'static str, String)>,
}

impl DashConf {
    pub fn window(&self) -> usize {
        let f = self.fragment.as_millis().max(1);
        ((self.playlist_length.as_millis() / f) as usize).max(1)
    }
}
