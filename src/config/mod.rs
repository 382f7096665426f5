//! nginx-rtmp configuration: the `rtmp {}` block with its directives, scopes,
//! units and defaults, interpreted into typed settings.
//!
//! Outside `rtmp {}` we are lenient (an nginx.conf has `events`, `http`,
//! `worker_processes`...: each is ignored with one warning). Inside we are
//! strict: an unknown directive, a wrong scope or a bad value is an error,
//! and a real nginx-rtmp directive that Sluice does not implement yet is an
//! error that says so, because silently ignoring e.g. `on_publish` would
//! open a locked-down server to everyone.

pub mod access;
pub mod access_log;
pub mod cluster;
pub mod dash;
pub mod exec;
pub mod hls;
pub mod http;
pub mod play;
pub mod relay;
pub mod stream;
pub mod syntax;
mod tls;
mod units;

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use syntax::err;
pub use syntax::{ConfigError, Directive, Pos};
pub use units::{parse_msec, parse_size};

/// The configuration `sluice serve` runs when given no file.
pub const EMBEDDED_DEFAULT: &str = "\
rtmp {
    server {
        listen 1935;
        application live {
            live on;
        }
    }
}

# Observe and control: loopback only, so nothing is exposed by default.
http {
    server {
        listen 127.0.0.1:8080;
        location /stat { rtmp_stat all; }
        location /control { rtmp_control all; }
        location /metrics { rtmp_metrics on; }
        location /live { flv_live on; }
        location / { rtmp_dashboard on; }
    }
}
";

/// When a new publisher may take a stream over from the current one
/// (`publish_takeover`). nginx-rtmp never allows it ("already publishing").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    Off,
    /// Only after the current publisher was sent Go Away.
    GoAway,
    /// After Go Away, or from the current publisher's own address (an
    /// encoder reconnecting before its dead connection timed out).
    Addr,
    Always,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub servers: Vec<ServerConf>,
    /// `drain_timeout` (Sluice): how long a drain keeps serving clients
    /// before closing them. The largest value of any scope applies.
    pub drain_timeout: Duration,
    /// `max_connections` (rtmp{} scope): total RTMP connections.
    pub max_connections: Option<usize>,
    /// `pid FILE` (nginx, main level): the process id is written there at
    /// start and the file removed at exit; `sluice reload` reads it.
    pub pid: Option<PathBuf>,
    /// `exec_static`: commands run from start-up to shutdown, from every
    /// scope (nginx-rtmp keeps one list).
    pub exec_statics: Vec<exec::ExecCmd>,
    /// `respawn`, `respawn_timeout` and `exec_kill_signal` as `rtmp {}`
    /// sets them, for `exec_static` children.
    pub exec_static: exec::ExecConf,
    /// `log_args` (Sluice, rtmp{} scope): show `?args` values (stream
    /// keys) in logs. Off by default: they are replaced by `***`.
    pub log_args: bool,
    /// The `http {}` subset (HTTP-FLV, static files).
    pub http: Vec<http::HttpServerConf>,
    /// `cluster {}`: the Redis stream directory shared with other nodes.
    pub cluster: Option<cluster::ClusterConf>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ServerConf {
    pub listen: Vec<Listen>,
    /// `ssl_certificate` and friends, for its `listen ... ssl` (RTMPS).
    pub tls: Option<TlsConf>,
    pub drain_timeout: Duration,
    pub core: CoreConf,
    pub apps: Vec<AppConf>,
    /// `on_connect`/`on_disconnect` and the settings they use (server scope).
    pub notify: NotifyConf,
}

impl ServerConf {
    /// The TLS settings of the listener at `at`: its own (a `stream {}`
    /// front) or the server's; `None` for a plain listener.
    pub fn tls_for(&self, at: &Endpoint) -> Option<&TlsConf> {
        let l = self.listen.iter().find(|l| &l.at == at && l.ssl)?;
        l.tls.as_ref().or(self.tls.as_ref())
    }

