//! Report latency at 10,000 and at 10 million recorded events: a report
//! reads per-day aggregates only, so the ratio should be near 1. The report
//! is also timed with the committed metrics, whose revenue per visitor is
//! capped at its 99th percentile: read from the metric's value index (the
//! order statistics by rank, then the visitors above the cap), it should
//! stay near the uncapped report at any size.
//! On sled, events go through the store's real write path in batches of
//! 1,000. On PostgreSQL (a throwaway server this bench starts), the raw
//! rows are bulk-loaded with SQL and the aggregates computed from them by
//! the warehouse query, whose own time is shown too; then `rebuild` fills
//! the tallies and value index the capped report reads.
//! Visitors carry a device and a customer type (four values each), so the
//! report with the committed segments (two breakdowns, read from the
//! segment rows) and the segments endpoint are timed beside the plain
//! report of the same data.
//! Run: `cargo bench --bench report_scale` (OFFERLAB_BENCH_EVENTS changes
//! the large count; OFFERLAB_BENCH_STORES=sled or =postgres runs one store).

#[allow(dead_code)]
#[path = "../tests/common/postgres.rs"]
mod postgres;

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, Utc};
use offerlab::assignment::{evaluate, Attributes};
use offerlab::experiment::load_dir;
use offerlab::records::{Event, Exposure};
use offerlab::reporting::report;
use offerlab::store::{PgStore, SledStore, Store, Write};
use offerlab::warehouse::{aggregates_sql, Layout};

const EVENTS_PER_VISITOR: u64 = 5;

