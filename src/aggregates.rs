//! Per-day sufficient statistics: the one shape that tracking produces,
//! that any warehouse can produce with one SQL query, and that the analysis
//! reads.
//!
//! One row per variant, day of first exposure and metric. Files for
//! `offerlab analyze` are JSON (an array of rows) or CSV with the header
//! `variant,date,metric,n,sum,sum_sq,den_sum,den_sum_sq,sum_xy,pre_sum,pre_sum_sq,sum_x_pre`;
//! the `den_*` and `sum_xy` columns are only needed for ratio metrics, and
//! the `pre_*` ones (the CUPED covariate's sums) only for an adjusted
//! metric: a missing column is 0, which means no adjustment.

use std::io::Read;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::experiment::{Catalog, Experiment};
use crate::stats::Moments;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateRow {
    pub variant: String,
    /// The shop-local day of the visitors' first exposure.
    pub date: NaiveDate,
    pub metric: String,
    #[serde(flatten)]
    pub moments: Moments,
}

#[derive(Debug, thiserror::Error)]
pub enum AggregatesError {
    #[error("aggregates JSON is invalid: {0}; expected an array of {{variant, date, metric, n, sum, sum_sq, ...}}")]
    Json(#[from] serde_json::Error),
    #[error("aggregates CSV is invalid: {0}; {hint}", hint = expected())]
    Csv(#[from] csv::Error),
    #[error("{0}; {hint}", hint = expected())]
    Columns(String),
    #[error("row {row}, {field}: {message}")]
    Row { row: usize, field: &'static str, message: String },
    #[error("cannot read aggregates: {0}")]
    Io(#[from] std::io::Error),
}

/// The columns (CSV) or keys (JSON) a row must have.
const REQUIRED: [&str; 4] = ["variant", "date", "metric", "n"];

/// What a refusal of the columns says is expected.
fn expected() -> String {
    format!(
        "expected the header {},{} (the den_* and sum_xy columns only for ratio metrics, pre_* and sum_x_pre only for CUPED ones)",
        REQUIRED.join(","),
        Moments::SUM_NAMES.join(",")
    )
}

/// Every column or key a row may have.
fn known(name: &str) -> bool {
    REQUIRED.contains(&name) || Moments::SUM_NAMES.contains(&name)
}

/// `sum` and `sum_sq` are needed by every metric; the other sums default to 0.
fn required(name: &str) -> bool {
    REQUIRED.contains(&name) || name == "sum" || name == "sum_sq"
}

/// The columns a header lacks or does not know, as one refusal; the closest
/// known name is offered for an unknown one.
fn check_columns<'a>(
    names: impl IntoIterator<Item = &'a str> + Clone,
    what: &str,
    extra: Option<&str>,
) -> Result<(), AggregatesError> {
    let unknown: Vec<String> = names
        .clone()
        .into_iter()
        .filter(|n| !known(n) && Some(*n) != extra)
        .map(|n| match closest(n) {
            Some(c) => format!("\"{n}\" (did you mean {c}?)"),
            None => format!("\"{n}\""),
        })
        .collect();
    let all_known: Vec<&str> = REQUIRED.iter().chain(Moments::SUM_NAMES.iter()).copied().collect();
    let missing: Vec<&str> =
        all_known.into_iter().filter(|k| required(k) && !names.clone().into_iter().any(|n| n == *k)).collect();
    let mut problems = Vec::new();
    if !unknown.is_empty() {
        problems.push(format!("unknown {what} {}", unknown.join(", ")));
    }
    if !missing.is_empty() {
        problems.push(format!("missing {what} {}", missing.join(", ")));
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(AggregatesError::Columns(problems.join("; "))),
    }
}

/// The known column nearest to a misspelt one, when one is near.
fn closest(name: &str) -> Option<&'static str> {
    REQUIRED
        .iter()
        .chain(Moments::SUM_NAMES.iter())
        .map(|k| (strsim::levenshtein(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

/// One field of a row, as the file gave it.
enum Cell<'a> {
    Text(&'a str),
    Json(&'a serde_json::Value),
}

impl Cell<'_> {
    fn text(&self) -> String {
        match self {
            Cell::Text(t) => (*t).to_owned(),
            Cell::Json(v) => v.as_str().map_or_else(|| v.to_string(), str::to_owned),
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Cell::Text(t) => t.trim().parse().ok(),
            Cell::Json(v) => v.as_f64(),
        }
    }
}

/// A row from its fields (`get` gives a field by name), every refusal
/// naming the row (data rows count from 1) and the field.
fn parse_row<'a>(row: usize, get: impl Fn(&str) -> Option<Cell<'a>>) -> Result<AggregateRow, AggregatesError> {
    let refuse = |field: &'static str, message: String| AggregatesError::Row { row, field, message };
    let text = |field: &'static str| {
        let t = get(field).map(|c| c.text()).unwrap_or_default();
        if t.trim().is_empty() {
            return Err(refuse(field, "is empty".into()));
        }
        Ok(t.trim().to_owned())
    };
    let date = text("date")?;
    let date: NaiveDate =
        date.parse().map_err(|_| refuse("date", format!("\"{date}\" is not a date; write it as YYYY-MM-DD")))?;
    let n_cell = get("n");
    let n = n_cell.as_ref().and_then(Cell::number);
    // A count may be written as an integral float (396.0), as many tools do.
    let n = match n {
        Some(x) if x >= 0.0 && x.fract() == 0.0 && x <= u64::MAX as f64 => x as u64,
        _ => {
            let shown = n_cell.map(|c| c.text()).unwrap_or_default();
            return Err(refuse("n", format!("\"{shown}\" is not a whole number of visitors")));
        }
    };
    let mut sums = [0.0; 8];
    for (slot, name) in sums.iter_mut().zip(Moments::SUM_NAMES) {
        match get(name) {
            None => {}
            Some(Cell::Text(t)) if t.trim().is_empty() && !required(name) => {}
            Some(cell) => {
                *slot = cell
                    .number()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| refuse(name, format!("\"{}\" is not a finite number", cell.text())))?;
            }
        }
    }
    Ok(AggregateRow { variant: text("variant")?, date, metric: text("metric")?, moments: Moments::from_sums(n, sums) })
}

/// Reads rows as JSON when the text starts with `[`, as CSV otherwise. An
/// unknown or missing column (or key) is refused, naming it, and so is a
/// field that does not read, naming its row and field.
pub fn read_aggregates(reader: impl Read) -> Result<Vec<AggregateRow>, AggregatesError> {
    Ok(read_aggregates_by(reader, None)?.into_iter().map(|(_, r)| r).collect())
}

/// [`read_aggregates`] with one more column (or key), `by`: a segment's
/// attribute, whose value each row also gives (`None` when the column is
/// absent, or the cell empty or null: the visitors without it).
pub fn read_aggregates_by(
    mut reader: impl Read,
    by: Option<&str>,
) -> Result<Vec<(Option<String>, AggregateRow)>, AggregatesError> {
    let mut text = String::new();
    reader.read_to_string(&mut text)?;
    if text.trim_start().starts_with('[') {
        let items: Vec<serde_json::Value> = serde_json::from_str(&text)?;
        let mut rows = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Some(object) = item.as_object() else {
                return Err(AggregatesError::Row { row: i + 1, field: "row", message: "is not a JSON object".into() });
            };
            check_columns(object.keys().map(String::as_str), "key", by)
                .map_err(|e| AggregatesError::Columns(format!("row {}: {e}", i + 1)))?;
            let segment = by.and_then(|b| object.get(b)).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
            rows.push((segment.map(str::to_owned), parse_row(i + 1, |name| object.get(name).map(Cell::Json))?));
        }
        return Ok(rows);
    }
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers()?.clone();
    check_columns(headers.iter().map(str::trim), "column", by)?;
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record?;
        let get =
            |name: &str| headers.iter().position(|h| h.trim() == name).and_then(|p| record.get(p)).map(Cell::Text);
        let segment = by.and_then(|b| headers.iter().position(|h| h.trim() == b)).and_then(|p| record.get(p));
        let segment = segment.filter(|v| !v.is_empty()).map(str::to_owned);
        rows.push((segment, parse_row(i + 1, get)?));
    }
    Ok(rows)
}

/// Every reason `rows` cannot be analysed for `exp`, one sentence each,
/// naming the row (data rows count from 1, the header excluded): a variant
/// or metric the test does not have, or sums no set of visitors can have.
/// Nothing is dropped silently.
pub fn check_rows(exp: &Experiment, catalog: &Catalog, rows: &[AggregateRow]) -> Vec<String> {
    let metrics = exp.all_metrics();
    let variants: Vec<&str> = exp.variants.iter().map(|v| v.key.as_str()).collect();
    let mut problems = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let at = format!("row {}", i + 1);
        if !variants.contains(&r.variant.as_str()) {
            problems.push(format!(
                "{at}: variant \"{}\" is not a variant of {}; use one of: {}",
                r.variant,
                exp.id,
                variants.join(", ")
            ));
        }
        if !metrics.contains(&r.metric.as_str()) {
            problems.push(format!(
                "{at}: metric \"{}\" is not a metric of {}; use one of: {}",
                r.metric,
                exp.id,
                metrics.join(", ")
            ));
            continue;
        }
        let m = &r.moments;
        let n = m.n as f64;
        let sums = m.sums();
        if sums.iter().any(|x| !x.is_finite()) {
            problems.push(format!("{at}: a sum is not a finite number"));
        } else if m.n == 0 && sums.iter().any(|x| *x != 0.0) {
            problems.push(format!("{at}: sums without visitors (n = 0); a row needs the visitors it sums over"));
        } else if catalog.metric(&r.metric).is_some_and(|metric| metric.is_proportion())
            && (m.sum < 0.0 || m.sum > n || m.sum_sq != m.sum)
        {
            problems.push(format!(
                "{at}: {} conversions of {} visitors is impossible for the proportion {} (0 to n, and sum_sq = sum)",
                m.sum, m.n, r.metric
            ));
        } else if m.sum_sq < 0.0
            || m.den_sum_sq < 0.0
            || m.sum * m.sum > n * m.sum_sq * (1.0 + 1e-9) + 1e-9
            || m.den_sum * m.den_sum > n * m.den_sum_sq * (1.0 + 1e-9) + 1e-9
            || m.pre_sum_sq < 0.0
            || m.pre_sum * m.pre_sum > n * m.pre_sum_sq * (1.0 + 1e-9) + 1e-9
        {
            problems.push(format!(
                "{at}: sum_sq below sum²/n is impossible (sum {}, sum_sq {}, n {}); send sums of squares of per-visitor values",
                m.sum, m.sum_sq, m.n
            ));
        } else if let Some(problem) =
            impossible_covariate(m, catalog.metric(&r.metric).is_some_and(|x| x.is_proportion()))
        {
            problems.push(format!("{at}: {problem}"));
        }
    }
    problems
}

