//! Capping (winsorising) heavy-tailed metrics: each visitor's value enters
//! the sums as `min(x, cap)`, so one wholesale order cannot flip a test.
//!
//! The stores keep raw sums; a capped metric's rows are re-aggregated from
//! the stored per-visitor tallies when a report is built. That keeps caps
//! exact whatever order events arrive in (a late event can lift a visitor
//! above the cap, or move the percentile itself), and a cap edited in
//! metrics.toml applies to every visitor already counted. The cost is one
//! pass over the test's visitors per report (BENCHMARKS.md, capping).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use crate::aggregates::AggregateRow;
use crate::attribution::{metric_value, Tallies};
use crate::experiment::metric::{Cap, Metric};
use crate::experiment::{Catalog, Experiment};
use crate::ids::VariantIndex;
use crate::stats::{Moments, VisitorValue};

/// One exposed visitor of a test's current phase, as a store hands it to
/// the report.
pub struct VisitorTallies<'a> {
    pub variant: VariantIndex,
    /// The first exposure.
    pub ts: DateTime<Utc>,
    pub tallies: &'a Tallies,
}

/// What a cap did to one metric, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct CapApplied {
    pub metric: String,
    pub cap: Cap,
    /// The value visitors were capped at; `None` when a percentile had no
    /// values to come from (no visitor, or only zeros with `ignore_zeros`).
    pub value: Option<f64>,
    /// Visitors whose value was above the cap.
    pub capped_visitors: u64,
    pub visitors: u64,
}

/// The `p` quantile of `sorted` (ascending), interpolated linearly between
/// order statistics as SQL's `PERCENTILE_CONT` and numpy's default do.
///
/// # Formula
/// `h = (n − 1)·p`, `q = x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋ + 1] − x[⌊h⌋])`.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let h = last as f64 * p;
    let lo = (h.floor() as usize).min(last);
    let hi = (lo + 1).min(last);
    let (a, b, t) = (sorted[lo], sorted[hi], h - lo as f64);
    // numpy's form, exact at both ends of the interval.
    Some(if t >= 0.5 { b - (b - a) * (1.0 - t) } else { a + (b - a) * t })
}

/// The value `cap` caps at, given every visitor's value `xs`.
pub fn cap_value(cap: Cap, xs: impl Iterator<Item = f64>) -> Option<f64> {
    match cap {
        Cap::Absolute(a) => Some(a),
        Cap::Percentile { percentile: p, ignore_zeros } => {
            let mut values: Vec<f64> = xs.filter(|x| !(ignore_zeros && *x == 0.0)).collect();
            values.sort_unstable_by(f64::total_cmp);
            percentile(&values, p)
        }
    }
}

/// Sums of capped values per (variant, date): `x` and the CUPED covariate
/// are capped alike (the pre-period is the same metric); a ratio's
/// denominator is not.
pub fn capped_moments(
    cap: Cap,
    visitors: &[(VariantIndex, NaiveDate, VisitorValue)],
) -> (Option<f64>, u64, BTreeMap<(VariantIndex, NaiveDate), Moments>) {
    let value = cap_value(cap, visitors.iter().map(|(_, _, v)| v.x));
    let limit = value.unwrap_or(f64::INFINITY);
    let mut sums: BTreeMap<(VariantIndex, NaiveDate), Moments> = BTreeMap::new();
    let mut capped = 0;
    for (variant, date, v) in visitors {
        capped += u64::from(v.x > limit);
        let v = VisitorValue { x: v.x.min(limit), y: v.y, pre: v.pre.min(limit) };
        sums.entry((*variant, *date)).or_default().add_visitor(v);
    }
    (value, capped, sums)
}

/// The test's capped metrics.
pub fn capped_metrics<'c>(exp: &'c Experiment, catalog: &'c Catalog) -> Vec<(&'c str, Cap)> {
    exp.all_metrics().into_iter().filter_map(|m| Some((m, catalog.metric(m)?.cap?))).collect()
}

