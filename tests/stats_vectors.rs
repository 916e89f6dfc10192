//! offerlab's statistics against the golden vectors gbstats 0.8, scipy and
//! statsmodels wrote (tests/vectors/gen_stats.py), to 1e-6 relative.

use offerlab::capping::capped_moments;
use offerlab::cycles::consistency_p_value;
use offerlab::experiment::metric::Cap;
use offerlab::ids::VariantIndex;
use offerlab::stats::{
    adjust, bayesian, compare, holm, sample_size_mean, sample_size_proportion, sample_size_proportion_relative,
    sample_size_relative, srm_p_value, Bayesian, Inference, MetricStatistic, Moments, NotComputable, VisitorValue,
};
use serde::Deserialize;
use serde_json::Value;

const REL: f64 = 1e-6;

fn vectors() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/stats.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= REL * want.abs().max(got.abs()) + 1e-12
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(close(got, want), "{what}: got {got}, want {want}");
}

#[derive(Deserialize)]
struct CompareCase {
    kind: String,
    control: Moments,
    treatment: Moments,
    alpha: f64,
    sequential: bool,
    tuning: f64,
    computable: bool,
    relative_lift: f64,
    ci: [f64; 2],
    absolute_ci: [f64; 2],
    p_value: f64,
    dof: f64,
}

fn statistic(kind: &str, m: Moments) -> MetricStatistic {
    match kind {
        "proportion" => MetricStatistic::Proportion(m),
        "mean" => MetricStatistic::Mean(m),
        "ratio" => MetricStatistic::Ratio(m),
        other => panic!("unknown kind {other}"),
    }
}

#[test]
fn comparisons_match_gbstats() {
    let cases: Vec<CompareCase> = serde_json::from_value(vectors()["compare"].clone()).unwrap();
    assert!(cases.len() >= 300);
    for (i, c) in cases.iter().enumerate() {
        let inference = if c.sequential { Inference::Sequential { tuning: c.tuning } } else { Inference::Fixed };
        let r = compare(&statistic(&c.kind, c.control), &statistic(&c.kind, c.treatment), c.alpha, inference);
        let what = |field: &str| format!("case {i} ({} {}, seq {}) {field}", c.kind, c.control.n, c.sequential);
        assert_eq!(r.not_computable.is_none(), c.computable, "{}", what("computable"));
        assert_close(r.relative_lift, c.relative_lift, &what("relative lift"));
        assert_close(r.ci.0, c.ci[0], &what("ci low"));
        assert_close(r.ci.1, c.ci[1], &what("ci high"));
        if c.computable {
            assert_close(r.absolute_ci.0, c.absolute_ci[0], &what("absolute ci low"));
            assert_close(r.absolute_ci.1, c.absolute_ci[1], &what("absolute ci high"));
            assert_close(r.dof, c.dof, &what("dof"));
        }
        if c.p_value == 0.0 {
            // The reference underflowed (gbstats' e-value overflows); ours must be as tiny.
            assert!(r.p_value < 1e-300, "{}: {}", what("p-value"), r.p_value);
        } else {
            assert_close(r.p_value, c.p_value, &what("p-value"));
        }
    }
}

#[test]
fn holm_matches_statsmodels() {
    for case in vectors()["holm"].as_array().unwrap() {
        let p: Vec<f64> = serde_json::from_value(case["p_values"].clone()).unwrap();
        let want: Vec<f64> = serde_json::from_value(case["adjusted"].clone()).unwrap();
        for (g, w) in holm(&p).iter().zip(&want) {
            assert_close(*g, *w, &format!("holm {p:?}"));
        }
    }
}

#[test]
fn srm_matches_gbstats() {
    for case in vectors()["srm"].as_array().unwrap() {
        let counts: Vec<u64> = serde_json::from_value(case["counts"].clone()).unwrap();
        let weights: Vec<f64> = serde_json::from_value(case["weights"].clone()).unwrap();
        let want = case["p_value"].as_f64().unwrap();
        assert_close(srm_p_value(&counts, &weights), want, &format!("srm {counts:?} {weights:?}"));
    }
}

#[test]
fn sample_sizes_match_the_formulas() {
    let v = vectors();
    for c in v["sample_size_proportion"].as_array().unwrap() {
        let f = |k: &str| c[k].as_f64().unwrap();
        let got = sample_size_proportion(f("p1"), f("mde"), f("alpha"), f("power")).unwrap();
        assert_close(got, f("n"), &format!("proportion {c}"));
    }
    for c in v["sample_size_mean"].as_array().unwrap() {
        let f = |k: &str| c[k].as_f64().unwrap();
        let got = sample_size_mean(f("mu"), f("sigma"), f("mde"), f("alpha"), f("power")).unwrap();
        assert_close(got, f("n"), &format!("mean {c}"));
    }
}

