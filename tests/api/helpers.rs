//! `spawn_app()` and friends: a fresh server, experiments folder and data
//! folder for every test, plus a child-process server for signal and crash
//! tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::postgres::Postgres;
use crate::common::{spawn_server, Server};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use offerlab::config::Settings;
use offerlab::http::startup::{Application, StartupError};
use offerlab::store::StoreError;
use serde_json::Value;

pub const METRICS: &str = include_str!("../../experiments/metrics.toml");
pub const SEGMENTS: &str = include_str!("../../experiments/segments.toml");

/// The clock every server of the suite runs at (`serve --now`), so that no
/// test depends on today's date; a test may set another.
pub const NOW: &str = "2026-11-30T12:00:00Z";

pub fn now() -> chrono::DateTime<chrono::Utc> {
    NOW.parse().unwrap()
}

/// A definition with the given id, surface, status and extra lines, two
/// variants `control` (payload `{"copy": "control"}`) and `treatment`.
pub fn definition(id: &str, surface: &str, status: &str, extra: &str) -> String {
    format!(
        r#"id = "{id}"
name = "Test {id}"
hypothesis = "Treatment beats control"
status = "{status}"
surface = "{surface}"
dimension = "copy"
start = "2026-11-02"
primary_metric = "upsell_acceptance"
guardrail_metrics = ["order_conversion", "return_rate"]
secondary_metrics = ["revenue_per_visitor", "average_order_value"]
{extra}

[[variants]]
key = "control"
weight = 0.5
payload = {{ copy = "control" }}

[[variants]]
key = "treatment"
weight = 0.5
payload = {{ copy = "treatment" }}
"#
    )
}

/// The fixture set the API tests run against: one test per behaviour.
pub fn fixture_definitions() -> Vec<(String, String)> {
    vec![
        ("running-cart".into(), definition("running-cart", "cart", "running", "")),
        (
            "targeted-mobile".into(),
            definition("targeted-mobile", "product_page", "running", "targeting = { device = [\"mobile\"] }"),
        ),
        ("half-coverage".into(), definition("half-coverage", "checkout", "running", "coverage = 0.5")),
        (
            "ns-left".into(),
            definition("ns-left", "email", "running", "namespace = { id = \"mail\", range = [0.0, 0.5] }"),
        ),
        (
            "ns-right".into(),
            definition("ns-right", "email", "running", "namespace = { id = \"mail\", range = [0.5, 1.0] }"),
        ),
        ("paused-test".into(), definition("paused-test", "post_purchase", "paused", "")),
        ("concluded-test".into(), definition("concluded-test", "post_purchase", "concluded", "winner = \"treatment\"")),
        ("draft-test".into(), definition("draft-test", "post_purchase", "draft", "")),
    ]
}

pub fn write_experiments(dir: &Path, defs: &[(String, String)]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("metrics.toml"), METRICS).unwrap();
    std::fs::write(dir.join("segments.toml"), SEGMENTS).unwrap();
    for (id, text) in defs {
        std::fs::write(dir.join(format!("{id}.toml")), text).unwrap();
    }
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub experiments: PathBuf,
    pub data: PathBuf,
    pub client: reqwest::Client,
    /// The server's state, to check what was stored.
    pub state: std::sync::Arc<offerlab::http::state::AppState>,
    handle: ServerHandle,
    /// The PostgreSQL database the server stores in, when it does.
    store: Option<(std::sync::Arc<Postgres>, String)>,
    _root: tempfile::TempDir,
}

/// The suite's PostgreSQL server: started by the first test that needs it,
/// stopped when the last one holding it ends.
fn shared_postgres() -> Option<std::sync::Arc<Postgres>> {
    static SHARED: std::sync::Mutex<std::sync::Weak<Postgres>> = std::sync::Mutex::new(std::sync::Weak::new());
    let mut slot = SHARED.lock().unwrap();
    if let Some(pg) = slot.upgrade() {
        return Some(pg);
    }
    let pg = std::sync::Arc::new(Postgres::start("the API suite on PostgreSQL")?);
    *slot = std::sync::Arc::downgrade(&pg);
    Some(pg)
}

/// A fresh database on the suite's server, when the suite runs on PostgreSQL.
fn database() -> Option<(std::sync::Arc<Postgres>, String)> {
    if !crate::ON_POSTGRES {
        return None;
    }
    let pg = shared_postgres()?;
    let url = pg.database();
    Some((pg, url))
}

/// A server on a random loopback port over the fixture definitions.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&fixture_definitions()).await
}

pub async fn spawn_app_with(defs: &[(String, String)]) -> TestApp {
    spawn_app_configured(defs, |_| {}).await
}

