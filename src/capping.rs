//! Capping (winsorising) heavy-tailed metrics: each visitor's value enters
//! the sums as `min(x, cap)`, so one wholesale order cannot flip a test.
//!
//! The stores keep raw sums, and beside them, for each capped metric, an
//! index of its visitors ordered by value ([`crate::store::rules::CappedEntry`]).
//! A report reads a percentile cap from the top of that index and corrects
//! the raw sums by the excess of the visitors above the cap:
//! `Σ min(x, c) = Σ x − Σ_{x > c} (x − c)`, and likewise for `x²`, `x·y`
//! and the CUPED covariate's sums. That keeps caps exact whatever order
//! events arrive in (a late event can lift a visitor above the cap, or move
//! the percentile itself), a cap edited in metrics.toml applies to every
//! visitor already counted, and a report reads only the visitors above the
//! cap, not every visitor. Where the index does not cover the phase (a cap
//! added to a metric that already had visitors, until `offerlab rebuild`),
//! the report re-aggregates from every visitor's tallies instead
//! ([`Collector`]), with the same result.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use crate::aggregates::AggregateRow;
use crate::attribution::{metric_value, Tallies};
use crate::experiment::metric::{Cap, Metric};
use crate::experiment::{Catalog, Experiment};
use crate::ids::{VariantIndex, VisitorId};
use crate::stats::{Moments, VisitorValue};
use crate::store::rules::{CappedCounts, CappedEntry};

/// One exposed visitor of a test's current phase, as a store hands it to
/// the report.
pub struct VisitorTallies<'a> {
    pub variant: VariantIndex,
    /// The first exposure.
    pub ts: DateTime<Utc>,
    pub tallies: &'a Tallies,
    /// The segment attributes the first exposure kept, when the pass asked
    /// for them (empty otherwise).
    pub attributes: &'a BTreeMap<String, String>,
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

/// What a cap read from its value index cut: the metric, the value it
/// capped at, and the visitors above it on either side (some twice).
#[derive(Debug, Clone, PartialEq)]
pub struct Cut {
    pub metric: String,
    pub limit: f64,
    pub entries: Vec<(VisitorId, CappedEntry)>,
}

/// Where the `p` quantile of `len` sorted values lies: between the order
/// statistics `lo` and `hi` (0-based, ascending), a fraction `t` of the way.
///
/// # Formula
/// `h = (len − 1)·p`, `lo = ⌊h⌋`, `hi = lo + 1` (both at most `len − 1`),
/// `t = h − lo`.
fn quantile_at(len: usize, p: f64) -> Option<(usize, usize, f64)> {
    let last = len.checked_sub(1)?;
    let h = last as f64 * p;
    let lo = (h.floor() as usize).min(last);
    Some((lo, (lo + 1).min(last), h - lo as f64))
}

/// `a + t·(b − a)` in numpy's form, exact at both ends of the interval.
fn interpolate(a: f64, b: f64, t: f64) -> f64 {
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

/// The `p` quantile of `sorted` (ascending), interpolated linearly between
/// order statistics as SQL's `PERCENTILE_CONT` and numpy's default do.
///
/// # Formula
/// `h = (n − 1)·p`, `q = x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋ + 1] − x[⌊h⌋])`.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let (lo, hi, t) = quantile_at(sorted.len(), p)?;
    Some(interpolate(sorted[lo], sorted[hi], t))
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

/// An order statistic a percentile cap needs, on the value side of its
/// metric's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    /// One of the zeros, which the index leaves out.
    Zero,
    /// The entry this many places below the top.
    FromTop(usize),
}

/// Where a percentile lies in a phase's values: between two order
/// statistics, a fraction `t` of the way from `lo` to `hi`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantile {
    pub lo: Rank,
    pub hi: Rank,
    pub t: f64,
}

/// The index held fewer entries than its counts say (it is behind its
/// rows): the report re-aggregates from the tallies instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortIndex;

