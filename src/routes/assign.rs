//! `POST /v1/assign` and `GET /v1/assign`: which variant of every matching
//! test a visitor sees, with the payload to render.

use std::collections::BTreeMap;

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::assignment::{assign_all, invalid_attribute_message, AssignQuery, AssignedVariant, JsonAttributes};

use crate::error::ApiError;
use crate::experiment::Surface;
use crate::ids::VisitorId;
use crate::state::AppState;
use crate::store::{Outcome, Write};
use crate::tracking::exposures_of;
use crate::wire::v1::AssignReply;

/// The request as sent; [`AssignQuery`] is what it must parse into. An
/// unknown field is refused: a typo (`"surfce"`) must not silently widen
/// the answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    visitor_id: Option<String>,
    #[serde(default)]
    attributes: JsonAttributes,
    surface: Option<String>,
    experiments: Option<Vec<String>>,
    #[serde(default)]
    force: BTreeMap<String, String>,
    /// Record the exposures of the returned variants before answering.
    #[serde(default)]
    record_exposure: bool,
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
/// `force.<test>=<variant>`; every other parameter is an attribute.
fn query_from_params(mut params: BTreeMap<String, String>) -> Result<AssignQuery, ApiError> {
    let visitor = parse_visitor(params.remove("visitor_id"))?;
    let surface = parse_surface(params.remove("surface").as_deref())?;
    let experiments =
        params.remove("experiments").map(|s| s.split(',').filter(|x| !x.is_empty()).map(str::to_owned).collect());
    let mut force = BTreeMap::new();
    let mut attributes = BTreeMap::new();
    for (k, v) in params {
        match k.strip_prefix("force.") {
            Some(test) => {
                force.insert(test.to_owned(), v);
            }
            None => {
                attributes.insert(k, v);
            }
        }
    }
    Ok(AssignQuery { visitor_id: visitor, attributes, surface, experiments, force })
}

fn respond(visitor_id: &str, assignments: &[AssignedVariant]) -> HttpResponse {
    let mut body = Vec::with_capacity(256 + 320 * assignments.len());
    serde_json::to_writer(&mut body, &AssignReply::new(visitor_id, assignments)).expect("a reply serialises");
    HttpResponse::Ok().insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json"))).body(body)
}

pub async fn post_assign(state: web::Data<AppState>, body: web::Json<AssignBody>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let record = body.record_exposure;
    let query = AssignQuery::try_from(body)?;
    let catalog = state.catalog();
    let assignments = assign_all(&catalog, &query)?;
    if record {
        let writes =
            exposures_of(&query.visitor_id, &assignments, state.clock.now()).into_iter().map(Write::Exposure).collect();
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
