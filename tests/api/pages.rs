//! The HTML report: rendered from a store with known data, its numbers are
//! the JSON report's; everything a definition or storefront supplies is
//! escaped.

use chrono::{Duration, Utc};
use offerlab::assignment::{hash, HashVersion};
use offerlab::format::{signed_pct, thousands};
use serde_json::{json, Value};

use crate::helpers::{definition, dollars, spawn_app, spawn_app_with, TestApp};

fn escape(s: &str) -> String {
    s.replace('&', "&#38;").replace('<', "&#60;").replace('>', "&#62;").replace('"', "&#34;").replace('\'', "&#39;")
}

async fn text(app: &TestApp, path: &str) -> (u16, String) {
    let r = app.client.get(format!("{}{path}", app.address)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Exposes 400 visitors to `running-cart` over the last ten days; the
/// treatment converts more often.
async fn populate(app: &TestApp) {
    let now = crate::helpers::now();
    let (mut exposures, mut events) = (Vec::new(), Vec::new());
    for i in 0..400 {
        let v = format!("p-{i}");
        let variant = if hash("running-cart", &v, HashVersion::V2) < 0.5 { "control" } else { "treatment" };
        let ts = now - Duration::days(i % 10) - Duration::hours(1);
        exposures
            .push(json!({ "visitor_id": v, "experiment": "running-cart", "variant": variant, "ts": ts.to_rfc3339() }));
        let converts = if variant == "treatment" { i % 4 == 0 } else { i % 7 == 0 };
        if converts {
            let at = (ts + Duration::minutes(5)).to_rfc3339();
            events.push(json!({ "id": format!("u-{i}"), "visitor_id": v, "name": "upsell_accepted", "ts": at }));
            events.push(
                json!({ "id": format!("o-{i}"), "visitor_id": v, "name": "order", "value": 40 + i % 30, "ts": at }),
            );
        }
    }
    let (s1, b1) = app.post("/v1/exposures", &json!(exposures)).await;
    let (s2, b2) = app.post("/v1/events", &json!(events)).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!((b1["rejected"].clone(), b2["rejected"].clone()), (json!(0), json!(0)), "{b1} {b2}");
}

#[tokio::test]
async fn pages_show_the_json_reports_numbers() {
    let app = spawn_app().await;
    populate(&app).await;
    let (_, report) = app.get("/api/v1/experiments/running-cart/report").await;
    let (status, page) = text(&app, "/experiments/running-cart").await;
    assert_eq!(status, 200);
    assert!(page.contains(&escape(report["verdict"]["sentence"].as_str().unwrap())), "verdict sentence");
    let primary = &report["metrics"][0];
    assert_eq!(primary["name"], "upsell_acceptance");
    for arm in primary["arms"].as_array().unwrap() {
        let visitors = thousands(arm["visitors"].as_u64().unwrap());
        let rate = format!("{:.2}%", arm["value"].as_f64().unwrap() * 100.0);
        assert!(
            page.contains(&format!("<td class=\"num\" data-label=\"Visitors\">{visitors}</td>")),
            "visitors {visitors}"
        );
        assert!(page.contains(&rate), "rate {rate}");
    }
    let lift = &primary["lifts"][0];
    for x in [&lift["relative_lift"], &lift["ci"][0], &lift["ci"][1]] {
        assert!(page.contains(&signed_pct(x.as_f64().unwrap())), "lift number {x}");
    }
    let bayes = &lift["bayesian"];
    let chance = offerlab::format::chance(bayes["chance_to_win"].as_f64().unwrap());
    let risk = offerlab::format::risk(bayes["risk_treatment"].as_f64().unwrap());
    assert!(
        page.contains(&format!("data-label=\"Chance to win\">{chance}</td>"))
            && page.contains(&format!("data-label=\"Risk\">{risk}</td>")),
        "chance to beat control {chance} and risk {risk}"
    );
    // Explained in visible text, not only in a tooltip a phone cannot show.
    assert!(
        page.contains("<p class=\"meta explain\">Chance to win: how likely the variant is to beat the control. Risk: ")
    );
    let needed = thousands(report["sample_size"]["per_variant"].as_u64().unwrap());
    assert!(page.contains(&needed), "sample size {needed}");
    assert!(page.contains("<svg class=\"chart\""), "charts drawn on the server");
    assert!(page.contains("Data table"), "charts have a text equivalent");

    let (status, index) = text(&app, "/").await;
    assert_eq!(status, 200);
    let (_, list) = app.get("/api/v1/experiments").await;
    for e in list["experiments"].as_array().unwrap() {
        assert!(index.contains(&escape(e["verdict"]["sentence"].as_str().unwrap())), "{}", e["id"]);
    }
    assert!(index.contains(&format!("of {needed} visitors per variant")));
    assert!(!index.contains("<script"), "no JavaScript");
}

#[tokio::test]
async fn daily_csv_holds_the_aggregates() {
    let app = spawn_app().await;
    populate(&app).await;
    let (status, csv) = text(&app, "/api/v1/experiments/running-cart/daily.csv").await;
    assert_eq!(status, 200);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("variant,date,metric,n,sum,sum_sq,den_sum,den_sum_sq,sum_xy,pre_sum,pre_sum_sq,sum_x_pre")
    );
    let visitors: u64 = lines
        .filter(|l| l.contains(",upsell_acceptance,"))
        .map(|l| l.split(',').nth(3).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(visitors, 400);
    let (status, body) = app.get("/api/v1/experiments/nope/daily.csv").await;
    assert_eq!((status, body["error"]["code"].clone()), (404, json!("unknown_experiment")));
}

#[tokio::test]
async fn an_unknown_test_gets_an_html_404_page() {
    let app = spawn_app().await;
    let r = app.client.get(format!("{}/experiments/nope", app.address)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let text = r.text().await.unwrap();
    assert!(text.contains("Not found") && text.contains("nope"), "{text}");
}

#[tokio::test]
async fn supplied_text_is_escaped() {
    let evil = "<script>alert(\"x\")</script> & 'quotes'";
    let def = definition("evil", "cart", "running", "")
        .replace("name = \"Test evil\"", &format!("name = {}", toml_string(evil)))
        .replace("hypothesis = \"Treatment beats control\"", &format!("hypothesis = {}", toml_string(evil)))
        .replace("payload = { copy = \"treatment\" }", &format!("payload = {{ copy = {} }}", toml_string(evil)));
    let app = spawn_app_with(&[("evil".to_string(), def)]).await;
    for path in ["/", "/experiments/evil"] {
        let (status, page) = text(&app, path).await;
        assert_eq!(status, 200);
        assert!(!page.contains("<script>"), "{path} must not contain a raw script tag");
        assert!(page.contains(&escape("<script>alert(")), "{path} shows the text: {page}");
    }
    let (_, page) = text(&app, "/experiments/evil").await;
    assert!(page.contains(&escape(evil)), "quotes and ampersands escaped");
    let (_, report): (u16, Value) = app.get("/api/v1/experiments/evil/report").await;
    assert_eq!(report["name"], evil, "JSON carries the text as it is");
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[tokio::test]
async fn report_command_prints_the_verdict_and_primary_table() {
    let app = spawn_app().await;
    populate(&app).await;
    let (_, report) = app.get("/api/v1/experiments/running-cart/report").await;
    let address = app.address.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_offerlab"))
            .args(["report", "running-cart", "--url", &address])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(report["verdict"]["sentence"].as_str().unwrap()), "{text}");
    let lift = signed_pct(report["metrics"][0]["lifts"][0]["relative_lift"].as_f64().unwrap());
    assert!(text.contains(&lift) && text.lines().any(|l| l.starts_with("treatment")), "{text}");
}

#[tokio::test]
async fn a_draft_test_shows_draft_not_collecting_data() {
    let app = spawn_app().await;
    let (status, page) = text(&app, "/experiments/draft-test").await;
    assert_eq!(status, 200);
    assert!(page.contains("Draft"), "the badge says Draft");
    assert!(!page.contains("Collecting data"), "a draft collects nothing");
    let (_, index) = text(&app, "/").await;
    let row = index.split("data-experiment=\"draft-test\"").nth(1).unwrap().split("</section>").next().unwrap();
    assert!(row.contains("Draft"), "the index row says Draft");
    let (_, report) = app.get("/api/v1/experiments/draft-test/report").await;
    let sentence = report["verdict"]["sentence"].as_str().unwrap();
    assert_eq!(
        sentence, "Draft: not shown to visitors yet; set status = \"running\" to start it.",
        "nothing blocks it"
    );
}

/// A draft on a surface where another test runs says that running it would
/// be refused, which test blocks it, and the way to run both (a namespace,
/// with a new phase for the running one).
#[tokio::test]
async fn a_draft_a_running_test_would_block_says_which_and_how() {
    let mut defs = crate::helpers::fixture_definitions();
    defs.push(("cart-draft".into(), definition("cart-draft", "cart", "draft", "")));
    let app = spawn_app_with(&defs).await;
    let (_, report) = app.get("/api/v1/experiments/cart-draft/report").await;
    let sentence = report["verdict"]["sentence"].as_str().unwrap();
    for says in [
        "Running it now would be refused",
        "\"running-cart\" runs on the same surface",
        "namespace",
        "raise allocation_version of \"running-cart\"",
    ] {
        assert!(sentence.contains(says), "{says:?} in {sentence}");
    }
    let (status, page) = text(&app, "/experiments/cart-draft").await;
    assert_eq!(status, 200);
    assert!(page.contains("Running it now would be refused"), "the page says it too");
}

#[tokio::test]
async fn a_lift_in_money_says_what_it_is_worth_per_visitor_and_per_thousand() {
    let app = spawn_app().await;
    populate(&app).await;
    let (_, report) = app.get("/api/v1/experiments/running-cart/report").await;
    let rpv = report["metrics"].as_array().unwrap().iter().find(|m| m["name"] == "revenue_per_visitor").unwrap();
    let lift = rpv["lifts"][0]["absolute_lift"].as_f64().unwrap();
    let (_, page) = text(&app, "/experiments/running-cart").await;
    let signed = |x: f64| if x < 0.0 { dollars(x) } else { format!("+{}", dollars(x)) };
    let want = format!("{} per visitor, about {} per 1,000 visitors", signed(lift), signed(lift * 1000.0));
    assert!(page.contains(&escape(&want)), "{want} missing");
}

/// With `serve --now`, the service's clock stands still: reports are as of
/// that day, and "the future" of a timestamp is counted from it.
#[tokio::test]
async fn a_fixed_clock_sets_the_report_day_and_the_future() {
    let at: chrono::DateTime<Utc> = "2026-11-20T12:00:00Z".parse().unwrap();
    let app = crate::helpers::spawn_app_configured(&crate::helpers::fixture_definitions(), |s| s.now = Some(at)).await;
    let (status, report) = app.get("/api/v1/experiments/running-cart/report").await;
    assert_eq!((status, report["as_of"].clone()), (200, json!("2026-11-20")), "{report}");
    let event = |id: &str, ts: &str| json!({"id": id, "visitor_id": "v-1", "name": "order", "value": 5, "ts": ts});
    let (ok, body) = app.post("/v1/events", &event("c1", "2026-11-20T12:04:00Z")).await;
    assert_eq!(ok, 200, "{body}");
    let (late, body) = app.post("/v1/events", &event("c2", "2026-11-20T12:06:00Z")).await;
    assert_eq!(late, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("in the future"), "{body}");
}

/// With `currency = "USD"` in metrics.toml, an amount reads as money on the
/// page (grouping and the sign), a return rate as a percent, an order count
/// with grouping; the JSON report keeps the raw numbers and names the unit
/// and the currency.
#[tokio::test]
async fn money_reads_as_money_and_rates_as_percents() {
    let app = spawn_app().await;
    populate(&app).await;
    let (_, report) = app.get("/api/v1/experiments/running-cart/report").await;
    let metric = |name: &str| report["metrics"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap().clone();
    let (_, page) = text(&app, "/experiments/running-cart").await;

    let aov = metric("average_order_value");
    assert_eq!((aov["unit"].as_str(), aov["currency"].as_str()), (Some("amount"), Some("USD")));
    let arm = &aov["arms"][0];
    let (sum, orders, value) =
        (arm["sum"].as_f64().unwrap(), arm["denominator"].as_f64().unwrap(), arm["value"].as_f64().unwrap());
    assert!(sum > 1000.0, "the fixture's order values add up past a thousand: {sum}");
    let total = format!("{} / {}", dollars(sum), thousands(orders as u64));
    assert!(page.contains(&total), "{total} missing");
    assert!(page.contains(&dollars(value)), "{} missing", dollars(value));

    let returns = metric("return_rate");
    assert_eq!((returns["unit"].as_str(), returns["currency"].as_str()), (Some("share"), Some("USD")));
    let rate = returns["arms"][0]["value"].as_f64().unwrap();
    assert!(rate < 1.0, "JSON keeps the raw rate: {rate}");
    let percent = format!("{:.2}%", rate * 100.0);
    assert!(page.contains(&percent), "the return rate {rate} as {percent}");

    let rpv = metric("revenue_per_visitor");
    assert_eq!(rpv["unit"].as_str(), Some("amount"));
    assert!(page.contains(&dollars(rpv["arms"][0]["sum"].as_f64().unwrap())), "revenue total as money");
    assert!(!page.contains(&format!("{sum:.2} /")), "no bare amount is left");
}
