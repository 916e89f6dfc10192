//! Pure statistics: sufficient statistics, Welch and sequential tests, the
//! Bayesian chance to win, CUPED, multiple-comparison correction, sample-ratio
//! checks and sample sizes.
//!
//! The conventions are those of GrowthBook's stats engine (gbstats 0.8), so
//! an analyst can reproduce every number with a public reference; the
//! committed golden vectors (tests/vectors/gen_stats.py) hold us to it.
//! One deliberate difference: p-values come from survival functions, so
//! they stay accurate where gbstats' `1 - cdf` underflows to 0.

pub mod bayes;
pub mod correction;
pub mod cuped;
pub mod heterogeneity;
pub mod moments;
pub mod power;
pub mod srm;
pub mod ttest;

pub use bayes::{bayesian, Bayesian};
pub use correction::{benjamini_hochberg, holm};
pub use cuped::{adjust, Adjusted};
pub use heterogeneity::{cochran_q, Heterogeneity};
pub use moments::{MetricStatistic, Moments, VisitorValue};
pub use power::{sample_size_mean, sample_size_proportion, sample_size_proportion_relative, sample_size_relative};
pub use srm::srm_p_value;
pub use ttest::{compare, ArmStatistic, Comparison, Inference, NotComputable};

use statrs::distribution::{ContinuousCDF, Normal};

/// The standard normal distribution.
pub fn std_normal() -> Normal {
    Normal::new(0.0, 1.0).expect("standard normal")
}

/// The `p` quantile of the standard normal, `z(p)`.
pub fn z_quantile(p: f64) -> f64 {
    std_normal().inverse_cdf(p)
}
