//! The HTTP side: the `http {}` subset of the configuration, served with
//! axum. HTTP-FLV (`flv_live on`) streams from the same fan-out ring as RTMP
//! players; `root`/`alias` serve files (HLS playlists and segments) the way
//! nginx would.

mod accept;
mod auth;
mod control;
mod dashboard;
mod file_cache;
mod files;
mod flv_live;
mod metrics;
pub mod stat;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

use crate::config::http::HttpServerConf;
use crate::node::Shared;

/// One bound `http { server {} }`.
pub struct HttpListener {
    conf: Arc<HttpServerConf>,
    listener: TcpListener,
    /// `listen ... proxy_protocol`.
    proxied: bool,
    /// `listen ... ssl`: HTTPS.
    ssl: bool,
}

impl HttpListener {
    pub async fn bind(conf: &HttpServerConf) -> anyhow::Result<Vec<HttpListener>> {
        Self::bind_inheriting(conf, &mut |_| None).await
    }

    /// The same, on sockets inherited from the previous process (binary
    /// upgrade) where one is listening on the address already.
    pub async fn bind_inheriting(
        conf: &HttpServerConf,
        inherit: &mut (dyn FnMut(SocketAddr) -> Option<std::os::fd::OwnedFd> + Send),
    ) -> anyhow::Result<Vec<HttpListener>> {
        let mut out = Vec::new();
        let conf = Arc::new(conf.clone());
        for addr in &conf.listen {
            let listener = match inherit(*addr) {
                Some(fd) => {
                    let l = std::net::TcpListener::from(fd);
                    l.set_nonblocking(true)?;
                    TcpListener::from_std(l)?
                }
                None => TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (http)"))?,
            };
            out.push(HttpListener {
                conf: conf.clone(),
                listener,
                proxied: conf.proxy_protocol.contains(addr),
                ssl: conf.ssl.contains(addr),
            });
        }
        Ok(out)
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// A second descriptor for the listening socket.
    pub fn dup_fd(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        self.listener.as_fd().try_clone_to_owned()
    }

    pub async fn serve(self, shared: Arc<Shared>) {
        let state = Arc::new(HttpState {
            conf: self.conf,
            shared,
        });
        let proxied = self.proxied;
        let app = axum::Router::new()
            .fallback(route)
            .with_state(state.clone());
        let app = app.into_make_service_with_connect_info::<accept::Peer>();
        let tls = self.ssl.then(|| {
            // The certificate is read again with each configuration
            // generation, so a reload serves renewed files.
            let (shared, conf) = (state.shared.clone(), state.conf.clone());
            let mut cache = crate::tls::Acceptors::default();
            let source: accept::TlsSource = Box::new(move || {
                let config = shared.config();
                cache.get(Arc::as_ptr(&config) as usize, conf.tls.as_ref())
            });
            source
        });
        let listener = match accept::Accept::new(self.listener, proxied, tls) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("http server stopped: {e}");
                return;
            }
        };
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("http server stopped: {e}");
        }
    }
}

struct HttpState {
    conf: Arc<HttpServerConf>,
    shared: Arc<Shared>,
}

async fn route(
    State(st): State<Arc<HttpState>>,
    ConnectInfo(accept::Peer(peer)): ConnectInfo<accept::Peer>,
    req: Request<Body>,
) -> Response {
    let path = req.uri().path().to_owned();
    let Some(loc) = st.conf.location(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(refused) = auth::check(&loc.guard, peer.ip().to_canonical(), req.headers()).await {
        return refused;
    }
    if let Some((code, text)) = &loc.ret {
        let code = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (code, text.clone()).into_response();
    }
    if loc.control != 0 {
        return control::serve(&st.shared, loc, &path, req.uri().query()).await;
    }
    if loc.metrics {
        return metrics::serve(&st.shared);
    }
    if loc.stat != 0 {
        return stat::serve(&st.shared, loc, req.uri().query(), req.headers());
    }
    if loc.flv_live && path.ends_with(".flv") {
        return flv_live::serve(&st.shared, &path).await;
    }
    if loc.root.is_some() || loc.alias.is_some() {
        return files::serve(loc, &path).await;
    }
    if loc.dashboard {
        return dashboard::serve(&st.conf, loc, &path);
    }
    StatusCode::NOT_FOUND.into_response()
}

/// The first value of `key` in a query string, percent-decoded (`+` is a
/// space), as nginx's `$arg_` variables see it.
pub fn query_arg(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_args_decode() {
        let q = "app=live&name=a%20b+c&x&bad=%zz%4";
        assert_eq!(query_arg(q, "app").as_deref(), Some("live"));
        assert_eq!(query_arg(q, "name").as_deref(), Some("a b c"));
        assert_eq!(query_arg(q, "x").as_deref(), Some(""));
        assert_eq!(query_arg(q, "bad").as_deref(), Some("%zz%4"));
        assert_eq!(query_arg(q, "nope"), None);
    }
}
