//! What the storefront reports, checked before anything is stored:
//! exposures (which variant a visitor was shown) and events (what they
//! then did). Pure: "now" is a parameter.
//!
//! An exposure must agree with the deterministic assignment, so a stale
//! cache on the storefront cannot pollute a test; only running tests record.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::assignment::{evaluate, invalid_attribute_message, AssignedVariant, Attributes, JsonAttributes};
use crate::experiment::segments_file::kept;
use crate::experiment::{Catalog, Status};
use crate::ids::{EventId, EventName, VisitorId};
use crate::records::{to_stored_precision, Event, Exposure};

/// Most items in one batch.
pub const MAX_BATCH: usize = 1000;
/// Largest accepted event value, in absolute terms: anything larger is a
/// unit or parsing mistake upstream (a cent amount sent as a float of 1e12).
pub const MAX_EVENT_VALUE: f64 = 1e9;
/// How far in the future a timestamp may be (clock skew).
pub const MAX_FUTURE_SKEW_SECONDS: i64 = 300;

/// Why an exposure or event was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrackError {
    #[error("unknown experiment \"{0}\"")]
    UnknownExperiment(String),
    #[error("experiment \"{experiment}\" has no variant \"{variant}\"; use one of: {known}")]
    UnknownVariant { experiment: String, variant: String, known: String },
    #[error("experiment \"{experiment}\" is {status}, not running; only running tests record exposures")]
    NotRunning { experiment: String, status: String },
    #[error("visitor is assigned \"{actual}\" in \"{experiment}\", not \"{sent}\"; render the variant /v1/assign returns (a cached assignment may be stale)")]
    AssignmentMismatch { experiment: String, sent: String, actual: String },
    #[error("visitor is not in \"{0}\" (targeting, namespace or coverage leave them out); do not report an exposure for them")]
    NotInExperiment(String),
    #[error("exposure at {ts} is before \"{experiment}\" started ({start}); check the storefront's clock, or the test's start")]
    BeforeStart { experiment: String, ts: String, start: String },
    #[error("event id \"{0}\" is already stored for another visitor, name or value; ids are global across visitors, so give each event its own (e.g. prefix it with the order or visitor id)")]
    IdConflict(String),
    #[error("unknown field \"{0}\"; remove it or correct its spelling")]
    UnknownField(String),
    #[error("{message}")]
    Invalid { code: &'static str, field: &'static str, message: String },
}

/// The first key of a JSON object that `T`, a struct deriving
/// `Deserialize`, has no field for. The field list is serde's own, read
/// from the derive ([`fields_of`]), so it cannot drift from the struct.
pub fn unknown_key<T: serde::de::DeserializeOwned>(item: &Value) -> Option<&str> {
    let fields = fields_of::<T>();
    item.as_object()?.keys().map(String::as_str).find(|k| !fields.contains(k))
}

/// The field names serde's derived `Deserialize` of the struct `T` asks
/// for: a deserializer that answers `deserialize_struct` by keeping them.
/// It allocates nothing (its error carries no message): it runs for every
/// tracked item.
fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field list read")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    struct Lister<'a>(&'a mut &'static [&'static str]);
    impl<'de> de::Deserializer<'de> for Lister<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Lister(&mut fields));
    fields
}

impl TrackError {
    fn invalid(code: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        TrackError::Invalid { code, field, message: message.into() }
    }

