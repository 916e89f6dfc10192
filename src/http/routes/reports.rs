//! The report's numbers, machine-readable: `GET /api/v1/experiments`,
//! `GET /api/v1/experiments/{id}/report` and the per-day aggregates the
//! report read (capped metrics capped) as CSV, and
//! `GET /api/v1/experiments/{id}/segments`, its results by segment.

use actix_web::{web, HttpResponse};

use crate::aggregates::write_csv;
use crate::capping::Collector;
use crate::http::error::ApiError;
use crate::http::routes::find;
use crate::http::state::AppState;
use crate::reporting::{self, report_rows};
use crate::wire::v1::{report, ExperimentList, ListedExperiment, Report, Segments};

/// Every test with its verdict and progress.
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let catalog = state.catalog();
    let now = state.clock.now();
    let mut experiments = Vec::new();
    for e in catalog.experiments() {
        let r = state.verdict(&catalog, e, now).await?;
        experiments.push(ListedExperiment {
            id: e.id.to_string(),
            name: e.name.clone(),
            surface: e.surface.into(),
            dimension: e.dimension.into(),
            status: e.status.into(),
            verdict: report::Verdict::from(&r.verdict),
            sample_size: report::SampleSize::from(&r.sample_size),
            days_running: r.days_running,
            planned_baseline: e.stats.baseline,
            cycles_completed: r.cycles_completed,
        });
    }
    Ok(HttpResponse::Ok().json(ExperimentList { experiments }))
}

pub async fn report(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let catalog = state.catalog();
    let exp = find(&catalog, &id)?;
    let report = state.report(&catalog, exp, state.clock.now()).await?;
    let earlier = state.earlier_phase_visitors(exp).await?;
    Ok(HttpResponse::Ok().json(Report::new(&report, exp.allocation_version, Some(earlier))))
}

/// The test's results by every segment of `segments.toml`.
pub async fn segments(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let catalog = state.catalog();
    let segments = catalog.segments().to_vec();
    breakdown(&state, &catalog, &id, segments).await
}

/// The test's results by one segment.
pub async fn segment(state: web::Data<AppState>, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (id, name) = path.into_inner();
    let catalog = state.catalog();
    let segment =
        catalog.segment(&name).ok_or_else(|| ApiError::UnknownSegment(name.clone(), catalog.segment_names()))?;
    breakdown(&state, &catalog, &id, vec![segment.clone()]).await
}

async fn breakdown(
    state: &AppState,
    catalog: &std::sync::Arc<crate::experiment::Catalog>,
    id: &str,
    segments: Vec<crate::experiment::Segment>,
) -> Result<HttpResponse, ApiError> {
    let exp = find(catalog, id)?;
    let now = state.clock.now();
    let breakdowns = reporting::segments(state.store.as_ref(), catalog, exp, segments).await?;
    Ok(HttpResponse::Ok().json(Segments::new(exp.id.as_str(), exp.local_day(now), &breakdowns)))
}

pub async fn daily_csv(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let catalog = state.catalog();
    let exp = find(&catalog, &id)?;
    let (mut rows, _) = report_rows(state.store.as_ref(), exp, Collector::new(exp, &catalog)).await?;
    rows.sort_by(|a, b| (a.date, &a.variant, &a.metric).cmp(&(b.date, &b.variant, &b.metric)));
    Ok(HttpResponse::Ok().content_type("text/csv; charset=utf-8").body(write_csv(&rows)))
}
