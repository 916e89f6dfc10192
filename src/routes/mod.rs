//! HTTP handlers, one file per resource. Handlers parse, call the core, and
//! map errors to [`crate::error::ApiError`]; they hold no logic of their own.

pub mod admin;
pub mod assign;
pub mod health;
pub mod pages;
pub mod reports;
pub mod track;

use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::{web, HttpRequest};

use std::sync::Arc;

use crate::error::ApiError;
use crate::experiment::{Catalog, Experiment};

/// Registers every route on an actix app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::metrics)
        .service(assign::post_assign)
        .service(assign::get_assign)
        .service(track::exposures)
        .service(track::events)
        .service(reports::list)
        .service(reports::report)
        .service(reports::daily_csv)
        .service(pages::index)
        .service(pages::experiment)
        .service(admin::reload);
}

/// JSON body errors as API errors: 413 for size, 400 `malformed_json` with
/// serde's words for the rest.
pub fn json_error(err: JsonPayloadError, limit: usize) -> actix_web::Error {
    match err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::PayloadTooLarge(limit).into()
        }
        JsonPayloadError::ContentType => ApiError::invalid(
            "unsupported_media_type",
            None,
            "send the body as JSON with Content-Type: application/json",
        )
        .into(),
        JsonPayloadError::Deserialize(e) => {
            ApiError::invalid("malformed_json", None, format!("the body is not valid for this route: {e}")).into()
        }
        other => ApiError::invalid("malformed_json", None, format!("could not read the body: {other}")).into(),
    }
}

pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::invalid("malformed_query", None, format!("the query string is not valid: {err}")).into()
}

/// The experiment a path names, or a 404 that says how to find the known ones.
pub fn find<'a>(catalog: &'a Catalog, id: &str) -> Result<&'a Arc<Experiment>, ApiError> {
    catalog.get(id).ok_or_else(|| ApiError::UnknownExperiment(id.to_owned()))
}

/// Runs blocking work (store reads, rendering) off the async workers.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(work).await.map_err(|e| ApiError::Internal(e.to_string()))?
}

/// Any path without a route.
pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("{} {}", req.method(), req.path())))
}
