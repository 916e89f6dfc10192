//! `/v1/exposures`, `/v1/events` and `record_exposure`: what is accepted,
//! what is a duplicate, and every refusal, each leaving nothing stored.

use offerlab::assignment::{hash, HashVersion};
use serde_json::{json, Value};

use crate::helpers::{assert_error, fixture_definitions, spawn_app, spawn_app_configured};

/// The variant `visitor` really has in the 50/50 test `running-cart`.
fn cart_variant(visitor: &str) -> &'static str {
    if hash("running-cart", visitor, HashVersion::V2) < 0.5 {
        "control"
    } else {
        "treatment"
    }
}

fn other(variant: &str) -> &'static str {
    if variant == "control" {
        "treatment"
    } else {
        "control"
    }
}

fn exposure(visitor: &str) -> Value {
    json!({ "visitor_id": visitor, "experiment": "running-cart", "variant": cart_variant(visitor) })
}

#[tokio::test]
async fn first_exposure_counts_and_repeats_are_duplicates() {
    let app = spawn_app().await;
    let (status, body) = app.post("/v1/exposures", &exposure("v-1")).await;
    assert_eq!((status, body["status"].clone()), (200, json!("accepted")), "{body}");
    let (status, body) = app.post("/v1/exposures", &exposure("v-1")).await;
    assert_eq!((status, body["status"].clone()), (200, json!("duplicate")), "{body}");
    assert_eq!(app.stored().await, (1, 0));
}

