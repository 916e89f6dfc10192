//! Replicas on one PostgreSQL, black-box over HTTP: a simulated storefront
//! is recorded against a sled instance, and the recorded traffic replayed,
//! split between two replicas, gives the same report field by field; a
//! replica killed with SIGKILL under load loses and doubles nothing while
//! the other keeps serving; a PostgreSQL restart gives 503s, then the
//! service takes writes again by itself. Each test starts its own
//! PostgreSQL and says loudly when it cannot.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::{
    assert_same_json, assert_same_reports, reports, serve_postgres_with, spawn_server_with, Server, AT_NOW, EXPERIMENTS,
};

use serde_json::Value;

/// One recorded request: its path and its items.
type Chunk = (String, Vec<Value>);

/// Plays two simulated weeks against `server` (with returning customers,
/// whose earlier orders are CUPED covariates, and wholesale orders to
/// cap), recording the traffic in `file`; the recorded batches, cut into
/// chunks of `size` items.
fn record_traffic(server: &Server, file: &Path, seed: u64, size: usize) -> Vec<Chunk> {
    let (seed, record) = (seed.to_string(), file.display().to_string());
    let summary = common::simulate(
        &server.url,
        &[
            "--days",
            "14",
            "--visitors-per-day",
            "250",
            "--seed",
            &seed,
            "--record",
            &record,
            "--outliers",
            "--returning",
            "0.3",
        ],
    );
    assert_eq!(summary.rejected, 0, "{summary:?}");
    let mut out = Vec::new();
    for line in std::fs::read_to_string(file).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let path = v["path"].as_str().unwrap().to_owned();
        for items in v["body"].as_array().unwrap().chunks(size) {
            out.push((path.clone(), items.to_vec()));
        }
    }
    assert!(out.len() > 50, "enough traffic to split: {} chunks", out.len());
    out
}

