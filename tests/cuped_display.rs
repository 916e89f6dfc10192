//! A CUPED-adjusted lift is shown beside values that agree with it: when
//! the arms differed before the test, the adjustment can move the estimate
//! across zero, and the page, the terminal and the JSON then show the
//! adjusted values and say why.

use askama::Template;
use chrono::Duration;
use offerlab::aggregates::AggregateRow;
use offerlab::analysis::{analyze, Report};
use offerlab::experiment::load::{parse_experiment, parse_metrics};
use offerlab::experiment::Catalog;
use offerlab::stats::Moments;
use offerlab::views::ExperimentPage;

const METRICS: &str = include_str!("../experiments/metrics.toml");

/// Sums of `n` visitors with value mean `x`, covariate mean `c`, variances
/// 900 and 400 and covariance 500 (a correlation of 0.83).
fn arm(n: u64, x: f64, c: f64) -> Moments {
    let k = n as f64;
    Moments {
        n,
        sum: k * x,
        sum_sq: (k - 1.0) * 900.0 + k * x * x,
        pre_sum: k * c,
        pre_sum_sq: (k - 1.0) * 400.0 + k * c * c,
        sum_x_pre: (k - 1.0) * 500.0 + k * x * c,
        ..Moments::default()
    }
}

/// The treatment's visitors spent 10 less before the test and 1 less
/// during it: observed, it looks worse; adjusted, it is about 11.5 better.
fn report() -> (offerlab::experiment::Experiment, Report) {
    let metrics = parse_metrics("metrics.toml", METRICS).unwrap();
    let text = r#"id = "flip"
name = "Post-purchase offer count"
status = "running"
surface = "post_purchase"
dimension = "offer_count"
start = "2026-11-02"
business_cycle_days = 7
primary_metric = "revenue_per_visitor"

[stats]
baseline = 108.0
baseline_sd = 30.0
mde = 0.05

[[variants]]
key = "control"
weight = 0.5

[[variants]]
key = "two_offers"
weight = 0.5
"#;
    let exp = parse_experiment("flip.toml", "flip", text, &metrics).unwrap();
    let catalog = Catalog::new(vec![exp.clone()], metrics);
    let mut rows = Vec::new();
    for day in 0..14 {
        for (variant, x, c) in [("control", 108.41, 50.0), ("two_offers", 107.41, 40.0)] {
            rows.push(AggregateRow {
                variant: variant.into(),
                date: exp.start + Duration::days(day),
                metric: "revenue_per_visitor".into(),
                moments: arm(500, x, c),
            });
        }
    }
    let r = analyze(&exp, &catalog, &rows, Vec::new(), exp.start + Duration::days(14));
    (exp, r)
}

#[test]
fn the_json_carries_adjusted_values_that_agree_with_the_lift() {
    let (exp, r) = report();
    let wire = offerlab::wire::v1::Report::new(&r, exp.allocation_version, None);
    let primary = wire.primary();
    let (seen_c, seen_t) = (primary.arms[0].value, primary.arms[1].value);
    let lift = &primary.lifts[0];
    let relative = lift.relative_lift;
    assert!(seen_t < seen_c && relative > 0.0, "the adjustment flips the sign: {seen_c} → {seen_t}, {relative}");
    let cuped = lift.cuped.expect("the primary metric is adjusted");
    let (adj_c, adj_t) = cuped.adjusted_means;
    assert!(adj_t > adj_c, "{cuped:?}");
    let absolute = lift.absolute_lift;
    assert!((adj_t - adj_c - absolute).abs() < 1e-9, "the adjusted values differ by the lift: {cuped:?} {absolute}");
    assert_eq!(cuped.pre_means, (50.0, 40.0));
}

#[test]
fn the_page_shows_adjusted_values_and_why_they_differ_from_those_seen() {
    let (exp, r) = report();
    let page = ExperimentPage::new(&exp, &r, 0);
    let rows = &page.primary.rows;
    let l = &r.primary().lifts[0];
    let cuped = l.cuped.unwrap();
    assert_eq!(rows[0].value, format!("${:.2} ($108.41)", cuped.adjusted_means.0));
    assert_eq!(rows[1].value, format!("${:.2} ($107.41)", cuped.adjusted_means.1));
    assert!(rows[1].lift.starts_with('+'), "{}", rows[1].lift);
    let why = page.primary.notes.iter().find(|n| n.contains("differed before the test")).expect("a note says why");
    assert!(
        why.contains("two_offers and control differed before the test ($40.00 against $50.00 per visitor)"),
        "{why}"
    );
    assert!(why.contains("though the values seen were $107.41 against $108.41"), "{why}");
    let html = page.render().unwrap();
    assert!(html.contains("differed before the test"), "the note is on the page");

    let terminal = offerlab::terminal::report(&offerlab::wire::v1::Report::new(&r, exp.allocation_version, None));
    assert!(terminal.contains("($107.41)") && terminal.contains("adjusted for what each arm"), "{terminal}");
}
