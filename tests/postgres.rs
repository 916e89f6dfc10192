//! The PostgreSQL store against the same truth as sled: two stores (two
//! replicas) on one database take shuffled writes concurrently and end with
//! exactly the aggregates one store would have; the schema migrates once
//! and a newer schema is refused. Each test starts its own PostgreSQL and
//! says loudly when it cannot.

mod common;

use std::sync::Arc;

use common::postgres::Postgres;
use common::writes::{
    assert_capped_from_index, assert_same, catalog, catalog_with_cap, expected, generate, send_concurrently,
};
use offerlab::store::{PgStore, Store, StoreError, Write};
use rand::rngs::StdRng;
use rand::SeedableRng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_writing_the_same_visitors_at_once_count_each_write_once() {
    let Some(pg) = Postgres::start("two_replicas_writing_the_same_visitors_at_once_count_each_write_once") else {
        return;
    };
    let url = pg.database();
    let catalog = catalog();
    let mut rng = StdRng::seed_from_u64(7);
    let (truth, writes) = generate(&catalog, &mut rng, 10_000);
    let replicas = [Arc::new(PgStore::open(&url).await.unwrap()), Arc::new(PgStore::open(&url).await.unwrap())];

    // Eight senders, four per replica, batches of up to 25: a visitor's
    // writes, and its retries, land on both replicas at the same time.
    send_concurrently(&replicas, &catalog, &writes, 25, 8).await;
    let (exposures, events) = replicas[0].counts().await.unwrap();
    assert_eq!((exposures, events), (truth.exposures.len(), truth.events.len()), "each stored exactly once");
    assert_same(&replicas[1].all_aggregates().await.unwrap(), &expected(&catalog, &truth), "two replicas");
    assert_capped_from_index(replicas[1].as_ref(), &catalog, true).await;
    assert_eq!(
        replicas[0].verify(&catalog).await.unwrap(),
        Vec::<String>::new(),
        "the kept index is the recomputed one"
    );
    replicas[0].rebuild(&catalog).await.unwrap();
    assert_same(&replicas[1].all_aggregates().await.unwrap(), &expected(&catalog, &truth), "after rebuild");
    assert_capped_from_index(replicas[1].as_ref(), &catalog, true).await;
}

