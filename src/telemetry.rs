//! Prometheus metrics (`location /metrics { rtmp_metrics on; }`), through
//! the `metrics` facade and `metrics-exporter-prometheus`.
//!
//! Nothing here runs per frame or per read. Byte and drop counters move by
//! the delta a connection accumulated since its last once-a-second tick;
//! gauges (connections by role, streams) are read from the stats table and
//! the registry when `/metrics` is scraped; event counters (notify calls,
//! Go Away, drains, closes by cause) move when the event happens.

use std::sync::OnceLock;

use metrics::{counter, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Notify latency buckets (seconds): hooks answer in milliseconds when
/// healthy and hit `notify_timeout` (default 3 s... 30 s) when not.
const NOTIFY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the process-wide recorder once. Safe to call from every server
/// in a process (tests run several): the first call wins.
pub fn init() {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("sluice_notify_duration_seconds".into()),
                NOTIFY_BUCKETS,
            )
            .ok()?;
        let handle = builder.install_recorder().ok()?;
        describe();
        Some(handle)
    });
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!("sluice_connections", "Open RTMP connections by role");
    describe_gauge!("sluice_streams", "Live streams with a publisher");
    describe_gauge!("sluice_uptime_seconds", Unit::Seconds, "Process uptime");
    describe_counter!(
        "sluice_connections_accepted_total",
        "RTMP connections accepted"
    );
    describe_counter!(
        "sluice_connections_closed_total",
        "RTMP connections closed, by cause (handshake and protocol errors among them)"
    );
    describe_counter!(
        "sluice_bytes_received_total",
        Unit::Bytes,
        "Bytes read from RTMP clients"
    );
    describe_counter!(
        "sluice_bytes_sent_total",
        Unit::Bytes,
        "Bytes written to RTMP clients"
    );
    describe_counter!(
        "sluice_frames_dropped_total",
        "Frames skipped for slow players"
    );
    describe_counter!(
        "sluice_notify_calls_total",
        "HTTP notifications by call and result"
    );
    describe_histogram!(
        "sluice_notify_duration_seconds",
        Unit::Seconds,
        "HTTP notification latency by call"
    );
    describe_counter!(
        "sluice_goaway_sent_total",
        "Go Away signals sent, by form (type32, reconnect)"
    );
    describe_counter!("sluice_drains_total", "Graceful drains started");
    describe_counter!(
        "sluice_direct_evictions_total",
        "Players handed back from the publisher's writes to their own task (socket full, or a frame that changes what they are sent)"
    );
}

/// Renders the Prometheus text (the caller refreshes gauges first).
pub fn render() -> Option<String> {
    let handle = HANDLE.get()?.as_ref()?;
    Some(handle.render())
}

/// A connection's counters moved by these amounts since its last report.
pub fn traffic(bytes_in: u64, bytes_out: u64, dropped: u64) {
    if bytes_in > 0 {
        counter!("sluice_bytes_received_total").increment(bytes_in);
    }
    if bytes_out > 0 {
        counter!("sluice_bytes_sent_total").increment(bytes_out);
    }
    if dropped > 0 {
        counter!("sluice_frames_dropped_total").increment(dropped);
    }
}

/// The publisher handed a player back to its own task (`live::direct`).
pub fn direct_evicted() {
    counter!("sluice_direct_evictions_total").increment(1);
}

pub fn accepted() {
    counter!("sluice_connections_accepted_total").increment(1);
}

/// Why a connection closed, as a metrics label. Each close site names its
/// cause when it closes, next to the log text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The peer or the server ended it the ordinary way.
    Normal,
    Handshake,
    /// Connected and left before the handshake ended: port probes and
    /// health checks, kept apart from handshake errors.
    HandshakeAborted,
    HandshakeTimeout,
    Protocol,
    BadMedia,
    /// Refused by access rules, a notification, or an unknown app/stream.
    Rejected,
    Timeout,
    SlowPlayer,
    Io,
    Control,
    Takeover,
    /// Handed over to a new process (binary upgrade).
    Handover,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Normal => "normal",
            Cause::Handshake => "handshake",
            Cause::HandshakeAborted => "handshake_aborted",
            Cause::HandshakeTimeout => "handshake_timeout",
            Cause::Protocol => "protocol",
            Cause::BadMedia => "bad_media",
            Cause::Rejected => "rejected",
            Cause::Timeout => "timeout",
            Cause::SlowPlayer => "slow_player",
            Cause::Io => "io",
            Cause::Control => "control",
            Cause::Takeover => "takeover",
            Cause::Handover => "handover",
        }
    }
}

/// A connection closed.
pub fn closed(cause: Cause) {
    counter!("sluice_connections_closed_total", "cause" => cause.as_str()).increment(1);
}

/// A notification finished: `result` is `2xx`, `3xx`, `4xx`, `5xx`,
/// `timeout` or `error`.
pub fn notify(call: &'static str, result: &'static str, secs: f64) {
    counter!("sluice_notify_calls_total", "call" => call, "result" => result).increment(1);
    histogram!("sluice_notify_duration_seconds", "call" => call).record(secs);
}

pub fn go_away(form: &'static str) {
    counter!("sluice_goaway_sent_total", "form" => form).increment(1);
}

pub fn drain_started() {
    counter!("sluice_drains_total").increment(1);
}
