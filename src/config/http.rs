//! The `http {}` subset Sluice serves: `server { listen; location PREFIX {
//! root | alias | flv_live | rtmp_stat | rtmp_stat_stylesheet | rtmp_control
//! | rtmp_metrics | rtmp_dashboard } }`. Everything else inside `http {}` is
//! an ordinary nginx web-server setting that Sluice ignores with a warning,
//! so a real nginx.conf keeps loading.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::syntax::{err, ConfigError, Directive};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpServerConf {
    pub listen: Vec<SocketAddr>,
    /// In the order written; the longest matching prefix wins, as in nginx.
    pub locations: Vec<Location>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub prefix: String,
    /// `flv_live on`: HTTP-FLV at `PREFIX/NAME.flv`, the application being
    /// the prefix's last segment (`location /live` serves app `live`).
    pub flv_live: bool,
    /// `root DIR`: files at `DIR` + the whole request path.
    pub root: Option<PathBuf>,
    /// `alias DIR`: files at `DIR` + the path after the prefix.
    pub alias: Option<PathBuf>,
    /// `rtmp_stat all|global|live|clients ...`: the `/stat` document, a
    /// bitmask of [`stat`] flags (0: off).
    pub stat: u8,
    /// `rtmp_stat_stylesheet URL`: an `<?xml-stylesheet?>` line in /stat.
    pub stat_stylesheet: Option<String>,
    /// `rtmp_control all|record|drop|redirect|goaway|drain ...`: the
    /// control endpoints, a bitmask of [`control`] flags (0: off).
    pub control: u8,
    /// `rtmp_metrics on` (Sluice): Prometheus text at this location.
    pub metrics: bool,
    /// `rtmp_dashboard on` (Sluice): the embedded dashboard page.
    pub dashboard: bool,
}

/// `rtmp_stat` flags, as nginx-rtmp names them.
pub mod stat {
    pub const GLOBAL: u8 = 0x01;
    pub const LIVE: u8 = 0x02;
    pub const CLIENTS: u8 = 0x04;
    pub const ALL: u8 = 0xff;
    pub const NAMES: &[(&str, u8)] = &[
        ("all", ALL),
        ("global", GLOBAL),
        ("live", LIVE),
        ("clients", CLIENTS),
    ];
}

/// `rtmp_control` flags: nginx-rtmp's three sections plus Sluice's two.
pub mod control {
    pub const RECORD: u8 = 0x01;
    pub const DROP: u8 = 0x02;
    pub const REDIRECT: u8 = 0x04;
    pub const GOAWAY: u8 = 0x08;
    pub const DRAIN: u8 = 0x10;
    pub const ALL: u8 = 0xff;
    pub const NAMES: &[(&str, u8)] = &[
        ("all", ALL),
        ("record", RECORD),
        ("drop", DROP),
        ("redirect", REDIRECT),
        ("goaway", GOAWAY),
        ("drain", DRAIN),
    ];
}

/// Reads a bitmask directive's words (`rtmp_stat live clients`).
fn bitmask(d: &Directive, names: &[(&str, u8)]) -> Result<u8, ConfigError> {
    let mut mask = 0;
    for a in &d.args {
        match names.iter().find(|(n, _)| n == a) {
            Some((_, bit)) => mask |= bit,
            None => {
                let all: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                return Err(err(
                    &d.pos,
                    format!(
                        "invalid value \"{a}\" in \"{}\" directive (one of: {})",
                        d.name,
                        all.join(", ")
                    ),
                ));
            }
        }
    }
    if mask == 0 {
        return Err(err(&d.pos, format!("\"{}\" needs a value", d.name)));
    }
    Ok(mask)
}

impl HttpServerConf {
    /// The location for `path`: the longest matching prefix.
    pub fn location(&self, path: &str) -> Option<&Location> {
        self.locations
            .iter()
            .filter(|l| path.starts_with(&l.prefix))
            .max_by_key(|l| l.prefix.len())
    }
}

