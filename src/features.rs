//! The GrowthBook SDK payload (`GET /api/features/{client_key}`): every
//! test as a feature a storefront's GrowthBook SDK evaluates locally, with
//! the same buckets as `/v1/assign` and no call per page.
//!
//! One feature per test, keyed by the test's id, whose value is the
//! variant's payload:
//! - running: the control's payload by default, and one experiment rule
//!   with the test's `key`, `seed`, `hashVersion: 2`, `hashAttribute`,
//!   `coverage`, `weights`, `variations` (the payloads), `meta` (each
//!   variant's key, which the SDK's tracking callback reports back),
//!   `namespace` as `[id, start, end]`, `phase` (the allocation version)
//!   and its targeting as a `condition` (`{"attr": {"$in": [...]}}` per
//!   attribute). A visitor the rule leaves out (targeting, namespace,
//!   coverage, no hash attribute) gets the default, as on `/v1/assign`;
//! - paused: a rule forcing the control's payload;
//! - concluded: a rule forcing the winner's payload;
//! - draft: absent.
//!
//! Built once per loaded set of definitions ([`Features::new`]), so a poll
//! costs a lookup; its weak ETag hashes the features alone, so replicas
//! with the same definitions answer `304` to each other's ETags.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::experiment::{Catalog, Experiment, Status};
use crate::ids::VariantIndex;

/// The feature of one test, or `None` for a draft.
pub fn feature(exp: &Experiment) -> Option<Value> {
    let payload = |i: VariantIndex| exp.variant_at(i).map_or(Value::Null, |v| v.payload.clone());
    let control = payload(VariantIndex::CONTROL);
    let force = |value: Value, why: &str| json!({ "id": format!("{}-{why}", exp.id), "force": value });
    let rule = match exp.status {
        Status::Draft => return None,
        Status::Paused => force(control.clone(), "paused"),
        Status::Concluded => force(payload(exp.winner.unwrap_or(VariantIndex::CONTROL)), "concluded"),
        Status::Running => experiment_rule(exp),
    };
    Some(json!({ "defaultValue": control, "rules": [rule] }))
}

fn experiment_rule(exp: &Experiment) -> Value {
    let mut rule = Map::new();
    rule.insert("id".into(), json!(exp.id));
    rule.insert("key".into(), json!(exp.id));
    rule.insert("seed".into(), json!(exp.seed));
    rule.insert("hashVersion".into(), json!(2));
    rule.insert("hashAttribute".into(), json!(exp.hash_attribute));
    rule.insert("coverage".into(), json!(exp.coverage));
    rule.insert("weights".into(), json!(exp.weights()));
    rule.insert("variations".into(), exp.variants.iter().map(|v| v.payload.clone()).collect());
    rule.insert("meta".into(), exp.variants.iter().map(|v| json!({ "key": v.key })).collect());
    rule.insert("phase".into(), json!(exp.allocation_version.to_string()));
    rule.insert("name".into(), json!(exp.name));
    if let Some(ns) = &exp.namespace {
        rule.insert("namespace".into(), json!([ns.id, ns.start, ns.end]));
    }
    if !exp.targeting.0.is_empty() {
        let condition: Map<String, Value> =
            exp.targeting.0.iter().map(|(attr, values)| (attr.clone(), json!({ "$in": values }))).collect();
        rule.insert("condition".into(), Value::Object(condition));
    }
    Value::Object(rule)
}

/// The payload of a set of definitions loaded at `updated`.
pub fn payload(catalog: &Catalog, updated: DateTime<Utc>) -> Value {
    let features: Map<String, Value> =
        catalog.experiments().filter_map(|e| Some((e.id.to_string(), feature(e)?))).collect();
    json!({
        "status": 200,
        "features": features,
        "dateUpdated": updated.to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}

/// The serialised payload and its ETag.
#[derive(Debug, Clone)]
pub struct Features {
    /// Shared, so a reply costs no copy.
    pub body: bytes::Bytes,
    /// `W/"<16 hex digits>"`: FNV-1a, 64 bits, of the features' JSON.
    pub etag: String,
}

impl Features {
    pub fn new(catalog: &Catalog, updated: DateTime<Utc>) -> Features {
        let payload = payload(catalog, updated);
        let features = serde_json::to_string(&payload["features"]).expect("JSON serialises");
        let hash = features
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
        Features { body: bytes::Bytes::from(payload.to_string()), etag: format!("W/\"{hash:016x}\"") }
    }

    /// Whether an `If-None-Match` header names this payload: `*`, or a
    /// list holding our ETag (weak comparison: `W/` is ignored).
    pub fn matches(&self, if_none_match: &str) -> bool {
        let ours = self.etag.trim_start_matches("W/");
        if_none_match.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        let f = Features { body: bytes::Bytes::new(), etag: "W/\"00000000000000ab\"".into() };
        assert!(f.matches("W/\"00000000000000ab\""));
        assert!(f.matches("\"00000000000000ab\""));
        assert!(f.matches("\"x\", W/\"00000000000000ab\""));
        assert!(f.matches("*"));
        assert!(!f.matches("W/\"00000000000000ac\""));
    }
}
