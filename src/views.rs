//! View models of the HTML report: the analysis shaped into the strings and
//! chart data the askama templates render (charts are drawn by
//! [`crate::charts`], numbers formatted by [`crate::format`]). Pure. Every text that a
//! definition or the storefront supplies reaches the page through askama,
//! which escapes it; this module only computes numbers and plain words.

use askama::Template;

use crate::analysis::{Arm, Direction, Lift, MetricReport, Report, Role};
use chrono::NaiveDate;

use crate::capping::CapApplied;
use crate::charts::{points, Chart, Scale, Series, COLORS, DASHES};
use crate::experiment::metric::Cap;
use crate::experiment::{Experiment, Status};
use crate::format::{self, days, format_value, level, pct, signed_pct, thousands};

pub struct Progress {
    /// Bar width, 0 to 100.
    pub percent: f64,
    pub text: String,
    pub conversions: String,
    pub cycles: String,
}

fn progress(report: &Report) -> Progress {
    let s = &report.sample_size;
    let (percent, text) = match (s.per_variant, s.progress) {
        (Some(n), Some(p)) => (
            (p * 100.0).clamp(0.0, 100.0),
            format!("{} of {} visitors per variant", pct(p.min(1.0)).replace(".0%", "%"), thousands(n)),
        ),
        _ => (0.0, "Sample size not known yet: it needs the control's spread".to_owned()),
    };
    let text = match s.days_left {
        Some(d) if d > 0 => format!("{text} · about {} left", days(d)),
        _ => text,
    };
    let conv: Vec<String> = s.conversions.iter().map(|c| thousands(c.round().max(0.0) as u64)).collect();
    let conversions = if report.primary().kind == "proportion" {
        format!("Conversions per variant: {} (rule of thumb: 350–400 each)", conv.join(" / "))
    } else {
        String::new()
    };
    let current = report.cycles.len();
    let cycles = if report.cycles_completed >= 2 {
        format!("{} business cycles complete", report.cycles_completed)
    } else if current == 0 {
        "No exposure yet".to_owned()
    } else {
        format!("cycle {} of 2 in progress", current.min(2))
    };
    Progress { percent, text, conversions, cycles: format!("Day {} · {cycles}", report.days_running) }
}

/// What both pages say about a test: who it is and its verdict.
pub struct Headline {
    pub id: String,
    pub name: String,
    pub surface: String,
    pub dimension: String,
    pub status: String,
    pub verdict_code: &'static str,
    pub verdict_label: &'static str,
    pub sentence: String,
}

impl Headline {
    fn new(e: &Experiment, r: &Report) -> Self {
        Headline {
            id: e.id.to_string(),
            name: e.name.clone(),
            surface: words(e.surface.as_str()),
            dimension: status_word(&e.dimension),
            status: status_word(&e.status),
            verdict_code: r.verdict.code.as_str(),
            verdict_label: if e.status == Status::Draft { "Draft" } else { r.verdict.code.label() },
            sentence: r.verdict.sentence.clone(),
        }
    }
}

pub struct IndexRow {
    pub head: Headline,
    pub progress: Progress,
}

#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage {
    pub rows: Vec<IndexRow>,
    /// Event names no metric reads, with their counts since start: often a
    /// typo in the storefront.
    pub unread_events: Vec<(String, String)>,
}

fn words(s: &str) -> String {
    s.replace('_', " ")
}

fn status_word<T: serde::Serialize>(x: &T) -> String {
    serde_json::to_value(x).ok().and_then(|v| v.as_str().map(words)).unwrap_or_default()
}

impl IndexPage {
    pub fn new(items: &[(&Experiment, &Report)], unread_events: &[(String, u64)]) -> Self {
        IndexPage {
            rows: items.iter().map(|(e, r)| IndexRow { head: Headline::new(e, r), progress: progress(r) }).collect(),
            unread_events: unread_events.iter().map(|(name, n)| (name.clone(), thousands(*n))).collect(),
        }
    }
}

pub struct VariantView {
    pub key: String,
    pub weight: String,
    pub payload: String,
    pub color: &'static str,
    pub control: bool,
}