#[tokio::test]
async fn a_batch_reports_each_item() {
    let app = spawn_app().await;
    let bad = json!({ "visitor_id": "v-2", "experiment": "running-cart", "variant": other(cart_variant("v-2")) });
    let (status, body) =
        app.post("/v1/exposures", &json!([exposure("v-1"), bad, exposure("v-1"), {"visitor_id": 5}])).await;
    assert_eq!(status, 200, "{body}");
    let statuses: Vec<&str> =
        body["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["accepted", "rejected", "duplicate", "rejected"]);
    assert_eq!(body["results"][1]["code"], "assignment_mismatch");
    assert_eq!(body["results"][3]["code"], "malformed_item");
    assert_eq!((body["accepted"].clone(), body["rejected"].clone()), (json!(1), json!(2)));
    assert_eq!(app.stored().await, (1, 0));
}

#[tokio::test]
async fn refused_exposures_store_nothing() {
    let app = spawn_app().await;
    let actual = cart_variant("v-3");
    let cases = [
        (
            json!({ "visitor_id": "v-3", "experiment": "running-cart", "variant": other(actual) }),
            409,
            "assignment_mismatch",
        ),
        (json!({ "visitor_id": "v-3", "experiment": "nope", "variant": "control" }), 404, "unknown_experiment"),
        (json!({ "visitor_id": "v-3", "experiment": "running-cart", "variant": "zzz" }), 400, "unknown_variant"),
        (
            json!({ "visitor_id": "v-3", "experiment": "paused-test", "variant": "control" }),
            409,
            "experiment_not_running",
        ),
        (
            json!({ "visitor_id": "v-3", "experiment": "draft-test", "variant": "control" }),
            409,
            "experiment_not_running",
        ),
        (
            json!({ "visitor_id": "v-3", "experiment": "targeted-mobile", "variant": "control", "attributes": { "device": "desktop" } }),
            409,
            "not_in_experiment",
        ),
        (json!({ "experiment": "running-cart", "variant": "control" }), 400, "missing_field"),
        (
            json!({ "visitor_id": "v-3", "experiment": "running-cart", "variant": actual, "ts": "yesterday" }),
            400,
            "invalid_timestamp",
        ),
        (
            json!({ "visitor_id": "v-3", "experiment": "running-cart", "variant": actual, "ts": "2099-01-01T00:00:00Z" }),
            400,
            "timestamp_in_future",
        ),
        (
            json!({ "visitor_id": "x".repeat(300), "experiment": "running-cart", "variant": "control" }),
            400,
            "invalid_visitor_id",
        ),
    ];
    for (body, status, code) in cases {
        let (got, reply) = app.post("/v1/exposures", &body).await;
        assert_error(got, &reply, status, code);
    }
    let (status, reply) = app
        .post("/v1/exposures", &json!({ "visitor_id": "v-3", "experiment": "running-cart", "variant": other(actual) }))
        .await;
    assert_eq!(status, 409);
    assert!(
        reply["error"]["message"].as_str().unwrap().contains(&format!("assigned \"{actual}\"")),
        "says the real variant: {reply}"
    );
    assert_eq!(app.stored().await, (0, 0));
}

fn event(id: &str, visitor: &str, name: &str, value: Value) -> Value {
    json!({ "id": id, "visitor_id": visitor, "name": name, "value": value })
}

#[tokio::test]
async fn events_are_idempotent_by_id() {
    let app = spawn_app().await;
    let batch = json!([event("e-1", "v", "order", json!(49.9)), event("e-1", "v", "order", json!(49.9))]);
    let (_, body) = app.post("/v1/events", &batch).await;
    assert_eq!((body["accepted"].clone(), body["duplicates"].clone()), (json!(1), json!(1)), "{body}");
    let (_, body) = app.post("/v1/events", &batch).await;
    assert_eq!(body["duplicates"], 2, "a retried batch changes nothing");
    assert_eq!(app.stored().await, (0, 1));
}

#[tokio::test]
async fn bad_events_are_rejected_one_by_one_and_store_nothing() {
    let app = spawn_app().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "visitor_id": "v", "name": "order" }), "missing_field"),
        (json!({ "id": "a", "name": "order" }), "missing_field"),
        (json!({ "id": "b", "visitor_id": "v" }), "missing_field"),
        (event("c", "v", "order", json!("NaN")), "invalid_value"),
        (event("d", "v", "order", json!(1e12)), "invalid_value"),
        (event("e", "v", "order", json!(-5e10)), "invalid_value"),
        (json!({ "id": "f", "visitor_id": "v", "name": "order", "ts": "2026-13-01" }), "invalid_timestamp"),
        (json!({ "id": "g", "visitor_id": "v", "name": "order", "ts": "2099-01-01T00:00:00Z" }), "timestamp_in_future"),
        (event(&"i".repeat(200), "v", "order", json!(1)), "invalid_field"),
        (event("h", "v", &"n".repeat(100), json!(1)), "invalid_field"),
        (event("j", &"v".repeat(300), "order", json!(1)), "invalid_visitor_id"),
        (json!("not an object"), "malformed_item"),
    ];
    let batch: Vec<Value> = cases.iter().map(|(e, _)| e.clone()).collect();
    let (status, body) = app.post("/v1/events", &json!(batch)).await;
    assert_eq!(status, 200, "{body}");
    for (i, (_, code)) in cases.iter().enumerate() {
        let r = &body["results"][i];
        assert_eq!((r["status"].as_str(), r["code"].as_str()), (Some("rejected"), Some(*code)), "item {i}: {r}");
    }
    assert_eq!(app.stored().await, (0, 0));
    // Infinity cannot be written in JSON: the body itself is refused.
    let (status, body) =
        app.post_raw("/v1/events", r#"[{"id":"k","visitor_id":"v","name":"order","value":1e999}]"#).await;
    assert_error(status, &body, 400, "malformed_json");
    assert_eq!(app.stored().await, (0, 0));
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let app = spawn_app_configured(&fixture_definitions(), |s| s.body_limit = 64 * 1024).await;
    let huge = json!([event("e", "v", &"n".repeat(70 * 1024), json!(1))]);
    let (status, body) = app.post("/v1/events", &huge).await;
    assert_error(status, &body, 413, "body_too_large");
    let (status, body) = app.post("/v1/exposures", &json!({ "visitor_id": "x".repeat(70 * 1024) })).await;
    assert_error(status, &body, 413, "body_too_large");
    let ok: Vec<Value> = (0..1000).map(|i| json!({"id": i.to_string(), "visitor_id": "v", "name": "o"})).collect();
    let (status, _) = app.post("/v1/events", &json!(ok)).await;
    assert_eq!(status, 200, "a full batch of 1,000 fits the limit");
    assert_eq!(app.stored().await, (0, 1000));
}

#[tokio::test]
async fn batch_of_more_than_1000_items_is_refused() {
    let app = spawn_app().await;
    let batch: Vec<Value> = (0..1001).map(|i| json!({"id": i.to_string(), "visitor_id": "v", "name": "o"})).collect();
    let (status, body) = app.post("/v1/events", &json!(batch)).await;
    assert_error(status, &body, 400, "batch_too_large");
    assert_eq!(app.stored().await, (0, 0));
}

