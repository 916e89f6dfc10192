//! The report page's "By segment": per segment, a table of its values
//! (visitors per arm, the primary metric's lift with its interval, the
//! chance to win) and a forest plot of each treatment's lift per value,
//! drawn as plain SVG that reads on a 390 px phone. Pure.

use crate::analysis::{Lift, Report};
use crate::format::{chance, level, signed_pct, thousands};
use crate::segments::Breakdown;

/// One segment's card.
pub struct SegmentSection {
    pub name: String,
    pub attribute: String,
    /// Column heads after "Value": visitors per variant, then per
    /// treatment its lift and chance to win.
    pub header: Vec<String>,
    pub rows: Vec<SegmentRow>,
    pub forests: Vec<Forest>,
}

pub struct SegmentRow {
    pub value: String,
    pub cells: Vec<String>,
}

/// A forest plot: one treatment's primary lift per value, each a dot on
/// its interval, beside a line at no lift.
pub struct Forest {
    pub title: String,
    /// The SVG's height in its own units (it is drawn 360 wide).
    pub height: f64,
    pub zero_x: f64,
    pub rows: Vec<ForestRow>,
    /// The lifts at the plot's two ends, as labels.
    pub left_label: String,
    pub right_label: String,
    pub axis_y: f64,
}

pub struct ForestRow {
    pub label: String,
    pub y: f64,
    pub x: f64,
    pub lo: f64,
    pub hi: f64,
    /// `better`, `worse` or `muted`, as the tables mark results.
    pub class: &'static str,
    pub text: String,
}

/// Where the plot area starts and ends, and each row's height.
const PLOT: (f64, f64) = (118.0, 348.0);
const ROW: f64 = 26.0;

/// The sections of `report`'s breakdowns; empty without segments.
pub fn sections(report: &Report) -> Vec<SegmentSection> {
    report.segments.iter().map(|b| section(report, b)).collect()
}

fn section(report: &Report, b: &Breakdown) -> SegmentSection {
    let treatments = &report.variants[1..];
    let mut header: Vec<String> = report.variants.iter().map(|v| format!("Visitors: {v}")).collect();
    for t in treatments {
        header.push(format!("Lift: {t}"));
        header.push(format!("Chance to win: {t}"));
    }
    // A value without a visitor (no tablet traffic, say) is left off the page.
    let rows = b
        .values
        .iter()
        .filter(|v| v.visitors.iter().any(|(_, n)| *n > 0))
        .map(|v| {
            let mut cells: Vec<String> = v.visitors.iter().map(|(_, n)| thousands(*n)).collect();
            for t in treatments {
                match v.lift(&report.primary_metric, t) {
                    _ if v.too_few_visitors => cells.extend(["too few visitors".to_owned(), String::new()]),
                    Some(l) if l.comparison.not_computable.is_none() => {
                        let c = &l.comparison;
                        cells.push(format!(
                            "{} ({} to {}, {})",
                            signed_pct(c.relative_lift),
                            signed_pct(c.ci.0),
                            signed_pct(c.ci.1),
                            level(report.alpha)
                        ));
                        cells.push(chance(l.bayesian.chance_to_win));
                    }
                    _ => cells.extend(["—".to_owned(), "—".to_owned()]),
                }
            }
            SegmentRow { value: v.value.clone(), cells }
        })
        .collect();
    let forests = treatments.iter().map(|t| forest(report, b, t)).collect();
    SegmentSection { name: b.segment.clone(), attribute: b.attribute.clone(), header, rows, forests }
}

fn forest(report: &Report, b: &Breakdown, treatment: &str) -> Forest {
    let lifts: Vec<(&str, &Lift)> = b
        .values
        .iter()
        .filter(|v| !v.too_few_visitors)
        .filter_map(|v| {
            let l = v.lift(&report.primary_metric, treatment)?;
            l.comparison.not_computable.is_none().then_some((v.value.as_str(), l))
        })
        .collect();
    // A symmetric scale around no lift, wide enough for every interval.
    let reach = lifts
        .iter()
        .flat_map(|(_, l)| [l.comparison.ci.0.abs(), l.comparison.ci.1.abs()])
        .filter(|x| x.is_finite())
        .fold(0.05_f64, f64::max)
        .min(10.0);
    let x = |lift: f64| PLOT.0 + (lift.clamp(-reach, reach) + reach) / (2.0 * reach) * (PLOT.1 - PLOT.0);
    let rows: Vec<ForestRow> = lifts
        .iter()
        .enumerate()
        .map(|(i, (value, l))| {
            let c = &l.comparison;
            ForestRow {
                label: (*value).to_owned(),
                y: 16.0 + ROW * i as f64,
                x: x(c.relative_lift),
                lo: x(c.ci.0),
                hi: x(c.ci.1),
                class: match l.direction {
                    crate::analysis::Direction::Better => "better",
                    crate::analysis::Direction::Worse => "worse",
                    crate::analysis::Direction::Inconclusive => "muted",
                },
                text: format!(
                    "{value}: {} ({} to {})",
                    signed_pct(c.relative_lift),
                    signed_pct(c.ci.0),
                    signed_pct(c.ci.1)
                ),
            }
        })
        .collect();
    let axis_y = 16.0 + ROW * rows.len() as f64;
    Forest {
        title: format!("{treatment} against the control on {} by {}", report.primary().label.to_lowercase(), b.segment),
        height: axis_y + 18.0,
        zero_x: x(0.0),
        rows,
        left_label: signed_pct(-reach),
        right_label: signed_pct(reach),
        axis_y,
    }
}
