//! Multiple-comparison correction: across the treatments of one test
//! (Holm), and across the many comparisons of a breakdown by segment
//! (Benjamini–Hochberg).

/// Holm–Bonferroni adjusted p-values, in the input order.
///
/// # Formula
/// Sort ascending `p(1) ≤ … ≤ p(m)`; `adj(k) = max_{j ≤ k} min(1, (m − j + 1)·p(j))`.
/// It controls the family-wise error rate at alpha for any dependence and is
/// uniformly more powerful than Bonferroni.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0_f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p_values[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Benjamini–Hochberg adjusted p-values, in the input order.
///
/// # Formula
/// Sort ascending `p(1) ≤ … ≤ p(m)`; `adj(k) = min_{j ≥ k} min(1, m·p(j)/j)`.
/// It controls the false discovery rate, not the chance of any false
/// positive: a breakdown by segment makes dozens of comparisons, most of
/// them exploratory, and Holm would leave it unable to find anything.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 1.0_f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(m as f64 * p_values[i] / (rank + 1) as f64).min(1.0);
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::{benjamini_hochberg, holm};

    /// Worked by hand: sorted 0.01, 0.03, 0.04, 0.2 (m = 4) give
    /// 0.04, 0.06, 0.0533…, 0.2; the running minimum from the top makes
    /// the second 0.0533… too.
    #[test]
    fn benjamini_hochberg_by_hand() {
        let adj = benjamini_hochberg(&[0.04, 0.01, 0.2, 0.03]);
        let want = [0.04 * 4.0 / 3.0, 0.04, 0.2, 0.04 * 4.0 / 3.0];
        for (g, w) in adj.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{adj:?}");
        }
        assert_eq!(benjamini_hochberg(&[0.9, 0.8]), vec![0.9, 0.9]);
        assert!(benjamini_hochberg(&[]).is_empty());
    }

    #[test]
    fn textbook_example() {
        let adj = holm(&[0.01, 0.04, 0.03]);
        assert_eq!(adj, vec![0.03, 0.06, 0.06]);
        assert_eq!(holm(&[0.2]), vec![0.2]);
        assert!(holm(&[]).is_empty());
    }
}
