//! Results by segment: a test's numbers on the visitors of one device or
//! customer type at a time, the split of each value checked on its own,
//! and whether a lift differs between values more than chance would make
//! it. Pure: each value's sums come from the segment rows the writer keeps
//! ([`from_rows`]), from a pass over the visitors where a cap's value index
//! does not cover the phase ([`Collector`]), or from rows made elsewhere
//! ([`from_labelled`]); the numbers from the same code as the report's.
//!
//! - Each value's arms and lifts are the report's ([`metric_reports`]) on
//!   that value's visitors only (the same test, fixed or sequential, CUPED
//!   on their own pre-period), with every cap taken once from the whole
//!   test, so the values' sums add up to the whole.
//! - A breakdown makes many comparisons (values × treatments × metrics),
//!   so its p-values are Benjamini–Hochberg adjusted across all of them,
//!   and every segment lift is exploratory: it points at where to look, it
//!   never decides a test.
//! - Heterogeneity is Cochran's Q over the values' relative lifts
//!   ([`cochran_q`]), on the values with enough visitors in every arm.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::aggregates::AggregateRow;
use crate::analysis::{metric_reports, Arm, Lift};
use crate::attribution::metric_values;
use crate::capping::{self, CapApplied, Cut, VisitorTallies};
use crate::experiment::segments_file::{NONE, OTHER};
use crate::experiment::{Catalog, Experiment, Segment};
use crate::ids::{VariantIndex, VisitorId};
use crate::stats::srm::SRM_THRESHOLD;
use crate::stats::{benjamini_hochberg, cochran_q, srm_p_value, Moments, VisitorValue};
use crate::store::{Attributes, CappedEntry, SegmentKey};

/// Below this many visitors in some arm, a value shows its counts and no
/// lift: an interval on a handful of visitors says nothing.
pub const MIN_VISITORS_FOR_LIFT: u64 = 30;

/// A value enters the heterogeneity test only with this many visitors in
/// every arm: below it a relative lift's standard error is itself too
/// uncertain to weigh by.
pub const MIN_VISITORS_FOR_HETEROGENEITY: u64 = 100;

/// A value's split is judged only when every arm expects this many
/// visitors: fewer, and the chi-square approximation and the false alarms
/// of many small values would flag splits that are fine.
pub const MIN_EXPECTED_FOR_SRM: f64 = 100.0;

/// One test's breakdown by one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Breakdown {
    pub segment: String,
    pub attribute: String,
    pub values: Vec<ValueResult>,
    pub heterogeneity: Vec<HeterogeneityResult>,
}

/// The test's numbers on the visitors of one value.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueResult {
    pub value: String,
    /// Visitors per variant, in the test's order.
    pub visitors: Vec<(String, u64)>,
    pub srm: ValueSrm,
    /// Some arm has fewer than [`MIN_VISITORS_FOR_LIFT`] visitors: the
    /// metrics show arms and no lifts.
    pub too_few_visitors: bool,
    pub metrics: Vec<ValueMetric>,
}

impl ValueResult {
    /// The value's lift of `variant` on `metric`, when it has one.
    pub fn lift(&self, metric: &str, variant: &str) -> Option<&Lift> {
        self.metrics.iter().find(|m| m.name == metric)?.lifts.iter().find(|l| l.variant == variant)
    }
}

/// Does one value's exposure split as configured?
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueSrm {
    pub p_value: f64,
    /// Every arm expects at least [`MIN_EXPECTED_FOR_SRM`] visitors.
    pub judged: bool,
    /// Judged, and `p_value` below the report's threshold (0.001).
    pub mismatch: bool,
}

/// One metric on one value's visitors: arms and lifts as in the report,
/// the lifts judged on the breakdown's Benjamini–Hochberg p-values.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueMetric {
    pub name: String,
    pub higher_is_better: bool,
    pub arms: Vec<Arm>,
    pub lifts: Vec<Lift>,
}

/// Cochran's Q for one (metric, treatment) across the values used.
#[derive(Debug, Clone, PartialEq)]
pub struct HeterogeneityResult {
    pub metric: String,
    pub variant: String,
    pub q: f64,
    pub dof: u32,
    pub p_value: f64,
    pub values_used: Vec<String>,
}

/// One segment value's sums: per (metric, in [`Experiment::all_metrics`]
/// order, variant), the moments over every day (a breakdown shows totals).
pub type ValueSums = BTreeMap<(usize, VariantIndex), Moments>;

