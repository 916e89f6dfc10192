//! Crash safety: the real server as a child process, 8 concurrent clients,
//! SIGKILL mid-stream, a restart on the same folder. Every acknowledged
//! exposure and event must be there exactly once, and the aggregates must
//! equal a rebuild. Five rounds.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use offerlab::assignment::{assign_all, AssignQuery};
use offerlab::experiment::{load_dir, Catalog};
use offerlab::store::{SledStore, Store};
use serde_json::{json, Value};

mod common;

use common::{serve, EXPERIMENTS};

#[derive(Default)]
struct Acked {
    exposures: BTreeSet<(String, String)>,
    events: BTreeSet<String>,
}

/// One client: alternates exposures (from the real assignment) and batches
/// of events, until the server stops answering or the count runs out.
fn client(id: usize, address: String, catalog: Arc<Catalog>, acked: Arc<Mutex<Acked>>, total: Arc<AtomicUsize>) {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    for i in 0..3000 {
        let visitor = format!("c{id}-v{i}");
        let q = AssignQuery::new(visitor.parse().unwrap());
        let exposures: Vec<Value> = assign_all(&catalog, &q)
            .unwrap()
            .into_iter()
            .filter(|a| a.in_experiment)
            .map(|a| json!({ "visitor_id": visitor, "experiment": a.exp.id.as_str(), "variant": a.variant().key }))
            .collect();
        let Ok(r) = http.post(format!("{address}/v1/exposures")).json(&exposures).send() else {
            return;
        };
        if !r.status().is_success() {
            return;
        }
        let Ok(body) = r.json::<Value>() else { return };
        {
            let mut a = acked.lock().unwrap();
            for (x, result) in exposures.iter().zip(body["results"].as_array().unwrap()) {
                assert_ne!(result["status"], "rejected", "{result}");
                a.exposures.insert((visitor.clone(), x["experiment"].as_str().unwrap().to_owned()));
            }
        }
        let events: Vec<Value> = (0..3)
            .map(|k| {
                let name = ["order", "upsell_accepted", "return"][k];
                json!({ "id": format!("c{id}-e{i}-{k}"), "visitor_id": visitor, "name": name, "value": 25.5 })
            })
            .collect();
        let Ok(r) = http.post(format!("{address}/v1/events")).json(&events).send() else {
            return;
        };
        if !r.status().is_success() || r.json::<Value>().is_err() {
            return;
        }
        acked.lock().unwrap().events.extend(events.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        total.fetch_add(4, Ordering::SeqCst);
    }
}

fn crash_round(round: usize) {
    let catalog = Arc::new(load_dir(Path::new(EXPERIMENTS)).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path(), Path::new(EXPERIMENTS));
    let address = server.url.clone();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let total = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|id| {
            let (address, catalog, acked, total) = (address.clone(), catalog.clone(), acked.clone(), total.clone());
            std::thread::spawn(move || client(id, address, catalog, acked, total))
        })
        .collect();

    // Kill once a few hundred writes are acknowledged: mid-stream by construction.
    let threshold = 200 + 100 * round;
    let deadline = Instant::now() + Duration::from_secs(60);
    while total.load(Ordering::SeqCst) < threshold {
        assert!(Instant::now() < deadline, "clients made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    for c in clients {
        c.join().unwrap();
    }

    // The server restarts on the crashed folder and answers.
    let again = serve(dir.path(), Path::new(EXPERIMENTS));
    let health: Value = reqwest::blocking::get(format!("{}/healthz", again.url)).unwrap().json().unwrap();
    assert_eq!(health["status"], "ok");
    drop(again);

    let acked = std::mem::take(&mut *acked.lock().unwrap());
    common::block_on(async {
        let store = SledStore::open(dir.path()).await.unwrap();
        let exposures: BTreeSet<(String, String)> = store
            .exposures()
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.visitor.into_string(), e.experiment.into_string()))
            .collect();
        let events = store.events().await.unwrap();
        let event_ids: BTreeSet<String> = events.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(event_ids.len(), events.len(), "each event once");
        assert_eq!(exposures.len(), store.counts().await.unwrap().0, "each exposure once");
        let lost_x: Vec<_> = acked.exposures.difference(&exposures).collect();
        let lost_e: Vec<_> = acked.events.difference(&event_ids).collect();
        assert!(lost_x.is_empty() && lost_e.is_empty(), "round {round}: lost exposures {lost_x:?}, events {lost_e:?}");
        assert!(!acked.events.is_empty());

        let kept = store.all_aggregates().await.unwrap();
        let rebuilt = store.recompute(&catalog).await.unwrap().aggregates;
        assert_eq!(kept.keys().collect::<Vec<_>>(), rebuilt.keys().collect::<Vec<_>>(), "round {round}");
        for (k, m) in &rebuilt {
            assert!(kept[k].approx_eq(m, 1e-9), "round {round}: {k:?}: kept {:?}, rebuilt {m:?}", kept[k]);
        }
        store.close().await.unwrap();
    });
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    for round in 0..5 {
        crash_round(round);
    }
}
