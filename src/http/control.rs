//! `/control`: nginx-rtmp's control endpoints, plus Go Away and drain.
//!
//! The request path ends in `SECTION/METHOD` (nginx-rtmp reads the last two
//! segments the same way); arguments are query parameters:
//!
//! - `drop/publisher|subscriber|client?app=&name=[&addr=][&clientid=]`:
//!   closes the matching connections; the body is their count.
//! - `redirect/publisher|subscriber|client?...&newname=`: they publish or
//!   play `newname` instead; the body is their count.
//! - `record/start|stop?app=&name=&rec=`: opens or closes a file of the
//!   publisher's recorder `rec` (default: the unnamed one); the body is the
//!   file's path, or 204 when there was nothing to do.
//! - `goaway/publisher|client?app=&name=[&addr=][&clientid=]` (Sluice): a
//!   targeted Go Away; the body is the count of clients signalled (those
//!   that announced they can move).
//! - `drain` (Sluice): starts the graceful drain; the body is the number of
//!   connections that will be signalled.
//!
//! `srv=N` picks the RTMP `server {}` block (default 0). Errors answer 500
//! with nginx-rtmp's message as the body ("Undefined filter", "Recorder not
//! found"...); nginx-rtmp sends the same status with an empty body.
//! Unknown sections are 404.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::info;

use super::query_arg;
use crate::config::http::{control as flags, Location};
use crate::live::StreamKey;
use crate::node::drain::{Signal, Target};
use crate::node::Shared;
use crate::stats::{ConnView, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    Publisher,
    Subscriber,
    Client,
}

fn filter(method: &str) -> Option<Filter> {
    match method {
        "publisher" => Some(Filter::Publisher),
        "subscriber" => Some(Filter::Subscriber),
        "client" => Some(Filter::Client),
        _ => None,
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
        .into_response()
}

fn error(msg: &str) -> Response {
    text(StatusCode::INTERNAL_SERVER_ERROR, msg.to_owned())
}

/// The connections a request selects, walked as nginx-rtmp walks them:
/// server `srv`, then application `app` (all when absent), stream `name`
/// (all when absent), then `addr` and `clientid`, then the filter.
fn select(shared: &Shared, q: &str, f: Filter) -> Result<Vec<ConnView>, &'static str> {
    let srv: usize = query_arg(q, "srv")
        .map(|s| s.parse().unwrap_or(usize::MAX))
        .unwrap_or(0);
    if srv >= shared.config().servers.len() {
        return Err("Server index out of range");
    }
    let app = query_arg(q, "app").filter(|a| !a.is_empty());
    let name = query_arg(q, "name");
    let addr = query_arg(q, "addr");
    let clientid = query_arg(q, "clientid").map(|c| c.parse::<u64>().unwrap_or(0));
    Ok(shared
        .stats
        .connections()
        .into_iter()
        .filter(|c| {
            let i = &c.info;
            i.server == srv
                && i.role != Role::None
                && app.as_ref().is_none_or(|a| &i.app == a)
                && name.as_ref().is_none_or(|n| &i.name == n)
                && addr.as_ref().is_none_or(|a| c.addr.ip().to_string() == *a)
                && clientid.is_none_or(|id| c.id == id)
                && match f {
                    Filter::Publisher => i.role == Role::Publisher,
                    Filter::Subscriber => i.role == Role::Player,
                    Filter::Client => true,
                }
        })
        .collect())
}

pub async fn serve(
    shared: &Arc<Shared>,
    loc: &Location,
    path: &str,
    query: Option<&str>,
) -> Response {
    let q = query.unwrap_or("");
    let rest = path[loc.prefix.len().min(path.len())..].trim_matches('/');
    let mut segs = rest.rsplit('/');
    let method = segs.next().unwrap_or("");
    let section = segs.next().unwrap_or("");
    let allowed = |bit: u8| loc.control & bit != 0;
    match (section, method) {
        (_, "drain") if allowed(flags::DRAIN) && section.is_empty() => drain(shared),
        ("drop", m) if allowed(flags::DROP) => {
            signal_each(shared, q, m, |_| Some(Signal::Drop), "drop")
        }
        ("redirect", m) if allowed(flags::REDIRECT) => {
            let Some(newname) = query_arg(q, "newname") else {
                return if filter(m).is_none() {
                    error("Undefined filter")
                } else {
                    error("newname not specified")
                };
            };
            signal_each(
                shared,
                q,
                m,
                |_| Some(Signal::Redirect(newname.clone())),
                "redirect",
            )
        }
        ("goaway", m) if allowed(flags::GOAWAY) => go_away(shared, q, m),
        ("record", m) if allowed(flags::RECORD) => record(shared, q, m).await,
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Posts a signal to every selected connection; answers the count.
fn signal_each(
    shared: &Shared,
    q: &str,
    method: &str,
    sig: impl Fn(&ConnView) -> Option<Signal>,
    what: &str,
) -> Response {
    let Some(f) = filter(method) else {
        return error("Undefined filter");
    };
    let conns = match select(shared, q, f) {
        Ok(c) => c,
        Err(e) => return error(e),
    };
    let mut n = 0;
    for c in &conns {
        if let Some(s) = sig(c) {
            if shared.drain.post(c.id, s) {
                n += 1;
            }
        }
    }
    info!(count = n, query = %crate::redact::args(q), "control: {what}/{method}");
    text(StatusCode::OK, n.to_string())
}

fn go_away(shared: &Shared, q: &str, method: &str) -> Response {
    let f = match method {
        "publisher" => Filter::Publisher,
        "client" => Filter::Client,
        _ => return error("Undefined filter"),
    };
    let conns = match select(shared, q, f) {
        Ok(c) => c,
        Err(e) => return error(e),
    };
    let mut n = 0;
    for c in conns.iter().filter(|c| !c.info.moves.is_empty()) {
        n += shared.drain.target(Target::Client(c.id));
    }
    info!(count = n, query = %crate::redact::args(q), "control: goaway/{method}");
    text(StatusCode::OK, n.to_string())
}

fn drain(shared: &Shared) -> Response {
    let n = shared
        .stats
        .connections()
        .iter()
        .filter(|c| !c.info.moves.is_empty())
        .count();
    info!(movable = n, "control: drain requested");
    shared.drain.request();
    text(StatusCode::OK, n.to_string())
}

async fn record(shared: &Shared, q: &str, method: &str) -> Response {
    let start = match method {
        "start" => true,
        "stop" => false,
        _ => return error("Undefined method"),
    };
    let rec = query_arg(q, "rec").unwrap_or_default();
    let publishers = match select(shared, q, Filter::Publisher) {
        Ok(c) => c,
        Err(e) => return error(e),
    };
    let mut path = None;
    for p in publishers {
        let key = StreamKey {
            server: p.info.server,
            app: p.info.app.clone(),
            name: p.info.name.clone(),
        };
        let recorders = shared.modules.get::<crate::record::Record>();
        let Some(tx) = recorders.and_then(|r| r.controls.get(&key, &rec)) else {
            return error("Recorder not found");
        };
        let (reply, rx) = tokio::sync::oneshot::channel();
        let ctl = crate::record::Ctl { start, reply };
        if tx.send(ctl).await.is_err() {
            return error("Recorder error");
        }
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(Some(p))) => path = Some(p),
            Ok(Ok(None)) => {}
            _ => return error("Recorder error"),
        }
    }
    match path {
        Some(p) => {
            info!(path = %p.display(), "control: record/{method}");
            text(StatusCode::OK, p.display().to_string())
        }
        None => StatusCode::NO_CONTENT.into_response(),
    }
}