#[test]
fn cycle_consistency_matches_scipy() {
    for c in vectors()["consistency"].as_array().unwrap() {
        let f = |k: &str| c[k].as_f64().unwrap();
        assert_close(consistency_p_value(f("lift1"), f("se1"), f("lift2"), f("se2")), f("p_value"), &format!("{c}"));
    }
}

#[test]
fn relative_sample_sizes_match_the_reference_solutions() {
    let cases = vectors()["sample_size_relative"].as_array().unwrap().clone();
    assert!(cases.len() >= 50);
    for c in cases {
        let f = |k: &str| c[k].as_f64().unwrap();
        let inference = if c["sequential"].as_bool().unwrap() {
            Inference::Sequential { tuning: f("tuning") }
        } else {
            Inference::Fixed
        };
        let got = match c["kind"].as_str().unwrap() {
            "proportion" => sample_size_proportion_relative(f("mu"), f("mde"), f("alpha"), f("power"), inference),
            _ => sample_size_relative(f("mu"), f("sigma"), f("mde"), f("alpha"), f("power"), inference),
        };
        assert_close(got.unwrap(), f("n"), &format!("{c}"));
    }
}

/// Arms whose visitors all have the same value (or ratio) have no spread:
/// the variance is exactly 0 and the lift is not computable, also where
/// gbstats' floating-point variance comes out as a tiny positive number.
#[test]
fn zero_spread_is_exactly_zero_and_never_significant() {
    let cases = vectors()["zero_spread"].as_array().unwrap().clone();
    assert!(cases.iter().any(|c| c["gbstats_computable"] == true), "the vectors include gbstats' rounding cases");
    for c in cases {
        let kind = c["kind"].as_str().unwrap();
        let control: Moments = serde_json::from_value(c["control"].clone()).unwrap();
        let treatment: Moments = serde_json::from_value(c["treatment"].clone()).unwrap();
        let exact: Vec<f64> = serde_json::from_value(c["exact_variance"].clone()).unwrap();
        for (m, want) in [(control, exact[0]), (treatment, exact[1])] {
            let got = statistic(kind, m).variance();
            if want == 0.0 {
                assert_eq!(got, 0.0, "{kind} {m:?}");
            } else {
                assert!((got - want).abs() <= 1e-6 * want, "{kind} {m:?}: {got} vs {want}");
            }
        }
        let r = compare(&statistic(kind, control), &statistic(kind, treatment), 0.05, Inference::Fixed);
        assert_eq!(r.not_computable, Some(NotComputable::ZeroVariance), "{c}");
        assert_eq!(r.p_value, 1.0);
    }
}

/// Values near a million with a variance near 1: not constant. The
/// variance matches exact rational arithmetic to 1e-12; the comparison
/// matches gbstats to 1e-4 (gbstats' floating-point variance is itself
/// off in the 6th digit here), and the sample size is known.
#[test]
fn large_values_with_a_small_spread_are_computed_not_refused() {
    use offerlab::stats::sample_size_relative;
    let cases = vectors()["near_constant"].as_array().unwrap().clone();
    assert!(!cases.is_empty());
    for c in cases {
        let control: Moments = serde_json::from_value(c["control"].clone()).unwrap();
        let treatment: Moments = serde_json::from_value(c["treatment"].clone()).unwrap();
        let exact: Vec<f64> = serde_json::from_value(c["exact_variance"].clone()).unwrap();
        for (m, want) in [(control, exact[0]), (treatment, exact[1])] {
            let got = statistic("mean", m).variance();
            assert!((got - want).abs() <= 1e-12 * want, "{m:?}: {got} vs {want}");
        }
        let r = compare(&statistic("mean", control), &statistic("mean", treatment), 0.05, Inference::Fixed);
        assert_eq!(r.not_computable, None, "{c}");
        let near = |got: f64, want: f64| (got - want).abs() <= 1e-4 * want.abs();
        assert!(near(r.relative_lift, c["relative_lift"].as_f64().unwrap()), "{r:?} {c}");
        assert!(near(r.p_value, c["p_value"].as_f64().unwrap()), "{r:?} {c}");
        assert!(near(r.ci.1, c["ci"][1].as_f64().unwrap()), "{r:?} {c}");
        let mean = statistic("mean", control).mean();
        let sd = exact[0].sqrt();
        assert!(sample_size_relative(mean, sd, 1e-7, 0.05, 0.8, Inference::Fixed).is_some());
    }
}

