//! Operator actions.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::state::AppState;

/// `POST /admin/reload`: re-reads the experiments folder. An invalid set is
/// refused (422, with every validation error) and the running set stays.
pub async fn reload(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let catalog = state.reload().await.map_err(ApiError::InvalidDefinitions)?;
    let ids: Vec<&str> = catalog.experiments().map(|e| e.id.as_str()).collect();
    Ok(HttpResponse::Ok().json(json!({ "reloaded": true, "experiments": ids })))
}
