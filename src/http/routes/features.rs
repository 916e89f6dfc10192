//! `GET /api/features/{client_key}`: the GrowthBook SDK payload of the
//! current definitions (see [`crate::features`]). The client key was
//! checked by the route's access rule. Cheap to poll: `If-None-Match` with
//! the current ETag gets `304` and no body. Browsers fetch it from the
//! shop's own origin, so any origin may read it (it holds no secret).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::http::state::AppState;

/// How long an SDK or a CDN may reuse the payload before asking again.
const CACHE_CONTROL: &str = "public, max-age=30, stale-while-revalidate=300";

pub async fn payload(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let features = state.features();
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|tags| features.matches(tags));
    let mut response = if unchanged { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, HeaderValue::from_str(&features.etag).expect("an ETag is ASCII")))
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
    if unchanged {
        return response.finish();
    }
    response.content_type("application/json").body(features.body.clone())
}
