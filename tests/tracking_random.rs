//! 20,000 writes in shuffled arrival order, with repeated exposures, retried
//! events and events that arrive before their exposure: the aggregates must
//! equal those computed directly from the generated truth, and a rebuild.

mod common;

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use common::writes::{assert_same, catalog, expected, generate, send_concurrently};
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
    store.rebuild(&catalog).await.unwrap();
    assert_same(&store.all_aggregates().await.unwrap(), &want, "after rebuild");
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
