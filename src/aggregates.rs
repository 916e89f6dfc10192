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
    #[error("aggregates CSV is invalid: {0}; expected the header variant,date,metric,n,sum,sum_sq and optionally den_sum,den_sum_sq,sum_xy,pre_sum,pre_sum_sq,sum_x_pre")]
    Csv(#[from] csv::Error),
    #[error("cannot read aggregates: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads rows as JSON when the text starts with `[`, as CSV otherwise.
pub fn read_aggregates(mut reader: impl Read) -> Result<Vec<AggregateRow>, AggregatesError> {
    let mut text = String::new();
    reader.read_to_string(&mut text)?;
    if text.trim_start().starts_with('[') {
        return Ok(serde_json::from_str(&text)?);
    }
    #[derive(Deserialize)]
    struct CsvRow {
        variant: String,
        date: NaiveDate,
        metric: String,
        n: u64,
        sum: f64,
        sum_sq: f64,
        #[serde(default)]
        den_sum: Option<f64>,
        #[serde(default)]
        den_sum_sq: Option<f64>,
        #[serde(default)]
        sum_xy: Option<f64>,
        #[serde(default)]
        pre_sum: Option<f64>,
        #[serde(default)]
        pre_sum_sq: Option<f64>,
        #[serde(default)]
        sum_x_pre: Option<f64>,
    }
    let mut rows = Vec::new();
    for row in csv::Reader::from_reader(text.as_bytes()).deserialize::<CsvRow>() {
        let r = row?;
        rows.push(AggregateRow {
            variant: r.variant,
            date: r.date,
            metric: r.metric,
            moments: Moments::from_sums(
                r.n,
                [Some(r.sum), Some(r.sum_sq), r.den_sum, r.den_sum_sq, r.sum_xy, r.pre_sum, r.pre_sum_sq, r.sum_x_pre]
                    .map(|x| x.unwrap_or(0.0)),
            ),
        });
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
        }
    }
    problems
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
}
