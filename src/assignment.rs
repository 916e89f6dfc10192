//! Deterministic, stateless assignment of visitors to variants.
//!
//! Everything here is pure and bit-compatible with GrowthBook's SDKs, so a
//! storefront evaluating the same tests client-side with a GrowthBook SDK
//! gets the same variants as any offerlab replica, after any restart:
//!
//! - [`fnv1a32`] hashes the UTF-16 code units of a string;
//! - [`hash`] turns a seed and a value into a number in `[0, 1)`;
//! - [`bucket_ranges`] lays the variants out on `[0, 1)`;
//! - [`choose_variant`] finds the range that holds the hash;
//! - [`in_namespace`] decides eligibility for mutually exclusive tests;
//! - [`evaluate`] applies status, targeting, namespace, coverage and forcing
//!   to one experiment definition.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::experiment::{Catalog, Experiment, Status, Surface};

/// FNV-1a, 32 bits, over the UTF-16 code units of `s` (what JavaScript's
/// `charCodeAt` loop sees, so astral characters count as two units).
///
/// # Formula
/// `h = 0x811C9DC5`; for each unit `u`: `h = (h ^ u) * 16777619 mod 2^32`.
pub fn fnv1a32(s: &str) -> u32 {
    s.encode_utf16().fold(0x811C_9DC5_u32, |h, unit| (h ^ u32::from(unit)).wrapping_mul(16_777_619))
}

/// Which of GrowthBook's hashing schemes to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashVersion {
    /// `(fnv(value + seed) % 1000) / 1000`; still used for namespaces.
    V1,
    /// `(fnv(str(fnv(seed + value))) % 10000) / 10000`; the default, whose
    /// double hashing removes the correlation V1 shows between similar seeds.
    V2,
}

/// The visitor's position in `[0, 1)` for a given seed.
///
/// # Formula
/// - V1: `n = (fnv(value + seed) mod 1000) / 1000`
/// - V2: `n = (fnv(decimal(fnv(seed + value))) mod 10000) / 10000`
pub fn hash(seed: &str, value: &str, version: HashVersion) -> f64 {
    match version {
        HashVersion::V1 => {
            let h = fnv1a32(&format!("{value}{seed}"));
            f64::from(h % 1000) / 1000.0
        }
        HashVersion::V2 => {
            let inner = fnv1a32(&format!("{seed}{value}"));
            let h = fnv1a32(&inner.to_string());
            f64::from(h % 10_000) / 10_000.0
        }
    }
}

/// Equal weights for `n` variants, as GrowthBook's `getEqualWeights`.
pub fn equal_weights(n: usize) -> Vec<f64> {
    vec![1.0 / n as f64; n]
}

/// The weights bucketing actually uses: the given ones when there is one
/// finite, non-negative weight per variant and they sum to within
/// `[0.99, 1.01]`, equal weights otherwise (GrowthBook's rule; definitions
/// are held to a tighter sum at validation).
fn effective_weights(n: usize, weights: Option<&[f64]>) -> Vec<f64> {
    match weights {
        Some(w)
            if w.len() == n
                && w.iter().all(|x| x.is_finite() && *x >= 0.0)
                && (0.99..=1.01).contains(&w.iter().sum::<f64>()) =>
        {
            w.to_vec()
        }
        _ => equal_weights(n),
    }
}

/// One variant's share of `[0, 1)`: a visitor with `start <= n < end` gets it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketRange {
    pub start: f64,
    pub end: f64,
}

impl BucketRange {
    pub fn contains(&self, n: f64) -> bool {
        self.start <= n && n < self.end
    }
}

/// Lays `n` variants out on `[0, 1)`.
///
/// # Formula
/// Coverage `c` is clamped to `[0, 1]`; walking the variants with a
/// cumulative start `s_i = w_0 + ... + w_{i-1}`, variant `i` gets
/// `[s_i, s_i + c * w_i)`. Shrinking coverage therefore never moves a
/// visitor from one variant to another, it only leaves some out.
pub fn bucket_ranges(n: usize, coverage: f64, weights: Option<&[f64]>) -> Vec<BucketRange> {
    let coverage = if coverage.is_nan() { 0.0 } else { coverage.clamp(0.0, 1.0) };
    let mut cumulative = 0.0;
    effective_weights(n, weights)
        .into_iter()
        .map(|w| {
            let start = cumulative;
            cumulative += w;
            BucketRange { start, end: start + coverage * w }
        })
        .collect()
}