    /// Every TLS setting its listeners use, to check before serving.
    pub fn tls_in_use(&self) -> impl Iterator<Item = &TlsConf> {
        self.listen.iter().filter_map(|l| self.tls_for(&l.at))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyMethod {
    Get,
    Post,
}

/// Notification URLs and settings. At server scope only `on_connect` and
/// `on_disconnect` are used; at application scope the stream calls.
#[derive(Debug, Clone)]
pub struct NotifyConf {
    pub on_connect: Option<String>,
    pub on_disconnect: Option<String>,
    pub on_publish: Option<String>,
    pub on_play: Option<String>,
    pub on_done: Option<String>,
    pub on_publish_done: Option<String>,
    pub on_play_done: Option<String>,
    pub on_update: Option<String>,
    /// `on_playlist` (sergey-dryabzhinsky fork): after each HLS playlist
    /// write.
    pub on_playlist: Option<String>,
    pub method: NotifyMethod,
    pub timeout: Duration,
    pub update_timeout: Duration,
    pub update_strict: bool,
    pub relay_redirect: bool,
    /// `notify_send_redirect` (sergey-dryabzhinsky fork): an on_connect
    /// 3xx to an rtmp:// URL is sent to the client as a connect redirect.
    pub send_redirect: bool,
}

impl NotifyConf {
    fn from_lookup(l: &Lookup) -> NotifyConf {
        let url = |n: &str| l.raw(n).map(str::to_owned);
        NotifyConf {
            on_connect: url("on_connect"),
            on_disconnect: url("on_disconnect"),
            on_publish: url("on_publish"),
            on_play: url("on_play"),
            on_done: url("on_done"),
            on_publish_done: url("on_publish_done"),
            on_play_done: url("on_play_done"),
            on_update: url("on_update"),
            on_playlist: url("on_playlist"),
            method: if l.raw("notify_method") == Some("get") {
                NotifyMethod::Get
            } else {
                NotifyMethod::Post
            },
            timeout: l.msec("netcall_timeout", 10_000),
            update_timeout: l.msec("notify_update_timeout", 30_000),
            update_strict: l.flag("notify_update_strict", false),
            relay_redirect: l.flag("notify_relay_redirect", false),
            send_redirect: l.flag("notify_send_redirect", false),
        }
    }
}

/// Connection-level settings (server scope in nginx-rtmp).
#[derive(Debug, Clone)]
pub struct CoreConf {
    pub timeout: Duration,
    pub ping: Duration,
    pub ping_timeout: Duration,
    pub max_streams: usize,
    pub ack_window: u32,
    pub chunk_size: usize,
    pub max_message: usize,
    pub out_queue: usize,
    pub buflen: Duration,
    /// `tcp_nodelay` (SRS's name): Nagle off on accepted sockets, so each
    /// message leaves when it is written. On by default; nginx-rtmp and SRS
    /// leave Nagle on (see README).
    pub tcp_nodelay: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meta {
    /// Rebuild metadata from the known fields (nginx-rtmp `meta on`).
    On,
    /// Forward the publisher's metadata as is.
    Copy,
    Off,
}

/// How `multitrack_split` names each video track's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Split {
    /// `on`: `NAME_0`, `NAME_1`... by track id.
    ById,
    /// The i-th suffix names track id i; tracks beyond the list are not
    /// split out.
    Suffixes(Vec<String>),
}

impl Split {
    pub fn suffix(&self, track: u8) -> Option<String> {
        match self {
            Split::ById => Some(format!("_{track}")),
            Split::Suffixes(list) => list.get(track as usize).cloned(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AppConf {
    pub name: String,
    pub live: bool,
    pub meta: Meta,
    pub wait_key: bool,
    pub wait_video: bool,
    pub publish_notify: bool,
    pub idle_streams: bool,
    pub drop_idle_publisher: Option<Duration>,
    pub sync: Duration,
    pub play_restart: bool,
    pub interleave: bool,
    /// `out_merge` (Sluice): how long a player may hold live media before
    /// writing it, to write many frames in one call and wake once per
    /// window instead of once per frame; zero (the default) writes each
    /// frame as it comes.
    pub out_merge: Duration,
    pub gop_cache: bool,
    pub notify: NotifyConf,
    /// `publish_takeover` (Sluice): when a new publisher may replace the
    /// current one. Default `addr`: after Go Away, or from the same address.
    pub takeover: Takeover,
    /// `allow`/`deny` rules in force (the innermost block that has any).
    pub access: Vec<access::Rule>,
    /// The application's own `record*` settings (recorder `""`), when
    /// `record` is not off, then each `recorder NAME {}` block.
    pub recorders: Vec<RecorderConf>,
    /// `hls on`: segments and a playlist under `hls_path`.
    pub hls: Option<hls::HlsConf>,
    /// `dash on`: fMP4 fragments and an MPD under `dash_path`.
    pub dash: Option<dash::DashConf>,
    /// `multitrack_split` (Sluice): the name suffix of each video track
    /// (by track id) of a multitrack publish, served as its own stream;
    /// `None` when off.
    pub split: Option<Split>,
    /// `exec_*` commands.
    pub exec: exec::ExecConf,
    /// `access_log`: where a session's line goes when it ends.
    pub access_log: Vec<access_log::AccessLog>,
    /// `push`, `pull` and their settings.
    pub relay: RelayConf,
    /// `play`: video-on-demand locations.
    pub play: play::PlayConf,
}

/// The relay directives of one application.
#[derive(Debug, Clone, Default)]
pub struct RelayConf {
    pub pushes: Vec<relay::RelayTarget>,
    /// `pull` without `static`: started by the first player.
    pub pulls: Vec<relay::RelayTarget>,
    /// `pull ... static`: started with the server.
    pub statics: Vec<relay::RelayTarget>,
    pub push_reconnect: Duration,
    pub pull_reconnect: Duration,
    /// `session_relay on`: a pull ends with the player session that
    /// started it instead of with its last player.
    pub session_relay: bool,
    /// `relay_buffer`: the buffer length a pull asks its upstream for.
    pub buffer: Duration,
    /// `rtmp_relay_ssl_trusted_certificate`: also trusted for relays to
    /// where `on_publish`/`on_play` redirect (already set on the targets
    /// above).
    pub trusted_ca: Option<PathBuf>,
}

const MAIN: u8 = 1;
const SRV: u8 = 2;
const APP: u8 = 4;
/// `recorder NAME {}` inside an application.
const REC: u8 = 8;

#[derive(Clone, Copy)]
enum Kind {
    /// `off`, `goaway`, `addr` or `always`.
    Takeover,
    /// An http:// or https:// notification URL.
    Url,
    /// `get` or `post`.
    Method,
    Flag,
    Msec,
    Num,
    Size,
    Meta,
    /// Accepted for compatibility; has no effect in Sluice's design.
    Inert(usize),
    /// `record`: one or more of off, all, audio, video, keyframes, manual.
    Record,
    /// Any single word (a path, a suffix).
    Str,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// `multitrack_split`: `on`, `off`, or one suffix per video track.
    Split,
    /// May be given more than once, with at least this many arguments.
    List(usize),
    /// A signal name or number (`exec_kill_signal`).
    Signal,
}

/// Directives Sluice implements, with the scopes nginx-rtmp allows them in.
fn spec(name: &str) -> Option<(u8, Kind)> {
    Some(match name {
        "timeout" | "ping" | "ping_timeout" | "buflen" => (MAIN | SRV, Kind::Msec),
        "max_streams" | "ack_window" | "chunk_size" => (MAIN | SRV, Kind::Num),
        "max_message" | "out_queue" => (MAIN | SRV, Kind::Size),
        "out_cork" => (MAIN | SRV, Kind::Inert(1)),
        "out_merge" => (MAIN | SRV | APP, Kind::Msec),
        "tcp_nodelay" => (MAIN | SRV, Kind::Flag),
        "busy" | "so_keepalive" => (MAIN | SRV, Kind::Inert(1)),
        "play_time_fix" | "publish_time_fix" => (MAIN | SRV | APP, Kind::Inert(1)),
        // nginx-rtmp takes it in every scope and enforces none: Sluice
        // enforces the rtmp{} one (see README).
        "max_connections" => (MAIN | SRV | APP, Kind::Num),
        "record" => (MAIN | SRV | APP | REC, Kind::Record),
        "hls"
        | "hls_nested"
        | "hls_cleanup"
        | "hls_continuous"
        | "hls_keys"
        | "hls_allow_client_cache" => (MAIN | SRV | APP, Kind::Flag),
        "hls_path" | "hls_base_url" | "hls_key_path" | "hls_key_url" => {
            (MAIN | SRV | APP, Kind::Str)
        }
        "hls_fragment"
        | "hls_max_fragment"
        | "hls_playlist_length"
        | "hls_sync"
        | "hls_max_audio_delay" => (MAIN | SRV | APP, Kind::Msec),
        // Parsed by nginx-rtmp and never used (its PCR delay is fixed).
        "hls_muxdelay" => (MAIN | SRV | APP, Kind::Inert(1)),
        "hls_audio_buffer_size" => (MAIN | SRV | APP, Kind::Size),
        "hls_fragments_per_key" | "hls_fragment_naming_granularity" => {
            (MAIN | SRV | APP, Kind::Num)
        }
        "hls_fragment_slicing" => (MAIN | SRV | APP, Kind::OneOf(&["plain", "aligned"])),
        "hls_datetime" => (
            MAIN | SRV | APP,
            Kind::OneOf(&["none", "system", "timestamp"]),
        ),
        "hls_variant" => (MAIN | SRV | APP, Kind::List(1)),
        "dash" | "dash_cleanup" | "dash_nested" => (MAIN | SRV | APP, Kind::Flag),
        "dash_path" | "dash_clock_helper_uri" => (MAIN | SRV | APP, Kind::Str),
        "dash_fragment" | "dash_playlist_length" => (MAIN | SRV | APP, Kind::Msec),
        "dash_clock_compensation" => (
            MAIN | SRV | APP,
            Kind::OneOf(&["off", "ntp", "http_head", "http_iso"]),
        ),
        "hls_fragment_naming" => (
            MAIN | SRV | APP,
            Kind::OneOf(&["sequential", "timestamp", "system"]),
        ),
        "hls_type" => (MAIN | SRV | APP, Kind::OneOf(&["live", "event"])),
        "record_path" | "record_suffix" => (MAIN | SRV | APP | REC, Kind::Str),
        "record_unique" | "record_append" | "record_lock" | "record_notify" => {
            (MAIN | SRV | APP | REC, Kind::Flag)
        }
        "record_max_size" => (MAIN | SRV | APP | REC, Kind::Size),
        "record_max_frames" => (MAIN | SRV | APP | REC, Kind::Num),
        "record_interval" => (MAIN | SRV | APP | REC, Kind::Msec),
        "on_record_done" | "on_record_started" => (MAIN | SRV | APP | REC, Kind::Url),
        "log_args" => (MAIN, Kind::Flag),
        "drain_timeout" => (MAIN | SRV, Kind::Msec),
        "publish_takeover" => (MAIN | SRV | APP, Kind::Takeover),
        "live" | "wait_key" | "wait_video" | "publish_notify" | "idle_streams" | "play_restart"
        | "interleave" | "gop_cache" => (MAIN | SRV | APP, Kind::Flag),
        "drop_idle_publisher" | "sync" => (MAIN | SRV | APP, Kind::Msec),
        "meta" => (MAIN | SRV | APP, Kind::Meta),
        "stream_buckets" | "buffer" => (MAIN | SRV | APP, Kind::Inert(1)),
        // nginx-rtmp's response buffer for notifications: Sluice's HTTP
        // client sizes its own.
        "netcall_buffer" => (MAIN | SRV | APP, Kind::Inert(1)),
        // nginx-http-flv-module (the widely used fork): periodic access log
        // lines and GOP cache bounds. Sluice's access log writes at
        // disconnect, and its GOP cache is bounded by time and bytes.
        "log_interval"
        | "log_size"
        | "gop_max_frame_count"
        | "gop_max_video_count"
        | "gop_max_audio_count" => (MAIN | SRV | APP, Kind::Inert(1)),
        "on_connect" | "on_disconnect" => (MAIN | SRV, Kind::Url),
        "on_publish" | "on_play" | "on_done" | "on_publish_done" | "on_play_done" | "on_update"
        | "on_playlist" => (MAIN | SRV | APP, Kind::Url),
        "notify_method" => (MAIN | SRV | APP, Kind::Method),
        "netcall_timeout" | "notify_update_timeout" => (MAIN | SRV | APP, Kind::Msec),
        "notify_update_strict" | "notify_relay_redirect" | "notify_send_redirect" => {
            (MAIN | SRV | APP, Kind::Flag)
        }
        // sergey-dryabzhinsky fork: parsed there and never used.
        "record_interval_size" => (MAIN | SRV | APP | REC, Kind::Inert(1)),
        "push_reconnect" | "pull_reconnect" | "relay_buffer" => (MAIN | SRV | APP, Kind::Msec),
        "session_relay" => (MAIN | SRV | APP, Kind::Flag),
        "multitrack_split" => (MAIN | SRV | APP, Kind::Split),
        "exec" | "exec_push" | "exec_pull" | "exec_static" | "exec_publish"
        | "exec_publish_done" | "exec_play" | "exec_play_done" => (MAIN | SRV | APP, Kind::List(1)),
        "exec_record_done" | "exec_record_started" => (MAIN | SRV | APP | REC, Kind::List(1)),
        "respawn" | "exec_options" => (MAIN | SRV | APP, Kind::Flag),
        "respawn_timeout" => (MAIN | SRV | APP, Kind::Msec),
        "exec_kill_signal" => (MAIN | SRV | APP, Kind::Signal),
        "access_log" => (MAIN | SRV | APP, Kind::List(1)),
        "ssl_certificate" | "ssl_certificate_key" | "ssl_ciphers" => (MAIN | SRV, Kind::Str),
        // From the nginx-rtmp forks that relay over TLS: CAs trusted (beside
        // the system's) when a push or pull goes to rtmps://.
        "rtmp_relay_ssl_trusted_certificate" => (MAIN | SRV | APP, Kind::Str),
        "ssl_protocols" => (MAIN | SRV, Kind::List(1)),
        "ssl_handshake_timeout" => (MAIN | SRV, Kind::Msec),
        // nginx's TLS session settings: rustls keeps its own cache and
        // tickets, and picks the cipher order.
        "ssl_session_cache"
        | "ssl_session_timeout"
        | "ssl_prefer_server_ciphers"
        | "ssl_session_tickets" => (MAIN | SRV, Kind::Inert(1)),
        "play" => (MAIN | SRV | APP, Kind::List(1)),
        "play_temp_path" | "play_local_path" => (MAIN | SRV | APP, Kind::Str),
        "log_format" => (MAIN | SRV | APP, Kind::List(2)),
        _ => return None,
    })
}

/// Real nginx-rtmp (and common fork) directives that Sluice does not
/// implement yet. Using one is an error naming it, never a silent no-op.
const NOT_YET: &[&str] = &[];

/// Values of one scope, by directive name, and the directives that may be
/// given more than once (`exec_push`, `access_log`...), in order.
#[derive(Default)]
struct Scope {
    map: HashMap<String, (Vec<String>, Pos)>,
    lists: Vec<Directive>,
}

impl Scope {
    fn new() -> Scope {
        Scope::default()
    }
}

impl std::ops::Deref for Scope {
    type Target = HashMap<String, (Vec<String>, Pos)>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl std::ops::DerefMut for Scope {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

struct Interp {
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
    /// `max_connections`, from whichever scope set it: nginx-rtmp keeps
    /// one process-wide limit however deep it is written.
    max_connections: Option<(usize, Pos)>,
}

impl Interp {
    fn scope_name(s: u8) -> &'static str {
        match s {
            MAIN => "rtmp",
            SRV => "server",
            REC => "recorder",
            _ => "application",
        }
    }

    /// Validates a simple directive in scope `at` and records it in `into`
    /// (or, for `allow`/`deny`, appends to `rules`).
    fn simple(&mut self, d: &Directive, at: u8, into: &mut Scope, rules: &mut Vec<access::Rule>) {
        if d.name == "allow" || d.name == "deny" {
            match access::parse_rule(d.name == "allow", &d.args) {
                Ok(r) => rules.push(r),
                Err(e) => self
                    .errors
                    .push(err(&d.pos, format!("{e} in \"{}\" directive", d.name))),
            }
            return;
        }
        if d.block.is_some() {
            self.errors.push(err(
                &d.pos,
                format!("\"{}\" directive does not take a block", d.name),
            ));
            return;
        }
        let Some((scopes, kind)) = spec(&d.name) else {
            let msg = if NOT_YET.contains(&d.name.as_str()) {
                format!(
                    "nginx-rtmp directive \"{}\" is not implemented by Sluice yet; remove it or wait for the feature",
                    d.name
                )
            } else if matches!(
                d.name.as_str(),
                "rtmp_auto_push" | "rtmp_auto_push_reconnect" | "rtmp_socket_dir"
            ) {
                format!(
                    "\"{}\" belongs at the top level of nginx.conf, not in rtmp {{}} (Sluice accepts it there: its one process already shares streams across every core)",
                    d.name
                )
            } else {
                format!("unknown directive \"{}\"", d.name)
            };
            self.errors.push(err(&d.pos, msg));
            return;
        };
        if scopes & at == 0 {
            self.errors.push(err(
                &d.pos,
                format!(
                    "\"{}\" directive is not allowed in {} {{}}",
                    d.name,
                    Self::scope_name(at)
                ),
            ));
            return;
        }
        if let Kind::List(min) = kind {
            if d.args.len() < min {
                self.errors.push(err(
                    &d.pos,
                    format!("invalid number of arguments in \"{}\" directive", d.name),
                ));
            } else {
                into.lists.push(d.clone());
            }
            return;
        }
        let nargs = match kind {
            Kind::Inert(n) => n,
            Kind::Record | Kind::Split => d.args.len().max(1),
            _ => 1,
        };
        if d.args.len() != nargs {
            self.errors.push(err(
                &d.pos,
                format!("invalid number of arguments in \"{}\" directive", d.name),
            ));
            return;
        }
        // nginx compares flags and enumerated values without case
        // (`live ON`, `notify_method GET`, `record ALL`).
        let caseless = matches!(
            kind,
            Kind::Flag | Kind::Method | Kind::Meta | Kind::Takeover | Kind::OneOf(_) | Kind::Record
        ) || (matches!(kind, Kind::Split)
            && d.args.len() == 1
            && matches!(d.args[0].to_ascii_lowercase().as_str(), "on" | "off"));
        let args: Vec<String> = if caseless {
            d.args.iter().map(|a| a.to_ascii_lowercase()).collect()
        } else {
            d.args.clone()
        };
        let d = &Directive { args, ..d.clone() };
        let v = &d.args[0];
        let ok = match kind {
            Kind::Url => v.starts_with("http://") || v.starts_with("https://"),
            Kind::Takeover => matches!(v.as_str(), "off" | "goaway" | "addr" | "always"),
            Kind::Method => v == "get" || v == "post",
            Kind::Flag => v == "on" || v == "off",
            Kind::Msec => parse_msec(v).is_some(),
            Kind::Num => v.parse::<u32>().is_ok(),
            Kind::Size => parse_size(v).is_some(),
            Kind::Meta => matches!(v.as_str(), "on" | "off" | "copy"),
            Kind::Inert(_) | Kind::Str | Kind::List(_) => true,
            Kind::Signal => exec::parse_signal(v).is_some(),
            Kind::OneOf(words) => words.contains(&v.as_str()),
            Kind::Split => match d.args.as_slice() {
                [one] if one == "on" || one == "off" => true,
                suffixes => suffixes
                    .iter()
                    .all(|a| !a.is_empty() && a != "on" && a != "off" && !a.contains(['/', '\\'])),
            },
            Kind::Record => d.args.iter().all(|a| {
                matches!(
                    a.as_str(),
                    "off" | "all" | "audio" | "video" | "keyframes" | "manual"
                )
            }),
        };
        if !ok {
            let expect = match kind {
                Kind::Url => "expected an http:// or https:// URL",
                Kind::Takeover => "it must be \"off\", \"goaway\", \"addr\" or \"always\"",
                Kind::Method => "it must be \"get\" or \"post\"",
                Kind::Flag => "it must be \"on\" or \"off\"",
                Kind::Msec => "expected a time such as 500ms, 30s or 1m",
                Kind::Num => "expected a number",
                Kind::Size => "expected a size such as 4096, 4k or 1M",
                Kind::Meta => "it must be \"on\", \"copy\" or \"off\"",
                Kind::Inert(_) | Kind::Str | Kind::List(_) => "",
                Kind::Signal => "expected a signal name (TERM, KILL...) or number",
                Kind::OneOf(_) => "it must be one of",
                Kind::Record => "expected off, all, audio, video, keyframes or manual",
                Kind::Split => "expected on, off, or one name suffix per video track",
            };
            let expect = match kind {
                Kind::OneOf(words) => format!("{expect}: {}", words.join(", ")),
                _ => expect.to_owned(),
            };
            self.errors.push(err(
                &d.pos,
                format!(
                    "invalid value \"{v}\" in \"{}\" directive, {expect}",
                    d.name
                ),
            ));
            return;
        }
        if d.name == "max_connections" {
            match &self.max_connections {
                Some((_, first)) => self.errors.push(err(
                    &d.pos,
                    format!("\"max_connections\" directive is duplicate (first at {first})"),
                )),
                None => self.max_connections = v.parse().ok().map(|n| (n, d.pos.clone())),
            }
            return;
        }
        if let Some((_, first)) = into.get(&d.name) {
            self.errors.push(err(
                &d.pos,
                format!("\"{}\" directive is duplicate (first at {first})", d.name),
            ));
            return;
        }
        if matches!(kind, Kind::Inert(_))
            && !matches!(d.name.as_str(), "play_time_fix" | "publish_time_fix")
        {
            self.warnings.push(format!(
                "{}: \"{}\" is accepted for compatibility and has no effect in Sluice",
                d.pos, d.name
            ));
        }
        into.insert(d.name.clone(), (d.args.clone(), d.pos.clone()));
    }
}

/// One recorder (nginx-rtmp's record node): what to write, where, and when
/// to start a new file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecorderConf {
    /// `""` for the application's own settings, else the block's name.
    pub id: String,
    pub audio: bool,
    pub video: bool,
    /// Video keyframes only (with `video` off).
    pub keyframes: bool,
    /// Started and stopped only through /control.
    pub manual: bool,
    pub path: String,
    /// Appended to the name; strftime patterns (`%Y-%m-%d`...) expand.
    pub suffix: String,
    /// Appends `-UNIXTIME` of the file's opening to the name.
    pub unique: bool,
    /// `record_append`: continue an existing file instead of replacing it.
    pub append: bool,
    /// `record_lock`: an exclusive advisory lock while the file is written.
    pub lock: bool,
    /// `record_notify`: NetStream.Record.Start/Stop to the publisher.
    pub notify: bool,
    /// Closes the file once it reaches this many bytes (0: no limit).
    pub max_size: u64,
    /// Closes the file after this many frames (0: no limit).
    pub max_frames: u64,
    /// Starts a new file at the first keyframe after this long.
    pub interval: Option<Duration>,
    pub on_record_done: Option<String>,
    /// `on_record_started` (sergey-dryabzhinsky fork): a file was opened.
    pub on_record_started: Option<String>,
    /// `exec_record_started` written inside this `recorder {}`.
    pub exec_record_started: Vec<exec::ExecCmd>,
    /// `exec_record_done` written inside this `recorder {}` (otherwise the
    /// application's apply).
    pub exec_record_done: Vec<exec::ExecCmd>,
}

impl RecorderConf {
    fn from_lookup(id: &str, l: &Lookup) -> RecorderConf {
        let flags: Vec<&str> = l
            .all("record")
            .unwrap_or(&[])
            .iter()
            .map(String::as_str)
            .collect();
        let has = |f: &str| flags.contains(&f);
        let interval = l.msec("record_interval", 0);
        RecorderConf {
            id: id.to_owned(),
            audio: has("all") || has("audio"),
            video: has("all") || has("video"),
            keyframes: has("keyframes"),
            manual: has("manual"),
            path: l.raw("record_path").unwrap_or_default().to_owned(),
            suffix: l.raw("record_suffix").unwrap_or(".flv").to_owned(),
            unique: l.flag("record_unique", false),
            append: l.flag("record_append", false),
            lock: l.flag("record_lock", false),
            notify: l.flag("record_notify", false),
            max_size: l.size("record_max_size", 0),
            max_frames: l.num("record_max_frames", 0),
            interval: (!interval.is_zero()).then_some(interval),
            on_record_done: l.raw("on_record_done").map(str::to_owned),
            exec_record_done: Vec::new(),
            on_record_started: l.raw("on_record_started").map(str::to_owned),
            exec_record_started: Vec::new(),
        }
    }

    /// Whether this recorder can ever write anything (`record off`, or no
    /// `record` at all, cannot).
    pub fn enabled(&self) -> bool {
        self.audio || self.video || self.keyframes || self.manual
    }
}

/// Effective value lookup: application, then server, then rtmp{}.
struct Lookup<'a>(Vec<&'a Scope>);

impl<'a> Lookup<'a> {
    /// Every `name` directive of the innermost scope that has one, as
    /// nginx inherits a list (`access_log`): a scope's own list replaces its
    /// parent's.
    fn list_nearest(&self, names: &[&str]) -> Vec<&'a Directive> {
        for s in &self.0 {
            let l: Vec<&'a Directive> = s
                .lists
                .iter()
                .filter(|d| names.contains(&d.name.as_str()))
                .collect();
            if !l.is_empty() {
                return l;
            }
        }
        Vec::new()
    }

    /// Every `name` directive of every scope, innermost first, as
    /// nginx-rtmp merges exec lists: a scope's own, then its parent's.
    fn list_all(&self, names: &[&str]) -> Vec<&'a Directive> {
        self.0
            .iter()
            .flat_map(|s| s.lists.iter())
            .filter(|d| names.contains(&d.name.as_str()))
            .collect()
    }

    fn all(&self, name: &str) -> Option<&[String]> {
        self.0.iter().find_map(|s| s.get(name)).map(|(a, _)| &a[..])
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find_map(|s| s.get(name))
            .map(|(a, _)| a[0].as_str())
    }
    fn flag(&self, name: &str, default: bool) -> bool {
        self.raw(name).map_or(default, |v| v == "on")
    }
    fn msec(&self, name: &str, default_ms: u64) -> Duration {
        Duration::from_millis(self.raw(name).and_then(parse_msec).unwrap_or(default_ms))
    }
    fn num(&self, name: &str, default: u64) -> u64 {
        self.raw(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
    fn size(&self, name: &str, default: u64) -> u64 {
        self.raw(name).and_then(parse_size).unwrap_or(default)
    }
}

/// Parses a `listen` directive's address.
/// Where an RTMP `listen` accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Tcp(SocketAddr),
    /// `listen unix:/path`.
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// One RTMP `listen`, with the parameters Sluice acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub at: Endpoint,
    /// `proxy_protocol`: every connection starts with a PROXY v1 or v2
    /// header naming the real client.
    pub proxy_protocol: bool,
    /// `reuseport`. Sluice sets SO_REUSEPORT on every TCP listener anyway,
    /// so that a new process can bind the port while the old one drains.
    pub reuseport: bool,
    /// `ssl`: RTMPS, with the `server {}`'s certificate.
    pub ssl: bool,
    /// The listener's own certificate: a `stream {}` TLS front served
    /// directly (see [`stream`]), whose `ssl_certificate` is its own.
    pub tls: Option<TlsConf>,
}

/// A `server {}`'s TLS settings (nginx's names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConf {
    /// `ssl_certificate`: PEM, the chain after the certificate.
    pub certificate: PathBuf,
    /// `ssl_certificate_key`: PEM.
    pub key: PathBuf,
    /// `ssl_protocols`: of nginx's names, TLSv1.2 and TLSv1.3 are honoured
    /// (rustls speaks no older version); empty for both.
    pub protocols: Vec<String>,
    /// `ssl_handshake_timeout`; `timeout` when unset.
    pub handshake_timeout: Option<Duration>,
}

impl Listen {
    /// The TCP port, for a TCP listener.
    pub fn port(&self) -> Option<u16> {
        match &self.at {
            Endpoint::Tcp(a) => Some(a.port()),
            Endpoint::Unix(_) => None,
        }
    }
}

fn parse_listen(d: &Directive) -> Result<Vec<Listen>, ConfigError> {
    let Some(addr) = d.args.first() else {
        return Err(err(
            &d.pos,
            "invalid number of arguments in \"listen\" directive",
        ));
    };
    let (mut proxy_protocol, mut reuseport, mut ssl) = (false, false, false);
    for p in &d.args[1..] {
        match p.as_str() {
            "proxy_protocol" => proxy_protocol = true,
            "ssl" => ssl = true,
            "reuseport" => reuseport = true,
            "bind" => {}
            p if p.starts_with("ipv6only=")
                || p.starts_with("so_keepalive=")
                || p.starts_with("backlog=")
                || p.starts_with("rcvbuf=")
                || p.starts_with("sndbuf=")
                || p == "deferred" => {}
            _ => {
                return Err(err(
                    &d.pos,
                    format!("invalid parameter \"{p}\" in \"listen\" directive"),
                ))
            }
        }
    }
    if let Some(path) = addr.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(err(
                &d.pos,
                "no path in \"unix:\" of the \"listen\" directive",
            ));
        }
        return Ok(vec![Listen {
            at: Endpoint::Unix(PathBuf::from(path)),
            proxy_protocol,
            reuseport: false,
            ssl,
            tls: None,
        }]);
    }
    Ok(listen_addr(d, addr, 1935)?
        .into_iter()
        .map(|a| Listen {
            at: Endpoint::Tcp(a),
            proxy_protocol,
            reuseport,
            ssl,
            tls: None,
        })
        .collect())
}

/// Resolves a `listen` address as nginx reads it: `PORT`, `*:PORT`,
/// `HOST:PORT`, or `HOST` (on `default_port`). The first address counts.
fn listen_addr(
    d: &Directive,
    addr: &str,
    default_port: u16,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let text = if addr.parse::<u16>().is_ok() {
        format!("0.0.0.0:{addr}")
    } else if let Some(port) = addr.strip_prefix("*:") {
        format!("0.0.0.0:{port}")
    } else if addr.contains(':') {
        addr.to_owned()
    } else {
        format!("{addr}:{default_port}")
    };
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| {
            err(
                &d.pos,
                format!("invalid address \"{addr}\" in \"listen\" directive: {e}"),
            )
        })?
        .collect();
    if addrs.is_empty() {
        return Err(err(
            &d.pos,
            format!("host not found in \"{addr}\" of the \"listen\" directive"),
        ));
    }
    Ok(addrs[..1].to_vec())
}

