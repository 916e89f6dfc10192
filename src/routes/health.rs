//! Liveness.

use actix_web::{get, web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// `GET /healthz`: answers while the service runs, with how many tests it serves.
#[get("/healthz")]
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "experiments": state.catalog().len() }))
}

/// `GET /metrics`: Prometheus text format.
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render())
}