impl Quantile {
    /// The `p` quantile of a phase of `n` visitors whose index counts
    /// `counts`, over every value or (`ignore_zeros`) the non-zero ones;
    /// `None` when there is no value to take it of.
    ///
    /// In descending order the values are the positive entries, then the
    /// zeros, then the negative entries, so the ascending order statistic
    /// `r` of `m` values is `d = m − 1 − r` places below the top: the
    /// entry `d` when `d` < positives, a zero while `d` < positives +
    /// zeros, else the entry `d − zeros`.
    pub fn of(p: f64, ignore_zeros: bool, n: u64, counts: CappedCounts) -> Option<Quantile> {
        let zeros = if ignore_zeros { 0 } else { n.saturating_sub(counts.nonzero()) as usize };
        let (positive, m) = (counts.positive as usize, counts.nonzero() as usize + zeros);
        let rank = |r: usize| match m - 1 - r {
            d if d < positive => Rank::FromTop(d),
            d if d < positive + zeros => Rank::Zero,
            d => Rank::FromTop(d - zeros),
        };
        let (lo, hi, t) = quantile_at(m, p)?;
        Some(Quantile { lo: rank(lo), hi: rank(hi), t })
    }

    /// The entries whose values [`Quantile::value`] needs: `take` of them,
    /// from `skip` places below the top (none when both are zeros).
    pub fn reads(&self) -> Option<(usize, usize)> {
        let places = [self.hi, self.lo].map(|r| match r {
            Rank::FromTop(d) => Some(d),
            Rank::Zero => None,
        });
        let first = places.iter().flatten().min()?;
        let last = places.iter().flatten().max()?;
        Some((*first, last - first + 1))
    }

    /// The quantile, from the values read as [`Quantile::reads`] said.
    pub fn value(&self, read: &[f64]) -> Result<f64, ShortIndex> {
        let skip = self.reads().map_or(0, |(skip, _)| skip);
        let at = |r: Rank| match r {
            Rank::Zero => Ok(0.0),
            Rank::FromTop(d) => read.get(d - skip).copied().ok_or(ShortIndex),
        };
        Ok(interpolate(at(self.lo)?, at(self.hi)?, self.t))
    }
}

/// Where the floor of a percentile cap's value index can go
/// ([`crate::store::CappedCounts::floor`]), as places below the top of its
/// value side. The cap reads down to `need − 1`; the floor keeps at least
/// twice that above it, so the index answers while the phase's visitors
/// double, and is raised again only once the index holds twice what the
/// floor keeps, so each raise drops at least half of it (less where a tie
/// runs past the window the floor is looked for in, and the floor goes
/// below the whole tie: [`FloorRanks::past_tie`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloorRanks {
    /// The new floor must be below the value this far down.
    pub guard: usize,
    /// The new floor is the first value this far down or further that is
    /// below the one `guard` places down.
    pub keep: usize,
    /// A raise is worth its walk only when an entry is this far down; the
    /// floor is looked for no further, unless one value runs from `keep`
    /// to here ([`FloorRanks::past_tie`]).
    pub probe: usize,
}

/// How far past its window a floor is looked for when one value fills the
/// window, in windows: a tie as long as eight of them (a test whose every
/// visitor bought the same few items) still lets the floor rise, and the
/// walk stays bounded.
const TIE_WINDOWS: usize = 8;

impl FloorRanks {
    /// The ranks for the `p` quantile of a phase whose index counts
    /// `counts`; `None` when the quantile lies among the zeros or the
    /// negative values, where no floor of 0 or more keeps what it reads.
    ///
    /// # Formula
    /// `need = d + 1` for the deeper order statistic `d` places below the
    /// top; `guard = 2·need + 8`, `keep = 3·need + 16`, `probe = 2·keep`.
    pub fn of(p: f64, ignore_zeros: bool, counts: CappedCounts) -> Option<FloorRanks> {
        let q = Quantile::of(p, ignore_zeros, counts.covered, counts)?;
        let (Rank::FromTop(lo), Rank::FromTop(hi)) = (q.lo, q.hi) else { return None };
        let need = lo.max(hi) + 1;
        if need as u64 > counts.positive {
            return None;
        }
        let keep = 3 * need + 16;
        Some(FloorRanks { guard: 2 * need + 8, keep, probe: 2 * keep })
    }

    /// The values to read for [`FloorRanks::floor`]: `take` of them from
    /// `skip` places below the top.
    pub fn reads(&self) -> (usize, usize) {
        (self.guard, self.probe - self.guard + 1)
    }

    /// The floor, from the values read as [`FloorRanks::reads`] said: the
    /// first value from `keep` places down that is strictly below the one
    /// `guard` places down (so a run of equal values, which whole-cent
    /// prices and repeat orders make common, never leaves fewer than
    /// `guard` above the floor), if one is above 0.
    pub fn floor(&self, read: &[f64]) -> Option<f64> {
        FloorRanks::below_tie(*read.first()?, read.get(self.keep - self.guard..)?)
    }

