//! Comparing a treatment with the control on one metric: the relative lift,
//! its confidence interval and p-value, by a two-sided Welch t-test or,
//! for tests looked at every day, an always-valid confidence sequence.

use statrs::distribution::{Continuous, ContinuousCDF, StudentsT};

use super::moments::MetricStatistic;
use super::std_normal;

/// How the interval and p-value are computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Inference {
    /// Valid when the data is looked at once, at the planned sample size.
    Fixed,
    /// Valid at every look: asymptotic confidence sequences (Waudby-Smith
    /// et al. 2023), tuned for an expected total sample `tuning`.
    Sequential { tuning: f64 },
}

/// Why a comparison has no interval: gbstats' conditions, under which it
/// reports a lift of 0, the interval [0, 0] and p = 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotComputable {
    /// The control's value is 0, so a relative lift is undefined.
    ControlMeanZero,
    /// An arm has no spread yet (no conversions, or one visitor).
    ZeroVariance,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub control_mean: f64,
    pub treatment_mean: f64,
    /// `mean_t − mean_c`
    pub absolute_lift: f64,
    /// Interval of the absolute lift, on the same footing as `ci`.
    pub absolute_ci: (f64, f64),
    /// `(mean_t − mean_c) / |mean_c|`
    pub relative_lift: f64,
    /// Interval of the relative lift at level `1 − alpha`.
    pub ci: (f64, f64),
    /// Standard error of the relative lift.
    pub std_error: f64,
    /// Two-sided p-value against no lift.
    pub p_value: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub dof: f64,
    pub not_computable: Option<NotComputable>,
}

/// What a comparison reads of one arm: a metric's plain statistic, or its
/// CUPED-adjusted one.
pub trait ArmStatistic {
    /// Visitors.
    fn n(&self) -> f64;
    /// The estimate whose difference is the lift (adjusted under CUPED).
    fn mean(&self) -> f64;
    /// The metric's plain value, by which a relative lift is divided.
    fn unadjusted_mean(&self) -> f64 {
        self.mean()
    }
    /// Per-visitor variance of [`ArmStatistic::mean`]'s terms.
    fn variance(&self) -> f64;
}

impl ArmStatistic for MetricStatistic {
    fn n(&self) -> f64 {
        MetricStatistic::n(self)
    }
    fn mean(&self) -> f64 {
        MetricStatistic::mean(self)
    }
    fn variance(&self) -> f64 {
        MetricStatistic::variance(self)
    }
}

/// Variance of the lift estimate (per-visitor variances `va`, `vb`, means,
/// arm sizes).
///
/// # Formula
/// - absolute: `vb/nb + va/na`
/// - relative (delta method): `vb/(μa²·nb) + va·μb²/(μa⁴·na)`
fn lift_variance(va: f64, ma: f64, na: f64, vb: f64, mb: f64, nb: f64, relative: bool) -> f64 {
    if relative {
        vb / (ma.powi(2) * nb) + va * mb.powi(2) / (ma.powi(4) * na)
    } else {
        vb / nb + va / na
    }
}

/// Welch–Satterthwaite degrees of freedom:
/// `(vb/nb + va/na)² / (vb²/(nb²(nb−1)) + va²/(na²(na−1)))`.
fn welch_dof(va: f64, na: f64, vb: f64, nb: f64) -> f64 {
    (vb / nb + va / na).powi(2) / (vb.powi(2) / (nb.powi(2) * (nb - 1.0)) + va.powi(2) / (na.powi(2) * (na - 1.0)))
}

fn students_t(dof: f64) -> StudentsT {
    StudentsT::new(0.0, 1.0, dof).expect("positive degrees of freedom")
}

