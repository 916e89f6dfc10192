//! The analysis: a test's definition, its per-day aggregates and the day of
//! the report become lifts, intervals, p-values, sample-size progress, the
//! per-cycle view and a verdict. Pure: "today" is a parameter, never the
//! clock. The service, `offerlab analyze` and `offerlab report` all call
//! [`analyze`]. These types do not serialise themselves: what the API
//! sends is [`crate::wire::v1::Report`], built from them.

pub mod verdict;

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::aggregates::AggregateRow;
use crate::capping::CapApplied;
use crate::cycles::{consistency_p_value, cycle_of_day, cycles, cycles_needed, hold, later_half, Cycle, Hold};
use crate::experiment::{Catalog, Experiment, Metric, MetricKind, Shape, Status, Surface};
use crate::stats::srm::{SRM_MIN_PER_VARIANT, SRM_THRESHOLD};
use crate::stats::{
    adjust, bayesian, compare, holm, sample_size_proportion_relative, sample_size_relative, srm_p_value, ArmStatistic,
    Bayesian, Comparison, Inference, MetricStatistic, Moments,
};
pub use verdict::{Verdict, VerdictCode};

/// Control visitors needed before observed values replace the configured
/// baseline in the sample-size calculation.
pub const OBSERVED_BASELINE_MIN_VISITORS: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Guardrail,
    Secondary,
}

/// One variant's numbers on one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    pub variant: String,
    pub visitors: u64,
    /// Conversions (proportion), value sum (mean) or numerator sum (ratio).
    pub sum: f64,
    /// Denominator sum of a ratio.
    pub denominator: Option<f64>,
    /// The metric's value: rate, mean or ratio.
    pub value: f64,
}

/// A treatment against the control on one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Lift {
    pub variant: String,
    pub comparison: Comparison,
    /// Holm-adjusted across treatments (primary metric only).
    pub p_value_adjusted: Option<f64>,
    /// The p-value the verdict uses is below alpha.
    pub significant: bool,
    /// Significant and in the metric's good direction / bad direction.
    pub direction: Direction,
    /// Chance to beat the control and risk; informs, never decides.
    pub bayesian: Bayesian,
    /// The CUPED adjustment behind the numbers, when the metric has one.
    pub cuped: Option<CupedEffect>,
}