/// Sends every chunk, over `threads` threads, each to `urls[i % n]` first;
/// a replica that refuses the connection or answers 503 is skipped for the
/// next, until the chunk is acknowledged (2xx). Counts acknowledged chunks
/// in `acked`.
fn replay(chunks: &[Chunk], urls: &[String], threads: usize, acked: &AtomicUsize) {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    std::thread::scope(|s| {
        for t in 0..threads {
            let http = &http;
            s.spawn(move || {
                for (i, (path, items)) in chunks.iter().enumerate().skip(t).step_by(threads) {
                    let deadline = Instant::now() + Duration::from_secs(90);
                    let mut target = i % urls.len();
                    loop {
                        match http.post(format!("{}{path}", urls[target])).json(items).send() {
                            Ok(r) if r.status().is_success() => break,
                            Ok(r) if r.status() == 503 => std::thread::sleep(Duration::from_millis(50)),
                            Ok(r) => panic!("{path}: {} {}", r.status(), r.text().unwrap_or_default()),
                            Err(_) => {} // that replica is gone: the next takes it
                        }
                        assert!(Instant::now() < deadline, "chunk {i} was never acknowledged");
                        target = (target + 1) % urls.len();
                    }
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
}

/// What each test starts from: its own PostgreSQL, a sled instance that
/// took a recorded simulation (seed `seed`), and that traffic in chunks of
/// `size` items. `None` when PostgreSQL is missing (said loudly).
struct Setup {
    pg: Postgres,
    _dir: tempfile::TempDir,
    sled: Server,
    chunks: Vec<Chunk>,
}

fn setup(test: &str, seed: u64, size: usize) -> Option<Setup> {
    let pg = Postgres::start(test)?;
    let dir = tempfile::tempdir().unwrap();
    let sled = spawn_server_with(&dir.path().join("data"), Path::new(EXPERIMENTS), AT_NOW);
    let chunks = record_traffic(&sled, &dir.path().join("traffic.jsonl"), seed, size);
    Some(Setup { pg, _dir: dir, sled, chunks })
}

/// `CASE variant WHEN 0 THEN 'control' ... ` arms for a report's variants.
fn variant_arms(report: &Value) -> String {
    let variants = report["variants"].as_array().unwrap();
    variants.iter().enumerate().map(|(i, v)| format!(" WHEN {i} THEN '{}'", v.as_str().unwrap())).collect()
}

/// `offerlab analyze --postgres` of test `id` with the table layout flags
/// `layout`, as of the day of `want`, must print `want` (the service's
/// report, less its two service-only fields).
fn assert_analyze_postgres(store: &str, id: &str, layout: &[&str], want: &Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_offerlab"))
        .args(["analyze", "--postgres", store, "--now", want["as_of"].as_str().unwrap()])
        .args(layout)
        .arg("--experiment")
        .arg(Path::new(EXPERIMENTS).join(format!("{id}.toml")))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut got: Value = serde_json::from_slice(&out.stdout).unwrap();
    got["allocation_version"] = want["allocation_version"].clone();
    got["earlier_phase_visitors"] = want["earlier_phase_visitors"].clone();
    assert_same_json(&got, want, &format!("analyze --postgres {id} {layout:?}"));
}

#[test]
fn recorded_traffic_split_between_two_replicas_gives_the_sled_report() {
    let Some(Setup { pg, sled, chunks, .. }) =
        setup("recorded_traffic_split_between_two_replicas_gives_the_sled_report", 11, 40)
    else {
        return;
    };
    let store = pg.database();
    let replicas = [
        serve_postgres_with(&store, Path::new(EXPERIMENTS), AT_NOW),
        serve_postgres_with(&store, Path::new(EXPERIMENTS), AT_NOW),
    ];
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    replay(&chunks, &urls, 4, &AtomicUsize::new(0));
    assert_same_reports(&urls[0], &sled.url);
    assert_same_reports(&urls[1], &sled.url);

    // The warehouse path over the same raw rows: `offerlab analyze
    // --postgres` prints the sled report, and the printed SQL gives the
    // aggregates the replicas kept.
    let db = store.rsplit('/').next().unwrap();
    let all = reports(&sled.url);
    for (id, want) in &all {
        assert_analyze_postgres(&store, id, &[], want);

        let sql = std::process::Command::new(env!("CARGO_BIN_EXE_offerlab"))
            .args(["sql", "--experiment"])
            .arg(Path::new(EXPERIMENTS).join(format!("{id}.toml")))
            .output()
            .unwrap();
        assert!(sql.status.success());
        let sql = String::from_utf8(sql.stdout).unwrap();
        let rows = |query: &str| -> Vec<Vec<f64>> {
            pg.sql(db, query).lines().map(|l| l.split('|').skip(3).map(|x| x.parse().unwrap()).collect()).collect()
        };
        // The store keeps raw sums; the query caps capped metrics (their
        // capped numbers are checked through `analyze --postgres` above).
        let catalog = offerlab::experiment::load_dir(Path::new(EXPERIMENTS)).unwrap();
        let exp = catalog.get(id).unwrap();
        let uncapped: String = offerlab::capping::capped_metrics(exp, &catalog)
            .iter()
            .map(|(m, _)| format!(" AND metric <> '{m}'"))
            .collect();
        let from_sql = rows(&format!(
            "SELECT * FROM ({}) AS q WHERE true{uncapped} ORDER BY 1, date, metric",
            sql.trim_end().trim_end_matches(';')
        ));
        let kept = rows(&format!(
            "SELECT CASE variant{} END, date, metric, n, sum, sum_sq, den_sum, den_sum_sq, sum_xy, pre_sum, \
             pre_sum_sq, sum_x_pre FROM aggregates WHERE experiment = '{id}' AND phase = {}{uncapped} \
             ORDER BY 1, date, metric",
            variant_arms(want),
            want["allocation_version"]
        ));
        assert_eq!(from_sql.len(), kept.len(), "{id}: rows");
        for (a, b) in from_sql.iter().zip(&kept) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0), "{id}: {a:?} != {b:?}");
            }
        }
    }
    // A warehouse of its own shape: other table and column names, variant
    // keys instead of indexes, no phase, and every exposure rather than the
    // first (repeats an hour later must not count).
    let (id, want) = all.iter().next().unwrap();
    pg.sql(
        db,
        &format!(
            "CREATE SCHEMA shop; \
             CREATE TABLE shop.exposure_log AS SELECT visitor AS user_id, experiment AS test, \
                 CASE variant{} END AS arm, ts AS at FROM exposures WHERE phase = {}; \
             INSERT INTO shop.exposure_log SELECT user_id, test, arm, at + interval '1 hour' FROM shop.exposure_log; \
             CREATE TABLE shop.event_log AS SELECT visitor AS user_id, name AS kind, value AS amount, ts AS at FROM events",
            variant_arms(want),
            want["allocation_version"]
        ),
    );
    let shop = [
        ["--exposures-table", "shop.exposure_log"],
        ["--events-table", "shop.event_log"],
        ["--visitor-column", "user_id"],
        ["--ts-column", "at"],
        ["--experiment-column", "test"],
        ["--variant-column", "arm"],
        ["--phase-column", ""],
        ["--name-column", "kind"],
        ["--value-column", "amount"],
    ];
    let mut layout: Vec<&str> = shop.iter().flatten().copied().collect();
    layout.push("--variant-keys");
    assert_analyze_postgres(&store, id, &layout, want);
}

#[test]
fn a_replica_killed_under_load_loses_and_doubles_nothing() {
    let Some(Setup { pg, sled, chunks, .. }) = setup("a_replica_killed_under_load_loses_and_doubles_nothing", 12, 10)
    else {
        return;
    };
    let store = pg.database();
    let mut doomed = serve_postgres_with(&store, Path::new(EXPERIMENTS), AT_NOW);
    let survivor = serve_postgres_with(&store, Path::new(EXPERIMENTS), AT_NOW);
    let urls = vec![doomed.url.clone(), survivor.url.clone()];
    let acked = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| replay(&chunks, &urls, 8, &acked));
        // SIGKILL once a third is acknowledged, while eight clients write.
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked.load(Ordering::SeqCst) < chunks.len() / 3 {
            assert!(Instant::now() < deadline, "the load never reached a third");
            std::thread::sleep(Duration::from_millis(5));
        }
        doomed.child.kill().unwrap();
        doomed.child.wait().unwrap();
    });
    assert_eq!(acked.load(Ordering::SeqCst), chunks.len());
    let db = store.rsplit('/').next().unwrap();
    let sent_events: std::collections::BTreeSet<&str> = chunks
        .iter()
        .filter(|(p, _)| p == "/v1/events")
        .flat_map(|(_, items)| items.iter().map(|e| e["id"].as_str().unwrap()))
        .collect();
    assert_eq!(pg.sql(db, "SELECT count(*) FROM events"), sent_events.len().to_string(), "each event once");
    assert_same_reports(&survivor.url, &sled.url);
}

