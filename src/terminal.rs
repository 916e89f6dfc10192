//! The report as plain text for a terminal (`offerlab report`): the verdict
//! and the primary-metric table, from the report the server sent, and with
//! `--by SEGMENT` the primary metric by that segment's values.

use crate::analysis::VerdictCode;
use crate::format::{chance, days, in_unit, risk, signed_pct, thousands};
use crate::wire::v1::{Report, Segments};

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
    let format = |x| in_unit(primary.unit.into(), primary.currency, x);
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
    let mut out = format!(
        "{} ({})\n[{}] {}\n\n{}\n",
        r.name,
        r.experiment,
        VerdictCode::from(r.verdict.code).as_str(),
        r.verdict.sentence,
        primary.label,
    );
    out.push_str(&table(&rows.into_iter().map(Vec::from).collect::<Vec<_>>()));
    if adjusted_any {
        out.push_str("Values are adjusted for what each arm's visitors did before the test (CUPED), as the lifts are; the values seen are in brackets.\n");
    }
    if let Some(d) = r.sample_size.days_left.filter(|d| *d > 0) {
        out.push_str(&format!("\nAbout {} left at the traffic so far.\n", days(d)));
    }
    out
}

/// The primary metric by each value of the segments in `s` (one, from
/// `.../segments/{segment}`): visitors per arm, each treatment's lift with
/// its interval and chance to win, then what the report found there.
pub fn by_segment(r: &Report, s: &Segments) -> String {
    let treatments = &r.variants[1..];
    let mut out = String::new();
    for b in &s.segments {
        let mut rows = vec![std::iter::once("value".to_owned())
            .chain(r.variants.iter().cloned())
            .chain(treatments.iter().flat_map(|t| [format!("lift of {t}"), "chance to win".to_owned()]))
            .collect::<Vec<_>>()];
        for v in b.values.iter().filter(|v| v.variants.iter().any(|a| a.visitors > 0)) {
            let mut row = vec![v.value.clone()];
            row.extend(v.variants.iter().map(|a| thousands(a.visitors)));
            let primary = v.metrics.iter().find(|m| m.name == r.primary_metric);
            for t in treatments {
                match primary.and_then(|m| m.lifts.iter().find(|l| &l.variant == t)) {
                    _ if v.too_few_visitors => row.extend(["too few visitors".to_owned(), String::new()]),
                    Some(l) if l.not_computable.is_none() => {
                        row.push(format!(
                            "{} ({} to {})",
                            signed_pct(l.relative_lift),
                            signed_pct(l.ci.0),
                            signed_pct(l.ci.1)
                        ));
                        row.push(chance(l.bayesian.chance_to_win));
                    }
                    _ => row.extend(["—".to_owned(), "—".to_owned()]),
                }
            }
            rows.push(row);
        }
        out.push_str(&format!(
            "\nBy {} ({}), {}: exploratory, p-values adjusted across the breakdown\n",
            b.segment,
            b.attribute,
            r.primary().label
        ));
        out.push_str(&table(&rows));
        for f in r.segments_summary.iter().filter(|f| f.segment == b.segment) {
            out.push_str(&format!("{}\n", f.sentence));
        }
    }
    out
}

/// Rows as columns padded to their widest cell.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|x| x.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed example of the report endpoint, its primary metric
    /// turned into `unit` (in euros).
    fn example(unit: &str) -> Report {
        let text = include_str!("../tests/wire/v1/report.json");
        let mut json: serde_json::Value = serde_json::from_str(text).unwrap();
        let primary = json["metrics"].as_array_mut().unwrap().iter_mut().find(|m| m["role"] == "primary").unwrap();
        primary["unit"] = unit.into();
        primary["currency"] = "EUR".into();
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_primary_value_reads_in_its_unit() {
        let share = example("share");
        let rate = share.primary().arms[0].value;
        assert!(report(&share).contains(&format!("{:.2}%", rate * 100.0)), "{}", report(&share));
        let amount = example("amount");
        let shown = crate::currency::Currency::parse("EUR").unwrap().amount(amount.primary().arms[0].value);
        assert!(shown.starts_with('€'));
        assert!(report(&amount).contains(&shown), "{}", report(&amount));
    }
}
