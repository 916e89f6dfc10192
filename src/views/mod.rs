//! View models of the HTML report: the analysis shaped into the strings and
//! chart data the askama templates render (charts are drawn by
//! [`crate::charts`], numbers formatted by [`crate::format`]). Pure. Every text that a
//! definition or the storefront supplies reaches the page through askama,
//! which escapes it; this module only computes numbers and plain words.

pub mod segments;

use askama::Template;

use crate::analysis::{Arm, Direction, Lift, MetricReport, Report, Role};
use chrono::NaiveDate;

use crate::analysis::verdict::cycles_word;
use crate::capping::CapApplied;
use crate::charts::{points, Chart, Scale, Series, COLORS, DASHES};
use crate::experiment::metric::Cap;
use crate::experiment::{Experiment, Shape, Status};
use crate::format::{self, days, level, pct, signed_pct, thousands};

pub struct Progress {
    /// Bar width, 0 to 100.
    pub percent: f64,
    pub text: String,
    pub conversions: String,
    pub cycles: String,
}

/// One progress line whose parts agree, each saying what is done or what
/// is still missing: the sample, the two full cycles, the later cycles'
/// size while a lift waits on it, and the days left.
fn progress(report: &Report) -> Progress {
    let s = &report.sample_size;
    let word = cycles_word(report);
    let (percent, sample) = match (s.per_variant, s.progress) {
        (Some(n), Some(p)) if p >= 1.0 => (
            100.0,
            format!(
                "Sample reached: {} of {} visitors per variant",
                thousands(s.smallest_variant_visitors),
                thousands(n)
            ),
        ),
        (Some(n), Some(p)) => (
            (p * 100.0).clamp(0.0, 100.0),
            format!(
                "{} of the sample: {} of {} visitors per variant, {} more needed",
                pct(p).replace(".0%", "%"),
                thousands(s.smallest_variant_visitors),
                thousands(n),
                thousands(n.saturating_sub(s.smallest_variant_visitors))
            ),
        ),
        _ => (0.0, "Sample size not known yet: it needs the control's spread".to_owned()),
    };
    let mut parts = vec![sample];
    parts.push(if report.cycles_completed >= 2 {
        format!("{} full {word} complete", report.cycles_completed)
    } else {
        format!("{} of 2 full {word} complete", report.cycles_completed)
    });
    let waiting_on_size = report.persistence.as_ref().filter(|p| !p.hold.large_enough).is_some()
        && crate::analysis::lead_treatment(report.primary()).is_some_and(|l| l.significant);
    if waiting_on_size {
        parts.push(format!("the later {word} still too small to confirm the lift"));
    }
    parts.push(match s.days_left {
        Some(d) if d > 0 => format!("about {} left", days(d)),
        Some(_) => "nothing missing".to_owned(),
        None => "days left not known yet".to_owned(),
    });
    let conv: Vec<String> = s.conversions.iter().map(|c| thousands(c.round().max(0.0) as u64)).collect();
    let conversions = match (report.primary().kind, s.reached) {
        (Shape::Proportion, true) => format!("Conversions per variant: {}", conv.join(" / ")),
        (Shape::Proportion, false) => format!(
            "Conversions per variant: {} (the rule of thumb of 350–400 each is a floor, not the goal: the sample size decides)",
            conv.join(" / ")
        ),
        _ => String::new(),
    };
    Progress { percent, text: parts.join(" · "), conversions, cycles: format!("Day {}", report.days_running) }
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
    /// Each webhook of `notify.toml` and how its last delivery ended.
    pub webhooks: Vec<WebhookRow>,
}

/// One webhook on the list page.
pub struct WebhookRow {
    pub name: String,
    /// Scheme and host only: a webhook's path may be its secret.
    pub target: String,
    /// "Delivered 2026-11-30 12:00 UTC (HTTP 200): Warranty placement,
    /// Validated winner", or that nothing was sent yet.
    pub last: String,
    /// The last delivery failed (it is shown as a problem).
    pub failed: bool,
}

impl WebhookRow {
    pub fn new(hook: &crate::experiment::Webhook, last: Option<&crate::notify::LastDelivery>) -> WebhookRow {
        let (last, failed) = match last {
            None => ("Nothing sent yet: no verdict it follows has changed".to_owned(), false),
            Some(l) => {
                let what = if l.delivered { "Delivered" } else { "Not delivered" };
                let outcome = if l.outcome.chars().all(|c| c.is_ascii_digit()) {
                    format!("HTTP {}", l.outcome)
                } else {
                    l.outcome.clone()
                };
                let code = crate::analysis::VerdictCode::parse(&l.code).map_or(l.code.as_str(), |c| c.label());
                let tries = if l.attempts == 1 { "1 try".to_owned() } else { format!("{} tries", l.attempts) };
                let at = l.at.format("%Y-%m-%d %H:%M UTC");
                (format!("{what} {at} ({outcome}, {tries}): {}, {code}", l.experiment), !l.delivered)
            }
        };
        WebhookRow { name: hook.name.clone(), target: hook.shown_url(), last, failed }
    }
}