/// Collects, visitor by visitor, each segment value's aggregate rows, with
/// the whole test's caps applied to each visitor's values.
pub struct Collector {
    exp: Arc<Experiment>,
    catalog: Arc<Catalog>,
    segments: Vec<Segment>,
    /// Per metric of [`Experiment::all_metrics`], the value its cap cuts at.
    limits: Vec<f64>,
    /// Per segment, per value (in [`Segment::all_values`] order): per
    /// (metric, variant), the moments.
    sums: Vec<Vec<ValueSums>>,
}

impl Collector {
    /// Collects for `segments`, capping each metric at the value the whole
    /// test's report capped it at (`capping`).
    pub fn new(exp: Arc<Experiment>, catalog: Arc<Catalog>, segments: Vec<Segment>, capping: &[CapApplied]) -> Self {
        let limits = exp
            .all_metrics()
            .into_iter()
            .map(|m| capping.iter().find(|c| c.metric == m).and_then(|c| c.value).unwrap_or(f64::INFINITY))
            .collect();
        let sums = segments.iter().map(|s| vec![BTreeMap::new(); s.all_values().count()]).collect();
        Collector { exp, catalog, segments, limits, sums }
    }

    pub fn visit(&mut self, v: VisitorTallies<'_>) {
        let values: Vec<VisitorValue> = metric_values(&self.exp, &self.catalog, v.tallies)
            .into_iter()
            .zip(&self.limits)
            .map(|((_, x), &limit)| VisitorValue { x: x.x.min(limit), y: x.y, pre: x.pre.min(limit) })
            .collect();
        for (segment, sums) in self.segments.iter().zip(&mut self.sums) {
            let raw = v.attributes.get(&segment.attribute).map(String::as_str);
            let label = segment.value_of(raw);
            let at = segment.all_values().position(|x| x == label).expect("a value of the segment");
            for (metric, value) in values.iter().enumerate() {
                sums[at].entry((metric, v.variant)).or_default().add_visitor(*value);
            }
        }
    }

    /// Each segment's per-value sums, for [`finish`].
    pub fn into_sums(self) -> Vec<Vec<ValueSums>> {
        self.sums
    }
}

/// Each segment's per-value sums from the stored rows instead of a pass
/// over the visitors: a listed value's rows are the segment rows of its
/// raw value, `(other)`'s those of every unlisted raw value, and
/// `(none)`'s the whole test's rows less all of them. `whole` is the test's
/// rows with every cap applied; each cut ([`Cut`]) is taken from the values
/// of its visitors by their `attributes`, so every value is capped where
/// the whole test is.
pub fn from_rows(
    exp: &Experiment,
    segments: &[Segment],
    whole: &[AggregateRow],
    stored: &[(SegmentKey, Moments)],
    cuts: &[Cut],
    attributes: &Attributes,
) -> Vec<Vec<ValueSums>> {
    let names = exp.all_metrics();
    let metric_at = |m: &str| names.iter().position(|n| *n == m);
    segments
        .iter()
        .map(|segment| {
            let values: Vec<&str> = segment.all_values().collect();
            let at = |raw: Option<&str>| {
                let label = segment.value_of(raw);
                values.iter().position(|v| *v == label).expect("a value of the segment")
            };
            let none = at(None);
            let mut sums = vec![ValueSums::new(); values.len()];
            for (k, m) in stored.iter().filter(|(k, _)| k.attribute == segment.attribute) {
                let Some(metric) = metric_at(k.metric.as_str()) else { continue };
                sums[at(Some(&k.value))].entry((metric, k.variant)).or_default().merge(m);
            }
            for cut in cuts {
                let Some(metric) = metric_at(&cut.metric) else { continue };
                let mut by_value: BTreeMap<usize, Vec<(VisitorId, CappedEntry)>> = BTreeMap::new();
                for entry in &cut.entries {
                    let raw = attributes.get(&entry.0).and_then(|a| a.get(&segment.attribute));
                    by_value.entry(at(raw.map(String::as_str))).or_default().push(entry.clone());
                }
                for (value, entries) in by_value.into_iter().filter(|(v, _)| *v != none) {
                    // Summed over days first, so the excess meets the raw
                    // totals in one step, where a sum it cancels is 0.
                    let mut excess: BTreeMap<VariantIndex, Moments> = BTreeMap::new();
                    for ((variant, _), m) in capping::excess(cut.limit, entries.iter()).1 {
                        excess.entry(variant).or_default().merge(&m);
                    }
                    for (variant, m) in excess {
                        sums[value].entry((metric, variant)).or_default().add_cancelling(&m);
                    }
                }
            }
            let mut totals = ValueSums::new();
            for row in whole {
                let (Some(metric), Some(variant)) = (metric_at(&row.metric), exp.variant_index(&row.variant)) else {
                    continue;
                };
                totals.entry((metric, variant)).or_default().merge(&row.moments);
            }
            for (key, total) in totals {
                let rest = sums.iter().enumerate().filter(|(i, _)| *i != none).filter_map(|(_, s)| s.get(&key));
                let m = rest.fold(total, |m, part| m.without(part));
                if m.n > 0 {
                    sums[none].insert(key, m);
                }
            }
            sums
        })
        .collect()
}

