//! One test per verdict, on synthetic per-day aggregates of a cart test
//! with a 4% baseline and a 10% MDE (about 39,500 visitors per variant).

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use offerlab::aggregates::AggregateRow;
use offerlab::analysis::{analyze, Report, VerdictCode};
use offerlab::experiment::load::{parse_experiment, parse_metrics};
use offerlab::experiment::{Catalog, Experiment};
use offerlab::stats::Moments;

const METRICS: &str = include_str!("../experiments/metrics.toml");

fn setup(extra_stats: &str) -> (Experiment, Catalog) {
    let metrics = parse_metrics("metrics.toml", METRICS).unwrap();
    let text = format!(
        r#"id = "t"
name = "Cart copy"
status = "running"
surface = "cart"
dimension = "copy"
start = "2026-11-02"
business_cycle_days = 7
primary_metric = "upsell_acceptance"
guardrail_metrics = ["order_conversion", "return_rate"]

[stats]
baseline = 0.04
mde = 0.10
{extra_stats}

[[variants]]
key = "control"
weight = 0.5

[[variants]]
key = "benefit"
weight = 0.5
"#
    );
    let exp = parse_experiment("t.toml", "t", &text, &metrics).unwrap();
    let catalog = Catalog::new(vec![exp.clone()], metrics);
    (exp, catalog)
}

/// One variant's day: visitors, upsell rate, order rate, returns per order.
#[derive(Clone, Copy)]
struct Day {
    visitors: u64,
    upsell: f64,
    order: f64,
    returns: f64,
}

fn proportion(n: u64, rate: f64) -> Moments {
    let c = (n as f64 * rate).round();
    Moments { n, sum: c, sum_sq: c, ..Moments::default() }
}

fn rows(start: NaiveDate, days: &[[Day; 2]]) -> Vec<AggregateRow> {
    let mut out = Vec::new();
    for (i, pair) in days.iter().enumerate() {
        let date = start + Duration::days(i as i64);
        for (variant, d) in ["control", "benefit"].iter().zip(pair) {
            let orders = (d.visitors as f64 * d.order).round();
            let returns = (orders * d.returns).round();
            let mut push = |metric: &str, moments: Moments| {
                out.push(AggregateRow { variant: variant.to_string(), date, metric: metric.into(), moments })
            };
            push("upsell_acceptance", proportion(d.visitors, d.upsell));
            push("order_conversion", proportion(d.visitors, d.order));
            // One order per ordering visitor, at most one return each.
            push(
                "return_rate",
                Moments {
                    n: d.visitors,
                    sum: returns,
                    sum_sq: returns,
                    den_sum: orders,
                    den_sum_sq: orders,
                    sum_xy: returns,
                },
            );
        }
    }
    out
}

const BASE: Day = Day { visitors: 3000, upsell: 0.04, order: 0.30, returns: 0.08 };

fn with(upsell: f64) -> Day {
    Day { upsell, ..BASE }
}

fn report(days: &[[Day; 2]], today_offset: i64, extra_stats: &str) -> Report {
    let (exp, catalog) = setup(extra_stats);
    let today = exp.start + Duration::days(today_offset);
    analyze(&exp, &catalog, &rows(exp.start, days), today)
}

fn weeks(n: usize, pair: [Day; 2]) -> Vec<[Day; 2]> {
    vec![pair; 7 * n]
}

fn assert_verdict(r: &Report, code: VerdictCode, phrase: &str) {
    assert_eq!(r.verdict.code, code, "{}", r.verdict.sentence);
    assert!(r.verdict.sentence.contains(phrase), "{:?} should contain {phrase:?}", r.verdict.sentence);
}

#[test]
fn collecting_data_before_sample_and_cycles() {
    let r = report(&weeks(1, [BASE, BASE]), 7, "");
    assert_verdict(&r, VerdictCode::CollectingData, "Still collecting data");
    assert!(r.sample_size.progress.unwrap() < 1.0);
    assert!(r.verdict.sentence.contains("1 of 2 full weeks"), "{}", r.verdict.sentence);
}