/// Floors raised over and over while two replicas write: a writer that
/// read a floor just before it rose leaves rows at or below it, which no
/// read looks at; every report read from the index still equals the full
/// pass, and `verify` finds the index as the raw records give it above
/// its floors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floors_raised_while_two_replicas_write_keep_capped_reports_exact() {
    let Some(pg) = Postgres::start("floors_raised_while_two_replicas_write_keep_capped_reports_exact") else {
        return;
    };
    for (i, cap) in ["{ percentile = 0.99, ignore_zeros = true }", "{ absolute = 80.0 }"].into_iter().enumerate() {
        let url = pg.database();
        let catalog = catalog_with_cap(Some(cap));
        let mut rng = StdRng::seed_from_u64(2800 + i as u64);
        let (_, writes) = generate(&catalog, &mut rng, 6_000);
        let replicas = [Arc::new(PgStore::open(&url).await.unwrap()), Arc::new(PgStore::open(&url).await.unwrap())];
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let raiser = {
            let (store, catalog, done) = (replicas[0].clone(), catalog.clone(), done.clone());
            tokio::spawn(async move {
                let (mut seen, mut raised) = (std::collections::HashMap::new(), 0);
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    seen.clear();
                    raised += offerlab::floors::raise_all(store.as_ref(), &catalog, &mut seen).await.unwrap();
                    tokio::task::yield_now().await;
                }
                raised
            })
        };
        send_concurrently(&replicas, &catalog, &writes, 25, 8).await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let raised = raiser.await.unwrap();
        assert!(raised > 0, "{cap}: no floor was raised while the replicas wrote");
        assert_capped_from_index(replicas[1].as_ref(), &catalog, true).await;
        assert_eq!(replicas[0].verify(&catalog).await.unwrap(), Vec::<String>::new(), "{cap}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_migrates_once_and_a_newer_one_is_refused() {
    let Some(pg) = Postgres::start("the_schema_migrates_once_and_a_newer_one_is_refused") else { return };
    let url = pg.database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    drop(PgStore::open(&url).await.unwrap());
    drop(PgStore::open(&url).await.unwrap());
    assert_eq!(
        pg.sql(&db, "SELECT string_agg(version::text, ',' ORDER BY version) FROM offerlab_migrations"),
        "1,2,3,4,5,6,7,8"
    );
    pg.sql(&db, "INSERT INTO offerlab_migrations (version) VALUES (99)");
    match PgStore::open(&url).await {
        Err(e @ StoreError::NewerSchema { found: 99, .. }) => {
            assert!(e.to_string().contains("run a newer offerlab"), "{e}")
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = PgStore::open(&format!("postgres://offerlab@127.0.0.1:{port}/none")).await.err().expect("refused");
    assert!(e.to_string().contains("PostgreSQL") || e.to_string().contains("connection"), "{e}");
    let e = PgStore::open("postgres://[bad").await.err().expect("refused");
    assert!(e.to_string().contains("postgres://USER:PASSWORD@HOST:PORT/DATABASE"), "{e}");
}

/// A row that holds what no check would have let in (a variant beyond any
/// test's, a negative one, an event name with a control character) is
/// corrupt: `verify` and the writes that read it fail naming the table,
/// and it is never read as the control or as some other name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_with_an_impossible_variant_or_name_is_corrupt() {
    let Some(pg) = Postgres::start("a_row_with_an_impossible_variant_or_name_is_corrupt") else { return };
    let url = pg.database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let catalog = catalog();
    let mut rng = StdRng::seed_from_u64(11);
    let (_, writes) = generate(&catalog, &mut rng, 200);
    let store = PgStore::open(&url).await.unwrap();
    store.record(catalog.clone(), writes).await.unwrap();
    assert!(store.verify(&catalog).await.unwrap().is_empty(), "the store agrees with its raw records");
    for (corrupt, mend, says) in [
        (
            "UPDATE exposures SET variant = 150 WHERE visitor = (SELECT min(visitor) FROM exposures)",
            "UPDATE exposures SET variant = 0 WHERE variant = 150",
            "variant 150 is out of range",
        ),
        (
            "UPDATE exposures SET variant = -1 WHERE visitor = (SELECT min(visitor) FROM exposures)",
            "UPDATE exposures SET variant = 0 WHERE variant = -1",
            "variant -1 is out of range",
        ),
        (
            "UPDATE events SET name = E'order\\n' WHERE id = (SELECT min(id) FROM events)",
            "UPDATE events SET name = 'order' WHERE name = E'order\\n'",
            "name must be 1 to 64 bytes of printable text",
        ),
    ] {
        pg.sql(&db, corrupt);
        match store.verify(&catalog).await {
            Err(e @ StoreError::Corrupt(_)) => assert!(e.to_string().contains(says), "{corrupt}: {e}"),
            other => panic!("{corrupt}: read as {other:?}"),
        }
        pg.sql(&db, mend);
    }
    store.close().await.unwrap();
}

/// An exposure and an event at the same instant, to the nanosecond: the
/// event counts on PostgreSQL (which keeps microseconds) as on sled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_at_the_exposures_instant_counts_whatever_the_precision() {
    use offerlab::records::{Event, Exposure};
    use offerlab::tracking::parse_ts;
    let Some(pg) = Postgres::start("an_event_at_the_exposures_instant_counts_whatever_the_precision") else {
        return;
    };
    let catalog = catalog();
    let store = PgStore::open(&pg.database()).await.unwrap();
    let exp = catalog.get("cart-protection-copy").unwrap();
    let variant = offerlab::assignment::evaluate(exp, "v-ns", &Default::default(), None).unwrap().variant;
    let raw = "2026-11-20T12:00:00.123456789Z";
    let ts = parse_ts(Some(raw), raw.parse().unwrap()).unwrap();
    let event = Event { id: p("ns-1"), visitor: p("v-ns"), name: p("cart_offer_accepted"), value: 19.0, ts };
    let exposure = Exposure {
        visitor: p("v-ns"),
        experiment: exp.id.clone(),
        variant,
        ts,
        phase: 1,
        attributes: Default::default(),
    };
    // The event first: the exposure picks it up from what PostgreSQL kept.
    store.record(catalog.clone(), vec![Write::Event(event)]).await.unwrap();
    store.record(catalog.clone(), vec![Write::Exposure(exposure)]).await.unwrap();
    let rows = store.aggregate_rows(exp).await.unwrap();
    let primary = rows.iter().find(|r| r.metric == exp.primary_metric).unwrap();
    assert_eq!((primary.moments.n, primary.moments.sum), (1, 1.0), "{rows:?}");
}

