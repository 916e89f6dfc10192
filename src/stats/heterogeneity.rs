//! Heterogeneity of one lift across the values of a segment: whether the
//! effect differs by device or customer type more than chance would make
//! it, as a meta-analysis asks of its studies.

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Cochran's Q of a set of estimates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heterogeneity {
    pub q: f64,
    /// Estimates used − 1.
    pub dof: u32,
    pub p_value: f64,
}

/// Cochran's Q over `(estimate, std_error)` pairs, with inverse-variance
/// weights; `None` with fewer than two estimates or a standard error that
/// is not positive and finite.
///
/// # Formula
/// `w_i = 1/se_i²`, `θ̄ = Σ w_i θ_i / Σ w_i`, `Q = Σ w_i (θ_i − θ̄)²`;
/// under no heterogeneity `Q ~ χ²(k − 1)`, so `p = sf_χ²(Q, k − 1)`.
pub fn cochran_q(estimates: &[(f64, f64)]) -> Option<Heterogeneity> {
    if estimates.len() < 2 || estimates.iter().any(|&(t, se)| !(t.is_finite() && se.is_finite() && se > 0.0)) {
        return None;
    }
    let w: Vec<f64> = estimates.iter().map(|&(_, se)| 1.0 / (se * se)).collect();
    let total: f64 = w.iter().sum();
    let mean = estimates.iter().zip(&w).map(|(&(t, _), w)| w * t).sum::<f64>() / total;
    let q = estimates.iter().zip(&w).map(|(&(t, _), w)| w * (t - mean).powi(2)).sum::<f64>();
    let dof = estimates.len() - 1;
    let p_value = ChiSquared::new(dof as f64).expect("dof ≥ 1").sf(q);
    Some(Heterogeneity { q, dof: dof as u32, p_value })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worked by hand: lifts +0.2 and −0.2 with standard errors 0.1 and
    /// 0.1 weigh 100 each, pool to 0, and give Q = 100·0.04·2 = 8 on 1
    /// degree of freedom: p = P(χ²₁ > 8) = erfc(2) = 0.004677734981047266.
    #[test]
    fn two_opposite_lifts_by_hand() {
        let h = cochran_q(&[(0.2, 0.1), (-0.2, 0.1)]).unwrap();
        assert!((h.q - 8.0).abs() < 1e-12, "{h:?}");
        assert_eq!(h.dof, 1);
        assert!((h.p_value - 0.004_677_734_981_047_266).abs() < 1e-12, "{h:?}");
    }

    /// Three values, unequal weights: se 0.1, 0.2, 0.05 weigh 100, 25, 400;
    /// θ̄ = (100·0.1 + 25·0.3 + 400·0)/525 = 17.5/525 = 1/30;
    /// Q = 100·(1/15)² + 25·(4/15)² + 400·(1/30)² = 4/9 + 16/9 + 4/9 = 8/3.
    #[test]
    fn unequal_weights_by_hand() {
        let h = cochran_q(&[(0.1, 0.1), (0.3, 0.2), (0.0, 0.05)]).unwrap();
        assert!((h.q - 8.0 / 3.0).abs() < 1e-12, "{h:?}");
        assert_eq!(h.dof, 2);
        // χ²₂'s survival function is exp(−Q/2).
        assert!((h.p_value - (-4.0_f64 / 3.0).exp()).abs() < 1e-12, "{h:?}");
    }

    #[test]
    fn too_few_or_unusable_estimates_give_nothing() {
        assert!(cochran_q(&[(0.1, 0.1)]).is_none());
        assert!(cochran_q(&[(0.1, 0.1), (0.2, 0.0)]).is_none());
        assert!(cochran_q(&[(0.1, 0.1), (f64::NAN, 0.1)]).is_none());
    }
}