#[test]
fn a_three_arm_test_matches_gbstats_and_statsmodels() {
    let v = vectors()["multi_arm"].clone();
    let control: Moments = serde_json::from_value(v["control"].clone()).unwrap();
    let treatments: Vec<Moments> = serde_json::from_value(v["treatments"].clone()).unwrap();
    let want_holm: Vec<f64> = serde_json::from_value(v["holm"].clone()).unwrap();
    let mut p = Vec::new();
    for (t, want) in treatments.iter().zip(v["results"].as_array().unwrap()) {
        let r =
            compare(&MetricStatistic::Proportion(control), &MetricStatistic::Proportion(*t), 0.05, Inference::Fixed);
        assert_close(r.relative_lift, want["relative_lift"].as_f64().unwrap(), "lift");
        assert_close(r.p_value, want["p_value"].as_f64().unwrap(), "p");
        p.push(r.p_value);
    }
    for (got, want) in holm(&p).into_iter().zip(want_holm) {
        assert_close(got, want, "holm");
    }
}

#[derive(Deserialize)]
struct BayesianReference {
    chance_to_win: f64,
    risk: [f64; 2],
    ci: [f64; 2],
    computable: bool,
}

/// Risks are relative lifts: below 1e-12 they are rounding either way.
fn assert_bayesian(got: &Bayesian, want: &BayesianReference, what: &str) {
    assert_close(got.chance_to_win, want.chance_to_win, &format!("{what} chance to win"));
    for (g, w, side) in [(got.risk_control, want.risk[0], "control"), (got.risk_treatment, want.risk[1], "treatment")] {
        assert!(close(g, w) || (g - w).abs() < 1e-12, "{what} risk of {side}: got {g}, want {w}");
    }
    if want.computable {
        assert_close(got.credible_interval.0, want.ci[0], &format!("{what} credible interval low"));
        assert_close(got.credible_interval.1, want.ci[1], &format!("{what} credible interval high"));
    }
}

#[test]
fn chance_to_win_and_risk_match_gbstats() {
    #[derive(Deserialize)]
    struct Case {
        kind: String,
        control: Moments,
        treatment: Moments,
        alpha: f64,
        inverse: bool,
        #[serde(flatten)]
        reference: BayesianReference,
    }
    let cases: Vec<Case> = serde_json::from_value(vectors()["bayesian"].clone()).unwrap();
    assert!(cases.len() >= 300 && cases.iter().filter(|c| c.inverse).count() >= 50);
    for (i, c) in cases.iter().enumerate() {
        let comparison =
            compare(&statistic(&c.kind, c.control), &statistic(&c.kind, c.treatment), c.alpha, Inference::Fixed);
        let got = bayesian(&comparison, c.alpha, !c.inverse);
        assert_bayesian(&got, &c.reference, &format!("case {i} ({} {}, inverse {})", c.kind, c.control.n, c.inverse));
    }
}

#[derive(Deserialize)]
struct Expected {
    relative_lift: f64,
    ci: [f64; 2],
    p_value: f64,
    #[serde(default)]
    dof: Option<f64>,
    bayesian: BayesianReference,
}

fn assert_expected(r: &offerlab::stats::Comparison, want: &Expected, alpha: f64, higher_is_better: bool, what: &str) {
    assert_close(r.relative_lift, want.relative_lift, &format!("{what} relative lift"));
    assert_close(r.ci.0, want.ci[0], &format!("{what} ci low"));
    assert_close(r.ci.1, want.ci[1], &format!("{what} ci high"));
    assert_close(r.p_value, want.p_value, &format!("{what} p-value"));
    if let Some(dof) = want.dof {
        assert_close(r.dof, dof, &format!("{what} dof"));
    }
    assert_bayesian(&bayesian(r, alpha, higher_is_better), &want.bayesian, what);
}

#[test]
fn cuped_matches_gbstats_regression_adjustment() {
    #[derive(Deserialize)]
    struct Case {
        kind: String,
        control: Moments,
        treatment: Moments,
        sequential: bool,
        theta: f64,
        variance_reduction: f64,
        #[serde(flatten)]
        expected: Expected,
    }
    let cases: Vec<Case> = serde_json::from_value(vectors()["cuped"].clone()).unwrap();
    assert!(cases.iter().any(|c| c.kind == "proportion") && cases.iter().any(|c| c.kind == "mean"));
    for (i, c) in cases.iter().enumerate() {
        let what = format!("case {i} ({} {}, seq {})", c.kind, c.control.n, c.sequential);
        let inference = if c.sequential { Inference::Sequential { tuning: 5000.0 } } else { Inference::Fixed };
        let (a, b) = (statistic(&c.kind, c.control), statistic(&c.kind, c.treatment));
        let (ca, cb) = adjust(&a, &b).expect("the vectors carry covariates");
        assert_close(ca.theta, c.theta, &format!("{what} theta"));
        let adjusted = compare(&ca, &cb, 0.05, inference);
        assert_expected(&adjusted, &c.expected, 0.05, true, &what);
        let plain = compare(&a, &b, 0.05, Inference::Fixed);
        let reduction = 1.0 - (adjusted.std_error / plain.std_error).powi(2);
        assert_close(reduction, c.variance_reduction, &format!("{what} variance reduction"));
    }
}