/// The index of the first range that holds `n`, or `None` when the visitor
/// falls outside coverage.
pub fn choose_variant(n: f64, ranges: &[BucketRange]) -> Option<usize> {
    ranges.iter().position(|r| r.contains(n))
}

/// A mutual-exclusion group: tests that share a namespace id and take
/// disjoint ranges of it can never see the same visitor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Namespace {
    pub id: String,
    pub start: f64,
    pub end: f64,
}

impl Namespace {
    /// Whether two namespaces may hold a visitor in common: always, unless
    /// they are the same group and their ranges are disjoint.
    pub fn may_overlap(&self, other: &Namespace) -> bool {
        self.id != other.id || (self.start < other.end && other.start < self.end)
    }
}

/// Whether `value` falls into the namespace's range.
///
/// # Formula
/// `start <= hash("__" + id, value, V1) < end`
pub fn in_namespace(value: &str, ns: &Namespace) -> bool {
    let n = hash(&format!("__{}", ns.id), value, HashVersion::V1);
    ns.start <= n && n < ns.end
}

/// What one experiment shows one visitor.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Index into the experiment's variants.
    pub variant: usize,
    /// True only when the visitor counts toward the test (running, eligible,
    /// within coverage, not forced); only such assignments are recorded.
    pub in_experiment: bool,
    pub forced: bool,
    /// The visitor's hash for this test, when one was computed.
    pub hash_value: Option<f64>,
}

impl Assignment {
    fn shown(variant: usize, hash_value: Option<f64>) -> Self {
        Assignment { variant, in_experiment: false, forced: false, hash_value }
    }
}

/// Attributes the storefront sends about a visitor; values are compared as
/// strings.
pub type Attributes = BTreeMap<String, String>;

/// Decides what `experiment` shows a visitor.
///
/// `visitor_id` stands in for the `visitor_id` attribute when the map does
/// not carry one. `forced` is a variant index chosen for QA. Returns `None`
/// for a draft, which is invisible.
///
/// Order: draft → invisible; forced → that variant (never recorded);
/// paused → control; concluded → winner; running → targeting, hash
/// attribute present, namespace, then the bucket ranges. A visitor who is
/// not in the test sees the control.
pub fn evaluate(
    experiment: &Experiment,
    visitor_id: &str,
    attributes: &Attributes,
    forced: Option<usize>,
) -> Option<Assignment> {
    if experiment.status == Status::Draft {
        return None;
    }
    if let Some(variant) = forced {
        return Some(Assignment { variant, in_experiment: false, forced: true, hash_value: None });
    }
    match experiment.status {
        Status::Draft => None,
        Status::Paused => Some(Assignment::shown(0, None)),
        Status::Concluded => Some(Assignment::shown(experiment.winner.unwrap_or(0), None)),
        Status::Running => Some(evaluate_running(experiment, visitor_id, attributes)),
    }
}

fn evaluate_running(experiment: &Experiment, visitor_id: &str, attributes: &Attributes) -> Assignment {
    if !experiment.targeting.matches(attributes) {
        return Assignment::shown(0, None);
    }
    let value = match experiment.hash_attribute.as_str() {
        "visitor_id" => attributes.get("visitor_id").map(String::as_str).unwrap_or(visitor_id),
        other => match attributes.get(other) {
            Some(v) => v.as_str(),
            None => return Assignment::shown(0, None),
        },
    };
    if value.is_empty() {
        return Assignment::shown(0, None);
    }
    if let Some(ns) = &experiment.namespace {
        if !in_namespace(value, ns) {
            return Assignment::shown(0, None);
        }
    }
    let n = hash(&experiment.seed, value, HashVersion::V2);
    match choose_variant(n, experiment.ranges()) {
        Some(variant) => Assignment { variant, in_experiment: true, forced: false, hash_value: Some(n) },
        None => Assignment::shown(0, Some(n)),
    }
}

/// Converts attributes sent as JSON into strings for matching: strings as
/// they are, numbers and booleans in their JSON spelling. Returns the name
/// of the first attribute of another type.
pub fn attributes_from_json(map: BTreeMap<String, serde_json::Value>) -> Result<Attributes, String> {
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            _ => Err(k),
        })
        .collect()
}

/// What the storefront asks for one visitor: every matching test's variant.
#[derive(Debug, Clone, Default)]
pub struct AssignQuery {
    pub visitor_id: String,
    pub attributes: Attributes,
    /// Only tests on this surface, when given.
    pub surface: Option<Surface>,
    /// Only these tests, when given.
    pub experiments: Option<Vec<String>>,
    /// QA overrides: experiment id → variant key.
    pub force: BTreeMap<String, String>,
}

