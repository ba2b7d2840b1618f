//! Prometheus metrics served on the admin listener. Every handle the request path touches is a
//! plain atomic (no lock, no label lookup per request): the per-status-class counters are
//! resolved once at start, and the latency histogram is lock-free.
//!
//! The histogram is hand-written (prometheus-client encodes it) because `prometheus-client`'s
//! `Histogram` takes a lock on every observation, on the request path of every request; ours is
//! an array of atomic counters with the same Prometheus output.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// Why a request to the upstream failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamError {
    Connect,
    Timeout,
    Other,
    /// No upstream connection came free within `upstream.queue_timeout`.
    Busy,
}

/// All metrics, shared by every task.
pub(crate) struct Metrics {
    registry: Registry,
    by_class: [Counter; 5],
    latency: LatencyHistogram,
    open_connections: Gauge,
    open_tunnels: Gauge,
    handshake_failures: Counter,
    upstream_errors: [Counter; 4],
    upstream_connections: Gauge,
    upstream_queued: Counter,
    cert_expiry: Gauge<i64, AtomicI64>,
    cert_reload_failures: Counter,
    send_timeouts: Counter,
    over_client_cap: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub(crate) fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("vigie");
        let requests = Family::<ClassLabel, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by status class",
            requests.clone(),
        );
        let by_class = ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .map(|class| requests.get_or_create(&ClassLabel { class }).clone());
        let latency = LatencyHistogram::default();
        registry.register_with_unit(
            "request_duration",
            "Time from request head to the end of the response body",
            Unit::Seconds,
            latency.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections currently open on the HTTPS listener",
            open_connections.clone(),
        );
        let open_tunnels = Gauge::default();
        registry.register(
            "open_websocket_tunnels",
            "WebSocket tunnels currently open (each also holds one client connection)",
            open_tunnels.clone(),
        );
        let handshake_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            handshake_failures.clone(),
        );
        let upstream = Family::<KindLabel, Counter>::default();
        registry.register(
            "upstream_errors",
            "Requests the upstream did not answer, by cause",
            upstream.clone(),
        );
        let upstream_errors = ["connect", "timeout", "other", "busy"]
            .map(|kind| upstream.get_or_create(&KindLabel { kind }).clone());
        let upstream_connections = Gauge::default();
        registry.register(
            "upstream_connections",
            "Connections to the upstream currently open (at most upstream.max_connections)",
            upstream_connections.clone(),
        );
        let upstream_queued = Counter::default();
        registry.register(
            "upstream_queued",
            "Requests that found every upstream connection in use and waited for one",
            upstream_queued.clone(),
        );
        let cert_expiry = Gauge::<i64, AtomicI64>::default();
        registry.register_with_unit(
            "certificate_expiry",
            "Seconds until the served certificate expires",
            Unit::Seconds,
            cert_expiry.clone(),
        );
        let cert_reload_failures = Counter::default();
        registry.register(
            "certificate_reload_failures",
            "Certificate reloads refused because the new files were invalid",
            cert_reload_failures.clone(),
        );
        let send_timeouts = Counter::default();
        registry.register(
            "send_timeouts",
            "Client connections closed because a response waited limits.send_timeout for the client to read it",
            send_timeouts.clone(),
        );
        let over_client_cap = Counter::default();
        registry.register(
            "connections_over_client_cap",
            "New connections closed because their client address held limits.max_connections_per_client",
            over_client_cap.clone(),
        );
        Arc::new(Metrics {
            registry,
            by_class,
            latency,
            open_connections,
            open_tunnels,
            handshake_failures,
            upstream_errors,
            upstream_connections,
            upstream_queued,
            cert_expiry,
            cert_reload_failures,
            send_timeouts,
            over_client_cap,
        })
    }

    /// A new connection was closed: its client held its share of connections.
    pub(crate) fn client_over_cap(&self) {
        self.over_client_cap.inc();
    }

    /// A connection was closed because its client stopped reading.
    pub(crate) fn send_timed_out(&self) {
        self.send_timeouts.inc();
    }

    /// Records a finished request.
    pub(crate) fn request_done(&self, status: u16, elapsed: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].inc();
        self.latency.observe(elapsed);
    }

    pub(crate) fn upstream_error(&self, kind: UpstreamError) {
        self.upstream_errors[kind as usize].inc();
    }

    pub(crate) fn upstream_connection_opened(&self) {
        self.upstream_connections.inc();
    }

    pub(crate) fn upstream_connection_closed(&self) {
        self.upstream_connections.dec();
    }

    pub(crate) fn upstream_queued(&self) {
        self.upstream_queued.inc();
    }

    pub(crate) fn connection_opened(&self) {
        self.open_connections.inc();
    }

    pub(crate) fn connection_closed(&self) {
        self.open_connections.dec();
    }

    /// Counts a WebSocket tunnel as open until the returned value is dropped.
    pub(crate) fn tunnel_opened(&self) -> OpenTunnel {
        self.open_tunnels.inc();
        OpenTunnel(self.open_tunnels.clone())
    }

    pub(crate) fn handshake_failed(&self) {
        self.handshake_failures.inc();
    }

    pub(crate) fn set_cert_expiry(&self, not_after_unix: i64) {
        self.cert_expiry
            .set(not_after_unix - crate::host::unix_now_i64());
    }

    pub(crate) fn cert_reload_failed(&self) {
        self.cert_reload_failures.inc();
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// An open WebSocket tunnel, counted until dropped.
#[derive(Debug)]
pub(crate) struct OpenTunnel(Gauge);

impl Drop for OpenTunnel {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Upper bounds in seconds: from a cached slice (~1 ms) to a large study download (minutes).
const BOUNDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];

/// A histogram made of atomics, so observing never takes a lock.
#[derive(Clone, Default)]
struct LatencyHistogram(Arc<HistInner>);

#[derive(Default)]
struct HistInner {
    /// One slot per bound plus +Inf.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LatencyHistogram")
    }
}

impl LatencyHistogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BOUNDS.len());
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.0
            .sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = BOUNDS
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .zip(self.0.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        // The count is the sum of the buckets read just above, so the exposition stays
        // consistent even while requests are being recorded.
        let count = buckets.iter().map(|(_, c)| c).sum();
        let sum = self.0.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family() {
        let m = Metrics::new();
        m.request_done(200, Duration::from_millis(3));
        m.request_done(502, Duration::from_secs(2));
        m.upstream_error(UpstreamError::Timeout);
        m.upstream_error(UpstreamError::Busy);
        m.connection_opened();
        let tunnel = m.tunnel_opened();
        let _still_open = m.tunnel_opened();
        drop(tunnel);
        m.upstream_connection_opened();
        m.upstream_queued();
        let text = m.render();
        for want in [
            "vigie_requests_total{class=\"2xx\"} 1",
            "vigie_requests_total{class=\"5xx\"} 1",
            "vigie_request_duration_seconds_bucket{le=\"0.005\"} 1",
            "vigie_request_duration_seconds_count 2",
            "vigie_upstream_errors_total{kind=\"timeout\"} 1",
            "vigie_upstream_errors_total{kind=\"busy\"} 1",
            "vigie_upstream_connections 1",
            "vigie_upstream_queued_total 1",
            "vigie_open_connections 1",
            "vigie_open_websocket_tunnels 1",
            "vigie_certificate_expiry_seconds",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }
}
