//! A replica between "up" and "down": PostgreSQL frozen (what a network
//! black hole looks like), or refusing writes (a standby after a
//! failover). Every write is answered within the write deadline, 503 with
//! Retry-After; `/healthz` says 503 while it lasts; the replica stops on
//! SIGTERM; writes resume by themselves, and nothing acknowledged is lost.
//! Each test starts its own PostgreSQL and says loudly when it cannot.

mod common;

use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::{serve_postgres_with, EXPERIMENTS};
use reqwest::blocking::Client;
use serde_json::{json, Value};

fn http() -> Client {
    // Far beyond the 2 s deadline: the answer must come from the replica.
    Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

fn event(url: &str, id: &str) -> reqwest::blocking::Response {
    http()
        .post(format!("{url}/v1/events"))
        .json(&json!({"id": id, "visitor_id": "t-1", "name": "cart_offer_accepted", "value": 19}))
        .send()
        .unwrap()
}

/// Assigns `visitor` on the cart surface, recording the exposure.
fn expose(url: &str, visitor: &str) -> reqwest::blocking::Response {
    http()
        .post(format!("{url}/v1/assign"))
        .json(&json!({"visitor_id": visitor, "surface": "cart", "record_exposure": true}))
        .send()
        .unwrap()
}

fn health(url: &str) -> u16 {
    http().get(format!("{url}/healthz")).send().unwrap().status().as_u16()
}

/// Polls `check` every 50 ms until it holds, for at most `limit`.
fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < until, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stored_events(pg: &Postgres, db: &str) -> Vec<String> {
    pg.sql(db, "SELECT id FROM events ORDER BY id").lines().map(str::to_owned).collect()
}

#[test]
fn a_frozen_postgresql_gets_503_within_the_deadline_and_sigterm_still_stops_the_replica() {
    let Some(pg) = Postgres::start("a_frozen_postgresql_gets_503_within_the_deadline") else { return };
    let store = pg.database();
    let db = store.rsplit('/').next().unwrap().to_owned();
    let mut replica =
        serve_postgres_with(&store, std::path::Path::new(EXPERIMENTS), &[("OFFERLAB_WRITE_DEADLINE", "2")]);
    let ok = event(&replica.url, "before");
    assert_eq!(ok.status().as_u16(), 200, "{}", ok.text().unwrap());

    pg.signal_all("STOP");
    let frozen = event(&replica.url, "during");
    assert_eq!(frozen.status().as_u16(), 503);
    assert!(frozen.headers().get("retry-after").is_some(), "{:?}", frozen.headers());
    let body: Value = frozen.json().unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("did not answer within 2 s"), "{body}");
    assert_eq!(health(&replica.url), 503, "a commit stuck past the deadline reads as unhealthy");
    let assign = expose(&replica.url, "t-2");
    assert_eq!(assign.status().as_u16(), 503, "an assignment that records exposures waits no longer");

    // SIGTERM ends the replica within its grace period, PostgreSQL still frozen.
    let pid = replica.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-s", "TERM", &pid]).status().unwrap().success());
    let mut exited = None;
    wait_for("the replica stops on SIGTERM", Duration::from_secs(60), || {
        exited = replica.child.try_wait().unwrap();
        exited.is_some()
    });

    pg.signal_all("CONT");
    let stored = stored_events(&pg, &db);
    assert!(stored.contains(&"before".to_owned()), "the acknowledged write is kept: {stored:?}");

    // A new replica takes writes again.
    let replica = serve_postgres_with(&store, std::path::Path::new(EXPERIMENTS), &[("OFFERLAB_WRITE_DEADLINE", "2")]);
    wait_for("writes resume", Duration::from_secs(30), || event(&replica.url, "after").status().as_u16() == 200);
    assert_eq!(health(&replica.url), 200);
}

#[test]
fn a_read_only_postgresql_is_an_outage_until_it_takes_writes_again() {
    let Some(pg) = Postgres::start("a_read_only_postgresql_is_an_outage") else { return };
    let store = pg.database();
    let db = store.rsplit('/').next().unwrap().to_owned();
    let replica = serve_postgres_with(&store, std::path::Path::new(EXPERIMENTS), &[("OFFERLAB_WRITE_DEADLINE", "2")]);
    assert_eq!(event(&replica.url, "before").status().as_u16(), 200);
    assert_eq!(health(&replica.url), 200);

    // What a standby after a failover answers.
    pg.sql_each(&db, &["ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()"]);
    wait_for("a write is refused as an outage", Duration::from_secs(30), || {
        let r = event(&replica.url, "during");
        r.status().as_u16() == 503 && r.headers().get("retry-after").is_some()
    });
    // A pooled connection that sat idle through the reload runs its next
    // statement under the old setting (a standby after a failover has no
    // such connection), so the heartbeat may commit once more before every
    // connection refuses: health settles on 503.
    wait_for("a database that refuses writes is not healthy", Duration::from_secs(30), || {
        event(&replica.url, "during").status().as_u16() == 503 && health(&replica.url) == 503
    });

    pg.sql_each(
        &db,
        &[
            "SET default_transaction_read_only = off",
            "ALTER SYSTEM RESET default_transaction_read_only",
            "SELECT pg_reload_conf()",
        ],
    );
    wait_for("the heartbeat probe ends the outage", Duration::from_secs(30), || health(&replica.url) == 200);
    assert_eq!(event(&replica.url, "after").status().as_u16(), 200);
    let stored = stored_events(&pg, &db);
    assert_eq!(stored, ["after", "before"], "nothing half-written while read-only");
}

