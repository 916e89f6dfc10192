//! Report latency at 10,000 and at 10 million recorded events: a report
//! reads per-day aggregates only, so the ratio should be near 1.
//! Events go through the store's real write path in batches of 1,000.
//! Run: `cargo bench --bench report_scale` (OFFERLAB_BENCH_EVENTS changes
//! the large count).

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, Utc};
use offerlab::analysis::analyze;
use offerlab::assignment::{evaluate, Attributes};
use offerlab::experiment::load_dir;
use offerlab::store::{SledStore, Store, Write};
use offerlab::tracking::{Event, Exposure};

const EVENTS_PER_VISITOR: u64 = 5;

fn main() {
    let large: u64 = std::env::var("OFFERLAB_BENCH_EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let catalog =
        Arc::new(load_dir(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments"))).unwrap());
    let exp = catalog.get("cart-protection-copy").unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let now = Utc::now();
    let mut recorded = 0u64;
    let mut visitor = 0u64;
    let mut results = Vec::new();
    let started = Instant::now();
    for target in [10_000, large] {
        while recorded < target {
            let mut batch = Vec::with_capacity(1000);
            while batch.len() < 1000 {
                visitor += 1;
                let v = format!("v{visitor}");
                let a = evaluate(&exp, &v, &Attributes::new(), None).unwrap();
                // Spread over the same 20 days at every size, so both reports read as many days.
                let ts = now - Duration::minutes(((visitor * 7919) % (60 * 24 * 20)) as i64);
                batch.push(Write::Exposure(Exposure {
                    visitor: v.clone(),
                    experiment: exp.id.to_string(),
                    variant: a.variant as u16,
                    ts,
                    phase: 1,
                }));
                for k in 0..EVENTS_PER_VISITOR {
                    let name = ["order", "cart_offer_accepted", "upsell_accepted", "order", "return"][k as usize];
                    batch.push(Write::Event(Event {
                        id: format!("{v}-{k}"),
                        visitor: v.clone(),
                        name: name.into(),
                        value: 30.0,
                        ts: ts + Duration::minutes(1),
                    }));
                }
                recorded += EVENTS_PER_VISITOR;
            }
            rt.block_on(store.record(catalog.clone(), batch)).unwrap();
        }
        // Median of 50 reports, each reading the aggregates from sled.
        let mut times: Vec<f64> = (0..50)
            .map(|_| {
                let t = Instant::now();
                let rows = store.aggregate_rows(&exp).unwrap();
                std::hint::black_box(analyze(&exp, &catalog, &rows, exp.local_day(now)));
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        results.push((recorded, times[times.len() / 2]));
        eprintln!("{recorded} events recorded after {:.0} s", started.elapsed().as_secs_f64());
    }
    println!("| recorded events | report latency (median of 50) | ratio |");
    println!("|---:|---:|---:|");
    for (n, ms) in &results {
        println!("| {n} | {ms:.2} ms | {:.2} |", ms / results[0].1);
    }
    println!(
        "\ningest for this run: {:.0} writes/s (batches of 1,000 through the store)",
        (recorded + recorded / EVENTS_PER_VISITOR) as f64 / started.elapsed().as_secs_f64()
    );
}
