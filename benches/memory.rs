//! Resident memory of the real server (release build, sled in a temporary
//! folder) holding 1 million exposed visitors and 5 million events, sent
//! over loopback in batches of 1,000 by four clients; beside the same
//! process's resident memory right after start, in the same run, and
//! again after 5 s idle.
//! Run: `cargo bench --bench memory` (OFFERLAB_BENCH_VISITORS changes the
//! visitor count; five events each). To see where the memory goes, start
//! the server under a heap profiler and point the load at it instead:
//! `OFFERLAB_BENCH_URL=http://127.0.0.1:PORT cargo bench --bench memory`
//! (resident memory is then read from `OFFERLAB_BENCH_PID`, if set).
//! With `OFFERLAB_BENCH_SEGMENTS=1` each exposure carries a device and a
//! customer type (four values each), so the store keeps segment rows and
//! the tallies keep the attributes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use offerlab::assignment::{evaluate, Attributes};
use offerlab::experiment::load_dir;
use serde_json::json;

const EVENTS_PER_VISITOR: usize = 5;
const BATCH: usize = 1000;
const CLIENTS: usize = 4;
/// How long the server is left idle before its memory is read again.
const SETTLE: Duration = Duration::from_secs(5);

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    let visitors: usize =
        std::env::var("OFFERLAB_BENCH_VISITORS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let experiments = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments");
    let catalog = load_dir(std::path::Path::new(experiments)).unwrap();
    let exp = catalog.get("cart-protection-copy").unwrap().clone();
    let segments = std::env::var("OFFERLAB_BENCH_SEGMENTS").as_deref() == Ok("1");
    let data = tempfile::tempdir().unwrap();
    let (mut child, url, pid) = match std::env::var("OFFERLAB_BENCH_URL") {
        Ok(url) => (None, url, std::env::var("OFFERLAB_BENCH_PID").ok().and_then(|p| p.parse().ok())),
        Err(_) => {
            let mut child = Command::new(env!("CARGO_BIN_EXE_offerlab"))
                .args(["serve", "--bind", "127.0.0.1:0", "--experiments", experiments, "--data"])
                .arg(data.path())
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
            let url = line.trim().strip_prefix("listening on ").unwrap().to_owned();
            let pid = child.id();
            (Some(child), url, Some(pid))
        }
    };
    let started = pid.map_or((0.0, 0.0), memory);

    let now = Utc::now();
    let began = Instant::now();
    std::thread::scope(|s| {
        for c in 0..CLIENTS {
            let (url, exp, segments) = (&url, &exp, segments);
            s.spawn(move || {
                let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
                let post = |path: &str, body: &serde_json::Value| {
                    let r = http.post(format!("{url}{path}")).json(body).send().unwrap();
                    assert!(r.status().is_success(), "{path}: {}", r.status());
                };
                for first in (c * BATCH..visitors).step_by(CLIENTS * BATCH) {
                    let ids: Vec<usize> = (first..(first + BATCH).min(visitors)).collect();
                    let at = |v: usize| now - chrono::Duration::minutes(((v * 7919) % (60 * 24 * 20)) as i64 + 10);
                    let exposures: Vec<_> = ids
                        .iter()
                        .map(|&v| {
                            let id = format!("v{v}");
                            let a = evaluate(exp, &id, &Attributes::new(), None).unwrap();
                            let attributes = match segments {
                                true => {
                                    let device = ["mobile", "desktop", "tablet", "watch"][v % 4];
                                    let customer = ["first_time", "repeat", "high_value", "wholesale"][v / 4 % 4];
                                    json!({ "device": device, "customer_type": customer })
                                }
                                false => json!({}),
                            };
                            json!({ "visitor_id": id, "experiment": exp.id, "variant": exp.variants[a.variant.get()].key,
                                    "ts": at(v).to_rfc3339(), "attributes": attributes })
                        })
                        .collect();
                    post("/v1/exposures", &json!(exposures));
                    let events: Vec<_> = ids
                        .iter()
                        .flat_map(|&v| {
                            (0..EVENTS_PER_VISITOR).map(move |k| {
                                let name = ["order", "cart_offer_accepted", "upsell_accepted", "order", "return"][k];
                                json!({ "id": format!("v{v}-{k}"), "visitor_id": format!("v{v}"), "name": name,
                                        "value": 30.0, "ts": (at(v) + chrono::Duration::minutes(1)).to_rfc3339() })
                            })
                        })
                        .collect();
                    for chunk in events.chunks(BATCH) {
                        post("/v1/events", &json!(chunk));
                    }
                }
            });
        }
    });
    let loaded = pid.map_or((0.0, 0.0), memory);
    let seconds = began.elapsed().as_secs_f64();
    // What the service holds once idle: the allocator returns what the
    // load freed once it has lain unused for 100 ms (src/main.rs).
    std::thread::sleep(SETTLE);
    let settled = pid.map_or((0.0, 0.0), memory);
    if let Some(child) = child.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    println!("| offerlab serve (sled) | resident (VmRSS) | peak (VmHWM) |");
    println!("|---|---:|---:|");
    println!("| just started (baseline) | {:.0} MiB | {:.0} MiB |", started.0, started.1);
    println!(
        "| {visitors} exposed visitors, {} events | {:.0} MiB | {:.0} MiB |",
        visitors * EVENTS_PER_VISITOR,
        loaded.0,
        loaded.1
    );
    println!("| the same, {} s later, idle | {:.0} MiB | {:.0} MiB |", SETTLE.as_secs(), settled.0, settled.1);
    println!("\nloaded in {seconds:.0} s ({:.0} items/s)", (visitors * (EVENTS_PER_VISITOR + 1)) as f64 / seconds);
}