fn words(s: &str) -> String {
    s.replace('_', " ")
}

fn status_word<T: serde::Serialize>(x: &T) -> String {
    serde_json::to_value(x).ok().and_then(|v| v.as_str().map(words)).unwrap_or_default()
}

impl IndexPage {
    pub fn new(items: &[(&Experiment, &Report)], unread_events: &[(String, u64)], webhooks: Vec<WebhookRow>) -> Self {
        IndexPage {
            rows: items.iter().map(|(e, r)| IndexRow { head: Headline::new(e, r), progress: progress(r) }).collect(),
            unread_events: unread_events.iter().map(|(name, n)| (name.clone(), thousands(*n))).collect(),
            webhooks,
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

/// A metric's value in its unit and currency.
fn shown(m: &MetricReport, x: f64) -> String {
    format::in_unit(m.units.value, m.currency, x)
}

/// An arm's total, over its denominator for a ratio: "€1,069,105.93 / 8,592".
fn format_sum(m: &MetricReport, arm: &Arm) -> String {
    let total = format::in_unit(m.units.total, m.currency, arm.sum);
    match (m.units.denominator, arm.denominator) {
        (Some(unit), Some(d)) => format!("{total} / {}", format::in_unit(unit, m.currency, d)),
        _ => total,
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
fn per_visitor_worth(m: &MetricReport, absolute_lift: f64) -> String {
    let signed = |x: f64| format::signed_in_unit(m.units.value, m.currency, x);
    format!("{} per visitor, about {} per 1,000 visitors", signed(absolute_lift), signed(absolute_lift * 1000.0))
}

/// "Capped at 412.50 (the 99th percentile of non-zero values): 31 of
/// 3,100 visitors were above it."
fn cap_note(m: &MetricReport, c: &CapApplied) -> String {
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
        "Each visitor's value is capped at {} ({what}): {} of {} visitors were above it.",
        format::in_unit(m.units.total, m.currency, value),
        thousands(c.capped_visitors),
        thousands(c.visitors)
    )
}

/// `99.0` → "99th", `99.5` → "99.5th", `2.0` → "2nd"; a percentile
/// written `0.57` reads "57th", not the "56.99999999999999th" its product
/// by 100 is in binary (so the value is rounded to 9 decimals first).
fn ordinal(x: f64) -> String {
    let x = (x * 1e9).round() / 1e9;
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
/// intervals are 12.3% narrower than without it. Values are adjusted ..."
/// and, for each treatment whose observed values point the other way than
/// its adjusted lift, why.
fn cuped_notes(m: &MetricReport) -> Vec<String> {
    let effects: Vec<_> = m.lifts.iter().filter_map(|l| l.cuped).collect();
    let Some(least) = effects.iter().map(|e| e.variance_reduction).min_by(f64::total_cmp) else {
        return Vec::new();
    };
    let mut notes = vec![format!(
        "CUPED: the visitors' values before their first exposure explain {} of the lift's variance, so intervals are {} narrower than without it. Values shown are adjusted for what each arm's visitors did before the test (as seen in brackets).",
        pct(least.max(0.0)),
        pct(1.0 - (1.0 - least.clamp(0.0, 1.0)).sqrt())
    )];
    let control = m.arms.first();
    for l in &m.lifts {
        let (Some(e), Some(c), Some(t)) = (l.cuped, control, m.arms.iter().find(|a| a.variant == l.variant)) else {
            continue;
        };
        let seen = t.value - c.value;
        if l.comparison.not_computable.is_none() && seen != 0.0 && (seen > 0.0) != (l.comparison.absolute_lift > 0.0) {
            let value = |x| shown(m, x);
            notes.push(format!(
                "{} and {} differed before the test ({} against {} per visitor), so the lift ({}) is corrected for that head start: adjusted {} against {}, though the values seen were {} against {}.",
                t.variant,
                c.variant,
                value(e.pre_means.1),
                value(e.pre_means.0),
                signed_pct(l.comparison.relative_lift),
                value(e.adjusted_means.1),
                value(e.adjusted_means.0),
                value(t.value),
                value(c.value),
            ));
        }
    }
    notes
}

/// An arm's value as the lifts read it: under CUPED the adjusted value,
/// with the value seen in brackets (the control's from the comparison with
/// the first treatment); else the value seen.
fn arm_value(m: &MetricReport, arm: &Arm) -> String {
    let value = |x| shown(m, x);
    let adjusted = match m.lifts.iter().find(|l| l.variant == arm.variant) {
        Some(l) => l.cuped.map(|e| e.adjusted_means.1),
        None => m.lifts.first().and_then(|l| l.cuped).map(|e| e.adjusted_means.0),
    };
    match adjusted {
        Some(a) => format!("{} ({})", value(a), value(arm.value)),
        None => value(arm.value),
    }
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
                .filter(|_| m.kind == Shape::Mean)
                .map(|l| per_visitor_worth(m, l.comparison.absolute_lift))
                .unwrap_or_default();
            MetricRow {
                variant: arm.variant.clone(),
                visitors: thousands(arm.visitors),
                sum: format_sum(m, arm),
                value: arm_value(m, arm),
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
        notes: report
            .capping
            .iter()
            .filter(|c| c.metric == m.name)
            .map(|c| cap_note(m, c))
            .chain(cuped_notes(m))
            .collect(),
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

fn cumulative_chart(report: &Report, m: &MetricReport) -> Chart {
    let per_variant: Vec<Vec<(NaiveDate, Option<f64>)>> = (0..report.variants.len())
        .map(|v| {
            report.daily.iter().map(|d| (d.date, d.arms.get(v).filter(|a| a.visitors > 0).map(|a| a.value))).collect()
        })
        .collect();
    let (first, last) = date_span(report);
    let scale = Scale::new(first, last, per_variant.iter().flatten().filter_map(|(_, y)| *y), false);
    let fmt = |v: f64| shown(m, v);
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
    pub inference: String,
    pub variants: Vec<VariantView>,
    pub progress: Progress,
    pub primary: MetricTable,
    pub others: Vec<MetricTable>,
    pub cycle_header: Vec<String>,
    pub cycles: Vec<CycleRow>,
    pub consistency: Option<String>,
    pub charts: Vec<Chart>,
    pub as_of: String,
    /// "By segment": one card per segment, and what the breakdowns found.
    pub segments: Vec<segments::SegmentSection>,
    pub segment_findings: Vec<String>,
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
                        let value = shown(primary, a.value);
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
            let reading = if c.consistent { "no significant change" } else { "they disagree" };
            let mut text = format!(
                "Last two complete cycles for {}: {} then {}; {reading} (p = {:.3}).",
                c.variant,
                signed_pct(c.lifts.0),
                signed_pct(c.lifts.1),
                c.p_value
            );
            if let Some(p) = r.persistence.as_ref() {
                let span = if p.cycles.0 == p.cycles.1 {
                    format!("cycle {}", p.cycles.1 + 1)
                } else {
                    format!("cycles {} to {}", p.cycles.0 + 1, p.cycles.1 + 1)
                };
                let reading = match (p.hold.large_enough, p.hold.held) {
                    (false, _) => "too few visitors yet to tell a lasting lift from a novelty effect that faded",
                    (true, true) => "closer to the overall lift than to zero: it held",
                    (true, false) => "closer to zero than to the overall lift: possibly a novelty effect that faded",
                };
                text.push_str(&format!(
                    " Later half ({span}): {} against {} overall; {reading}.",
                    signed_pct(p.lift),
                    signed_pct(p.overall_lift)
                ));
            }
            text
        });
        ExperimentPage {
            head: Headline::new(e, r),
            hypothesis: e.hypothesis.clone(),
            srm_banner,
            phase_note,
            inference: match (&r.concluded_winner, e.status, e.stats.sequential) {
                (Some(w), _, _) => format!("Concluded: everyone sees {w}"),
                (None, Status::Paused, _) => "Paused: everyone sees the control".to_owned(),
                (None, _, true) => "Sequential test: safe to look every day.".to_owned(),
                (None, _, false) => "Fixed-horizon test: judge it once the sample size is reached.".to_owned(),
            },
            variants: e
                .variants
                .iter()
                .enumerate()
                .map(|(i, v)| VariantView {
                    key: v.key.clone(),
                    weight: match (e.status, e.winner) {
                        (Status::Concluded, Some(w)) if w.get() == i => "100% (everyone, concluded)".to_owned(),
                        (Status::Paused, _) if i == 0 => "100% (everyone, paused)".to_owned(),
                        (Status::Concluded | Status::Paused, _) => "0%".to_owned(),
                        _ => pct(v.weight.get()).replace(".0%", "%"),
                    },
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
            charts: vec![cumulative_chart(r, primary), lift_chart(r)],
            as_of: r.as_of.to_string(),
            segments: segments::sections(r),
            segment_findings: r.segments_summary.iter().map(|f| f.sentence.clone()).collect(),
        }
    }
}

/// A report page that could not be built: what happened and what to do,
/// as a page (a browser shows it), not a JSON body.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: &'static str,
    pub message: String,
    pub advice: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_print_as_written() {
        assert_eq!(ordinal(0.57 * 100.0), "57th");
        assert_eq!(ordinal(0.995 * 100.0), "99.5th");
        assert_eq!(ordinal(0.99 * 100.0), "99th");
        assert_eq!(ordinal(0.9 * 100.0), "90th");
        assert_eq!(ordinal(0.12 * 100.0), "12th");
        assert_eq!(ordinal(0.22 * 100.0), "22nd");
    }
}
