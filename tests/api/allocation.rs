//! Allocation safety: a running test whose allocation changes after
//! exposures is refused at reload and at start, unless allocation_version
//! rises, which starts a new analysis phase.

use std::process::Command;

use offerlab::assignment::{hash, HashVersion};
use serde_json::json;

use crate::helpers::{
    assert_error, definition, fixture_definitions, spawn_app, write_experiments, ChildServer, ChildStore,
};

fn cart(extra: &str, weights: (&str, &str)) -> String {
    definition("running-cart", "cart", "running", extra)
        .replacen("weight = 0.5", &format!("weight = {}", weights.0), 1)
        .replacen("weight = 0.5", &format!("weight = {}", weights.1), 1)
}

fn variant(v: &str) -> &'static str {
    if hash("running-cart", v, HashVersion::V2) < 0.5 {
        "control"
    } else {
        "treatment"
    }
}

#[tokio::test]
async fn a_changed_allocation_is_refused_until_the_version_rises() {
    let app = spawn_app().await;
    let (status, _) = app
        .post("/v1/exposures", &json!({ "visitor_id": "a-1", "experiment": "running-cart", "variant": variant("a-1") }))
        .await;
    assert_eq!(status, 200);

    std::fs::write(app.experiments.join("running-cart.toml"), cart("", ("0.7", "0.3"))).unwrap();
    let (status, body) = app.post("/admin/reload", &json!({})).await;
    assert_error(status, &body, 422, "invalid_definitions");
    let message = body["error"]["details"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("changed after exposures were recorded") && message.contains("allocation_version = 2"),
        "{message}"
    );
    let (_, report) = app.get("/api/v1/experiments/running-cart/report").await;
    assert_eq!(report["allocation_version"], 1, "the running set stays");

    std::fs::write(app.experiments.join("running-cart.toml"), cart("allocation_version = 2", ("0.7", "0.3"))).unwrap();
    let (status, body) = app.post("/admin/reload", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (_, report) = app.get("/api/v1/experiments/running-cart/report").await;
    assert_eq!(report["allocation_version"], 2);
    assert_eq!(report["earlier_phase_visitors"], 1, "earlier exposures are kept but left out");
    assert_eq!(
        report["metrics"][0]["arms"][0]["visitors"].as_u64().unwrap()
            + report["metrics"][0]["arms"][1]["visitors"].as_u64().unwrap(),
        0
    );
    assert_eq!(app.stored().await.0, 1);

    let page =
        app.client.get(format!("{}/experiments/running-cart", app.address)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Allocation version 2"), "the report says so");

    let got = app.assign(&json!({ "visitor_id": "a-1", "surface": "cart", "record_exposure": true })).await;
    assert_eq!(got["running-cart"]["in_experiment"], true);
    let (_, report) = app.get("/api/v1/experiments/running-cart/report").await;
    let visitors: u64 =
        report["metrics"][0]["arms"].as_array().unwrap().iter().map(|a| a["visitors"].as_u64().unwrap()).sum();
    assert_eq!(visitors, 1, "the visitor counts again in the new phase");
}

#[tokio::test]
async fn a_change_before_any_exposure_is_accepted() {
    let app = spawn_app().await;
    std::fs::write(app.experiments.join("running-cart.toml"), cart("coverage = 0.5", ("0.5", "0.5"))).unwrap();
    let (status, body) = app.post("/admin/reload", &json!({})).await;
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_changed_allocation_is_refused_at_start() {
    let root = tempfile::tempdir().unwrap();
    let (experiments, data) = (root.path().join("experiments"), root.path().join("data"));
    write_experiments(&experiments, &fixture_definitions());
    let store = ChildStore::new(&data);
    {
        let server = ChildServer::start(&store, &experiments);
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/v1/exposures", server.address))
            .json(&json!({ "visitor_id": "s-1", "experiment": "running-cart", "variant": variant("s-1") }))
            .send()
            .unwrap();
        assert!(r.status().is_success());
    }
    std::fs::write(experiments.join("running-cart.toml"), cart("", ("0.6", "0.4"))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_offerlab"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(store.args())
        .arg("--experiments")
        .arg(&experiments)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("running-cart.toml") && stderr.contains("allocation_version = 2"), "{stderr}");
}

#[tokio::test]
async fn editing_start_moves_no_stored_day_and_a_new_timezone_needs_a_new_phase() {
    let app = spawn_app().await;
    let ts = "2026-11-10T23:30:00Z";
    let exposure = json!({ "visitor_id": "d-1", "experiment": "running-cart", "variant": variant("d-1"), "ts": ts });
    let (status, body) = app.post("/v1/exposures", &exposure).await;
    assert_eq!(status, 200, "{body}");
    let day_of = |csv: &str| csv.lines().nth(1).unwrap().split(',').nth(1).unwrap().to_owned();
    let before = app.client.get(format!("{}/api/v1/experiments/running-cart/daily.csv", app.address));
    let before = day_of(&before.send().await.unwrap().text().await.unwrap());
    assert_eq!(before, "2026-11-10");

    std::fs::write(
        app.experiments.join("running-cart.toml"),
        cart("", ("0.5", "0.5")).replace("2026-11-02", "2026-10-30"),
    )
    .unwrap();
    let (status, body) = app.post("/admin/reload", &json!({})).await;
    assert_eq!(status, 200, "a new start is accepted: {body}");
    let after = app.client.get(format!("{}/api/v1/experiments/running-cart/daily.csv", app.address));
    assert_eq!(day_of(&after.send().await.unwrap().text().await.unwrap()), before, "the stored day did not move");

    std::fs::write(app.experiments.join("running-cart.toml"), cart("timezone = \"+02:00\"", ("0.5", "0.5"))).unwrap();
    let (status, body) = app.post("/admin/reload", &json!({})).await;
    assert_error(status, &body, 422, "invalid_definitions");
    let message = body["error"]["details"][0]["message"].as_str().unwrap();
    assert!(message.contains("timezone") && message.contains("allocation_version = 2"), "{message}");
    std::fs::write(
        app.experiments.join("running-cart.toml"),
        cart("timezone = \"+02:00\"\nallocation_version = 2", ("0.5", "0.5")),
    )
    .unwrap();
    let (status, body) = app.post("/admin/reload", &json!({})).await;
    assert_eq!(status, 200, "a new phase may use a new timezone: {body}");
}
