//! `POST /v1/exposures` and `POST /v1/events`: what the storefront showed
//! and what the visitor then did. Each item is checked on its own; one bad
//! item does not sink a batch. The reply comes once the accepted items are
//! on disk.

use actix_web::{web, HttpResponse};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::experiment::Catalog;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::store::{Outcome, Write};
use crate::tracking::{check_event, check_exposure, unknown_key, TrackError, MAX_BATCH};
use crate::wire::v1::{BatchItem, BatchReply, ItemStatus, Refusal, Rejected, Stored};

/// A body that is one item (an object) or a batch (an array).
fn items(body: Value) -> Result<(Vec<Value>, bool), ApiError> {
    match body {
        Value::Array(items) if items.len() > MAX_BATCH => Err(ApiError::invalid(
            "batch_too_large",
            None,
            format!("a batch holds at most {MAX_BATCH} items, this one {}; split it", items.len()),
        )),
        Value::Array(items) => Ok((items, true)),
        one @ Value::Object(_) => Ok((vec![one], false)),
        _ => Err(ApiError::invalid(
            "malformed_json",
            None,
            "send one item as an object or a batch as an array of objects",
        )),
    }
}

fn parse<W: DeserializeOwned>(v: Value) -> Result<W, TrackError> {
    if let Some(name) = unknown_key::<W>(&v) {
        return Err(TrackError::UnknownField(name.to_owned()));
    }
    serde_json::from_value(v).map_err(|e| TrackError::Invalid {
        code: "malformed_item",
        field: "item",
        message: format!("the item does not have the expected shape: {e}"),
    })
}

async fn track(
    state: &AppState,
    kind: &str,
    body: Value,
    check: impl Fn(&Catalog, Value) -> Result<Write, TrackError>,
) -> Result<HttpResponse, ApiError> {
    let (raw, batch) = items(body)?;
    let catalog = state.catalog();
    // Each item is checked on its own; the accepted ones go to the store
    // together, and their outcomes come back in order.
    let mut writes = Vec::new();
    let refusals: Vec<Option<TrackError>> = raw
        .into_iter()
        .map(|v| match check(&catalog, v) {
            Ok(w) => {
                writes.push(w);
                None
            }
            Err(e) => Some(e),
        })
        .collect();
    let read_by_some_metric: Vec<bool> =
        writes.iter().map(|w| !matches!(w, Write::Event(e) if !catalog.is_read(e.name.as_str()))).collect();
    let mut outcomes =
        state.store.record(catalog, writes.clone()).await?.into_iter().zip(writes).zip(read_by_some_metric);
    let results: Vec<Result<Stored, TrackError>> = refusals
        .into_iter()
        .map(|refusal| match refusal {
            Some(e) => Err(e),
            None => match outcomes.next().expect("one outcome per write") {
                ((Outcome::Conflict, Write::Event(e)), _) => Err(TrackError::IdConflict(e.id.into_string())),
                ((Outcome::Accepted, Write::Event(e)), false) => {
                    state.metrics.count_unread_event(e.name.as_str());
                    Ok(Stored::Accepted)
                }
                ((Outcome::Accepted, _), _) => Ok(Stored::Accepted),
                // An exposure has no id to conflict with: it is only ever
                // stored or already stored.
                ((Outcome::Duplicate | Outcome::Conflict, _), _) => Ok(Stored::Duplicate),
            },
        })
        .collect();
    let count = |s: &str| {
        results
            .iter()
            .filter(|r| {
                matches!(
                    (r, s),
                    (Ok(Stored::Accepted), "accepted") | (Ok(Stored::Duplicate), "duplicate") | (Err(_), "rejected")
                )
            })
            .count()
    };
    for outcome in ["accepted", "duplicate", "rejected"] {
        state.metrics.count_writes(kind, outcome, count(outcome));
    }
    if !batch {
        return match results.into_iter().next().expect("one item") {
            Ok(status) => Ok(HttpResponse::Ok().json(ItemStatus { status })),
            Err(e) => Err(ApiError::Track(e)),
        };
    }
    let reply = BatchReply {
        accepted: count("accepted"),
        duplicates: count("duplicate"),
        rejected: count("rejected"),
        results: results
            .into_iter()
            .map(|r| match r {
                Ok(status) => BatchItem::Stored(ItemStatus { status }),
                Err(e) => BatchItem::Refused(Refusal {
                    status: Rejected::Rejected,
                    code: e.code().into(),
                    message: e.to_string(),
                    field: e.field().map(str::to_owned),
                }),
            })
            .collect(),
    };
    Ok(HttpResponse::Ok().json(reply))
}

pub async fn exposures(state: web::Data<AppState>, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    track(&state, "exposure", body.into_inner(), |catalog, v| {
        check_exposure(catalog, parse(v)?, now).map(Write::Exposure)
    })
    .await
}

pub async fn events(state: web::Data<AppState>, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    track(&state, "event", body.into_inner(), |_, v| check_event(parse(v)?, now).map(Write::Event)).await
}
