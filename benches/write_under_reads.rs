//! Write latency on PostgreSQL while reports are read: one replica (in
//! process, a throwaway PostgreSQL this bench starts), 4 clients posting
//! single events one after another, first alone, then beside 16 clients
//! reading the cart test's report in a loop. Each write's latency is kept;
//! the table gives p50 and p99, the run without readers as the baseline.
//! Run: `cargo bench --bench write_under_reads`.

#[path = "support/exposed.rs"]
mod exposed;
#[allow(dead_code)]
#[path = "../tests/common/postgres.rs"]
mod postgres;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use offerlab::config::Settings;
use offerlab::http::startup::Application;
use serde_json::json;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const WRITERS: usize = 4;
const READERS: usize = 16;
const VISITORS: usize = 5_000;
const RUN: Duration = Duration::from_secs(10);

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// Latencies (seconds) of every write of `RUN`, with `readers` report
/// readers beside the writers.
async fn writes(url: &str, readers: usize, round: usize) -> Vec<f64> {
    let client = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let reading: Vec<_> = (0..readers)
        .map(|_| {
            let (client, url, stop) = (client.clone(), url.to_owned(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = client.get(format!("{url}/api/v1/experiments/cart-protection-copy/report")).send().await;
                    let _ = r.map(|r| r.status());
                }
            })
        })
        .collect();
    let start = Instant::now();
    let writing: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0;
                while start.elapsed() < RUN {
                    i += 1;
                    let event = json!({ "id": format!("r{round}-w{w}-{i}"), "visitor_id": format!("v{}", (w * 7919 + i) % VISITORS),
                                        "name": "order", "value": 42.5 });
                    let sent = Instant::now();
                    let r = client.post(format!("{url}/v1/events")).json(&event).send().await.unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    latencies.push(sent.elapsed().as_secs_f64());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in writing {
        all.extend(w.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    for r in reading {
        r.await.unwrap();
    }
    all.sort_by(f64::total_cmp);
    all
}

fn main() {
    let Some(pg) = postgres::Postgres::start("the write-under-reads bench") else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let mut settings = Settings::new(
            "127.0.0.1:0".parse().unwrap(),
            root.path().join("data"),
            concat!(env!("CARGO_MANIFEST_DIR"), "/experiments").into(),
        );
        settings.workers = Some(4);
        settings.store = Some(pg.database());
        let app = Application::build(&settings).await.unwrap();
        let url = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let server = tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::new();
        exposed::expose_cart_visitors(&client, &url, &settings.experiments, VISITORS, false).await;
        let alone = writes(&url, 0, 0).await;
        let beside = writes(&url, READERS, 1).await;
        let (p50, p99) = (quantile(&alone, 0.5), quantile(&alone, 0.99));
        println!("| measurement | writes | p50 (s) | ratio | p99 (s) | ratio |");
        println!("|---|---:|---:|---:|---:|---:|");
        println!("| {WRITERS} writers alone (baseline) | {} | {p50:.4} | 1.00 | {p99:.4} | 1.00 |", alone.len());
        let (b50, b99) = (quantile(&beside, 0.5), quantile(&beside, 0.99));
        println!(
            "| {WRITERS} writers beside {READERS} report readers | {} | {b50:.4} | {:.2} | {b99:.4} | {:.2} |",
            beside.len(),
            b50 / p50,
            b99 / p99
        );
        handle.stop(true).await;
        server.await.unwrap().unwrap();
    });
}
