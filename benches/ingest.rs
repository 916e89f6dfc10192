//! Ingest throughput over loopback: events per second through
//! `POST /v1/events` (batches of 100, and single events) with 64 concurrent
//! clients, beside a raw sled insert-and-flush loop on the same disk in the
//! same run; then the same on PostgreSQL (a throwaway server this bench
//! starts) with one replica and with two sharing the clients, the two
//! both inside this process and as two `offerlab serve` processes, as
//! replicas run. Events go to 20,000 exposed visitors, so each is
//! attributed.
//! Run: `cargo bench --bench ingest`; with `OFFERLAB_BENCH_ONLY=processes`,
//! only the rows of replicas as processes (whose binary
//! `OFFERLAB_BENCH_BIN` may name, with the definitions of
//! `OFFERLAB_BENCH_EXPERIMENTS` for an older version that would refuse
//! today's); with `OFFERLAB_BENCH_ONLY=segments`, sled
//! with the visitors' exposures carrying two segment attributes (four
//! values each) and without, alternating, three runs of each. Every event
//! is an order of 42.5 unless `OFFERLAB_BENCH_SHAPE=shop` sends a shop's
//! mix ([`shop_event`]). `OFFERLAB_BENCH_PGSTATS=1` prints, after each
//! PostgreSQL row, where its statements spent their time
//! (`pg_stat_statements`, loaded for it) and what each table took
//! (`pg_stat_user_tables`: inserts, updates, heap-only updates, deletes,
//! size).

#[path = "support/exposed.rs"]
mod exposed;
#[allow(dead_code)]
#[path = "../tests/common/postgres.rs"]
mod postgres;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use offerlab::config::Settings;
use offerlab::http::startup::Application;
use serde_json::json;

/// The allocator the `offerlab` binary runs with, so the server measured
/// in process allocates as it does when served.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CLIENTS: usize = 64;
const VISITORS: usize = 20_000;
const RUN: Duration = Duration::from_secs(5);

/// Raw sled: insert `batch` keys, flush (and `fdatasync` the data file when
/// `durable`), repeat; keys per second.
fn raw_sled(batch: usize, durable: bool) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let tree = db.open_tree("raw").unwrap();
    let file = std::fs::File::open(dir.path().join("db")).unwrap();
    let value = vec![7u8; 120];
    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed() < RUN {
        for _ in 0..batch {
            n += 1;
            tree.insert(n.to_be_bytes(), value.clone()).unwrap();
        }
        db.flush().unwrap();
        if durable {
            file.sync_data().unwrap();
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// A server on a runtime of its own, as `offerlab serve` runs one (the
/// load generator's tasks do not share it): its URL, a handle that stops
/// it, and its thread, which ends once the store is closed.
fn serve(settings: &Settings) -> (String, ServerHandle, std::thread::JoinHandle<()>) {
    let settings = settings.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        tokio::runtime::Runtime::new().unwrap().block_on(async move {
            let app = Application::build(&settings).await.unwrap();
            tx.send((format!("http://127.0.0.1:{}", app.port()), app.handle())).unwrap();
            app.run_until_stopped().await.unwrap();
        });
    });
    let (url, handle) = rx.recv().unwrap();
    (url, handle, thread)
}

/// A replica as its own process: `offerlab serve` on `store`, its URL once
/// it says where it listens; killed when dropped. The binary is this
/// build's, or `OFFERLAB_BENCH_BIN` (another version's, to compare).
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve_process(settings: &Settings) -> (String, Process) {
    use std::io::BufRead;
    let store = settings.store.as_deref().expect("processes share a PostgreSQL store");
    let bin = std::env::var_os("OFFERLAB_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_offerlab").into());
    let mut child = std::process::Command::new(bin)
        .args(["serve", "--bind", "127.0.0.1:0", "--store", store, "--body-limit", &settings.body_limit.to_string()])
        .arg("--experiments")
        .arg(&settings.experiments)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("offerlab serve starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("listening on ").expect("the address line").to_owned();
    (url, Process(child))
}

