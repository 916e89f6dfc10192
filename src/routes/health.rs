//! Liveness.

use actix_web::{get, web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// `GET /healthz`: answers while the service runs, with how many tests it serves.
#[get("/healthz")]
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "experiments": state.catalog().len() }))
}