#[test]
fn a_postgres_restart_gives_503s_then_writes_resume_by_themselves() {
    let Some(Setup { pg, sled, chunks, .. }) =
        setup("a_postgres_restart_gives_503s_then_writes_resume_by_themselves", 13, 100)
    else {
        return;
    };
    let replica = serve_postgres_with(&pg.database(), Path::new(EXPERIMENTS), AT_NOW);
    let urls = vec![replica.url.clone()];
    let half = chunks.len() / 2;
    replay(&chunks[..half], &urls, 2, &AtomicUsize::new(0));

    pg.stop_server();
    let http = reqwest::blocking::Client::new();
    let (path, items) = &chunks[half];
    let refused = http.post(format!("{}{path}", replica.url)).json(items).send().unwrap();
    assert_eq!(refused.status(), 503, "a write while PostgreSQL is down");
    let body: Value = refused.json().unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("takes writes again by itself"), "{body}");
    let health = http.get(format!("{}/healthz", replica.url)).send().unwrap();
    assert_eq!(health.status(), 503, "/healthz while PostgreSQL is down");

    pg.start_server();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{}/healthz", replica.url)).send().unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "the replica never recovered");
        std::thread::sleep(Duration::from_millis(100));
    }
    replay(&chunks[half..], &urls, 2, &AtomicUsize::new(0));
    assert_same_reports(&replica.url, &sled.url);
}
