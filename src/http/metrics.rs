//! Prometheus metrics, served at `GET /metrics` in the text format:
//! requests and latency by route, exposures and events by outcome, and the
//! latency of the store's group-commit flushes.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use actix_web::http::Method;

use prometheus::{Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

/// Most distinct unread event names counted one by one; more are counted
/// together as `(other)`, so a storefront sending random names cannot grow
/// the metrics without bound.
pub const MAX_UNREAD_NAMES: usize = 100;

pub struct Metrics {
    /// Tells this instance's handles apart in [`HANDLES`] (tests run several).
    id: u64,
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    writes: IntCounterVec,
    unread: IntCounterVec,
    deliveries: IntCounterVec,
    evaluations: prometheus::IntCounter,
    backup_time: prometheus::Gauge,
    backup_bytes: prometheus::IntGauge,
    backup_failures: prometheus::IntCounter,
    /// Accepted events per name that no metric reads, since start.
    unread_names: Mutex<BTreeMap<String, u64>>,
    pub flush: Histogram,
}

/// One thread's handle into a (route, method, status) series.
struct Handle {
    metrics: u64,
    route: Box<str>,
    method: &'static str,
    status: u16,
    count: prometheus::IntCounter,
    latency: Histogram,
}

thread_local! {
    /// This thread's handles, found by a short linear scan: routes,
    /// methods and statuses form a small set.
    static HANDLES: RefCell<Vec<Handle>> = const { RefCell::new(Vec::new()) };
}

fn standard_method(m: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    const NAMES: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"];
    STANDARD.iter().position(|s| s == m).map_or("OTHER", |i| NAMES[i])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("offerlab".into()), None).expect("registry");
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route, method and status"),
            &["route", "method", "status"],
        )
        .expect("metric");
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            &["route"],
        )
        .expect("metric");
        let writes = IntCounterVec::new(
            Opts::new("writes_total", "Exposures and events by outcome (accepted, duplicate, rejected)"),
            &["kind", "outcome"],
        )
        .expect("metric");
        let unread = IntCounterVec::new(
            Opts::new(
                "unread_events_total",
                "Accepted events whose name no metric reads (kept, but a typo in the storefront shows here)",
            ),
            &["name"],
        )
        .expect("metric");
        let deliveries = IntCounterVec::new(
            Opts::new(
                "webhook_deliveries_total",
                "Tries of webhook deliveries by webhook and outcome (delivered, retried, refused, given_up)",
            ),
            &["webhook", "outcome"],
        )
        .expect("metric");
        let evaluations = prometheus::IntCounter::new(
            "verdict_evaluations_total",
            "Passes that re-evaluated every running test's verdict for notifications",
        )
        .expect("metric");
        let backup_time = prometheus::Gauge::new(
            "last_backup_timestamp_seconds",
            "When the last good scheduled backup was finished (seconds since 1970; 0: none yet)",
        )
        .expect("metric");
        let backup_bytes =
            prometheus::IntGauge::new("last_backup_bytes", "Size of the last good scheduled backup file")
                .expect("metric");
        let backup_failures = prometheus::IntCounter::new(
            "backup_failures_total",
            "Scheduled backups that failed (the log says why); the service keeps serving",
        )
        .expect("metric");
        let flush = Histogram::with_opts(
            HistogramOpts::new("flush_duration_seconds", "Latency of one group-commit flush to disk")
                .buckets(vec![0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5]),
        )
        .expect("metric");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(writes.clone()),
            Box::new(unread.clone()),
            Box::new(deliveries.clone()),
            Box::new(evaluations.clone()),
            Box::new(backup_time.clone()),
            Box::new(backup_bytes.clone()),
            Box::new(backup_failures.clone()),
            Box::new(flush.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Metrics {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            registry,
            requests,
            latency,
            writes,
            unread,
            deliveries,
            evaluations,
            backup_time,
            backup_bytes,
            backup_failures,
            unread_names: Mutex::new(BTreeMap::new()),
            flush,
        }
    }

    /// Records a good scheduled backup of `bytes`, finished at `at`.
    pub fn observe_backup(&self, at: chrono::DateTime<chrono::Utc>, bytes: u64) {
        self.backup_time.set(at.timestamp_millis() as f64 / 1e3);
        self.backup_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Counts a scheduled backup that failed.
    pub fn observe_backup_failure(&self) {
        self.backup_failures.inc();
    }

    /// Counts one pass over the running tests' verdicts.
    pub fn observe_evaluation(&self) {
        self.evaluations.inc();
    }

    /// Counts one try of a webhook delivery.
    pub fn observe_delivery(&self, webhook: &str, outcome: &str) {
        self.deliveries.with_label_values(&[webhook, outcome]).inc();
    }

    /// Counts one request and observes its latency. The labelled series are
    /// looked up once per thread and (route, method, status), then kept in
    /// [`HANDLES`]: after the first request of a kind, counting takes no
    /// lock and allocates nothing. Methods outside HTTP's standard ones are
    /// counted as `OTHER`, so clients cannot grow the label set.
    pub fn observe_request(&self, route: &str, method: &Method, status: u16, seconds: f64) {
        let method = standard_method(method);
        HANDLES.with_borrow_mut(|handles| {
            let found = handles
                .iter()
                .position(|h| h.metrics == self.id && h.status == status && h.method == method && *h.route == *route);
            let i = found.unwrap_or_else(|| {
                handles.push(Handle {
                    metrics: self.id,
                    route: route.into(),
                    method,
                    status,
                    count: self.requests.with_label_values(&[route, method, &status.to_string()]),
                    latency: self.latency.with_label_values(&[route]),
                });
                handles.len() - 1
            });
            handles[i].count.inc();
            handles[i].latency.observe(seconds);
        });
    }

    /// Counts written items of `kind` ("exposure" or "event") by outcome.
    pub fn count_writes(&self, kind: &str, outcome: &str, n: usize) {
        if n > 0 {
            self.writes.with_label_values(&[kind, outcome]).inc_by(n as u64);
        }
    }

    /// Counts accepted events whose name no metric reads.
    pub fn count_unread_event(&self, name: &str) {
        let mut names = self.unread_names.lock().expect("unread names lock");
        let label = if names.contains_key(name) || names.len() < MAX_UNREAD_NAMES { name } else { "(other)" };
        *names.entry(label.to_owned()).or_default() += 1;
        self.unread.with_label_values(&[label]).inc();
    }

    /// Event names no metric reads, with how many were accepted since start.
    pub fn unread_events(&self) -> Vec<(String, u64)> {
        self.unread_names.lock().expect("unread names lock").iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding");
        String::from_utf8(out).expect("utf-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_route_method_and_status_and_odd_methods_together() {
        let m = Metrics::new();
        let other = Method::from_bytes(b"BREW").unwrap();
        for _ in 0..3 {
            m.observe_request("/v1/assign", &Method::POST, 200, 0.001);
        }
        m.observe_request("/v1/assign", &other, 405, 0.001);
        m.observe_request("/v1/assign", &Method::from_bytes(b"ZAP").unwrap(), 405, 0.001);
        let text = m.render();
        assert!(
            text.contains("offerlab_http_requests_total{method=\"POST\",route=\"/v1/assign\",status=\"200\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("offerlab_http_requests_total{method=\"OTHER\",route=\"/v1/assign\",status=\"405\"} 2"),
            "{text}"
        );
        assert!(text.contains("offerlab_http_request_duration_seconds_count{route=\"/v1/assign\"} 5"), "{text}");
        // Another instance on the same thread keeps its own counts.
        let fresh = Metrics::new();
        fresh.observe_request("/v1/assign", &Method::POST, 200, 0.001);
        assert!(fresh.render().contains("status=\"200\"} 1"));
    }
}
