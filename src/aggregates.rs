//! Per-day sufficient statistics: the one shape that tracking produces,
//! that any warehouse can produce with one SQL query, and that the analysis
//! reads.
//!
//! One row per variant, day of first exposure and metric. Files for
//! `offerlab analyze` are JSON (an array of rows) or CSV with the header
//! `variant,date,metric,n,sum,sum_sq,den_sum,den_sum_sq,sum_xy`; the `den_*`
//! and `sum_xy` columns are only needed for ratio metrics.

use std::io::Read;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

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
    #[error("aggregates CSV is invalid: {0}; expected the header variant,date,metric,n,sum,sum_sq,den_sum,den_sum_sq,sum_xy")]
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
    }
    let mut rows = Vec::new();
    for row in csv::Reader::from_reader(text.as_bytes()).deserialize::<CsvRow>() {
        let r = row?;
        rows.push(AggregateRow {
            variant: r.variant,
            date: r.date,
            metric: r.metric,
            moments: Moments {
                n: r.n,
                sum: r.sum,
                sum_sq: r.sum_sq,
                den_sum: r.den_sum.unwrap_or(0.0),
                den_sum_sq: r.den_sum_sq.unwrap_or(0.0),
                sum_xy: r.sum_xy.unwrap_or(0.0),
            },
        });
    }
    Ok(rows)
}

/// Writes rows as CSV with the header [`read_aggregates`] reads.
pub fn write_csv(rows: &[AggregateRow]) -> String {
    let mut out = String::from("variant,date,metric,n,sum,sum_sq,den_sum,den_sum_sq,sum_xy\n");
    for r in rows {
        let m = &r.moments;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            r.variant, r.date, r.metric, m.n, m.sum, m.sum_sq, m.den_sum, m.den_sum_sq, m.sum_xy
        ));
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
            moments: Moments { n: 10, sum: 450.5, sum_sq: 30000.25, den_sum: 7.0, den_sum_sq: 9.0, sum_xy: 600.0 },
        }];
        assert_eq!(read_aggregates(write_csv(&rows).as_bytes()).unwrap(), rows);
        let json = serde_json::to_string(&rows).unwrap();
        assert_eq!(read_aggregates(json.as_bytes()).unwrap(), rows);
    }
}
