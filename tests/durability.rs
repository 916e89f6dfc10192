//! What a 2xx promises, checked against the real binary: every
//! acknowledged group commit ends with its own `fdatasync` (counted with
//! strace), and a full disk refuses writes with 503, loses nothing
//! acknowledged, and recovers by itself once space returns.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use offerlab::store::{SledStore, Store};
use serde_json::{json, Value};

mod common;

use common::{serve, skip, Server, EXPERIMENTS};

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn events(prefix: &str, n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({ "id": format!("{prefix}-{i}"), "visitor_id": format!("v-{prefix}-{}", i % 7), "name": "order", "value": 12.5 }))
            .collect(),
    )
}

fn sigterm(pid: u32) {
    assert!(Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap().success());
}

/// Polls `check` every 50 ms until it holds or `limit` passes.
fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn flush_count(http: &reqwest::blocking::Client, address: &str) -> u64 {
    let text = http.get(format!("{address}/metrics")).send().unwrap().text().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("offerlab_flush_duration_seconds_count "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no flush count in\n{text}"))
}

/// `offerlab serve` on `data` under `strace -f -qq <options> -o trace`
/// with `workers` HTTP workers: strace, and the server's address once it
/// listens.
fn traced(options: &[&str], trace: &Path, data: &Path, workers: &str) -> (std::process::Child, String) {
    let mut strace = Command::new("strace")
        .args(["-f", "-qq"])
        .args(options)
        .arg("-o")
        .arg(trace)
        .arg(env!("CARGO_BIN_EXE_offerlab"))
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", workers, "--experiments", EXPERIMENTS, "--data"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(strace.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let address = line.trim().strip_prefix("listening on ").expect("listening line").to_owned();
    (strace, address)
}

#[test]
fn every_acknowledged_group_commit_ends_with_one_fdatasync() {
    if !have("strace") {
        return skip("every_acknowledged_group_commit_ends_with_one_fdatasync", "strace is not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        // A first start records the tests' allocations, so the traced run
        // syncs only for writes.
        let mut server = serve(&data, Path::new(EXPERIMENTS));
        let up = reqwest::blocking::get(format!("{}/healthz", server.url)).unwrap();
        assert!(up.status().is_success(), "serving, so SIGTERM is handled");
        // And each test's first verdict, which notifications compare with.
        common::notify::evaluations(&server.url, 1.0);
        sigterm(server.child.id());
        assert!(server.child.wait().unwrap().success());
    }
    let trace = dir.path().join("trace.txt");
    let (mut strace, address) = traced(&["-e", "trace=fdatasync"], &trace, &data, "2");
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", strace.id())).unwrap();
    let offerlab: u32 = children.split_whitespace().next().expect("the traced server").parse().unwrap();

    let http = reqwest::blocking::Client::new();
    let mut acknowledged = 0;
    for i in 0..30 {
        let r = http.post(format!("{address}/v1/events")).json(&events(&format!("seq{i}"), 1)[0]).send().unwrap();
        assert!(r.status().is_success());
        acknowledged += 1;
    }
    let concurrent: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (http, address) = (http.clone(), address.clone());
                s.spawn(move || {
                    (0..25)
                        .filter(|i| {
                            let body = &events(&format!("c{t}-{i}"), 1)[0];
                            http.post(format!("{address}/v1/events")).json(body).send().unwrap().status().is_success()
                        })
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    acknowledged += concurrent;
    let groups = flush_count(&http, &address);
    sigterm(offerlab);
    assert!(strace.wait().unwrap().success(), "the traced server exits cleanly");

    let text = std::fs::read_to_string(&trace).unwrap();
    // A call strace split in two ("<unfinished ...>" then "<... fdatasync
    // resumed>") counts once, on the line with its result.
    let syncs = text
        .lines()
        .filter(|l| (l.contains("fdatasync(") || l.contains("fdatasync resumed>")) && l.trim_end().ends_with("= 0"))
        .count() as u64;
    eprintln!("{acknowledged} acknowledged requests in {groups} group commits, {syncs} fdatasync calls");
    assert_eq!(acknowledged, 230);
    assert!(groups >= 30 && groups <= acknowledged as u64, "{groups} groups for {acknowledged} requests");
    assert_eq!(syncs, groups + 1, "one fdatasync per group commit, and one at shutdown");
}

/// A new store makes its folder durable before it answers anything: the
/// folder's entries (`db`, `conf`, `blobs`) and the folder's own entry in
/// its parent are fsynced, and so is `conf`, before the server listens.
#[test]
fn a_new_store_syncs_its_folder_before_its_first_answer() {
    if !have("strace") {
        return skip("a_new_store_syncs_its_folder_before_its_first_answer", "strace is not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("shop");
    std::fs::create_dir(&parent).unwrap();
    let data = parent.join("data");
    let trace = dir.path().join("trace.txt");
    let (mut strace, address) = traced(&["-y", "-e", "trace=fsync,fdatasync"], &trace, &data, "1");
    // What was synced before the server listened, so before any answer.
    let before = std::fs::read_to_string(&trace).unwrap();
    // With threads, strace may split a call in two lines: `PID fsync(FD<path>
    // <unfinished ...>` and later `PID <... fsync resumed>) = 0`.
    let lines: Vec<&str> = before.lines().collect();
    let synced = |path: &Path| {
        let fd = format!("<{}>", path.display());
        lines.iter().enumerate().any(|(i, l)| {
            if !(l.contains("fsync(") && l.contains(&fd)) {
                return false;
            }
            if l.trim_end().ends_with("= 0") {
                return true;
            }
            let pid = l.split_whitespace().next().unwrap_or_default();
            l.contains("<unfinished ...>")
                && lines[i + 1..].iter().any(|r| {
                    r.split_whitespace().next() == Some(pid)
                        && r.contains("fsync resumed>")
                        && r.trim_end().ends_with("= 0")
                })
        })
    };
    let r = reqwest::blocking::Client::new().post(format!("{address}/v1/events")).json(&events("first", 1)).send();
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", strace.id())).unwrap();
    sigterm(children.split_whitespace().next().expect("the traced server").parse().unwrap());
    assert!(strace.wait().unwrap().success());
    assert!(r.unwrap().status().is_success(), "the first write is answered 2xx");
    for path in [data.join("conf"), data.join("blobs"), data.clone(), parent.clone()] {
        assert!(synced(&path), "{} was not fsynced before the first answer:\n{before}", path.display());
    }
}

/// A small tmpfs of our own, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(megabytes: u32) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes zeros until the disk is full; the file is the space to give back.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Posts batches until one is refused; returns the ids acknowledged and
/// the refusal.
fn write_until_refused(http: &reqwest::blocking::Client, address: &str, tag: &str) -> (Vec<String>, Value) {
    let mut acked = Vec::new();
    for round in 0..2000 {
        let batch = events(&format!("{tag}{round}"), 100);
        let r = http.post(format!("{address}/v1/events")).json(&batch).send().unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().unwrap();
        match status {
            200 => acked.extend(batch.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned())),
            503 => return (acked, body),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    panic!("the disk never filled up");
}

#[test]
fn a_full_disk_refuses_writes_loses_nothing_and_recovers_by_itself() {
    let disk = match Tmpfs::mount(24) {
        Ok(d) => d,
        Err(e) => {
            return skip(
                "a_full_disk_refuses_writes_loses_nothing_and_recovers_by_itself",
                &format!("cannot mount a tmpfs ({e}); it needs root"),
            )
        }
    };
    let data = disk.path().join("data");
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut server: Server = serve(&data, Path::new(EXPERIMENTS));
    let address = server.url.clone();
    let health = |http: &reqwest::blocking::Client| {
        let r = http.get(format!("{address}/healthz")).send().unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };

    let mut acked = Vec::new();
    let r = http.post(format!("{address}/v1/events")).json(&events("before", 100)).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    acked.extend((0..100).map(|i| format!("before-{i}")));

    let filler = disk.fill();
    let (more, refusal) = write_until_refused(&http, &address, "full");
    acked.extend(more);
    assert_eq!(refusal["error"]["code"], "storage_unavailable", "{refusal}");
    let (code, body) = health(&http);
    assert_eq!(code, 503, "healthz reports the store: {body}");
    assert!(body["store"].as_str().is_some_and(|r| !r.is_empty()), "{body}");
    let r = http.post(format!("{address}/v1/events")).json(&events("still-full", 10)).send().unwrap();
    assert_eq!(r.status().as_u16(), 503, "writes keep failing while the disk is full");

    std::fs::remove_file(&filler).unwrap();
    assert!(wait_until(Duration::from_secs(30), || health(&http).0 == 200), "healthz recovers once space returns");
    let r = http.post(format!("{address}/v1/events")).json(&events("after", 100)).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "writes succeed again without a restart");
    acked.extend((0..100).map(|i| format!("after-{i}")));

    sigterm(server.child.id());
    assert_eq!(server.child.wait().unwrap().code(), Some(0));
    common::block_on(async {
        let store = SledStore::open(&data).await.unwrap();
        let stored: std::collections::BTreeSet<String> =
            store.events().await.unwrap().into_iter().map(|e| e.id.into_string()).collect();
        let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
        assert!(lost.is_empty(), "{} acknowledged events lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
        store.close().await.unwrap();
    });

    // A shutdown whose final flush fails exits non-zero.
    let mut server: Server = serve(&data, Path::new(EXPERIMENTS));
    let address = server.url.clone();
    let filler = disk.fill();
    write_until_refused(&http, &address, "again");
    sigterm(server.child.id());
    let status = server.child.wait().unwrap();
    assert_ne!(status.code(), Some(0), "a failed final flush must not exit 0");
    std::fs::remove_file(filler).unwrap();
}