fn main() {
    let large: u64 = std::env::var("OFFERLAB_BENCH_EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let stores = std::env::var("OFFERLAB_BENCH_STORES").unwrap_or_else(|_| "sled,postgres".into());
    let committed = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments"));
    // With the committed segments: the report with its breakdowns.
    let segmented = Arc::new(load_dir(committed).unwrap());
    // The same definitions without segments (the plain report), and also
    // without caps (the aggregates-only report).
    let copy = |keep_caps: bool| {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(committed).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap() == "segments.toml" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let text: String =
                text.lines().filter(|l| keep_caps || !l.starts_with("cap = ")).map(|l| format!("{l}\n")).collect();
            std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
        }
        (Arc::new(load_dir(dir.path()).unwrap()), dir)
    };
    let (catalog, _plain_dir) = copy(true);
    let (uncapped, _uncapped_dir) = copy(false);
    let exp = catalog.get("cart-protection-copy").unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(SledStore::open(dir.path())).unwrap();
    let now = Utc::now();
    let mut recorded = 0u64;
    let mut visitor = 0u64;
    let mut results = Vec::new();
    let started = Instant::now();
    let sled_sizes: &[u64] = if stores.contains("sled") { &[10_000, large] } else { &[] };
    for &target in sled_sizes {
        while recorded < target {
            let mut batch = Vec::with_capacity(1000);
            while batch.len() < 1000 {
                visitor += 1;
                let v: offerlab::ids::VisitorId = format!("v{visitor}").parse().unwrap();
                let a = evaluate(&exp, v.as_str(), &Attributes::new(), None).unwrap();
                let attributes = [
                    ("device".to_owned(), DEVICES[(visitor % 4) as usize].to_owned()),
                    ("customer_type".to_owned(), CUSTOMERS[(visitor / 4 % 4) as usize].to_owned()),
                ]
                .into();
                // Spread over the same 20 days at every size, so both reports read as many days.
                let ts = now - Duration::minutes(((visitor * 7919) % (60 * 24 * 20)) as i64);
                batch.push(Write::Exposure(Exposure {
                    visitor: v.clone(),
                    experiment: exp.id.clone(),
                    variant: a.variant,
                    ts,
                    phase: 1,
                    attributes,
                }));
                for k in 0..EVENTS_PER_VISITOR {
                    let name = ["order", "cart_offer_accepted", "upsell_accepted", "order", "return"][k as usize];
                    batch.push(Write::Event(Event {
                        id: format!("{v}-{k}").parse().unwrap(),
                        visitor: v.clone(),
                        name: name.parse().unwrap(),
                        value: 30.0,
                        ts: ts + Duration::minutes(1),
                    }));
                }
                recorded += EVENTS_PER_VISITOR;
            }
            rt.block_on(store.record(catalog.clone(), batch)).unwrap();
        }
        let capped = median_report_ms(&rt, &store, &exp, &catalog, now, 5);
        let full = median_full_pass_ms(&rt, &store, &exp, &catalog);
        let segments = segment_times(&rt, &store, &exp, &segmented, now);
        eprintln!(
            "sled, {recorded} events: the rank read alone {:.2} ms",
            median_rank_read_ms(&rt, &store, &exp, &catalog)
        );
        results.push((
            "sled",
            recorded,
            median_report_ms(&rt, &store, &exp, &uncapped, now, 50),
            Some((capped, full)),
            None,
            segments,
        ));
        eprintln!("{recorded} events recorded after {:.0} s", started.elapsed().as_secs_f64());
    }
    let sled_ingest = (recorded + recorded / EVENTS_PER_VISITOR) as f64 / started.elapsed().as_secs_f64();
    rt.block_on(store.close()).unwrap();
    let pg =
        stores.contains("postgres").then(|| postgres::Postgres::start("the PostgreSQL rows of the report_scale bench"));
    if let Some(pg) = pg.flatten() {
        let url = pg.database();
        let db = url.rsplit('/').next().unwrap().to_owned();
        let store = rt.block_on(PgStore::open(&url)).unwrap();
        let visitors = |events: u64| events / EVENTS_PER_VISITOR;
        let mut loaded = 0u64;
        for target in [10_000, large] {
            let (from, to) = (visitors(loaded) + 1, visitors(target));
            let first =
                |g: &str| format!("timestamptz '{}' - (({g} * 7919) % 28800) * interval '1 minute'", now.to_rfc3339());
            pg.sql(
                &db,
                &format!(
                    "INSERT INTO exposures SELECT 'v' || g, '{id}', 1, (g % 2)::int2, {ts}, \
                     jsonb_build_object('device', (ARRAY['{d}'])[g % 4 + 1], 'customer_type', (ARRAY['{c}'])[g / 4 % 4 + 1]) \
                     FROM generate_series({from}::int8, {to}::int8) g",
                    d = DEVICES.join("', '"),
                    c = CUSTOMERS.join("', '"),
                    id = exp.id,
                    ts = first("g")
                ),
            );
            pg.sql(
                &db,
                &format!(
                    "INSERT INTO events SELECT 'v' || g || '-' || k, 'v' || g, \
                     (ARRAY['order', 'cart_offer_accepted', 'upsell_accepted', 'order', 'return'])[k + 1], 30.0, \
                     {ts} + interval '1 minute' FROM generate_series({from}::int8, {to}::int8) g, generate_series(0, 4) k",
                    ts = first("g")
                ),
            );
            loaded = target;
            let query = aggregates_sql(&exp, &uncapped, &Layout::default());
            let arms: String =
                exp.variants.iter().enumerate().map(|(i, v)| format!(" WHEN '{}' THEN {i}", v.key)).collect();
            let t = Instant::now();
            pg.sql(
                &db,
                &format!(
                    "DELETE FROM aggregates; INSERT INTO aggregates SELECT '{id}', 1, CASE q.variant{arms} END, q.date, q.metric, \
                     q.n, q.sum, q.sum_sq, q.den_sum, q.den_sum_sq, q.sum_xy FROM ({}) q",
                    query.trim_end().trim_end_matches(';'),
                    id = exp.id
                ),
            );
            let warehouse_ms = t.elapsed().as_secs_f64() * 1e3;
            // The tallies and capped metrics' value index, as the write path
            // keeps them: recomputed from the raw rows by `rebuild`.
            let t = Instant::now();
            rt.block_on(store.rebuild(&catalog)).unwrap();
            eprintln!("rebuilt in {:.0} s", t.elapsed().as_secs_f64());
            pg.sql(&db, "ANALYZE");
            let capped = (
                median_report_ms(&rt, &store, &exp, &catalog, now, 5),
                median_full_pass_ms(&rt, &store, &exp, &catalog),
            );
            let rank = median_rank_read_ms(&rt, &store, &exp, &catalog);
            eprintln!("PostgreSQL, {loaded} events: the rank read alone {rank:.2} ms");
            let segments = segment_times(&rt, &store, &exp, &segmented, now);
            results.push((
                "PostgreSQL",
                loaded,
                median_report_ms(&rt, &store, &exp, &uncapped, now, 50),
                Some(capped),
                Some(warehouse_ms),
                segments,
            ));
            eprintln!("{loaded} events loaded into PostgreSQL after {:.0} s", started.elapsed().as_secs_f64());
        }
    }
    println!("| store | recorded events | visitors | report latency (median of 50) | ratio to the same store at 10,000 | with the percentile cap (median of 5) | capped over uncapped | the cap by a pass over every visitor's tallies (median of 3) | warehouse query (aggregates from raw rows) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (store, n, ms, capped, warehouse, _) in &results {
        let base = results.iter().find(|r| r.0 == *store).unwrap().2;
        let warehouse = warehouse.map_or("".to_owned(), |w| format!("{:.0} ms", w));
        let (capped, ratio, full) = capped.map_or((String::new(), String::new(), String::new()), |(c, f)| {
            (format!("{c:.2} ms"), format!("{:.2}", c / ms), format!("{f:.1} ms"))
        });
        println!(
            "| {store} | {n} | {} | {ms:.2} ms | {:.2} | {capped} | {ratio} | {full} | {warehouse} |",
            n / EVENTS_PER_VISITOR,
            ms / base
        );
    }
    println!("\n| store | visitors | capped report, no segments (median of 5) | the same with two segments | over the plain report | segments endpoint (median of 5) | over the plain report (goal <= 2) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (store, n, _, capped, _, (with, endpoint)) in &results {
        let plain = capped.map_or(f64::NAN, |(c, _)| c);
        println!(
            "| {store} | {} | {plain:.2} ms | {with:.2} ms | {:.2} | {endpoint:.2} ms | {:.2} |",
            n / EVENTS_PER_VISITOR,
            with / plain,
            endpoint / plain
        );
    }
    if recorded > 0 {
        println!("\nsled ingest for this run: {sled_ingest:.0} writes/s (batches of 1,000 through the store)");
    }
}

