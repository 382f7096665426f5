//! The `http {}` subset Sluice serves: `server { listen; location PREFIX {
//! root | alias | flv_live | rtmp_stat | rtmp_stat_stylesheet | rtmp_control
//! | rtmp_metrics | rtmp_dashboard } }`. Everything else inside `http {}` is
//! an ordinary nginx web-server setting that Sluice ignores with a warning,
//! so a real nginx.conf keeps loading.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::access::{self, Rule};
use super::syntax::{err, ConfigError, Directive};
use super::tls::TlsScope;

/// Who may use a location: nginx's `allow`/`deny` (first match decides, no
/// match allows) and `auth_basic` with its htpasswd file, each taken from
/// the innermost of http, server and location that sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guard {
    pub rules: Vec<Rule>,
    /// `auth_basic REALM` and `auth_basic_user_file FILE`.
    pub basic: Option<(String, PathBuf)>,
    /// `satisfy any`: either the rules or the password let a client in
    /// (nginx's default, `all`, needs both).
    pub any: bool,
}

/// What one scope (http, server or location) says about access.
#[derive(Debug, Clone, Default)]
struct GuardScope {
    rules: Vec<Rule>,
    /// `auth_basic`: `Some(None)` is `off`.
    realm: Option<Option<String>>,
    user_file: Option<PathBuf>,
    pos: Option<super::syntax::Pos>,
    /// `satisfy`: `Some(true)` for `any`.
    any: Option<bool>,
}

/// nginx directives that restrict access and that Sluice does not
/// implement: loading them with a warning would serve to anyone what the
/// config meant to lock, so they are errors.
const RESTRICTING: &[&str] = &[
    "auth_request",
    "auth_request_set",
    "auth_jwt",
    "auth_jwt_key_file",
    "auth_jwt_key_request",
    "auth_digest",
    "auth_digest_user_file",
    "auth_pam",
    "auth_ldap",
    "limit_except",
    "secure_link",
    "secure_link_md5",
    "secure_link_secret",
    "valid_referers",
    "ssl_verify_client",
];

impl GuardScope {
    /// Takes `d` when it is an access directive; false otherwise.
    fn take(&mut self, d: &Directive, errors: &mut Vec<ConfigError>) -> bool {
        match d.name.as_str() {
            "allow" | "deny" => {
                let allow = d.name == "allow";
                match d.args.as_slice() {
                    // Sluice's HTTP side has no Unix socket clients: a
                    // `unix:` rule matches no one.
                    [t] if t.starts_with("unix:") => {}
                    [_] => match access::parse_rule(allow, &d.args) {
                        Ok(r) => self.rules.push(r),
                        Err(e) => {
                            errors.push(err(&d.pos, format!("{e} in \"{}\" directive", d.name)))
                        }
                    },
                    _ => errors.push(err(
                        &d.pos,
                        format!("invalid number of arguments in \"{}\" directive", d.name),
                    )),
                }
                true
            }
            "auth_basic" => {
                match d.args.as_slice() {
                    [v] if v == "off" => self.realm = Some(None),
                    [v] => self.realm = Some(Some(v.clone())),
                    _ => errors.push(err(
                        &d.pos,
                        "invalid number of arguments in \"auth_basic\" directive",
                    )),
                }
                self.pos.get_or_insert(d.pos.clone());
                true
            }
            "satisfy" => {
                match d.args.as_slice() {
                    [v] if v.eq_ignore_ascii_case("any") => self.any = Some(true),
                    [v] if v.eq_ignore_ascii_case("all") => self.any = Some(false),
                    _ => errors.push(err(
                        &d.pos,
                        "invalid value in \"satisfy\" directive, it must be \"all\" or \"any\"",
                    )),
                }
                true
            }
            "auth_basic_user_file" => {
                match d.args.as_slice() {
                    [f] => self.user_file = Some(PathBuf::from(f)),
                    _ => errors.push(err(
                        &d.pos,
                        "invalid number of arguments in \"auth_basic_user_file\" directive",
                    )),
                }
                true
            }
            "return"
                if d.args
                    .first()
                    .and_then(|c| c.parse::<u16>().ok())
                    .is_some_and(|c| c >= 400) =>
            {
                errors.push(err(
                    &d.pos,
                    "\"return\" of an error outside a location is not implemented by Sluice; refusing to serve without it",
                ));
                true
            }
            n if RESTRICTING.contains(&n) => {
                errors.push(err(
                    &d.pos,
                    format!("\"{n}\" restricts access and Sluice does not implement it; refusing to serve without it (use allow/deny or auth_basic)"),
                ));
                true
            }
            "if" if d.block.as_deref().is_some_and(restricts) => {
                errors.push(err(
                    &d.pos,
                    "an \"if\" block that denies requests is not implemented by Sluice; refusing to serve without it (use allow/deny or auth_basic)",
                ));
                true
            }
            _ => false,
        }
    }
}

/// Whether a block (an `if`) refuses requests: `deny`, a `return` of an
/// error code, or a restricting directive.
fn restricts(block: &[Directive]) -> bool {
    block.iter().any(|d| match d.name.as_str() {
        "deny" => true,
        "return" => d
            .args
            .first()
            .and_then(|c| c.parse::<u16>().ok())
            .is_some_and(|c| c >= 400),
        n => RESTRICTING.contains(&n) || d.block.as_deref().is_some_and(restricts),
    })
}

