//! `GET /api/v1/experiments/{id}/report` and `offerlab analyze`: a test's
//! report, version 1. Built from [`crate::analysis::Report`], field by
//! field; the domain's types do not serialise themselves.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{mirror, Status, Surface, VerdictCode};
use crate::analysis as domain;

/// A test's numbers and verdict as of one shop-local day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub experiment: String,
    pub name: String,
    pub hypothesis: String,
    pub status: Status,
    /// The variant everyone now gets, when the test is concluded.
    pub concluded_winner: Option<String>,
    pub surface: Surface,
    pub as_of: NaiveDate,
    /// The phase's first day with an exposure; days and cycles count from it.
    pub first_exposure: Option<NaiveDate>,
    /// Days since the first exposure, that day included; 0 without data.
    pub days_running: i64,
    pub alpha: f64,
    pub inference: Inference,
    pub variants: Vec<String>,
    pub primary_metric: String,
    pub srm: SampleRatio,
    pub sample_size: SampleSize,
    /// The primary metric first, then guardrails, then secondary metrics.
    pub metrics: Vec<MetricReport>,
    pub cycle_length_days: u32,
    pub cycles_completed: usize,
    pub cycles: Vec<CycleReport>,
    pub consistency: Option<Consistency>,
    pub persistence: Option<Persistence>,
    /// The primary metric, cumulative up to each day with data.
    pub daily: Vec<DailyPoint>,
    pub verdict: Verdict,
    /// What each capped metric's cap did; empty when the aggregates came
    /// capped (or not) from elsewhere.
    pub capping: Vec<CapApplied>,
    /// The allocation's version: it grows when weights, coverage or
    /// variants change, and each version is a phase of its own.
    pub allocation_version: u32,
    /// Visitors of earlier phases, whom this report leaves out; absent
    /// where the source holds only the current phase (`offerlab analyze`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier_phase_visitors: Option<u64>,
    /// What the breakdowns by segment found (`GET .../segments` has them
    /// whole); empty without segments.
    #[serde(default)]
    pub segments_summary: Vec<super::segments::Finding>,
}

impl Report {
    /// The wire form of `r`, a report of a test at `allocation_version`.
    pub fn new(r: &domain::Report, allocation_version: u32, earlier_phase_visitors: Option<u64>) -> Self {
        Report {
            experiment: r.experiment.clone(),
            name: r.name.clone(),
            hypothesis: r.hypothesis.clone(),
            status: r.status.into(),
            concluded_winner: r.concluded_winner.clone(),
            surface: r.surface.into(),
            as_of: r.as_of,
            first_exposure: r.first_exposure,
            days_running: r.days_running,
            alpha: r.alpha,
            inference: r.inference.into(),
            variants: r.variants.clone(),
            primary_metric: r.primary_metric.clone(),
            srm: (&r.srm).into(),
            sample_size: (&r.sample_size).into(),
            metrics: r.metrics.iter().map(Into::into).collect(),
            cycle_length_days: r.cycle_length_days,
            cycles_completed: r.cycles_completed,
            cycles: r.cycles.iter().map(Into::into).collect(),
            consistency: r.consistency.as_ref().map(Into::into),
            persistence: r.persistence.as_ref().map(Into::into),
            daily: r.daily.iter().map(Into::into).collect(),
            verdict: (&r.verdict).into(),
            capping: r.capping.iter().map(Into::into).collect(),
            allocation_version,
            earlier_phase_visitors,
            segments_summary: r.segments_summary.iter().map(Into::into).collect(),
        }
    }

    /// The primary metric's numbers.
    pub fn primary(&self) -> &MetricReport {
        &self.metrics[0]
    }
}

/// How intervals and p-values were computed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Inference {
    /// Valid when the data is looked at once, at the planned sample size.
    Fixed,
    /// Valid at every look (confidence sequences tuned for `tuning` visitors).
    Sequential { tuning: f64 },
}

