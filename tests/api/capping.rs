//! Capping and CUPED through the real server: a percentile cap follows
//! late events and survives a restart, and a CUPED covariate is the
//! visitor's value in the days before their first exposure, whatever order
//! the calls arrive in. (The committed metrics cap revenue per visitor at
//! its 99th percentile and adjust it with CUPED over 14 days.)

use chrono::{DateTime, Duration, Utc};
use offerlab::assignment::{hash, HashVersion};
use serde_json::{json, Value};

use crate::helpers::{dollars, spawn_app, TestApp};

fn variant_of(v: &str) -> &'static str {
    if hash("running-cart", v, HashVersion::V2) < 0.5 {
        "control"
    } else {
        "treatment"
    }
}

async fn expose(app: &TestApp, visitors: &[String], at: DateTime<Utc>) {
    let body: Vec<Value> = visitors
        .iter()
        .map(|v| json!({ "visitor_id": v, "experiment": "running-cart", "variant": variant_of(v), "ts": at.to_rfc3339() }))
        .collect();
    let (status, reply) = app.post("/v1/exposures", &json!(body)).await;
    assert_eq!((status, reply["rejected"].clone()), (200, json!(0)), "{reply}");
}

async fn order(app: &TestApp, id: &str, visitor: &str, value: f64, at: DateTime<Utc>) {
    let body = json!([{ "id": id, "visitor_id": visitor, "name": "order", "value": value, "ts": at.to_rfc3339() }]);
    let (status, reply) = app.post("/v1/events", &body).await;
    assert_eq!((status, reply["rejected"].clone()), (200, json!(0)), "{reply}");
}