/// One test's answer to an [`AssignQuery`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssignedVariant {
    pub experiment: String,
    pub surface: Surface,
    pub variant: String,
    pub payload: serde_json::Value,
    pub in_experiment: bool,
    pub forced: bool,
    pub hash_value: Option<f64>,
    /// Index of the variant, for recording; not part of the wire form.
    #[serde(skip)]
    pub variant_index: usize,
}

/// Why a query cannot be answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AssignError {
    #[error("unknown experiment \"{0}\"")]
    UnknownExperiment(String),
    #[error("experiment \"{experiment}\" has no variant \"{variant}\"; use one of: {known}")]
    UnknownVariant { experiment: String, variant: String, known: String },
}

/// Answers a query against a catalog: every visible test that passes the
/// surface and id filters, in id order. Drafts are invisible; a forced test
/// must exist and name one of its variants.
pub fn assign_all(catalog: &Catalog, q: &AssignQuery) -> Result<Vec<AssignedVariant>, AssignError> {
    if let Some(ids) = &q.experiments {
        if let Some(missing) = ids.iter().find(|id| catalog.get(id).is_none()) {
            return Err(AssignError::UnknownExperiment(missing.clone()));
        }
    }
    let mut forced = BTreeMap::new();
    for (id, key) in &q.force {
        let exp = catalog.get(id).ok_or_else(|| AssignError::UnknownExperiment(id.clone()))?;
        let idx = exp.variant_index(key).ok_or_else(|| AssignError::UnknownVariant {
            experiment: id.clone(),
            variant: key.clone(),
            known: exp.variants.iter().map(|v| v.key.as_str()).collect::<Vec<_>>().join(", "),
        })?;
        forced.insert(id.as_str(), idx);
    }
    Ok(catalog
        .experiments()
        .filter(|e| q.surface.is_none_or(|s| s == e.surface))
        .filter(|e| q.experiments.as_ref().is_none_or(|ids| ids.iter().any(|id| id == e.id.as_str())))
        .filter_map(|e| {
            let a = evaluate(e, &q.visitor_id, &q.attributes, forced.get(e.id.as_str()).copied())?;
            let v = &e.variants[a.variant];
            Some(AssignedVariant {
                experiment: e.id.to_string(),
                surface: e.surface,
                variant: v.key.clone(),
                payload: v.payload.clone(),
                in_experiment: a.in_experiment,
                forced: a.forced,
                hash_value: a.hash_value,
                variant_index: a.variant,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_hash_cases() {
        assert_eq!(hash("seed", "a", HashVersion::V2), 0.0505);
        assert_eq!(hash("", "a", HashVersion::V1), 0.22);
    }

    #[test]
    fn published_bucket_ranges_with_coverage() {
        let r = bucket_ranges(3, 0.2, Some(&[0.2, 0.3, 0.5]));
        let want = [(0.0, 0.04), (0.2, 0.26), (0.5, 0.6)];
        for (got, (s, e)) in r.iter().zip(want) {
            assert!((got.start - s).abs() < 1e-12 && (got.end - e).abs() < 1e-12, "{got:?}");
        }
    }

    #[test]
    fn invalid_weights_fall_back_to_equal() {
        let r = bucket_ranges(2, 1.0, Some(&[0.7, 0.7]));
        assert_eq!(r[0].end, 0.5);
        let r = bucket_ranges(2, 1.0, Some(&[1.2, -0.2]));
        assert_eq!(r[1].start, 0.5);
    }

    #[test]
    fn astral_characters_hash_as_two_utf16_units() {
        // U+1F600 is the surrogate pair D83D DE00.
        let manual = [0xD83Du32, 0xDE00].iter().fold(0x811C_9DC5_u32, |h, u| (h ^ u).wrapping_mul(16_777_619));
        assert_eq!(fnv1a32("\u{1F600}"), manual);
    }

    #[test]
    fn namespaces_overlap_unless_same_id_and_disjoint() {
        let a = Namespace { id: "cart".into(), start: 0.0, end: 0.5 };
        let b = Namespace { id: "cart".into(), start: 0.5, end: 1.0 };
        let c = Namespace { id: "other".into(), start: 0.5, end: 1.0 };
        assert!(!a.may_overlap(&b));
        assert!(a.may_overlap(&c));
        assert!(a.may_overlap(&a));
    }
}
