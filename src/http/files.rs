//! `root` and `alias` as nginx maps them: `root DIR` serves `DIR/PATH`,
//! `alias DIR` serves `DIR/` + the path after the location's prefix.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::file_cache::{FileCache, Found};
use crate::config::http::Location;

pub async fn serve(loc: &Location, path: &str) -> Response {
    // No way out of the directory: `..` and empty segments are refused.
    if path.split('/').any(|seg| seg == ".." || seg == ".") || path.contains('\0') {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let file = match (&loc.alias, &loc.root) {
        (Some(dir), _) => dir.join(path[loc.prefix.len()..].trim_start_matches('/')),
        (None, Some(dir)) => dir.join(path.trim_start_matches('/')),
        (None, None) => return StatusCode::NOT_FOUND.into_response(),
    };
    static CACHE: std::sync::LazyLock<FileCache> = std::sync::LazyLock::new(FileCache::default);
    match CACHE.get(&file).await {
        Found::Data(data) => (
            [
                (header::CONTENT_TYPE, content_type(path)),
                (header::CACHE_CONTROL, "no-cache"),
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            ],
            Body::from(data),
        )
            .into_response(),
        Found::Missing => StatusCode::NOT_FOUND.into_response(),
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("ts") => "video/mp2t",
        Some("flv") => "video/x-flv",
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        _ => "application/octet-stream",
    }
}
