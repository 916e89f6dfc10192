//! Sample ratio mismatch: do the exposed counts fit the configured weights?
//! A mismatch means assignment or tracking is broken, and no lift can be
//! trusted.

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Below this many visitors in some variant, a mismatch is not judged.
pub const SRM_MIN_PER_VARIANT: u64 = 8;
/// A p-value below this flags a mismatch.
pub const SRM_THRESHOLD: f64 = 0.001;

/// Pearson chi-square p-value of `counts` against `weights` (gbstats'
/// `check_srm`): 1 when there are no visitors.
///
/// # Formula
/// `e_i = w_i/Σw · Σo`, `χ² = Σ (o_i − e_i)²/e_i` over variants with
/// `w_i > 0`, `p = sf_χ²(χ², k − 1)`.
pub fn srm_p_value(counts: &[u64], weights: &[f64]) -> f64 {
    let total: f64 = counts.iter().map(|&c| c as f64).sum();
    if total == 0.0 || counts.len() < 2 {
        return 1.0;
    }
    let total_weight: f64 = weights.iter().sum();
    let stat: f64 = counts
        .iter()
        .zip(weights)
        .filter(|(_, &w)| w > 0.0)
        .map(|(&o, &w)| {
            let e = w / total_weight * total;
            (o as f64 - e).powi(2) / e
        })
        .sum();
    ChiSquared::new((counts.len() - 1) as f64).expect("k ≥ 2").sf(stat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_55_45_split_on_50_50_is_flagged() {
        assert!(srm_p_value(&[5500, 4500], &[0.5, 0.5]) < SRM_THRESHOLD);
        assert!(srm_p_value(&[5020, 4980], &[0.5, 0.5]) > SRM_THRESHOLD);
        assert_eq!(srm_p_value(&[0, 0], &[0.5, 0.5]), 1.0);
    }
}
