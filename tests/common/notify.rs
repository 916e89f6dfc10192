//! For the notification tests: a webhook receiver on loopback (it answers
//! each request with the next status of its script, then 200, and keeps
//! every request it got), the committed experiments with a notify.toml, and
//! traffic that changes a verdict.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use offerlab::assignment::{evaluate, Attributes};
use offerlab::experiment::load_dir;
use serde_json::{json, Value};

use super::EXPERIMENTS;

/// The committed experiments, copied under `root`, with `notify` as their
/// notify.toml.
pub fn experiments_with(root: &Path, notify: &str) -> PathBuf {
    let dir = root.join("experiments");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(EXPERIMENTS).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.join("notify.toml"), notify).unwrap();
    dir
}

/// One `[[webhook]]` table.
pub fn webhook(name: &str, url: &str, format: &str, on: &str, experiment: &str, secret_env: &str) -> String {
    format!(
        "[[webhook]]\nname = \"{name}\"\nurl = \"{url}\"\nformat = \"{format}\"\non = [{on}]\nexperiments = [\"{experiment}\"]\nsecret_env = \"{secret_env}\"\n\n"
    )
}

/// A counter's value in the server's `/metrics` (0 when absent).
pub fn counter(url: &str, series: &str) -> f64 {
    let text = reqwest::blocking::get(format!("{url}/metrics")).unwrap().text().unwrap();
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

/// Waits until the server at `url` finished `n` passes over the verdicts.
pub fn evaluations(url: &str, n: f64) {
    let until = Instant::now() + Duration::from_secs(60);
    while counter(url, "offerlab_verdict_evaluations_total") < n {
        assert!(Instant::now() < until, "{n} evaluations did not happen at {url}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn reload(url: &str) {
    let r = reqwest::blocking::Client::new().post(format!("{url}/admin/reload")).send().unwrap();
    assert!(r.status().is_success(), "reload: {}", r.text().unwrap());
}

/// Exposures that break test `id`'s split: 240 visitors its hash puts in
/// the control, 8 in the other variants.
pub fn broken_split(id: &str) -> Value {
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

/// Posts exposures to the server at `url`.
pub fn expose(url: &str, body: &Value) {
    let r = reqwest::blocking::Client::new().post(format!("{url}/v1/exposures")).json(body).send().unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Listens on 127.0.0.1; each answer is the next of `script`, each a
    /// status and a `Retry-After` to send with it, then 200 for good.
    pub fn start(script: Vec<(u16, Option<u64>)>) -> Receiver {
        Receiver::start_with_delay(script, Duration::ZERO)
    }

    /// [`Receiver::start`], holding its first answer back for `delay` (its
    /// sender is mid-try meanwhile). Requests are answered one at a time.
    pub fn start_with_delay(script: Vec<(u16, Option<u64>)>, delay: Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/secret-path", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let kept = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = BTreeMap::new();
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                    }
                }
                let length = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let n = {
                    let mut got = kept.lock().unwrap();
                    got.push(Received { headers, body });
                    got.len()
                };
                if n == 1 {
                    std::thread::sleep(delay);
                }
                let (status, retry_after) = script.get(n - 1).copied().unwrap_or((200, None));
                let extra = retry_after.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} Scripted\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Receiver { url, got }
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests came, for at most `limit`.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let until = Instant::now() + limit;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < until, "{} requests within {limit:?}, not {n}: {got:?}", got.len());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
