//! The store at its edges: a record that does not decode stops only the
//! write that touches it and is never overwritten; a full queue refuses
//! at once; a folder of the older layout is upgraded from its raw records.

use std::future::Future;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use offerlab::assignment::{evaluate, Attributes};
use offerlab::experiment::{load_dir, Catalog};
use offerlab::records::{Event, Exposure};
use offerlab::store::sled::held_elsewhere;
use offerlab::store::sled::keys::event_chunk_key;
use offerlab::store::sled::trees::{digest_page, OPEN_CHUNK};
use offerlab::store::{Outcome, SledStore, Store, StoreError, Write};

mod common;

/// Opens the store in `path` once the handle dropped before it has let go
/// of the folder: sled's background threads release its lock a moment
/// after the last handle is dropped.
async fn open(path: &Path) -> SledStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match SledStore::open(path).await {
            Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            other => return other.unwrap(),
        }
    }
}

/// The folder as plain sled, to write what an older layout or a fault left,
/// once the last handle has let go of it (as [`open`]).
fn raw(path: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::open(path) {
            Err(e) if std::time::Instant::now() < deadline && held_elsewhere(&e) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            other => return other.unwrap(),
        }
    }
}

fn catalog() -> Arc<Catalog> {
    Arc::new(load_dir(Path::new(common::EXPERIMENTS)).unwrap())
}

/// A typed id parsed from test text.
fn p<T: std::str::FromStr<Err = String>>(s: &str) -> T {
    s.parse().unwrap()
}

fn event(id: &str, visitor: &str) -> Write {
    Write::Event(Event {
        id: p(id),
        visitor: p(visitor),
        name: p("order"),
        value: 20.0,
        ts: Utc.with_ymd_and_hms(2026, 11, 12, 10, 0, 0).unwrap(),
    })
}

/// The visitor's exposure to `exp` in its assigned variant, two days
/// before the events of [`event`].
fn first_exposure(exp: &offerlab::experiment::Experiment, visitor: &str) -> Exposure {
    let a = evaluate(exp, visitor, &Attributes::new(), None).unwrap();
    Exposure {
        visitor: p(visitor),
        experiment: exp.id.clone(),
        variant: a.variant,
        ts: Utc.with_ymd_and_hms(2026, 11, 10, 9, 0, 0).unwrap(),
        phase: 1,
        attributes: Default::default(),
    }
}

const GARBAGE: &[u8] = b"\xff not json";

#[tokio::test]
async fn an_undecodable_record_stops_its_write_names_the_key_and_is_never_overwritten() {
    let catalog = catalog();
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path()).await;
        store.record(catalog.clone(), vec![event("a-1", "alice"), event("b-1", "bob")]).await.unwrap();
        store.close().await.unwrap();
    }
    {
        let db = raw(dir.path());
        db.open_tree("visitor_events").unwrap().insert(event_chunk_key(&p("alice"), OPEN_CHUNK), GARBAGE).unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path()).await;
    // Both requests may share a group commit: only Alice's may fail.
    let (alice, bob) = tokio::join!(
        store.record(catalog.clone(), vec![event("a-2", "alice")]),
        store.record(catalog.clone(), vec![event("b-2", "bob")]),
    );
    let message = match alice {
        Err(e) => e.to_string(),
        Ok(o) => panic!("a write over a corrupt record was acknowledged: {o:?}"),
    };
    assert!(message.contains("visitor_events") && message.contains("alice"), "names tree and key: {message}");
    assert!(message.contains("restore it from a backup (`offerlab restore"), "the events are raw data: {message}");
    assert_eq!(bob.unwrap(), vec![Outcome::Accepted], "the other request of the group is written");
    store.close().await.unwrap();
    drop(store);

    {
        let db = raw(dir.path());
        let kept =
            db.open_tree("visitor_events").unwrap().get(event_chunk_key(&p("alice"), OPEN_CHUNK)).unwrap().unwrap();
        assert_eq!(kept.as_ref(), GARBAGE, "the record was left as it was");
    }
    let store = open(dir.path()).await;
    let refused = store.rebuild(&catalog).await.unwrap_err().to_string();
    assert!(refused.contains("visitor_events") && refused.contains("alice"), "rebuild names it too: {refused}");
    store.close().await.unwrap();
    drop(store);
    let db = raw(dir.path());
    let kept = db.open_tree("visitor_events").unwrap().get(event_chunk_key(&p("alice"), OPEN_CHUNK)).unwrap().unwrap();
    assert_eq!(kept.as_ref(), GARBAGE, "a rebuild never overwrites raw events it cannot read");
}