pub struct MetricRow {
    pub variant: String,
    pub visitors: String,
    pub sum: String,
    pub value: String,
    pub lift: String,
    /// For a metric in money (a per-visitor value): what the lift is worth,
    /// per visitor and per 1,000 visitors.
    pub worth: String,
    pub ci: String,
    pub p_value: String,
    /// Chance to beat the control and the risk of shipping the variant
    /// (empty for the control, or where the table leaves them out).
    pub chance: String,
    pub risk: String,
    pub mark: &'static str,
    pub mark_class: &'static str,
}

pub struct MetricTable {
    pub label: String,
    pub role: &'static str,
    pub direction: &'static str,
    pub p_note: &'static str,
    /// Whether the table shows the Bayesian columns (the primary metric).
    pub bayesian: bool,
    pub rows: Vec<MetricRow>,
    /// What capping and CUPED did to this metric, one sentence each.
    pub notes: Vec<String>,
}

fn format_sum(kind: &str, arm: &Arm) -> String {
    match (kind, arm.denominator) {
        ("proportion", _) => thousands(arm.sum.round() as u64),
        (_, Some(d)) => format!("{:.2} / {:.0}", arm.sum, d),
        _ => format!("{:.2}", arm.sum),
    }
}

fn mark(l: &Lift) -> (&'static str, &'static str) {
    if l.comparison.not_computable.is_some() {
        return ("not enough data", "muted");
    }
    match l.direction {
        Direction::Better => ("significant: better", "better"),
        Direction::Worse => ("significant: worse", "worse"),
        Direction::Inconclusive => ("not significant yet", "muted"),
    }
}

fn lift_cells(report: &Report, l: Option<&Lift>) -> (String, String, String, &'static str, &'static str) {
    let Some(l) = l else {
        return ("baseline".into(), String::new(), String::new(), "control", "muted");
    };
    if l.comparison.not_computable.is_some() {
        let (m, c) = mark(l);
        return ("—".into(), "—".into(), "—".into(), m, c);
    }
    let ci =
        format!("{} to {} ({})", signed_pct(l.comparison.ci.0), signed_pct(l.comparison.ci.1), level(report.alpha));
    let p = l.p_value_adjusted.unwrap_or(l.comparison.p_value);
    let p_text = if p < 0.0001 { "< 0.0001".to_owned() } else { format!("{p:.4}") };
    let (m, c) = mark(l);
    (signed_pct(l.comparison.relative_lift), ci, p_text, m, c)
}

/// `0.42` → "+0.42 per visitor, about +420 per 1,000 visitors".
fn per_visitor_worth(absolute_lift: f64) -> String {
    let per_thousand = absolute_lift * 1000.0;
    let sign = if per_thousand < 0.0 { "-" } else { "+" };
    format!(
        "{absolute_lift:+.2} per visitor, about {sign}{} per 1,000 visitors",
        thousands(per_thousand.abs().round() as u64)
    )
}

/// "Capped at 412.50 (the 99th percentile of non-zero values): 31 of
/// 3,100 visitors were above it."
fn cap_note(c: &CapApplied) -> String {
    let Some(value) = c.value else {
        return "Capping: no values yet to take the percentile of, so nothing is capped.".to_owned();
    };
    let what = match c.cap {
        Cap::Absolute(_) => "a fixed cap".to_owned(),
        Cap::Percentile { percentile, ignore_zeros } => format!(
            "the {} percentile of {} values, all variants together",
            ordinal(percentile * 100.0),
            if ignore_zeros { "non-zero" } else { "all" }
        ),
    };
    format!(
        "Each visitor's value is capped at {value:.2} ({what}): {} of {} visitors were above it.",
        thousands(c.capped_visitors),
        thousands(c.visitors)
    )
}

/// `99.0` → "99th", `99.5` → "99.5th", `2.0` → "2nd".
fn ordinal(x: f64) -> String {
    let text = if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x}") };
    let suffix = match (x as u64 % 100, x as u64 % 10, x.fract() == 0.0) {
        (11..=13, _, true) | (_, _, false) => "th",
        (_, 1, _) => "st",
        (_, 2, _) => "nd",
        (_, 3, _) => "rd",
        _ => "th",
    };
    format!("{text}{suffix}")
}

