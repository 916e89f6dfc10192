//! Backups, black-box: `offerlab backup` of a stopped store, `offerlab
//! restore` into a new sled folder and into PostgreSQL (the move from one
//! to the other), and damaged files refused before anything is written.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::postgres::Postgres;
use common::{assert_same_json, assert_same_reports, serve_postgres_with, AT_NOW, EXPERIMENTS};
use rand::{Rng, SeedableRng};
use serde_json::Value;

fn offerlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offerlab"))
        .args(args)
        .env("OFFERLAB_EXPERIMENTS", EXPERIMENTS)
        .env_remove("OFFERLAB_STORE")
        .env_remove("OFFERLAB_DATA")
        .output()
        .expect("offerlab runs")
}

fn ok(out: Output) -> String {
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{said}");
    said
}

/// A sled folder with two simulated weeks of a storefront in it.
fn populated(root: &Path) -> std::path::PathBuf {
    let data = root.join("original");
    let server = common::spawn_server_with(&data, Path::new(EXPERIMENTS), AT_NOW);
    let summary = common::simulate(&server.url, &["--days", "14", "--visitors-per-day", "150", "--seed", "30"]);
    assert_eq!(summary.rejected, 0);
    drop(server); // SIGKILL: every acknowledged write is on disk
    data
}