impl Config {
    /// Loads and validates a configuration file, returning every error.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let tree = syntax::parse_file(path).map_err(|e| vec![e])?;
        let mut c = Self::from_tree(&tree)?;
        // nginx reads a relative certificate path from the configuration's
        // folder (its conf prefix), not from where it was started.
        if let Some(dir) = path.parent() {
            c.anchor_tls_paths(dir);
        }
        Ok(c)
    }

    /// Makes relative `ssl_certificate`/`ssl_certificate_key` paths
    /// relative to `dir`.
    fn anchor_tls_paths(&mut self, dir: &Path) {
        let anchor = |t: &mut TlsConf| {
            for p in [&mut t.certificate, &mut t.key] {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        };
        for s in &mut self.servers {
            s.tls.iter_mut().for_each(anchor);
            for l in &mut s.listen {
                l.tls.iter_mut().for_each(anchor);
            }
        }
        for h in &mut self.http {
            h.tls.iter_mut().for_each(anchor);
        }
    }

    /// Parses configuration text (used for the embedded default and tests).
    pub fn parse(src: &str, name: &str) -> Result<Config, Vec<ConfigError>> {
        let tree = syntax::parse_str(src, name, Path::new("."), 0).map_err(|e| vec![e])?;
        Self::from_tree(&tree)
    }

    /// The embedded default is a compile-time constant covered by tests, so
    /// a failure here is a build defect, not bad input.
    #[allow(clippy::expect_used)]
    pub fn embedded() -> Config {
        Self::parse(EMBEDDED_DEFAULT, "<embedded>").expect("embedded default config is valid")
    }

    fn from_tree(tree: &[Directive]) -> Result<Config, Vec<ConfigError>> {
        let mut it = Interp {
            errors: vec![],
            warnings: vec![],
            max_connections: None,
        };
        let mut rtmp: Option<&Directive> = None;
        let mut http_servers = Vec::new();
        let mut fronts = Vec::new();
        let mut pid = None;
        for d in tree {
            if d.name == "pid" && d.block.is_none() {
                match d.args.as_slice() {
                    [p] if p != "off" => pid = Some(PathBuf::from(p)),
                    [_] => pid = None,
                    _ => it.errors.push(err(
                        &d.pos,
                        "invalid number of arguments in \"pid\" directive",
                    )),
                }
            } else if d.name == "stream" && d.block.is_some() {
                let block = d.block.as_deref().unwrap_or_default();
                fronts.extend(stream::parse(
                    block,
                    &d.pos,
                    &mut it.warnings,
                    &mut it.errors,
                ));
            } else if d.name == "http" && d.block.is_some() {
                let block = d.block.as_deref().unwrap_or_default();
                http_servers.extend(http::parse(block, &mut it.warnings, &mut it.errors));
            } else if d.name == "rtmp" {
                if let Some(first) = rtmp {
                    it.errors.push(err(
                        &d.pos,
                        format!("\"rtmp\" directive is duplicate (first at {})", first.pos),
                    ));
                } else if d.block.is_none() {
                    it.errors
                        .push(err(&d.pos, "\"rtmp\" directive needs a block"));
                } else {
                    rtmp = Some(d);
                }
            } else {
                it.warnings.push(format!(
                    "{}: \"{}\" is outside rtmp {{}} and ignored by Sluice",
                    d.pos, d.name
                ));
            }
        }
        let Some(rtmp) = rtmp else {
            let pos = tree.first().map(|d| d.pos.clone()).unwrap_or(Pos {
                file: "<config>".into(),
                line: 1,
            });
            return Err(vec![err(&pos, "no \"rtmp\" block: nothing to serve")]);
        };

        // `log_format` from any scope, before any `access_log` names one.
        let mut format_lines = Vec::new();
        fn gather<'a>(b: &'a [Directive], out: &mut Vec<&'a Directive>) {
            for d in b {
                match &d.block {
                    Some(inner) => gather(inner, out),
                    None if d.name == "log_format" && d.args.len() >= 2 => out.push(d),
                    None => {}
                }
            }
        }
        gather(rtmp.block.as_deref().unwrap_or_default(), &mut format_lines);
        let formats = access_log::formats(&format_lines, &mut it.errors);

        let mut main = Scope::new();
        let mut main_rules = Vec::new();
        let mut server_blocks = Vec::new();
        let mut cluster_conf = None;
        for d in rtmp.block.as_deref().unwrap_or_default() {
            match d.name.as_str() {
                "cluster" if d.block.is_some() && d.args.is_empty() => {
                    if cluster_conf.is_some() {
                        it.errors
                            .push(err(&d.pos, "\"cluster\" directive is duplicate"));
                    }
                    cluster_conf = cluster::parse(d, &mut it.errors);
                }
                "server" => match &d.block {
                    Some(b) if d.args.is_empty() => server_blocks.push((d, b)),
                    _ => it.errors.push(err(
                        &d.pos,
                        "\"server\" takes no arguments and needs a block",
                    )),
                },
                "listen" | "application" => it.errors.push(err(
                    &d.pos,
                    format!("\"{}\" directive is not allowed in rtmp {{}}", d.name),
                )),
                _ => it.simple(d, MAIN, &mut main, &mut main_rules),
            }
        }

        let mut servers = Vec::new();
        let mut exec_statics = exec::statics(&main.lists);
        let mut seen_listen: HashMap<Endpoint, Pos> = HashMap::new();
        for (sd, block) in server_blocks {
            let mut srv = Scope::new();
            let mut srv_rules = Vec::new();
            let mut listen = Vec::new();
            let mut app_blocks: Vec<(&Directive, &Vec<Directive>)> = Vec::new();
            for d in block {
                match d.name.as_str() {
                    "listen" => match parse_listen(d) {
                        Ok(addrs) => {
                            for a in addrs {
                                if let Some(prev) = seen_listen.insert(a.at.clone(), d.pos.clone())
                                {
                                    let at = &a.at;
                                    it.errors.push(err(
                                        &d.pos,
                                        format!("duplicate \"{at}\" address and port pair (first at {prev})"),
                                    ));
                                }
                                listen.push(a);
                            }
                        }
                        Err(e) => it.errors.push(e),
                    },
                    "application" => match &d.block {
                        Some(b) if d.args.len() == 1 => {
                            if let Some((prev, _)) =
                                app_blocks.iter().find(|(p, _)| p.args[0] == d.args[0])
                            {
                                it.errors.push(err(
                                    &d.pos,
                                    format!(
                                        "duplicate application \"{}\" (first at {})",
                                        d.args[0], prev.pos
                                    ),
                                ));
                            }
                            app_blocks.push((d, b));
                        }
                        _ => it.errors.push(err(
                            &d.pos,
                            "\"application\" takes one name and needs a block",
                        )),
                    },
                    "server" | "rtmp" => it.errors.push(err(
                        &d.pos,
                        format!("\"{}\" directive is not allowed in server {{}}", d.name),
                    )),
                    _ => it.simple(d, SRV, &mut srv, &mut srv_rules),
                }
            }
            if listen.is_empty() {
                it.warnings.push(format!(
                    "{}: server {{}} has no \"listen\" and accepts nothing",
                    sd.pos
                ));
            }
            let core_lookup = Lookup(vec![&srv, &main]);
            let core = CoreConf {
                timeout: core_lookup.msec("timeout", 60_000),
                ping: core_lookup.msec("ping", 60_000),
                ping_timeout: core_lookup.msec("ping_timeout", 30_000),
                max_streams: core_lookup.num("max_streams", 32) as usize,
                ack_window: core_lookup.num("ack_window", 5_000_000) as u32,
                chunk_size: core_lookup.num("chunk_size", 4096) as usize,
                max_message: core_lookup.size("max_message", 8 << 20) as usize,
                out_queue: core_lookup.size("out_queue", 256) as usize,
                buflen: core_lookup.msec("buflen", 1000),
                tcp_nodelay: core_lookup.flag("tcp_nodelay", true),
            };
            if let Some((_, pos)) = srv.get("chunk_size").or(main.get("chunk_size")) {
                if !(128..=0xFF_FFFF).contains(&core.chunk_size) {
                    it.errors
                        .push(err(pos, "\"chunk_size\" must be between 128 and 16777215"));
                }
            }
            let mut apps = Vec::new();
            for (ad, block) in app_blocks {
                let mut app = Scope::new();
                let mut app_rules = Vec::new();
                let mut rec_blocks: Vec<(&Directive, &Vec<Directive>)> = Vec::new();
                let mut relay = RelayConf::default();
                for d in block {
                    match d.name.as_str() {
                        "recorder" => match &d.block {
                            Some(b) if d.args.len() == 1 => rec_blocks.push((d, b)),
                            _ => it
                                .errors
                                .push(err(&d.pos, "\"recorder\" takes one name and needs a block")),
                        },
                        "application" | "listen" | "server" => it.errors.push(err(
                            &d.pos,
                            format!(
                                "\"{}\" directive is not allowed in application {{}}",
                                d.name
                            ),
                        )),
                        "push" | "pull" => {
                            let pull = d.name == "pull";
                            match relay::RelayTarget::parse(&d.args, pull) {
                                Ok(t) if !pull => relay.pushes.push(t),
                                Ok(t) if t.is_static => relay.statics.push(t),
                                Ok(t) => relay.pulls.push(t),
                                Err(e) => it
                                    .errors
                                    .push(err(&d.pos, format!("{e} in \"{}\" directive", d.name))),
                            }
                        }
                        _ => it.simple(d, APP, &mut app, &mut app_rules),
                    }
                }
                let l = Lookup(vec![&app, &srv, &main]);
                relay.push_reconnect = l.msec("push_reconnect", 3000);
                relay.pull_reconnect = l.msec("pull_reconnect", 3000);
                relay.session_relay = l.flag("session_relay", false);
                relay.buffer = l.msec("relay_buffer", 5000);
                if let Some(ca) = l.raw("rtmp_relay_ssl_trusted_certificate") {
                    let ca = PathBuf::from(ca);
                    for t in relay
                        .pushes
                        .iter_mut()
                        .chain(&mut relay.pulls)
                        .chain(&mut relay.statics)
                    {
                        t.trusted_ca = Some(ca.clone());
                    }
                    relay.trusted_ca = Some(ca);
                }
                let mut recorders = Vec::new();
                let own = RecorderConf::from_lookup("", &l);
                if own.enabled() {
                    recorders.push(own);
                }
                for (rd, rblock) in rec_blocks {
                    let mut rec = Scope::new();
                    let mut no_rules = Vec::new();
                    for d in rblock {
                        if matches!(d.name.as_str(), "allow" | "deny") || d.block.is_some() {
                            it.errors.push(err(
                                &d.pos,
                                format!("\"{}\" directive is not allowed in recorder {{}}", d.name),
                            ));
                            continue;
                        }
                        it.simple(d, REC, &mut rec, &mut no_rules);
                    }
                    let rl = Lookup(vec![&rec, &app, &srv, &main]);
                    let mut r = RecorderConf::from_lookup(&rd.args[0], &rl);
                    r.exec_record_done =
                        exec::recorder_cmds(&Lookup(vec![&rec]), "exec_record_done");
                    r.exec_record_started =
                        exec::recorder_cmds(&Lookup(vec![&rec]), "exec_record_started");
                    if r.enabled() {
                        recorders.push(r);
                    }
                }
                for r in &recorders {
                    if r.path.is_empty() {
                        it.errors.push(err(
                            &ad.pos,
                            format!(
                                "recorder \"{}\" of application \"{}\" records but has no \"record_path\"",
                                r.id, ad.args[0]
                            ),
                        ));
                    }
                }
                let hls = l.flag("hls", false).then(|| {
                    use hls::{DateTime, HlsConf, HlsKeys, Naming, Slicing, Variant};
                    let fragment = l.msec("hls_fragment", 5_000);
                    let path: PathBuf = l.raw("hls_path").unwrap_or_default().into();
                    let d = HlsConf::default();
                    HlsConf {
                        fragment,
                        max_fragment: l.msec("hls_max_fragment", fragment.as_millis() as u64 * 10),
                        playlist_length: l.msec("hls_playlist_length", 30_000),
                        nested: l.flag("hls_nested", false),
                        cleanup: l.flag("hls_cleanup", true),
                        naming: match l.raw("hls_fragment_naming") {
                            Some("timestamp") => Naming::Timestamp,
                            Some("system") => Naming::System,
                            _ => Naming::Sequential,
                        },
                        granularity: l.num("hls_fragment_naming_granularity", 0),
                        event: l.raw("hls_type") == Some("event"),
                        base_url: l.raw("hls_base_url").unwrap_or_default().to_owned(),
                        continuous: l.flag("hls_continuous", true),
                        slicing: match l.raw("hls_fragment_slicing") {
                            Some("aligned") => Slicing::Aligned,
                            _ => Slicing::Plain,
                        },
                        variants: l
                            .list_nearest(&["hls_variant"])
                            .iter()
                            .map(|v| Variant {
                                suffix: v.args[0].clone(),
                                params: v.args[1..].to_vec(),
                            })
                            .collect(),
                        keys: l.flag("hls_keys", false).then(|| HlsKeys {
                            path: l.raw("hls_key_path").map_or(path.clone(), PathBuf::from),
                            url: l.raw("hls_key_url").unwrap_or_default().to_owned(),
                            per_key: l.num("hls_fragments_per_key", 0),
                        }),
                        datetime: match l.raw("hls_datetime") {
                            Some("system") => DateTime::System,
                            Some("timestamp") => DateTime::Timestamp,
                            _ => DateTime::None,
                        },
                        allow_cache: l.raw("hls_allow_client_cache").map(|v| v == "on"),
                        sync: l.msec("hls_sync", d.sync.as_millis() as u64),
                        max_audio_delay: l
                            .msec("hls_max_audio_delay", d.max_audio_delay.as_millis() as u64),
                        audio_buffer_size: l
                            .size("hls_audio_buffer_size", d.audio_buffer_size as u64)
                            as usize,
                        path,
                    }
                });
                if hls.as_ref().is_some_and(|h| h.path.as_os_str().is_empty()) {
                    it.errors.push(err(
                        &ad.pos,
                        format!(
                            "application \"{}\" has \"hls on\" but no \"hls_path\"",
                            ad.args[0]
                        ),
                    ));
                }
                let dash = l.flag("dash", false).then(|| dash::DashConf {
                    path: l.raw("dash_path").unwrap_or_default().into(),
                    fragment: l.msec("dash_fragment", 5_000),
                    playlist_length: l.msec("dash_playlist_length", 30_000),
                    cleanup: l.flag("dash_cleanup", true),
                    nested: l.flag("dash_nested", false),
                    clock: match l.raw("dash_clock_compensation") {
                        Some("ntp") => Some("ntp"),
                        Some("http_head") => Some("http-head"),
                        Some("http_iso") => Some("http-iso"),
                        _ => None,
                    }
                    .map(|s| {
                        (
                            s,
                            l.raw("dash_clock_helper_uri")
                                .unwrap_or_default()
                                .to_owned(),
                        )
                    }),
                });
                if dash.as_ref().is_some_and(|d| d.path.as_os_str().is_empty()) {
                    it.errors.push(err(
                        &ad.pos,
                        format!(
                            "application \"{}\" has \"dash on\" but no \"dash_path\"",
                            ad.args[0]
                        ),
                    ));
                }
                let drop_idle = l.msec("drop_idle_publisher", 0);
                let kill_signal = l
                    .raw("exec_kill_signal")
                    .and_then(exec::parse_signal)
                    .unwrap_or(9);
                exec_statics.extend(exec::statics(&app.lists));
                let lines = l.list_nearest(&["access_log"]);
                let access_log = access_log::logs(&lines, &formats, &mut it.errors);
                let play_lines = l.list_all(&["play"]);
                let play = play::PlayConf {
                    entries: play::entries(&play_lines).unwrap_or_else(|(i, e)| {
                        it.errors.push(err(
                            &play_lines[i].pos,
                            format!("{e} in \"play\" directive"),
                        ));
                        Vec::new()
                    }),
                    temp_path: l.raw("play_temp_path").unwrap_or("/tmp").into(),
                    local_path: l
                        .raw("play_local_path")
                        .filter(|p| !p.is_empty())
                        .map(PathBuf::from),
                };
                apps.push(AppConf {
                    access_log,
                    exec: exec::build(&l, kill_signal),
                    name: ad.args[0].clone(),
                    live: l.flag("live", false),
                    meta: match l.raw("meta") {
                        Some("copy") => Meta::Copy,
                        Some("off") => Meta::Off,
                        _ => Meta::On,
                    },
                    wait_key: l.flag("wait_key", true),
                    wait_video: l.flag("wait_video", false),
                    publish_notify: l.flag("publish_notify", false),
                    idle_streams: l.flag("idle_streams", true),
                    drop_idle_publisher: (!drop_idle.is_zero()).then_some(drop_idle),
                    sync: l.msec("sync", 300),
                    play_restart: l.flag("play_restart", false),
                    interleave: l.flag("interleave", false),
                    out_merge: l.msec("out_merge", 0),
                    gop_cache: l.flag("gop_cache", true),
                    notify: NotifyConf::from_lookup(&l),
                    takeover: match l.raw("publish_takeover") {
                        Some("off") => Takeover::Off,
                        Some("goaway") => Takeover::GoAway,
                        Some("always") => Takeover::Always,
                        _ => Takeover::Addr,
                    },
                    access: [&app_rules, &srv_rules, &main_rules]
                        .into_iter()
                        .find(|r| !r.is_empty())
                        .cloned()
                        .unwrap_or_default(),
                    recorders,
                    hls,
                    dash,
                    relay,
                    play,
                    split: match l.all("multitrack_split") {
                        None => None,
                        Some([off]) if off == "off" => None,
                        Some([on]) if on == "on" => Some(Split::ById),
                        Some(suffixes) => Some(Split::Suffixes(suffixes.to_vec())),
                    },
                });
            }
            exec_statics.extend(exec::statics(&srv.lists));
            let notify = NotifyConf::from_lookup(&Lookup(vec![&srv, &main]));
            let tl = Lookup(vec![&srv, &main]);
            let tls = match (tl.raw("ssl_certificate"), tl.raw("ssl_certificate_key")) {
                (Some(c), Some(k)) => Some(TlsConf {
                    certificate: c.into(),
                    key: k.into(),
                    protocols: tl
                        .all("ssl_protocols")
                        .map(<[String]>::to_vec)
                        .unwrap_or_default(),
                    handshake_timeout: tl
                        .raw("ssl_handshake_timeout")
                        .map(|_| tl.msec("ssl_handshake_timeout", 60_000)),
                }),
                _ => None,
            };
            if let Some(l) = listen.iter().find(|l| l.ssl) {
                if tls.is_none() {
                    it.errors.push(err(
                        &sd.pos,
                        format!(
                            "no \"ssl_certificate\" and \"ssl_certificate_key\" are defined for the \"listen {} ssl\" directive",
                            l.at
                        ),
                    ));
                }
                if let Some(old) = tl
                    .all("ssl_protocols")
                    .into_iter()
                    .flatten()
                    .find(|p| !matches!(p.as_str(), "TLSv1.2" | "TLSv1.3"))
                {
                    it.warnings.push(format!(
                        "{}: ssl_protocols {old} is not offered: rustls speaks TLSv1.2 and TLSv1.3 only",
                        sd.pos
                    ));
                }
                if tl.raw("ssl_ciphers").is_some() {
                    it.warnings.push(format!(
                        "{}: ssl_ciphers is not applied: rustls offers its own (AEAD, forward-secret) suites",
                        sd.pos
                    ));
                }
            }
            servers.push(ServerConf {
                tls,
                drain_timeout: Lookup(vec![&srv, &main]).msec("drain_timeout", 30_000),
                listen,
                core,
                apps,
                notify,
            });
        }
        attach_fronts(&fronts, &mut servers, &mut it);
        if servers.is_empty() {
            // nginx-rtmp loads such a config (its servers may come from an
            // include that matches nothing yet); it just accepts nothing.
            it.warnings.push(format!(
                "{}: rtmp {{}} has no server {{}} block and accepts nothing",
                rtmp.pos
            ));
        }
        let max_connections = it.max_connections.as_ref().map(|(n, _)| *n);
        let log_args = Lookup(vec![&main]).flag("log_args", false);
        let drain_timeout = servers
            .iter()
            .map(|s| s.drain_timeout)
            .max()
            .unwrap_or(Duration::from_secs(30));
        // A bad line inherited by several applications is reported once.
        let mut seen = std::collections::HashSet::new();
        it.errors.retain(|e| seen.insert(e.to_string()));
        if it.errors.is_empty() {
            Ok(Config {
                drain_timeout,
                servers,
                max_connections,
                log_args,
                http: http_servers,
                exec_statics,
                pid,
                exec_static: exec::build(
                    &Lookup(vec![&main]),
                    Lookup(vec![&main])
                        .raw("exec_kill_signal")
                        .and_then(exec::parse_signal)
                        .unwrap_or(9),
                ),
                cluster: cluster_conf,
                warnings: it.warnings,
            })
        } else {
            Err(it.errors)
        }
    }
}

