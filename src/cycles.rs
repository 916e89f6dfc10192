//! Business cycles: the windows a winner must hold over.
//!
//! Weekly seasonality and promotions create false winners, so a lift only
//! counts once it held in each of the last two complete cycles. Cycle `k`
//! covers days `[start + k·L, start + (k+1)·L)`; it is complete once it has
//! ended. A visitor belongs to the cycle of their first exposure.

use chrono::{Duration, NaiveDate};
use serde::Serialize;
use statrs::distribution::ContinuousCDF;

use crate::stats::std_normal;

/// One business cycle's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cycle {
    pub index: u32,
    /// First day.
    pub start: NaiveDate,
    /// Last day (inclusive).
    pub end: NaiveDate,
    /// The cycle has ended as of the report's day.
    pub complete: bool,
}

/// Every cycle that has begun by `today` (a day counts once it has begun),
/// each marked complete when its last day is before `today`.
pub fn cycles(start: NaiveDate, length_days: u32, today: NaiveDate) -> Vec<Cycle> {
    let length = i64::from(length_days.max(1));
    let elapsed = (today - start).num_days();
    if elapsed < 0 {
        return Vec::new();
    }
    (0..=elapsed / length)
        .map(|k| {
            let first = start + Duration::days(k * length);
            let last = first + Duration::days(length - 1);
            Cycle { index: k as u32, start: first, end: last, complete: last < today }
        })
        .collect()
}

/// The cycle of a day index, if the day is on or after the start.
pub fn cycle_of_day(day: i64, length_days: u32) -> Option<u32> {
    (day >= 0).then(|| (day / i64::from(length_days.max(1))) as u32)
}

/// Two-sided p-value that two independent estimates differ.
///
/// # Formula
/// `z = (l1 − l2) / sqrt(se1² + se2²)`, `p = 2·sf_N(|z|)`.
pub fn consistency_p_value(lift1: f64, se1: f64, lift2: f64, se2: f64) -> f64 {
    let se = (se1 * se1 + se2 * se2).sqrt();
    if se <= 0.0 || !se.is_finite() {
        return 1.0;
    }
    (2.0 * std_normal().sf(((lift1 - lift2) / se).abs())).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn cycles_complete_when_they_have_ended() {
        let c = cycles(d("2026-11-02"), 7, d("2026-11-16"));
        assert_eq!(c.len(), 3);
        assert_eq!((c[0].start, c[0].end, c[0].complete), (d("2026-11-02"), d("2026-11-08"), true));
        assert!(c[1].complete, "the second week ended on the 15th");
        assert!(!c[2].complete, "the third week began today");
        assert!(cycles(d("2026-11-02"), 7, d("2026-11-01")).is_empty());
        assert_eq!(cycles(d("2026-11-02"), 7, d("2026-11-08")).iter().filter(|c| c.complete).count(), 0);
    }

    #[test]
    fn days_map_to_cycles() {
        assert_eq!(cycle_of_day(0, 7), Some(0));
        assert_eq!(cycle_of_day(6, 7), Some(0));
        assert_eq!(cycle_of_day(7, 7), Some(1));
        assert_eq!(cycle_of_day(-1, 7), None);
    }
}
