//! End to end: the simulator plays three weeks of a storefront against the
//! real server, with a true +25% offer lift on one test and none on
//! another. The first must end `validated_winner` or `winner_validating`;
//! the second must never show a winner, on any day.

use chrono::{Duration, Utc};
use offerlab::simulate::{self, Effect, Simulation};
use serde_json::Value;

mod common;

use common::serve;

fn definition(id: &str, surface: &str, primary: &str, start: &str, sequential: bool) -> String {
    format!(
        r#"id = "{id}"
name = "{id}"
hypothesis = "The treatment changes {primary}"
status = "running"
surface = "{surface}"
dimension = "copy"
start = "{start}"
primary_metric = "{primary}"
guardrail_metrics = ["order_conversion"]

[stats]
baseline = 0.10
mde = 0.10
sequential = {sequential}

[[variants]]
key = "control"
weight = 0.5

[[variants]]
key = "treatment"
weight = 0.5
"#
    )
}

#[test]
fn three_simulated_weeks_find_the_real_lift_and_no_false_one() {
    let root = tempfile::tempdir().unwrap();
    let experiments = root.path().join("experiments");
    std::fs::create_dir_all(&experiments).unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/metrics.toml"), experiments.join("metrics.toml"))
        .unwrap();
    let start = (Utc::now() - Duration::days(20)).date_naive().to_string();
    std::fs::write(
        experiments.join("lifted.toml"),
        definition("lifted", "product_page", "product_page_offer_acceptance", &start, false),
    )
    .unwrap();
    std::fs::write(experiments.join("flat.toml"), definition("flat", "cart", "cart_offer_acceptance", &start, true))
        .unwrap();

    let server = serve(&root.path().join("data"), &experiments);
    let url = server.url.clone();

    let sim = Simulation {
        url: url.clone(),
        days: 21,
        visitors_per_day: 700,
        seed: 42,
        effects: vec![Effect { experiment: "lifted".into(), variant: "treatment".into(), lift: 0.25 }],
        write_key: None,
        read_key: None,
        progress: false,
        record: None,
    };
    let now = Utc::now();
    let summary = simulate::run(&sim, now);
    let report = |id: &str| -> Value {
        reqwest::blocking::get(format!("{url}/api/v1/experiments/{id}/report")).unwrap().json().unwrap()
    };
    let (lifted, flat) = (report("lifted"), report("flat"));
    let again = simulate::run(&sim, now).unwrap();
    drop(server);
    let summary = summary.unwrap();
    assert_eq!(summary.rejected, 0);
    assert_eq!(summary.accepted + summary.duplicates, summary.exposures + summary.events, "{summary:?}");
    assert_eq!((again.accepted, again.rejected), (0, 0), "the same seed again adds nothing: {again:?}");
    assert_eq!(again.duplicates, again.exposures + again.events, "{again:?}");
    assert!(summary.visitors > 14_000, "{summary:?}");

    let code = lifted["verdict"]["code"].as_str().unwrap();
    assert!(
        code == "validated_winner" || code == "winner_validating",
        "lifted: {code}: {}",
        lifted["verdict"]["sentence"]
    );
    assert!(lifted["cycles_completed"].as_u64().unwrap() >= 2);

    let code = flat["verdict"]["code"].as_str().unwrap();
    assert!(!matches!(code, "validated_winner" | "winner_validating"), "flat: {code}: {}", flat["verdict"]["sentence"]);
    for day in flat["daily"].as_array().unwrap() {
        assert_eq!(day["lifts"][0]["significant"], false, "flat looked significant on {}", day["date"]);
    }
}
