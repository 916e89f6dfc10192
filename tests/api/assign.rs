//! `/v1/assign`: surfaces, targeting, coverage, namespaces, forcing, the
//! four statuses and the refusals.

use offerlab::assignment::{hash, HashVersion};
use serde_json::json;

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn health_answers() {
    let app = spawn_app().await;
    let (status, body) = app.get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn every_visible_test_answers_with_a_payload() {
    let app = spawn_app().await;
    let got = app.assign(&json!({ "visitor_id": "v-1", "attributes": { "device": "mobile" } })).await;
    let ids: Vec<&str> = got.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        ["concluded-test", "half-coverage", "ns-left", "ns-right", "paused-test", "running-cart", "targeted-mobile"],
        "the draft is invisible"
    );
    let cart = &got["running-cart"];
    assert_eq!(cart["in_experiment"], true);
    assert_eq!(cart["forced"], false);
    let n = hash("running-cart", "v-1", HashVersion::V2);
    assert_eq!(cart["hash_value"], json!(n));
    let want = if n < 0.5 { "control" } else { "treatment" };
    assert_eq!(cart["variant"], want);
    assert_eq!(cart["payload"], json!({ "copy": want }));
}

#[tokio::test]
async fn surface_filter_keeps_only_that_surface() {
    let app = spawn_app().await;
    let got = app.assign(&json!({ "visitor_id": "v-1", "surface": "cart" })).await;
    assert_eq!(got.keys().collect::<Vec<_>>(), ["running-cart"]);
    let (status, body) = app.post("/v1/assign", &json!({ "visitor_id": "v-1", "surface": "basket" })).await;
    assert_error(status, &body, 400, "invalid_surface");
}

#[tokio::test]
async fn experiments_filter_and_unknown_test() {
    let app = spawn_app().await;
    let got = app.assign(&json!({ "visitor_id": "v-1", "experiments": ["half-coverage"] })).await;
    assert_eq!(got.keys().collect::<Vec<_>>(), ["half-coverage"]);
    let (status, body) = app.post("/v1/assign", &json!({ "visitor_id": "v-1", "experiments": ["no-such-test"] })).await;
    assert_error(status, &body, 404, "unknown_experiment");
    assert!(body["error"]["message"].as_str().unwrap().contains("no-such-test"));
}

#[tokio::test]
async fn targeting_lets_in_only_matching_visitors() {
    let app = spawn_app().await;
    let body =
        |device: &str| json!({ "visitor_id": "v-7", "surface": "product_page", "attributes": { "device": device } });
    let mobile = app.assign(&body("mobile")).await;
    assert_eq!(mobile["targeted-mobile"]["in_experiment"], true);
    let desktop = app.assign(&body("desktop")).await;
    assert_eq!(desktop["targeted-mobile"]["in_experiment"], false);
    assert_eq!(desktop["targeted-mobile"]["variant"], "control");
    assert_eq!(desktop["targeted-mobile"]["payload"], json!({ "copy": "control" }));
    let none = app.assign(&json!({ "visitor_id": "v-7", "surface": "product_page" })).await;
    assert_eq!(none["targeted-mobile"]["in_experiment"], false);
}

#[tokio::test]
async fn coverage_leaves_visitors_out_with_the_control_payload() {
    let app = spawn_app().await;
    let (mut inside, mut outside) = (0, 0);
    for i in 0..200 {
        let v = format!("cov-{i}");
        let got = app.assign(&json!({ "visitor_id": v, "surface": "checkout" })).await;
        let a = &got["half-coverage"];
        let n = hash("half-coverage", &v, HashVersion::V2);
        // coverage 0.5 of 50/50: [0, 0.25) control, [0.5, 0.75) treatment.
        let expected_in = n < 0.25 || (0.5..0.75).contains(&n);
        assert_eq!(a["in_experiment"], expected_in, "{v}: n = {n}");
        assert_eq!(a["hash_value"], json!(n));
        if expected_in {
            inside += 1;
        } else {
            outside += 1;
            assert_eq!(a["variant"], "control");
            assert_eq!(a["payload"], json!({ "copy": "control" }));
        }
    }
    assert!(inside > 50 && outside > 50, "in {inside}, out {outside}");
}

