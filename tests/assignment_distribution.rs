//! Statistical properties of assignment over many generated visitors: each
//! variant's share matches its weight, and tests with different seeds split
//! visitors independently (so one test does not bias another).

use offerlab::assignment::{bucket_ranges, choose_variant, hash, HashVersion};
use statrs::distribution::{ChiSquared, ContinuousCDF};

const VISITORS: usize = 100_000;

fn visitor(i: usize) -> String {
    format!("visitor-{i:08x}")
}

fn assign(seed: &str, value: &str, weights: &[f64]) -> usize {
    let n = hash(seed, value, HashVersion::V2);
    choose_variant(n, &bucket_ranges(weights.len(), 1.0, Some(weights))).expect("full coverage")
}

/// Pearson chi-square p-value of observed counts against expected counts.
fn chi_square_p(observed: &[f64], expected: &[f64], df: f64) -> f64 {
    let stat: f64 = observed.iter().zip(expected).map(|(o, e)| (o - e).powi(2) / e).sum();
    ChiSquared::new(df).unwrap().sf(stat)
}

#[test]
fn variant_shares_match_weights() {
    for weights in [vec![0.5, 0.5], vec![0.2, 0.3, 0.5], vec![0.1, 0.9]] {
        let mut counts = vec![0.0; weights.len()];
        for i in 0..VISITORS {
            counts[assign("share-test", &visitor(i), &weights)] += 1.0;
        }
        let expected: Vec<f64> = weights.iter().map(|w| w * VISITORS as f64).collect();
        let p = chi_square_p(&counts, &expected, (weights.len() - 1) as f64);
        assert!(p > 0.001, "weights {weights:?}: counts {counts:?}, p = {p}");
    }
}

#[test]
fn tests_with_different_seeds_are_independent() {
    let weights = [0.5, 0.5];
    let mut joint = [[0.0f64; 2]; 2];
    for i in 0..VISITORS {
        let v = visitor(i);
        joint[assign("cart-protection-copy", &v, &weights)][assign("checkout-addon-price-display", &v, &weights)] +=
            1.0;
    }
    let n = VISITORS as f64;
    let rows = [joint[0][0] + joint[0][1], joint[1][0] + joint[1][1]];
    let cols = [joint[0][0] + joint[1][0], joint[0][1] + joint[1][1]];
    let observed: Vec<f64> = joint.iter().flatten().copied().collect();
    let expected: Vec<f64> = (0..4).map(|k| rows[k / 2] * cols[k % 2] / n).collect();
    let p = chi_square_p(&observed, &expected, 1.0);
    assert!(p > 0.001, "joint table {joint:?}, p = {p}");
}
