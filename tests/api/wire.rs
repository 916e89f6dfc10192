//! The replies' JSON shape is pinned: each endpoint's reply, on a fixed day
//! and fixed traffic, matches the example committed in `tests/wire/v1/`
//! key for key (numbers to 1e-9, relatively). Renaming a field inside
//! offerlab cannot change them; changing the wire on purpose means
//! regenerating the examples (`OFFERLAB_BLESS=1 cargo test --test api wire`)
//! and reading the diff.

use std::path::PathBuf;

use offerlab::assignment::{hash, HashVersion};
use offerlab::wire::v1::{AssignReply, BatchReply, ExperimentList, ItemStatus, Report, Segments};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

fn example_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/wire/v1").join(format!("{name}.json"))
}

/// Where `got` and `want` differ, as JSON paths; numbers agree to 1e-9
/// relatively (the last digits of a float may differ by platform).
fn differences(path: &str, got: &Value, want: &Value, out: &mut Vec<String>) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for key in g.keys().chain(w.keys().filter(|k| !g.contains_key(*k))) {
                match (g.get(key), w.get(key)) {
                    (Some(a), Some(b)) => differences(&format!("{path}.{key}"), a, b, out),
                    (Some(_), None) => out.push(format!("{path}.{key} is new")),
                    (None, _) => out.push(format!("{path}.{key} is gone")),
                }
            }
        }
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => {
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                differences(&format!("{path}[{i}]"), a, b, out);
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            if (a - b).abs() > 1e-9 * a.abs().max(b.abs()).max(1.0) {
                out.push(format!("{path}: {a} where the example has {b}"));
            }
        }
        _ if got == want => {}
        _ => out.push(format!("{path}: {got} where the example has {want}")),
    }
}

/// Checks `reply` against the committed example `name`, and that it reads
/// back as the wire type `T` with nothing lost; with `OFFERLAB_BLESS=1`,
/// writes the example instead.
fn pin<T: DeserializeOwned + serde::Serialize>(name: &str, reply: &Value) {
    let typed: T = serde_json::from_value(reply.clone()).unwrap_or_else(|e| panic!("{name} is not its wire type: {e}"));
    let mut lost = Vec::new();
    differences(name, &serde_json::to_value(&typed).unwrap(), reply, &mut lost);
    assert!(lost.is_empty(), "reading {name} as its wire type changes it: {lost:#?}");
    let path = example_path(name);
    if std::env::var_os("OFFERLAB_BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(reply).unwrap() + "\n").unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let want: Value = serde_json::from_str(&text).unwrap();
    let mut found = Vec::new();
    differences(name, reply, &want, &mut found);
    assert!(found.is_empty(), "{name} differs from {}: {found:#?}", path.display());
}

fn cart_variant(visitor: &str) -> &'static str {
    if hash("running-cart", visitor, HashVersion::V2) < 0.5 {
        "control"
    } else {
        "treatment"
    }
}

#[tokio::test]
async fn every_reply_matches_its_committed_example() {
    let app = spawn_app().await;

    let (status, assign) =
        app.post("/v1/assign", &json!({ "visitor_id": "v-wire", "attributes": { "device": "mobile" } })).await;
    assert_eq!(status, 200, "{assign}");
    pin::<AssignReply>("assign", &assign);

    let (status, one) = app
        .post(
            "/v1/exposures",
            &json!({ "visitor_id": "v-wire", "experiment": "running-cart", "variant": cart_variant("v-wire"), "ts": "2026-11-20T09:00:00Z" }),
        )
        .await;
    assert_eq!(status, 200, "{one}");
    pin::<ItemStatus>("track-item", &one);

    // Two weeks of a small test: 60 visitors, a third of them order, some
    // take the upsell and one in five orders comes back.
    let mut exposures = Vec::new();
    let mut events = Vec::new();
    for i in 0..60 {
        let visitor = format!("v-{i}");
        let day = 16 + i % 14;
        let ts = format!("2026-11-{day:02}T10:00:00Z");
        let device = ["mobile", "desktop", "tablet"][i as usize % 3];
        exposures.push(json!({ "visitor_id": visitor, "experiment": "running-cart", "variant": cart_variant(&visitor),
                               "ts": ts, "attributes": { "device": device } }));
        let later = format!("2026-11-{day:02}T10:30:00Z");
        if i % 3 == 0 {
            let value = 20.0 + f64::from(i) * 1.25;
            events.push(
                json!({ "id": format!("o-{i}"), "visitor_id": visitor, "name": "order", "value": value, "ts": later }),
            );
            if i % 5 == 0 {
                events.push(json!({ "id": format!("r-{i}"), "visitor_id": visitor, "name": "return", "ts": later }));
            }
        }
        if i % 4 == 1 {
            events.push(json!({ "id": format!("u-{i}"), "visitor_id": visitor, "name": "upsell_accepted", "value": 9.5, "ts": later }));
        }
    }
    for (path, items) in [("/v1/exposures", exposures), ("/v1/events", events)] {
        let (status, body) = app.post(path, &Value::Array(items)).await;
        assert_eq!((status, body["rejected"].clone()), (200, json!(0)), "{body}");
    }
    // The batch example: stored, stored before, and refused.
    let batch = json!([
        { "id": "u-wire", "visitor_id": "v-wire", "name": "upsell_accepted", "value": 9.5, "ts": "2026-11-20T09:05:00Z" },
        { "id": "o-0", "visitor_id": "v-0", "name": "order", "value": 20.0, "ts": "2026-11-16T10:30:00Z" },
        { "id": "bad", "visitor_id": "v-1", "name": "order", "value": 1e300 },
    ]);
    let (status, batch) = app.post("/v1/events", &batch).await;
    assert_eq!(status, 200, "{batch}");
    pin::<BatchReply>("track-batch", &batch);

    let (status, list) = app.get("/api/v1/experiments").await;
    assert_eq!(status, 200, "{list}");
    pin::<ExperimentList>("experiments", &list);

    let (status, report) = app.get("/api/v1/experiments/running-cart/report").await;
    assert_eq!(status, 200, "{report}");
    pin::<Report>("report", &report);

    let (status, segments) = app.get("/api/v1/experiments/running-cart/segments").await;
    assert_eq!(status, 200, "{segments}");
    pin::<Segments>("segments", &segments);
}