/// "CUPED: the pre-period explains 23.0% of the lift's variance, so
/// intervals are 12.3% narrower than without it."
fn cuped_note(m: &MetricReport) -> Option<String> {
    let effects: Vec<_> = m.lifts.iter().filter_map(|l| l.cuped).collect();
    let least = effects.iter().map(|e| e.variance_reduction).min_by(f64::total_cmp)?;
    Some(format!(
        "CUPED: the visitors' values before their first exposure explain {} of the lift's variance, so intervals are {} narrower than without it.",
        pct(least.max(0.0)),
        pct(1.0 - (1.0 - least.clamp(0.0, 1.0)).sqrt())
    ))
}

fn metric_table(report: &Report, m: &MetricReport) -> MetricTable {
    let rows = m
        .arms
        .iter()
        .map(|arm| {
            let lift = m.lifts.iter().find(|l| l.variant == arm.variant);
            let (lift_text, ci, p_value, mark, mark_class) = lift_cells(report, lift);
            let computable = lift.filter(|l| l.comparison.not_computable.is_none());
            let (chance, risk) = computable
                .map(|l| (format::chance(l.bayesian.chance_to_win), format::risk(l.bayesian.risk_treatment)))
                .unwrap_or_default();
            let worth = computable
                .filter(|_| m.kind == "mean")
                .map(|l| per_visitor_worth(l.comparison.absolute_lift))
                .unwrap_or_default();
            MetricRow {
                variant: arm.variant.clone(),
                visitors: thousands(arm.visitors),
                sum: format_sum(m.kind, arm),
                value: format_value(m.kind, &m.name, arm.value),
                lift: lift_text,
                worth,
                ci,
                p_value,
                chance,
                risk,
                mark,
                mark_class,
            }
        })
        .collect();
    MetricTable {
        label: m.label.clone(),
        role: match m.role {
            Role::Primary => "Primary metric",
            Role::Guardrail => "Guardrail",
            Role::Secondary => "Secondary",
        },
        direction: if m.higher_is_better { "higher is better" } else { "lower is better" },
        p_note: if m.role == Role::Primary { "p-value (Holm)" } else { "p-value" },
        bayesian: m.role == Role::Primary,
        rows,
        notes: report.capping.iter().filter(|c| c.metric == m.name).map(cap_note).chain(cuped_note(m)).collect(),
    }
}

pub struct CycleRow {
    pub label: String,
    pub dates: String,
    pub state: &'static str,
    pub cells: Vec<String>,
}

/// The first and last day the daily series covers (the report's day when
/// it is empty).
fn date_span(report: &Report) -> (NaiveDate, NaiveDate) {
    let first = report.daily.first().map_or(report.as_of, |d| d.date);
    (first, report.daily.last().map_or(first, |d| d.date))
}

fn cumulative_chart(report: &Report, kind: &str, name: &str) -> Chart {
    let per_variant: Vec<Vec<(NaiveDate, Option<f64>)>> = (0..report.variants.len())
        .map(|v| {
            report.daily.iter().map(|d| (d.date, d.arms.get(v).filter(|a| a.visitors > 0).map(|a| a.value))).collect()
        })
        .collect();
    let (first, last) = date_span(report);
    let scale = Scale::new(first, last, per_variant.iter().flatten().filter_map(|(_, y)| *y), false);
    let fmt = |v: f64| format_value(kind, name, v);
    let series = report
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| Series {
            label: v.clone(),
            color: COLORS[i % COLORS.len()],
            dash: DASHES[i % DASHES.len()],
            points: points(&scale, &per_variant[i]),
        })
        .collect();
    let last = report.daily.last();
    let summary = match last {
        Some(d) => format!(
            "Cumulative {} by day of first exposure; on {} it stands at {}.",
            report.primary().label.to_lowercase(),
            d.date.format("%b %-d"),
            d.arms.iter().map(|a| format!("{} {}", a.variant, fmt(a.value))).collect::<Vec<_>>().join(", ")
        ),
        None => "No data yet.".to_owned(),
    };
    let mut header = vec!["Date".to_owned()];
    header.extend(report.variants.iter().cloned());
    let table = report
        .daily
        .iter()
        .map(|d| std::iter::once(d.date.to_string()).chain(d.arms.iter().map(|a| fmt(a.value))).collect())
        .collect();
    Chart {
        title: format!("Cumulative {} by day", report.primary().label.to_lowercase()),
        summary,
        y_ticks: scale.y_ticks(fmt),
        x_ticks: scale.x_ticks(),
        series,
        band: String::new(),
        zero_y: None,
        header,
        table,
    }
}

