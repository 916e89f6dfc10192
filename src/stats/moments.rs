//! Sufficient statistics of a metric for a group of visitors, and the
//! per-visitor mean and variance each metric kind derives from them.
//!
//! They add up across days, nodes and warehouses, so the analysis never
//! needs raw events: a report's cost grows with days and variants only.

use serde::{Deserialize, Serialize};

/// Sums over a group of visitors of a per-visitor value `x` (and, for a
/// ratio, its denominator `y`).
///
/// For a proportion `x` is 0 or 1 and `sum_sq = sum`; for a mean `x` is the
/// visitor's value; for a ratio `x` is the numerator and `y` the
/// denominator, and `sum_xy` feeds the delta method's covariance. For
/// non-ratio metrics the `y` fields stay 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Visitors in the group.
    pub n: u64,
    /// `Σ x`
    pub sum: f64,
    /// `Σ x²`
    pub sum_sq: f64,
    /// `Σ y`
    #[serde(default)]
    pub den_sum: f64,
    /// `Σ y²`
    #[serde(default)]
    pub den_sum_sq: f64,
    /// `Σ x·y`
    #[serde(default)]
    pub sum_xy: f64,
    /// `Σ c`, with `c` the covariate CUPED adjusts for: the visitor's value
    /// of the same metric in the days before their first exposure. All
    /// three covariate sums stay 0 (no adjustment) for a metric without
    /// CUPED.
    #[serde(default)]
    pub pre_sum: f64,
    /// `Σ c²`
    #[serde(default)]
    pub pre_sum_sq: f64,
    /// `Σ x·c`
    #[serde(default)]
    pub sum_x_pre: f64,
}

/// What one visitor contributes to a metric: the value `x`, a ratio's
/// denominator `y` (0 otherwise) and the pre-exposure covariate `pre`
/// (0 without CUPED).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VisitorValue {
    pub x: f64,
    pub y: f64,
    pub pre: f64,
}

impl VisitorValue {
    pub const ZERO: VisitorValue = VisitorValue { x: 0.0, y: 0.0, pre: 0.0 };
}

/// The mean square of a covariate below which it is rounding residue, not
/// a covariate: far below any count or amount a shop records (a cent
/// squared is 1e-4).
pub const COVARIATE_FLOOR: f64 = 1e-12;

/// `a + b`, or exactly 0 when it is within rounding of cancelling (a
/// billionth of the larger side: sums of a million terms round at about a
/// ten-billionth).
fn cancel(a: f64, b: f64) -> f64 {
    let s = a + b;
    if s.abs() <= 1e-9 * a.abs().max(b.abs()) {
        0.0
    } else {
        s
    }
}

