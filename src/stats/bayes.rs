//! The Bayesian reading of a comparison: the chance that the treatment
//! beats the control, and the expected loss (risk) of shipping either.
//! It informs; the verdict stays with the frequentist test.
//!
//! As gbstats' `EffectBayesianABTest` with its default prior (a Gaussian
//! prior on the relative lift that is improper, so uninformative): the
//! posterior of the relative lift is then the normal distribution the data
//! give, `N(μ, σ²)`, with `μ` the relative lift and `σ` its delta-method
//! standard error, the same numbers the t-test uses.

use statrs::distribution::{Continuous, ContinuousCDF};

use super::std_normal;
use super::ttest::Comparison;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bayesian {
    /// Posterior probability that the treatment is better than the control,
    /// in the metric's good direction.
    pub chance_to_win: f64,
    /// Expected relative loss of shipping the treatment: what is given up,
    /// on average over the posterior, in the cases where the control is
    /// better.
    pub risk_treatment: f64,
    /// Expected relative loss of keeping the control.
    pub risk_control: f64,
    /// Central posterior interval of the relative lift at level `1 − α`.
    pub credible_interval: (f64, f64),
}

impl Bayesian {
    /// gbstats' answer when there is nothing to learn from yet (the
    /// comparison is not computable): a coin toss, no risk either way.
    const UNINFORMED: Bayesian =
        Bayesian { chance_to_win: 0.5, risk_treatment: 0.0, risk_control: 0.0, credible_interval: (0.0, 0.0) };
}

/// The Bayesian reading of `c` at level `alpha`, for a metric where a rise
/// is good when `higher_is_better`.
///
/// # Formula
/// With `z = μ/σ`, `Φ` and `φ` the standard normal CDF and density:
/// - `P(lift > 0) = Φ(z)`;
/// - `E[max(lift, 0)] = μ·Φ(z) + σ·φ(z)` (the loss of keeping the control
///   when a rise is good);
/// - `E[max(−lift, 0)] = σ·φ(z) − μ·Φ(−z)` (the loss of shipping the
///   treatment when a rise is good).
///
/// These equal gbstats' `(1 − P)·E[lift | lift > 0]` and
/// `−P·E[lift | lift < 0]` from the truncated normal's mean; when a fall
/// is good (`higher_is_better = false`) the chance is `Φ(−z)` and the two
/// risks swap.
pub fn bayesian(c: &Comparison, alpha: f64, higher_is_better: bool) -> Bayesian {
    if c.not_computable.is_some() || c.std_error <= 0.0 {
        return Bayesian::UNINFORMED;
    }
    let (mu, sigma) = (c.relative_lift, c.std_error);
    let n = std_normal();
    let z = mu / sigma;
    let gain = mu * n.cdf(z) + sigma * n.pdf(z);
    let loss = sigma * n.pdf(z) - mu * n.cdf(-z);
    let (chance_to_win, risk_treatment, risk_control) =
        if higher_is_better { (n.cdf(z), loss, gain) } else { (n.cdf(-z), gain, loss) };
    let q = n.inverse_cdf(1.0 - alpha / 2.0) * sigma;
    Bayesian {
        chance_to_win,
        risk_treatment: risk_treatment.max(0.0),
        risk_control: risk_control.max(0.0),
        credible_interval: (mu - q, mu + q),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{compare, Inference, MetricStatistic, Moments};

    fn prop(n: u64, conversions: u64) -> MetricStatistic {
        MetricStatistic::Proportion(Moments::proportion(n, conversions))
    }

    #[test]
    fn a_clear_winner_has_a_high_chance_and_little_risk() {
        let c = compare(&prop(10_000, 400), &prop(10_000, 520), 0.05, Inference::Fixed);
        let b = bayesian(&c, 0.05, true);
        assert!(b.chance_to_win > 0.99, "{b:?}");
        assert!(b.risk_treatment < 1e-3 && b.risk_control > 0.2, "{b:?}");
        let inverse = bayesian(&c, 0.05, false);
        assert!((inverse.chance_to_win - (1.0 - b.chance_to_win)).abs() < 1e-15);
        assert_eq!((inverse.risk_treatment, inverse.risk_control), (b.risk_control, b.risk_treatment));
    }

    #[test]
    fn the_risks_differ_by_the_expected_lift() {
        // E[max(X, 0)] − E[max(−X, 0)] = E[X] = μ.
        let c = compare(&prop(5_000, 200), &prop(5_000, 215), 0.05, Inference::Fixed);
        let b = bayesian(&c, 0.05, true);
        assert!((b.risk_control - b.risk_treatment - c.relative_lift).abs() < 1e-15, "{b:?} {c:?}");
    }

    #[test]
    fn nothing_to_learn_is_a_coin_toss() {
        let c = compare(&prop(1_000, 0), &prop(1_000, 3), 0.05, Inference::Fixed);
        assert_eq!(bayesian(&c, 0.05, true), Bayesian::UNINFORMED);
    }
}