    pub fn code(&self) -> &'static str {
        match self {
            TrackError::UnknownExperiment(_) => "unknown_experiment",
            TrackError::UnknownVariant { .. } => "unknown_variant",
            TrackError::NotRunning { .. } => "experiment_not_running",
            TrackError::AssignmentMismatch { .. } => "assignment_mismatch",
            TrackError::NotInExperiment(_) => "not_in_experiment",
            TrackError::BeforeStart { .. } => "before_start",
            TrackError::IdConflict(_) => "conflict",
            TrackError::UnknownField(_) => "unknown_field",
            TrackError::Invalid { code, .. } => code,
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            TrackError::Invalid { field, .. } => Some(field),
            TrackError::UnknownField(name) => Some(name),
            TrackError::BeforeStart { .. } => Some("ts"),
            TrackError::IdConflict(_) => Some("id"),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExposureWire {
    pub visitor_id: Option<String>,
    pub experiment: Option<String>,
    pub variant: Option<String>,
    pub ts: Option<String>,
    #[serde(default)]
    pub attributes: JsonAttributes,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventWire {
    pub id: Option<String>,
    pub visitor_id: Option<String>,
    pub name: Option<String>,
    pub value: Option<Value>,
    pub ts: Option<String>,
}

fn required<'a>(v: &'a Option<String>, field: &'static str) -> Result<&'a str, TrackError> {
    v.as_deref().ok_or_else(|| TrackError::invalid("missing_field", field, format!("{field} is required")))
}

fn visitor(v: &Option<String>) -> Result<VisitorId, TrackError> {
    VisitorId::parse(required(v, "visitor_id")?).map_err(|m| TrackError::invalid("invalid_visitor_id", "visitor_id", m))
}

/// A text field parsed into its type, or refused with the type's message.
fn parsed<T>(v: &Option<String>, field: &'static str, parse: fn(&str) -> Result<T, String>) -> Result<T, TrackError> {
    parse(required(v, field)?).map_err(|m| TrackError::invalid("invalid_field", field, m))
}

/// An RFC 3339 time, at most five minutes ahead of `now`; `now` when absent.
/// Both cut to microseconds ([`to_stored_precision`]).
pub fn parse_ts(ts: Option<&str>, now: DateTime<Utc>) -> Result<DateTime<Utc>, TrackError> {
    let Some(raw) = ts else { return Ok(to_stored_precision(now)) };
    let ts = DateTime::parse_from_rfc3339(raw)
        .map_err(|e| {
            TrackError::invalid(
                "invalid_timestamp",
                "ts",
                format!("ts \"{raw}\" is not RFC 3339 ({e}); send e.g. 2026-11-23T14:05:00Z"),
            )
        })?
        .with_timezone(&Utc);
    if ts > now + Duration::seconds(MAX_FUTURE_SKEW_SECONDS) {
        return Err(TrackError::invalid(
            "timestamp_in_future",
            "ts",
            format!("ts {raw} is more than 5 minutes in the future; check the storefront's clock"),
        ));
    }
    Ok(to_stored_precision(ts))
}

/// Checks an exposure against the catalog and the deterministic assignment.
pub fn check_exposure(catalog: &Catalog, w: ExposureWire, now: DateTime<Utc>) -> Result<Exposure, TrackError> {
    let visitor = visitor(&w.visitor_id)?;
    let id = required(&w.experiment, "experiment")?;
    let exp = catalog.get(id).ok_or_else(|| TrackError::UnknownExperiment(id.to_owned()))?;
    let key = required(&w.variant, "variant")?;
    let variant = exp.variant_index(key).ok_or_else(|| TrackError::UnknownVariant {
        experiment: id.to_owned(),
        variant: key.to_owned(),
        known: exp.variants.iter().map(|v| v.key.as_str()).collect::<Vec<_>>().join(", "),
    })?;
    if exp.status != Status::Running {
        return Err(TrackError::NotRunning {
            experiment: id.to_owned(),
            status: format!("{:?}", exp.status).to_lowercase(),
        });
    }
    let ts = parse_ts(w.ts.as_deref(), now)?;
    if exp.local_day(ts) < exp.start {
        return Err(TrackError::BeforeStart {
            experiment: id.to_owned(),
            ts: ts.to_rfc3339(),
            start: exp.start.to_string(),
        });
    }
    let attributes = w
        .attributes
        .into_attributes()
        .map_err(|k| TrackError::invalid("invalid_attribute", "attributes", invalid_attribute_message(&k)))?;
    let a = evaluate(exp, visitor.as_str(), &attributes, None).expect("running tests are visible");
    if !a.in_experiment {
        return Err(TrackError::NotInExperiment(id.to_owned()));
    }
    if a.variant != variant {
        return Err(TrackError::AssignmentMismatch {
            experiment: id.to_owned(),
            sent: key.to_owned(),
            actual: exp.variants[a.variant.get()].key.clone(),
        });
    }
    let attributes = kept(catalog.segments(), &attributes);
    Ok(Exposure { visitor, experiment: exp.id.clone(), variant, ts, phase: exp.allocation_version, attributes })
}

/// The exposures an assignment answer implies (`record_exposure: true`):
/// every test the visitor is really in, from its first day on, each with
/// the segment attributes of `attributes` ([`kept`]).
pub fn exposures_of(
    catalog: &Catalog,
    visitor: &VisitorId,
    attributes: &Attributes,
    assigned: &[AssignedVariant],
    now: DateTime<Utc>,
) -> Vec<Exposure> {
    let ts = to_stored_precision(now);
    let attributes = kept(catalog.segments(), attributes);
    assigned
        .iter()
        .filter(|a| a.in_experiment && !a.forced && a.exp.local_day(now) >= a.exp.start)
        .map(|a| Exposure {
            visitor: visitor.clone(),
            experiment: a.exp.id.clone(),
            variant: a.variant_index,
            ts,
            phase: a.exp.allocation_version,
            attributes: attributes.clone(),
        })
        .collect()
}

/// Checks one event.
pub fn check_event(w: EventWire, now: DateTime<Utc>) -> Result<Event, TrackError> {
    let id = parsed(&w.id, "id", EventId::parse)?;
    let visitor = visitor(&w.visitor_id)?;
    let name = parsed(&w.name, "name", EventName::parse)?;
    let value = match &w.value {
        None | Some(Value::Null) => 0.0,
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(_) => f64::NAN,
    };
    if !value.is_finite() || value.abs() > MAX_EVENT_VALUE {
        return Err(TrackError::invalid(
            "invalid_value",
            "value",
            format!(
                "value must be a finite number of at most {MAX_EVENT_VALUE:e} in absolute terms (an order value, say)"
            ),
        ));
    }
    let ts = parse_ts(w.ts.as_deref(), now)?;
    Ok(Event { id, visitor, name, value, ts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_is_found_from_the_structs_own_fields() {
        let event = serde_json::json!({ "id": "e", "visitor_id": "v", "name": "order", "valu": 3 });
        assert_eq!(unknown_key::<EventWire>(&event), Some("valu"));
        let exposure = serde_json::json!({ "visitor_id": "v", "experiment": "x", "variant": "a", "attributes": {} });
        assert_eq!(unknown_key::<ExposureWire>(&exposure), None, "every field of the struct is known");
        assert_eq!(fields_of::<EventWire>(), ["id", "visitor_id", "name", "value", "ts"]);
    }
}
