//! nginx's `stream {}` block, in the one form nginx-rtmp users write it:
//! TLS in front of their own RTMP port, stunnel-style.
//!
//! ```text
//! stream {
//!     upstream rtmp { server 127.0.0.1:1935; }
//!     server {
//!         listen 1936 ssl;
//!         proxy_pass rtmp;
//!         ssl_certificate     /etc/ssl/live.pem;
//!         ssl_certificate_key /etc/ssl/live.key;
//!     }
//! }
//! ```
//!
//! Sluice speaks TLS itself, so such a server becomes one more RTMPS
//! listener of the `rtmp { server {} }` it points at, with no proxy hop.
//! A `stream {}` server that is anything else (plain TCP, UDP, a proxy to
//! another host) is not Sluice's to serve and keeps a warning.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::syntax::{Directive, Pos};
use super::tls::TlsScope;
use super::{ConfigError, TlsConf};

/// A TLS `stream {}` server that proxies to a local address.
#[derive(Debug, Clone)]
pub struct Front {
    /// Its `listen ... ssl` addresses.
    pub listen: Vec<SocketAddr>,
    /// `listen ... proxy_protocol`: a PROXY header precedes the TLS.
    pub proxy_protocol: bool,
    /// Where `proxy_pass` sends the bytes (an upstream's servers, or one
    /// address).
    pub target: Vec<SocketAddr>,
    /// `proxy_pass` as written, for messages.
    pub target_text: String,
    pub tls: Option<TlsConf>,
    pub pos: Pos,
}

impl Front {
    /// Whether an RTMP listener at `at` is where this front sends bytes:
    /// same port, and the same address or a wildcard one.
    pub fn points_at(&self, at: &SocketAddr) -> bool {
        self.target.iter().any(|t| {
            t.port() == at.port()
                && (t.ip() == at.ip()
                    || at.ip().is_unspecified()
                    || (t.ip().is_loopback() && at.ip().is_loopback()))
        })
    }
}

/// Reads a `stream {}` block: the TLS fronts it holds, with a warning for
/// every server that is not one.
pub fn parse(
    block: &[Directive],
    pos: &Pos,
    warnings: &mut Vec<String>,
    errors: &mut Vec<ConfigError>,
) -> Vec<Front> {
    let mut top = TlsScope::default();
    for d in block {
        if d.block.is_none() {
            top.take(d, warnings, errors);
        }
    }
    let mut fronts = Vec::new();
    let mut others = 0;
    for d in block {
        let (Some(inner), "server") = (&d.block, d.name.as_str()) else {
            continue;
        };
        let mut tls = TlsScope::default();
        let mut front = Front {
            listen: Vec::new(),
            proxy_protocol: false,
            target: Vec::new(),
            target_text: String::new(),
            tls: None,
            pos: d.pos.clone(),
        };
        let mut plain = false;
        for x in inner {
            if tls.take(x, warnings, errors) {
                continue;
            }
            match (x.name.as_str(), x.args.as_slice()) {
                ("listen", [addr, params @ ..]) => {
                    if params.iter().any(|p| p == "udp") {
                        plain = true;
                        continue;
                    }
                    let ssl = params.iter().any(|p| p == "ssl");
                    match super::listen_addr(x, addr, 0) {
                        Ok(a) if ssl => {
                            front.proxy_protocol |= params.iter().any(|p| p == "proxy_protocol");
                            front.listen.extend(a);
                        }
                        Ok(_) => plain = true,
                        Err(e) => errors.push(e),
                    }
                }
                ("proxy_pass", [to]) => {
                    front.target_text = to.clone();
                    front.target = upstream(block, to).unwrap_or_else(|| address(to));
                }
                _ => {}
            }
        }
        if front.listen.is_empty() || front.target_text.is_empty() {
            others += 1;
            continue;
        }
        if front.target.is_empty() {
            warnings.push(format!(
                "{}: this stream {{}} server proxies to {}, which no rtmp {{}} listen serves; Sluice does not open it",
                d.pos, front.target_text
            ));
            continue;
        }
        if plain {
            warnings.push(format!(
                "{}: the listens of this stream {{}} server without \"ssl\" are not opened by Sluice",
                d.pos
            ));
        }
        let first = front.listen.first().map(|a| format!("listen {a} ssl"));
        front.tls = tls.resolve(&top, first.as_deref(), &d.pos, warnings, errors);
        fronts.push(front);
    }
    if others > 0 || fronts.is_empty() {
        warnings.push(format!(
            "{pos}: \"stream\" is outside rtmp {{}}: Sluice serves only its TLS servers that proxy to a local address ({others} other server(s) ignored)"
        ));
    }
    fronts
}

/// The servers of `upstream NAME {}`, when `to` names one.
fn upstream(block: &[Directive], to: &str) -> Option<Vec<SocketAddr>> {
    let u = block
        .iter()
        .find(|d| d.name == "upstream" && d.args.first().map(String::as_str) == Some(to))?;
    Some(
        u.block
            .iter()
            .flatten()
            .filter(|s| s.name == "server")
            .filter_map(|s| s.args.first())
            .flat_map(|a| address(a))
            .collect(),
    )
}

/// A local `proxy_pass` address: an IP literal or `localhost`, with its
/// port. Any other host is another machine's, not Sluice's to serve.
fn address(to: &str) -> Vec<SocketAddr> {
    if let Ok(a) = to.parse::<SocketAddr>() {
        return vec![a];
    }
    let Some((host, port)) = to.rsplit_once(':') else {
        return Vec::new();
    };
    let Ok(port) = port.parse::<u16>() else {
        return Vec::new();
    };
    if host == "localhost" {
        return vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(
                "::1".parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                port,
            ),
        ];
    }
    Vec::new()
}
