//! The report's numbers, machine-readable: `GET /api/v1/experiments`,
//! `GET /api/v1/experiments/{id}/report` and the per-day aggregates the
//! report read (capped metrics capped) as CSV.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::aggregates::write_csv;
use crate::capping::Collector;
use crate::error::ApiError;
use crate::reporting::report_rows;
use crate::routes::find;
use crate::state::AppState;

/// Every test with its verdict and progress.
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let catalog = state.catalog();
    let now = state.clock.now();
    let mut items = Vec::new();
    for e in catalog.experiments() {
        let r = state.verdict(&catalog, e, now).await?;
        items.push(json!({
            "id": e.id, "name": e.name, "surface": e.surface, "dimension": e.dimension, "status": e.status,
            "verdict": r.verdict, "sample_size": r.sample_size, "days_running": r.days_running,
            "planned_baseline": e.stats.baseline,
            "cycles_completed": r.cycles_completed,
        }));
    }
    Ok(HttpResponse::Ok().json(json!({ "experiments": items })))
}

pub async fn report(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let catalog = state.catalog();
    let exp = find(&catalog, &id)?;
    let mut report =
        serde_json::to_value(state.report(&catalog, exp, state.clock.now()).await?).expect("report serializes");
    report["allocation_version"] = json!(exp.allocation_version);
    report["earlier_phase_visitors"] = json!(state.earlier_phase_visitors(exp).await?);
    Ok(HttpResponse::Ok().json(report))
}

pub async fn daily_csv(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let catalog = state.catalog();
    let exp = find(&catalog, &id)?;
    let (mut rows, _) = report_rows(state.store.as_ref(), exp, Collector::new(exp, &catalog)).await?;
    rows.sort_by(|a, b| (a.date, &a.variant, &a.metric).cmp(&(b.date, &b.variant, &b.metric)));
    Ok(HttpResponse::Ok().content_type("text/csv; charset=utf-8").body(write_csv(&rows)))
}