impl Moments {
    /// The names of the sums, in the order of [`Moments::sums`]: the
    /// aggregates file's columns after `n`, and the stores' alike.
    pub const SUM_NAMES: [&'static str; 8] =
        ["sum", "sum_sq", "den_sum", "den_sum_sq", "sum_xy", "pre_sum", "pre_sum_sq", "sum_x_pre"];

    /// Every sum, in the order of [`Moments::SUM_NAMES`].
    pub fn sums(&self) -> [f64; 8] {
        [
            self.sum,
            self.sum_sq,
            self.den_sum,
            self.den_sum_sq,
            self.sum_xy,
            self.pre_sum,
            self.pre_sum_sq,
            self.sum_x_pre,
        ]
    }

    /// A proportion's moments: `conversions` of `n` visitors (each value 0
    /// or 1, so `Σx² = Σx`).
    pub fn proportion(n: u64, conversions: u64) -> Moments {
        let c = conversions as f64;
        Moments { n, sum: c, sum_sq: c, ..Moments::default() }
    }

    /// The moments of `n` visitors with `sums` in the order of [`Moments::SUM_NAMES`].
    pub fn from_sums(n: u64, sums: [f64; 8]) -> Moments {
        let [sum, sum_sq, den_sum, den_sum_sq, sum_xy, pre_sum, pre_sum_sq, sum_x_pre] = sums;
        Moments { n, sum, sum_sq, den_sum, den_sum_sq, sum_xy, pre_sum, pre_sum_sq, sum_x_pre }
    }

    /// Adds another group's sums (visitors are disjoint).
    pub fn merge(&mut self, o: &Moments) {
        self.n += o.n;
        self.sum += o.sum;
        self.sum_sq += o.sum_sq;
        self.den_sum += o.den_sum;
        self.den_sum_sq += o.den_sum_sq;
        self.sum_xy += o.sum_xy;
        self.pre_sum += o.pre_sum;
        self.pre_sum_sq += o.pre_sum_sq;
        self.sum_x_pre += o.sum_x_pre;
    }

    /// The sums of the visitors in `self` and not in `part` (a subset),
    /// with [`Self::add_cancelling`]'s rounding rule.
    pub fn without(&self, part: &Moments) -> Moments {
        let (a, b) = (self.sums(), part.sums());
        Moments::from_sums(self.n.saturating_sub(part.n), std::array::from_fn(|i| cancel(a[i], -b[i])))
    }

    /// Adds `change` (a cap's excess: the same visitors' values, taken
    /// away) to these sums. A sum it cancels to within rounding is exactly
    /// 0: the two sides were added in different orders, and a remainder of
    /// 1e-16 where every visitor was capped to 0 would read as a covariate
    /// with a variance of 1e-33, which CUPED would divide by.
    pub fn add_cancelling(&mut self, change: &Moments) {
        let (a, b) = (self.sums(), change.sums());
        *self = Moments::from_sums(self.n + change.n, std::array::from_fn(|i| cancel(a[i], b[i])));
    }

    /// Adds one visitor.
    pub fn add_visitor(&mut self, v: VisitorValue) {
        self.n += 1;
        self.apply_delta(VisitorValue::ZERO, v);
    }

    /// Moves one visitor already counted from values `old` to `new`: the
    /// sums change by the difference, `n` stays.
    pub fn apply_delta(&mut self, old: VisitorValue, new: VisitorValue) {
        let (a, b) = (old, new);
        self.sum += b.x - a.x;
        self.sum_sq += b.x * b.x - a.x * a.x;
        self.den_sum += b.y - a.y;
        self.den_sum_sq += b.y * b.y - a.y * a.y;
        self.sum_xy += b.x * b.y - a.x * a.y;
        self.pre_sum += b.pre - a.pre;
        self.pre_sum_sq += b.pre * b.pre - a.pre * a.pre;
        self.sum_x_pre += b.x * b.pre - a.x * a.pre;
    }

    /// Whether any visitor has a covariate (CUPED has something to adjust
    /// with). Sums kept incrementally (a covariate added, then taken away
    /// by a move or a cap) can keep a rounding residue near 1e-16 where
    /// every covariate is 0, which CUPED would divide by; a mean square of
    /// the covariate below [`COVARIATE_FLOOR`] is such a residue.
    pub fn has_covariate(&self) -> bool {
        self.n > 0 && self.pre_sum_sq / self.n as f64 > COVARIATE_FLOOR
    }

    /// Whether two sets of sums agree to a relative tolerance (sums kept
    /// incrementally differ from a recount only by rounding).
    pub fn approx_eq(&self, o: &Moments, rel: f64) -> bool {
        let close = |a: f64, b: f64| (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0);
        self.n == o.n
            && close(self.sum, o.sum)
            && close(self.sum_sq, o.sum_sq)
            && close(self.den_sum, o.den_sum)
            && close(self.den_sum_sq, o.den_sum_sq)
            && close(self.sum_xy, o.sum_xy)
            && close(self.pre_sum, o.pre_sum)
            && close(self.pre_sum_sq, o.pre_sum_sq)
            && close(self.sum_x_pre, o.sum_x_pre)
    }
}

/// A metric's statistic for one arm: the per-visitor mean and variance the
/// tests use, by metric kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricStatistic {
    Proportion(Moments),
    Mean(Moments),
    Ratio(Moments),
}

/// Relative size below which a difference of large sums is rounding, not
/// spread, where terms that were each rounded cancel (a ratio's delta-method
/// terms when every visitor has the same ratio).
pub const ZERO_SPREAD: f64 = 1e-8;

/// `a − b`, or exactly 0 when it is within rounding of the magnitudes
/// (`|a − b| ≤ ZERO_SPREAD·(|a| + |b|)`).
fn difference(a: f64, b: f64) -> f64 {
    let d = a - b;
    if d.abs() <= ZERO_SPREAD * (a.abs() + b.abs()) {
        0.0
    } else {
        d
    }
}

/// The sum as an exact integer, when it is one that f64 holds exactly
/// (`|x| ≤ 2^53`): counts and whole amounts.
fn integral(x: f64) -> Option<i128> {
    (x.fract() == 0.0 && x.abs() <= 9_007_199_254_740_992.0).then_some(x as i128)
}

/// `x·y` as `p + e` exactly: `p` the rounded product, `e` its rounding
/// error (an error-free transformation by fused multiply-add).
fn two_product(x: f64, y: f64) -> (f64, f64) {
    let p = x * y;
    (p, x.mul_add(y, -p))
}