/// A record that decodes as JSON but holds what no check would have let
/// in (a variant beyond any test's, an empty visitor id) is corrupt as
/// well: it stops the write that reads it and `verify`, and is never read
/// as the control or as some visitor.
#[tokio::test]
async fn a_well_formed_record_with_an_impossible_variant_or_id_is_corrupt() {
    let catalog = catalog();
    let dir = tempfile::tempdir().unwrap();
    let exp = catalog.get("cart-protection-copy").unwrap();
    {
        let store = open(dir.path()).await;
        store.record(catalog.clone(), vec![Write::Exposure(first_exposure(exp, "alice"))]).await.unwrap();
        store.close().await.unwrap();
    }
    let stored = {
        let db = raw(dir.path());
        let tree = db.open_tree("exposures").unwrap();
        let stored = tree.get("alice").unwrap().unwrap();
        let text = String::from_utf8(stored.to_vec()).unwrap();
        let bad = text.replacen(&format!("\"variant\":{}", first_exposure(exp, "alice").variant), "\"variant\":150", 1);
        assert_ne!(bad, text, "the variant was rewritten");
        tree.insert("alice", bad.as_bytes()).unwrap();
        db.flush().unwrap();
        stored
    };
    let store = open(dir.path()).await;
    let e = store.record(catalog.clone(), vec![event("a-1", "alice")]).await.expect_err("a write over it fails");
    assert!(e.to_string().contains("exposures") && e.to_string().contains("150"), "{e}");
    let e = store.verify(&catalog).await.expect_err("verify reads it too");
    assert!(matches!(e, StoreError::Corrupt(_)), "{e}");
    store.close().await.unwrap();
    drop(store);
    {
        let db = raw(dir.path());
        let tree = db.open_tree("exposures").unwrap();
        let text = String::from_utf8(stored.to_vec()).unwrap().replace("\"alice\"", "\"\"");
        tree.insert("alice", text.as_bytes()).unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path()).await;
    let e = store.verify(&catalog).await.expect_err("an empty visitor id is no visitor");
    assert!(e.to_string().contains("visitor_id is empty"), "{e}");
}

// The gate below blocks the writer's thread: the test runs on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_at_once_instead_of_growing() {
    let catalog = catalog();
    let dir = tempfile::tempdir().unwrap();
    let limits = offerlab::store::engine::Limits { max_queued: 1, ..Default::default() };
    let store = Arc::new(SledStore::open_with(dir.path(), limits).await.unwrap());
    // Hold the writer inside its first group commit until released.
    let (entered, in_commit) = mpsc::channel::<()>();
    let (release, released) = mpsc::channel::<()>();
    let gate = Mutex::new((entered, released));
    store.on_flush(Box::new(move |_| {
        let gate = gate.lock().unwrap();
        let _ = gate.0.send(());
        let _ = gate.1.recv();
    }));
    let first = tokio::spawn({
        let (store, catalog) = (store.clone(), catalog.clone());
        async move { store.record(catalog, vec![event("q-1", "v")]).await }
    });
    tokio::task::spawn_blocking(move || in_commit.recv().unwrap()).await.unwrap();
    // The second request takes the one place in the queue (one poll sends
    // it); the next is refused at once.
    let mut second = Box::pin(store.record(catalog.clone(), vec![event("q-2", "v")]));
    std::future::poll_fn(|cx| {
        assert!(second.as_mut().poll(cx).is_pending(), "the second request waits in the queue");
        std::task::Poll::Ready(())
    })
    .await;
    let third = match store.record(catalog.clone(), vec![event("q-3", "v")]).await {
        Err(e) if matches!(*e, StoreError::Busy) => e,
        other => panic!("expected a refusal while the queue is full, got {other:?}"),
    };
    assert!(third.to_string().contains("retry"), "{third}");
    release.send(()).unwrap();
    release.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap(), vec![Outcome::Accepted]);
    assert_eq!(second.await.unwrap(), vec![Outcome::Accepted]);
    assert_eq!(store.counts().await.unwrap(), (0, 2), "the refused write stored nothing");
}

