//! A bounded fuzz test: 10,000 random and mutated requests (bodies, headers,
//! methods, paths) to every route on loopback. No 5xx, no panic, and the
//! server still answers afterwards.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::helpers::spawn_app;

const REQUESTS: usize = 10_000;

fn valid_bodies() -> Vec<String> {
    [
        json!({ "visitor_id": "v-1", "surface": "cart", "attributes": { "device": "mobile" }, "record_exposure": true }),
        json!({ "visitor_id": "v-2", "force": { "running-cart": "treatment" } }),
        json!([{ "visitor_id": "v-3", "experiment": "running-cart", "variant": "control", "ts": "2026-11-20T10:00:00Z" }]),
        json!({ "visitor_id": "v-4", "experiment": "half-coverage", "variant": "treatment" }),
        json!([{ "id": "e-1", "visitor_id": "v-3", "name": "order", "value": 12.5, "ts": "2026-11-20T11:00:00Z" }]),
        json!([{ "id": "e-2", "visitor_id": "v-3", "name": "upsell_accepted" }, { "id": 7 }]),
    ]
    .iter()
    .map(|v| v.to_string())
    .collect()
}

const PATHS: [&str; 14] = [
    "/v1/assign",
    "/v1/assign?visitor_id=v&surface=cart&force.running-cart=control",
    "/v1/exposures",
    "/v1/events",
    "/admin/reload",
    "/healthz",
    "/metrics",
    "/",
    "/experiments/running-cart",
    "/experiments/%3Cscript%3E",
    "/api/v1/experiments",
    "/api/v1/experiments/running-cart/report",
    "/api/v1/experiments/running-cart/daily.csv",
    "/api/v1/experiments/../../etc/passwd/report",
];

const ODD_VALUES: [&str; 16] = [
    "null",
    "true",
    "-1",
    "1e308",
    "-1e308",
    "0.0000001",
    "\"\"",
    "\"\\u0000\"",
    "[]",
    "{}",
    "[[[[[[[[]]]]]]]]",
    "\"2026-02-30T25:61:00Z\"",
    "\"NaN\"",
    "18446744073709551616",
    "\"ü😀\"",
    "\"x\"",
];

fn mutate(rng: &mut StdRng, body: &str) -> Vec<u8> {
    let mut bytes = body.as_bytes().to_vec();
    match rng.random_range(0..7) {
        0 => {
            let at = rng.random_range(0..bytes.len());
            bytes[at] = rng.random();
        }
        1 => {
            bytes.truncate(rng.random_range(0..bytes.len()));
        }
        2 => {
            let at = rng.random_range(0..=bytes.len());
            let junk: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
            bytes.splice(at..at, junk);
        }
        3 => {
            // Replace one JSON value with an odd one.
            let text = String::from_utf8_lossy(&bytes).to_string();
            if let Some(colon) = text.match_indices(':').map(|(i, _)| i).collect::<Vec<_>>().choose(rng) {
                let end = text[colon + 1..].find([',', '}']).map_or(text.len(), |e| colon + 1 + e);
                bytes = format!("{}{}{}", &text[..=*colon], ODD_VALUES.choose(rng).unwrap(), &text[end..]).into_bytes();
            }
        }
        4 => bytes = ODD_VALUES.choose(rng).unwrap().as_bytes().to_vec(),
        5 => bytes = format!("[{}]", vec![body; rng.random_range(1..40)].join(",")).into_bytes(),
        _ => {}
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_mutated_requests_never_cause_a_server_error() {
    let app = spawn_app().await;
    let bodies = valid_bodies();
    let mut handles = Vec::new();
    for worker in 0..8u64 {
        let (client, address, bodies) = (app.client.clone(), app.address.clone(), bodies.clone());
        handles.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(worker);
            let mut failures = Vec::new();
            for _ in 0..REQUESTS / 8 {
                let mut path = PATHS.choose(&mut rng).unwrap().to_string();
                if rng.random_bool(0.1) {
                    path.push_str(
                        ["?a=%ZZ", "/x", "%00", "?visitor_id=", "//", "?visitor_id=v&surface=%FF"]
                            .choose(&mut rng)
                            .unwrap(),
                    );
                }
                let method = ["GET", "POST", "POST", "POST", "PUT", "DELETE"].choose(&mut rng).unwrap();
                let base = bodies.choose(&mut rng).unwrap().clone();
                let body = mutate(&mut rng, &base);
                let mut req = client.request(method.parse().unwrap(), format!("{address}{path}")).body(body);
                req = req.header(
                    "content-type",
                    *["application/json", "application/json", "text/plain", "application/json; charset=latin1", "x/y"]
                        .choose(&mut rng)
                        .unwrap(),
                );
                if rng.random_bool(0.1) {
                    req = req.header(
                        "authorization",
                        *["Bearer", "Basic !!!", "Basic Og==", "Bearer \u{7f}"].choose(&mut rng).unwrap(),
                    );
                }
                match req.send().await {
                    Ok(r) if r.status().is_server_error() => failures.push(format!("{method} {path}: {}", r.status())),
                    Ok(_) => {}
                    Err(e) if e.is_builder() => {}
                    Err(e) => failures.push(format!("{method} {path}: {e}")),
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for h in handles {
        failures.extend(h.await.unwrap());
    }
    assert!(failures.is_empty(), "{} failures, first: {:?}", failures.len(), &failures[..failures.len().min(5)]);
    let (status, body) = app.get("/healthz").await;
    assert_eq!((status, body["status"].clone()), (200, json!("ok")));
}
