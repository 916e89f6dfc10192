//! Reloading definitions: over HTTP and on SIGHUP; an invalid folder is
//! refused and the running set stays.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    assert_error, definition, fixture_definitions, spawn_app, wait_until, write_experiments, ChildServer, ChildStore,
};

#[tokio::test]
async fn reload_picks_up_a_new_test() {
    let app = spawn_app().await;
    let new = definition("new-copy-test", "checkout", "running", "namespace = { id = \"x\", range = [0.0, 0.1] }");
    // The existing checkout test has no namespace, so it must be paused first.
    let paused = definition("half-coverage", "checkout", "paused", "coverage = 0.5");
    std::fs::write(app.experiments.join("new-copy-test.toml"), new).unwrap();
    std::fs::write(app.experiments.join("half-coverage.toml"), paused).unwrap();
    let (status, body) = app.post("/admin/reload", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["experiments"].as_array().unwrap().contains(&json!("new-copy-test")));
    let got = app.assign(&json!({ "visitor_id": "v", "surface": "checkout" })).await;
    assert!(got.contains_key("new-copy-test"));
    assert_eq!(got["half-coverage"]["in_experiment"], false);
}

#[tokio::test]
async fn refused_reload_keeps_the_running_set() {
    let app = spawn_app().await;
    let before = app.assign(&json!({ "visitor_id": "v" })).await;
    let broken = definition("running-cart", "cart", "running", "").replace(
        "weight = 0.5\npayload = { copy = \"treatment\" }",
        "weight = 0.9\npayload = { copy = \"treatment\" }",
    );
    std::fs::write(app.experiments.join("running-cart.toml"), broken).unwrap();
    std::fs::write(app.experiments.join("extra.toml"), definition("extra", "email", "draft", "")).unwrap();

    let (status, body) = app.post("/admin/reload", &json!({})).await;
    assert_error(status, &body, 422, "invalid_definitions");
    let details = body["error"]["details"].as_array().unwrap();
    assert!(
        details.iter().any(|d| d["file"].as_str().unwrap().ends_with("running-cart.toml")
            && d["message"].as_str().unwrap().contains("add up to 1")),
        "{body}"
    );

    let after = app.assign(&json!({ "visitor_id": "v" })).await;
    assert_eq!(before, after, "the running set must stay, without the half-loaded extra test");
}

#[tokio::test]
async fn sighup_reloads_the_child_process() {
    let root = tempfile::tempdir().unwrap();
    let (experiments, data) = (root.path().join("experiments"), root.path().join("data"));
    write_experiments(&experiments, &fixture_definitions());
    let store = ChildStore::new(&data);
    let server = ChildServer::start(&store, &experiments);
    let client = reqwest::Client::new();
    let url = format!("{}/v1/assign?visitor_id=v&surface=email", server.address);
    let count = || async {
        let body: serde_json::Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        body["assignments"].as_array().unwrap().len()
    };
    assert_eq!(count().await, 2);

    // Refused on SIGHUP: the valid new test next to the broken file is not
    // half-loaded, and the set stays.
    std::fs::write(experiments.join("bad.toml"), "id = \"bad\"\nnot toml").unwrap();
    std::fs::write(experiments.join("mail-three.toml"), definition("mail-three", "email", "paused", "")).unwrap();
    server.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || async { server.logged("reload refused") }).await,
        "SIGHUP with a broken file was not refused"
    );
    assert_eq!(count().await, 2);

    std::fs::remove_file(experiments.join("bad.toml")).unwrap();
    server.signal("HUP");
    assert!(wait_until(Duration::from_secs(10), || async { count().await == 3 }).await, "SIGHUP did not reload");
}