#[tokio::test]
async fn a_folder_of_the_older_layout_is_upgraded_from_its_raw_records() {
    let catalog = catalog();
    let dir = tempfile::tempdir().unwrap();
    let exp = catalog.get("cart-protection-copy").unwrap();
    let exposure = first_exposure(exp, "old-timer");
    let Write::Event(order) = event("o-old", "old-timer") else { unreachable!() };
    {
        // What format 1 wrote: raw trees as today, a list of events per
        // visitor, aggregates keyed by day offset, no format marker.
        let db = raw(dir.path());
        db.open_tree("exposures").unwrap().insert("old-timer", serde_json::to_vec(&[&exposure]).unwrap()).unwrap();
        db.open_tree("events").unwrap().insert("o-old", serde_json::to_vec(&order).unwrap()).unwrap();
        db.open_tree("visitor_events").unwrap().insert("old-timer", serde_json::to_vec(&[&order]).unwrap()).unwrap();
        db.open_tree("aggregates").unwrap().insert(b"cart-protection-copy\0junk", &b"{}"[..]).unwrap();
        // Layouts 2 to 4 counted each visitor's events in a tree of their own.
        db.open_tree("visitors").unwrap().insert("old-timer", &b"{\"events\":1}"[..]).unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path()).await;
    assert!(store.outdated());
    store.rebuild(&catalog).await.unwrap();
    let rows = store.aggregate_rows(exp).await.unwrap();
    let aov = rows.iter().find(|r| r.metric == "revenue_per_visitor").expect("the visitor's row");
    assert_eq!((aov.date.to_string(), aov.moments.n, aov.moments.sum), ("2026-11-10".into(), 1, 20.0));
    // The rebuilt tallies name their first exposure, as a capped report's
    // pass over them needs.
    let mut seen = Vec::new();
    store.visit_tallies(exp, false, &mut |v| seen.push((v.variant, v.ts, v.tallies.origin.is_some()))).await.unwrap();
    assert_eq!(seen, vec![(exposure.variant, exposure.ts, true)]);
    assert_eq!(store.events_of(&p("old-timer")).await.unwrap(), vec![order]);
    drop(store);
    assert!(!open(dir.path()).await.outdated(), "upgraded once");
    let db = raw(dir.path());
    assert!(!db.tree_names().iter().any(|n| n.as_ref() == b"visitors"), "the old count tree is dropped");
    assert!(!db.tree_names().iter().any(|n| n.as_ref() == b"events"), "the old tree of events by id is dropped");
    drop(db);
    let store = open(dir.path()).await;
    let again = store.record(catalog.clone(), vec![event("o-old", "old-timer")]).await.unwrap();
    assert_eq!(again, vec![Outcome::Duplicate], "an id stored before the upgrade is still known for its visitor");
}

/// A folder of layout 8 (before value index floors) holds nothing layout
/// 9 reads differently: it is marked, not rebuilt, and keeps its records
/// and value index.
#[tokio::test]
async fn a_layout_8_folder_is_marked_and_serves_without_a_rebuild() {
    let catalog = catalog();
    let dir = tempfile::tempdir().unwrap();
    let exp = catalog.get("cart-protection-copy").unwrap();
    {
        let store = open(dir.path()).await;
        let writes = vec![Write::Exposure(first_exposure(exp, "eight")), event("o-8", "eight")];
        store.record(catalog.clone(), writes).await.unwrap();
        store.close().await.unwrap();
    }
    {
        let db = raw(dir.path());
        db.open_tree("meta").unwrap().insert("format", &8u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path()).await;
    assert!(!store.outdated(), "a layout-8 folder needs no rebuild");
    assert_eq!(store.verify(&catalog).await.unwrap(), Vec::<String>::new(), "its index is as the records give it");
    let again = store.record(catalog.clone(), vec![event("o-8", "eight")]).await.unwrap();
    assert_eq!(again, vec![Outcome::Duplicate]);
    store.close().await.unwrap();
    let db = raw(dir.path());
    let format = db.open_tree("meta").unwrap().get("format").unwrap().unwrap();
    assert_eq!(format.as_ref(), &9u64.to_be_bytes()[..], "marked as layout 9");
}

/// A visitor's events fill chunks of eight and go on in a new open chunk:
/// the history reads back whole and in order across them, before and
/// after a restart, and an exposure that arrives last counts all of it.
#[tokio::test]
async fn a_long_history_reads_back_in_order_across_full_chunks() {
    let catalog = catalog();
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..21).map(|i| format!("long-{i}")).collect();
    let exp = catalog.get("cart-protection-copy").unwrap();
    {
        let store = open(dir.path()).await;
        for batch in ids.chunks(5) {
            let writes = batch.iter().map(|id| event(id, "long")).collect();
            let outcomes = store.record(catalog.clone(), writes).await.unwrap();
            assert!(outcomes.iter().all(|o| *o == Outcome::Accepted), "{outcomes:?}");
        }
        let read: Vec<String> =
            store.events_of(&p("long")).await.unwrap().into_iter().map(|e| e.id.into_string()).collect();
        assert_eq!(read, ids);
        store.record(catalog.clone(), vec![Write::Exposure(first_exposure(exp, "long"))]).await.unwrap();
        store.close().await.unwrap();
    }
    let store = open(dir.path()).await;
    let read: Vec<String> =
        store.events_of(&p("long")).await.unwrap().into_iter().map(|e| e.id.into_string()).collect();
    assert_eq!(read, ids, "after a restart");
    let orders = store.aggregate_rows(exp).await.unwrap();
    let revenue = orders.iter().find(|r| r.metric == "revenue_per_visitor").expect("the visitor's row");
    assert_eq!((revenue.moments.n, revenue.moments.sum), (1, 21.0 * 20.0), "every event counts");
    assert_eq!(
        store.recompute(&catalog).await.unwrap().aggregates,
        store.all_aggregates().await.unwrap(),
        "as a recomputation says"
    );
    // Ids are unique per visitor: an id in a full chunk is found again for
    // its visitor (a retry, or a conflict), and is another event for
    // another visitor; a rebuild keeps that.
    let Write::Event(mut changed) = event("long-2", "long") else { unreachable!() };
    changed.value += 1.0;
    for round in ["before a rebuild", "after a rebuild"] {
        let outcomes = store
            .record(
                catalog.clone(),
                vec![event("long-2", "long"), Write::Event(changed.clone()), event("long-17", "long")],
            )
            .await
            .unwrap();
        assert_eq!(outcomes, vec![Outcome::Duplicate, Outcome::Conflict, Outcome::Duplicate], "{round}");
        store.rebuild(&catalog).await.unwrap();
    }
    let other = store.record(catalog.clone(), vec![event("long-2", "someone-else")]).await.unwrap();
    assert_eq!(other, vec![Outcome::Accepted], "the same id for another visitor is another event");
    assert_eq!(store.counts().await.unwrap().1, 22);
}

