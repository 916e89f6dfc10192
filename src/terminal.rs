//! The report as plain text for a terminal (`offerlab report`): the verdict
//! and the primary-metric table, from the JSON report.

use serde_json::Value;

use crate::format::{chance, days, format_value, risk, signed_pct, thousands};

fn cell(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Renders a JSON report (as served by `/api/v1/experiments/{id}/report`).
pub fn report(r: &Value) -> String {
    let primary = &r["metrics"][0];
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
    let lifts = || primary["lifts"].as_array().into_iter().flatten();
    let format =
        |x| format_value(primary["kind"].as_str().unwrap_or_default(), primary["name"].as_str().unwrap_or_default(), x);
    let mut adjusted_any = false;
    for arm in primary["arms"].as_array().into_iter().flatten() {
        let lift = lifts().find(|l| l["variant"] == arm["variant"]);
        // Under CUPED the lift compares adjusted values: show those, with
        // the value seen in brackets, so the two agree.
        let adjusted = match lift {
            Some(l) => l["cuped"]["adjusted_means"][1].as_f64(),
            None => lifts().next().and_then(|l| l["cuped"]["adjusted_means"][0].as_f64()),
        };
        adjusted_any |= adjusted.is_some();
        let value = match adjusted {
            Some(a) => format!("{} ({})", format(a), format(cell(&arm["value"]))),
            None => format(cell(&arm["value"])),
        };
        let (l, ci, p, win, loss) = match lift {
            Some(l) if l["not_computable"].is_null() => (
                signed_pct(cell(&l["relative_lift"])),
                format!("{} to {}", signed_pct(cell(&l["ci"][0])), signed_pct(cell(&l["ci"][1]))),
                format!("{:.4}", l["p_value_adjusted"].as_f64().unwrap_or(cell(&l["p_value"]))),
                chance(cell(&l["bayesian"]["chance_to_win"])),
                risk(cell(&l["bayesian"]["risk_treatment"])),
            ),
            Some(_) => ("—".into(), "—".into(), "—".into(), "—".into(), "—".into()),
            None => ("baseline".into(), String::new(), String::new(), String::new(), String::new()),
        };
        rows.push([
            arm["variant"].as_str().unwrap_or_default().to_owned(),
            thousands(arm["visitors"].as_u64().unwrap_or(0)),
            value,
            l,
            ci,
            p,
            win,
            loss,
        ]);
    }
    let widths: Vec<usize> = (0..8).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = format!(
        "{} ({})\n[{}] {}\n\n{}\n",
        r["name"].as_str().unwrap_or_default(),
        r["experiment"].as_str().unwrap_or_default(),
        r["verdict"]["code"].as_str().unwrap_or_default(),
        r["verdict"]["sentence"].as_str().unwrap_or_default(),
        primary["label"].as_str().unwrap_or_default(),
    );
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if adjusted_any {
        out.push_str("Values are adjusted for what each arm's visitors did before the test (CUPED), as the lifts are; the values seen are in brackets.\n");
    }
    if let Some(d) = r["sample_size"]["days_left"].as_u64().filter(|d| *d > 0) {
        out.push_str(&format!("\nAbout {} left at the traffic so far.\n", days(d)));
    }
    out
}