/// The upper quantile `x` with `sf_t(x, dof) = q` (for `q < 1/2`).
///
/// statrs' `inverse_cdf` loses accuracy (and speed) at the degrees of
/// freedom of large tests, while its `sf` stays accurate up to about 1e8
/// degrees of freedom, so this solves `sf(x) = q` by Newton's method from
/// the normal quantile; the upper tail is convex, so the iterates rise
/// monotonically to the root. Beyond 1e7 degrees of freedom the
/// Cornish–Fisher expansion is exact to double precision:
///
/// # Formula
/// `x ≈ z + (z³ + z)/(4ν) + (5z⁵ + 16z³ + 3z)/(96ν²)`, `z = Φ⁻¹(1 − q)`.
fn t_upper_quantile(t: &StudentsT, q: f64) -> f64 {
    let z = std_normal().inverse_cdf(1.0 - q);
    let nu = t.freedom();
    if nu > 1e7 {
        return z + (z.powi(3) + z) / (4.0 * nu) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * nu * nu);
    }
    let mut x = z;
    for _ in 0..100 {
        let step = (t.sf(x) - q) / t.pdf(x);
        x += step;
        if step.abs() <= 1e-14 * x.abs() {
            break;
        }
    }
    x
}

/// The confidence-sequence parameter `ρ = sqrt((−2 ln α + ln(−2 ln α + 1)) / tuning)`
/// (eq. 161 of Waudby-Smith et al.).
fn rho(alpha: f64, tuning: f64) -> f64 {
    let l = -2.0 * alpha.ln();
    ((l + (l + 1.0).ln()) / tuning).sqrt()
}

/// The confidence sequence's half width over `sqrt(se²·N)` at a total
/// sample `N`: `sqrt(2(Nρ² + 1)·ln(sqrt(Nρ² + 1)/α) / (Nρ)²)`.
pub(crate) fn sequential_factor(n: f64, alpha: f64, tuning: f64) -> f64 {
    let r = rho(alpha, tuning);
    let nr2 = n * r * r + 1.0;
    (2.0 * nr2 * (nr2.sqrt() / alpha).ln() / (n * r).powi(2)).sqrt()
}

