//! The raw records offerlab stores and cannot recompute: first exposures
//! and events. Every field is a parsed type ([`crate::ids`]), so a record
//! is built only from checked parts: by the checks of what the storefront
//! sends ([`crate::tracking`]) or by a store decoding what it wrote.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{EventId, EventName, ExperimentId, VariantIndex, VisitorId};

/// A visitor's first exposure to one phase of a test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    pub visitor: VisitorId,
    pub experiment: ExperimentId,
    pub variant: VariantIndex,
    pub ts: DateTime<Utc>,
    /// The test's `allocation_version` when the visitor was exposed.
    pub phase: u32,
    /// The raw values of the segment attributes the exposure carried
    /// (attribute → at most 64 bytes, [`crate::experiment::segments_file::kept`]):
    /// the segment values a breakdown reads. Kept with the first exposure,
    /// so a visitor's segment never changes after it, like its variant.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// One event a visitor did (an order, an accepted upsell, a return).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub visitor: VisitorId,
    pub name: EventName,
    pub value: f64,
    pub ts: DateTime<Utc>,
}

/// A time cut to whole microseconds, the precision every store keeps
/// (PostgreSQL's `timestamptz`): "an event at or after the exposure" then
/// compares the same instants on every backend.
pub fn to_stored_precision(ts: DateTime<Utc>) -> DateTime<Utc> {
    ts.trunc_subsecs(6)
}