#[tokio::test]
async fn record_exposure_on_assign_records_only_real_assignments() {
    let app = spawn_app().await;
    let got = app.assign(&json!({ "visitor_id": "v-9", "record_exposure": true })).await;
    let in_tests = got.values().filter(|a| a["in_experiment"] == true).count();
    assert!(in_tests >= 2);
    assert_eq!(app.stored().await.0, in_tests);
    app.assign(&json!({ "visitor_id": "qa", "record_exposure": true, "surface": "cart", "force": { "running-cart": "treatment" } })).await;
    assert_eq!(app.stored().await.0, in_tests, "forced variants are never recorded");
    let (_, body) = app.post("/v1/exposures", &exposure("v-9")).await;
    assert_eq!(body["status"], "duplicate");
}

#[tokio::test]
async fn events_before_and_after_exposure_are_attributed_by_time() {
    let app = spawn_app().await;
    let v = "v-attr";
    let variant = cart_variant(v);
    let events = json!([
        { "id": "before", "visitor_id": v, "name": "upsell_accepted", "ts": "2026-11-20T09:00:00Z" },
        { "id": "after", "visitor_id": v, "name": "order", "value": 80.0, "ts": "2026-11-20T11:00:00Z" },
    ]);
    app.post("/v1/events", &events).await;
    let mut x = exposure(v);
    x["ts"] = json!("2026-11-20T10:00:00Z");
    app.post("/v1/exposures", &x).await;
    let r = app.client.get(format!("{}/api/v1/experiments/running-cart/report", app.address)).send().await.unwrap();
    let report: Value = r.json().await.unwrap();
    let arm = |metric: &str| {
        let m = report["metrics"].as_array().unwrap().iter().find(|m| m["name"] == metric).unwrap().clone();
        m["arms"].as_array().unwrap().iter().find(|a| a["variant"] == variant).unwrap().clone()
    };
    assert_eq!(arm("upsell_acceptance")["sum"], 0.0, "the upsell happened before the exposure");
    assert_eq!(arm("revenue_per_visitor")["sum"], 80.0);
    assert_eq!(arm("order_conversion")["visitors"], 1);
}