fn lift_chart(report: &Report) -> Chart {
    let lift_of = |d: &crate::analysis::DailyPoint, t: usize| {
        d.lifts.get(t).filter(|l| l.comparison.not_computable.is_none()).map(|l| l.comparison.clone())
    };
    let treatments = report.variants.len().saturating_sub(1);
    let all = report.daily.iter().flat_map(|d| (0..treatments).filter_map(move |t| lift_of(d, t)));
    let (first, last) = date_span(report);
    let scale = Scale::new(first, last, all.flat_map(|c| [c.ci.0, c.ci.1, c.relative_lift]), true);
    let series = (0..treatments)
        .map(|t| Series {
            label: format!("{} vs {}", report.variants[t + 1], report.variants[0]),
            color: COLORS[(t + 1) % COLORS.len()],
            dash: DASHES[(t + 1) % DASHES.len()],
            points: points(
                &scale,
                &report.daily.iter().map(|d| (d.date, lift_of(d, t).map(|c| c.relative_lift))).collect::<Vec<_>>(),
            ),
        })
        .collect();
    let band = if treatments >= 1 {
        let upper: Vec<String> = report
            .daily
            .iter()
            .filter_map(|d| lift_of(d, 0).map(|c| format!("{:.1},{:.1}", scale.x(d.date), scale.y(c.ci.1))))
            .collect();
        let lower: Vec<String> = report
            .daily
            .iter()
            .rev()
            .filter_map(|d| lift_of(d, 0).map(|c| format!("{:.1},{:.1}", scale.x(d.date), scale.y(c.ci.0))))
            .collect();
        if upper.len() >= 2 {
            format!("{} {}", upper.join(" "), lower.join(" "))
        } else {
            String::new()
        }
    } else {
        String::new()
    };
    let summary = match report.daily.last().and_then(|d| lift_of(d, 0)) {
        Some(c) if treatments >= 1 => format!(
            "Relative lift of {} over {} by day, with its {} interval as a band; latest {} ({} to {}).",
            report.variants[1],
            report.variants[0],
            level(report.alpha),
            signed_pct(c.relative_lift),
            signed_pct(c.ci.0),
            signed_pct(c.ci.1)
        ),
        _ => "Not enough data for a lift yet.".to_owned(),
    };
    let mut header = vec!["Date".to_owned()];
    for t in 0..treatments {
        header.push(format!("{} lift", report.variants[t + 1]));
        header.push("interval".to_owned());
    }
    let table = report
        .daily
        .iter()
        .map(|d| {
            let mut row = vec![d.date.to_string()];
            for t in 0..treatments {
                match lift_of(d, t) {
                    Some(c) => {
                        row.push(signed_pct(c.relative_lift));
                        row.push(format!("{} to {}", signed_pct(c.ci.0), signed_pct(c.ci.1)));
                    }
                    None => row.extend(["—".to_owned(), "—".to_owned()]),
                }
            }
            row
        })
        .collect();
    Chart {
        title: "Relative lift by day".to_owned(),
        summary,
        y_ticks: scale.y_ticks(signed_pct),
        x_ticks: scale.x_ticks(),
        zero_y: scale.has_data.then(|| scale.y(0.0)),
        series,
        band,
        header,
        table,
    }
}

#[derive(Template)]
#[template(path = "experiment.html")]
pub struct ExperimentPage {
    pub head: Headline,
    pub hypothesis: String,
    pub srm_banner: Option<String>,
    pub phase_note: Option<String>,
    pub inference: &'static str,
    pub variants: Vec<VariantView>,
    pub progress: Progress,
    pub primary: MetricTable,
    pub others: Vec<MetricTable>,
    pub cycle_header: Vec<String>,
    pub cycles: Vec<CycleRow>,
    pub consistency: Option<String>,
    pub charts: Vec<Chart>,
    pub as_of: String,
}

