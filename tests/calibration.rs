//! Calibration by seeded simulation: the false-positive rate at a fixed
//! horizon, with daily looks (sequential and not), and with CUPED, and
//! power at the computed sample size.

use offerlab::stats::{
    adjust, compare, sample_size_proportion, sample_size_proportion_relative, Inference, MetricStatistic, Moments,
    VisitorValue,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Binomial, Distribution, LogNormal};

fn arm(n: u64, conversions: u64) -> MetricStatistic {
    MetricStatistic::Proportion(Moments::proportion(n, conversions))
}

fn draw(rng: &mut StdRng, n: u64, p: f64) -> u64 {
    Binomial::new(n, p).unwrap().sample(rng)
}

fn significant(a: (u64, u64), b: (u64, u64), inference: Inference) -> bool {
    let r = compare(&arm(a.0, a.1), &arm(b.0, b.1), 0.05, inference);
    r.not_computable.is_none() && r.p_value < 0.05
}

#[test]
fn fixed_horizon_false_positive_rate_is_alpha() {
    let mut rng = StdRng::seed_from_u64(1);
    let (tests, n, p) = (4000, 5000, 0.04);
    let hits = (0..tests)
        .filter(|_| significant((n, draw(&mut rng, n, p)), (n, draw(&mut rng, n, p)), Inference::Fixed))
        .count();
    let rate = hits as f64 / tests as f64;
    assert!((0.035..=0.065).contains(&rate), "false-positive rate {rate}");
}

/// Share of A/A tests that look significant on at least one of 28 daily looks.
fn daily_peeking_rate(inference: Inference, seed: u64) -> f64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let (tests, days, per_day, p) = (2000, 28, 300, 0.05);
    let mut hits = 0;
    for _ in 0..tests {
        let (mut a, mut b) = ((0, 0), (0, 0));
        for _ in 0..days {
            a = (a.0 + per_day, a.1 + draw(&mut rng, per_day, p));
            b = (b.0 + per_day, b.1 + draw(&mut rng, per_day, p));
            if significant(a, b, inference) {
                hits += 1;
                break;
            }
        }
    }
    hits as f64 / tests as f64
}

#[test]
fn sequential_tests_survive_daily_looks() {
    let rate = daily_peeking_rate(Inference::Sequential { tuning: 5000.0 }, 2);
    assert!(rate <= 0.06, "sequential false-positive rate with daily looks {rate}");
}

#[test]
fn fixed_horizon_tests_inflate_under_daily_looks() {
    let rate = daily_peeking_rate(Inference::Fixed, 2);
    assert!(rate > 0.10, "daily looks at a fixed-horizon test should inflate errors, got {rate}");
}

#[test]
fn power_at_the_computed_sample_size_matches_the_plan() {
    let (baseline, mde, power) = (0.04, 0.10, 0.8);
    let n = sample_size_proportion(baseline, mde, 0.05, power).unwrap().ceil() as u64;
    let mut rng = StdRng::seed_from_u64(3);
    let tests = 2000;
    let detected = (0..tests)
        .filter(|_| {
            let a = (n, draw(&mut rng, n, baseline));
            let b = (n, draw(&mut rng, n, baseline * (1.0 + mde)));
            let r = compare(&arm(a.0, a.1), &arm(b.0, b.1), 0.05, Inference::Fixed);
            r.p_value < 0.05 && r.relative_lift > 0.0
        })
        .count();
    let rate = detected as f64 / tests as f64;
    assert!((rate - power).abs() <= 0.04, "detection rate {rate} at n = {n}, planned power {power}");
}

/// Simulated power of one look at the sample size offerlab reports, for
/// the test it runs (relative lift): 10,000 seeded tests per case, so the
/// 0.02 margin is five standard errors.
fn power_at_reported_n(mde: f64, inference: Inference, seed: u64) -> (u64, f64) {
    let baseline = 0.04;
    let n = sample_size_proportion_relative(baseline, mde, 0.05, 0.8, inference).unwrap().ceil() as u64;
    let mut rng = StdRng::seed_from_u64(seed);
    let tests = 10_000;
    let detected = (0..tests)
        .filter(|_| {
            let a = (n, draw(&mut rng, n, baseline));
            let b = (n, draw(&mut rng, n, baseline * (1.0 + mde)));
            let r = compare(&arm(a.0, a.1), &arm(b.0, b.1), 0.05, inference);
            r.not_computable.is_none() && r.p_value < 0.05 && r.relative_lift > 0.0
        })
        .count();
    (n, detected as f64 / tests as f64)
}

#[test]
fn the_reported_sample_size_gives_the_planned_power_for_the_relative_test() {
    for (i, mde) in [0.05, 0.10, 0.20, 0.30].into_iter().enumerate() {
        let (n, power) = power_at_reported_n(mde, Inference::Fixed, 10 + i as u64);
        assert!((power - 0.8).abs() <= 0.02, "power {power} at n = {n} for an MDE of {mde}");
    }
}

#[test]
fn the_sequential_sample_size_gives_the_planned_power_for_the_sequential_test() {
    for (i, mde) in [0.10, 0.30].into_iter().enumerate() {
        let (n, power) = power_at_reported_n(mde, Inference::Sequential { tuning: 5000.0 }, 20 + i as u64);
        assert!((power - 0.8).abs() <= 0.02, "power {power} at n = {n} for an MDE of {mde}, sequential");
    }
}

/// One arm of returning customers: a spending propensity `p` (log-normal,
/// mean 1) drives both the spend before first exposure (the covariate) and
/// after it, as in the simulator.
fn returning_arm(rng: &mut StdRng, n: usize) -> Moments {
    use rand::Rng;
    let propensity = LogNormal::new(-0.32, 0.8).unwrap();
    let order = LogNormal::new(60f64.ln(), 0.6).unwrap();
    let mut m = Moments::default();
    for _ in 0..n {
        let p = propensity.sample(rng);
        let pre = if rng.random_bool(0.6) { order.sample(rng) * p } else { 0.0 };
        let x = if rng.random_bool((0.4 * p).min(0.95)) { order.sample(rng) * p } else { 0.0 };
        m.add_visitor(VisitorValue { x, y: 0.0, pre });
    }
    m
}

/// 8,000 A/A tests of a CUPED-adjusted mean: the false-positive rate stays
/// at alpha (the band is six standard errors of the rate wide on each
/// side), while the adjustment does remove variance.
#[test]
fn cuped_keeps_the_false_positive_rate_at_alpha() {
    let mut rng = StdRng::seed_from_u64(16);
    let (tests, n) = (8000, 1000);
    let (mut hits, mut reduction) = (0, 0.0);
    for _ in 0..tests {
        let (a, b) =
            (MetricStatistic::Mean(returning_arm(&mut rng, n)), MetricStatistic::Mean(returning_arm(&mut rng, n)));
        let (ca, cb) = adjust(&a, &b).expect("covariates");
        let adjusted = compare(&ca, &cb, 0.05, Inference::Fixed);
        let plain = compare(&a, &b, 0.05, Inference::Fixed);
        hits += usize::from(adjusted.not_computable.is_none() && adjusted.p_value < 0.05);
        reduction += 1.0 - (adjusted.std_error / plain.std_error).powi(2);
    }
    let rate = hits as f64 / tests as f64;
    println!("CUPED A/A false-positive rate {rate}, mean variance reduction {}", reduction / tests as f64);
    assert!((0.035..=0.065).contains(&rate), "CUPED false-positive rate {rate}");
    assert!(reduction / tests as f64 > 0.1, "mean variance reduction {}", reduction / tests as f64);
}
