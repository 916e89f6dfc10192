//! 20,000 writes in shuffled arrival order, with repeated exposures, retried
//! events and events that arrive before their exposure: the aggregates must
//! equal those computed directly from the generated truth, and a rebuild.

mod common;

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use common::writes::{
    assert_capped_from_index, assert_same, catalog, catalog_with_cap, expected, generate, send_concurrently,
};
use offerlab::assignment::{evaluate, Attributes};
use offerlab::records::Exposure;
use offerlab::store::{SledStore, Store, Write};
use rand::rngs::StdRng;
use rand::SeedableRng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_writes_with_duplicates_and_retries_give_the_true_aggregates() {
    let catalog = catalog();
    let mut rng = StdRng::seed_from_u64(20_000);
    let (truth, writes) = generate(&catalog, &mut rng, 20_000);
    assert!(writes.len() >= 20_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).await.unwrap());

    // Eight concurrent senders, batches of up to 50, so group commit is exercised.
    send_concurrently(std::slice::from_ref(&store), &catalog, &writes, 50, 8).await;

    let (exposures, events) = store.counts().await.unwrap();
    assert_eq!((exposures, events), (truth.exposures.len(), truth.events.len()), "each stored exactly once");
    let want = expected(&catalog, &truth);
    assert_same(&store.all_aggregates().await.unwrap(), &want, "incremental");
    assert_same(&store.recompute(&catalog).await.unwrap().aggregates, &want, "recomputed");
    assert_capped_from_index(store.as_ref(), &catalog, true).await;
    assert_eq!(store.verify(&catalog).await.unwrap(), Vec::<String>::new(), "the kept index is the recomputed one");
    store.rebuild(&catalog).await.unwrap();
    assert_same(&store.all_aggregates().await.unwrap(), &want, "after rebuild");
    assert_capped_from_index(store.as_ref(), &catalog, true).await;
}

/// Caps of every kind read from the top of the value index equal the
/// full re-aggregation, after shuffled writes with late exposures and
/// retries: percentiles among the non-zero values, in the zeros (a cap of
/// 0), with zeros ignored, and absolute caps.
const CAPS: [&str; 5] = [
    "{ percentile = 0.95 }",
    "{ percentile = 0.5 }",
    "{ percentile = 0.5, ignore_zeros = true }",
    "{ percentile = 0.999, ignore_zeros = true }",
    "{ absolute = 80.0 }",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capped_reports_from_the_value_index_equal_the_full_pass() {
    for (i, cap) in CAPS.into_iter().enumerate() {
        let catalog = catalog_with_cap(Some(cap));
        let mut rng = StdRng::seed_from_u64(2600 + i as u64);
        let (_, writes) = generate(&catalog, &mut rng, 4_000);
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).await.unwrap());
        send_concurrently(std::slice::from_ref(&store), &catalog, &writes, 50, 4).await;
        assert_capped_from_index(store.as_ref(), &catalog, true).await;
    }
}

/// Floors raised between shuffled writes (as the service does every
/// second): writers then keep no entry at or below a floor, and drop the
/// entries of visitors who fall to it. Every report read from the index
/// still equals the full pass, `verify` finds the index as the raw records
/// give it above its floors, and a rebuild starts the index afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floors_raised_between_writes_keep_capped_reports_exact() {
    let mut raised = Vec::new();
    for (i, cap) in CAPS.into_iter().enumerate() {
        let catalog = catalog_with_cap(Some(cap));
        let mut rng = StdRng::seed_from_u64(2700 + i as u64);
        let (_, writes) = generate(&catalog, &mut rng, 6_000);
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).await.unwrap());
        let mut seen = std::collections::HashMap::new();
        let mut up = 0;
        for part in writes.chunks(writes.len().div_ceil(3)) {
            send_concurrently(std::slice::from_ref(&store), &catalog, part, 50, 4).await;
            up += offerlab::floors::raise_all(store.as_ref(), &catalog, &mut seen).await.unwrap();
            assert_capped_from_index(store.as_ref(), &catalog, true).await;
            assert_eq!(store.verify(&catalog).await.unwrap(), Vec::<String>::new(), "{cap}");
        }
        raised.push(up);
        store.rebuild(&catalog).await.unwrap();
        assert_capped_from_index(store.as_ref(), &catalog, true).await;
    }
    // The absolute cap's floor is the cap; the median's cannot rise (it
    // reads half the index); the 99.9th percentile of the non-zero values
    // rises as the index outgrows it.
    assert!(raised[4] > 0 && raised[3] > 0, "floors raised per cap: {raised:?}");
    assert_eq!((raised[1], raised[2]), (0, 0), "floors raised per cap: {raised:?}");
}

/// A cap added to a metric that already has visitors: the index does not
/// cover them, so the report re-aggregates from the tallies (and is still
/// exact) until a rebuild fills the index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_added_later_is_exact_before_and_after_a_rebuild() {
    let (uncapped, capped) = (catalog_with_cap(None), catalog());
    let mut rng = StdRng::seed_from_u64(2626);
    let (_, writes) = generate(&capped, &mut rng, 4_000);
    let (early, late) = writes.split_at(writes.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).await.unwrap());
    send_concurrently(std::slice::from_ref(&store), &uncapped, early, 50, 4).await;
    send_concurrently(std::slice::from_ref(&store), &capped, late, 50, 4).await;
    assert_capped_from_index(store.as_ref(), &capped, false).await;
    let differences = store.verify(&capped).await.unwrap();
    assert!(
        differences.iter().any(|d| d.contains("revenue_per_visitor (value index)")),
        "verify names the index that misses the earlier visitors: {differences:?}"
    );
    store.rebuild(&capped).await.unwrap();
    assert_capped_from_index(store.as_ref(), &capped, true).await;
    assert_eq!(store.verify(&capped).await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn an_earlier_exposure_moving_the_only_visitor_leaves_no_empty_row() {
    let catalog = catalog();
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).await.unwrap();
    let exp = catalog.get("cart-protection-copy").unwrap();
    let a = evaluate(exp, "mover", &Attributes::new(), None).unwrap();
    let at = |day: i64| Exposure {
        visitor: "mover".parse().unwrap(),
        experiment: exp.id.clone(),
        variant: a.variant,
        ts: Utc.with_ymd_and_hms(2026, 11, 10, 12, 0, 0).unwrap() + Duration::days(day),
        phase: 1,
        attributes: Default::default(),
    };
    store.record(catalog.clone(), vec![Write::Exposure(at(2))]).await.unwrap();
    store.record(catalog.clone(), vec![Write::Exposure(at(0))]).await.unwrap();
    let kept = store.all_aggregates().await.unwrap();
    let first_day = chrono::NaiveDate::from_ymd_opt(2026, 11, 10).unwrap();
    assert!(
        kept.keys().all(|k| k.date == first_day),
        "only the earlier day remains: {:?}",
        kept.keys().collect::<Vec<_>>()
    );
    assert_eq!(kept, store.recompute(&catalog).await.unwrap().aggregates);
}
