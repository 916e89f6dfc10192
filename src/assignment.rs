//! Deterministic, stateless assignment of visitors to variants.
//!
//! Everything here is pure and bit-compatible with GrowthBook's SDKs, so a
//! storefront evaluating the same tests client-side with a GrowthBook SDK
//! gets the same variants as any offerlab replica, after any restart.
//! Hashing and bucket ranges live in [`crate::bucketing`]; here
//! [`evaluate`] applies status, targeting, namespace, coverage and forcing
//! to one experiment definition, and [`assign_all`] to every matching one.

use std::collections::BTreeMap;

use smallvec::SmallVec;

pub use crate::bucketing::{
    bucket_ranges, choose_variant, equal_weights, fnv1a32, hash, hash_v2, in_namespace, BucketRange, Fnv, HashVersion,
    Namespace,
};
pub use crate::experiment::Attributes;
use crate::experiment::{Catalog, Experiment, Status, Surface, Variant};
use crate::ids::{VariantIndex, VisitorId};

/// What one experiment shows one visitor.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Which of the experiment's variants.
    pub variant: VariantIndex,
    /// True only when the visitor counts toward the test (running, eligible,
    /// within coverage, not forced); only such assignments are recorded.
    pub in_experiment: bool,
    pub forced: bool,
    /// The visitor's hash for this test, when one was computed.
    pub hash_value: Option<f64>,
}

impl Assignment {
    fn shown(variant: VariantIndex, hash_value: Option<f64>) -> Self {
        Assignment { variant, in_experiment: false, forced: false, hash_value }
    }
}

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
    forced: Option<VariantIndex>,
) -> Option<Assignment> {
    if experiment.status == Status::Draft {
        return None;
    }
    if let Some(variant) = forced {
        return Some(Assignment { variant, in_experiment: false, forced: true, hash_value: None });
    }
    match experiment.status {
        Status::Draft => None,
        Status::Paused => Some(Assignment::shown(VariantIndex::CONTROL, None)),
        Status::Concluded => Some(Assignment::shown(experiment.winner.unwrap_or(VariantIndex::CONTROL), None)),
        Status::Running => Some(evaluate_running(experiment, visitor_id, attributes)),
    }
}

fn evaluate_running(experiment: &Experiment, visitor_id: &str, attributes: &Attributes) -> Assignment {
    if !experiment.targeting.matches(attributes) {
        return Assignment::shown(VariantIndex::CONTROL, None);
    }
    let value = match experiment.hash_attribute.as_str() {
        "visitor_id" => attributes.get("visitor_id").map(String::as_str).unwrap_or(visitor_id),
        other => match attributes.get(other) {
            Some(v) => v.as_str(),
            None => return Assignment::shown(VariantIndex::CONTROL, None),
        },
    };
    if value.is_empty() {
        return Assignment::shown(VariantIndex::CONTROL, None);
    }
    if let Some(ns) = &experiment.namespace {
        if !in_namespace(value, ns) {
            return Assignment::shown(VariantIndex::CONTROL, None);
        }
    }
    let n = hash_v2(experiment.seeded(), value);
    match choose_variant(n, experiment.ranges()) {
        Some(i) => {
            let variant = VariantIndex::new(i).expect("a loaded test has at most MAX_VARIANTS variants");
            Assignment { variant, in_experiment: true, forced: false, hash_value: Some(n) }
        }
        None => Assignment::shown(VariantIndex::CONTROL, Some(n)),
    }
}

/// Attributes as a request sends them: a JSON object whose strings are
/// kept as they are and whose numbers and booleans are read in their JSON
/// spelling (`3`, `2.5`, `true`), so targeting compares text. Built while
/// the body is parsed, without an intermediate JSON tree; a value of any
/// other type (object, array, null) does not fail the parse but is kept
/// in `invalid`, so the reply can name the attribute.
#[derive(Debug, Default)]
pub struct JsonAttributes {
    map: Attributes,
    invalid: Option<String>,
}

/// What to tell a client whose attribute `name` has a value of another
/// type than string, number or boolean.
pub fn invalid_attribute_message(name: &str) -> String {
    format!("attribute \"{name}\" must be a string, number or boolean")
}