/// The effective guard of a location, from its scopes innermost first.
fn resolve(scopes: &[&GuardScope], errors: &mut Vec<ConfigError>) -> Guard {
    let rules = scopes
        .iter()
        .find(|s| !s.rules.is_empty())
        .map(|s| s.rules.clone())
        .unwrap_or_default();
    let realm = scopes.iter().find_map(|s| s.realm.clone()).flatten();
    let file = scopes.iter().find_map(|s| s.user_file.clone());
    let basic = match (realm, file) {
        (Some(r), Some(f)) => Some((r, f)),
        (Some(_), None) => {
            let pos = scopes.iter().find_map(|s| s.pos.clone());
            if let Some(p) = pos {
                errors.push(err(
                    &p,
                    "\"auth_basic\" without \"auth_basic_user_file\" would let everyone in; add the file",
                ));
            }
            None
        }
        (None, _) => None,
    };
    let any = scopes.iter().find_map(|s| s.any).unwrap_or(false);
    Guard { rules, basic, any }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpServerConf {
    pub listen: Vec<SocketAddr>,
    /// The `listen` addresses with `proxy_protocol`: requests there start
    /// with a PROXY header, and the client it names is the one `allow` and
    /// `deny` judge.
    pub proxy_protocol: Vec<SocketAddr>,
    /// In the order written; the longest matching prefix wins, as in nginx.
    pub locations: Vec<Location>,
    /// The `listen ... ssl` addresses (HTTPS), served with [`Self::tls`].
    pub ssl: Vec<SocketAddr>,
    /// `ssl_certificate` and friends, from the server or from `http {}`.
    pub tls: Option<super::TlsConf>,
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
    /// `allow`/`deny` and `auth_basic`, inherited as nginx does.
    pub guard: Guard,
    /// `return CODE [TEXT]`: this answer, whatever the request.
    pub ret: Option<(u16, String)>,
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
    let mut top = GuardScope::default();
    let mut top_tls = TlsScope::default();
    for d in http {
        if d.name != "server" && !top_tls.take(d, warnings, errors) {
            top.take(d, errors);
        }
    }
    for d in http {
        match (d.name.as_str(), &d.block) {
            ("server", Some(block)) => {
                let mut s = HttpServerConf {
                    proxy_protocol: Vec::new(),
                    listen: Vec::new(),
                    locations: Vec::new(),
                    ssl: Vec::new(),
                    tls: None,
                };
                let mut tls = TlsScope::default();
                let mut srv = GuardScope::default();
                for d in block {
                    if d.name != "location" && srv.take(d, errors) {
                        continue;
                    }
                }
                let mut scopes = Vec::new();
                let mut had_listen = false;
                for d in block {
                    if d.name != "location" && GuardScope::default().take(d, &mut Vec::new()) {
                        continue;
                    }
                    if d.name != "location" && tls.take(d, warnings, errors) {
                        continue;
                    }
                    match (d.name.as_str(), &d.block) {
                        ("listen", None) => match listen(d) {
                            Ok(mut a) => {
                                had_listen = true;
                                if d.args.iter().any(|p| p == "proxy_protocol") {
                                    s.proxy_protocol.extend(a.iter().copied());
                                }
                                if d.args.iter().any(|p| p == "ssl") {
                                    s.ssl.extend(a.iter().copied());
                                }
                                s.listen.append(&mut a)
                            }
                            Err(e) => errors.push(e),
                        },
                        ("location", Some(block)) if d.args.len() == 1 => {
                            let (l, own) = location(&d.args[0], block, warnings, errors);
                            s.locations.push(l);
                            scopes.push(own);
                        }
                        ("location", Some(block))
                            if d.args.len() == 2 && matches!(d.args[0].as_str(), "=" | "^~") =>
                        {
                            let (l, own) = location(&d.args[1], block, warnings, errors);
                            s.locations.push(l);
                            scopes.push(own);
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
                for (l, own) in s.locations.iter_mut().zip(&scopes) {
                    l.guard = resolve(&[own, &srv, &top], errors);
                }
                // Requests that match no location get the server's guard
                // too: a catch-all location with nothing to serve.
                if !had_listen {
                    // nginx's default.
                    s.listen.push(SocketAddr::from(([0, 0, 0, 0], 80)));
                }
                if tls.on.or(top_tls.on) == Some(true) {
                    s.ssl = s.listen.clone();
                }
                let first = s.ssl.first().map(|a| format!("listen {a} ssl"));
                s.tls = tls.resolve(&top_tls, first.as_deref(), &d.pos, warnings, errors);
                servers.push(s);
            }
            _ if GuardScope::default().take(d, &mut Vec::new()) => {}
            _ if TlsScope::default().take(d, &mut Vec::new(), &mut Vec::new()) => {}
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
) -> (Location, GuardScope) {
    let mut own = GuardScope::default();
    let mut l = Location {
        guard: Guard::default(),
        ret: None,
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
        if d.name != "return" && own.take(d, errors) {
            continue;
        }
        match (d.name.as_str(), d.args.as_slice()) {
            ("return", [code, rest @ ..]) if rest.len() <= 1 && code.parse::<u16>().is_ok() => {
                let code = code.parse().unwrap_or(500);
                l.ret = Some((code, rest.first().cloned().unwrap_or_default()));
            }
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
    (l, own)
}

fn listen(d: &Directive) -> Result<Vec<SocketAddr>, ConfigError> {
    match d.args.first() {
        Some(addr) => super::listen_addr(d, addr, 80),
        None => Err(err(&d.pos, "\"listen\" needs an address")),
    }
}