#[test]
fn sample_ratio_mismatch_on_a_55_45_split() {
    let c = Day { visitors: 5500, ..BASE };
    let t = Day { visitors: 4500, upsell: 0.06, ..BASE };
    let r = report(&weeks(3, [c, t]), 21, "");
    assert!(r.srm.mismatch);
    assert_verdict(&r, VerdictCode::SampleRatioMismatch, "55.0% / 45.0%");
    assert_eq!(r.verdict.winner, None, "nothing else is claimed");
}

#[test]
fn no_detectable_difference_after_sample_and_two_cycles() {
    let r = report(&weeks(3, [BASE, BASE]), 21, "");
    assert!(r.sample_size.reached && r.cycles_completed >= 2);
    assert_verdict(&r, VerdictCode::NoDetectableDifference, "No detectable difference in upsell acceptance");
}

#[test]
fn winner_validating_before_two_complete_cycles() {
    let r = report(&weeks(1, [BASE, with(0.05)]), 8, "");
    assert!(r.primary().lifts[0].significant);
    assert_verdict(&r, VerdictCode::WinnerValidating, "has not yet held over two full weeks");
}

#[test]
fn validated_winner_after_two_cycles_in_the_same_direction() {
    let r = report(&weeks(3, [BASE, with(0.046)]), 21, "");
    assert_verdict(&r, VerdictCode::ValidatedWinner, "Benefit raises upsell acceptance by 15.0% (95% CI");
    assert!(r.verdict.sentence.ends_with("it held in both of the last two weeks: ship it."));
    assert_eq!(r.verdict.winner.as_deref(), Some("benefit"));
}

#[test]
fn a_winner_that_raises_returns_harms_a_guardrail() {
    let t = Day { upsell: 0.046, returns: 0.14, ..BASE };
    let r = report(&weeks(3, [BASE, t]), 21, "");
    assert!(r.primary().lifts[0].significant, "it wins on the primary metric");
    assert_verdict(&r, VerdictCode::GuardrailHarmed, "Benefit harms return rate");
}

#[test]
fn novelty_that_vanishes_in_cycle_two_is_never_validated() {
    let mut days = weeks(1, [BASE, with(0.06)]);
    days.extend(weeks(1, [BASE, BASE]));
    let r = report(&days, 14, "");
    assert_eq!(r.cycles_completed, 2);
    assert!(r.primary().lifts[0].significant, "the pooled lift is significant");
    assert_ne!(r.verdict.code, VerdictCode::ValidatedWinner);
    assert_verdict(&r, VerdictCode::InconsistentAcrossCycles, "changed between the last two weeks");
}

#[test]
fn a_significantly_worse_treatment_makes_the_control_the_winner() {
    let r = report(&weeks(3, [BASE, with(0.034)]), 21, "");
    assert_verdict(&r, VerdictCode::ValidatedWinner, "keep the control");
    assert_eq!(r.verdict.winner.as_deref(), Some("control"));
}

#[test]
fn cycle_table_reports_each_cycle_with_its_own_visitors() {
    let mut days = weeks(1, [BASE, with(0.06)]);
    days.extend(weeks(1, [BASE, BASE]));
    let r = report(&days, 10, "");
    assert_eq!(r.cycles.len(), 2);
    assert!(r.cycles[0].cycle.complete && !r.cycles[1].cycle.complete);
    assert_eq!(r.cycles[0].arms[0].visitors, 21_000);
    assert_eq!(r.cycles[1].arms[0].visitors, 21_000, "all days of the second cycle that have data");
    assert!((r.cycles[0].lifts[0].comparison.relative_lift - 0.5).abs() < 1e-9);
    let by_date: BTreeMap<_, _> = r.daily.iter().map(|d| (d.date, d.arms[0].visitors)).collect();
    assert_eq!(by_date.values().last(), Some(&42_000), "daily points are cumulative");
}
