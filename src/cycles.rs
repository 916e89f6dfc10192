//! Business cycles: the windows a winner must hold over.
//!
//! Weekly seasonality and promotions create false winners, and a new offer
//! can win only while it is new (a novelty effect), so a lift only counts
//! once two cycles are complete, the last two agree, and the lift held in
//! the later half of the complete cycles ([`hold`]). Cycle `k` covers days
//! `[start + k·L, start + (k+1)·L)`; it is complete once it has ended. A
//! visitor belongs to the cycle of their first exposure.

use chrono::{Duration, NaiveDate};
use statrs::distribution::ContinuousCDF;

use crate::stats::std_normal;

/// One business cycle's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The complete cycles a winner must have held in: the later half of the
/// `complete` cycles, `⌊m/2⌋` of `m` (at least the last one). A novelty
/// effect fades after the first cycles, so the later half is where a
/// lasting lift shows; it grows as the test runs, so cycles too small to
/// decide today become large enough later.
pub fn later_half(complete: &[Cycle]) -> &[Cycle] {
    let m = complete.len();
    &complete[m - (m / 2).max(1).min(m)..]
}

/// Whether a significant lift held in the later half of the cycles, and
/// whether those cycles are large enough to tell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hold {
    /// `|L|/2`: the later cycles' lift, signed the winning way, must reach it.
    pub threshold: f64,
    /// `|L| / (2·z(power))`: the later cycles' standard error at most this.
    pub max_std_error: f64,
    /// The later cycles' standard error is at most `max_std_error`.
    pub large_enough: bool,
    /// The later cycles' lift reached `threshold` the winning way.
    pub held: bool,
}

/// The novelty rule: a lift `overall` (the whole test's estimate) held when
/// the later cycles' estimate `later` is closer to it than to zero,
/// `sign(L)·L_later ≥ |L|/2`.
///
/// The threshold lies halfway between "the lift lasted" (`L_later ≈ L`)
/// and "it vanished" (`L_later ≈ 0`), so the rule errs either way with
/// probability `Φ(−|L| / (2·se_later))`. The cycles are large enough when
/// that error is at most `1 − power`, the test's planned power:
/// `se_later ≤ |L| / (2·z(power))`. A lift that lasted then passes at least
/// as often as the test was planned to detect it; one that vanished passes
/// at most `1 − power` of the time on this rule alone, and far less in all,
/// since it must also be significant overall and survive the consistency
/// test of the last two cycles ([`consistency_p_value`]).
pub fn hold(overall: f64, later: f64, later_std_error: f64, power: f64) -> Hold {
    let threshold = overall.abs() / 2.0;
    let max_std_error = threshold / z_power(power);
    Hold {
        threshold,
        max_std_error,
        large_enough: later_std_error.is_finite() && later_std_error <= max_std_error,
        held: later * overall.signum() >= threshold,
    }
}

fn z_power(power: f64) -> f64 {
    std_normal().inverse_cdf(power).max(f64::EPSILON)
}

/// Complete cycles the test needs for its later half to be large enough,
/// at the traffic seen so far: an estimate `se` from `cycles_seen` cycles'
/// worth of visitors shrinks as `1/sqrt(cycles)`, so the later half needs
/// `w = ⌈cycles_seen·(se/max_se)²⌉` cycles and the test `2w`. `None` when
/// no size would do (no lift, or no spread measured).
pub fn cycles_needed(std_error: f64, cycles_seen: f64, max_std_error: f64) -> Option<u32> {
    if !(std_error.is_finite() && max_std_error > 0.0 && cycles_seen > 0.0) {
        return None;
    }
    let half = (cycles_seen * (std_error / max_std_error).powi(2)).ceil().max(1.0);
    (half <= f64::from(u32::MAX / 2)).then(|| 2 * half as u32)
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
    fn the_later_half_has_at_least_the_last_cycle() {
        let all = cycles(d("2026-11-02"), 7, d("2026-12-14"));
        let complete: Vec<Cycle> = all.into_iter().filter(|c| c.complete).collect();
        let idx = |m: usize| later_half(&complete[..m]).iter().map(|c| c.index).collect::<Vec<_>>();
        assert_eq!(idx(1), [0]);
        assert_eq!(idx(2), [1]);
        assert_eq!(idx(3), [2]);
        assert_eq!(idx(4), [2, 3]);
        assert_eq!(idx(5), [3, 4]);
        assert_eq!(idx(6), [3, 4, 5]);
        assert!(later_half(&[]).is_empty());
    }

    #[test]
    fn a_lift_holds_when_the_later_cycles_are_closer_to_it_than_to_zero() {
        let z = std_normal().inverse_cdf(0.8);
        let h = hold(0.10, 0.051, 0.02, 0.8);
        assert_eq!(h.threshold, 0.05);
        assert!((h.max_std_error - 0.05 / z).abs() < 1e-15);
        assert!(h.held && h.large_enough);
        assert!(!hold(0.10, 0.049, 0.02, 0.8).held);
        // A control that wins: the lift is negative, and must stay so.
        assert!(hold(-0.10, -0.06, 0.02, 0.8).held);
        assert!(!hold(-0.10, 0.06, 0.02, 0.8).held);
        // Too small: a vanished lift would pass more than 1 − power of the time.
        assert!(!hold(0.10, 0.10, 0.05 / z + 1e-9, 0.8).large_enough);
        assert!(!hold(0.10, 0.10, f64::NAN, 0.8).large_enough);
    }

    #[test]
    fn cycles_needed_scale_with_the_square_of_the_standard_error() {
        // One cycle gives se 0.06; 0.03 needs four times the visitors: a
        // later half of 4 cycles, so 8 in all.
        assert_eq!(cycles_needed(0.06, 1.0, 0.03), Some(8));
        assert_eq!(cycles_needed(0.02, 1.0, 0.03), Some(2));
        assert_eq!(cycles_needed(0.06, 2.0, 0.03), Some(16));
        assert_eq!(cycles_needed(0.06, 1.0, 0.0), None);
        assert_eq!(cycles_needed(f64::INFINITY, 1.0, 0.03), None);
    }

    #[test]
    fn days_map_to_cycles() {
        assert_eq!(cycle_of_day(0, 7), Some(0));
        assert_eq!(cycle_of_day(6, 7), Some(0));
        assert_eq!(cycle_of_day(7, 7), Some(1));
        assert_eq!(cycle_of_day(-1, 7), None);
    }
}