impl From<crate::stats::Inference> for Inference {
    fn from(i: crate::stats::Inference) -> Self {
        match i {
            crate::stats::Inference::Fixed => Inference::Fixed,
            crate::stats::Inference::Sequential { tuning } => Inference::Sequential { tuning },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub code: VerdictCode,
    /// The verdict in one sentence a marketer can act on.
    pub sentence: String,
    /// The variant to ship, when there is one.
    pub winner: Option<String>,
}

impl From<&domain::Verdict> for Verdict {
    fn from(v: &domain::Verdict) -> Self {
        Verdict { code: v.code.into(), sentence: v.sentence.clone(), winner: v.winner.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRatio {
    pub p_value: f64,
    /// Enough visitors in every variant to judge.
    pub judged: bool,
    pub mismatch: bool,
    pub expected_shares: Vec<f64>,
    pub observed_shares: Vec<f64>,
}

impl From<&domain::SampleRatio> for SampleRatio {
    fn from(s: &domain::SampleRatio) -> Self {
        SampleRatio {
            p_value: s.p_value,
            judged: s.judged,
            mismatch: s.mismatch,
            expected_shares: s.expected_shares.clone(),
            observed_shares: s.observed_shares.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleSize {
    /// Visitors each variant needs; absent until the metric's spread is known.
    pub per_variant: Option<u64>,
    /// The control value the calculation used, and whether it was observed
    /// (else the planned baseline).
    pub baseline: f64,
    pub baseline_observed: bool,
    /// The smallest variant's visitors over `per_variant`.
    pub progress: Option<f64>,
    pub reached: bool,
    pub smallest_variant_visitors: u64,
    /// Conversions (or value sums) per variant on the primary metric.
    pub conversions: Vec<f64>,
    /// About how many more days, at the traffic so far, until the verdict
    /// can be final; absent before traffic or while the size is unknown.
    pub days_left: Option<u64>,
}

impl From<&domain::SampleSize> for SampleSize {
    fn from(s: &domain::SampleSize) -> Self {
        SampleSize {
            per_variant: s.per_variant,
            baseline: s.baseline,
            baseline_observed: s.baseline_observed,
            progress: s.progress,
            reached: s.reached,
            smallest_variant_visitors: s.smallest_variant_visitors,
            conversions: s.conversions.clone(),
            days_left: s.days_left,
        }
    }
}

mirror!(
    /// How a metric's value reads: a share (a percent), an amount (money in
    /// `currency`), a count, or a plain number.
    Unit from crate::experiment::Unit { Share, Amount, Count, Number }
);
mirror!(
    /// A metric's part in the test.
    Role from domain::Role { Primary, Guardrail, Secondary }
);
mirror!(
    /// What a metric averages over visitors.
    Shape from crate::experiment::Shape { Proportion, Mean, Ratio }
);
mirror!(
    /// Significant and in the metric's good direction, its bad one, or not
    /// significant.
    Direction from domain::Direction { Better, Worse, Inconclusive }
);
mirror!(
    /// Why a comparison has no interval (it then reads lift 0, p = 1).
    NotComputable from crate::stats::NotComputable { ControlMeanZero, ZeroVariance }
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricReport {
    pub name: String,
    pub label: String,
    pub role: Role,
    pub kind: Shape,
    /// The unit of `value` (and of the lifts' absolute differences).
    pub unit: Unit,
    /// The shop's ISO 4217 currency (`metrics.toml`), or null; amounts
    /// stay plain numbers.
    pub currency: Option<crate::currency::Currency>,
    pub higher_is_better: bool,
    pub arms: Vec<Arm>,
    pub lifts: Vec<Lift>,
}

impl From<&domain::MetricReport> for MetricReport {
    fn from(m: &domain::MetricReport) -> Self {
        MetricReport {
            name: m.name.clone(),
            label: m.label.clone(),
            role: m.role.into(),
            kind: m.kind.into(),
            unit: m.units.value.into(),
            currency: m.currency,
            higher_is_better: m.higher_is_better,
            arms: arms(&m.arms),
            lifts: lifts(&m.lifts),
        }
    }
}

/// One variant's numbers on one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

pub(super) fn arms(arms: &[domain::Arm]) -> Vec<Arm> {
    arms.iter()
        .map(|a| Arm {
            variant: a.variant.clone(),
            visitors: a.visitors,
            sum: a.sum,
            denominator: a.denominator,
            value: a.value,
        })
        .collect()
}

/// A treatment against the control on one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lift {
    pub variant: String,
    pub control_mean: f64,
    pub treatment_mean: f64,
    /// `mean_t − mean_c`, and its interval.
    pub absolute_lift: f64,
    pub absolute_ci: (f64, f64),
    /// `(mean_t − mean_c) / |mean_c|`, and its interval at level `1 − alpha`.
    pub relative_lift: f64,
    pub ci: (f64, f64),
    /// Standard error of the relative lift.
    pub std_error: f64,
    /// Two-sided p-value against no lift.
    pub p_value: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub dof: f64,
    pub not_computable: Option<NotComputable>,
    /// Holm-adjusted (across treatments on the primary metric, across
    /// guardrails × treatments on guardrails).
    pub p_value_adjusted: Option<f64>,
    /// The p-value the verdict uses is below alpha.
    pub significant: bool,
    pub direction: Direction,
    /// Chance to beat the control and risk; informs, never decides.
    pub bayesian: Bayesian,
    /// What CUPED did, when the metric has it.
    pub cuped: Option<CupedEffect>,
}

pub(super) fn lifts(lifts: &[domain::Lift]) -> Vec<Lift> {
    lifts
        .iter()
        .map(|l| {
            let c = &l.comparison;
            Lift {
                variant: l.variant.clone(),
                control_mean: c.control_mean,
                treatment_mean: c.treatment_mean,
                absolute_lift: c.absolute_lift,
                absolute_ci: c.absolute_ci,
                relative_lift: c.relative_lift,
                ci: c.ci,
                std_error: c.std_error,
                p_value: c.p_value,
                dof: c.dof,
                not_computable: c.not_computable.map(Into::into),
                p_value_adjusted: l.p_value_adjusted,
                significant: l.significant,
                direction: l.direction.into(),
                bayesian: Bayesian {
                    chance_to_win: l.bayesian.chance_to_win,
                    risk_treatment: l.bayesian.risk_treatment,
                    risk_control: l.bayesian.risk_control,
                    credible_interval: l.bayesian.credible_interval,
                },
                cuped: l.cuped.map(|e| CupedEffect {
                    theta: e.theta,
                    variance_reduction: e.variance_reduction,
                    unadjusted_ci: e.unadjusted_ci,
                    adjusted_means: e.adjusted_means,
                    pre_means: e.pre_means,
                }),
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bayesian {
    /// Posterior probability that the treatment is better, in the metric's
    /// good direction.
    pub chance_to_win: f64,
    /// Expected relative loss of shipping the treatment.
    pub risk_treatment: f64,
    /// Expected relative loss of keeping the control.
    pub risk_control: f64,
    pub credible_interval: (f64, f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CupedEffect {
    /// `cov(x, c)/var(c)` over both arms.
    pub theta: f64,
    /// The share of the lift's variance the pre-period explained.
    pub variance_reduction: f64,
    /// The relative lift's interval without the adjustment.
    pub unadjusted_ci: (f64, f64),
    /// The control's and the treatment's adjusted values.
    pub adjusted_means: (f64, f64),
    /// The control's and the treatment's covariate means.
    pub pre_means: (f64, f64),
}

/// The primary metric in one business cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleReport {
    pub index: u32,
    /// First and last day (inclusive).
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// The cycle has ended as of the report's day.
    pub complete: bool,
    pub arms: Vec<Arm>,
    pub lifts: Vec<Lift>,
}

impl From<&domain::CycleReport> for CycleReport {
    fn from(c: &domain::CycleReport) -> Self {
        CycleReport {
            index: c.cycle.index,
            start: c.cycle.start,
            end: c.cycle.end,
            complete: c.cycle.complete,
            arms: arms(&c.arms),
            lifts: lifts(&c.lifts),
        }
    }
}

/// Whether the lead treatment's lift agreed between the first two cycles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consistency {
    pub variant: String,
    pub cycles: (u32, u32),
    pub lifts: (f64, f64),
    pub p_value: f64,
    pub consistent: bool,
}

impl From<&domain::Consistency> for Consistency {
    fn from(c: &domain::Consistency) -> Self {
        Consistency {
            variant: c.variant.clone(),
            cycles: c.cycles,
            lifts: c.lifts,
            p_value: c.p_value,
            consistent: c.consistent,
        }
    }
}

/// Whether the lead treatment's lift held in the later half of the
/// complete cycles: the novelty gate of a winner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Persistence {
    pub variant: String,
    /// The first and last complete cycle of the later half.
    pub cycles: (u32, u32),
    /// The whole test's lift `L`.
    pub overall_lift: f64,
    /// The lift among the later cycles' visitors, and its standard error.
    pub lift: f64,
    pub std_error: f64,
    /// `|L|/2`: the later lift, signed the winning way, must reach it.
    pub threshold: f64,
    /// The later cycles' standard error may be at most this.
    pub max_std_error: f64,
    pub large_enough: bool,
    pub held: bool,
    /// Complete cycles needed for the later half to be large enough.
    pub cycles_needed: Option<u32>,
}

impl From<&domain::Persistence> for Persistence {
    fn from(p: &domain::Persistence) -> Self {
        Persistence {
            variant: p.variant.clone(),
            cycles: p.cycles,
            overall_lift: p.overall_lift,
            lift: p.lift,
            std_error: p.std_error,
            threshold: p.hold.threshold,
            max_std_error: p.hold.max_std_error,
            large_enough: p.hold.large_enough,
            held: p.hold.held,
            cycles_needed: p.cycles_needed,
        }
    }
}

/// The primary metric, cumulative up to and including one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyPoint {
    pub date: NaiveDate,
    pub arms: Vec<Arm>,
    pub lifts: Vec<Lift>,
}

impl From<&domain::DailyPoint> for DailyPoint {
    fn from(d: &domain::DailyPoint) -> Self {
        DailyPoint { date: d.date, arms: arms(&d.arms), lifts: lifts(&d.lifts) }
    }
}

/// What a cap did to one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapApplied {
    pub metric: String,
    pub cap: Cap,
    /// The value visitors were capped at; absent when a percentile had no
    /// values to come from.
    pub value: Option<f64>,
    /// Visitors whose value was above the cap, of all visitors.
    pub capped_visitors: u64,
    pub visitors: u64,
}

/// A metric's cap as metrics.toml sets it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cap {
    /// A fixed cap, in the metric's unit.
    Absolute(f64),
    /// A percentile of the visitors' values (of the non-zero ones with
    /// `ignore_zeros`).
    Percentile { percentile: f64, ignore_zeros: bool },
}

impl From<&crate::capping::CapApplied> for CapApplied {
    fn from(c: &crate::capping::CapApplied) -> Self {
        CapApplied {
            metric: c.metric.clone(),
            cap: match c.cap {
                crate::experiment::Cap::Absolute(x) => Cap::Absolute(x),
                crate::experiment::Cap::Percentile { percentile, ignore_zeros } => {
                    Cap::Percentile { percentile, ignore_zeros }
                }
            },
            value: c.value,
            capped_visitors: c.capped_visitors,
            visitors: c.visitors,
        }
    }
}
