//! The marketer's report: `GET /` (every test) and `GET /experiments/{id}`.
//! Server-rendered HTML, no JavaScript, no external assets.

use actix_web::{web, HttpResponse, ResponseError};
use askama::Template;

use crate::http::error::ApiError;
use crate::http::routes::{blocking, find};
use crate::http::state::AppState;
use crate::views::{ErrorPage, ExperimentPage, IndexPage, WebhookRow};

fn render(page: impl Template) -> Result<String, ApiError> {
    page.render().map_err(|e| ApiError::Internal(e.to_string()))
}

/// Answers HTML: the page, or an error page with the error's status (503
/// with Retry-After while the store cannot be read).
async fn html(page: impl std::future::Future<Output = Result<String, ApiError>>) -> HttpResponse {
    match page.await {
        Ok(body) => HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body),
        Err(e) => error_page(&e),
    }
}

fn error_page(e: &ApiError) -> HttpResponse {
    e.log();
    let status = e.status_code();
    let (title, advice) = match status.as_u16() {
        404 => ("Not found", "Go back to the list of tests."),
        503 => ("The report cannot be read right now", "The store is unreachable; reload this page in a moment."),
        _ => ("Something went wrong", "Reload this page; if it persists, the service log says why."),
    };
    let page = ErrorPage { title, message: e.to_string(), advice };
    let mut response = HttpResponse::build(status);
    if status.as_u16() == 503 {
        response.insert_header(("Retry-After", "1"));
    }
    response.content_type("text/html; charset=utf-8").body(page.render().unwrap_or_else(|_| e.to_string()))
}

pub async fn index(state: web::Data<AppState>) -> HttpResponse {
    html(async {
        let catalog = state.catalog();
        let now = state.clock.now();
        let mut reports = Vec::new();
        for e in catalog.experiments() {
            reports.push((e.clone(), state.verdict(&catalog, e, now).await?));
        }
        let unread = state.metrics.unread_events();
        let last = if catalog.webhooks().is_empty() { Vec::new() } else { state.store.last_deliveries().await? };
        let webhooks =
            catalog.webhooks().iter().map(|w| WebhookRow::new(w, last.iter().find(|l| l.webhook == w.name))).collect();
        blocking(move || {
            let items: Vec<_> = reports.iter().map(|(e, r)| (e.as_ref(), r)).collect();
            render(IndexPage::new(&items, &unread, webhooks))
        })
        .await
    })
    .await
}

pub async fn experiment(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    html(async {
        let catalog = state.catalog();
        let exp = find(&catalog, &id)?.clone();
        let report = state.report(&catalog, &exp, state.clock.now()).await?;
        let earlier = state.earlier_phase_visitors(&exp).await?;
        blocking(move || render(ExperimentPage::new(&exp, &report, earlier))).await
    })
    .await
}
