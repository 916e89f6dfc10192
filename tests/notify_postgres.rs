//! Notifications from replicas sharing one PostgreSQL: a verdict change is
//! delivered once, not once per replica, and a delivery whose sender dies
//! mid-try is finished by another replica once its lease runs out.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::receiver::Receiver;
use common::{serve_postgres_with, Server, EXPERIMENTS, NOW};
use offerlab::assignment::{evaluate, Attributes};
use offerlab::experiment::load_dir;
use serde_json::{json, Value};

const CART: &str = "cart-protection-copy";
const CHECKOUT: &str = "checkout-addon-price-display";

fn experiments(root: &Path, notify: &str) -> std::path::PathBuf {
    let dir = root.join("experiments");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(EXPERIMENTS).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.join("notify.toml"), notify).unwrap();
    dir
}

fn webhook(name: &str, url: &str, experiment: &str) -> String {
    format!(
        "[[webhook]]\nname = \"{name}\"\nurl = \"{url}\"\non = [\"sample_ratio_mismatch\"]\nexperiments = [\"{experiment}\"]\nsecret_env = \"SECRET_OPS\"\n\n"
    )
}

fn replica(store: &str, dir: &Path) -> Server {
    let env = [("OFFERLAB_NOW", NOW), ("OFFERLAB_NOTIFY_EVERY", "1h"), ("SECRET_OPS", "ops-secret")];
    serve_postgres_with(store, dir, &env)
}

fn evaluations(url: &str, n: f64) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let text = reqwest::blocking::get(format!("{url}/metrics")).unwrap().text().unwrap();
        let done = text
            .lines()
            .find_map(|l| l.strip_prefix("offerlab_verdict_evaluations_total").and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0);
        if done >= n {
            return;
        }
        assert!(Instant::now() < until, "{n} evaluations did not happen at {url}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn reload(url: &str) {
    let r = reqwest::blocking::Client::new().post(format!("{url}/admin/reload")).send().unwrap();
    assert!(r.status().is_success(), "reload: {}", r.text().unwrap());
}

/// Exposures that break a test's split: 240 in its control, 8 in the rest.
fn broken_split(id: &str) -> Value {
    let catalog = load_dir(Path::new(EXPERIMENTS)).unwrap();
    let exp = catalog.get(id).unwrap();
    let (mut control, mut others) = (Vec::new(), Vec::new());
    for i in 0.. {
        let visitor = format!("srm-{id}-{i}");
        let Some(a) = evaluate(exp, &visitor, &Attributes::new(), None).filter(|a| a.in_experiment) else { continue };
        let exposure = json!({ "visitor_id": visitor, "experiment": id, "variant": exp.variants[a.variant.get()].key,
                               "ts": "2026-11-29T10:00:00Z" });
        match a.variant.get() {
            0 if control.len() < 240 => control.push(exposure),
            v if v > 0 && others.len() < 8 => others.push(exposure),
            _ => {}
        }
        if control.len() == 240 && others.len() == 8 {
            break;
        }
    }
    Value::Array(control.into_iter().chain(others).collect())
}

fn expose(url: &str, body: &Value) {
    let r = reqwest::blocking::Client::new().post(format!("{url}/v1/exposures")).json(body).send().unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());
}

#[test]
fn replicas_deliver_a_change_once_and_finish_a_dead_replicas_delivery() {
    let Some(pg) = Postgres::start("replicas_deliver_a_change_once_and_finish_a_dead_replicas_delivery") else {
        return;
    };
    let store = pg.database();
    let once = Receiver::start(vec![]);
    // Holds its first request 5 s before answering: its sender is mid-try.
    let handover = Receiver::start_with_delay(vec![], Duration::from_secs(5));
    let root = tempfile::tempdir().unwrap();
    let dir = experiments(
        root.path(),
        &[webhook("once", &once.url, CART), webhook("handover", &handover.url, CHECKOUT)].concat(),
    );

    // Both replicas re-evaluate at once: one records the change and its
    // delivery, the other finds it recorded.
    let (a, mut b) = (replica(&store, &dir), replica(&store, &dir));
    evaluations(&a.url, 1.0);
    evaluations(&b.url, 1.0);
    expose(&a.url, &broken_split(CART));
    std::thread::scope(|s| {
        s.spawn(|| reload(&a.url));
        s.spawn(|| reload(&b.url));
    });
    once.wait_for(1, Duration::from_secs(30));
    evaluations(&a.url, 2.0);
    evaluations(&b.url, 2.0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(once.received().len(), 1, "one delivery from two replicas");

    // Replica a alone sees the next change and starts trying it; b comes up
    // meanwhile (its delivery is leased to a), then a is killed mid-try.
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    expose(&a.url, &broken_split(CHECKOUT));
    reload(&a.url);
    let first = handover.wait_for(1, Duration::from_secs(30));
    let c = replica(&store, &dir);
    evaluations(&c.url, 1.0);
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let tries = handover.wait_for(2, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(handover.received().len(), 2, "the survivor finished it once");
    let id = first[0].header("x-offerlab-delivery");
    assert!(tries.iter().all(|t| t.header("x-offerlab-delivery") == id), "one delivery id");
    let db = store.rsplit('/').next().unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while pg.sql(db, "SELECT count(*) FROM deliveries") != "0" {
        assert!(Instant::now() < until, "the delivery is still stored");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(pg.sql(db, "SELECT record->>'delivered' FROM last_deliveries WHERE webhook = 'handover'"), "true");
    drop(c);
}
