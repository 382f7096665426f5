//! `/stat`: nginx-rtmp's XML document, and the same tree as JSON.
//!
//! The tree is built once per request from the stats table and the stream
//! registry, then written either way, so the two forms cannot disagree.
//! The element names and nesting are nginx-rtmp's (`rtmp` → `server` →
//! `application` → `live` → `stream` → `client`, with `meta`, `nclients`,
//! `publishing`, `bw_*`/`bytes_*`...), so existing stat.xsl pages and
//! scripts keep working. Unlike nginx-rtmp, whose page shows only the
//! worker that answered, this covers the whole process.
//!
//! Additions, which XSL pages ignore: `sluice_version`; per client
//! `bytes_in`/`bytes_out`/`bw_in`/`bw_out` and `moves` (how it can be
//! sent away: `goaway`, `reconnect`, empty).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::config::http::{stat as flags, Location};
use crate::live::describe::MediaDesc;
use crate::live::{Stream, StreamKey};
use crate::node::Shared;
use crate::stats::{ConnView, Role};

#[derive(Debug, Serialize)]
pub struct StatDoc {
    pub sluice_version: &'static str,
    pub pid: u32,
    /// Seconds since start.
    pub uptime: u64,
    pub naccepted: u64,
    pub bw_in: u64,
    pub bytes_in: u64,
    pub bw_out: u64,
    pub bytes_out: u64,
    pub servers: Vec<ServerStat>,
    /// The cluster's view, on a cluster node: its nodes and which node
    /// owns which stream (as of the last lease renewal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStat>,
}

#[derive(Debug, Serialize)]
pub struct ClusterStat {
    pub node_id: String,
    /// Whether the registry answered last time it was asked.
    pub healthy: bool,
    pub nodes: Vec<crate::cluster::directory::NodeRecord>,
    pub streams: Vec<OwnerStat>,
}

#[derive(Debug, Serialize)]
pub struct OwnerStat {
    /// `app/name`.
    pub name: String,
    pub node: String,
}

#[derive(Debug, Serialize)]
pub struct ServerStat {
    pub applications: Vec<AppStat>,
}

#[derive(Debug, Serialize)]
pub struct AppStat {
    pub name: String,
    /// Absent when `rtmp_stat` leaves out `live` (or the app is not live).
    pub live: Option<LiveStat>,
}

#[derive(Debug, Serialize)]
pub struct LiveStat {
    pub streams: Vec<StreamStat>,
    pub nclients: usize,
}

#[derive(Debug, Serialize)]
pub struct StreamStat {
    pub name: String,
    /// Milliseconds since the current publisher started (0 when idle).
    pub time: u64,
    pub bw_in: u64,
    pub bytes_in: u64,
    pub bw_out: u64,
    pub bytes_out: u64,
    pub bw_audio: u64,
    pub bw_video: u64,
    /// Empty when `rtmp_stat` leaves out `clients`.
    pub clients: Vec<ClientStat>,
    pub meta: Option<MediaDesc>,
    pub nclients: usize,
    pub publishing: bool,
    pub active: bool,
}

#[derive(Debug, Serialize)]
pub struct ClientStat {
    pub id: u64,
    pub address: String,
    /// Milliseconds connected.
    pub time: u64,
    pub flashver: String,
    pub pageurl: String,
    pub swfurl: String,
    pub dropped: u64,
    pub timestamp: u32,
    pub publishing: bool,
    pub active: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub bw_in: u64,
    pub bw_out: u64,
    pub moves: &'static str,
}