#[tokio::test]
async fn namespaces_put_each_visitor_in_at_most_one_slice() {
    let app = spawn_app().await;
    for i in 0..100 {
        let got = app.assign(&json!({ "visitor_id": format!("ns-{i}"), "surface": "email" })).await;
        let left = got["ns-left"]["in_experiment"] == true;
        let right = got["ns-right"]["in_experiment"] == true;
        assert!(left != right, "visitor ns-{i} must be in exactly one of the two disjoint halves");
    }
}

#[tokio::test]
async fn forcing_returns_the_variant_marked_and_unrecorded() {
    let app = spawn_app().await;
    let got = app.assign(&json!({ "visitor_id": "qa", "force": { "running-cart": "treatment" } })).await;
    let a = &got["running-cart"];
    assert_eq!(a["variant"], "treatment");
    assert_eq!(a["forced"], true);
    assert_eq!(a["in_experiment"], false);
    assert_eq!(a["payload"], json!({ "copy": "treatment" }));

    let (status, body) =
        app.post("/v1/assign", &json!({ "visitor_id": "qa", "force": { "running-cart": "nope" } })).await;
    assert_error(status, &body, 400, "unknown_variant");
    assert!(body["error"]["message"].as_str().unwrap().contains("control, treatment"));
}

#[tokio::test]
async fn paused_shows_control_and_concluded_shows_the_winner() {
    let app = spawn_app().await;
    for i in 0..20 {
        let got = app.assign(&json!({ "visitor_id": format!("s-{i}"), "surface": "post_purchase" })).await;
        assert_eq!(got.len(), 2, "draft invisible: {got:?}");
        assert_eq!(got["paused-test"]["variant"], "control");
        assert_eq!(got["paused-test"]["in_experiment"], false);
        assert_eq!(got["concluded-test"]["variant"], "treatment");
        assert_eq!(got["concluded-test"]["in_experiment"], false);
    }
}

#[tokio::test]
async fn get_form_answers_like_post() {
    let app = spawn_app().await;
    let post = app
        .assign(&json!({ "visitor_id": "v-9", "surface": "product_page", "attributes": { "device": "mobile" } }))
        .await;
    let (status, get) = app.get("/v1/assign?visitor_id=v-9&surface=product_page&attr.device=mobile").await;
    assert_eq!(status, 200);
    assert_eq!(get["assignments"][0], post["targeted-mobile"]);
    let (status, forced) = app.get("/v1/assign?visitor_id=v-9&surface=cart&force.running-cart=treatment").await;
    assert_eq!(status, 200);
    assert_eq!(forced["assignments"][0]["forced"], true);
}

#[tokio::test]
async fn malformed_json_is_refused() {
    let app = spawn_app().await;
    let (status, body) = app.post_raw("/v1/assign", "{\"visitor_id\": ").await;
    assert_error(status, &body, 400, "malformed_json");
    let (status, body) = app.post_raw("/v1/assign", "[1, 2]").await;
    assert_error(status, &body, 400, "malformed_json");
}

#[tokio::test]
async fn missing_or_bad_visitor_id_is_refused() {
    let app = spawn_app().await;
    let (status, body) = app.post("/v1/assign", &json!({ "surface": "cart" })).await;
    assert_error(status, &body, 400, "missing_field");
    assert_eq!(body["error"]["field"], "visitor_id");
    let (status, body) = app.post("/v1/assign", &json!({ "visitor_id": "" })).await;
    assert_error(status, &body, 400, "invalid_visitor_id");
    let (status, body) = app.get("/v1/assign?surface=cart").await;
    assert_error(status, &body, 400, "missing_field");
    let (status, body) = app.post("/v1/assign", &json!({ "visitor_id": "v", "attributes": { "a": [1] } })).await;
    assert_error(status, &body, 400, "invalid_attribute");
}

#[tokio::test]
async fn unknown_route_is_a_json_404() {
    let app = spawn_app().await;
    let (status, body) = app.get("/v1/nothing-here").await;
    assert_error(status, &body, 404, "not_found");
}