/// Why a row's cross-products are ones no visitors can have, if they are.
///
/// - A proportion's covariate is 0 or 1 per visitor, like its value:
///   `pre_sum_sq = pre_sum ≤ n`, and `sum_x_pre` counts visitors who
///   converted both before and after, so
///   `max(0, sum + pre_sum − n) ≤ sum_x_pre ≤ min(sum, pre_sum)`.
/// - Any cross-product obeys Cauchy–Schwarz on the centred values: with
///   `Sxy = n·Σxy − Σx·Σy`, `Sxy² ≤ Sxx·Syy` (a correlation within ±1).
fn impossible_covariate(m: &Moments, proportion: bool) -> Option<String> {
    use crate::stats::moments::co_spread;
    let n = m.n as f64;
    if proportion && m.has_covariate() {
        if m.pre_sum_sq != m.pre_sum || m.pre_sum < 0.0 || m.pre_sum > n {
            return Some(format!(
                "pre_sum {} and pre_sum_sq {} are impossible for a proportion's covariate over {} visitors (each visitor's is 0 or 1, so pre_sum_sq = pre_sum, from 0 to n)",
                m.pre_sum, m.pre_sum_sq, m.n
            ));
        }
        let (low, high) = ((m.sum + m.pre_sum - n).max(0.0), m.sum.min(m.pre_sum));
        if m.sum_x_pre < low || m.sum_x_pre > high {
            return Some(format!(
                "sum_x_pre {} is impossible: it counts visitors who converted both before and after their first exposure, so with {} converting after and {} before among {} it is from {low} to {high}",
                m.sum_x_pre, m.sum, m.pre_sum, m.n
            ));
        }
    }
    let pairs = [
        ("sum_x_pre", "sum", "pre_sum", m.sum, m.sum_sq, m.pre_sum, m.pre_sum_sq, m.sum_x_pre),
        ("sum_xy", "sum", "den_sum", m.sum, m.sum_sq, m.den_sum, m.den_sum_sq, m.sum_xy),
    ];
    for (name, x_name, y_name, sx, sxx, sy, syy, sxy) in pairs {
        let cross = co_spread(m.n, sx, sy, sxy);
        let bound = co_spread(m.n, sx, sx, sxx).max(0.0) * co_spread(m.n, sy, sy, syy).max(0.0);
        if cross * cross > bound * (1.0 + 1e-9) + 1e-9 {
            return Some(format!(
                "{name} {sxy} is beyond what {x_name} and {y_name} allow (Cauchy–Schwarz: the values' correlation would be {:.3}, outside −1 to 1); send the sum of per-visitor products",
                cross / bound.sqrt()
            ));
        }
    }
    None
}