/// Builds the document; `mask` is the location's `rtmp_stat` flags.
pub fn build(shared: &Shared, mask: u8) -> StatDoc {
    let conns = shared.stats.connections();
    let (bytes_in, bytes_out) = shared.stats.totals();
    // Each stream's clients, found in one pass over the connections.
    let mut by_stream: HashMap<StreamKey, Vec<&ConnView>> = HashMap::new();
    for c in conns.iter().filter(|c| c.info.role != Role::None) {
        let key = StreamKey {
            server: c.info.server,
            app: c.info.app.clone(),
            name: c.info.name.clone(),
        };
        by_stream.entry(key).or_default().push(c);
    }
    let streams = shared.registry.streams();
    let config = shared.config();
    let servers = config
        .servers
        .iter()
        .enumerate()
        .map(|(si, srv)| ServerStat {
            applications: srv
                .apps
                .iter()
                .map(|app| AppStat {
                    name: app.name.clone(),
                    live: (app.live && mask & flags::LIVE != 0).then(|| {
                        let streams: Vec<StreamStat> = streams
                            .iter()
                            .filter(|(k, _)| k.server == si && k.app == app.name)
                            .map(|(k, s)| {
                                let clients = by_stream.get(k).map_or(&[][..], |v| v);
                                stream_stat(k, s, clients, mask)
                            })
                            .collect();
                        LiveStat {
                            nclients: streams.iter().map(|s| s.nclients).sum(),
                            streams,
                        }
                    }),
                })
                .collect(),
        })
        .collect();
    let rate = |f: fn(&crate::stats::Rates) -> u64| conns.iter().map(|c| f(&c.rates)).sum();
    StatDoc {
        sluice_version: env!("CARGO_PKG_VERSION"),
        pid: std::process::id(),
        uptime: shared.stats.started.elapsed().as_secs(),
        naccepted: shared
            .stats
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed),
        bw_in: rate(|r| r.bw_in),
        bytes_in,
        bw_out: rate(|r| r.bw_out),
        bytes_out,
        servers,
        cluster: shared.cluster.as_ref().map(|c| {
            let v = c.view();
            ClusterStat {
                node_id: v.node_id,
                healthy: v.healthy,
                nodes: v.nodes,
                streams: v
                    .streams
                    .into_iter()
                    .map(|(name, node)| OwnerStat { name, node })
                    .collect(),
            }
        }),
    }
}

/// One stream with its RTMP clients (publisher and players).
fn stream_stat(key: &StreamKey, s: &Stream, clients: &[&ConnView], mask: u8) -> StreamStat {
    let view = s.view();
    let publishing = view.publisher.is_some();
    let publisher = clients
        .iter()
        .find(|c| c.info.role == Role::Publisher && Some(c.id) == view.publisher);
    let players = || clients.iter().filter(|c| c.info.role == Role::Player);
    StreamStat {
        name: key.name.clone(),
        time: view.since.map_or(0, |t| t.elapsed().as_millis() as u64),
        bw_in: publisher.map_or(0, |p| p.rates.bw_in),
        bytes_in: publisher.map_or(0, |p| p.counters.bytes_in),
        bw_out: players().map(|c| c.rates.bw_out).sum(),
        bytes_out: players().map(|c| c.counters.bytes_out).sum(),
        bw_audio: publisher.map_or(0, |p| p.rates.bw_audio),
        bw_video: publisher.map_or(0, |p| p.rates.bw_video),
        clients: if mask & flags::CLIENTS != 0 {
            clients.iter().map(|c| client_stat(c, publishing)).collect()
        } else {
            Vec::new()
        },
        meta: publishing.then_some(view.media),
        // Players include HTTP-FLV viewers, which have no RTMP client entry.
        nclients: view.players + usize::from(publishing),
        publishing,
        active: publishing,
    }
}

fn client_stat(c: &ConnView, stream_publishing: bool) -> ClientStat {
    let publishing = c.info.role == Role::Publisher;
    ClientStat {
        id: c.id,
        address: c.addr.ip().to_string(),
        time: c.uptime_ms,
        flashver: c.info.flashver.clone(),
        pageurl: c.info.pageurl.clone(),
        swfurl: c.info.swfurl.clone(),
        dropped: c.counters.dropped,
        timestamp: c.counters.timestamp,
        publishing,
        active: publishing || stream_publishing,
        bytes_in: c.counters.bytes_in,
        bytes_out: c.counters.bytes_out,
        bw_in: c.rates.bw_in,
        bw_out: c.rates.bw_out,
        moves: c.info.moves,
    }
}