impl ExperimentPage {
    /// `earlier_phase_visitors`: visitors of earlier allocation phases, left
    /// out of this report.
    pub fn new(e: &Experiment, r: &Report, earlier_phase_visitors: u64) -> Self {
        let primary = r.primary();
        let srm_banner = r.srm.mismatch.then(|| {
            format!(
                "Sample ratio mismatch: visitors split {} against the configured {} (p = {:.1e}). Something drops or duplicates visitors in one variant, such as a redirect, a bot filter, a caching layer or a tracking call that fires only for one variant. Until the cause is fixed, no lift on this page can be trusted.",
                r.srm.observed_shares.iter().map(|s| pct(*s)).collect::<Vec<_>>().join(" / "),
                r.srm.expected_shares.iter().map(|s| pct(*s)).collect::<Vec<_>>().join(" / "),
                r.srm.p_value
            )
        });
        let phase_note = (e.allocation_version > 1).then(|| {
            format!(
                "Allocation version {}: this report counts only visitors exposed since the allocation last changed; {} visitors of earlier versions are kept but left out.",
                e.allocation_version,
                thousands(earlier_phase_visitors)
            )
        });
        let cycles = r
            .cycles
            .iter()
            .map(|c| CycleRow {
                label: format!("Cycle {}", c.cycle.index + 1),
                dates: format!("{} – {}", c.cycle.start.format("%b %-d"), c.cycle.end.format("%b %-d")),
                state: if c.cycle.complete { "complete" } else { "in progress" },
                cells: c
                    .arms
                    .iter()
                    .map(|a| {
                        let value = format_value(primary.kind, &primary.name, a.value);
                        match c.lifts.iter().find(|l| l.variant == a.variant) {
                            Some(l) if l.comparison.not_computable.is_none() => {
                                format!("{value} ({})", signed_pct(l.comparison.relative_lift))
                            }
                            _ => value,
                        }
                    })
                    .collect(),
            })
            .collect();
        let consistency = r.consistency.as_ref().map(|c| {
            let same_sign = (c.lifts.0 > 0.0) == (c.lifts.1 > 0.0);
            let reading = match (c.consistent, same_sign, c.comparable) {
                (false, _, _) => "they disagree".to_owned(),
                (true, true, true) => "consistent".to_owned(),
                (true, false, _) => format!(
                    "they point opposite ways, and the cycles are too small to tell whether that is chance (a change under {} would go unseen)",
                    pct(c.detectable_change)
                ),
                (true, true, false) => format!(
                    "no significant change, but the cycles are too small to rule out a fading effect (a change under {} would go unseen)",
                    pct(c.detectable_change)
                ),
            };
            format!(
                "Last two complete cycles for {}: {} then {}; {reading} (p = {:.3}).",
                c.variant,
                signed_pct(c.lifts.0),
                signed_pct(c.lifts.1),
                c.p_value
            )
        });
        ExperimentPage {
            head: Headline::new(e, r),
            hypothesis: e.hypothesis.clone(),
            srm_banner,
            phase_note,
            inference: if e.stats.sequential {
                "Sequential test: safe to look every day."
            } else {
                "Fixed-horizon test: judge it once the sample size is reached."
            },
            variants: e
                .variants
                .iter()
                .enumerate()
                .map(|(i, v)| VariantView {
                    key: v.key.clone(),
                    weight: pct(v.weight.get()).replace(".0%", "%"),
                    payload: serde_json::to_string_pretty(&v.payload).unwrap_or_default(),
                    color: COLORS[i % COLORS.len()],
                    control: i == 0,
                })
                .collect(),
            progress: progress(r),
            primary: metric_table(r, primary),
            others: r.metrics.iter().skip(1).map(|m| metric_table(r, m)).collect(),
            cycle_header: r.variants.clone(),
            cycles,
            consistency,
            charts: vec![cumulative_chart(r, primary.kind, &primary.name), lift_chart(r)],
            as_of: r.as_of.to_string(),
        }
    }
}