/// numpy's default quantile (SQL's PERCENTILE_CONT), written out here as
/// the test's own oracle.
fn quantile(values: &[f64], p: f64) -> f64 {
    let mut xs = values.to_vec();
    xs.sort_by(f64::total_cmp);
    let h = (xs.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(xs.len() - 1);
    xs[lo] + (h - lo as f64) * (xs[hi] - xs[lo])
}

/// Checks the report's capping of revenue per visitor against `values`
/// (visitor → order value sum).
async fn assert_capped(app: &TestApp, values: &[(String, f64)]) {
    let (status, report) = app.get("/api/v1/experiments/running-cart/report").await;
    assert_eq!(status, 200);
    let xs: Vec<f64> = values.iter().map(|(_, x)| *x).collect();
    let cap = quantile(&xs, 0.99);
    let capping = report["capping"].as_array().unwrap();
    let entry = capping.iter().find(|c| c["metric"] == "revenue_per_visitor").expect("revenue is capped");
    let got = entry["value"].as_f64().unwrap();
    assert!((got - cap).abs() <= 1e-9 * cap, "cap {got}, want {cap}");
    let above = xs.iter().filter(|x| **x > cap).count() as u64;
    assert_eq!(entry["capped_visitors"].as_u64(), Some(above), "{entry}");
    assert_eq!(entry["visitors"].as_u64(), Some(xs.len() as u64));

    let metric = report["metrics"].as_array().unwrap().iter().find(|m| m["name"] == "revenue_per_visitor").unwrap();
    for arm in metric["arms"].as_array().unwrap() {
        let want: f64 = values
            .iter()
            .filter(|(v, _)| variant_of(v) == arm["variant"].as_str().unwrap())
            .map(|(_, x)| x.min(cap))
            .sum();
        let sum = arm["sum"].as_f64().unwrap();
        assert!((sum - want).abs() <= 1e-9 * want.max(1.0), "{}: sum {sum}, want {want}", arm["variant"]);
    }
    let page = page_text(app).await;
    assert!(
        page.contains(&format!("capped at {}", dollars(cap))) && page.contains(&format!("{above} of ")),
        "page names the cap"
    );
}

async fn page_text(app: &TestApp) -> String {
    app.client.get(format!("{}/experiments/running-cart", app.address)).send().await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn a_percentile_cap_follows_late_events_and_survives_a_restart() {
    let app = spawn_app().await;
    let exposed = crate::helpers::now() - Duration::days(2);
    let visitors: Vec<String> = (0..300).map(|i| format!("cap-{i}")).collect();
    expose(&app, &visitors, exposed).await;
    let mut values: Vec<(String, f64)> = Vec::new();
    for (i, v) in visitors.iter().enumerate() {
        let x = if i == 17 {
            5_000.0
        } else if i % 3 == 0 {
            20.0 + (i % 40) as f64
        } else {
            0.0
        };
        if x > 0.0 {
            order(&app, &format!("o-{i}"), v, x, exposed + Duration::hours(1)).await;
        }
        values.push((v.clone(), x));
    }
    assert_capped(&app, &values).await;

    // A late event lifts one visitor far above the cap and moves the
    // percentile itself.
    order(&app, "late-1", &visitors[40], 2_500.0, exposed + Duration::hours(5)).await;
    order(&app, "late-2", &visitors[41], 900.0, exposed + Duration::hours(6)).await;
    values[40].1 += 2_500.0;
    values[41].1 += 900.0;
    assert_capped(&app, &values).await;

    let again = app.restart().await;
    assert_capped(&again, &values).await;
}

#[tokio::test]
async fn a_cuped_covariate_is_the_value_in_the_days_before_first_exposure() {
    let app = spawn_app().await;
    let exposed = crate::helpers::now() - Duration::days(1);
    let visitors: Vec<String> = (0..400).map(|i| format!("pre-{i}")).collect();
    // Half the pre-period orders arrive before the exposure, half after it;
    // one order 20 days back is outside the 14-day window.
    let mut pre = vec![0.0; visitors.len()];
    for (i, v) in visitors.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let x = 30.0 + (i % 50) as f64;
        order(&app, &format!("pre-{i}"), v, x, exposed - Duration::days(3)).await;
        pre[i] = x;
    }
    order(&app, "too-old", &visitors[1], 999.0, exposed - Duration::days(20)).await;
    expose(&app, &visitors, exposed).await;
    for (i, v) in visitors.iter().enumerate().filter(|(i, _)| i % 4 == 1) {
        let x = 25.0 + (i % 30) as f64;
        order(&app, &format!("late-pre-{i}"), v, x, exposed - Duration::days(2)).await;
        pre[i] = x;
    }
    // After exposure, returning customers buy about what they bought before.
    for (i, v) in visitors.iter().enumerate().filter(|(i, _)| pre[*i] > 0.0) {
        order(&app, &format!("post-{i}"), v, pre[i] * 1.1 + (i % 7) as f64, exposed + Duration::hours(2)).await;
    }

    let r = app.client.get(format!("{}/api/v1/experiments/running-cart/daily.csv", app.address)).send().await.unwrap();
    let csv = r.text().await.unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for variant in ["control", "treatment"] {
        let want: f64 = visitors.iter().zip(&pre).filter(|(v, _)| variant_of(v) == variant).map(|(_, x)| x).sum();
        let got: f64 = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|c| c[col("variant")] == variant && c[col("metric")] == "revenue_per_visitor")
            .map(|c| c[col("pre_sum")].parse::<f64>().unwrap())
            .sum();
        assert!((got - want).abs() < 1e-6, "{variant}: pre_sum {got}, want {want}");
    }

    let (_, report) = app.get("/api/v1/experiments/running-cart/report").await;
    let metric = report["metrics"].as_array().unwrap().iter().find(|m| m["name"] == "revenue_per_visitor").unwrap();
    let cuped = &metric["lifts"][0]["cuped"];
    let reduction = cuped["variance_reduction"].as_f64().expect("revenue per visitor is adjusted");
    assert!(reduction > 0.5, "a pre-period that predicts the value removes most variance: {cuped}");
    assert!(page_text(&app).await.contains("CUPED: the visitors&#39; values before their first exposure explain"));
}