/// `n·Σab − Σa·Σb`, which is `n(n − 1)` times the sample covariance of
/// `a` and `b` (the variance when `a = b`), and exactly 0 when every
/// visitor has the same values.
///
/// Zero is decided from the sums, not from a share of their size: sums
/// of values near a million with a variance near 1 differ from a constant
/// arm's in the 13th digit, and must not read as constant.
/// - Integral sums (`|x| ≤ 2^53`) are exact, so the difference is exact, in
///   `i128`.
/// - Otherwise both products are formed without rounding (`fma`), so the
///   only error left is the sums' own, from adding `n` rounded values: at
///   most `(n + 1)·u` of each, `u = 2^−53`, which moves the difference by
///   at most `3(n + 1)·u·max(|n·Σab|, |Σa·Σb|)`. A difference within that
///   is rounding, and reads as 0: for 1,000 amounts near a million, a
///   variance below about 0.33.
pub(crate) fn co_spread(n: u64, sum_a: f64, sum_b: f64, sum_ab: f64) -> f64 {
    if let (Some(a), Some(b), Some(ab)) = (integral(sum_a), integral(sum_b), integral(sum_ab)) {
        return (i128::from(n) * ab - a * b) as f64;
    }
    let n = n as f64;
    let (p1, e1) = two_product(n, sum_ab);
    let (p2, e2) = two_product(sum_a, sum_b);
    let d = (p1 - p2) + (e1 - e2);
    let rounding = 3.0 * (n + 1.0) * (f64::EPSILON / 2.0) * p1.abs().max(p2.abs());
    if d.abs() <= rounding {
        0.0
    } else {
        d
    }
}

/// `(Σx² − (Σx)²/n) / (n − 1)`, computed as `(n·Σx² − (Σx)²) / (n(n − 1))`
/// ([`co_spread`]): exactly 0 when every value is the same, and only then.
pub(crate) fn sample_variance(n: u64, sum: f64, sum_sq: f64) -> f64 {
    if n <= 1 {
        0.0
    } else {
        let n_f = n as f64;
        co_spread(n, sum, sum, sum_sq).max(0.0) / n_f / (n_f - 1.0)
    }
}

impl MetricStatistic {
    /// The same kind of statistic over other moments.
    pub fn with_moments(&self, m: Moments) -> MetricStatistic {
        match self {
            MetricStatistic::Proportion(_) => MetricStatistic::Proportion(m),
            MetricStatistic::Mean(_) => MetricStatistic::Mean(m),
            MetricStatistic::Ratio(_) => MetricStatistic::Ratio(m),
        }
    }

    pub fn moments(&self) -> &Moments {
        match self {
            MetricStatistic::Proportion(m) | MetricStatistic::Mean(m) | MetricStatistic::Ratio(m) => m,
        }
    }

    pub fn n(&self) -> f64 {
        self.moments().n as f64
    }

    /// The metric's value: `Σx / n`, or `Σx / Σy` for a ratio (0 when the
    /// denominator is 0).
    pub fn mean(&self) -> f64 {
        let m = self.moments();
        match self {
            MetricStatistic::Ratio(_) => {
                if m.den_sum == 0.0 {
                    0.0
                } else {
                    m.sum / m.den_sum
                }
            }
            _ => {
                if m.n == 0 {
                    0.0
                } else {
                    m.sum / m.n as f64
                }
            }
        }
    }

