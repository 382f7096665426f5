//! The dashboard (`rtmp_dashboard on`): one page and one script, embedded
//! in the binary, so there is nothing to install or build at run time.
//!
//! The page polls the JSON form of `/stat` once a second and calls
//! `/control` for its buttons; its embedded player reads HTTP-FLV. Where
//! those live depends on the configuration, so the page is served with a
//! small JSON object naming the locations of the same `http { server {} }`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::config::http::{HttpServerConf, Location};

const PAGE: &str = include_str!("dashboard/index.html");
const PLAYER: &str = include_str!("dashboard/player.js");

/// The locations the page needs, as a JSON object.
fn page_config(conf: &HttpServerConf, base: &str) -> String {
    let first = |f: fn(&Location) -> bool| {
        conf.locations
            .iter()
            .find(|l| f(l))
            .map(|l| l.prefix.trim_end_matches('/').to_owned())
    };
    // flv_live serves application = the prefix's last segment.
    let flv: serde_json::Map<String, serde_json::Value> = conf
        .locations
        .iter()
        .filter(|l| l.flv_live)
        .filter_map(|l| {
            let p = l.prefix.trim_end_matches('/');
            let app = p.rsplit('/').next().filter(|a| !a.is_empty())?;
            Some((app.to_owned(), serde_json::Value::String(p.to_owned())))
        })
        .collect();
    serde_json::json!({
        "stat": first(|l| l.stat != 0),
        "control": first(|l| l.control != 0),
        "metrics": first(|l| l.metrics),
        "flv": flv,
        "base": base.trim_end_matches('/'),
    })
    .to_string()
}

pub fn serve(conf: &HttpServerConf, loc: &Location, path: &str) -> Response {
    let rest = path[loc.prefix.len().min(path.len())..].trim_start_matches('/');
    match rest {
        "" | "index.html" => {
            // `</` cannot occur in this JSON's strings unescaped by serde
            // in a way that closes the script: prefixes come from the
            // operator's own config, and `<` is escaped below anyway.
            let cfg = page_config(conf, &loc.prefix).replace('<', "\\u003c");
            let page = PAGE.replace("/*SLUICE_CONFIG*/{}", &cfg);
            (
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                page,
            )
                .into_response()
        }
        "sluice-player.js" => (
            [
                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            PLAYER,
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_names_the_locations() {
        let c = crate::config::Config::embedded();
        let cfg: serde_json::Value = serde_json::from_str(&page_config(&c.http[0], "/")).unwrap();
        assert_eq!(cfg["stat"], "/stat");
        assert_eq!(cfg["control"], "/control");
        assert_eq!(cfg["metrics"], "/metrics");
        assert_eq!(cfg["flv"]["live"], "/live");
        assert_eq!(cfg["base"], "");
        assert!(PAGE.contains("/*SLUICE_CONFIG*/{}"));
    }
}
