//! The marketer's report: `GET /` (every test) and `GET /experiments/{id}`.
//! Server-rendered HTML, no JavaScript, no external assets.

use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::Utc;

use crate::error::ApiError;
use crate::routes::{blocking, find};
use crate::state::AppState;
use crate::views::{ExperimentPage, IndexPage};

fn render(page: impl Template) -> Result<String, ApiError> {
    page.render().map_err(|e| ApiError::Internal(e.to_string()))
}

/// Renders off the async workers (reports read the store) and answers HTML.
async fn html(work: impl FnOnce() -> Result<String, ApiError> + Send + 'static) -> Result<HttpResponse, ApiError> {
    let body = blocking(work).await?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}

pub async fn index(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let state = state.into_inner();
    html(move || {
        let catalog = state.catalog();
        let now = Utc::now();
        let reports = catalog
            .experiments()
            .map(|e| Ok((e, state.verdict(&catalog, e, now)?)))
            .collect::<Result<Vec<_>, ApiError>>()?;
        let items: Vec<_> = reports.iter().map(|(e, r)| (e.as_ref(), r)).collect();
        render(IndexPage::new(&items, &state.metrics.unread_events()))
    })
    .await
}

pub async fn experiment(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let state = state.into_inner();
    html(move || {
        let catalog = state.catalog();
        let exp = find(&catalog, &id)?;
        let report = state.report(&catalog, exp, Utc::now())?;
        let earlier = state.earlier_phase_visitors(exp)?;
        render(ExperimentPage::new(exp, &report, earlier))
    })
    .await
}
