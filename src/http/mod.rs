//! The HTTP side: the `http {}` subset of the configuration, served with
//! axum. HTTP-FLV (`flv_live on`) streams from the same fan-out ring as RTMP
//! players; `root`/`alias` serve files (HLS playlists and segments) the way
//! nginx would.

mod files;
mod flv_live;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

use crate::config::http::HttpServerConf;
use crate::server::Shared;

/// One bound `http { server {} }`.
pub struct HttpListener {
    conf: Arc<HttpServerConf>,
    listener: TcpListener,
}

impl HttpListener {
    pub async fn bind(conf: &HttpServerConf) -> anyhow::Result<Vec<HttpListener>> {
        let mut out = Vec::new();
        let conf = Arc::new(conf.clone());
        for addr in &conf.listen {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (http)"))?;
            out.push(HttpListener {
                conf: conf.clone(),
                listener,
            });
        }
        Ok(out)
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub async fn serve(self, shared: Arc<Shared>) {
        let state = Arc::new(HttpState {
            conf: self.conf,
            shared,
        });
        let app = axum::Router::new().fallback(route).with_state(state);
        if let Err(e) = axum::serve(self.listener, app).await {
            tracing::warn!("http server stopped: {e}");
        }
    }
}

struct HttpState {
    conf: Arc<HttpServerConf>,
    shared: Arc<Shared>,
}

async fn route(State(st): State<Arc<HttpState>>, req: Request<Body>) -> Response {
    let path = req.uri().path().to_owned();
    let Some(loc) = st.conf.location(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if loc.flv_live && path.ends_with(".flv") {
        return flv_live::serve(&st.shared, &path).await;
    }
    if loc.root.is_some() || loc.alias.is_some() {
        return files::serve(loc, &path).await;
    }
    StatusCode::NOT_FOUND.into_response()
}
