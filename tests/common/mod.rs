//! Shared by the test crates: the real `offerlab serve` as a child process
//! on a random loopback port.

#![allow(dead_code)]

pub mod notify;
pub mod postgres;
pub mod writes;

#[allow(unused_imports)]
pub use postgres::skip_rule::skip;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The instant the black-box tests' servers and simulations run at
/// (`OFFERLAB_NOW`), so that no test depends on today's date.
pub const NOW: &str = "2026-11-30T12:00:00Z";
pub const AT_NOW: &[(&str, &str)] = &[("OFFERLAB_NOW", NOW)];

/// [`NOW`] as a time.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    NOW.parse().expect("NOW is RFC 3339")
}

/// `offerlab simulate --json` against `url` at [`NOW`], with `args` after
/// it; its summary. Panics, with what the command said, when it fails.
pub fn simulate(url: &str, args: &[&str]) -> offerlab::simulate::Summary {
    let out = Command::new(env!("CARGO_BIN_EXE_offerlab"))
        .args(["simulate", "--json", "--url", url, "--now", NOW])
        .args(args)
        .env_remove("OFFERLAB_WRITE_KEY")
        .env_remove("OFFERLAB_READ_KEY")
        .output()
        .expect("offerlab runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "offerlab simulate {args:?} failed: {said}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not a summary ({e}): {said}"))
}

/// The committed experiments folder.
pub const EXPERIMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments");

/// A running server; killed (SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `offerlab serve` on 127.0.0.1:0 over `data` and `experiments`; waits for
/// the line that names its address. `stderr` says where its log goes.
pub fn serve_with(data: &Path, experiments: &Path, stderr: Stdio) -> Server {
    spawn_server(&["--data".as_ref(), data.as_os_str()], experiments, stderr, &[])
}

/// [`serve`] with environment variables set (keys, say).
pub fn spawn_server_with(data: &Path, experiments: &Path, env: &[(&str, &str)]) -> Server {
    spawn_server(&["--data".as_ref(), data.as_os_str()], experiments, Stdio::inherit(), env)
}

/// [`serve_postgres`] with environment variables set (a deadline, say).
pub fn serve_postgres_with(store: &str, experiments: &Path, env: &[(&str, &str)]) -> Server {
    spawn_server(&["--store".as_ref(), store.as_ref()], experiments, Stdio::inherit(), env)
}

/// `offerlab serve` on 127.0.0.1:0 over the PostgreSQL store at `store`.
pub fn serve_postgres(store: &str, experiments: &Path) -> Server {
    spawn_server(&["--store".as_ref(), store.as_ref()], experiments, Stdio::inherit(), &[])
}

/// `offerlab serve` on 127.0.0.1:0 with the store flags `store` (`--data
/// DIR` or `--store URL`).
pub fn spawn_server(store: &[&std::ffi::OsStr], experiments: &Path, stderr: Stdio, env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_offerlab"))
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "2"])
        .args(store)
        .arg("--experiments")
        .arg(experiments)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("offerlab binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Server { child, url }
}

pub fn serve(data: &Path, experiments: &Path) -> Server {
    serve_with(data, experiments, Stdio::inherit())
}

/// Runs async store calls from a test that is not async itself (one that
/// talks to a child server with a blocking client): stores open on a Tokio
/// runtime, which runs their writer.
#[allow(dead_code)]
pub fn block_on<F: std::future::Future>(work: F) -> F::Output {
    tokio::runtime::Runtime::new().expect("a runtime").block_on(work)
}

/// The report JSON of every test that is not a draft, by id.
pub fn reports(url: &str) -> std::collections::BTreeMap<String, Value> {
    let list: Value = reqwest::blocking::get(format!("{url}/api/v1/experiments")).unwrap().json().unwrap();
    list["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"] != "draft")
        .map(|e| {
            let id = e["id"].as_str().unwrap().to_owned();
            let r: Value =
                reqwest::blocking::get(format!("{url}/api/v1/experiments/{id}/report")).unwrap().json().unwrap();
            (id, r)
        })
        .collect()
}

/// Field by field; numbers to a relative 1e-9 (sums added in another order
/// differ in the last bits).
pub fn assert_same_json(got: &Value, want: &Value, at: &str) {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) => {
            let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
            assert!((g - w).abs() <= 1e-9 * g.abs().max(w.abs()).max(1.0), "{at}: {g} != {w}");
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{at}: length");
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                assert_same_json(g, w, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(g), Value::Object(w)) => {
            assert_eq!(g.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>(), "{at}: fields");
            for (k, w) in w {
                assert_same_json(&g[k], w, &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(got, want, "{at}"),
    }
}

/// The reports of every test at two servers are the same, field by field.
pub fn assert_same_reports(got: &str, want: &str) {
    let (got, want) = (reports(got), reports(want));
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (id, w) in &want {
        assert!(w["first_exposure"].is_string(), "{id} has traffic to compare");
        assert_same_json(&got[id], w, id);
    }
}
