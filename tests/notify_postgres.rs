//! Notifications from replicas sharing one PostgreSQL: a verdict change is
//! delivered once, not once per replica, and a delivery whose sender dies
//! mid-try is finished by another replica once its lease runs out.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::notify::{broken_split, evaluations, experiments_with, expose, reload, webhook, Receiver};
use common::postgres::Postgres;
use common::{serve_postgres_with, Server, NOW};

const CART: &str = "cart-protection-copy";
const CHECKOUT: &str = "checkout-addon-price-display";

fn replica(store: &str, dir: &Path) -> Server {
    let env = [("OFFERLAB_NOW", NOW), ("OFFERLAB_NOTIFY_EVERY", "1h"), ("SECRET_OPS", "ops-secret")];
    serve_postgres_with(store, dir, &env)
}

fn srm_webhook(name: &str, url: &str, experiment: &str) -> String {
    webhook(name, url, "json", "\"sample_ratio_mismatch\"", experiment, "SECRET_OPS")
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
    let hooks = [srm_webhook("once", &once.url, CART), srm_webhook("handover", &handover.url, CHECKOUT)];
    let dir = experiments_with(root.path(), &hooks.concat());

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
