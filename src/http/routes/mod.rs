//! HTTP handlers, one file per resource. Handlers parse, call the core, and
//! map errors to [`crate::http::error::ApiError`]; they hold no logic of their own.

pub mod admin;
pub mod assign;
pub mod features;
pub mod health;
pub mod pages;
pub mod reports;
pub mod track;

use actix_web::error::{JsonPayloadError, PayloadError, QueryPayloadError};
use actix_web::http::header::ALLOW;
use actix_web::http::Method;
use actix_web::{guard, middleware, web, HttpRequest, HttpResponse, ResponseError};

use std::sync::Arc;

use crate::experiment::{Catalog, Experiment};
use crate::http::auth::Access;
use crate::http::error::ApiError;
use crate::http::middleware::{cors, require};

/// A method a resource answers. `Get` answers `HEAD` too.
enum Verb {
    Get,
    Post,
}

/// The route table: every path, the key it needs and its handlers. A
/// method the path does not take gets 405 with `Allow`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use Verb::{Get, Post};
    resource(cfg, "/healthz", Access::Open, vec![(Get, web::to(health::healthz))]);
    resource(cfg, "/metrics", Access::Read, vec![(Get, web::to(health::metrics))]);
    resource(
        cfg,
        "/v1/assign",
        Access::Write,
        vec![(Get, web::to(assign::get_assign)), (Post, web::to(assign::post_assign))],
    );
    resource(cfg, "/v1/exposures", Access::Write, vec![(Post, web::to(track::exposures))]);
    resource(cfg, "/v1/events", Access::Write, vec![(Post, web::to(track::events))]);
    resource(cfg, "/admin/reload", Access::Admin, vec![(Post, web::to(admin::reload))]);
    resource(cfg, "/admin/backup", Access::Admin, vec![(Get, web::to(admin::backup))]);
    resource(cfg, "/api/v1/experiments", Access::Read, vec![(Get, web::to(reports::list))]);
    resource(cfg, "/api/v1/experiments/{id}/report", Access::Read, vec![(Get, web::to(reports::report))]);
    resource(cfg, "/api/v1/experiments/{id}/segments", Access::Read, vec![(Get, web::to(reports::segments))]);
    resource(cfg, "/api/v1/experiments/{id}/segments/{segment}", Access::Read, vec![(Get, web::to(reports::segment))]);
    resource(cfg, "/api/v1/experiments/{id}/daily.csv", Access::Read, vec![(Get, web::to(reports::daily_csv))]);
    // Read by browsers from the shop's origin: CORS on every answer.
    let features = build("/api/features/{client_key}", vec![(Get, web::to(features::payload))]);
    cfg.service(
        features
            .wrap(middleware::from_fn(move |req, next| require(Access::Client, req, next)))
            .wrap(middleware::from_fn(cors)),
    );
    resource(cfg, "/", Access::Read, vec![(Get, web::to(pages::index))]);
    resource(cfg, "/experiments/{id}", Access::Read, vec![(Get, web::to(pages::experiment))]);
}

fn resource(cfg: &mut web::ServiceConfig, path: &str, access: Access, routes: Vec<(Verb, actix_web::Route)>) {
    cfg.service(build(path, routes).wrap(middleware::from_fn(move |req, next| require(access, req, next))));
}

/// A resource answering `routes`, and 405 with `Allow` for other methods.
fn build(path: &str, routes: Vec<(Verb, actix_web::Route)>) -> actix_web::Resource {
    let allow: Vec<&str> = routes
        .iter()
        .flat_map(|(verb, _)| match verb {
            Verb::Get => ["GET", "HEAD"].as_slice(),
            Verb::Post => ["POST"].as_slice(),
        })
        .copied()
        .collect();
    let allow = allow.join(", ");
    // Named by its path: metrics read the name without building a string.
    let mut r = web::resource(path).name(path);
    for (verb, route) in routes {
        // Plain comparisons: actix's method guards also record every method
        // tried in the request's extensions (for its own 405), an
        // allocation per guard per request that this table does not need.
        r = r.route(match verb {
            Verb::Get => route.guard(guard::fn_guard(|ctx| matches!(ctx.head().method, Method::GET | Method::HEAD))),
            Verb::Post => route.guard(guard::fn_guard(|ctx| ctx.head().method == Method::POST)),
        });
    }
    r.default_service(web::to(move |req: HttpRequest| {
        let allow = allow.clone();
        async move {
            let error = ApiError::MethodNotAllowed { method: req.method().to_string(), allow: allow.clone() };
            let mut response = error.error_response();
            response.headers_mut().insert(ALLOW, allow.parse().expect("method names are header values"));
            Ok::<HttpResponse, actix_web::Error>(response)
        }
    }))
}

/// JSON body errors as API errors: 413 for size, 400 `malformed_json` with
/// serde's words for the rest. (An unknown field is not an error here: each
/// body type keeps it by name and refuses it itself.)
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
        JsonPayloadError::Payload(PayloadError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
            ApiError::BodyTimeout.into()
        }
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
