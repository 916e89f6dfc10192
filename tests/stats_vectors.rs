//! offerlab's statistics against the golden vectors gbstats 0.8, scipy and
//! statsmodels wrote (tests/vectors/gen_stats.py), to 1e-6 relative.

use offerlab::cycles::consistency_p_value;
use offerlab::stats::{
    compare, holm, sample_size_mean, sample_size_proportion, srm_p_value, Inference, MetricStatistic, Moments,
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