/// One segment's per-value sums from aggregate rows made elsewhere (a
/// file, a warehouse query), each with the raw value of the segment's
/// attribute (`None`: the visitors without one).
pub fn from_labelled(exp: &Experiment, segment: &Segment, rows: &[(Option<String>, AggregateRow)]) -> Vec<ValueSums> {
    let names = exp.all_metrics();
    let values: Vec<&str> = segment.all_values().collect();
    let mut sums = vec![ValueSums::new(); values.len()];
    for (raw, row) in rows {
        let label = segment.value_of(raw.as_deref());
        let at = values.iter().position(|v| *v == label).expect("a value of the segment");
        let (Some(metric), Some(variant)) =
            (names.iter().position(|n| *n == row.metric), exp.variant_index(&row.variant))
        else {
            continue;
        };
        sums[at].entry((metric, variant)).or_default().merge(&row.moments);
    }
    sums
}

/// Every segment's breakdown from each segment's per-value sums (in
/// [`Segment::all_values`] order).
pub fn finish(exp: &Experiment, catalog: &Catalog, segments: &[Segment], sums: Vec<Vec<ValueSums>>) -> Vec<Breakdown> {
    let names = exp.all_metrics();
    segments
        .iter()
        .zip(sums)
        .map(|(segment, per_value)| {
            let values = segment
                .all_values()
                .zip(per_value)
                .map(|(value, sums)| {
                    let rows: Vec<AggregateRow> = sums
                        .into_iter()
                        .filter_map(|((metric, variant), moments)| {
                            Some(AggregateRow {
                                variant: exp.variant_at(variant)?.key.clone(),
                                // Totals: any day will do, the analysis sums them.
                                date: exp.start,
                                metric: names[metric].to_owned(),
                                moments,
                            })
                        })
                        .collect();
                    value_result(exp, catalog, value, &rows)
                })
                .collect();
            breakdown(exp, segment, values)
        })
        .collect()
}

/// One value's numbers from its rows: counts and split always, lifts when
/// every arm has [`MIN_VISITORS_FOR_LIFT`] visitors.
fn value_result(exp: &Experiment, catalog: &Catalog, value: &str, rows: &[AggregateRow]) -> ValueResult {
    let counts: Vec<u64> = exp
        .variants
        .iter()
        .map(|v| {
            rows.iter().filter(|r| r.metric == exp.primary_metric && r.variant == v.key).map(|r| r.moments.n).sum()
        })
        .collect();
    let too_few = counts.iter().any(|&n| n < MIN_VISITORS_FOR_LIFT);
    let metrics = metric_reports(exp, catalog, rows)
        .into_iter()
        .map(|m| ValueMetric {
            name: m.name,
            higher_is_better: m.higher_is_better,
            arms: m.arms,
            lifts: if too_few { Vec::new() } else { m.lifts },
        })
        .collect();
    ValueResult {
        value: value.to_owned(),
        visitors: exp.variants.iter().map(|v| v.key.clone()).zip(counts.iter().copied()).collect(),
        srm: value_srm(&counts, &exp.weights()),
        too_few_visitors: too_few,
        metrics,
    }
}

/// The report's chi-square test of the split, judged only when every arm
/// expects [`MIN_EXPECTED_FOR_SRM`] visitors.
pub fn value_srm(counts: &[u64], weights: &[f64]) -> ValueSrm {
    let total: u64 = counts.iter().sum();
    let wsum: f64 = weights.iter().sum();
    let judged = total > 0 && weights.iter().all(|w| w / wsum * total as f64 >= MIN_EXPECTED_FOR_SRM || *w == 0.0);
    let p_value = srm_p_value(counts, weights);
    ValueSrm { p_value, judged, mismatch: judged && p_value < SRM_THRESHOLD }
}