#[test]
fn a_sled_backup_restores_into_sled_and_postgresql_with_the_same_reports() {
    let root = tempfile::tempdir().unwrap();
    let data = populated(root.path());
    let original = data.to_str().unwrap();
    // The reports to match: the original's aggregates recomputed, as a
    // restore recomputes them.
    ok(offerlab(&["rebuild", "--data", original]));
    let file = root.path().join("shop.offerlab-backup");
    let said = ok(offerlab(&["backup", "--data", original, "--to", file.to_str().unwrap()]));
    assert!(said.contains("backed up") && said.contains("exposures"), "{said}");
    let checked = ok(offerlab(&["restore", "--from", file.to_str().unwrap(), "--check"]));
    assert!(checked.contains("a complete backup of"), "{checked}");

    let restored = root.path().join("restored");
    ok(offerlab(&["restore", "--from", file.to_str().unwrap(), "--data", restored.to_str().unwrap()]));
    let original = common::spawn_server_with(&data, Path::new(EXPERIMENTS), AT_NOW);
    let sled = common::spawn_server_with(&restored, Path::new(EXPERIMENTS), AT_NOW);
    assert_same_reports(&sled.url, &original.url);
    // A second restore into the same folder is refused, and writes nothing.
    let out = offerlab(&["restore", "--from", file.to_str().unwrap(), "--data", restored.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already holds files"));

    let Some(pg) = Postgres::start("a_sled_backup_restores_into_sled_and_postgresql_with_the_same_reports") else {
        return;
    };
    let url = pg.database();
    ok(offerlab(&["restore", "--from", file.to_str().unwrap(), "--store", &url]));
    assert_same_reports(&serve_postgres_with(&url, Path::new(EXPERIMENTS), AT_NOW).url, &original.url);
    let out = offerlab(&["restore", "--from", file.to_str().unwrap(), "--store", &url]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already holds data"));
    // And back: a backup of PostgreSQL restores into sled with the same reports.
    let again = root.path().join("from-postgres.offerlab-backup");
    ok(offerlab(&["backup", "--store", &url, "--to", again.to_str().unwrap()]));
    let back = root.path().join("back");
    ok(offerlab(&["restore", "--from", again.to_str().unwrap(), "--data", back.to_str().unwrap()]));
    assert_same_reports(&common::spawn_server_with(&back, Path::new(EXPERIMENTS), AT_NOW).url, &original.url);
}

/// A backup cut at 10 random points, or with 10 random bytes of its
/// compressed stream flipped, is refused by `--check` and by a restore,
/// which leaves its target folder uncreated. (The gzip header's time and
/// OS bytes are metadata no reader checks; the flips are after them.)
#[test]
fn a_cut_or_altered_backup_is_refused_and_nothing_is_written() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("small");
    {
        let server = common::spawn_server_with(&data, Path::new(EXPERIMENTS), AT_NOW);
        common::simulate(&server.url, &["--days", "3", "--visitors-per-day", "60", "--seed", "31"]);
    }
    let file = root.path().join("small.offerlab-backup");
    ok(offerlab(&["backup", "--data", data.to_str().unwrap(), "--to", file.to_str().unwrap()]));
    let good = std::fs::read(&file).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(30);
    let mut damaged: Vec<(String, Vec<u8>)> = (0..10)
        .map(|_| {
            let cut = rng.random_range(0..good.len());
            (format!("cut at {cut}"), good[..cut].to_vec())
        })
        .collect();
    for _ in 0..10 {
        let at = rng.random_range(10..good.len());
        let mut bytes = good.clone();
        bytes[at] ^= 1 << rng.random_range(0..8);
        damaged.push((format!("bit flipped at {at}"), bytes));
    }
    for (what, bytes) in damaged {
        let bad = root.path().join("bad.offerlab-backup");
        std::fs::write(&bad, &bytes).unwrap();
        let out = offerlab(&["restore", "--from", bad.to_str().unwrap(), "--check"]);
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{what}: accepted");
        assert!(said.contains("backup"), "{what}: {said}");
        let target = root.path().join("target");
        let out = offerlab(&["restore", "--from", bad.to_str().unwrap(), "--data", target.to_str().unwrap()]);
        assert!(!out.status.success(), "{what}: restored");
        assert!(!target.exists(), "{what}: the target was created");
    }
}

/// Under eight writers, an online backup (`offerlab backup --url`, the
/// admin key: the write key alone is refused) holds every write
/// acknowledged before it began: after `kill -9` and a restore, sending
/// each again answers `duplicate`. The restored store holds exactly what
/// the file counts, and its reports equal the same file restored into
/// PostgreSQL.
#[test]
fn an_online_backup_under_eight_writers_holds_every_write_acknowledged_before_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("live");
    let keys = [("OFFERLAB_WRITE_KEY", "w-key"), ("OFFERLAB_READ_KEY", "r-key"), ("OFFERLAB_ADMIN_KEY", "a-key")];
    let env: Vec<(&str, &str)> = AT_NOW.iter().copied().chain(keys).collect();
    let mut server = common::spawn_server_with(&data, Path::new(EXPERIMENTS), &env);
    let catalog = offerlab::experiment::load_dir(Path::new(EXPERIMENTS)).unwrap();
    let exp = catalog.get("cart-protection-copy").unwrap().clone();
    let write = |http: &reqwest::blocking::Client, url: &str, path: &str, body: &Value| {
        http.post(format!("{url}{path}")).bearer_auth("w-key").json(body).send().unwrap().json::<Value>().unwrap()
    };
    // Each write as sent, with the instant its 2xx came back.
    let acked: Mutex<Vec<(Instant, &'static str, Value)>> = Mutex::default();
    let stop = AtomicBool::new(false);
    let file = root.path().join("online.offerlab-backup");
    let started = std::thread::scope(|s| {
        for w in 0..8 {
            let (acked, stop, exp, url) = (&acked, &stop, &exp, server.url.clone());
            s.spawn(move || {
                let http = reqwest::blocking::Client::new();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let visitor = format!("w{w}-{i}");
                    let a = offerlab::assignment::evaluate(exp, &visitor, &Default::default(), None).unwrap();
                    let exposure = serde_json::json!([{ "visitor_id": visitor, "experiment": exp.id,
                        "variant": exp.variants[a.variant.get()].key, "ts": "2026-11-29T10:00:00Z" }]);
                    let events = serde_json::json!([
                        { "id": format!("{visitor}-o"), "visitor_id": visitor, "name": "order", "value": 20.0 + f64::from(i % 50), "ts": "2026-11-29T11:00:00Z" },
                        { "id": format!("{visitor}-c"), "visitor_id": visitor, "name": "cart_offer_accepted", "value": 19.0, "ts": "2026-11-29T11:00:00Z" }
                    ]);
                    for (path, body) in [("/v1/exposures", exposure), ("/v1/events", events)] {
                        let reply = write(&http, &url, path, &body);
                        assert_eq!(reply["rejected"], 0, "{reply}");
                        acked.lock().unwrap().push((Instant::now(), path, body));
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(800));
        let refused =
            offerlab(&["backup", "--url", &server.url, "--admin-key", "w-key", "--to", file.to_str().unwrap()]);
        assert!(!refused.status.success(), "the write key alone cannot download every visitor");
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_offerlab"))
            .args(["backup", "--url", &server.url, "--to", file.to_str().unwrap()])
            .env("OFFERLAB_ADMIN_KEY", "a-key")
            .output()
            .unwrap();
        ok(out);
        std::thread::sleep(Duration::from_millis(200)); // writes after the backup, left out of it
        stop.store(true, Ordering::Relaxed);
        started
    });
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let before: Vec<(&str, Value)> =
        acked.into_inner().unwrap().into_iter().filter(|(at, ..)| *at < started).map(|(_, p, b)| (p, b)).collect();
    assert!(before.len() > 100, "{} writes before the backup", before.len());

    let restored = root.path().join("restored");
    let said = ok(offerlab(&["restore", "--from", file.to_str().unwrap(), "--data", restored.to_str().unwrap()]));
    let verified = ok(offerlab(&["verify", "--data", restored.to_str().unwrap()]));
    let counts = offerlab(&["restore", "--from", file.to_str().unwrap(), "--check"]);
    let checked = String::from_utf8_lossy(&counts.stdout).to_string();
    let number = |text: &str, word: &str| -> u64 {
        let at = text.find(&format!(" {word}")).unwrap_or_else(|| panic!("no {word} in {text}"));
        text[..at].rsplit(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    for word in ["exposures", "events"] {
        assert_eq!(number(&verified, word), number(&checked, word), "{word}: {verified} / {checked} / {said}");
    }
    let server = common::spawn_server_with(&restored, Path::new(EXPERIMENTS), &env);
    let http = reqwest::blocking::Client::new();
    for (path, body) in &before {
        let reply = write(&http, &server.url, path, body);
        let n = body.as_array().unwrap().len();
        assert_eq!(reply["duplicates"], n, "acknowledged before the backup, so in it: {body} → {reply}");
    }
    let read = |url: &str| -> Vec<(String, Value)> {
        ["cart-protection-copy", "product-warranty-placement"]
            .iter()
            .map(|id| {
                let r = http.get(format!("{url}/api/v1/experiments/{id}/report")).bearer_auth("r-key").send().unwrap();
                (id.to_string(), r.json().unwrap())
            })
            .collect()
    };
    drop(server);
    let want = read(&common::spawn_server_with(&restored, Path::new(EXPERIMENTS), &env).url);
    let Some(pg) = Postgres::start("an_online_backup_under_eight_writers_holds_every_write_acknowledged_before_it")
    else {
        return;
    };
    let url = pg.database();
    ok(offerlab(&["restore", "--from", file.to_str().unwrap(), "--store", &url]));
    let got = read(&serve_postgres_with(&url, Path::new(EXPERIMENTS), &env).url);
    for ((id, w), (_, g)) in want.iter().zip(&got) {
        assert_same_json(g, w, &format!("PostgreSQL {id}"));
    }
}

/// `serve --backup-every` writes whole backups (a temporary name until
/// synced), keeps the newest `--backup-keep`, and says when and how large
/// the last good one was in `/metrics`; one that fails is counted and the
/// service stays healthy.
#[test]
fn scheduled_backups_keep_the_newest_and_a_failure_leaves_the_service_healthy() {
    use std::time::{Duration, Instant};
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("backups");
    let dir_text = dir.to_str().unwrap().to_owned();
    let env =
        [("OFFERLAB_BACKUP_EVERY", "200ms"), ("OFFERLAB_BACKUP_DIR", dir_text.as_str()), ("OFFERLAB_BACKUP_KEEP", "2")];
    let server = common::spawn_server_with(&root.path().join("data"), Path::new(EXPERIMENTS), &env);
    common::simulate(&server.url, &["--days", "2", "--visitors-per-day", "40", "--seed", "32"]);
    let metric = |url: &str, name: &str| -> f64 {
        let text = reqwest::blocking::get(format!("{url}/metrics")).unwrap().text().unwrap();
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
    };
    let backups = || -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> =
            std::fs::read_dir(&dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|x| x == "backup"));
        files.sort();
        files
    };
    // Backups after the simulation: at least four, so two were removed. A
    // new backup is published before the oldest goes (a whole backup is
    // never given up for one not yet durable), so a listing between the two
    // holds one more than --backup-keep; once the oldest has gone, two.
    let first = metric(&server.url, "offerlab_last_backup_timestamp_seconds");
    let until = Instant::now() + Duration::from_secs(60);
    let mut seen = std::collections::BTreeSet::new();
    let mut kept = false;
    while seen.len() < 4 || !kept {
        assert!(Instant::now() < until, "four backups were not taken, then two kept: {seen:?}");
        let now = backups();
        assert!(now.len() <= 3, "at most --backup-keep files, and a new one: {now:?}");
        kept |= seen.len() >= 4 && now.len() == 2;
        seen.extend(now);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(&server.url, "offerlab_last_backup_timestamp_seconds") > first);
    assert!(metric(&server.url, "offerlab_last_backup_bytes") > 100.0);
    let newest = backups().pop().unwrap();
    let said = ok(offerlab(&["restore", "--from", newest.to_str().unwrap(), "--check"]));
    assert!(said.contains("a complete backup of") && !said.contains(" 0 events"), "{said}");
    drop(server);

    // A backup folder that cannot be made: counted, logged, still healthy.
    let blocked = root.path().join("a-file");
    std::fs::write(&blocked, "").unwrap();
    let bad = blocked.join("backups");
    let env = [("OFFERLAB_BACKUP_EVERY", "100ms"), ("OFFERLAB_BACKUP_DIR", bad.to_str().unwrap())];
    let server = common::spawn_server_with(&root.path().join("data2"), Path::new(EXPERIMENTS), &env);
    let until = Instant::now() + Duration::from_secs(30);
    while metric(&server.url, "offerlab_backup_failures_total") < 2.0 {
        assert!(Instant::now() < until, "no failure counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let health = reqwest::blocking::get(format!("{}/healthz", server.url)).unwrap();
    assert_eq!(health.status().as_u16(), 200, "a failed backup is not a failed write");
}
