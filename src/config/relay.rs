//! One `push` or `pull` directive, read the way nginx-rtmp's relay module
//! reads it: `URL [app=] [name=] [tcUrl=] [pageUrl=] [swfUrl=] [flashVer=]
//! [playPath=] [live=] [static]`.
//!
//! * `name=` binds the relay to one local stream name; without it every
//!   stream of the application is relayed (and, for a pull, the local
//!   stream is named after the remote one unless a static pull names it);
//! * the remote application is `app=` or the URL's first path segment;
//! * the remote stream is `playPath=`, else the rest of the URL's path,
//!   else the local stream's name.

use crate::rtmp::RtmpUrl;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayTarget {
    /// The URL as written, for logs.
    pub url: String,
    pub host: String,
    pub port: u16,
    pub app: String,
    /// The remote stream name, when the directive fixes one.
    pub play_path: Option<String>,
    /// The local stream this relay is bound to (`name=`).
    pub name: Option<String>,
    pub tc_url: Option<String>,
    pub page_url: Option<String>,
    pub swf_url: Option<String>,
    pub flash_ver: Option<String>,
    /// `static`: pulled from start-up on, whether anyone plays or not.
    pub is_static: bool,
    /// `rtmps://`.
    pub tls: bool,
    /// `rtmp_relay_ssl_trusted_certificate`: CAs trusted beside the
    /// system's for this relay's TLS.
    pub trusted_ca: Option<std::path::PathBuf>,
}

impl RelayTarget {
    /// Parses the directive's arguments (the URL first). `pull` tells
    /// whether `static` is allowed.
    pub fn parse(args: &[String], pull: bool) -> Result<RelayTarget, String> {
        let raw = args.first().ok_or("a URL is required")?;
        let lower = raw.to_ascii_lowercase();
        let with_scheme = if lower.starts_with("rtmp://") {
            format!("rtmp://{}", &raw[7..])
        } else if lower.starts_with("rtmps://") {
            format!("rtmps://{}", &raw[8..])
        } else if raw.contains("://") {
            return Err(format!(
                "\"{raw}\": only rtmp:// and rtmps:// URLs can be relayed"
            ));
        } else {
            format!("rtmp://{raw}")
        };
        let u = RtmpUrl::parse(&with_scheme)?;
        let mut t = RelayTarget {
            url: raw.clone(),
            host: u.host,
            port: u.port,
            app: u.app,
            play_path: (!u.stream.is_empty()).then_some(u.stream),
            name: None,
            tc_url: None,
            page_url: None,
            swf_url: None,
            flash_ver: None,
            is_static: false,
            tls: u.tls,
            trusted_ca: None,
        };
        for a in &args[1..] {
            let (k, v) = a.split_once('=').unwrap_or((a.as_str(), "1"));
            let v = v.to_owned();
            match k.to_ascii_lowercase().as_str() {
                "app" => t.app = v,
                "name" => t.name = Some(v),
                "tcurl" => t.tc_url = Some(v),
                "pageurl" => t.page_url = Some(v),
                "swfurl" => t.swf_url = Some(v),
                "flashver" => t.flash_ver = Some(v),
                "playpath" => t.play_path = Some(v),
                // Live is the only kind of relay Sluice has; start/stop
                // seek recorded streams, which it does not serve.
                "live" | "start" | "stop" => {}
                "static" if v != "0" => t.is_static = true,
                "static" => {}
                _ => return Err(format!("unsupported parameter \"{a}\"")),
            }
        }
        if t.app.is_empty() {
            return Err(format!("\"{raw}\": no application in the URL or app="));
        }
        if t.is_static && !pull {
            return Err("static push is not allowed".into());
        }
        if t.is_static && t.name.is_none() {
            return Err("stream name missing in static pull declaration (add name=)".into());
        }
        Ok(t)
    }

    /// Whether this relay applies to the local stream `local`.
    pub fn matches(&self, local: &str) -> bool {
        self.name.as_deref().is_none_or(|n| n == local)
    }

    /// The URL to connect to for local stream `local`.
    pub fn url_for(&self, local: &str) -> RtmpUrl {
        RtmpUrl {
            host: self.host.clone(),
            port: self.port,
            app: self.app.clone(),
            stream: self.play_path.clone().unwrap_or_else(|| local.to_owned()),
            tls: self.tls,
        }
    }

    /// Extra `connect` fields the directive sets (tcUrl overrides ours).
    pub fn connect_fields(&self) -> Vec<(String, crate::rtmp::Amf)> {
        use crate::rtmp::Amf;
        [
            ("tcUrl", &self.tc_url),
            ("pageUrl", &self.page_url),
            ("swfUrl", &self.swf_url),
            ("flashVer", &self.flash_ver),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), Amf::String(v.clone()))))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, pull: bool) -> Result<RelayTarget, String> {
        let args: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
        RelayTarget::parse(&args, pull)
    }

    #[test]
    fn url_parts_and_parameters() {
        let t = p("rtmp://10.0.0.2:1936/origin/cam name=local", true).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.app.as_str()),
            ("10.0.0.2", 1936, "origin")
        );
        assert_eq!(t.play_path.as_deref(), Some("cam"));
        assert!(t.matches("local") && !t.matches("other"));
        assert_eq!(t.url_for("local").stream, "cam");
        let t = p(
            "edge.example/live app=other playPath=x flashVer=LNX.9",
            false,
        )
        .unwrap();
        assert_eq!((t.port, t.app.as_str()), (1935, "other"));
        assert_eq!(t.url_for("s").stream, "x");
        assert_eq!(t.connect_fields().len(), 1);
        let t = p("rtmp://h/live", false).unwrap();
        assert!(t.matches("anything"));
        assert_eq!(t.url_for("s1").stream, "s1", "the local name by default");
    }

    #[test]
    fn static_rules_and_errors() {
        assert!(p("rtmp://h/live/s name=m static", true).unwrap().is_static);
        assert!(p("rtmp://h/live/s name=m static", false)
            .unwrap_err()
            .contains("static push"));
        assert!(p("rtmp://h/live/s static", true)
            .unwrap_err()
            .contains("name missing"));
        assert!(p("rtmp://h/live/s bogus=1", true)
            .unwrap_err()
            .contains("unsupported"));
        assert!(p("http://h/live", true).is_err());
        assert!(p("rtmp://h", true).unwrap_err().contains("no application"));
    }
}
