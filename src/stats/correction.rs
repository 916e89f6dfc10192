//! Multiple-comparison correction across the treatments of one test.

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

#[cfg(test)]
mod tests {
    use super::holm;

    #[test]
    fn textbook_example() {
        let adj = holm(&[0.01, 0.04, 0.03]);
        assert_eq!(adj, vec![0.03, 0.06, 0.06]);
        assert_eq!(holm(&[0.2]), vec![0.2]);
        assert!(holm(&[]).is_empty());
    }
}