#[test]
fn capped_statistics_match_gbstats_on_capped_values() {
    #[derive(Deserialize)]
    struct RawCap {
        absolute: Option<f64>,
        percentile: Option<f64>,
        ignore_zeros: Option<bool>,
    }
    #[derive(Deserialize)]
    struct Case {
        kind: String,
        cap: RawCap,
        values: [Vec<f64>; 2],
        denominators: Option<[Vec<f64>; 2]>,
        cap_value: f64,
        capped_visitors: u64,
        moments: [Moments; 2],
        #[serde(flatten)]
        expected: Expected,
    }
    let cases: Vec<Case> = serde_json::from_value(vectors()["capped"].clone()).unwrap();
    assert!(cases.iter().any(|c| c.kind == "mean") && cases.iter().any(|c| c.kind == "ratio"));
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
    for (i, c) in cases.iter().enumerate() {
        let cap = match (c.cap.absolute, c.cap.percentile) {
            (Some(a), _) => Cap::Absolute(a),
            (None, Some(p)) => Cap::Percentile { percentile: p, ignore_zeros: c.cap.ignore_zeros.unwrap_or(false) },
            _ => panic!("case {i}: no cap"),
        };
        let what = format!("case {i} ({} {:?})", c.kind, cap);
        let mut visitors = Vec::new();
        for arm in 0..2 {
            for (j, x) in c.values[arm].iter().enumerate() {
                let y = c.denominators.as_ref().map_or(0.0, |d| d[arm][j]);
                visitors.push((VariantIndex::new(arm).unwrap(), day, VisitorValue { x: *x, y, pre: 0.0 }));
            }
        }
        let (value, capped, sums) = capped_moments(cap, &visitors);
        assert_close(value.unwrap(), c.cap_value, &format!("{what} cap"));
        assert_eq!(capped, c.capped_visitors, "{what} capped visitors");
        let arms: Vec<Moments> = (0..2).map(|arm| sums[&(VariantIndex::new(arm).unwrap(), day)]).collect();
        for (got, want) in arms.iter().zip(&c.moments) {
            assert!(got.approx_eq(want, 1e-9), "{what}: {got:?} vs {want:?}");
        }
        let r = compare(&statistic(&c.kind, arms[0]), &statistic(&c.kind, arms[1]), 0.05, Inference::Fixed);
        assert_expected(&r, &c.expected, 0.05, true, &what);
    }
}

/// The statistics of a breakdown by segment against statsmodels and scipy
/// (tests/vectors/gen_segments.py): Benjamini–Hochberg, and Cochran's Q
/// with its chi-square p-value.
fn segment_vectors() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/segments.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn benjamini_hochberg_matches_statsmodels() {
    let cases = segment_vectors()["benjamini_hochberg"].as_array().unwrap().clone();
    assert!(cases.len() >= 20);
    for case in cases {
        let p: Vec<f64> = serde_json::from_value(case["p_values"].clone()).unwrap();
        let want: Vec<f64> = serde_json::from_value(case["adjusted"].clone()).unwrap();
        for (g, w) in offerlab::stats::benjamini_hochberg(&p).iter().zip(&want) {
            assert_close(*g, *w, &format!("benjamini-hochberg {p:?}"));
        }
    }
}

#[test]
fn cochran_q_matches_statsmodels_and_scipy() {
    let cases = segment_vectors()["cochran_q"].as_array().unwrap().clone();
    assert!(cases.len() >= 20);
    for case in cases {
        let lifts: Vec<f64> = serde_json::from_value(case["lifts"].clone()).unwrap();
        let ses: Vec<f64> = serde_json::from_value(case["std_errors"].clone()).unwrap();
        let pairs: Vec<(f64, f64)> = lifts.into_iter().zip(ses).collect();
        let h = offerlab::stats::cochran_q(&pairs).unwrap();
        assert_close(h.q, case["q"].as_f64().unwrap(), "Q");
        assert_eq!(u64::from(h.dof), case["dof"].as_u64().unwrap());
        assert_close(h.p_value, case["p_value"].as_f64().unwrap(), "p of Q");
    }
}