/// Where the replicas run: threads of this process, or processes.
#[derive(Clone, Copy, PartialEq)]
enum Replicas {
    InProcess(usize),
    Processes(usize),
}

/// Event `i` of client `c` in a shop's mix (`OFFERLAB_BENCH_SHAPE=shop`):
/// one in ten an order, of a price with a long tail (from 20 to 200, one
/// in fifty a wholesale order of 2,500), the rest accepted offers, in the
/// cart and elsewhere. Without it, every event is an order of 42.5: the
/// heaviest load on a capped revenue metric, whose every visitor then
/// moves with each event, all by the same step.
fn shop_event(c: usize, i: usize) -> (&'static str, f64) {
    let h = (c * 7919 + i * 104_729) % 1_000;
    match h % 10 {
        0 if h.is_multiple_of(500) => ("order", 2_500.0),
        0 => ("order", 20.0 + (h / 10) as f64 * (h / 10) as f64 / 55.0),
        1..=5 => ("cart_offer_accepted", 1.0),
        _ => ("upsell_accepted", 1.0),
    }
}

/// Events per second through the API with `batch` events per request, on
/// sled, or on servers sharing the PostgreSQL at `store`.
/// With `segments`, the visitors' exposures carry a device and a customer
/// type, so each event also adds to their segment rows.
async fn api(batch: usize, store: Option<&str>, replicas: Replicas, segments: bool) -> f64 {
    let root = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(
        "127.0.0.1:0".parse().unwrap(),
        root.path().join("data"),
        std::env::var_os("OFFERLAB_BENCH_EXPERIMENTS")
            .map_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/experiments").into(), Into::into),
    );
    settings.body_limit = 4 << 20;
    settings.store = store.map(str::to_owned);
    let mut urls = Vec::new();
    let mut servers = Vec::new();
    let mut processes = Vec::new();
    match replicas {
        Replicas::InProcess(n) => {
            for _ in 0..n {
                let (url, handle, thread) = serve(&settings);
                urls.push(url);
                servers.push((handle, thread));
            }
        }
        Replicas::Processes(n) => {
            for _ in 0..n {
                let (url, process) = serve_process(&settings);
                urls.push(url);
                processes.push(process);
            }
        }
    }
    let url = urls[0].clone();
    let client = reqwest::Client::new();
    // 20,000 visitors exposed to the cart test, so events are attributed.
    exposed::expose_cart_visitors(&client, &url, &settings.experiments, VISITORS, segments).await;
    let sent = Arc::new(AtomicUsize::new(0));
    let shop = std::env::var("OFFERLAB_BENCH_SHAPE").as_deref() == Ok("shop");
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, url, sent) = (client.clone(), urls[c % urls.len()].clone(), sent.clone());
            tokio::spawn(async move {
                let mut i = 0usize;
                while start.elapsed() < RUN {
                    let events: Vec<_> = (0..batch)
                        .map(|k| {
                            i += 1;
                            let (name, value) = if shop { shop_event(c, i) } else { ("order", 42.5) };
                            json!({ "id": format!("c{c}-{i}"), "visitor_id": format!("v{}", (c * 7919 + i + k) % VISITORS),
                                    "name": name, "value": value })
                        })
                        .collect();
                    let r = client.post(format!("{url}/v1/events")).json(&events).send().await.unwrap();
                    assert!(r.status().is_success());
                    sent.fetch_add(batch, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rate = sent.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    for (handle, thread) in servers {
        handle.stop(true).await;
        // The server closes and flushes its store before the folder goes away.
        tokio::task::spawn_blocking(move || thread.join().unwrap()).await.unwrap();
    }
    drop(processes);
    drop(root);
    rate
}

/// Where a run's statements spent their time (`pg_stat_statements`):
/// total and mean milliseconds, calls and rows of the 16 slowest in all.
const STATEMENT_TIMES: &str = "SELECT round(total_exec_time::numeric), calls, rows, round(mean_exec_time::numeric, 3),
        left(regexp_replace(query, '\\s+', ' ', 'g'), 90)
    FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 16";

fn main() {
    let only_processes = std::env::var("OFFERLAB_BENCH_ONLY").as_deref() == Ok("processes");
    let rt = tokio::runtime::Runtime::new().unwrap();
    if std::env::var("OFFERLAB_BENCH_ONLY").as_deref() == Ok("segments") {
        return segments(&rt);
    }
    let raw_single = raw_sled(1, false);
    let mut rows = vec![("raw sled: insert + flush, one key per flush (baseline)".to_owned(), raw_single)];
    if !only_processes {
        rows.push(("raw sled: insert + flush + fdatasync, one key each".to_owned(), raw_sled(1, true)));
        rows.push(("raw sled: 100 inserts per flush + fdatasync".to_owned(), raw_sled(100, true)));
        for batch in [1, 100] {
            let rate = rt.block_on(api(batch, None, Replicas::InProcess(1), false));
            rows.push((format!("sled: POST /v1/events, {}, {CLIENTS} clients", what(batch)), rate));
        }
    }
    if let Some(pg) = postgres::Postgres::start("the PostgreSQL rows of the ingest bench") {
        use Replicas::{InProcess, Processes};
        let pgstats = std::env::var("OFFERLAB_BENCH_PGSTATS").is_ok();
        if pgstats {
            pg.restart_with("shared_preload_libraries = 'pg_stat_statements'");
        }
        let configs = [
            (1, InProcess(1)),
            (100, InProcess(1)),
            (1, InProcess(2)),
            (100, InProcess(2)),
            (1, Processes(2)),
            (100, Processes(2)),
        ];
        for (batch, replicas) in configs {
            if only_processes && matches!(replicas, InProcess(_)) {
                continue;
            }
            let db = pg.database();
            let name = db.rsplit('/').next().unwrap();
            if pgstats {
                pg.sql(name, "CREATE EXTENSION pg_stat_statements");
                pg.sql(name, "SELECT pg_stat_statements_reset()");
            }
            let rate = rt.block_on(api(batch, Some(&db), replicas, false));
            if pgstats {
                // A backend publishes its counts at most once a second.
                std::thread::sleep(Duration::from_secs(2));
                println!("{}", pg.sql(name, STATEMENT_TIMES));
                println!("{}", pg.sql(name, "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, pg_relation_size(relid) FROM pg_stat_user_tables ORDER BY relname"));
            }
            let who = match replicas {
                InProcess(n) => format!("{n} replica(s)"),
                Processes(n) => format!("{n} replicas as `offerlab serve` processes"),
            };
            rows.push((format!("PostgreSQL, {who}: POST /v1/events, {}, {CLIENTS} clients", what(batch)), rate));
        }
    }
    println!("| measurement | events/s | ratio |");
    println!("|---|---:|---:|");
    for (measurement, rate) in rows {
        println!("| {measurement} | {rate:.0} | {:.2} |", rate / raw_single);
    }
}

/// sled ingest with and without segment attributes, alternating (without
/// first in even rounds, with first in odd ones), three runs of each.
fn segments(rt: &tokio::runtime::Runtime) {
    println!("| measurement | without segments, events/s | with two segments, events/s | ratio of medians |");
    println!("|---|---|---|---:|");
    for batch in [1, 100] {
        let (mut without, mut with) = (Vec::new(), Vec::new());
        for round in 0..3 {
            for segments in [round % 2 == 1, round % 2 == 0] {
                let rate = rt.block_on(api(batch, None, Replicas::InProcess(1), segments));
                if segments {
                    with.push(rate)
                } else {
                    without.push(rate)
                }
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let show = |v: &[f64]| v.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
        let ratio = median(&mut with) / median(&mut without);
        println!(
            "| sled: POST /v1/events, {}, {CLIENTS} clients | {} | {} | {ratio:.2} |",
            what(batch),
            show(&without),
            show(&with)
        );
    }
}

/// How many events a request carries, in words.
fn what(batch: usize) -> String {
    if batch == 1 {
        "single event".to_owned()
    } else {
        format!("batches of {batch}")
    }
}