/// Escapes text for XML content.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => o.push(c),
        }
    }
    o
}

/// Writes `<name>value</name>`.
fn el(o: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = write!(o, "<{name}>{value}</{name}>");
}

/// Writes one numeric element per pair.
fn nums(o: &mut String, pairs: &[(&str, u64)]) {
    for (name, v) in pairs {
        el(o, name, v);
    }
}

/// Writes the document the way nginx-rtmp lays it out.
pub fn to_xml(d: &StatDoc, stylesheet: Option<&str>) -> String {
    let mut o = String::with_capacity(4096);
    o.push_str("<?xml version=\"1.0\" encoding=\"utf-8\" ?>\r\n");
    if let Some(href) = stylesheet {
        let _ = write!(
            o,
            "<?xml-stylesheet type=\"text/xsl\" href=\"{}\" ?>\r\n",
            esc(href)
        );
    }
    o.push_str("<rtmp>\r\n");
    el(&mut o, "sluice_version", d.sluice_version);
    o.push_str("\r\n");
    el(&mut o, "pid", d.pid);
    el(&mut o, "uptime", d.uptime);
    el(&mut o, "naccepted", d.naccepted);
    o.push_str("\r\n");
    nums(
        &mut o,
        &[
            ("bw_in", d.bw_in),
            ("bytes_in", d.bytes_in),
            ("bw_out", d.bw_out),
            ("bytes_out", d.bytes_out),
        ],
    );
    o.push_str("\r\n");
    for s in &d.servers {
        o.push_str("<server>\r\n");
        for a in &s.applications {
            o.push_str("<application>\r\n");
            el(&mut o, "name", esc(&a.name));
            o.push_str("\r\n");
            if let Some(live) = &a.live {
                o.push_str("<live>\r\n");
                for st in &live.streams {
                    stream_xml(&mut o, st);
                }
                el(&mut o, "nclients", live.nclients);
                o.push_str("\r\n</live>\r\n");
            }
            o.push_str("</application>\r\n");
        }
        o.push_str("</server>\r\n");
    }
    if let Some(c) = &d.cluster {
        o.push_str("<cluster>\r\n");
        el(&mut o, "node_id", esc(&c.node_id));
        el(&mut o, "healthy", c.healthy as u8);
        for n in &c.nodes {
            o.push_str("<node>");
            el(&mut o, "id", esc(&n.id));
            el(&mut o, "url", esc(&n.url));
            if n.draining {
                o.push_str("<draining/>");
            }
            o.push_str("</node>\r\n");
        }
        for st in &c.streams {
            o.push_str("<stream>");
            el(&mut o, "name", esc(&st.name));
            el(&mut o, "node", esc(&st.node));
            o.push_str("</stream>\r\n");
        }
        o.push_str("</cluster>\r\n");
    }
    o.push_str("</rtmp>\r\n");
    o
}