impl JsonAttributes {
    /// The attributes, or the name of the first one that is not a string,
    /// number or boolean.
    pub fn into_attributes(self) -> Result<Attributes, String> {
        match self.invalid {
            Some(k) => Err(k),
            None => Ok(self.map),
        }
    }
}

impl<'de> serde::Deserialize<'de> for JsonAttributes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(AttributesVisitor)
    }
}

struct AttributesVisitor;

impl<'de> serde::de::Visitor<'de> for AttributesVisitor {
    type Value = JsonAttributes;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object of attributes")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<JsonAttributes, A::Error> {
        let mut out = JsonAttributes::default();
        while let Some(key) = access.next_key::<String>()? {
            match access.next_value::<ScalarText>()?.0 {
                Some(text) => {
                    out.map.insert(key, text);
                }
                None => {
                    out.invalid.get_or_insert(key);
                }
            }
        }
        Ok(out)
    }
}

/// One attribute's value as text, or `None` for a value of another type.
struct ScalarText(Option<String>);

impl<'de> serde::Deserialize<'de> for ScalarText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> serde::de::Visitor<'de> for ScalarVisitor {
    type Value = ScalarText;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_str<E>(self, v: &str) -> Result<ScalarText, E> {
        Ok(ScalarText(Some(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<ScalarText, E> {
        Ok(ScalarText(Some(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<ScalarText, E> {
        Ok(ScalarText(Some(v.to_string())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<ScalarText, E> {
        Ok(ScalarText(Some(v.to_string())))
    }
    fn visit_i64<E>(self, v: i64) -> Result<ScalarText, E> {
        Ok(ScalarText(Some(v.to_string())))
    }
    /// Spelled as `serde_json` spells the number (`1000.0`, `2.5`).
    fn visit_f64<E>(self, v: f64) -> Result<ScalarText, E> {
        Ok(ScalarText(serde_json::Number::from_f64(v).map(|n| n.to_string())))
    }
    fn visit_unit<E>(self) -> Result<ScalarText, E> {
        Ok(ScalarText(None))
    }
    fn visit_none<E>(self) -> Result<ScalarText, E> {
        Ok(ScalarText(None))
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<ScalarText, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ScalarText, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(ScalarText(None))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ScalarText, A::Error> {
        while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
        Ok(ScalarText(None))
    }
}

/// What the storefront asks for one visitor: every matching test's variant.
#[derive(Debug, Clone)]
pub struct AssignQuery {
    pub visitor_id: VisitorId,
    pub attributes: Attributes,
    /// Only tests on this surface, when given.
    pub surface: Option<Surface>,
    /// Only these tests, when given.
    pub experiments: Option<Vec<String>>,
    /// QA overrides: experiment id → variant key.
    pub force: BTreeMap<String, String>,
}

/// One test's answer to an [`AssignQuery`], borrowed from the catalog.
/// Small (a reference and the visitor's three fields), so an answer for
/// every test fits on the stack.
#[derive(Debug, Clone, Copy)]
pub struct AssignedVariant<'a> {
    pub exp: &'a Experiment,
    /// The variant shown.
    pub variant_index: VariantIndex,
    pub in_experiment: bool,
    pub forced: bool,
    pub hash_value: Option<f64>,
}

impl<'a> AssignedVariant<'a> {
    pub fn variant(&self) -> &'a Variant {
        &self.exp.variants[self.variant_index.get()]
    }
}

impl AssignQuery {
    /// Every test the visitor may see, without attributes or overrides.
    pub fn new(visitor_id: VisitorId) -> Self {
        AssignQuery {
            visitor_id,
            attributes: Attributes::new(),
            surface: None,
            experiments: None,
            force: BTreeMap::new(),
        }
    }
}

/// Why a query cannot be answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AssignError {
    #[error("unknown experiment \"{0}\"")]
    UnknownExperiment(String),
    #[error("experiment \"{experiment}\" has no variant \"{variant}\"; use one of: {known}")]
    UnknownVariant { experiment: String, variant: String, known: String },
}

/// How many assignments an answer holds without a heap allocation: more
/// tests than a storefront runs on one page at once.
pub const INLINE_ASSIGNMENTS: usize = 8;

/// The assignments of one query, in id order.
pub type Assignments<'c> = SmallVec<[AssignedVariant<'c>; INLINE_ASSIGNMENTS]>;

/// Answers a query against a catalog: every visible test that passes the
/// surface and id filters, in id order. Drafts are invisible; a forced test
/// must exist and name one of its variants.
pub fn assign_all<'c>(catalog: &'c Catalog, q: &AssignQuery) -> Result<Assignments<'c>, AssignError> {
    if let Some(ids) = &q.experiments {
        if let Some(missing) = ids.iter().find(|id| catalog.get(id).is_none()) {
            return Err(AssignError::UnknownExperiment(missing.clone()));
        }
    }
    for (id, key) in &q.force {
        let exp = catalog.get(id).ok_or_else(|| AssignError::UnknownExperiment(id.clone()))?;
        if exp.variant_index(key).is_none() {
            return Err(AssignError::UnknownVariant {
                experiment: id.clone(),
                variant: key.clone(),
                known: exp.variants.iter().map(|v| v.key.as_str()).collect::<Vec<_>>().join(", "),
            });
        }
    }
    let mut out = Assignments::new();
    for e in catalog.experiments() {
        if q.surface.is_some_and(|s| s != e.surface)
            || q.experiments.as_ref().is_some_and(|ids| !ids.iter().any(|id| id == e.id.as_str()))
        {
            continue;
        }
        let forced =
            if q.force.is_empty() { None } else { q.force.get(e.id.as_str()).and_then(|k| e.variant_index(k)) };
        if let Some(a) = evaluate(e, q.visitor_id.as_str(), &q.attributes, forced) {
            out.push(AssignedVariant {
                exp: e,
                variant_index: a.variant,
                in_experiment: a.in_experiment,
                forced: a.forced,
                hash_value: a.hash_value,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers and booleans read as text exactly as `serde_json` prints the
    /// JSON value, so targeting written against `"3"` or `"true"` matches.
    #[test]
    fn json_attributes_keep_scalars_as_their_json_text() {
        let body = r#"{"s":"mobile","u":3,"i":-4,"f":2.5,"e":1e3,"big":18446744073709551615,"t":true,"n":false}"#;
        let parsed: JsonAttributes = serde_json::from_str(body).unwrap();
        let expected: Attributes = serde_json::from_str::<BTreeMap<String, serde_json::Value>>(body)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect();
        assert_eq!(parsed.into_attributes().unwrap(), expected);
        assert_eq!(expected["e"], "1000.0");
    }

    #[test]
    fn json_attributes_name_the_first_value_of_another_type() {
        for (body, bad) in [
            (r#"{"a":"x","b":null}"#, "b"),
            (r#"{"a":[1,{"x":2}],"b":{"c":[]}}"#, "a"),
            (r#"{"z":{"nested":true},"a":1}"#, "z"),
        ] {
            let parsed: JsonAttributes = serde_json::from_str(body).unwrap();
            assert_eq!(parsed.into_attributes().unwrap_err(), bad, "{body}");
        }
        assert!(serde_json::from_str::<JsonAttributes>("[1]").is_err(), "attributes are an object");
    }

    #[test]
    fn the_reply_carries_each_payload_as_the_toml_gave_it() {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments"));
        let catalog = crate::experiment::load_dir(dir).unwrap();
        for (i, visitor) in ["v-1", "visité \"quoted\"", "🛒-2"].iter().enumerate() {
            let mut q = AssignQuery::new(VisitorId::parse(visitor).unwrap());
            if i == 2 {
                q.force.insert("cart-protection-copy".into(), "benefit".into());
            }
            let assignments = assign_all(&catalog, &q).unwrap();
            let text = serde_json::to_string(&crate::wire::v1::AssignReply::new(visitor, &assignments)).unwrap();
            let read: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(read["visitor_id"], *visitor);
            for (a, r) in assignments.iter().zip(read["assignments"].as_array().unwrap()) {
                assert_eq!(r["experiment"], a.exp.id.as_str());
                assert_eq!(r["surface"], a.exp.surface.as_str());
                assert_eq!(r["variant"], a.variant().key.as_str());
                assert_eq!(r["payload"], a.variant().payload);
                assert_eq!(r["forced"], a.forced);
            }
        }
    }

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