/// Collects, visitor by visitor, what [`apply`] needs.
pub struct Collector<'c> {
    exp: &'c Experiment,
    metrics: Vec<(&'c Metric, Cap)>,
    /// Per capped metric: every visitor's (variant, day, value).
    values: Vec<Vec<(VariantIndex, NaiveDate, VisitorValue)>>,
}

impl<'c> Collector<'c> {
    /// Collects for every capped metric of the test.
    pub fn new(exp: &'c Experiment, catalog: &'c Catalog) -> Self {
        Self::of(exp, catalog, capped_metrics(exp, catalog))
    }

    /// Collects only for the capped metrics the verdict reads (the primary
    /// metric and guardrails): what a list of verdicts needs, without a
    /// pass over the visitors when only a secondary metric is capped.
    pub fn for_verdict(exp: &'c Experiment, catalog: &'c Catalog) -> Self {
        let judged = |m: &str| m == exp.primary_metric || exp.guardrail_metrics.iter().any(|g| g == m);
        Self::of(exp, catalog, capped_metrics(exp, catalog).into_iter().filter(|(m, _)| judged(m)).collect())
    }

    fn of(exp: &'c Experiment, catalog: &'c Catalog, metrics: Vec<(&'c str, Cap)>) -> Self {
        let metrics: Vec<(&Metric, Cap)> =
            metrics.into_iter().filter_map(|(name, cap)| Some((catalog.metric(name)?, cap))).collect();
        let values = vec![Vec::new(); metrics.len()];
        Collector { exp, metrics, values }
    }

    /// Whether the test has a capped metric (else nothing is collected).
    pub fn needed(&self) -> bool {
        !self.metrics.is_empty()
    }

    pub fn visit(&mut self, v: VisitorTallies<'_>) {
        let day = self.exp.local_day(v.ts);
        for ((metric, _), values) in self.metrics.iter().zip(&mut self.values) {
            values.push((v.variant, day, metric_value(metric, v.tallies)));
        }
    }

    /// Replaces each capped metric's rows in `rows` with sums of capped
    /// values, and says what each cap did.
    pub fn apply(self, rows: &mut Vec<AggregateRow>) -> Vec<CapApplied> {
        let mut applied = Vec::new();
        for ((metric, cap), values) in self.metrics.into_iter().zip(self.values) {
            let name = metric.name.as_str();
            rows.retain(|r| r.metric != name);
            let (value, capped_visitors, sums) = capped_moments(cap, &values);
            for ((variant, date), moments) in sums {
                let Some(v) = self.exp.variant_at(variant) else { continue };
                rows.push(AggregateRow { variant: v.key.clone(), date, metric: name.to_owned(), moments });
            }
            applied.push(CapApplied {
                metric: name.to_owned(),
                cap,
                value,
                capped_visitors,
                visitors: values.len() as u64,
            });
        }
        applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_order_statistics() {
        let xs = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert_eq!(percentile(&xs, 0.5), Some(3.0));
        assert_eq!(percentile(&xs, 0.875), Some(7.0)); // h = 3.5: halfway from 4 to 10
        assert_eq!(percentile(&xs, 0.0), Some(1.0));
        assert_eq!(percentile(&xs, 1.0), Some(10.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn a_percentile_cap_can_ignore_zeros() {
        let xs = [0.0, 0.0, 0.0, 10.0, 20.0, 30.0];
        let cap = |ignore_zeros| Cap::Percentile { percentile: 0.5, ignore_zeros };
        assert_eq!(cap_value(cap(false), xs.into_iter()), Some(5.0));
        assert_eq!(cap_value(cap(true), xs.into_iter()), Some(20.0));
        assert_eq!(cap_value(cap(true), [0.0, 0.0].into_iter()), None, "nothing to take a percentile of");
    }
}