fn stream_xml(o: &mut String, st: &StreamStat) {
    o.push_str("<stream>\r\n");
    el(o, "name", esc(&st.name));
    o.push_str("\r\n");
    nums(
        o,
        &[
            ("time", st.time),
            ("bw_in", st.bw_in),
            ("bytes_in", st.bytes_in),
            ("bw_out", st.bw_out),
            ("bytes_out", st.bytes_out),
            ("bw_audio", st.bw_audio),
            ("bw_video", st.bw_video),
        ],
    );
    o.push_str("\r\n");
    for c in &st.clients {
        o.push_str("<client>");
        el(o, "id", c.id);
        el(o, "address", esc(&c.address));
        el(o, "time", c.time);
        for (name, v) in [
            ("flashver", &c.flashver),
            ("pageurl", &c.pageurl),
            ("swfurl", &c.swfurl),
        ] {
            if !v.is_empty() {
                el(o, name, esc(v));
            }
        }
        el(o, "dropped", c.dropped);
        // Empty, as nginx-rtmp writes it for interleaved streams: Sluice
        // does not track per-client A/V drift.
        o.push_str("<avsync></avsync>");
        nums(
            o,
            &[
                ("timestamp", c.timestamp as u64),
                ("bytes_in", c.bytes_in),
                ("bytes_out", c.bytes_out),
                ("bw_in", c.bw_in),
                ("bw_out", c.bw_out),
            ],
        );
        if !c.moves.is_empty() {
            el(o, "moves", c.moves);
        }
        if c.publishing {
            o.push_str("<publishing/>");
        }
        if c.active {
            o.push_str("<active/>");
        }
        o.push_str("</client>\r\n");
    }
    if let Some(m) = &st.meta {
        o.push_str("<meta><video>");
        el(o, "width", m.video.width);
        el(o, "height", m.video.height);
        el(o, "frame_rate", m.video.frame_rate);
        if !m.video.codec.is_empty() {
            el(o, "codec", esc(&m.video.codec));
        }
        if !m.video.profile.is_empty() {
            el(o, "profile", esc(&m.video.profile));
        }
        if !m.video.level.is_empty() {
            el(o, "compat", m.video.compat);
            el(o, "level", &m.video.level);
        }
        o.push_str("</video><audio>");
        if !m.audio.codec.is_empty() {
            el(o, "codec", esc(&m.audio.codec));
        }
        if !m.audio.profile.is_empty() {
            el(o, "profile", esc(&m.audio.profile));
        }
        if m.audio.channels > 0 {
            el(o, "channels", m.audio.channels);
        }
        if m.audio.sample_rate > 0 {
            el(o, "sample_rate", m.audio.sample_rate);
        }
        o.push_str("</audio>");
        if !m.tracks.is_empty() {
            // Sluice: every track of a multitrack stream.
            o.push_str("<tracks>");
            for t in &m.tracks {
                o.push_str("<track>");
                el(o, "type", if t.video.is_some() { "video" } else { "audio" });
                el(o, "id", t.id);
                if let Some(v) = &t.video {
                    el(o, "codec", esc(&v.codec));
                    if !v.profile.is_empty() {
                        el(o, "profile", esc(&v.profile));
                    }
                    if v.width > 0 {
                        el(o, "width", v.width);
                        el(o, "height", v.height);
                    }
                }
                if let Some(a) = &t.audio {
                    el(o, "codec", esc(&a.codec));
                    if !a.profile.is_empty() {
                        el(o, "profile", esc(&a.profile));
                    }
                    if a.channels > 0 {
                        el(o, "channels", a.channels);
                    }
                    if a.sample_rate > 0 {
                        el(o, "sample_rate", a.sample_rate);
                    }
                }
                o.push_str("</track>");
            }
            o.push_str("</tracks>");
        }
        o.push_str("</meta>\r\n");
    }
    el(o, "nclients", st.nclients);
    o.push_str("\r\n");
    if st.publishing {
        o.push_str("<publishing/>\r\n");
    }
    if st.active {
        o.push_str("<active/>\r\n");
    }
    o.push_str("</stream>\r\n");
}

/// Whether the request asks for JSON: `?format=json` or an Accept header
/// that prefers it.
fn wants_json(query: Option<&str>, headers: &HeaderMap) -> bool {
    let q = query.unwrap_or("");
    if let Some(f) = super::query_arg(q, "format") {
        return f == "json";
    }
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

pub fn serve(
    shared: &Arc<Shared>,
    loc: &Location,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let doc = build(shared, loc.stat);
    let cors = (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*");
    let no_cache = (header::CACHE_CONTROL, "no-cache");
    if wants_json(query, headers) {
        match serde_json::to_string(&doc) {
            Ok(body) => (
                [(header::CONTENT_TYPE, "application/json"), cors, no_cache],
                body,
            )
                .into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    } else {
        (
            [(header::CONTENT_TYPE, "text/xml"), cors, no_cache],
            to_xml(&doc, loc.stat_stylesheet.as_deref()),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_drops_control_characters() {
        assert_eq!(esc("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