/// A visitor with thousands of events keeps every value of its events
/// small: sled 0.34 keeps a node over a quarter of its 512 KiB segment in a
/// file under `blobs/` that it never syncs, and before digest pages one
/// visitor's open chunk passed that at about 6,000 events. Ids on every
/// page are still known for the visitor, a rebuild writes a lost page
/// again, and reading the history skips the pages.
#[tokio::test]
async fn a_visitor_with_many_events_keeps_every_value_small_and_every_id_known() {
    const EVENTS: usize = 10_000;
    let catalog = catalog();
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path()).await;
        for first in (0..EVENTS).step_by(1_000) {
            let writes = (first..first + 1_000).map(|i| event(&format!("bot-{i}"), "bot")).collect();
            let outcomes = store.record(catalog.clone(), writes).await.unwrap();
            assert!(outcomes.iter().all(|o| *o == Outcome::Accepted));
        }
        assert_eq!(store.events_of(&p("bot")).await.unwrap().len(), EVENTS);
        assert_eq!(store.counts().await.unwrap().1, EVENTS);
        store.close().await.unwrap();
    }
    let blobs = std::fs::read_dir(dir.path().join("blobs")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(blobs, 0, "sled kept a value in a blob file");
    {
        let db = raw(dir.path());
        let tree = db.open_tree("visitor_events").unwrap();
        let largest = tree.iter().map(|kv| kv.unwrap().1.len()).max().unwrap();
        assert!(largest < 16 * 1024, "a value of {largest} bytes");
        assert!(tree.get(event_chunk_key(&p("bot"), digest_page(0))).unwrap().is_some(), "no digest page");
        // A page lost (or never written) is refused, not read as empty.
        tree.remove(event_chunk_key(&p("bot"), digest_page(0))).unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path()).await;
    let lost = store.record(catalog.clone(), vec![event("bot-3", "bot")]).await;
    assert!(matches!(lost.as_ref().map_err(|e| &**e), Err(StoreError::Corrupt(_))), "{lost:?}");
    store.rebuild(&catalog).await.unwrap();
    let Write::Event(mut changed) = event("bot-3", "bot") else { unreachable!() };
    changed.value += 1.0;
    let writes = vec![
        event("bot-3", "bot"),
        Write::Event(changed),
        event(&format!("bot-{}", EVENTS - 1), "bot"),
        event("bot-new", "bot"),
    ];
    let outcomes = store.record(catalog.clone(), writes).await.unwrap();
    assert_eq!(outcomes, vec![Outcome::Duplicate, Outcome::Conflict, Outcome::Duplicate, Outcome::Accepted]);
    assert_eq!(store.events_of(&p("bot")).await.unwrap().len(), EVENTS + 1);
}