    /// Per-visitor variance.
    ///
    /// # Formula
    /// - proportion: `p(1 − p)`
    /// - mean: `(Σx² − (Σx)²/n) / (n − 1)`
    /// - ratio (delta method), with `μx, μy` the per-visitor means, `σ²` the
    ///   sample variances and `c = (Σxy − ΣxΣy/n)/(n − 1)`:
    ///   `σx²/μy² − 2·c·μx/μy³ + μx²·σy²/μy⁴`
    pub fn variance(&self) -> f64 {
        let m = self.moments();
        let n = m.n as f64;
        match self {
            MetricStatistic::Proportion(_) => {
                let p = self.mean();
                p * (1.0 - p)
            }
            MetricStatistic::Mean(_) => sample_variance(m.n, m.sum, m.sum_sq),
            MetricStatistic::Ratio(_) => {
                if n <= 1.0 || m.den_sum == 0.0 {
                    return 0.0;
                }
                let (mx, my) = (m.sum / n, m.den_sum / n);
                let vx = sample_variance(m.n, m.sum, m.sum_sq);
                let vy = sample_variance(m.n, m.den_sum, m.den_sum_sq);
                let cov = co_spread(m.n, m.sum, m.den_sum, m.sum_xy) / n / (n - 1.0);
                // Exactly 0 when every visitor has the same ratio (one
                // ordering visitor, say): the terms then cancel.
                let (a, b, c) = (vx / my.powi(2), 2.0 * cov * mx / my.powi(3), mx.powi(2) * vy / my.powi(4));
                difference(a + c, b).max(0.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Capping every visitor's covariate to 0 by taking its excess leaves
    /// exactly 0, not a rounding remainder CUPED would read as a covariate.
    #[test]
    fn an_excess_that_cancels_a_sum_leaves_exactly_zero() {
        let pres = [0.1, 0.2, 0.7, 1e-3, 12.345];
        let mut raw = Moments::default();
        let mut excess = Moments::default();
        for pre in pres {
            raw.add_visitor(VisitorValue { x: 1.0, y: 0.0, pre });
        }
        for pre in pres.iter().rev() {
            excess.apply_delta(VisitorValue { x: 1.0, y: 0.0, pre: *pre }, VisitorValue { x: 1.0, y: 0.0, pre: 0.0 });
        }
        let mut naive = raw;
        naive.merge(&excess);
        raw.add_cancelling(&excess);
        assert!(!raw.has_covariate(), "{raw:?}");
        assert!(!naive.has_covariate(), "a rounding residue is not a covariate: {naive:?}");
        assert_eq!((raw.n, raw.sum, raw.sum_sq), (5, 5.0, 5.0));
        assert_eq!(raw.without(&raw), Moments::default());
        assert!(naive.pre_sum.abs() < 1e-12, "the plain sum differs from 0 by rounding at most");
    }

    #[test]
    fn delta_updates_equal_a_recount() {
        let mut kept = Moments::default();
        let v = |x, y, pre| VisitorValue { x, y, pre };
        kept.add_visitor(VisitorValue::ZERO);
        kept.apply_delta(VisitorValue::ZERO, v(30.0, 1.0, 12.0));
        kept.apply_delta(v(30.0, 1.0, 12.0), v(75.0, 2.0, 20.0));
        let mut recount = Moments::default();
        recount.add_visitor(v(75.0, 2.0, 20.0));
        assert!(kept.approx_eq(&recount, 1e-12), "{kept:?} vs {recount:?}");
    }

    #[test]
    fn identical_values_have_exactly_zero_variance() {
        let mut m = Moments::default();
        for _ in 0..1000 {
            m.add_visitor(VisitorValue { x: 0.1, ..VisitorValue::ZERO });
        }
        assert_eq!(MetricStatistic::Mean(m).variance(), 0.0, "{m:?}");
        let mut one_orderer = Moments::default();
        one_orderer.add_visitor(VisitorValue { x: 87.3, y: 1.0, pre: 0.0 });
        for _ in 0..4999 {
            one_orderer.add_visitor(VisitorValue::ZERO);
        }
        assert_eq!(MetricStatistic::Ratio(one_orderer).variance(), 0.0);
        let mut two = one_orderer;
        two.add_visitor(VisitorValue { x: 20.0, y: 1.0, pre: 0.0 });
        assert!(MetricStatistic::Ratio(two).variance() > 0.0, "two different ratios do spread");
    }

    /// 1,000 visitors near a million, with a variance of 0.8995: the sums
    /// agree with a constant arm's to 13 digits, and are still not one.
    #[test]
    fn large_values_with_a_small_spread_are_not_constant() {
        let m = Moments { n: 1000, sum: 1_000_000_037.0, sum_sq: 1_000_000_074_000_900.0, ..Moments::default() };
        let exact = 898_631.0 / 1000.0 / 999.0;
        let got = MetricStatistic::Mean(m).variance();
        assert!((got - exact).abs() <= 1e-15 * exact, "{got} vs {exact}");
        // Amounts with cents are not integral: their spread is seen once it
        // is above the sums' worst-case rounding (a variance of 0.33 here);
        // the sum of squares itself, near 1e15, carries that rounding.
        let mut cents = Moments::default();
        for i in 0..1000 {
            cents.add_visitor(VisitorValue { x: 1_000_000.25 + 2.0 * (f64::from(i % 3) - 1.0), ..VisitorValue::ZERO });
        }
        let v = MetricStatistic::Mean(cents).variance();
        let exact = (4.0 * 667.0 - 1000.0 * 0.002f64.powi(2)) / 999.0;
        assert!((v - exact).abs() < 0.05 * exact, "{v} vs {exact}: {cents:?}");
    }

    #[test]
    fn proportion_variance_is_p_one_minus_p() {
        let m = Moments::proportion(100, 20);
        assert!((MetricStatistic::Proportion(m).variance() - 0.16).abs() < 1e-15);
    }
}