/// The values' results judged together: Benjamini–Hochberg across every
/// (value, treatment, metric), then Cochran's Q per (metric, treatment).
fn breakdown(exp: &Experiment, segment: &Segment, mut values: Vec<ValueResult>) -> Breakdown {
    let p: Vec<f64> = values
        .iter()
        .flat_map(|v| v.metrics.iter().flat_map(|m| m.lifts.iter().map(|l| l.comparison.p_value)))
        .collect();
    let mut adjusted = benjamini_hochberg(&p).into_iter();
    for v in &mut values {
        for m in &mut v.metrics {
            for l in &mut m.lifts {
                l.judge(adjusted.next(), exp.stats.alpha, m.higher_is_better);
            }
        }
    }
    let mut heterogeneity = Vec::new();
    for metric in exp.all_metrics() {
        for treatment in exp.variants.iter().skip(1) {
            let used: Vec<(&str, &Lift)> = values
                .iter()
                .filter(|v| v.visitors.iter().all(|(_, n)| *n >= MIN_VISITORS_FOR_HETEROGENEITY))
                .filter_map(|v| {
                    let lift = v.lift(metric, &treatment.key)?;
                    let c = &lift.comparison;
                    (c.not_computable.is_none() && c.std_error > 0.0).then_some((v.value.as_str(), lift))
                })
                .collect();
            let estimates: Vec<(f64, f64)> =
                used.iter().map(|(_, l)| (l.comparison.relative_lift, l.comparison.std_error)).collect();
            if let Some(h) = cochran_q(&estimates) {
                heterogeneity.push(HeterogeneityResult {
                    metric: metric.to_owned(),
                    variant: treatment.key.clone(),
                    q: h.q,
                    dof: h.dof,
                    p_value: h.p_value,
                    values_used: used.iter().map(|(v, _)| (*v).to_owned()).collect(),
                });
            }
        }
    }
    Breakdown { segment: segment.name.clone(), attribute: segment.attribute.clone(), values, heterogeneity }
}

/// Adds `breakdowns` to the report of `exp`: the breakdowns, what they
/// found, and the verdict's sentence qualified where a winner loses on a
/// segment value. The verdict's code never changes: segment lifts are
/// exploratory.
pub fn attach(report: &mut crate::analysis::Report, exp: &Experiment, catalog: &Catalog, breakdowns: Vec<Breakdown>) {
    report.segments_summary = findings(exp, catalog, &breakdowns);
    if let Some(winner) = report.verdict.winner.clone() {
        report.verdict.sentence = qualified_sentence(exp, &report.verdict.sentence, &winner, &breakdowns);
    }
    report.segments = breakdowns;
}

/// A heterogeneity p-value below this is reported, and can qualify a
/// winner's verdict.
pub const HETEROGENEITY_THRESHOLD: f64 = 0.01;

/// What a breakdown found that the report names in a sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub segment: String,
    /// The value it is about: the one whose split is off, or where the
    /// treatment's lift is worst.
    pub value: String,
    pub kind: FindingKind,
    pub p_value: f64,
    /// For a heterogeneous lift: the metric and the treatment.
    pub metric: Option<String>,
    pub variant: Option<String>,
    pub sentence: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// The value's exposures do not split as configured.
    Srm,
    /// A lift differs between the values more than chance makes it.
    Heterogeneity,
}