/// Makes each TLS `stream {}` front an RTMPS listener of the RTMP server
/// its `proxy_pass` reaches; a front that reaches none keeps a warning.
fn attach_fronts(fronts: &[stream::Front], servers: &mut [ServerConf], it: &mut Interp) {
    for f in fronts {
        let target = servers.iter().position(|s| {
            s.listen
                .iter()
                .any(|l| matches!(&l.at, Endpoint::Tcp(a) if !l.ssl && f.points_at(a)))
        });
        let Some(i) = target else {
            it.warnings.push(format!(
                "{}: this stream {{}} server proxies to {}, which no rtmp {{}} listen serves; Sluice does not open it",
                f.pos, f.target_text
            ));
            continue;
        };
        for a in &f.listen {
            let at = Endpoint::Tcp(*a);
            if servers.iter().flat_map(|s| &s.listen).any(|l| l.at == at) {
                it.errors.push(err(
                    &f.pos,
                    format!("duplicate listen {a}: both rtmp {{}} and stream {{}} listen there"),
                ));
                continue;
            }
            servers[i].listen.push(Listen {
                at,
                proxy_protocol: f.proxy_protocol,
                reuseport: false,
                ssl: true,
                tls: f.tls.clone(),
            });
        }
    }
}

impl ServerConf {
    /// Applications where anyone who can reach the port may publish: live,
    /// with no `on_publish`/`on_connect` hook and no `deny` rule that
    /// covers publishing.
    pub fn open_for_publishing(&self) -> Vec<&str> {
        self.apps
            .iter()
            .filter(|a| a.live)
            .filter(|a| a.notify.on_publish.is_none() && self.notify.on_connect.is_none())
            .filter(|a| {
                !a.access
                    .iter()
                    .any(|r| !r.allow && r.action != Some(access::Action::Play))
            })
            .map(|a| a.name.as_str())
            .collect()
    }

