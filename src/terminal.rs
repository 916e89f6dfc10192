//! The report as plain text for a terminal (`offerlab report`): the verdict
//! and the primary-metric table, from the report the server sent.

use crate::analysis::VerdictCode;
use crate::format::{chance, days, format_value, risk, signed_pct, thousands};
use crate::wire::v1::Report;

/// Renders a report as `/api/v1/experiments/{id}/report` serves it.
pub fn report(r: &Report) -> String {
    let primary = r.primary();
    let mut rows = vec![[
        "variant".to_owned(),
        "visitors".into(),
        "value".into(),
        "lift".into(),
        "interval".into(),
        "p".into(),
        "chance to win".into(),
        "risk".into(),
    ]];
    let format = |x| format_value(primary.kind.into(), &primary.name, x);
    let mut adjusted_any = false;
    for arm in &primary.arms {
        let lift = primary.lifts.iter().find(|l| l.variant == arm.variant);
        // Under CUPED the lift compares adjusted values: show those, with
        // the value seen in brackets, so the two agree.
        let adjusted = match lift {
            Some(l) => l.cuped.map(|c| c.adjusted_means.1),
            None => primary.lifts.first().and_then(|l| l.cuped).map(|c| c.adjusted_means.0),
        };
        adjusted_any |= adjusted.is_some();
        let value = match adjusted {
            Some(a) => format!("{} ({})", format(a), format(arm.value)),
            None => format(arm.value),
        };
        let (l, ci, p, win, loss) = match lift {
            Some(l) if l.not_computable.is_none() => (
                signed_pct(l.relative_lift),
                format!("{} to {}", signed_pct(l.ci.0), signed_pct(l.ci.1)),
                format!("{:.4}", l.p_value_adjusted.unwrap_or(l.p_value)),
                chance(l.bayesian.chance_to_win),
                risk(l.bayesian.risk_treatment),
            ),
            Some(_) => ("—".into(), "—".into(), "—".into(), "—".into(), "—".into()),
            None => ("baseline".into(), String::new(), String::new(), String::new(), String::new()),
        };
        rows.push([arm.variant.clone(), thousands(arm.visitors), value, l, ci, p, win, loss]);
    }
    let widths: Vec<usize> = (0..8).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = format!(
        "{} ({})\n[{}] {}\n\n{}\n",
        r.name,
        r.experiment,
        VerdictCode::from(r.verdict.code).as_str(),
        r.verdict.sentence,
        primary.label,
    );
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if adjusted_any {
        out.push_str("Values are adjusted for what each arm's visitors did before the test (CUPED), as the lifts are; the values seen are in brackets.\n");
    }
    if let Some(d) = r.sample_size.days_left.filter(|d| *d > 0) {
        out.push_str(&format!("\nAbout {} left at the traffic so far.\n", days(d)));
    }
    out
}