/// What CUPED did to one comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CupedEffect {
    /// `cov(x, c)/var(c)` over both arms.
    pub theta: f64,
    /// `1 − se²(adjusted)/se²(unadjusted)` of the relative lift: the share
    /// of the lift's variance the pre-period explained. An interval is
    /// `sqrt(1 − reduction)` times as wide as it would be without CUPED.
    pub variance_reduction: f64,
    /// The relative lift's interval without the adjustment, for comparison.
    pub unadjusted_ci: (f64, f64),
    /// The control's and the treatment's adjusted values, on the metric's
    /// scale: `x̄ − θ·(c̄ − c̄_pooled)`. Their difference is the lift's
    /// absolute value, so they agree with the lift where the observed
    /// values may not (when the arms differed before the test).
    pub adjusted_means: (f64, f64),
    /// The control's and the treatment's covariate means `c̄`: what their
    /// visitors did before the test.
    pub pre_means: (f64, f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Better,
    Worse,
    Inconclusive,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricReport {
    pub name: String,
    pub label: String,
    pub role: Role,
    pub kind: Shape,
    /// How its value, total and denominator read.
    pub units: crate::experiment::Units,
    /// The shop's currency, for amounts.
    pub currency: Option<crate::currency::Currency>,
    pub higher_is_better: bool,
    pub arms: Vec<Arm>,
    pub lifts: Vec<Lift>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SampleRatio {
    pub p_value: f64,
    /// Enough visitors in every variant to judge.
    pub judged: bool,
    pub mismatch: bool,
    pub expected_shares: Vec<f64>,
    pub observed_shares: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SampleSize {
    /// Visitors each variant needs; `None` until the metric's spread is known.
    pub per_variant: Option<u64>,
    /// The control value the calculation used, and where it came from.
    pub baseline: f64,
    pub baseline_observed: bool,
    /// The smallest variant's visitors over `per_variant`.
    pub progress: Option<f64>,
    pub reached: bool,
    pub smallest_variant_visitors: u64,
    /// Conversions (or value sums) per variant on the primary metric, to set
    /// beside the 350–400 conversions rule of thumb.
    pub conversions: Vec<f64>,
    /// About how many more days, at the traffic seen so far, until the
    /// sample and two complete cycles are reached and, while a significant
    /// lift waits on them, until the later cycles are large enough to tell
    /// it from a novelty effect ([`Persistence`]); `None` before any
    /// traffic or while the sample size is unknown.
    pub days_left: Option<u64>,
}

/// The primary metric in one business cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleReport {
    pub cycle: Cycle,
    pub arms: Vec<Arm>,
    pub lifts: Vec<Lift>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Consistency {
    pub variant: String,
    pub cycles: (u32, u32),
    pub lifts: (f64, f64),
    pub p_value: f64,
    pub consistent: bool,
}

/// Whether the lead treatment's lift held in the later half of the
/// complete cycles ([`crate::cycles::hold`]): the novelty gate of a winner.
#[derive(Debug, Clone, PartialEq)]
pub struct Persistence {
    pub variant: String,
    /// The first and last complete cycle of the later half.
    pub cycles: (u32, u32),
    /// The whole test's lift `L`.
    pub overall_lift: f64,
    /// The lift among the later cycles' visitors, and its standard error.
    pub lift: f64,
    pub std_error: f64,
    pub hold: Hold,
    /// Complete cycles the test needs, at the traffic seen so far, for its
    /// later half to be large enough; `None` when no size would do.
    pub cycles_needed: Option<u32>,
}

/// Cumulative primary metric up to and including one day.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyPoint {
    pub date: NaiveDate,
    pub arms: Vec<Arm>,
    pub lifts: Vec<Lift>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub experiment: String,
    pub name: String,
    pub hypothesis: String,
    pub status: Status,
    /// The variant everyone now gets, when the test is concluded.
    pub concluded_winner: Option<String>,
    pub surface: Surface,
    pub as_of: NaiveDate,
    /// The phase's first day with an exposure, when it has one: days and
    /// cycles count from here.
    pub first_exposure: Option<NaiveDate>,
    /// Days since the first exposure, that day included; 0 without data.
    pub days_running: i64,
    pub alpha: f64,
    pub inference: Inference,
    pub variants: Vec<String>,
    pub primary_metric: String,
    pub srm: SampleRatio,
    pub sample_size: SampleSize,
    pub metrics: Vec<MetricReport>,
    pub cycle_length_days: u32,
    pub cycles_completed: usize,
    pub cycles: Vec<CycleReport>,
    pub consistency: Option<Consistency>,
    pub persistence: Option<Persistence>,
    pub daily: Vec<DailyPoint>,
    pub verdict: Verdict,
    /// What each capped metric's cap did ([`crate::capping`]), empty when
    /// the aggregates came capped (or not) from elsewhere.
    pub capping: Vec<CapApplied>,
    /// For a draft: the running tests that would refuse it running beside
    /// them (same surface, a visitor in both), each with how to keep the
    /// two apart.
    pub blocked_by: Vec<(String, String)>,
    /// The test by each segment of `segments.toml` ([`crate::segments`]);
    /// empty without segments, or where the report came from aggregates
    /// made elsewhere.
    pub segments: Vec<crate::segments::Breakdown>,
    /// What those breakdowns found: a value whose split is off, a lift
    /// that differs by value.
    pub segments_summary: Vec<crate::segments::Finding>,
}

impl Report {
    pub fn primary(&self) -> &MetricReport {
        &self.metrics[0]
    }
}

fn statistic(metric: &Metric, m: Moments) -> MetricStatistic {
    match metric.kind {
        MetricKind::Proportion { .. } => MetricStatistic::Proportion(m),
        MetricKind::Mean { .. } => MetricStatistic::Mean(m),
        MetricKind::Ratio { .. } => MetricStatistic::Ratio(m),
    }
}

/// Per-day moments of one metric: `day index → per-variant moments`.
type Days = BTreeMap<i64, Vec<Moments>>;

/// Groups rows by metric and day index (days since `origin`), dropping
/// variants the definition does not have.
fn index_rows(exp: &Experiment, rows: &[AggregateRow], origin: NaiveDate) -> BTreeMap<String, Days> {
    let mut out: BTreeMap<String, Days> = BTreeMap::new();
    let k = exp.variants.len();
    for r in rows {
        let Some(v) = exp.variant_index(&r.variant) else {
            continue;
        };
        let day = (r.date - origin).num_days();
        out.entry(r.metric.clone()).or_default().entry(day).or_insert_with(|| vec![Moments::default(); k])[v.get()]
            .merge(&r.moments);
    }
    out
}

fn sum_days(days: Option<&Days>, k: usize, keep: impl Fn(i64) -> bool) -> Vec<Moments> {
    let mut total = vec![Moments::default(); k];
    for (day, arms) in days.into_iter().flatten() {
        if keep(*day) {
            for (t, m) in total.iter_mut().zip(arms) {
                t.merge(m);
            }
        }
    }
    total
}

fn arms(exp: &Experiment, metric: &Metric, moments: &[Moments]) -> Vec<Arm> {
    exp.variants
        .iter()
        .zip(moments)
        .map(|(v, m)| {
            let s = statistic(metric, *m);
            Arm {
                variant: v.key.clone(),
                visitors: m.n,
                sum: m.sum,
                denominator: metric.is_ratio().then_some(m.den_sum),
                value: s.mean(),
            }
        })
        .collect()
}

/// Every treatment against the control; with `correct`, Holm-adjusts across
/// treatments and judges significance on the adjusted p-values.
fn lifts(exp: &Experiment, metric: &Metric, moments: &[Moments], inference: Inference, correct: bool) -> Vec<Lift> {
    let alpha = exp.stats.alpha;
    let control = statistic(metric, moments[0]);
    let comparisons: Vec<(Comparison, Option<CupedEffect>)> = moments[1..]
        .iter()
        .map(|m| {
            let treatment = statistic(metric, *m);
            let plain = compare(&control, &treatment, alpha, inference);
            match metric.cuped.and_then(|_| adjust(&control, &treatment)) {
                Some((c, t)) => {
                    let adjusted = compare(&c, &t, alpha, inference);
                    let variance_reduction = if plain.std_error > 0.0 && adjusted.not_computable.is_none() {
                        1.0 - (adjusted.std_error / plain.std_error).powi(2)
                    } else {
                        0.0
                    };
                    let pre_mean = |m: &Moments| if m.n == 0 { 0.0 } else { m.pre_sum / m.n as f64 };
                    let mut pooled = moments[0];
                    pooled.merge(m);
                    let centre = c.theta * pre_mean(&pooled);
                    let effect = CupedEffect {
                        theta: c.theta,
                        variance_reduction,
                        unadjusted_ci: plain.ci,
                        adjusted_means: (c.mean() + centre, t.mean() + centre),
                        pre_means: (pre_mean(&moments[0]), pre_mean(m)),
                    };
                    (adjusted, Some(effect))
                }
                None => (plain, None),
            }
        })
        .collect();
    let adjusted = correct.then(|| holm(&comparisons.iter().map(|(c, _)| c.p_value).collect::<Vec<_>>()));
    comparisons
        .into_iter()
        .enumerate()
        .map(|(i, (comparison, cuped))| {
            let mut lift = Lift {
                variant: exp.variants[i + 1].key.clone(),
                bayesian: bayesian(&comparison, alpha, metric.higher_is_better),
                comparison,
                p_value_adjusted: None,
                significant: false,
                direction: Direction::Inconclusive,
                cuped,
            };
            lift.judge(adjusted.as_ref().map(|a| a[i]), alpha, metric.higher_is_better);
            lift
        })
        .collect()
}

impl Lift {
    /// Sets significance and direction from the p-value the verdict uses:
    /// `adjusted` when a correction applies, else the raw one.
    pub(crate) fn judge(&mut self, adjusted: Option<f64>, alpha: f64, higher_is_better: bool) {
        self.p_value_adjusted = adjusted;
        let p = adjusted.unwrap_or(self.comparison.p_value);
        self.significant = self.comparison.not_computable.is_none() && p < alpha;
        let good = (self.comparison.relative_lift > 0.0) == higher_is_better;
        self.direction = match (self.significant, good) {
            (false, _) => Direction::Inconclusive,
            (true, true) => Direction::Better,
            (true, false) => Direction::Worse,
        };
    }
}

/// Holm across every guardrail × treatment pair: a test with three
/// guardrails and two treatments makes six comparisons, and without a
/// correction one of them would look "harmed" by chance far more often
/// than alpha.
fn correct_guardrails(metrics: &mut [MetricReport], alpha: f64) {
    let guardrails = || metrics.iter().filter(|m| m.role == Role::Guardrail);
    let p: Vec<f64> = guardrails().flat_map(|m| m.lifts.iter().map(|l| l.comparison.p_value)).collect();
    let mut adjusted = holm(&p).into_iter();
    for m in metrics.iter_mut().filter(|m| m.role == Role::Guardrail) {
        for l in &mut m.lifts {
            l.judge(adjusted.next(), alpha, m.higher_is_better);
        }
    }
}

/// Visitors per variant the primary metric needs, sized for the test that
/// is run (relative lift, fixed or sequential; see
/// [`crate::stats::power::sample_size_relative`]), and progress toward it.
/// The visitors of `days_with_data` complete days give the pace for "days
/// left"; the days the cycles still need (`days_for_cycles`) bound it from
/// below.
fn sample_size(
    exp: &Experiment,
    metric: &Metric,
    moments: &[Moments],
    inference: Inference,
    days_with_data: i64,
    days_for_cycles: i64,
) -> SampleSize {
    let s = &exp.stats;
    let control = statistic(metric, moments[0]);
    let observed = moments[0].n >= OBSERVED_BASELINE_MIN_VISITORS && control.mean() != 0.0;
    let baseline = if observed { control.mean() } else { s.baseline };
    let treatments = (exp.variants.len() - 1).max(1) as f64;
    let a = s.alpha / treatments;
    let needed = match metric.kind {
        MetricKind::Proportion { .. } => sample_size_proportion_relative(baseline, s.mde, a, s.power, inference),
        _ => {
            let sigma = if observed { Some(control.variance().sqrt()) } else { s.baseline_sd };
            sigma.and_then(|sd| sample_size_relative(baseline, sd, s.mde, a, s.power, inference))
        }
    };
    let per_variant = needed.map(|n| n.ceil() as u64);
    let smallest = moments.iter().map(|m| m.n).min().unwrap_or(0);
    let progress = per_variant.map(|n| smallest as f64 / n as f64);
    let days_left = per_variant.and_then(|n| {
        let pace = smallest as f64 / days_with_data as f64;
        let for_sample = if smallest >= n {
            0
        } else if pace > 0.0 {
            ((n - smallest) as f64 / pace).ceil() as i64
        } else {
            return None;
        };
        Some(for_sample.max(days_for_cycles).max(0) as u64)
    });
    SampleSize {
        per_variant,
        baseline,
        baseline_observed: observed,
        progress,
        reached: progress.is_some_and(|p| p >= 1.0),
        smallest_variant_visitors: smallest,
        conversions: moments.iter().map(|m| m.sum).collect(),
        days_left,
    }
}

fn sample_ratio(exp: &Experiment, moments: &[Moments]) -> SampleRatio {
    let counts: Vec<u64> = moments.iter().map(|m| m.n).collect();
    let weights = exp.weights();
    let total: u64 = counts.iter().sum();
    let p_value = srm_p_value(&counts, &weights);
    let judged = counts.iter().all(|&c| c >= SRM_MIN_PER_VARIANT);
    let wsum: f64 = weights.iter().sum();
    SampleRatio {
        p_value,
        judged,
        mismatch: judged && p_value < SRM_THRESHOLD,
        expected_shares: weights.iter().map(|w| w / wsum).collect(),
        observed_shares: counts.iter().map(|&c| if total == 0 { 0.0 } else { c as f64 / total as f64 }).collect(),
    }
}

/// Each metric's arms and lifts over every day of `rows`, in the report's
/// order (primary, guardrails, secondary), corrected as the report
/// corrects them: a report's tables, and all a breakdown by segment needs
/// of each value (no cycles, daily series or verdict).
pub fn metric_reports(exp: &Experiment, catalog: &Catalog, rows: &[AggregateRow]) -> Vec<MetricReport> {
    let k = exp.variants.len();
    let inference = inference_of(exp);
    let mut totals: BTreeMap<&str, Vec<Moments>> = BTreeMap::new();
    for r in rows {
        let Some(v) = exp.variant_index(&r.variant) else { continue };
        totals.entry(r.metric.as_str()).or_insert_with(|| vec![Moments::default(); k])[v.get()].merge(&r.moments);
    }
    let roles = std::iter::once((exp.primary_metric.as_str(), Role::Primary))
        .chain(exp.guardrail_metrics.iter().map(|m| (m.as_str(), Role::Guardrail)))
        .chain(exp.secondary_metrics.iter().map(|m| (m.as_str(), Role::Secondary)));
    let mut seen = Vec::new();
    let mut metrics = Vec::new();
    for (name, role) in roles {
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        let metric = catalog.metric(name).expect("validated metric");
        let total = totals.get(name).cloned().unwrap_or_else(|| vec![Moments::default(); k]);
        metrics.push(MetricReport {
            name: name.to_owned(),
            label: metric.label.clone(),
            role,
            kind: metric.kind.shape(),
            units: metric.kind.units(),
            currency: metric.currency,
            higher_is_better: metric.higher_is_better,
            arms: arms(exp, metric, &total),
            lifts: lifts(exp, metric, &total, inference, role == Role::Primary),
        });
    }
    correct_guardrails(&mut metrics, exp.stats.alpha);
    metrics
}

/// Fixed-horizon or sequential, as the test says.
fn inference_of(exp: &Experiment) -> Inference {
    if exp.stats.sequential {
        Inference::Sequential { tuning: exp.stats.sequential_tuning }
    } else {
        Inference::Fixed
    }
}

/// Builds the report of `exp` from its aggregates as of the shop-local day
/// `today`; `capping` says what the caps did to `rows` (empty when the
/// rows came capped, or not, from elsewhere), for the report to show.
///
/// # Panics
/// Never for a validated experiment whose metrics are in `catalog`.
pub fn analyze(
    exp: &Experiment,
    catalog: &Catalog,
    rows: &[AggregateRow],
    capping: Vec<CapApplied>,
    today: NaiveDate,
) -> Report {
    let k = exp.variants.len();
    let inference = inference_of(exp);
    // Days and cycles count from the phase's first exposure: a test (or a
    // new phase) without data has run no day and completed no cycle,
    // whatever its configured start.
    let first_exposure =
        rows.iter().filter(|r| exp.variant_index(&r.variant).is_some() && r.moments.n > 0).map(|r| r.date).min();
    let origin = first_exposure.unwrap_or(today + chrono::Duration::days(1));
    let by_metric = index_rows(exp, rows, origin);
    let metric_of = |name: &str| catalog.metric(name).expect("validated metric").clone();

    let metrics = metric_reports(exp, catalog, rows);

    let primary = metric_of(&exp.primary_metric);
    let primary_days = by_metric.get(&exp.primary_metric);
    let primary_total = sum_days(primary_days, k, |_| true);
    let length = exp.business_cycle_days;

    let cycle_reports: Vec<CycleReport> = cycles(origin, length, today)
        .into_iter()
        .map(|cycle| {
            let m = sum_days(primary_days, k, |d| cycle_of_day(d, length) == Some(cycle.index));
            CycleReport {
                cycle,
                arms: arms(exp, &primary, &m),
                lifts: lifts(exp, &primary, &m, Inference::Fixed, false),
            }
        })
        .collect();

    let mut daily = Vec::new();
    let mut cumulative = vec![Moments::default(); k];
    if let Some(days) = primary_days {
        for (day, arms_of_day) in days {
            for (c, m) in cumulative.iter_mut().zip(arms_of_day) {
                c.merge(m);
            }
            daily.push(DailyPoint {
                date: origin + chrono::Duration::days(*day),
                arms: arms(exp, &primary, &cumulative),
                lifts: lifts(exp, &primary, &cumulative, inference, false),
            });
        }
    }

    let srm = sample_ratio(exp, &primary_total);
    let cycles_completed = cycle_reports.iter().filter(|c| c.cycle.complete).count();
    let days_running = ((today - origin).num_days() + 1).max(0);
    // The pace comes from complete days: today's traffic is still arriving.
    let complete_days = (today - origin).num_days().max(1);
    let lead = lead_treatment(&metrics[0]).cloned();
    let consistency = lead.as_ref().and_then(|lead| consistency(&cycle_reports, lead, exp.stats.alpha));
    let later = Later { exp, metric: &primary, days: primary_days, cycles: &cycle_reports, complete_days };
    let persistence = lead.as_ref().and_then(|lead| later.persistence(lead));
    let cycles_to_decide = lead.as_ref().and_then(|lead| later.cycles_to_decide(lead, persistence.as_ref()));
    // Cycle `m − 1` is complete the day after its last day, `first + m·L`.
    let days_until_cycles =
        |m: u32| (origin + chrono::Duration::days(i64::from(m) * i64::from(length)) - today).num_days();
    let days_for_cycles = days_until_cycles(cycles_to_decide.unwrap_or(2).max(2));
    let sample_size = sample_size(exp, &primary, &primary_total, inference, complete_days, days_for_cycles);

    let mut report = Report {
        experiment: exp.id.to_string(),
        name: exp.name.clone(),
        hypothesis: exp.hypothesis.clone(),
        status: exp.status,
        concluded_winner: exp
            .winner
            .filter(|_| exp.status == Status::Concluded)
            .map(|w| exp.variants[w.get()].key.clone()),
        surface: exp.surface,
        as_of: today,
        first_exposure,
        days_running,
        alpha: exp.stats.alpha,
        inference,
        variants: exp.variants.iter().map(|v| v.key.clone()).collect(),
        primary_metric: exp.primary_metric.clone(),
        srm,
        sample_size,
        metrics,
        cycle_length_days: length,
        cycles_completed,
        cycles: cycle_reports,
        consistency,
        persistence,
        daily,
        verdict: Verdict::placeholder(),
        capping,
        blocked_by: match exp.status {
            Status::Draft => catalog.would_overlap(exp).into_iter().map(|(id, how)| (id.to_string(), how)).collect(),
            _ => Vec::new(),
        },
        segments: Vec::new(),
        segments_summary: Vec::new(),
    };
    report.verdict = verdict::decide(&report);
    report
}

/// The treatment whose result the cycles must confirm: the one the verdict
/// would name (the most significant better one, else the most significant
/// worse one), else the one with the smallest adjusted p-value.
pub fn lead_treatment(primary: &MetricReport) -> Option<&Lift> {
    let p = |l: &Lift| l.p_value_adjusted.unwrap_or(l.comparison.p_value);
    let most_significant = |direction: Option<Direction>| {
        primary.lifts.iter().filter(|l| direction.is_none_or(|d| l.direction == d)).min_by(|a, b| p(a).total_cmp(&p(b)))
    };
    most_significant(Some(Direction::Better))
        .or_else(|| most_significant(Some(Direction::Worse)))
        .or_else(|| most_significant(None))
}

/// Whether the lead treatment's lift differs between the last two complete
/// cycles (a z-test of the two cycle estimates).
fn consistency(cycles: &[CycleReport], lead: &Lift, alpha: f64) -> Option<Consistency> {
    let complete: Vec<&CycleReport> = cycles.iter().filter(|c| c.cycle.complete).collect();
    let [.., a, b] = complete.as_slice() else {
        return None;
    };
    let find = |c: &CycleReport| c.lifts.iter().find(|l| l.variant == lead.variant).cloned();
    let (la, lb) = (find(a)?, find(b)?);
    if la.comparison.not_computable.is_some() || lb.comparison.not_computable.is_some() {
        return None;
    }
    let p_value = consistency_p_value(
        la.comparison.relative_lift,
        la.comparison.std_error,
        lb.comparison.relative_lift,
        lb.comparison.std_error,
    );
    Some(Consistency {
        variant: lead.variant.clone(),
        cycles: (a.cycle.index, b.cycle.index),
        lifts: (la.comparison.relative_lift, lb.comparison.relative_lift),
        p_value,
        consistent: p_value >= alpha,
    })
}

/// What the novelty gate reads: the primary metric's days and cycles.
struct Later<'a> {
    exp: &'a Experiment,
    metric: &'a Metric,
    days: Option<&'a Days>,
    cycles: &'a [CycleReport],
    complete_days: i64,
}

impl Later<'_> {
    /// The lead's lift among the visitors of the later half of the complete
    /// cycles, held against its overall lift ([`hold`]); `None` before two
    /// cycles are complete.
    fn persistence(&self, lead: &Lift) -> Option<Persistence> {
        if lead.comparison.not_computable.is_some() {
            return None;
        }
        let power = self.exp.stats.power;
        let overall = lead.comparison.relative_lift;
        let complete: Vec<Cycle> = self.cycles.iter().filter(|c| c.cycle.complete).map(|c| c.cycle).collect();
        let length = self.exp.business_cycle_days;
        if complete.len() < 2 {
            return None;
        }
        let later = later_half(&complete);
        let (first, last) = (later[0].index, later[later.len() - 1].index);
        let k = self.exp.variants.len();
        let moments = sum_days(self.days, k, |d| cycle_of_day(d, length).is_some_and(|c| (first..=last).contains(&c)));
        let lifts = lifts(self.exp, self.metric, &moments, Inference::Fixed, false);
        let l = lifts.into_iter().find(|l| l.variant == lead.variant)?;
        if l.comparison.not_computable.is_some() {
            return None;
        }
        let (lift, se) = (l.comparison.relative_lift, l.comparison.std_error);
        let h = hold(overall, lift, se, power);
        Some(Persistence {
            variant: lead.variant.clone(),
            cycles: (first, last),
            overall_lift: overall,
            lift,
            std_error: se,
            hold: h,
            cycles_needed: cycles_needed(se, later.len() as f64, h.max_std_error).map(|m| m.max(complete.len() as u32)),
        })
    }

    /// Complete cycles a significant lead needs before the gate can decide:
    /// from its persistence once two cycles are complete, else estimated
    /// from the whole test's standard error and the cycles' worth of days
    /// it has seen. `None` when nothing waits on the cycles' size.
    fn cycles_to_decide(&self, lead: &Lift, persistence: Option<&Persistence>) -> Option<u32> {
        if !lead.significant {
            return None;
        }
        match persistence {
            Some(p) => p.cycles_needed.filter(|_| !p.hold.large_enough),
            None => {
                let length = f64::from(self.exp.business_cycle_days.max(1));
                let h = hold(lead.comparison.relative_lift, 0.0, f64::INFINITY, self.exp.stats.power);
                cycles_needed(lead.comparison.std_error, self.complete_days as f64 / length, h.max_std_error)
            }
        }
    }
}