/// Compares `treatment` with `control` at level `alpha`.
///
/// The lift is `(m_t − m_c)/|u_c|` with `m` the arms' estimates and `u`
/// their plain values (equal unless CUPED adjusted the estimates), and the
/// delta method's variance takes the plain values too, as gbstats does.
///
/// # Formula
/// Fixed: `t = lift / se`, `p = 2·sf_t(|t|, dof)`, interval
/// `lift ± q_t(1 − α/2, dof)·se`; the interval excludes 0 exactly when
/// `p < α`.
///
/// Sequential, with `N = na + nb`, `s² = se²·N`:
/// half-width `s·sqrt(2(Nρ² + 1)·ln(sqrt(Nρ² + 1)/α) / (Nρ)²)`, and
/// `p = min(1, 1/e)` with the e-value
/// `e = exp(ρ²·(lift²N/se²)/(2(Nρ² + 1))) / sqrt(Nρ² + 1)`.
pub fn compare<S: ArmStatistic>(control: &S, treatment: &S, alpha: f64, inference: Inference) -> Comparison {
    let (ma, mb) = (control.mean(), treatment.mean());
    let (ua, ub) = (control.unadjusted_mean(), treatment.unadjusted_mean());
    let (va, vb) = (control.variance(), treatment.variance());
    let (na, nb) = (control.n(), treatment.n());
    let absolute_lift = mb - ma;
    let blocked = if ma == 0.0 || ua == 0.0 {
        Some(NotComputable::ControlMeanZero)
    } else if va <= 0.0 || vb <= 0.0 {
        Some(NotComputable::ZeroVariance)
    } else {
        None
    };
    if let Some(reason) = blocked {
        return Comparison {
            control_mean: ua,
            treatment_mean: ub,
            absolute_lift,
            absolute_ci: (0.0, 0.0),
            relative_lift: 0.0,
            ci: (0.0, 0.0),
            std_error: 0.0,
            p_value: 1.0,
            dof: 0.0,
            not_computable: Some(reason),
        };
    }

    let relative_lift = absolute_lift / ua.abs();
    let rel_var = lift_variance(va, ua, na, vb, ub, nb, true);
    let abs_var = lift_variance(va, ua, na, vb, ub, nb, false);
    let dof = welch_dof(va, na, vb, nb);
    let (half, abs_half, p_value) = match inference {
        Inference::Fixed => {
            let t = students_t(dof);
            let q = t_upper_quantile(&t, alpha / 2.0);
            let p = 2.0 * t.sf((relative_lift / rel_var.sqrt()).abs());
            (q * rel_var.sqrt(), q * abs_var.sqrt(), p.min(1.0))
        }
        Inference::Sequential { tuning } => {
            let n = na + nb;
            let r = rho(alpha, tuning);
            let nr2 = n * r * r + 1.0;
            let factor = sequential_factor(n, alpha, tuning);
            let st2 = relative_lift.powi(2) * n / rel_var;
            let log_e = r * r * st2 / (2.0 * nr2) - 0.5 * nr2.ln();
            let p = (-log_e).exp().min(1.0);
            ((rel_var * n).sqrt() * factor, (abs_var * n).sqrt() * factor, p)
        }
    };
    Comparison {
        control_mean: ua,
        treatment_mean: ub,
        absolute_lift,
        absolute_ci: (absolute_lift - abs_half, absolute_lift + abs_half),
        relative_lift,
        ci: (relative_lift - half, relative_lift + half),
        std_error: rel_var.sqrt(),
        p_value,
        dof,
        not_computable: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Moments;

    fn prop(n: u64, conversions: u64) -> MetricStatistic {
        MetricStatistic::Proportion(Moments::proportion(n, conversions))
    }

    #[test]
    fn interval_excludes_zero_exactly_when_significant() {
        for (c, t) in [(100, 130), (100, 120), (100, 127), (100, 128), (200, 160)] {
            let r = compare(&prop(2000, c), &prop(2000, t), 0.05, Inference::Fixed);
            let excludes = r.ci.0 > 0.0 || r.ci.1 < 0.0;
            assert_eq!(excludes, r.p_value < 0.05, "{c} vs {t}: {r:?}");
        }
    }

    #[test]
    fn zero_conversions_and_zero_control_are_not_computable() {
        let r = compare(&prop(1000, 0), &prop(1000, 5), 0.05, Inference::Fixed);
        assert_eq!(r.not_computable, Some(NotComputable::ControlMeanZero));
        assert_eq!((r.p_value, r.ci), (1.0, (0.0, 0.0)));
        let r = compare(&prop(1000, 5), &prop(1000, 0), 0.05, Inference::Fixed);
        assert_eq!(r.not_computable, Some(NotComputable::ZeroVariance));
        let r = compare(&prop(1, 1), &prop(1, 0), 0.05, Inference::Fixed);
        assert!(r.not_computable.is_some(), "a single visitor has no spread");
    }

    #[test]
    fn huge_effects_keep_an_accurate_tiny_p_value() {
        // scipy: 2 * t.sf(27.834457207376968, 1913175.7014089446)
        let r = compare(&prop(1_000_000, 10_000), &prop(1_000_000, 15_500), 0.05, Inference::Fixed);
        let want = 1.7971937232073212e-170;
        assert!((r.p_value / want - 1.0).abs() < 1e-6, "{} vs {want}", r.p_value);
    }

    #[test]
    fn t_quantiles_match_scipy_from_one_to_a_billion_degrees_of_freedom() {
        // scipy.stats.t.ppf(0.975, dof)
        for (dof, want) in [
            (1.0, 12.706204736174694),
            (2.5, 3.5746548420036817),
            (30.0, 2.0422724563012378),
            (5_997_646.673286029, 1.9599643800738076),
            (1e9, 1.959963986912325),
        ] {
            let got = t_upper_quantile(&students_t(dof), 0.025);
            assert!((got / want - 1.0).abs() < 1e-8, "dof {dof}: {got} vs {want}");
        }
    }

    #[test]
    fn sequential_interval_is_wider_than_fixed() {
        let (a, b) = (prop(5000, 200), prop(5000, 240));
        let f = compare(&a, &b, 0.05, Inference::Fixed);
        let s = compare(&a, &b, 0.05, Inference::Sequential { tuning: 5000.0 });
        assert!(s.ci.1 - s.ci.0 > f.ci.1 - f.ci.0);
        assert!(s.p_value > f.p_value);
    }
}