/// The values of the two segment attributes visitors carry: four each
/// (the last of each is not listed in segments.toml, so it reads as
/// "(other)").
const DEVICES: [&str; 4] = ["mobile", "desktop", "tablet", "watch"];
const CUSTOMERS: [&str; 4] = ["first_time", "repeat", "high_value", "wholesale"];

/// Median of five reports with the committed segments (the report and its
/// two breakdowns), and of five reads of the segments endpoint's
/// breakdowns, in milliseconds.
fn segment_times(
    rt: &tokio::runtime::Runtime,
    store: &dyn Store,
    exp: &std::sync::Arc<offerlab::experiment::Experiment>,
    catalog: &std::sync::Arc<offerlab::experiment::Catalog>,
    now: chrono::DateTime<Utc>,
) -> (f64, f64) {
    let report = median_report_ms(rt, store, exp, catalog, now, 5);
    let endpoint = median_ms(5, || {
        let segments = catalog.segments().to_vec();
        std::hint::black_box(rt.block_on(offerlab::reporting::segments(store, catalog, exp, segments)).unwrap());
    });
    (report, endpoint)
}

/// Median of three passes over every visitor's tallies re-aggregating the
/// capped metrics: what a capped report cost before the value index, and
/// what it falls back to where the index does not cover its phase.
fn median_full_pass_ms(
    rt: &tokio::runtime::Runtime,
    store: &dyn Store,
    exp: &offerlab::experiment::Experiment,
    catalog: &offerlab::experiment::Catalog,
) -> f64 {
    median_ms(3, || {
        let mut caps = offerlab::capping::Collector::new(exp, catalog);
        let mut rows = rt.block_on(store.aggregate_rows(exp)).unwrap();
        rt.block_on(store.visit_tallies(exp, false, &mut |v| caps.visit(v))).unwrap();
        std::hint::black_box(caps.apply(&mut rows));
    })
}

/// Median of five reads of the capped metric's order statistics by rank
/// (the walk from the top of its value index), the part of a capped
/// report that grows with visitors.
fn median_rank_read_ms(
    rt: &tokio::runtime::Runtime,
    store: &dyn Store,
    exp: &offerlab::experiment::Experiment,
    catalog: &offerlab::experiment::Catalog,
) -> f64 {
    use offerlab::experiment::metric::Cap;
    let (metric, cap) = offerlab::capping::capped_metrics(exp, catalog)[0];
    let Cap::Percentile { percentile, ignore_zeros } = cap else { return 0.0 };
    let metric: offerlab::ids::MetricName = metric.parse().unwrap();
    let rows = rt.block_on(store.aggregate_rows(exp)).unwrap();
    let n = rows.iter().filter(|r| r.metric == metric.as_str()).map(|r| r.moments.n).sum();
    let counts = rt.block_on(store.capped_counts(exp, &metric)).unwrap();
    let Some((skip, take)) =
        offerlab::capping::Quantile::of(percentile, ignore_zeros, n, counts).and_then(|q| q.reads())
    else {
        return 0.0;
    };
    median_ms(5, || {
        std::hint::black_box(rt.block_on(store.capped_values(exp, &metric, None, skip, take)).unwrap());
    })
}

/// The median time of `runs` runs of `work`, in milliseconds.
fn median_ms(runs: usize, mut work: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            work();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Median of `runs` reports, each built as the service builds it.
fn median_report_ms(
    rt: &tokio::runtime::Runtime,
    store: &dyn Store,
    exp: &std::sync::Arc<offerlab::experiment::Experiment>,
    catalog: &std::sync::Arc<offerlab::experiment::Catalog>,
    now: chrono::DateTime<Utc>,
    runs: usize,
) -> f64 {
    median_ms(runs, || {
        std::hint::black_box(rt.block_on(report(store, catalog, exp, now)).unwrap());
    })
}
