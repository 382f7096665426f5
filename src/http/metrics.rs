//! `/metrics`: gauges read from the node when scraped, then the Prometheus
//! text of every metric.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use metrics::gauge;

use crate::node::Shared;
use crate::stats::Role;

/// Refreshes the gauges that are read rather than counted: connections by
/// role, live streams, uptime, the cluster's view, and each module's own.
fn refresh(shared: &Shared) {
    let conns = shared.stats.connections();
    for (role, label) in [
        (Role::Publisher, "publisher"),
        (Role::Player, "player"),
        (Role::None, "other"),
    ] {
        let n = conns
            .iter()
            .filter(|c| c.info.role == role && !c.info.relay)
            .count();
        gauge!("sluice_connections", "role" => label).set(n as f64);
    }
    let live = shared
        .registry
        .streams()
        .iter()
        .filter(|(_, s)| s.is_publishing())
        .count();
    gauge!("sluice_streams").set(live as f64);
    gauge!("sluice_uptime_seconds").set(shared.stats.started.elapsed().as_secs_f64());
    if let Some(c) = &shared.cluster {
        let v = c.view();
        gauge!("sluice_cluster_registry_up").set(if v.healthy { 1.0 } else { 0.0 });
        gauge!("sluice_cluster_nodes").set(v.nodes.len() as f64);
    }
    shared.modules.metrics();
}

pub fn serve(shared: &Shared) -> Response {
    refresh(shared);
    match crate::telemetry::render() {
        Some(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable\n",
        )
            .into_response(),
    }
}
