//! Liveness.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::http::state::AppState;

/// `GET /healthz`: 200 while the service takes writes, with how many tests
/// it serves; 503 with the reason while the store cannot write (a full
/// disk, say), so a load balancer sends writes elsewhere until it recovers.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.health() {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ok", "experiments": state.catalog().len() })),
        Err(reason) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(json!({ "status": "unavailable", "store": reason, "experiments": state.catalog().len() })),
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render())
}
