//! The TOML shapes of `experiments/*.toml` and `experiments/metrics.toml`,
//! exactly as written. Unknown fields are refused by serde; every other rule
//! is checked when these become the domain types in [`super::load`].
//! Fields that a rule may point at are `Spanned`, so a message can name the
//! line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::metric::Aggregate;
use super::{Dimension, Status, Surface};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExperiment {
    pub id: Spanned<String>,
    pub name: String,
    #[serde(default)]
    pub hypothesis: String,
    pub status: Spanned<Status>,
    pub surface: Spanned<Surface>,
    pub dimension: Dimension,
    pub start: Spanned<toml::Value>,
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    #[serde(default = "default_cycle")]
    pub business_cycle_days: Spanned<i64>,
    #[serde(default = "default_coverage")]
    pub coverage: Spanned<f64>,
    #[serde(default = "default_hash_attribute")]
    pub hash_attribute: String,
    #[serde(default)]
    pub seed: Option<String>,
    #[serde(default)]
    pub namespace: Option<Spanned<RawNamespace>>,
    #[serde(default)]
    pub targeting: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub winner: Option<Spanned<String>>,
    pub primary_metric: Spanned<String>,
    #[serde(default = "no_metrics")]
    pub guardrail_metrics: Spanned<Vec<String>>,
    #[serde(default = "no_metrics")]
    pub secondary_metrics: Spanned<Vec<String>>,
    #[serde(default)]
    pub allocation_version: Option<Spanned<i64>>,
    #[serde(default)]
    pub stats: Option<Spanned<RawStats>>,
    #[serde(default)]
    pub variants: Vec<Spanned<RawVariant>>,
}

fn default_cycle() -> Spanned<i64> {
    Spanned::new(0..0, 7)
}

fn no_metrics() -> Spanned<Vec<String>> {
    Spanned::new(0..0, Vec::new())
}

fn default_coverage() -> Spanned<f64> {
    Spanned::new(0..0, 1.0)
}

fn default_hash_attribute() -> String {
    "visitor_id".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNamespace {
    pub id: String,
    pub range: [f64; 2],
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStats {
    pub alpha: Option<f64>,
    pub power: Option<f64>,
    pub mde: Option<f64>,
    pub baseline: Option<f64>,
    pub baseline_sd: Option<f64>,
    pub sequential: Option<bool>,
    pub sequential_tuning: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVariant {
    pub key: String,
    pub weight: f64,
    #[serde(default)]
    pub payload: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawMetricKind {
    Proportion,
    Mean,
    Ratio,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetric {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub kind: RawMetricKind,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub numerator: Option<RawSource>,
    #[serde(default)]
    pub denominator: Option<RawSource>,
    #[serde(default)]
    pub higher_is_better: Option<bool>,
    #[serde(default)]
    pub cap: Option<RawCap>,
    #[serde(default)]
    pub cuped: Option<RawCuped>,
}

/// A ratio's side: `{ event = "order", aggregate = "sum" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub event: String,
    pub aggregate: Aggregate,
}

/// `cap = { absolute = 500.0 }` or `cap = { percentile = 0.99, ignore_zeros = true }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCap {
    #[serde(default)]
    pub absolute: Option<f64>,
    #[serde(default)]
    pub percentile: Option<f64>,
    #[serde(default)]
    pub ignore_zeros: Option<bool>,
}

/// `cuped = { days = 14 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCuped {
    pub days: u32,
}

/// `metrics.toml`: an optional `currency = "EUR"` at the top, then one
/// table per metric. Each value is read straight from the TOML reader, so
/// an error inside a table keeps its line.
#[derive(Debug, Default)]
pub struct RawMetrics {
    pub currency: Option<Spanned<String>>,
    pub metrics: BTreeMap<String, Spanned<RawMetric>>,
}

/// The top-level key that is not a metric.
pub const CURRENCY_KEY: &str = "currency";

impl<'de> Deserialize<'de> for RawMetrics {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Tables;
        impl<'de> serde::de::Visitor<'de> for Tables {
            type Value = RawMetrics;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a currency = \"EUR\" line and one [table] per metric")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawMetrics, A::Error> {
                let mut raw = RawMetrics::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == CURRENCY_KEY {
                        raw.currency = Some(map.next_value()?);
                    } else {
                        let metric = map.next_value()?;
                        raw.metrics.insert(key, metric);
                    }
                }
                Ok(raw)
            }
        }
        d.deserialize_map(Tables)
    }
}