    /// Where [`FloorRanks::floor`] found nothing because the value `guard`
    /// places down runs through the whole window `read` (values all equal,
    /// as when every visitor's revenue is a few orders of one price), the
    /// values to read next, `take` of them from `skip` places below the top;
    /// `None` where the window holds a lower value.
    pub fn past_tie(&self, read: &[f64]) -> Option<(usize, usize)> {
        let (skip, take) = self.reads();
        (read.len() == take && read.first() == read.last()).then_some((skip + take, TIE_WINDOWS * take))
    }

    /// The first of `more` below `top`, if it is above 0: the floor from
    /// the values read as [`FloorRanks::past_tie`] said, which keeps the
    /// whole tie, and so at least `guard` values, above it; and the rule
    /// [`FloorRanks::floor`] applies within its window.
    pub fn below_tie(top: f64, more: &[f64]) -> Option<f64> {
        more.iter().copied().find(|x| *x < top).filter(|f| *f > 0.0)
    }
}

/// What capping at `limit` takes from each row: `entries` must hold every
/// visitor whose value or covariate is above `limit` (in any order, once
/// or twice: a visitor is counted once). Each row's change is
/// `capped − raw` for its visitors, so adding it to the raw sums gives the
/// capped ones; also the number of visitors whose value was above.
pub fn excess<'a>(
    limit: f64,
    entries: impl Iterator<Item = &'a (VisitorId, CappedEntry)>,
) -> (u64, BTreeMap<(VariantIndex, NaiveDate), Moments>) {
    let mut seen = std::collections::HashSet::new();
    let mut rows: BTreeMap<(VariantIndex, NaiveDate), Moments> = BTreeMap::new();
    let mut capped = 0;
    for (visitor, e) in entries {
        let v = e.value;
        if (v.x <= limit && v.pre <= limit) || !seen.insert(visitor) {
            continue;
        }
        capped += u64::from(v.x > limit);
        let cut = VisitorValue { x: v.x.min(limit), y: v.y, pre: v.pre.min(limit) };
        rows.entry((e.variant, e.date)).or_default().apply_delta(v, cut);
    }
    (capped, rows)
}

