//! `POST /v1/assign` and `GET /v1/assign`: which variant of every matching
//! test a visitor sees, with the payload to render.

use std::collections::BTreeMap;

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::assignment::{assign_all, invalid_attribute_message, AssignQuery, AssignedVariant, JsonAttributes};

use crate::experiment::Surface;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::ids::VisitorId;
use crate::store::{Outcome, Write};
use crate::tracking::exposures_of;
use crate::wire::v1::AssignReply;

/// The request as sent; [`AssignQuery`] is what it must parse into. An
/// unknown field is refused: a typo (`"surfce"`) must not silently widen
/// the answer. The body is read by the deserializer below, which keeps the
/// first unknown key by name ([`Field::Unknown`]) instead of failing the
/// parse, so the refusal names it from the key itself.
#[derive(Debug, Default)]
pub struct AssignBody {
    visitor_id: Option<String>,
    attributes: JsonAttributes,
    surface: Option<String>,
    experiments: Option<Vec<String>>,
    force: BTreeMap<String, String>,
    /// Record the exposures of the returned variants before answering.
    record_exposure: bool,
    /// The first key the body has that is none of the above.
    unknown: Option<String>,
}

/// A key of the body: one of its fields, or an unknown one by name (which
/// costs an allocation only when a client sends one).
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    VisitorId,
    Attributes,
    Surface,
    Experiments,
    Force,
    RecordExposure,
    Unknown(String),
}

/// The fields, as a refusal lists them.
const FIELDS: &str = "visitor_id, attributes, surface, experiments, force, record_exposure";

impl<'de> Deserialize<'de> for AssignBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, IgnoredAny, MapAccess, Visitor};
        struct Body;
        impl<'de> Visitor<'de> for Body {
            type Value = AssignBody;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AssignBody, A::Error> {
                let mut body = AssignBody::default();
                let mut seen = [false; 6];
                // Each known field once: its value into its slot, a repeat refused.
                macro_rules! take {
                    ($i:expr, $name:literal, $slot:expr) => {{
                        if std::mem::replace(&mut seen[$i], true) {
                            return Err(A::Error::duplicate_field($name));
                        }
                        $slot = map.next_value()?;
                    }};
                }
                while let Some(key) = map.next_key::<Field>()? {
                    match key {
                        Field::VisitorId => take!(0, "visitor_id", body.visitor_id),
                        Field::Attributes => take!(1, "attributes", body.attributes),
                        Field::Surface => take!(2, "surface", body.surface),
                        Field::Experiments => take!(3, "experiments", body.experiments),
                        Field::Force => take!(4, "force", body.force),
                        Field::RecordExposure => take!(5, "record_exposure", body.record_exposure),
                        Field::Unknown(name) => {
                            map.next_value::<IgnoredAny>()?;
                            body.unknown.get_or_insert(name);
                        }
                    }
                }
                Ok(body)
            }
        }
        d.deserialize_map(Body)
    }
}

fn invalid_attribute(k: String) -> ApiError {
    ApiError::invalid("invalid_attribute", Some(format!("attributes.{k}")), invalid_attribute_message(&k))
}

fn missing_visitor() -> ApiError {
    ApiError::invalid(
        "missing_field",
        Some("visitor_id".into()),
        "visitor_id is required; send the storefront's stable id for this visitor",
    )
}

fn parse_visitor(raw: Option<String>) -> Result<VisitorId, ApiError> {
    let raw = raw.ok_or_else(missing_visitor)?;
    VisitorId::parse_owned(raw).map_err(|m| ApiError::invalid("invalid_visitor_id", Some("visitor_id".into()), m))
}

fn parse_surface(raw: Option<&str>) -> Result<Option<Surface>, ApiError> {
    raw.map(|s| {
        Surface::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "invalid_surface",
                Some("surface".into()),
                format!("unknown surface \"{s}\"; use product_page, cart, checkout, post_purchase or email"),
            )
        })
    })
    .transpose()
}

impl TryFrom<AssignBody> for AssignQuery {
    type Error = ApiError;