/// Writes rows as CSV with the header [`read_aggregates`] reads.
pub fn write_csv(rows: &[AggregateRow]) -> String {
    let mut out = format!("variant,date,metric,n,{}\n", Moments::SUM_NAMES.join(","));
    for r in rows {
        let m = &r.moments;
        out.push_str(&format!("{},{},{},{}", r.variant, r.date, r.metric, m.n));
        for x in m.sums() {
            out.push_str(&format!(",{x}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trips() {
        let rows = vec![AggregateRow {
            variant: "control".into(),
            date: "2026-11-02".parse().unwrap(),
            metric: "average_order_value".into(),
            moments: Moments::from_sums(10, [450.5, 30000.25, 7.0, 9.0, 600.0, 300.0, 12000.0, 20000.0]),
        }];
        assert_eq!(read_aggregates(write_csv(&rows).as_bytes()).unwrap(), rows);
        let json = serde_json::to_string(&rows).unwrap();
        assert_eq!(read_aggregates(json.as_bytes()).unwrap(), rows);
    }

    fn problem(proportion: bool, n: u64, sums: [f64; 8]) -> Option<String> {
        impossible_covariate(&Moments::from_sums(n, sums), proportion)
    }

    #[test]
    fn covariate_sums_no_visitors_can_have_are_refused() {
        // 100 visitors, 10 converting after, 20 before, 5 both: possible.
        assert_eq!(problem(true, 100, [10.0, 10.0, 0.0, 0.0, 0.0, 20.0, 20.0, 5.0]), None);
        let p = problem(true, 100, [10.0, 10.0, 0.0, 0.0, 0.0, 20.0, 25.0, 5.0]).unwrap();
        assert!(p.contains("pre_sum_sq = pre_sum"), "{p}");
        let p = problem(true, 100, [10.0, 10.0, 0.0, 0.0, 0.0, 20.0, 20.0, 12.0]).unwrap();
        assert!(p.contains("from 0 to 10"), "{p}");
        // 95 converting after and 95 before among 100: at least 90 did both.
        let p = problem(true, 100, [95.0, 95.0, 0.0, 0.0, 0.0, 95.0, 95.0, 80.0]).unwrap();
        assert!(p.contains("from 90 to 95"), "{p}");
        // A mean: values 1..=4 twice over, covariate the same: Sxy² = Sxx·Syy.
        let (sx, sxx) = (20.0, 60.0);
        assert_eq!(problem(false, 8, [sx, sxx, 0.0, 0.0, 0.0, sx, sxx, sxx]), None);
        let p = problem(false, 8, [sx, sxx, 0.0, 0.0, 0.0, sx, sxx, sxx + 5.0]).unwrap();
        assert!(p.contains("Cauchy–Schwarz"), "{p}");
        // A ratio's cross-product likewise.
        let p = problem(false, 8, [sx, sxx, sx, sxx, sxx + 5.0, 0.0, 0.0, 0.0]).unwrap();
        assert!(p.starts_with("sum_xy"), "{p}");
    }
}
