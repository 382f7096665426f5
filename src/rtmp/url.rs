//! `rtmp://host[:port]/app[?args]/stream[?args]` as nginx-rtmp and ffmpeg
//! read it: the application is the first path segment (with its own query),
//! the stream name is everything after it.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    pub host: String,
    pub port: u16,
    /// Application as sent in `connect`, including any `?args`.
    pub app: String,
    /// Stream name as sent in `publish`/`play`, including any `?args`.
    pub stream: String,
    /// `rtmps://`: TLS (default port 443).
    pub tls: bool,
}

impl RtmpUrl {
    pub fn parse(url: &str) -> Result<RtmpUrl, String> {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        let (rest, tls) = if lower.starts_with("rtmp://") {
            (&url[7..], false)
        } else if lower.starts_with("rtmps://") {
            (&url[8..], true)
        } else {
            return Err(format!(
                "{url}: only rtmp:// and rtmps:// URLs are supported"
            ));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
                h.trim_matches(['[', ']']).to_owned(),
                p.parse().map_err(|_| format!("{url}: bad port"))?,
            ),
            _ => (authority.to_owned(), if tls { 443 } else { 1935 }),
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let (app, stream) = path.split_once('/').unwrap_or((path, ""));
        Ok(RtmpUrl {
            host,
            port,
            app: app.to_owned(),
            stream: stream.to_owned(),
            tls,
        })
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "rtmps"
        } else {
            "rtmp"
        }
    }

    pub fn tc_url(&self) -> String {
        format!(
            "{}://{}:{}/{}",
            self.scheme(),
            self.host,
            self.port,
            self.app
        )
    }

    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_args_and_defaults() {
        let u = RtmpUrl::parse("rtmp://127.0.0.1:19350/myapp?arg1=v1&arg2=v2/mystream?k=secret")
            .unwrap();
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 19350);
        assert_eq!(u.app, "myapp?arg1=v1&arg2=v2");
        assert_eq!(u.stream, "mystream?k=secret");
        let u = RtmpUrl::parse("rtmp://example.com/live/a/b").unwrap();
        assert_eq!(
            (u.port, u.app.as_str(), u.stream.as_str()),
            (1935, "live", "a/b")
        );
        assert_eq!(u.tc_url(), "rtmp://example.com:1935/live");
        let u = RtmpUrl::parse("RTMPS://live-api-s.facebook.com/rtmp/KEY").unwrap();
        assert!(u.tls);
        assert_eq!(
            (u.port, u.app.as_str(), u.stream.as_str()),
            (443, "rtmp", "KEY")
        );
        assert_eq!(u.tc_url(), "rtmps://live-api-s.facebook.com:443/rtmp");
        assert!(RtmpUrl::parse("http://x/a/b").is_err());
        assert!(RtmpUrl::parse("http://x/live/s").is_err());
    }
}
