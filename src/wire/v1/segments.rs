//! `GET /api/v1/experiments/{id}/segments`: a test's results by segment,
//! version 1. Arms and lifts have the report's shape ([`super::report`]);
//! every lift here is exploratory, judged on Benjamini–Hochberg p-values
//! across the whole breakdown of its segment.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::mirror;
use super::report::{arms, lifts, Arm, Lift};
use crate::segments as domain;

/// Every segment's breakdown of one test, as of one shop-local day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segments {
    pub experiment: String,
    pub as_of: NaiveDate,
    pub segments: Vec<Breakdown>,
}

impl Segments {
    pub fn new(experiment: &str, as_of: NaiveDate, breakdowns: &[domain::Breakdown]) -> Self {
        Segments { experiment: experiment.to_owned(), as_of, segments: breakdowns.iter().map(Into::into).collect() }
    }
}

/// One segment: each value's numbers, then whether lifts differ by value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    pub segment: String,
    /// The visitor attribute it reads.
    pub attribute: String,
    /// The listed values in the file's order, then `(other)` and `(none)`.
    pub values: Vec<Value>,
    pub heterogeneity: Vec<Heterogeneity>,
}

impl From<&domain::Breakdown> for Breakdown {
    fn from(b: &domain::Breakdown) -> Self {
        Breakdown {
            segment: b.segment.clone(),
            attribute: b.attribute.clone(),
            values: b.values.iter().map(Into::into).collect(),
            heterogeneity: b.heterogeneity.iter().map(Into::into).collect(),
        }
    }
}

/// The test on the visitors of one value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Value {
    pub value: String,
    pub variants: Vec<VariantVisitors>,
    pub srm: Srm,
    /// Some arm has fewer than 30 visitors: the metrics have arms and no
    /// lifts.
    pub too_few_visitors: bool,
    pub metrics: Vec<Metric>,
}

impl From<&domain::ValueResult> for Value {
    fn from(v: &domain::ValueResult) -> Self {
        Value {
            value: v.value.clone(),
            variants: v
                .visitors
                .iter()
                .map(|(variant, visitors)| VariantVisitors { variant: variant.clone(), visitors: *visitors })
                .collect(),
            srm: Srm { p_value: v.srm.p_value, mismatch: v.srm.mismatch, judged: v.srm.judged },
            too_few_visitors: v.too_few_visitors,
            metrics: v
                .metrics
                .iter()
                .map(|m| Metric { name: m.name.clone(), arms: arms(&m.arms), lifts: lifts(&m.lifts) })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantVisitors {
    pub variant: String,
    pub visitors: u64,
}

/// The value's split against the configured weights: the report's
/// chi-square test at 0.001, judged when every arm expects 100 visitors.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Srm {
    pub p_value: f64,
    pub mismatch: bool,
    pub judged: bool,
}

/// One metric on the value's visitors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub arms: Vec<Arm>,
    /// `p_value_adjusted` is Benjamini–Hochberg across the segment's
    /// values, treatments and metrics; `significant` and `direction`
    /// follow it.
    pub lifts: Vec<Lift>,
}

/// Cochran's Q of one treatment's relative lift on one metric across the
/// values with at least 100 visitors in every arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heterogeneity {
    pub metric: String,
    pub variant: String,
    pub q: f64,
    pub dof: u32,
    pub p_value: f64,
    pub values_used: Vec<String>,
}

impl From<&domain::HeterogeneityResult> for Heterogeneity {
    fn from(h: &domain::HeterogeneityResult) -> Self {
        Heterogeneity {
            metric: h.metric.clone(),
            variant: h.variant.clone(),
            q: h.q,
            dof: h.dof,
            p_value: h.p_value,
            values_used: h.values_used.clone(),
        }
    }
}

mirror!(
    /// What a finding of a breakdown is about.
    FindingKind from domain::FindingKind { Srm, Heterogeneity }
);

/// What a breakdown by segment found, as the report names it: a value
/// whose exposures do not split as configured, or a lift that differs by
/// value (`/report`'s `segments_summary`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub segment: String,
    pub value: String,
    pub kind: FindingKind,
    pub p_value: f64,
    /// The metric and treatment of a heterogeneous lift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub sentence: String,
}

impl From<&domain::Finding> for Finding {
    fn from(f: &domain::Finding) -> Self {
        Finding {
            segment: f.segment.clone(),
            value: f.value.clone(),
            kind: f.kind.into(),
            p_value: f.p_value,
            metric: f.metric.clone(),
            variant: f.variant.clone(),
            sentence: f.sentence.clone(),
        }
    }
}