/// Adds what [`excess`] took from each row to the test's rows of `metric`.
pub fn take_excess(
    exp: &Experiment,
    metric: &str,
    rows: &mut [AggregateRow],
    excess: &BTreeMap<(VariantIndex, NaiveDate), Moments>,
) {
    for row in rows.iter_mut().filter(|r| r.metric == metric) {
        let Some(variant) = exp.variant_index(&row.variant) else { continue };
        if let Some(cut) = excess.get(&(variant, row.date)) {
            row.moments.add_cancelling(cut);
        }
    }
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

    /// The capped metrics it collects for, in order.
    pub fn metrics(&self) -> Vec<(&'c Metric, Cap)> {
        self.metrics.clone()
    }

    /// Collects no more for the metrics `answered` (their value index
    /// answered the report); called before any visitor is visited.
    pub fn skip(&mut self, answered: &[CapApplied]) {
        self.metrics.retain(|(m, _)| !answered.iter().any(|a| a.metric == m.name.as_str()));
        self.values.truncate(self.metrics.len());
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

    /// Visitors' values with many zeros, some negatives, ties, and a few
    /// large ones, as the value index sees them.
    fn random_values(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<VisitorValue> {
        use rand::Rng;
        (0..n)
            .map(|_| {
                let x = match rng.random_range(0..10) {
                    0..=5 => 0.0,
                    6 => -f64::from(rng.random_range(1..50)),
                    7 => 30.0,
                    _ => f64::from(rng.random_range(1..100_000)) / 100.0,
                };
                let pre = if rng.random_bool(0.3) { f64::from(rng.random_range(1..400)) } else { 0.0 };
                VisitorValue { x, y: f64::from(rng.random_range(0..3)), pre }
            })
            .collect()
    }

    #[test]
    fn a_cap_read_from_the_top_of_the_index_equals_the_full_pass() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(26);
        let day = |i: usize| NaiveDate::from_ymd_opt(2026, 11, 2 + (i % 3) as u32).unwrap();
        let variant = |i: usize| VariantIndex::new(i % 2).unwrap();
        let caps = [
            Cap::Percentile { percentile: 0.99, ignore_zeros: false },
            Cap::Percentile { percentile: 0.9, ignore_zeros: true },
            Cap::Percentile { percentile: 0.5, ignore_zeros: false },
            Cap::Percentile { percentile: 0.2, ignore_zeros: true },
            Cap::Percentile { percentile: 1.0, ignore_zeros: false },
            Cap::Percentile { percentile: 0.0, ignore_zeros: true },
            Cap::Absolute(100.0),
            Cap::Absolute(0.0),
        ];
        for n in [0, 1, 2, 7, 100, 2_000] {
            let values = random_values(&mut rng, n);
            let visitors: Vec<_> = values.iter().enumerate().map(|(i, v)| (variant(i), day(i), *v)).collect();
            let mut index: Vec<(VisitorId, CappedEntry)> = values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.x != 0.0 || v.pre != 0.0)
                .map(|(i, v)| {
                    let id = VisitorId::parse(&format!("v{i}")).unwrap();
                    (id, CappedEntry { variant: variant(i), date: day(i), value: *v })
                })
                .collect();
            let counts = CappedCounts {
                covered: n as u64,
                positive: values.iter().filter(|v| v.x > 0.0).count() as u64,
                negative: values.iter().filter(|v| v.x < 0.0).count() as u64,
                floor: None,
            };
            for cap in caps {
                let (want_value, want_capped, want_sums) = capped_moments(cap, &visitors);
                // The value side from the top, as a store reads it.
                index.sort_by(|a, b| b.1.value.x.total_cmp(&a.1.value.x));
                let by_x: Vec<_> = index.iter().filter(|(_, e)| e.value.x != 0.0).cloned().collect();
                let value = match cap {
                    Cap::Absolute(a) => Some(a),
                    Cap::Percentile { percentile, ignore_zeros } => {
                        Quantile::of(percentile, ignore_zeros, n as u64, counts).map(|q| {
                            let (skip, take) = q.reads().unwrap_or((0, 0));
                            let read: Vec<f64> = by_x.iter().skip(skip).take(take).map(|(_, e)| e.value.x).collect();
                            q.value(&read).unwrap()
                        })
                    }
                };
                assert_eq!(value, want_value, "{cap:?} over {n}");
                let Some(limit) = value.filter(|c| *c >= 0.0) else { continue };
                let above: Vec<_> = by_x.iter().take_while(|(_, e)| e.value.x > limit).cloned().collect();
                let covariates: Vec<_> = index.iter().filter(|(_, e)| e.value.pre > limit).cloned().collect();
                let (capped, excess) = excess(limit, above.iter().chain(&covariates));
                assert_eq!(capped, want_capped, "{cap:?} over {n}");
                let mut raw: BTreeMap<(VariantIndex, NaiveDate), Moments> = BTreeMap::new();
                for (v, d, x) in &visitors {
                    raw.entry((*v, *d)).or_default().add_visitor(*x);
                }
                for (key, cut) in &excess {
                    raw.get_mut(key).unwrap().merge(cut);
                }
                assert_eq!(raw.len(), want_sums.len());
                // The correction subtracts from the raw sums: equal to a
                // relative 1e-9 of them, the tolerance `offerlab verify` uses.
                for (key, want) in &want_sums {
                    assert!(raw[key].approx_eq(want, 1e-9), "{cap:?} over {n} at {key:?}: {:?} vs {want:?}", raw[key]);
                }
            }
        }
    }

    /// A floor where [`FloorRanks`] puts it keeps every value a cap of the
    /// same percentile reads, ties at the floor included, with room for
    /// the cap to read twice as deep.
    #[test]
    fn a_floor_from_its_ranks_keeps_what_the_cap_reads() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(2601);
        let mut raised = 0;
        for n in [50, 400, 3_000, 20_000] {
            let values = random_values(&mut rng, n);
            let mut by_x: Vec<f64> = values.iter().map(|v| v.x).filter(|x| *x != 0.0).collect();
            by_x.sort_by(|a, b| b.total_cmp(a));
            let counts = CappedCounts {
                covered: n as u64,
                positive: by_x.iter().filter(|x| **x > 0.0).count() as u64,
                negative: by_x.iter().filter(|x| **x < 0.0).count() as u64,
                floor: None,
            };
            for (p, ignore_zeros) in [(0.99, false), (0.999, true), (0.95, true), (0.9, false), (0.5, false)] {
                let Some(ranks) = FloorRanks::of(p, ignore_zeros, counts) else { continue };
                if by_x.len() <= ranks.probe {
                    continue;
                }
                let (skip, take) = ranks.reads();
                let read: Vec<f64> = by_x.iter().skip(skip).take(take).copied().collect();
                let Some(floor) = ranks.floor(&read) else { continue };
                raised += 1;
                let kept: Vec<f64> = by_x.iter().copied().filter(|x| *x > floor).collect();
                assert!(kept.len() > ranks.guard, "{p} over {n}: {} kept above {floor}", kept.len());
                let q = Quantile::of(p, ignore_zeros, n as u64, counts).unwrap();
                let (skip, take) = q.reads().unwrap();
                let value = q.value(&kept.iter().skip(skip).take(take).copied().collect::<Vec<_>>()).unwrap();
                assert_eq!(
                    Some(value),
                    cap_value(Cap::Percentile { percentile: p, ignore_zeros }, values.iter().map(|v| v.x))
                );
                assert!(value > floor, "{p} over {n}: the cap {value} reads above the floor {floor}");
            }
        }
        assert!(raised >= 4, "a floor was found {raised} times");
    }

    /// Where the visitors' values are a few levels (every order one price),
    /// one value fills the window [`FloorRanks::floor`] reads; the floor
    /// found past the tie still keeps what the cap reads, with room.
    #[test]
    fn a_floor_past_a_tie_keeps_what_the_cap_reads() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(2602);
        let mut past = 0;
        for (n, levels) in [(2_000, 4), (20_000, 4), (20_000, 12), (20_000, 30), (100_000, 5)] {
            let values: Vec<f64> = (0..n).map(|_| 42.5 * f64::from(rng.random_range(10..10 + levels))).collect();
            let mut by_x = values.clone();
            by_x.sort_by(|a, b| b.total_cmp(a));
            let counts = CappedCounts { covered: n as u64, positive: n as u64, negative: 0, floor: None };
            for p in [0.99, 0.95, 0.9] {
                let Some(ranks) = FloorRanks::of(p, false, counts) else { continue };
                let (skip, take) = ranks.reads();
                let read: Vec<f64> = by_x.iter().skip(skip).take(take).copied().collect();
                let floor = match ranks.past_tie(&read) {
                    None => {
                        assert!(read.len() < take || ranks.floor(&read).is_some(), "{p} over {n}: no tie, a floor");
                        continue;
                    }
                    Some((skip, take)) => {
                        assert_eq!(ranks.floor(&read), None, "{p} over {n}: a tie fills the window");
                        let more: Vec<f64> = by_x.iter().skip(skip).take(take).copied().collect();
                        let Some(floor) = FloorRanks::below_tie(read[0], &more) else { continue };
                        floor
                    }
                };
                past += 1;
                let kept: Vec<f64> = by_x.iter().copied().filter(|x| *x > floor).collect();
                assert!(kept.len() > ranks.guard, "{p} over {n}: {} kept above {floor}", kept.len());
                assert!(kept.len() < n, "{p} over {n}: the floor {floor} leaves some out");
                let q = Quantile::of(p, false, n as u64, counts).unwrap();
                let (skip, take) = q.reads().unwrap();
                let value = q.value(&kept.iter().skip(skip).take(take).copied().collect::<Vec<_>>()).unwrap();
                let cap = Cap::Percentile { percentile: p, ignore_zeros: false };
                assert_eq!(Some(value), cap_value(cap, values.iter().copied()));
                assert!(value > floor, "{p} over {n}: the cap {value} reads above the floor {floor}");
            }
        }
        assert!(past >= 3, "a floor was found past a tie {past} times");
    }

    #[test]
    fn a_quantile_reads_its_order_statistics_by_rank_and_a_short_index_is_no_answer() {
        // Four non-zero values of ten: the median of all ten is a zero, of
        // the four it lies between the second and third from the top.
        let counts = CappedCounts { covered: 10, positive: 3, negative: 1, floor: None };
        let all = Quantile::of(0.5, false, 10, counts).unwrap();
        assert_eq!((all.lo, all.hi, all.reads()), (Rank::Zero, Rank::Zero, None));
        assert_eq!(all.value(&[]), Ok(0.0));
        let nonzero = Quantile::of(0.5, true, 10, counts).unwrap();
        assert_eq!((nonzero.lo, nonzero.hi, nonzero.reads()), (Rank::FromTop(2), Rank::FromTop(1), Some((1, 2))));
        assert_eq!(nonzero.value(&[9.0]), Err(ShortIndex));
        assert_eq!(nonzero.value(&[9.0, 3.0]), Ok(6.0));
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
