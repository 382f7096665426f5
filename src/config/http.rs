//! The `http {}` subset Sluice serves: `server { listen; location PREFIX {
//! root | alias | flv_live } }`. Everything else inside `http {}` is an
//! ordinary nginx web-server setting that Sluice ignores with a warning,
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
    };
    for d in block {
        match (d.name.as_str(), d.args.as_slice()) {
            ("flv_live", [v]) if v == "on" || v == "off" => l.flv_live = v == "on",
            ("root", [dir]) => l.root = Some(PathBuf::from(dir)),
            ("alias", [dir]) => l.alias = Some(PathBuf::from(dir)),
            ("flv_live" | "root" | "alias", _) => errors.push(err(
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