#[tokio::test]
async fn metrics_count_requests_writes_and_flushes() {
    let app = spawn_app().await;
    app.post("/v1/events", &json!([event("m-1", "v", "order", json!(5)), event("m-1", "v", "order", json!(5))])).await;
    app.post("/v1/exposures", &exposure("v-m")).await;
    let text = app.client.get(format!("{}/metrics", app.address)).send().await.unwrap().text().await.unwrap();
    for line in [
        "offerlab_writes_total{kind=\"event\",outcome=\"accepted\"} 1",
        "offerlab_writes_total{kind=\"event\",outcome=\"duplicate\"} 1",
        "offerlab_writes_total{kind=\"exposure\",outcome=\"accepted\"} 1",
        "offerlab_http_requests_total{method=\"POST\",route=\"/v1/events\",status=\"200\"} 1",
        "offerlab_http_request_duration_seconds_count{route=\"/v1/exposures\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let flushes = text.lines().find(|l| l.starts_with("offerlab_flush_duration_seconds_count")).unwrap();
    assert!(flushes.ends_with(" 2"), "{flushes}");
}

#[tokio::test]
async fn exposures_before_the_start_are_refused_per_item() {
    let app = spawn_app().await;
    let at = |visitor: &str, ts: &str| json!({ "visitor_id": visitor, "experiment": "running-cart", "variant": cart_variant(visitor), "ts": ts });
    let (status, body) = app.post("/v1/exposures", &at("early", "2026-11-01T23:59:59Z")).await;
    assert_error(status, &body, 400, "before_start");
    assert_eq!(body["error"]["field"], "ts");
    let (status, body) = app
        .post(
            "/v1/exposures",
            &json!([
                at("y0", "0000-01-01T00:00:00Z"),
                at("on-time", "2026-11-02T00:00:00Z"),
                at("early", "1999-05-05T10:00:00Z")
            ]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let codes: Vec<Value> = body["results"].as_array().unwrap().iter().map(|r| r["code"].clone()).collect();
    assert_eq!(codes, [json!("before_start"), Value::Null, json!("before_start")], "{body}");
    assert_eq!(app.stored().await, (1, 0), "only the exposure on the first day is stored");
    let (status, body) = app.post("/v1/events", &event("e-early", "on-time", "order", json!(10.0))).await;
    assert_eq!((status, body["status"].clone()), (200, json!("accepted")), "events are kept whenever they happened");
}

#[tokio::test]
async fn an_event_id_reused_with_other_content_is_a_conflict() {
    let app = spawn_app().await;
    let (status, body) = app.post("/v1/events", &event("o-1", "v-1", "order", json!(10.0))).await;
    assert_eq!((status, body["status"].clone()), (200, json!("accepted")), "{body}");
    let (status, body) = app.post("/v1/events", &event("o-1", "v-1", "order", json!(10.0))).await;
    assert_eq!((status, body["status"].clone()), (200, json!("duplicate")), "the same event again: {body}");
    for other in [event("o-1", "v-1", "return", json!(10.0)), event("o-1", "v-1", "order", json!(12.5))] {
        let (status, body) = app.post("/v1/events", &other).await;
        assert_error(status, &body, 409, "conflict");
        assert_eq!(body["error"]["field"], "id");
    }
    let (status, body) = app
        .post(
            "/v1/events",
            &json!([event("o-1", "v-1", "order", json!(1.0)), event("o-2", "v-1", "order", json!(1.0))]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["code"], "conflict");
    assert_eq!(body["results"][1]["status"], "accepted");
    assert_eq!(app.stored().await, (0, 2));
}

/// Event ids are unique per visitor: a retry always comes from the visitor
/// it is about, so two shops' systems (or two visitors' order numbers)
/// that happen to share an id are two events, never a silent loss.
#[tokio::test]
async fn the_same_event_id_for_two_visitors_is_two_events() {
    let app = spawn_app().await;
    for visitor in ["v-1", "v-2"] {
        let (status, body) = app.post("/v1/events", &event("o-1", visitor, "order", json!(10.0))).await;
        assert_eq!((status, body["status"].clone()), (200, json!("accepted")), "{visitor}: {body}");
    }
    let (status, body) = app.post("/v1/events", &event("o-1", "v-2", "order", json!(10.0))).await;
    assert_eq!((status, body["status"].clone()), (200, json!("duplicate")), "a retry for v-2: {body}");
    assert_eq!(app.stored().await, (0, 2));
}

#[tokio::test]
async fn unknown_fields_are_refused_by_name() {
    let app = spawn_app().await;
    let (status, body) = app.post("/v1/assign", &json!({ "visitor_id": "v-1", "surfce": "cart" })).await;
    assert_error(status, &body, 400, "unknown_field");
    assert_eq!(body["error"]["field"], "surfce", "{body}");
    // The GET form too: a typo is not read as an attribute.
    let (status, body) = app.get("/v1/assign?visitor_id=v-1&surfce=cart").await;
    assert_error(status, &body, 400, "unknown_field");
    assert_eq!(body["error"]["field"], "surfce", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("attr.surfce="), "{body}");
    let (status, body) = app.post("/v1/events", &json!({ "id": "e-1", "visitor_id": "v-1", "nmae": "order" })).await;
    assert_error(status, &body, 400, "unknown_field");
    assert_eq!(body["error"]["field"], "nmae", "{body}");
    let mut typo = exposure("v-2");
    typo["variant_key"] = json!("control");
    let (status, body) = app.post("/v1/exposures", &json!([exposure("v-1"), typo])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][1]["code"], "unknown_field", "{body}");
    assert_eq!(body["results"][1]["field"], "variant_key", "{body}");
    assert_eq!(app.stored().await, (1, 0));
}

#[tokio::test]
async fn events_no_metric_reads_are_kept_counted_and_listed() {
    let app = spawn_app().await;
    let batch = json!([
        event("t-1", "v-1", "ordr", json!(10.0)),
        event("t-2", "v-1", "ordr", json!(12.0)),
        event("t-3", "v-1", "order", json!(12.0))
    ]);
    let (status, body) = app.post("/v1/events", &batch).await;
    assert_eq!((status, body["accepted"].clone()), (200, json!(3)), "{body}");
    let (status, _) = app.post("/v1/events", &event("t-1", "v-1", "ordr", json!(10.0))).await;
    assert_eq!(status, 200, "a retry is a duplicate, not counted again");
    let metrics = app.client.get(format!("{}/metrics", app.address)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("offerlab_unread_events_total{name=\"ordr\"} 2"), "{metrics}");
    assert!(!metrics.contains("offerlab_unread_events_total{name=\"order\"}"), "order is read by metrics");
    let index = app.client.get(format!("{}/", app.address)).send().await.unwrap().text().await.unwrap();
    let listed = index.split("id=\"unread-events\"").nth(1).expect("the index lists unread event names");
    assert!(listed.contains("<code>ordr</code>: 2"), "{listed}");
    assert_eq!(app.stored().await, (0, 3), "unread events are kept");
}