    fn try_from(body: AssignBody) -> Result<Self, ApiError> {
        if let Some(name) = body.unknown {
            let message =
                format!("unknown field \"{name}\"; remove it or correct its spelling (the fields are {FIELDS})");
            return Err(ApiError::invalid("unknown_field", Some(name), message));
        }
        let visitor = parse_visitor(body.visitor_id)?;
        let attributes = body.attributes.into_attributes().map_err(invalid_attribute)?;
        Ok(AssignQuery {
            visitor_id: visitor,
            attributes,
            surface: parse_surface(body.surface.as_deref())?,
            experiments: body.experiments,
            force: body.force,
        })
    }
}

/// The GET form: `visitor_id`, `surface`, `experiments=a,b`,
/// `force.<test>=<variant>` and `attr.<name>=<value>`. Any other parameter
/// is refused by name, as the POST body refuses an unknown field: a typo
/// (`surfce=cart`) must not widen the answer by being read as an attribute.
fn query_from_params(mut params: BTreeMap<String, String>) -> Result<AssignQuery, ApiError> {
    let visitor = parse_visitor(params.remove("visitor_id"))?;
    let surface = parse_surface(params.remove("surface").as_deref())?;
    let experiments =
        params.remove("experiments").map(|s| s.split(',').filter(|x| !x.is_empty()).map(str::to_owned).collect());
    let mut force = BTreeMap::new();
    let mut attributes = BTreeMap::new();
    for (k, v) in params {
        if let Some(test) = k.strip_prefix("force.") {
            force.insert(test.to_owned(), v);
        } else if let Some(name) = k.strip_prefix("attr.") {
            attributes.insert(name.to_owned(), v);
        } else {
            let message = format!(
                "unknown parameter \"{k}\"; the parameters are visitor_id, surface, experiments, force.<test> and attr.<attribute> (an attribute goes as attr.{k}=...)"
            );
            return Err(ApiError::invalid("unknown_field", Some(k), message));
        }
    }
    Ok(AssignQuery { visitor_id: visitor, attributes, surface, experiments, force })
}

fn respond(visitor_id: &str, assignments: &[AssignedVariant]) -> HttpResponse {
    let mut body = Vec::with_capacity(256 + 320 * assignments.len());
    AssignReply::write(visitor_id, assignments, &mut body);
    HttpResponse::Ok().insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json"))).body(body)
}

pub async fn post_assign(state: web::Data<AppState>, body: web::Json<AssignBody>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let record = body.record_exposure;
    let query = AssignQuery::try_from(body)?;
    let catalog = state.catalog();
    let assignments = assign_all(&catalog, &query)?;
    if record {
        let writes = exposures_of(&catalog, &query.visitor_id, &query.attributes, &assignments, state.clock.now())
            .into_iter()
            .map(Write::Exposure)
            .collect();
        let outcomes = state.store.record(catalog.clone(), writes).await?;
        for (outcome, label) in [(Outcome::Accepted, "accepted"), (Outcome::Duplicate, "duplicate")] {
            state.metrics.count_writes("exposure", label, outcomes.iter().filter(|o| **o == outcome).count());
        }
    }
    Ok(respond(query.visitor_id.as_str(), &assignments))
}

pub async fn get_assign(
    state: web::Data<AppState>,
    params: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let query = query_from_params(params.into_inner())?;
    let catalog = state.catalog();
    let assignments = assign_all(&catalog, &query)?;
    Ok(respond(query.visitor_id.as_str(), &assignments))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_keeps_its_first_unknown_key_and_refuses_a_repeated_one() {
        let body: AssignBody =
            serde_json::from_str(r#"{"visitor_id":"v-1","surfce":"cart","attributes":{"device":"mobile"},"x":1}"#)
                .unwrap();
        assert_eq!((body.visitor_id.as_deref(), body.unknown.as_deref()), (Some("v-1"), Some("surfce")));
        let e = AssignQuery::try_from(body).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"unknown field "surfce"; remove it or correct its spelling (the fields are visitor_id, attributes, surface, experiments, force, record_exposure)"#
        );
        let body: AssignBody =
            serde_json::from_str(r#"{"visitor_id":"v-1","surface":"cart","record_exposure":true}"#).unwrap();
        assert!(body.unknown.is_none() && body.record_exposure && body.surface.as_deref() == Some("cart"));
        let e = serde_json::from_str::<AssignBody>(r#"{"visitor_id":"a","visitor_id":"b"}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate field `visitor_id`"), "{e}");
        assert!(serde_json::from_str::<AssignBody>("[1]").is_err(), "an array is no body");
    }
}