    pub fn app(&self, name: &str) -> Option<&AppConf> {
        self.apps.iter().find(|a| a.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default() {
        let c = Config::embedded();
        assert_eq!(
            c.servers[0].listen[0].at,
            Endpoint::Tcp("0.0.0.0:1935".parse().unwrap())
        );
        let app = c.servers[0].app("live").unwrap();
        assert!(app.live && app.gop_cache && app.wait_key && app.idle_streams);
        assert_eq!(c.servers[0].core.chunk_size, 4096);
        assert_eq!(c.servers[0].core.timeout, Duration::from_secs(60));
        assert!(c.servers[0].core.tcp_nodelay);
        let h = &c.http[0];
        assert_eq!(h.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(h.location("/stat").unwrap().stat, http::stat::ALL);
        assert_eq!(h.location("/control/drop/client").unwrap().control, 0xff);
        assert!(h.location("/metrics").unwrap().metrics);
        assert!(h.location("/live/cam.flv").unwrap().flv_live);
        assert!(h.location("/").unwrap().dashboard);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn multitrack_split() {
        let app = |body: &str| {
            let src =
                format!("rtmp {{ server {{ listen 1935; {body} application a {{ live on; }} }} }}");
            Config::parse(&src, "t").map(|c| c.servers[0].app("a").unwrap().split.clone())
        };
        assert_eq!(app("").unwrap(), None);
        assert_eq!(app("multitrack_split off;").unwrap(), None);
        let on = app("multitrack_split on;").unwrap().unwrap();
        assert_eq!(
            (on.suffix(0), on.suffix(7)),
            (Some("_0".into()), Some("_7".into()))
        );
        let named = app("multitrack_split _hi _lo;").unwrap().unwrap();
        assert_eq!(
            (named.suffix(1), named.suffix(2)),
            (Some("_lo".into()), None)
        );
        assert!(app("multitrack_split on _x;").is_err());
        assert!(app("multitrack_split ../x;").is_err());
    }

    #[test]
    fn relays_and_cluster() {
        let c = Config::parse(
            "rtmp { cluster { registry redis://127.0.0.1:6379/0; advertise rtmp://10.0.0.5; node_id a-1; }\n\
             server { listen 127.0.0.1:1940; pull_reconnect 1s;\n\
             application a { live on; push rtmp://b/live; push rtmp://c/live name=x;\n\
             pull rtmp://o/live/src name=m static; pull rtmp://o/live; relay_buffer 100ms; } } }",
            "t",
        )
        .unwrap();
        let cl = c.cluster.as_ref().unwrap();
        assert_eq!(
            (cl.advertise.as_str(), cl.node_id.as_str(), cl.lease),
            ("rtmp://10.0.0.5:1935", "a-1", Duration::from_secs(10))
        );
        let r = &c.servers[0].app("a").unwrap().relay;
        assert_eq!((r.pushes.len(), r.pulls.len(), r.statics.len()), (2, 1, 1));
        assert_eq!(
            (r.pull_reconnect, r.push_reconnect, r.buffer),
            (
                Duration::from_secs(1),
                Duration::from_secs(3),
                Duration::from_millis(100)
            )
        );
        let e = errors("rtmp { cluster { registry http://x; node_id a; } server { listen 1; } }");
        assert!(e[0].contains("invalid registry"), "{e:?}");
        let e = errors("rtmp { cluster { registry redis://x; } server { listen 1; } }");
        assert!(e[0].contains("needs \"advertise\""), "{e:?}");
    }

    #[test]
    fn inheritance_and_units() {
        let c = Config::parse(
            "rtmp { ping 30s; sync 10ms; server { listen 127.0.0.1:1940; timeout 1m; max_message 4M;\n\
             application a { live on; } application b { sync 1s; drop_idle_publisher 5s; meta copy; } } }",
            "t",
        )
        .unwrap();
        let s = &c.servers[0];
        assert_eq!(
            (s.core.ping, s.core.timeout),
            (Duration::from_secs(30), Duration::from_secs(60))
        );
        assert_eq!(s.core.max_message, 4 << 20);
        assert!(s.core.tcp_nodelay);
        assert_eq!(s.app("a").unwrap().sync, Duration::from_millis(10));
        // `tcp_nodelay` from rtmp{} or server{}; not an application's.
        let c = Config::parse(
            "rtmp { tcp_nodelay off; server { listen 127.0.0.1:1940; application a { live on; } }\n\
             server { listen 127.0.0.1:1941; tcp_nodelay on; application a { live on; } } }",
            "t",
        )
        .unwrap();
        assert!(!c.servers[0].core.tcp_nodelay && c.servers[1].core.tcp_nodelay);
        let e = Config::parse(
            "rtmp { server { listen 127.0.0.1:1940; application a { tcp_nodelay off; } } }",
            "t",
        )
        .unwrap_err();
        assert!(e[0].msg.contains("tcp_nodelay"), "{e:?}");
        let b = s.app("b").unwrap();
        assert_eq!(
            (b.sync, b.drop_idle_publisher, b.meta),
            (
                Duration::from_secs(1),
                Some(Duration::from_secs(5)),
                Meta::Copy
            )
        );
    }

    fn errors(src: &str) -> Vec<String> {
        Config::parse(src, "f.conf")
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn error_classes_with_lines() {
        let e = errors("rtmp {\n server {\n  listen 1935;\n  bogus 1;\n }\n}\n");
        assert_eq!(e, vec!["f.conf:4: unknown directive \"bogus\""]);
        let e = errors("rtmp {\n server {\n  application x {\n   chunk_size 4096;\n  }\n }\n}\n");
        assert_eq!(
            e,
            vec!["f.conf:4: \"chunk_size\" directive is not allowed in application {}"]
        );
        let e = errors("rtmp {\n server {\n  listen 1935;\n  timeout fast;\n }\n}\n");
        assert!(
            e[0].starts_with("f.conf:4: invalid value \"fast\" in \"timeout\""),
            "{e:?}"
        );
        let e = errors(
            "rtmp {\n server {\n  application x {\n   live on;\n   ssl_certificate /etc/cert.pem;\n   push rtmp://a/b static;\n  }\n }\n}\n",
        );
        assert!(
            e[0].starts_with(
                "f.conf:5: \"ssl_certificate\" directive is not allowed in application {}"
            ),
            "{e:?}"
        );
        assert_eq!(
            e[1],
            "f.conf:6: static push is not allowed in \"push\" directive"
        );
        let e = errors("rtmp {\n server {\n  application x {\n   play http://;\n  }\n }\n}\n");
        assert!(e[0].starts_with("f.conf:4: no host in url"), "{e:?}");
        let e = errors("rtmp {\n server {\n  application x {\n   hls on;\n  }\n }\n}\n");
        assert_eq!(
            e,
            vec!["f.conf:3: application \"x\" has \"hls on\" but no \"hls_path\""]
        );
        let e = errors("rtmp {\n server {\n  application x {\n   dash on;\n  }\n }\n}\n");
        assert_eq!(
            e,
            vec!["f.conf:3: application \"x\" has \"dash on\" but no \"dash_path\""]
        );
        let e = errors(
            "rtmp {\n max_connections 5;\n server {\n  listen 1935;\n  max_connections 4;\n }\n}\n",
        );
        assert_eq!(
            e,
            vec!["f.conf:5: \"max_connections\" directive is duplicate (first at f.conf:2)"]
        );
        let c = Config::parse(
            "rtmp {\n server {\n  listen 1935;\n  application a {\n   max_connections 7;\n   live ON;\n   notify_method GET;\n  }\n }\n}\n",
            "f.conf",
        )
        .unwrap();
        assert_eq!(c.max_connections, Some(7));
        assert!(c.servers[0].apps[0].live);
        assert_eq!(c.servers[0].apps[0].notify.method, NotifyMethod::Get);
        let e = errors("rtmp {\n server {\n  listen 1935;\n  live maybe;\n  listen 1935;\n }\n}\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("f.conf:4: invalid value \"maybe\""),
            "{e:?}"
        );
        assert!(e[1].starts_with("f.conf:5: duplicate"), "{e:?}");
    }

    #[test]
    fn notify_and_access() {
        let c = Config::parse(
            "rtmp { notify_method get; server { listen 1935; on_connect http://h/c; deny play all;\n\
             application a { live on; on_publish http://h/p; allow publish 127.0.0.1; deny publish all; }\n\
             application b { live on; netcall_timeout 2s; } } }",
            "t",
        )
        .unwrap();
        let s = &c.servers[0];
        assert_eq!(s.notify.on_connect.as_deref(), Some("http://h/c"));
        assert_eq!(s.notify.method, NotifyMethod::Get);
        let a = s.app("a").unwrap();
        assert_eq!(a.notify.on_publish.as_deref(), Some("http://h/p"));
        assert_eq!(a.notify.timeout, Duration::from_secs(10));
        assert_eq!(a.access.len(), 2, "app rules replace inherited ones");
        let b = s.app("b").unwrap();
        assert_eq!(b.access.len(), 1, "inherits the server's rules");
        assert_eq!(b.notify.timeout, Duration::from_secs(2));
        let e =
            errors("rtmp {\n server {\n  application a {\n   on_connect http://x/;\n  }\n }\n}\n");
        assert_eq!(
            e,
            vec!["f.conf:4: \"on_connect\" directive is not allowed in application {}"]
        );
        let e = errors("rtmp {\n server {\n  on_publish ftp://x/;\n  allow watch all;\n }\n}\n");
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn outside_rtmp_is_ignored_with_warnings() {
        let c = Config::parse(
            "worker_processes 1;\nevents { worker_connections 1024; }\n\
             http { include mime.types; server { listen 127.0.0.1:8080; gzip on;\n\
               location /hls { root /tmp; add_header X 1; }\n\
               location /live { flv_live on; }\n\
               location ~ \\.php$ { deny all; } } }\n\
             rtmp { server { listen 1935; application live { live on; } } }",
            "n",
        )
        .unwrap();
        let w = &c.warnings;
        assert_eq!(w.len(), 6, "{w:?}");
        assert!(w[1].contains("\"events\""));
        assert!(w[2].contains("\"include\" in http {} is ignored"));
        assert!(w[3].contains("\"gzip\""));
        assert!(w[4].contains("\"add_header\" in location"));
        assert!(w[5].contains("only prefix locations"));
        let h = &c.http[0];
        assert_eq!(h.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(h.location("/hls/a.m3u8").unwrap().root, Some("/tmp".into()));
        assert!(h.location("/live/x.flv").unwrap().flv_live);
        assert!(h.location("/other").is_none());
    }

    #[test]
    fn https_servers_take_certificates_from_http_or_their_own() {
        let c = Config::parse(
            "http { ssl_certificate /a.pem; ssl_certificate_key /a.key; ssl_protocols TLSv1 TLSv1.2;\n\
               server { listen 8443 ssl; listen 8080; }\n\
               server { listen 9443; ssl on; ssl_certificate /b.pem; ssl_ciphers HIGH; }\n\
               server { listen 80; } }\n\
             rtmp { server { listen 1935; application live { live on; } } }",
            "n",
        )
        .unwrap();
        let [a, b, plain] = &c.http[..] else { panic!() };
        assert_eq!(a.ssl, vec!["0.0.0.0:8443".parse().unwrap()]);
        assert_eq!(a.listen.len(), 2);
        let t = a.tls.as_ref().unwrap();
        assert_eq!(
            (t.certificate.to_str(), t.key.to_str()),
            (Some("/a.pem"), Some("/a.key"))
        );
        assert_eq!(t.protocols, ["TLSv1", "TLSv1.2"]);
        // `ssl on`: every listen is TLS; the server's certificate wins.
        assert_eq!(b.ssl, b.listen);
        assert_eq!(b.tls.as_ref().unwrap().certificate.to_str(), Some("/b.pem"));
        assert!(plain.ssl.is_empty());
        let w = c.warnings.join("\n");
        assert!(w.contains("ssl_protocols TLSv1 is not offered"), "{w}");
        assert!(w.contains("ssl_ciphers is not applied"), "{w}");
        assert!(!w.contains("\"ssl_certificate\""), "{w}");
    }

    #[test]
    fn relative_certificate_paths_are_read_from_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nginx.conf");
        std::fs::write(
            &path,
            "rtmp { server { listen 1935; listen 1936 ssl; ssl_certificate c.pem;\n\
             ssl_certificate_key /abs/k.pem; application live { live on; } } }\n\
             http { server { listen 443 ssl; ssl_certificate certs/h.crt; ssl_certificate_key h.key; } }",
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        let t = c.servers[0].tls.as_ref().unwrap();
        assert_eq!(t.certificate, dir.path().join("c.pem"));
        assert_eq!(t.key, PathBuf::from("/abs/k.pem"));
        let h = c.http[0].tls.as_ref().unwrap();
        assert_eq!(h.certificate, dir.path().join("certs/h.crt"));
        assert_eq!(h.key, dir.path().join("h.key"));
    }

    #[test]
    fn the_relay_ca_covers_targets_and_redirects() {
        let c = Config::parse(
            "rtmp { rtmp_relay_ssl_trusted_certificate /ca.pem; server { listen 1935;\n\
             application a { live on; push rtmps://x/live; pull rtmps://y/live; }\n\
             application b { live on; rtmp_relay_ssl_trusted_certificate /b.pem; } } }",
            "n",
        )
        .unwrap();
        let [a, b] = &c.servers[0].apps[..] else {
            panic!()
        };
        let ca = Some(PathBuf::from("/ca.pem"));
        assert_eq!(a.relay.pushes[0].trusted_ca, ca);
        assert_eq!(a.relay.pulls[0].trusted_ca, ca);
        assert_eq!(a.relay.trusted_ca, ca);
        assert_eq!(b.relay.trusted_ca, Some(PathBuf::from("/b.pem")));
    }

    #[test]
    fn a_tls_stream_front_becomes_an_rtmps_listener() {
        let c = Config::parse(
            "stream { ssl_protocols TLSv1.2;\n\
               upstream backend { server 127.0.0.1:1935; }\n\
               server { listen 1936 ssl proxy_protocol; proxy_pass backend;\n\
                 ssl_certificate /c.pem; ssl_certificate_key /k.pem; ssl_handshake_timeout 5s; }\n\
               server { listen 9000; proxy_pass 127.0.0.1:1935; }\n\
               server { listen 9443 ssl; proxy_pass example.com:1935; ssl_certificate /c.pem; ssl_certificate_key /k.pem; } }\n\
             rtmp { server { listen 1935; application live { live on; } } }",
            "n",
        )
        .unwrap();
        let l = &c.servers[0].listen;
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(l[1].at, Endpoint::Tcp("0.0.0.0:1936".parse().unwrap()));
        assert!(l[1].ssl && l[1].proxy_protocol);
        let t = c.servers[0].tls_for(&l[1].at).unwrap();
        assert_eq!(t.certificate.to_str(), Some("/c.pem"));
        assert_eq!(t.protocols, ["TLSv1.2"]);
        assert_eq!(t.handshake_timeout, Some(Duration::from_secs(5)));
        assert!(c.servers[0].tls_for(&l[0].at).is_none());
        let w = c.warnings.join("\n");
        assert!(w.contains("1 other server(s) ignored"), "{w}");
        assert!(
            w.contains("proxies to example.com:1935, which no rtmp {} listen serves"),
            "{w}"
        );
        // A TLS front without a certificate is an error, as in nginx.
        let e = errors(
            "stream {\n server {\n  listen 1936 ssl;\n  proxy_pass 127.0.0.1:1935;\n }\n}\n\
             rtmp { server { listen 1935; application live { live on; } } }",
        );
        assert!(e[0].contains("f.conf:2: no \"ssl_certificate\""), "{e:?}");
    }

    #[test]
    fn recorders_inherit_and_need_a_path() {
        let c = Config::parse(
            "rtmp { record_path /rec; server { listen 127.0.0.1:1999;\n\
             application a { live on; record all; record_max_size 1M; record_suffix -%Y.flv;\n\
              recorder keys { record keyframes; record_interval 30s; record_unique on; }\n\
              recorder off { record off; }\n\
             } } }\n",
            "f.conf",
        )
        .unwrap();
        let r = &c.servers[0].apps[0].recorders;
        assert_eq!(r.len(), 2, "record off is no recorder");
        assert_eq!((r[0].id.as_str(), r[0].audio, r[0].video), ("", true, true));
        assert_eq!(r[0].max_size, 1 << 20);
        assert_eq!(r[0].path, "/rec");
        assert_eq!(r[0].suffix, "-%Y.flv");
        assert_eq!(r[1].id, "keys");
        assert!(r[1].keyframes && !r[1].video && !r[1].audio);
        assert_eq!(r[1].interval, Some(Duration::from_secs(30)));
        assert!(r[1].unique);
        assert_eq!(r[1].max_size, 1 << 20, "inherited from the application");

        let e = errors("rtmp {\n server {\n  application x {\n   record all;\n  }\n }\n}\n");
        assert_eq!(
            e,
            vec!["f.conf:3: recorder \"\" of application \"x\" records but has no \"record_path\""]
        );
        let e = errors("rtmp {\n server {\n  application x {\n   record everything;\n  }\n }\n}\n");
        assert!(
            e[0].contains("expected off, all, audio, video, keyframes or manual"),
            "{e:?}"
        );
    }

    #[test]
    fn one_of_names_the_choices() {
        let e = errors("rtmp {\n server {\n  application x {\n   hls_type vod;\n  }\n }\n}\n");
        assert_eq!(
            e,
            vec!["f.conf:4: invalid value \"vod\" in \"hls_type\" directive, it must be one of: live, event"]
        );
    }
}
