//! The cost of one event must not grow with the visitor's history: one
//! visitor (exposed to the cart test) sends 50,000 events in requests of
//! 100 through the store's real write path; the mean latency per event of
//! events 49,001-50,000 is compared with that of events 1-1,000 in the
//! same run. Run: `cargo bench --bench visitor_history`
//! (`OFFERLAB_BENCH_EVENTS=10000` for a shorter history).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use offerlab::assignment::{evaluate, Attributes};
use offerlab::experiment::load_dir;
use offerlab::records::{Event, Exposure};
use offerlab::store::{SledStore, Store, Write};

const PER_REQUEST: usize = 100;

fn main() {
    let events: usize = std::env::var("OFFERLAB_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let catalog = Arc::new(load_dir(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments"))).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(SledStore::open(dir.path())).unwrap();
    let exp = catalog.get("cart-protection-copy").unwrap();
    let a = evaluate(exp, "bot", &Attributes::new(), None).unwrap();
    let bot: offerlab::ids::VisitorId = "bot".parse().unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 10, 0, 0, 0).unwrap();
    let exposure = Exposure {
        visitor: bot.clone(),
        experiment: exp.id.clone(),
        variant: a.variant,
        ts: t0,
        phase: 1,
        attributes: Default::default(),
    };
    rt.block_on(store.record(catalog.clone(), vec![Write::Exposure(exposure)])).unwrap();
    let names = ["order", "cart_offer_accepted", "page_view", "return"];
    let mut per_request = Vec::with_capacity(events / PER_REQUEST);
    for r in 0..events / PER_REQUEST {
        let writes = (0..PER_REQUEST)
            .map(|k| {
                let i = r * PER_REQUEST + k;
                Write::Event(Event {
                    id: format!("bot-{i}").parse().unwrap(),
                    visitor: bot.clone(),
                    name: names[i % names.len()].parse().unwrap(),
                    value: 10.0,
                    ts: t0 + chrono::Duration::seconds(i as i64),
                })
            })
            .collect();
        let started = Instant::now();
        rt.block_on(store.record(catalog.clone(), writes)).unwrap();
        per_request.push(started.elapsed());
    }
    let per_event = |requests: &[Duration]| {
        requests.iter().sum::<Duration>().as_secs_f64() * 1e6 / (requests.len() * PER_REQUEST) as f64
    };
    let k = 1000 / PER_REQUEST;
    let first = per_event(&per_request[..k]);
    let last = per_event(&per_request[per_request.len() - k..]);
    println!("| events of one visitor | µs per event | ratio |");
    println!("|---|---:|---:|");
    println!("| 1-1,000 (baseline) | {first:.1} | 1.00 |");
    println!("| {}-{events} | {last:.1} | {:.2} |", events - 999, last / first);
}