/// The findings of `breakdowns` of a test: every value whose split is off
/// (the sign of a variant broken on one device or browser), and every lift
/// on the primary metric or a guardrail that differs by value with
/// p < [`HETEROGENEITY_THRESHOLD`].
pub fn findings(exp: &Experiment, catalog: &Catalog, breakdowns: &[Breakdown]) -> Vec<Finding> {
    let mut out = Vec::new();
    for b in breakdowns {
        let everyone: u64 = b.values.iter().flat_map(|v| v.visitors.iter().map(|(_, n)| n)).sum();
        // A value holding every visitor repeats the whole test's check.
        let alone = |v: &&ValueResult| v.visitors.iter().map(|(_, n)| n).sum::<u64>() < everyone;
        for v in b.values.iter().filter(|v| v.srm.mismatch).filter(alone) {
            // The variant short of its share the most: where exposures go missing.
            let total: u64 = v.visitors.iter().map(|(_, n)| n).sum();
            let weights = exp.weights();
            let wsum: f64 = weights.iter().sum();
            let short = v
                .visitors
                .iter()
                .zip(&weights)
                .filter(|(_, w)| **w > 0.0)
                .min_by(|((_, a), wa), ((_, b), wb)| {
                    let ratio = |n: u64, w: f64| n as f64 / (w / wsum * total as f64);
                    ratio(*a, **wa).total_cmp(&ratio(*b, **wb))
                })
                .map_or("", |((variant, _), _)| variant.as_str());
            out.push(Finding {
                segment: b.segment.clone(),
                value: v.value.clone(),
                kind: FindingKind::Srm,
                p_value: v.srm.p_value,
                metric: None,
                variant: Some(short.to_owned()),
                sentence: format!(
                    "Exposures {at} do not split as configured ({p}): check how `{short}` renders and tracks {there}.",
                    at = place(b, &v.value),
                    p = p_text(v.srm.p_value),
                    there = if v.value == OTHER || v.value == NONE {
                        "for them".to_owned()
                    } else {
                        format!("on {}", v.value)
                    },
                ),
            });
        }
        let judged = |m: &str| m == exp.primary_metric || exp.guardrail_metrics.iter().any(|g| g == m);
        for h in b.heterogeneity.iter().filter(|h| judged(&h.metric) && h.p_value < HETEROGENEITY_THRESHOLD) {
            let lifts: Vec<(&str, f64)> = h
                .values_used
                .iter()
                .filter_map(|value| {
                    Some((value.as_str(), lift_of(b, value, &h.metric, &h.variant)?.comparison.relative_lift))
                })
                .collect();
            // The value where the treatment does worst: where to look first.
            let better = catalog.metric(&h.metric).is_none_or(|m| m.higher_is_better);
            let worst = lifts.iter().min_by(|a, b| if better { a.1.total_cmp(&b.1) } else { b.1.total_cmp(&a.1) });
            let label = catalog.metric(&h.metric).map_or(h.metric.clone(), |m| m.label.to_lowercase());
            let listed: Vec<String> =
                lifts.iter().map(|(v, l)| format!("{} on {v}", crate::format::signed_pct(*l))).collect();
            out.push(Finding {
                segment: b.segment.clone(),
                value: worst.map_or_else(String::new, |(v, _)| (*v).to_owned()),
                kind: FindingKind::Heterogeneity,
                p_value: h.p_value,
                metric: Some(h.metric.clone()),
                variant: Some(h.variant.clone()),
                sentence: format!(
                    "`{}` lifts {label} differently by {} ({}): {} (exploratory).",
                    h.variant,
                    b.segment,
                    p_text(h.p_value),
                    listed.join(", ")
                ),
            });
        }
    }
    out
}

/// Where a value's visitors are, in words: "on mobile (device)", "with a
/// device not listed in segments.toml", "without a device".
fn place(b: &Breakdown, value: &str) -> String {
    match value {
        OTHER => format!("with a {} not listed in segments.toml", b.attribute),
        NONE => format!("without a {}", b.attribute),
        v => format!("on {v} ({})", b.segment),
    }
}

/// One value's lift of `variant` on `metric`, when it has one.
fn lift_of<'b>(b: &'b Breakdown, value: &str, metric: &str, variant: &str) -> Option<&'b Lift> {
    b.values.iter().find(|v| v.value == value)?.lift(metric, variant)
}

/// `p < 0.001` below it, else `p = 0.004`.
fn p_text(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".to_owned()
    } else {
        format!("p = {p:.3}")
    }
}

/// The verdict's sentence when it names a winner that, on some segment
/// value, loses on the primary metric (significantly after
/// Benjamini–Hochberg, on a lift that differs by value with
/// p < [`HETEROGENEITY_THRESHOLD`]): the sentence keeps its code and adds
/// ", but it loses on mobile: −12% (exploratory)".
pub fn qualified_sentence(exp: &Experiment, sentence: &str, winner: &str, breakdowns: &[Breakdown]) -> String {
    let mut losses = Vec::new();
    for b in breakdowns {
        let heterogeneous = b
            .heterogeneity
            .iter()
            .any(|h| h.metric == exp.primary_metric && h.variant == winner && h.p_value < HETEROGENEITY_THRESHOLD);
        if !heterogeneous {
            continue;
        }
        for v in &b.values {
            if let Some(l) = v.lift(&exp.primary_metric, winner) {
                if l.significant && l.direction == crate::analysis::Direction::Worse {
                    losses.push(format!("{}: {}", v.value, crate::format::signed_pct(l.comparison.relative_lift)));
                }
            }
        }
    }
    if losses.is_empty() {
        return sentence.to_owned();
    }
    let base = sentence.trim_end().trim_end_matches('.');
    format!("{base}, but it loses on {} (exploratory).", losses.join(" and on "))
}
