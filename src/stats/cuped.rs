//! CUPED (regression adjustment): a visitor's value of the metric before
//! their first exposure predicts part of their value after it, and
//! subtracting that predictable part leaves a less noisy estimate of the
//! same lift. Assignment is independent of the pre-period, so the
//! adjustment removes variance without adding bias.
//!
//! As gbstats' `RegressionAdjustedStatistic` with `compute_theta`: one
//! `θ` per comparison, from both arms pooled, and relative lifts divided
//! by the control's unadjusted value.

use super::moments::{co_spread, sample_variance, MetricStatistic, Moments};
use super::ttest::ArmStatistic;

/// One arm's regression-adjusted statistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adjusted {
    pub post: MetricStatistic,
    pub theta: f64,
}

/// The covariate's variance: `q(1 − q)` with `q = Σc/n` for a proportion
/// (its covariate is 0 or 1 too), the sample variance otherwise.
fn pre_variance(s: &MetricStatistic) -> f64 {
    let m = s.moments();
    let n = m.n as f64;
    match s {
        MetricStatistic::Proportion(_) => {
            let q = if m.n == 0 { 0.0 } else { m.pre_sum / n };
            q * (1.0 - q)
        }
        _ => sample_variance(m.n, m.pre_sum, m.pre_sum_sq),
    }
}

/// `(Σx·c − Σx·Σc/n) / (n − 1)`, 0 for one visitor or none.
fn covariance(m: &Moments) -> f64 {
    if m.n <= 1 {
        0.0
    } else {
        let n = m.n as f64;
        co_spread(m.n, m.sum, m.pre_sum, m.sum_x_pre) / n / (n - 1.0)
    }
}

fn pre_mean(m: &Moments) -> f64 {
    if m.n == 0 {
        0.0
    } else {
        m.pre_sum / m.n as f64
    }
}

/// `θ = cov(x, c) / var(c)` over both arms pooled; 0 when either pooled
/// variance is 0 (nothing to adjust with, or nothing to adjust).
pub fn theta(control: &MetricStatistic, treatment: &MetricStatistic) -> f64 {
    let mut joint = *control.moments();
    joint.merge(treatment.moments());
    let pooled = control.with_moments(joint);
    let pre = pre_variance(&pooled);
    if pre == 0.0 || pooled.variance() == 0.0 {
        return 0.0;
    }
    covariance(&joint) / pre
}

/// Both arms adjusted with their pooled `θ`, or `None` when the metric
/// cannot be adjusted (a ratio) or no visitor has a covariate (the
/// aggregates carry none).
pub fn adjust(control: &MetricStatistic, treatment: &MetricStatistic) -> Option<(Adjusted, Adjusted)> {
    if matches!(control, MetricStatistic::Ratio(_))
        || !(control.moments().has_covariate() || treatment.moments().has_covariate())
    {
        return None;
    }
    let theta = theta(control, treatment);
    Some((Adjusted { post: *control, theta }, Adjusted { post: *treatment, theta }))
}

impl ArmStatistic for Adjusted {
    fn n(&self) -> f64 {
        self.post.n()
    }

    /// `x̄ − θ·c̄`
    fn mean(&self) -> f64 {
        self.post.mean() - self.theta * pre_mean(self.post.moments())
    }

    fn unadjusted_mean(&self) -> f64 {
        self.post.mean()
    }

    /// `var(x) + θ²·var(c) − 2θ·cov(x, c)`
    fn variance(&self) -> f64 {
        if self.post.moments().n <= 1 {
            return 0.0;
        }
        self.post.variance() + self.theta.powi(2) * pre_variance(&self.post)
            - 2.0 * self.theta * covariance(self.post.moments())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::VisitorValue;

    #[test]
    fn a_covariate_that_predicts_the_value_removes_its_variance() {
        // x = c + small noise: θ ≈ 1 and almost all variance goes.
        let (mut a, mut b) = (Moments::default(), Moments::default());
        for i in 0..1000 {
            let c = f64::from(i % 50);
            let noise = f64::from(i % 3) - 1.0;
            a.add_visitor(VisitorValue { x: c + noise, y: 0.0, pre: c });
            b.add_visitor(VisitorValue { x: c + noise + 1.0, y: 0.0, pre: c });
        }
        let (ca, cb) = adjust(&MetricStatistic::Mean(a), &MetricStatistic::Mean(b)).unwrap();
        assert!((ca.theta - 1.0).abs() < 0.01, "{}", ca.theta);
        assert!(cb.variance() < 0.01 * MetricStatistic::Mean(b).variance(), "{}", cb.variance());
        assert!(((cb.mean() - ca.mean()) - 1.0).abs() < 1e-9, "the lift itself is kept");
    }

    #[test]
    fn without_a_covariate_nothing_is_adjusted() {
        let m = Moments { n: 100, sum: 40.0, sum_sq: 40.0, ..Moments::default() };
        assert!(adjust(&MetricStatistic::Proportion(m), &MetricStatistic::Proportion(m)).is_none());
    }
}