/// The same events sent through two replicas at once: each is stored
/// once, whichever replica wins its visitor's lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_sent_to_two_replicas_at_once_is_stored_once() {
    use chrono::TimeZone;
    use offerlab::records::Event;
    use offerlab::store::Outcome;
    let Some(pg) = Postgres::start("one_event_sent_to_two_replicas_at_once_is_stored_once") else { return };
    let url = pg.database();
    let catalog = catalog();
    let replicas = [Arc::new(PgStore::open(&url).await.unwrap()), Arc::new(PgStore::open(&url).await.unwrap())];
    let ts = chrono::Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
    // Each replica sends every event, as a storefront retrying through
    // another replica would: ids are unique per visitor, so one of each
    // pair is stored and the other is `duplicate`; then the same ids for
    // other visitors are other events.
    for (visitors, stored) in [("v", 400), ("w", 800)] {
        let mut sends = Vec::new();
        for replica in &replicas {
            for part in 0..4 {
                let (store, catalog) = (replica.clone(), catalog.clone());
                sends.push(tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    for i in (part..400).step_by(4) {
                        let e = Event {
                            id: p(&format!("order-{i}")),
                            visitor: p(&format!("{visitors}-{i}")),
                            name: p("order"),
                            value: 10.0,
                            ts,
                        };
                        outcomes.extend(store.record(catalog.clone(), vec![Write::Event(e)]).await.unwrap());
                    }
                    outcomes
                }));
            }
        }
        let mut all = Vec::new();
        for s in sends {
            all.extend(s.await.unwrap());
        }
        let count = |o: Outcome| all.iter().filter(|x| **x == o).count();
        assert_eq!((count(Outcome::Accepted), count(Outcome::Duplicate)), (400, 400), "{visitors}");
        assert_eq!(replicas[0].counts().await.unwrap().1, stored);
    }
}

/// A database of schema version 1 with stored records migrates to the
/// current version keeping them: aggregates gain empty covariate sums, and
/// tallies name the first exposure they count from, so a capped report
/// finds every visitor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_one_database_migrates_with_its_records() {
    let Some(pg) = Postgres::start("a_version_one_database_migrates_with_its_records") else { return };
    let url = pg.database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    pg.sql(&db, include_str!("../migrations/postgres/0001_init.sql"));
    pg.sql(
        &db,
        "CREATE TABLE offerlab_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO offerlab_migrations (version) VALUES (1);
         INSERT INTO visitors VALUES ('v-1');
         INSERT INTO exposures VALUES ('v-1', 'cart-protection-copy', 1, 1, '2026-11-02T10:00:00.25Z');
         INSERT INTO events VALUES ('e-1', 'v-1', 'order', 42.5, '2026-11-02T11:00:00Z');
         INSERT INTO tallies VALUES ('cart-protection-copy', 1, 'v-1', '{\"order\": {\"count\": 1, \"sum\": 42.5}}');
         INSERT INTO aggregates VALUES ('cart-protection-copy', 1, 1, '2026-11-02', 'revenue_per_visitor',
                                        1, 42.5, 1806.25, 0, 0, 0);",
    );
    let store = PgStore::open(&url).await.unwrap();
    let catalog = catalog();
    let exp = catalog.get("cart-protection-copy").unwrap();
    let rows = store.aggregate_rows(exp).await.unwrap();
    let row = rows.iter().find(|r| r.metric == "revenue_per_visitor").expect("the row is kept");
    assert_eq!((row.variant.as_str(), row.moments.n, row.moments.sum, row.moments.pre_sum), ("benefit", 1, 42.5, 0.0));
    let mut seen = Vec::new();
    store
        .visit_tallies(exp, false, &mut |v| seen.push((v.variant.get(), v.ts.to_rfc3339(), v.tallies.get("order").sum)))
        .await
        .unwrap();
    assert_eq!(seen, vec![(1, "2026-11-02T10:00:00.250+00:00".to_owned(), 42.5)]);
}

/// A typed id parsed from test text.
fn p<T: std::str::FromStr<Err = String>>(s: &str) -> T {
    s.parse().unwrap()
}