/// A server whose settings `configure` may change first.
pub async fn spawn_app_configured(defs: &[(String, String)], configure: impl FnOnce(&mut Settings)) -> TestApp {
    let root = tempfile::tempdir().unwrap();
    let experiments = root.path().join("experiments");
    let data = root.path().join("data");
    write_experiments(&experiments, defs);
    let mut settings = Settings::new("127.0.0.1:0".parse().unwrap(), data.clone(), experiments.clone());
    settings.workers = Some(2);
    let store = database();
    settings.store = store.as_ref().map(|(_, url)| url.clone());
    settings.now = Some(now());
    configure(&mut settings);
    let app = Application::build(&settings).await.expect("server builds");
    start(app, experiments, data, store, root)
}

fn start(
    app: Application,
    experiments: PathBuf,
    data: PathBuf,
    store: Option<(std::sync::Arc<Postgres>, String)>,
    root: tempfile::TempDir,
) -> TestApp {
    let state = app.state();
    let port = app.port();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        experiments,
        data,
        client: reqwest::Client::new(),
        state,
        handle,
        store,
        _root: root,
    }
}

impl TestApp {
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.client.post(format!("{}{path}", self.address)).json(body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.address))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(format!("{}{path}", self.address)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `POST /v1/assign`, returning the assignments keyed by experiment.
    pub async fn assign(&self, body: &Value) -> std::collections::BTreeMap<String, Value> {
        let (status, json) = self.post("/v1/assign", body).await;
        assert_eq!(status, 200, "{json}");
        json["assignments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["experiment"].as_str().unwrap().to_owned(), a.clone()))
            .collect()
    }

    /// The PostgreSQL server and database the server stores in, if it does.
    pub fn postgres(&self) -> Option<(&Postgres, &str)> {
        self.store.as_ref().map(|(pg, url)| (pg.as_ref(), url.rsplit('/').next().unwrap_or_default()))
    }

    /// (exposures, events) stored.
    pub async fn stored(&self) -> (usize, usize) {
        self.state.store.counts().await.expect("store reads")
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    /// Stops the server, closes its store and starts a new server on the
    /// same folders. The closed store lets go of the data folder once its
    /// last reader does, so the new one waits (10 s at most) for the lock.
    pub async fn restart(self) -> TestApp {
        self.stop().await;
        let TestApp { experiments, data, state, store, _root, .. } = self;
        let clock = state.clock;
        state.store.close().await.expect("the store closes cleanly");
        drop(state);
        let mut settings = Settings::new("127.0.0.1:0".parse().unwrap(), data.clone(), experiments.clone());
        settings.workers = Some(2);
        settings.store = store.as_ref().map(|(_, url)| url.clone());
        settings.now = match clock {
            offerlab::clock::Clock::Fixed(at) => Some(at),
            offerlab::clock::Clock::System => None,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Application::build(&settings).await {
                Ok(app) => return start(app, experiments, data, store, _root),
                Err(StartupError::Store(StoreError::Locked(_))) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("the server does not restart: {e}"),
            }
        }
    }
}

/// Asserts an API error: status, stable code.
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

/// Polls `check` until it holds or `limit` passes.
pub async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Where a child server stores: the test's data folder, or, in the
/// PostgreSQL pass of the suite, a fresh database on the suite's server.
pub struct ChildStore {
    args: Vec<std::ffi::OsString>,
    _postgres: Option<std::sync::Arc<Postgres>>,
}

impl ChildStore {
    pub fn new(data: &Path) -> ChildStore {
        match database() {
            Some((pg, url)) => ChildStore { args: vec!["--store".into(), url.into()], _postgres: Some(pg) },
            None => ChildStore { args: vec!["--data".into(), data.into()], _postgres: None },
        }
    }

    /// The flags of `offerlab serve` that name it.
    pub fn args(&self) -> Vec<&std::ffi::OsStr> {
        self.args.iter().map(|a| a.as_os_str()).collect()
    }
}

/// The real `offerlab serve` as a child process, its stderr kept.
pub struct ChildServer {
    pub server: Server,
    pub address: String,
    /// Every line the server wrote to stderr so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ChildServer {
    pub fn start(store: &ChildStore, experiments: &Path) -> ChildServer {
        let mut server = spawn_server(&store.args(), experiments, Stdio::piped(), &[]);
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = server.child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let address = server.url.clone();
        ChildServer { server, address, log }
    }

    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.server.child.id().to_string()).status().unwrap();
        assert!(ok.success());
    }
}

/// An amount as the committed `metrics.toml` (`currency = "USD"`) shows
/// it, written out here on its own: `-1234.5` → `"-$1,234.50"`.
pub fn dollars(x: f64) -> String {
    let cents = (x.abs() * 100.0).round() as u64;
    let mut whole = (cents / 100).to_string();
    let mut at = whole.len();
    while at > 3 {
        at -= 3;
        whole.insert(at, ',');
    }
    let sign = if x < 0.0 && cents > 0 { "-" } else { "" };
    format!("{sign}${whole}.{:02}", cents % 100)
}
