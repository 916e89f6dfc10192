//! Seeded random writes with a known truth: repeated exposures, retried
//! events and events that arrive before their exposure, in shuffled order,
//! and the aggregates computed directly from the truth, metric by metric.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use offerlab::aggregates::AggregateRow;
use offerlab::assignment::{evaluate, Attributes};
use offerlab::experiment::{load_dir, Catalog};
use offerlab::ids::{EventId, ExperimentId, VisitorId};
use offerlab::records::{Event, Exposure};
use offerlab::reporting::{from_index, report_rows};
use offerlab::stats::{Moments, VisitorValue};
use offerlab::store::rules::AggregateKey;
use offerlab::store::{Store, Write};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

const TESTS: [&str; 2] = ["cart-protection-copy", "checkout-addon-price-display"];

pub fn catalog() -> Arc<Catalog> {
    Arc::new(load_dir(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments"))).unwrap())
}

/// The generated truth: first exposures and every distinct event.
pub struct Truth {
    pub exposures: BTreeMap<(VisitorId, ExperimentId), Exposure>,
    pub events: BTreeMap<EventId, Event>,
}

pub fn generate(catalog: &Catalog, rng: &mut StdRng, at_least: usize) -> (Truth, Vec<Write>) {
    let start = Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap();
    let mut truth = Truth { exposures: BTreeMap::new(), events: BTreeMap::new() };
    let mut writes = Vec::new();
    let mut next_event = 0;
    let mut visitor = 0;
    while writes.len() < at_least {
        visitor += 1;
        let v: VisitorId = format!("visitor-{visitor}").parse().unwrap();
        let base: DateTime<Utc> = start + Duration::minutes(rng.random_range(0..21 * 24 * 60));
        for test in TESTS {
            let exp = catalog.get(test).unwrap();
            let Some(a) = evaluate(exp, v.as_str(), &Attributes::new(), None).filter(|a| a.in_experiment) else {
                continue;
            };
            if rng.random_bool(0.2) {
                continue;
            }
            // One to three exposures: the earliest counts, the rest are duplicates.
            for _ in 0..rng.random_range(1..=3) {
                let ts = base + Duration::minutes(rng.random_range(0..3 * 24 * 60));
                let attributes = match rng.random_range(0..3) {
                    0 => Default::default(),
                    1 => [("device".to_owned(), "mobile".to_owned())].into(),
                    _ => [("device".to_owned(), "desktop".to_owned())].into(),
                };
                let x = Exposure {
                    visitor: v.clone(),
                    experiment: exp.id.clone(),
                    variant: a.variant,
                    ts,
                    phase: 1,
                    attributes,
                };
                let key = (v.clone(), exp.id.clone());
                if truth.exposures.get(&key).is_none_or(|old| ts < old.ts) {
                    truth.exposures.insert(key, x.clone());
                }
                writes.push(Write::Exposure(x));
            }
        }
        for _ in 0..rng.random_range(0..5) {
            next_event += 1;
            let (name, value) = match rng.random_range(0..6) {
                0 => ("upsell_accepted", 0.0),
                1 => ("cart_offer_accepted", 19.0),
                2 => ("checkout_offer_accepted", 12.0),
                3 | 4 => ("order", (rng.random_range(1_000..20_000) as f64) / 100.0),
                _ => ("return", 0.0),
            };
            // Some events happen before the visitor's exposures.
            let ts = base + Duration::minutes(rng.random_range(-6 * 60..4 * 24 * 60));
            let id = format!("ev-{next_event}").parse().unwrap();
            let e = Event { id, visitor: v.clone(), name: name.parse().unwrap(), value, ts };
            truth.events.insert(e.id.clone(), e.clone());
            for _ in 0..rng.random_range(1..=2) {
                writes.push(Write::Event(e.clone())); // a retry sends the same id again
            }
        }
    }
    writes.shuffle(rng);
    (truth, writes)
}

/// Aggregates computed directly from the truth, metric by metric.
pub fn expected(catalog: &Catalog, truth: &Truth) -> BTreeMap<AggregateKey, Moments> {
    let mut out: BTreeMap<AggregateKey, Moments> = BTreeMap::new();
    for ((v, test), x) in &truth.exposures {
        let exp = catalog.get(test).unwrap();
        let mine: Vec<&Event> = truth.events.values().filter(|e| &e.visitor == v && e.ts >= x.ts).collect();
        let count = |n: &str| mine.iter().filter(|e| e.name == n).count() as f64;
        let order_value: f64 = mine.iter().filter(|e| e.name == "order").map(|e| e.value).sum();
        // The CUPED covariates (metrics.toml: 14 days before first exposure).
        let pre_orders: Vec<f64> = truth
            .events
            .values()
            .filter(|e| &e.visitor == v && e.name == "order" && e.ts < x.ts && e.ts >= x.ts - Duration::days(14))
            .map(|e| e.value)
            .collect();
        let pre = BTreeMap::from([
            ("order_conversion", f64::from(!pre_orders.is_empty())),
            ("revenue_per_visitor", pre_orders.iter().sum()),
        ]);
        let values = BTreeMap::from([
            ("upsell_acceptance", (f64::from(count("upsell_accepted") > 0.0), 0.0)),
            ("cart_offer_acceptance", (f64::from(count("cart_offer_accepted") > 0.0), 0.0)),
            ("checkout_offer_acceptance", (f64::from(count("checkout_offer_accepted") > 0.0), 0.0)),
            ("order_conversion", (f64::from(count("order") > 0.0), 0.0)),
            ("revenue_per_visitor", (order_value, 0.0)),
            ("average_order_value", (order_value, count("order"))),
            ("return_rate", (count("return"), count("order"))),
        ]);
        for metric in exp.all_metrics() {
            let key = AggregateKey {
                experiment: test.clone(),
                phase: 1,
                variant: x.variant,
                date: exp.local_day(x.ts),
                metric: metric.parse().unwrap(),
            };
            let (a, b) = values[metric];
            let pre = pre.get(metric).copied().unwrap_or(0.0);
            out.entry(key).or_default().add_visitor(VisitorValue { x: a, y: b, pre });
        }
    }
    out
}

pub fn assert_same(got: &BTreeMap<AggregateKey, Moments>, want: &BTreeMap<AggregateKey, Moments>, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: number of aggregate rows");
    for (k, w) in want {
        let g = got.get(k).unwrap_or_else(|| panic!("{what}: missing {k:?}"));
        assert!(g.approx_eq(w, 1e-9), "{what}: {k:?}: got {g:?}, want {w:?}");
    }
}

/// Sends `writes` in batches of `batch` from `senders` concurrent tasks,
/// task `i` through `stores[i % stores.len()]` (two stores: two replicas).
pub async fn send_concurrently<S: Store + 'static>(
    stores: &[Arc<S>],
    catalog: &Arc<Catalog>,
    writes: &[Write],
    batch: usize,
    senders: usize,
) {
    let chunks: Vec<Vec<Write>> = writes.chunks(batch).map(<[Write]>::to_vec).collect();
    let mut tasks = Vec::new();
    for part in 0..senders {
        let (store, catalog) = (stores[part % stores.len()].clone(), catalog.clone());
        let mine: Vec<Vec<Write>> = chunks.iter().skip(part).step_by(senders).cloned().collect();
        tasks.push(tokio::spawn(async move {
            for chunk in mine {
                store.record(catalog.clone(), chunk).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// The committed catalog with revenue per visitor capped by `cap` (the
/// text after `cap = `), or uncapped when `cap` is `None`.
pub fn catalog_with_cap(cap: Option<&str>) -> Arc<Catalog> {
    let committed = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments"));
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(committed).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text: String = text
            .lines()
            .filter_map(|l| match (l.starts_with("cap = "), cap) {
                (true, Some(cap)) => Some(format!("cap = {cap}\n")),
                (true, None) => None,
                (false, _) => Some(format!("{l}\n")),
            })
            .collect();
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    Arc::new(load_dir(dir.path()).unwrap())
}

/// Every capped metric's report read from the top of its value index
/// equals the one re-aggregated from every visitor's tallies (the rows to a
/// relative 1e-9, what each cap did exactly). With `indexed`, the index
/// must cover every visitor (so it, not the fallback, answered).
pub async fn assert_capped_from_index(store: &dyn Store, catalog: &Catalog, indexed: bool) {
    use offerlab::capping::{capped_metrics, Collector};
    let mut checked = 0;
    for exp in catalog.experiments() {
        let caps = capped_metrics(exp, catalog);
        if caps.is_empty() {
            continue;
        }
        let (mut rows, applied) = report_rows(store, exp, Collector::new(exp, catalog)).await.unwrap();
        let mut full = Collector::new(exp, catalog);
        let mut want_rows = store.aggregate_rows(exp).await.unwrap();
        store.visit_tallies(exp, false, &mut |v| full.visit(v)).await.unwrap();
        let want_applied = full.apply(&mut want_rows);
        assert_eq!(applied, want_applied, "{}: what the caps did", exp.id);
        let order = |r: &AggregateRow| (r.variant.clone(), r.date, r.metric.clone());
        rows.sort_by_key(order);
        want_rows.sort_by_key(order);
        assert_eq!(rows.len(), want_rows.len(), "{}: rows", exp.id);
        for (got, want) in rows.iter().zip(&want_rows) {
            assert_eq!(order(got), order(want));
            assert!(got.moments.approx_eq(&want.moments, 1e-9), "{}: {got:?} vs {want:?}", exp.id);
        }
        for (metric, _) in caps {
            let n: u64 = want_rows.iter().filter(|r| r.metric == metric).map(|r| r.moments.n).sum();
            if n == 0 {
                continue;
            }
            let counts = store.capped_counts(exp, &metric.parse().unwrap()).await.unwrap();
            assert_eq!(counts.covered == n, indexed, "{}: {metric}: the index covers {counts:?} of {n}", exp.id);
            let (m, cap) = (catalog.metric(metric).unwrap(), catalog.metric(metric).unwrap().cap.unwrap());
            let mut rows = store.aggregate_rows(exp).await.unwrap();
            let answered = from_index(store, exp, m, cap, &mut rows).await.unwrap();
            assert_eq!(answered.is_some(), indexed, "{}: {metric}: answered from the index", exp.id);
            checked += 1;
        }
    }
    assert!(checked > 0, "no capped metric had visitors to check");
    assert_segments_from_rows(store, catalog).await;
}

/// Every test's breakdown by segment read from the segment rows (each cap's
/// cut taken by the values of the visitors above it) equals the one from a
/// pass over every visitor's tallies, number for number (to 1e-9).
pub async fn assert_segments_from_rows(store: &dyn Store, catalog: &Catalog) {
    use offerlab::segments::{finish, Collector};
    assert!(!catalog.segments().is_empty(), "the catalog has segments");
    let now = chrono::Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let catalog = Arc::new(catalog.clone());
    for exp in catalog.experiments() {
        let segments = catalog.segments().to_vec();
        let got = offerlab::reporting::segments(store, &catalog, exp, segments.clone()).await.unwrap();
        let (_, capping) = report_rows(store, exp, offerlab::capping::Collector::new(exp, &catalog)).await.unwrap();
        let mut pass = Collector::new(exp.clone(), catalog.clone(), segments.clone(), &capping);
        store.visit_tallies(exp, true, &mut |v| pass.visit(v)).await.unwrap();
        let want = finish(exp, &catalog, &segments, pass.into_sums());
        let json = |b: &[offerlab::segments::Breakdown]| {
            serde_json::to_value(offerlab::wire::v1::Segments::new(exp.id.as_str(), exp.local_day(now), b)).unwrap()
        };
        super::assert_same_json(&json(&got), &json(&want), &format!("{} by segment", exp.id));
    }
}
