//! nginx-rtmp's `play` directives: where video-on-demand files are looked
//! up, in order, and where files fetched over HTTP are kept.

use std::path::PathBuf;

use super::syntax::Directive;

/// One location of a `play` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayEntry {
    /// A local directory: `NAME` is looked up under it.
    Dir(PathBuf),
    /// `http://HOST[:PORT]/PATH`: `NAME` is fetched from `URL/NAME`.
    Http(String),
}

/// The `play*` settings of an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayConf {
    /// Every location, the application's own first, then its server's,
    /// then `rtmp{}`'s, as nginx-rtmp merges them.
    pub entries: Vec<PlayEntry>,
    /// `play_temp_path` (nginx-rtmp: `/tmp`): where a remote file is
    /// written while it is played.
    pub temp_path: PathBuf,
    /// `play_local_path`: where a remote file is kept once fetched, so the
    /// next play of it is local. Empty when unset: the temporary file is
    /// removed at the end of the play.
    pub local_path: Option<PathBuf>,
}

impl Default for PlayConf {
    fn default() -> Self {
        PlayConf {
            entries: Vec::new(),
            temp_path: PathBuf::from("/tmp"),
            local_path: None,
        }
    }
}

impl PlayConf {
    pub fn is_vod(&self) -> bool {
        !self.entries.is_empty()
    }
}

/// The locations of `play` lines (innermost scope first), or the reason
/// one is malformed.
pub fn entries(lines: &[&Directive]) -> Result<Vec<PlayEntry>, (usize, String)> {
    let mut out = Vec::new();
    for (i, d) in lines.iter().enumerate() {
        for a in &d.args {
            out.push(parse_entry(a).map_err(|e| (i, e))?);
        }
    }
    Ok(out)
}

fn parse_entry(a: &str) -> Result<PlayEntry, String> {
    let is_http = a.len() >= 7 && a[..7].eq_ignore_ascii_case("http://");
    if !is_http {
        return Ok(PlayEntry::Dir(PathBuf::from(a)));
    }
    let rest = &a[7..];
    let host = rest.split('/').next().unwrap_or_default();
    let (name, port) = match host.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || host.starts_with('[') => (h, Some(p)),
        _ => (host, None),
    };
    if name.is_empty() {
        return Err(format!("no host in url \"{rest}\""));
    }
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("invalid port in url \"{rest}\""));
        }
    }
    Ok(PlayEntry::Http(format!("http://{rest}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse() {
        assert_eq!(
            parse_entry("/var/vod").unwrap(),
            PlayEntry::Dir("/var/vod".into())
        );
        assert_eq!(
            parse_entry("HTTP://cdn:8080/vod").unwrap(),
            PlayEntry::Http("http://cdn:8080/vod".into())
        );
        assert!(parse_entry("http://").is_err());
        assert!(parse_entry("http://host:x/").is_err());
        assert!(parse_entry("http://host:0/").is_err());
    }
}
