//! The HTTP layers every request passes: request metrics (outermost, so
//! refusals are counted too), security headers, a deadline on reading the
//! body, and the access check each route declares in [`crate::routes`].

use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, ResponseError};
use futures_util::StreamExt;

use crate::auth::{authorize, Access, Denied, Keys};
use crate::error::{ApiError, Unauthorized};
use crate::metrics::Metrics;

/// The report is plain HTML and inline SVG with one inline style sheet: no
/// script, no frame, no form, nothing from elsewhere.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Counts every request by the route actix matched (or `unmatched`), its
/// method and status, and observes its latency.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let response = next.call(req).await?;
    let request = response.request();
    if let Some(metrics) = request.app_data::<web::Data<Metrics>>() {
        let route = request.match_name().unwrap_or("unmatched");
        let seconds = started.elapsed().as_secs_f64();
        metrics.observe_request(route, request.method(), response.status().as_u16(), seconds);
    }
    Ok(response)
}

/// `X-Content-Type-Options: nosniff` and the content security policy on
/// every response.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    headers.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    headers
        .insert(HeaderName::from_static("content-security-policy"), HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    Ok(response)
}

/// How long a client may take to send a request body, from the moment its
/// head arrived.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub Duration);

/// Ends the body of a request that takes longer than [`BodyDeadline`] with
/// a timed-out error, which the JSON extractor turns into a 408: a client
/// that never sends its body cannot hold a worker.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if let Some(BodyDeadline(limit)) = req.app_data::<BodyDeadline>().copied() {
        let deadline = tokio::time::Instant::now() + limit;
        let inner = req.take_payload();
        let timed = futures_util::stream::unfold(Some(inner), move |state| async move {
            let mut inner = state?;
            match tokio::time::timeout_at(deadline, inner.next()).await {
                Ok(Some(chunk)) => Some((chunk, Some(inner))),
                Ok(None) => None,
                Err(_) => Some((Err(PayloadError::Io(std::io::ErrorKind::TimedOut.into())), None)),
            }
        });
        req.set_payload(Payload::from(Box::pin(timed) as std::pin::Pin<Box<dyn futures_util::Stream<Item = _>>>));
    }
    next.call(req).await
}

/// The access check of one route: the route table in [`crate::routes`]
/// says which key each resource needs, so the check applies to what actix
/// routed, however the path was spelled.
pub async fn require(
    access: Access,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, Error> {
    let header = req.headers().get(AUTHORIZATION).and_then(|h| h.to_str().ok());
    let verdict = match (req.app_data::<web::Data<Keys>>(), access) {
        (None, _) => Ok(()),
        (Some(keys), Access::Client) => {
            keys.client(req.match_info().get("client_key").unwrap_or_default()).map_err(ApiError::from)
        }
        (Some(keys), _) => authorize(keys, access, header).map_err(|denied| {
            let (basic, wrong) = match denied {
                Denied::Missing { basic } => (basic, false),
                Denied::Wrong { basic } => (basic, true),
            };
            ApiError::Unauthorized(Unauthorized { basic, wrong })
        }),
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_boxed_body()),
        Err(error) => Ok(req.into_response(error.error_response())),
    }
}