/// A retry that leaves `ts` out (the server fills it in on each try) is a
/// duplicate on the replica that took it and on the other, never a
/// conflict, and the event is stored once.
#[test]
fn a_retry_without_ts_is_a_duplicate_on_either_replica() {
    let Some(pg) = Postgres::start("a_retry_without_ts_is_a_duplicate_on_either_replica") else { return };
    let store = pg.database();
    let db = store.rsplit('/').next().unwrap().to_owned();
    let a = serve_postgres_with(&store, std::path::Path::new(EXPERIMENTS), &[]);
    let b = serve_postgres_with(&store, std::path::Path::new(EXPERIMENTS), &[]);
    let status = |url: &str| -> (u16, Value) {
        let r = event(url, "r1");
        (r.status().as_u16(), r.json().unwrap())
    };
    let (first, body) = status(&a.url);
    assert_eq!((first, body["status"].clone()), (200, json!("accepted")), "{body}");
    for url in [&a.url, &b.url] {
        let (code, body) = status(url);
        assert_eq!((code, body["status"].clone()), (200, json!("duplicate")), "{body}");
    }
    assert_eq!(stored_events(&pg, &db), ["r1"]);
}

fn offerlab(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_offerlab"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// A missing database and a missing warehouse table print PostgreSQL's own
/// message and SQLSTATE, not "db error".
#[test]
fn errors_say_what_postgresql_said() {
    let Some(pg) = Postgres::start("errors_say_what_postgresql_said") else { return };
    let missing = format!("postgres://offerlab@127.0.0.1:{}/no_such_db", pg.port);
    let out = offerlab(&["serve", "--bind", "127.0.0.1:0", "--store", &missing, "--experiments", EXPERIMENTS]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("database \"no_such_db\" does not exist (SQLSTATE 3D000)"), "{stderr}");
    assert!(!stderr.contains("db error"), "{stderr}");

    let empty = pg.database();
    let exp = format!("{EXPERIMENTS}/cart-protection-copy.toml");
    let out = offerlab(&["analyze", "--experiment", &exp, "--postgres", &empty, "--now", "2026-11-23"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("does not exist (SQLSTATE 42P01)"), "{stderr}");
}

/// The warehouse query's literals read the same with
/// `standard_conforming_strings` off: a name ending in a backslash stays
/// inside its literal.
#[test]
fn warehouse_literals_hold_whatever_standard_conforming_strings() {
    let Some(pg) = Postgres::start("warehouse_literals_hold_whatever_standard_conforming_strings") else { return };
    let db = pg.database();
    let db = db.rsplit('/').next().unwrap();
    for name in ["ends\\", "it's", "a\\'b", "plain"] {
        let literal = offerlab::warehouse::literal(name);
        for setting in ["on", "off"] {
            let got = pg.sql_each(
                db,
                &[&format!("SET standard_conforming_strings = {setting}"), &format!("SELECT {literal} = $n${name}$n$")],
            );
            assert_eq!(got.lines().last(), Some("t"), "{literal} with standard_conforming_strings = {setting}");
        }
    }
}

/// A peer frozen inside its group transaction holds aggregate row locks:
/// another replica's write waits at most the lock timeout and is answered
/// 503 (nothing half-written), PostgreSQL ends the idle transaction after
/// its timeout, and writes resume by themselves.
#[test]
fn a_frozen_peer_holding_locks_costs_seconds_not_an_outage() {
    use std::io::{BufRead, BufReader, Write as _};
    let Some(pg) = Postgres::start("a_frozen_peer_holding_locks_costs_seconds") else { return };
    let store = pg.database();
    let db = store.rsplit('/').next().unwrap().to_owned();
    let replica = serve_postgres_with(&store, std::path::Path::new(EXPERIMENTS), &[("OFFERLAB_WRITE_DEADLINE", "2")]);
    for visitor in ["t-1", "t-9"] {
        let r = expose(&replica.url, visitor);
        assert_eq!(r.status().as_u16(), 200);
    }
    // The frozen peer: a session with a replica's timeouts (the deadline,
    // 2 s, as the replica above sets on its own sessions), every aggregate
    // row locked, then silence.
    let mut peer = pg.session(&db);
    let mut input = peer.stdin.take().unwrap();
    writeln!(
        input,
        "SET idle_in_transaction_session_timeout = 2000; BEGIN; UPDATE aggregates SET n = n; SELECT 'locked';"
    )
    .unwrap();
    let mut output = BufReader::new(peer.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("locked") {
        line.clear();
        assert!(output.read_line(&mut line).unwrap() > 0, "the peer's session ended before it held its locks");
    }

    let blocked = http()
        .post(format!("{}/v1/events", replica.url))
        .json(&json!({"id": "o-9", "visitor_id": "t-9", "name": "order", "value": 30}))
        .send()
        .unwrap();
    assert_eq!(blocked.status().as_u16(), 503, "{}", blocked.text().unwrap_or_default());

    // PostgreSQL ends the peer's idle transaction; the same write then goes through.
    wait_for("writes resume once the peer's locks are gone", Duration::from_secs(30), || {
        let r = http()
            .post(format!("{}/v1/events", replica.url))
            .json(&json!({"id": "o-9", "visitor_id": "t-9", "name": "order", "value": 30}))
            .send()
            .unwrap();
        r.status().as_u16() == 200
    });
    wait_for("healthy again", Duration::from_secs(30), || health(&replica.url) == 200);
    assert_eq!(stored_events(&pg, &db), ["o-9"], "stored once");
    drop(input);
    let _ = peer.wait();
}

/// While PostgreSQL is down, reads say the store is unreachable (not that
/// a write was not acknowledged), and the report pages answer an HTML
/// error page a browser shows.
#[test]
fn reads_while_postgresql_is_down_say_so_and_pages_stay_html() {
    let Some(pg) = Postgres::start("reads_while_postgresql_is_down_say_so") else { return };
    let replica = serve_postgres_with(&pg.database(), std::path::Path::new(EXPERIMENTS), &[]);
    pg.stop_server();
    let page = http().get(format!("{}/experiments/cart-protection-copy", replica.url)).send().unwrap();
    assert_eq!(page.status().as_u16(), 503);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.headers().get("retry-after").is_some());
    let text = page.text().unwrap();
    assert!(text.contains("The report cannot be read right now") && text.contains("<html"), "{text}");
    let report = http().get(format!("{}/api/v1/experiments/cart-protection-copy/report", replica.url)).send().unwrap();
    assert_eq!(report.status().as_u16(), 503);
    let body: Value = report.json().unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("could not be read") && !message.contains("not acknowledged"), "{message}");
    pg.start_server();
}

/// `offerlab verify` and `offerlab rebuild` work on both stores: verify
/// finds an aggregate row that no longer matches the raw records, names it
/// and fails; rebuild recomputes it; verify then agrees.
#[test]
fn verify_and_rebuild_work_on_postgresql_and_sled() {
    let Some(pg) = Postgres::start("verify_and_rebuild_work_on_postgresql_and_sled") else { return };
    let store = pg.database();
    let db = store.rsplit('/').next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let replica = serve_postgres_with(&store, std::path::Path::new(EXPERIMENTS), &[]);
        let sled = common::serve(&data, std::path::Path::new(EXPERIMENTS));
        for url in [&replica.url, &sled.url] {
            for visitor in ["t-1", "t-2", "t-3"] {
                let r = expose(url, visitor);
                assert_eq!(r.status().as_u16(), 200);
                let r = event(url, &format!("o-{visitor}"));
                assert_eq!(r.status().as_u16(), 200);
            }
        }
    }
    let both: [&[&str]; 2] = [&["--store", &store], &["--data", data.to_str().unwrap()]];
    for which in both {
        let verify = offerlab(&[&["verify", "--experiments", EXPERIMENTS], which].concat());
        assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
        assert!(String::from_utf8_lossy(&verify.stdout).contains("every aggregate agrees with the 3 exposures"));
    }
    pg.sql(&db, "UPDATE aggregates SET n = n + 5 WHERE metric = 'cart_offer_acceptance'");
    let verify = offerlab(&["verify", "--experiments", EXPERIMENTS, "--store", &store]);
    assert_eq!(verify.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(stderr.contains("cart_offer_acceptance: stored") && stderr.contains("run `offerlab rebuild`"), "{stderr}");
    for which in both {
        let rebuild = offerlab(&[&["rebuild", "--experiments", EXPERIMENTS], which].concat());
        assert!(rebuild.status.success(), "{}", String::from_utf8_lossy(&rebuild.stderr));
        assert!(String::from_utf8_lossy(&rebuild.stdout).contains("from 3 exposures and 3 events"));
        let verify = offerlab(&[&["verify", "--experiments", EXPERIMENTS], which].concat());
        assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    }
}
