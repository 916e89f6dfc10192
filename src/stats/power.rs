//! How many visitors per variant a test needs to detect its minimum
//! detectable effect (MDE) with the planned power.

use super::z_quantile;

/// Per-variant sample size for a proportion, with `a` already divided by
/// the number of treatments.
///
/// # Formula
/// `p2 = p1(1 + mde)`, `p̄ = (p1 + p2)/2`,
/// `n = (z(1 − a/2)·sqrt(2p̄(1 − p̄)) + z(power)·sqrt(p1(1 − p1) + p2(1 − p2)))² / (p2 − p1)²`.
/// `None` when no finite answer exists (p1 of 0, or p2 outside (0, 1)).
pub fn sample_size_proportion(p1: f64, mde: f64, alpha: f64, power: f64) -> Option<f64> {
    let p2 = p1 * (1.0 + mde);
    if !(p1 > 0.0 && p1 < 1.0 && p2 > 0.0 && p2 < 1.0) || p1 == p2 {
        return None;
    }
    let pbar = (p1 + p2) / 2.0;
    let a = z_quantile(1.0 - alpha / 2.0) * (2.0 * pbar * (1.0 - pbar)).sqrt();
    let b = z_quantile(power) * (p1 * (1.0 - p1) + p2 * (1.0 - p2)).sqrt();
    Some((a + b).powi(2) / (p2 - p1).powi(2))
}

/// Per-variant sample size for a mean (or ratio) with per-visitor standard
/// deviation `sigma`, baseline `mu` and relative MDE.
///
/// # Formula
/// `δ = mde·|μ|`, `n = 2σ²(z(1 − a/2) + z(power))² / δ²`.
pub fn sample_size_mean(mu: f64, sigma: f64, mde: f64, alpha: f64, power: f64) -> Option<f64> {
    let delta = mde * mu.abs();
    if !(delta > 0.0 && sigma > 0.0 && delta.is_finite() && sigma.is_finite()) {
        return None;
    }
    let z = z_quantile(1.0 - alpha / 2.0) + z_quantile(power);
    Some(2.0 * sigma * sigma * z * z / (delta * delta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_design_example_needs_tens_of_thousands() {
        // Baseline 4%, MDE 10%, alpha 0.05, power 0.8: about 39,500 per variant.
        let n = sample_size_proportion(0.04, 0.10, 0.05, 0.8).unwrap();
        assert!((39_000.0..40_000.0).contains(&n), "{n}");
        assert!(sample_size_proportion(0.0, 0.1, 0.05, 0.8).is_none());
        assert!(sample_size_proportion(0.95, 0.1, 0.05, 0.8).is_none());
    }
}