/// The warehouse SQL's CUPED pre-period is 14 days of exactly 24 hours, as
/// the service counts them, whatever the database's time zone: in
/// Europe/Berlin, 14 calendar days back from 1 November 2026 cross the end
/// of summer time and are 337 hours. An order 336.5 hours before the
/// exposure is outside the window, one 335.5 hours before is inside.
#[test]
fn the_warehouse_pre_period_is_exact_hours_across_a_daylight_saving_switch() {
    let Some(pg) = Postgres::start("the_warehouse_pre_period_is_exact_hours_across_a_daylight_saving_switch") else {
        return;
    };
    let url = pg.database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    pg.sql(&db, include_str!("../migrations/postgres/0001_init.sql"));
    pg.sql(&db, include_str!("../migrations/postgres/0002_covariates.sql"));
    pg.sql(
        &db,
        &format!(
            "ALTER DATABASE {db} SET timezone TO 'Europe/Berlin';
             INSERT INTO exposures VALUES ('v-out', 'cart-protection-copy', 1, 0, '2026-11-01T12:00:00Z'),
                                          ('v-in', 'cart-protection-copy', 1, 0, '2026-11-01T12:00:00Z');
             INSERT INTO events VALUES ('o-1', 'v-out', 'order', 40, '2026-10-18T11:30:00Z'),
                                       ('o-2', 'v-in', 'order', 60, '2026-10-18T12:30:00Z');"
        ),
    );
    assert_eq!(pg.sql(&db, "SHOW timezone"), "Europe/Berlin");
    let sql = std::process::Command::new(env!("CARGO_BIN_EXE_offerlab"))
        .args(["sql", "--experiment", concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/cart-protection-copy.toml")])
        .output()
        .unwrap();
    assert!(sql.status.success(), "{}", String::from_utf8_lossy(&sql.stderr));
    let sql = String::from_utf8(sql.stdout).unwrap();
    let pre = pg.sql(
        &db,
        &format!(
            "SELECT pre_sum FROM ({}) AS q WHERE metric = 'order_conversion'",
            sql.trim_end().trim_end_matches(';')
        ),
    );
    assert_eq!(pre, "1", "only the order within 336 hours counts");
}

/// A shop in `Europe/Berlin` files visitors under Berlin's calendar day,
/// daylight saving included, in the service and in the warehouse SQL
/// alike: 22:30 UTC is the next day in summer (UTC+2) and the same day in
/// winter (UTC+1), where a fixed `+01:00` would file both on the same day.
#[test]
fn a_named_time_zone_files_days_with_daylight_saving_in_the_service_and_the_warehouse() {
    let Some(pg) =
        Postgres::start("a_named_time_zone_files_days_with_daylight_saving_in_the_service_and_the_warehouse")
    else {
        return;
    };
    let url = pg.database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    pg.sql(&db, include_str!("../migrations/postgres/0001_init.sql"));
    pg.sql(&db, include_str!("../migrations/postgres/0002_covariates.sql"));
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/cart-protection-copy.toml"))
        .unwrap()
        .replace("start = \"2026-11-02\"", "start = \"2026-10-20\"\ntimezone = \"Europe/Berlin\"");
    std::fs::write(dir.path().join("metrics.toml"), include_str!("../experiments/metrics.toml")).unwrap();
    let file = dir.path().join("cart-protection-copy.toml");
    std::fs::write(&file, text).unwrap();
    let catalog = offerlab::experiment::load_dir(dir.path()).unwrap();
    let exp = catalog.get("cart-protection-copy").unwrap();
    let firsts = ["2026-10-24T22:30:00Z", "2026-10-25T22:30:00Z", "2026-10-25T23:30:00Z"];
    let days: Vec<String> = firsts.iter().map(|t| exp.local_day(t.parse().unwrap()).to_string()).collect();
    assert_eq!(days, ["2026-10-25", "2026-10-25", "2026-10-26"], "the service's days");
    let rows: Vec<String> =
        firsts.iter().enumerate().map(|(i, t)| format!("('v-{i}', 'cart-protection-copy', 1, 0, '{t}')")).collect();
    pg.sql(&db, &format!("INSERT INTO exposures VALUES {}", rows.join(", ")));
    let sql = std::process::Command::new(env!("CARGO_BIN_EXE_offerlab"))
        .args(["sql", "--experiment"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(sql.status.success(), "{}", String::from_utf8_lossy(&sql.stderr));
    let sql = String::from_utf8(sql.stdout).unwrap();
    let warehouse = pg.sql(
        &db,
        &format!(
            "SELECT string_agg(date::text || '=' || n, ',' ORDER BY date) FROM ({}) AS q WHERE metric = 'order_conversion'",
            sql.trim_end().trim_end_matches(';')
        ),
    );
    assert_eq!(warehouse, "2026-10-25=2,2026-10-26=1", "the warehouse's days");
}
