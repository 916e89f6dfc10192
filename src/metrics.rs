//! Prometheus metrics, served at `GET /metrics` in the text format:
//! requests and latency by route, exposures and events by outcome, and the
//! latency of the store's group-commit flushes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus::{Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

/// Most distinct unread event names counted one by one; more are counted
/// together as `(other)`, so a storefront sending random names cannot grow
/// the metrics without bound.
pub const MAX_UNREAD_NAMES: usize = 100;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    writes: IntCounterVec,
    unread: IntCounterVec,
    /// Accepted events per name that no metric reads, since start.
    unread_names: Mutex<BTreeMap<String, u64>>,
    pub flush: Histogram,
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
            Box::new(flush.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        Metrics { registry, requests, latency, writes, unread, unread_names: Mutex::new(BTreeMap::new()), flush }
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests.with_label_values(&[route, method, &status.to_string()]).inc();
        self.latency.with_label_values(&[route]).observe(seconds);
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