/// Reads one `http {}` block.
pub fn parse(
    http: &[Directive],
    warnings: &mut Vec<String>,
    errors: &mut Vec<ConfigError>,
) -> Vec<HttpServerConf> {
    let mut servers = Vec::new();
    for d in http {
        match (d.name.as_str(), &d.block) {
            ("server", Some(block)) => {
                let mut s = HttpServerConf {
                    listen: Vec::new(),
                    locations: Vec::new(),
                };
                for d in block {
                    match (d.name.as_str(), &d.block) {
                        ("listen", None) => match listen(d) {
                            Ok(mut a) => s.listen.append(&mut a),
                            Err(e) => errors.push(e),
                        },
                        ("location", Some(block)) if d.args.len() == 1 => {
                            s.locations.push(location(&d.args[0], block, warnings, errors));
                        }
                        ("location", _) => warnings.push(format!(
                            "{}: only prefix locations (`location /path {{}}`) are served by Sluice; this one is ignored",
                            d.pos
                        )),
                        _ => warnings.push(format!(
                            "{}: \"{}\" in http server {{}} is ignored by Sluice",
                            d.pos, d.name
                        )),
                    }
                }
                if s.listen.is_empty() {
                    // nginx's default.
                    s.listen.push(SocketAddr::from(([0, 0, 0, 0], 80)));
                }
                servers.push(s);
            }
            _ => warnings.push(format!(
                "{}: \"{}\" in http {{}} is ignored by Sluice",
                d.pos, d.name
            )),
        }
    }
    servers
}

fn location(
    prefix: &str,
    block: &[Directive],
    warnings: &mut Vec<String>,
    errors: &mut Vec<ConfigError>,
) -> Location {
    let mut l = Location {
        prefix: prefix.to_owned(),
        flv_live: false,
        root: None,
        alias: None,
        stat: 0,
        stat_stylesheet: None,
        control: 0,
        metrics: false,
        dashboard: false,
    };
    for d in block {
        match (d.name.as_str(), d.args.as_slice()) {
            ("flv_live", [v]) if v == "on" || v == "off" => l.flv_live = v == "on",
            ("rtmp_metrics", [v]) if v == "on" || v == "off" => l.metrics = v == "on",
            ("rtmp_dashboard", [v]) if v == "on" || v == "off" => l.dashboard = v == "on",
            ("root", [dir]) => l.root = Some(PathBuf::from(dir)),
            ("alias", [dir]) => l.alias = Some(PathBuf::from(dir)),
            ("rtmp_stat_stylesheet", [url]) => l.stat_stylesheet = Some(url.clone()),
            ("rtmp_stat", _) => match bitmask(d, stat::NAMES) {
                Ok(m) => l.stat = m,
                Err(e) => errors.push(e),
            },
            ("rtmp_control", _) => match bitmask(d, control::NAMES) {
                Ok(m) => l.control = m,
                Err(e) => errors.push(e),
            },
            (
                "flv_live"
                | "root"
                | "alias"
                | "rtmp_metrics"
                | "rtmp_dashboard"
                | "rtmp_stat_stylesheet",
                _,
            ) => errors.push(err(
                &d.pos,
                format!("invalid arguments in \"{}\" directive", d.name),
            )),
            _ => warnings.push(format!(
                "{}: \"{}\" in location {{}} is ignored by Sluice",
                d.pos, d.name
            )),
        }
    }
    if l.root.is_some() && l.alias.is_some() {
        warnings.push(format!(
            "location {prefix}: both root and alias; alias is used"
        ));
    }
    l
}

fn listen(d: &Directive) -> Result<Vec<SocketAddr>, ConfigError> {
    match d.args.first() {
        Some(addr) => super::listen_addr(d, addr, 80),
        None => Err(err(&d.pos, "\"listen\" needs an address")),
    }
}
