//! The HTTP layers every request passes: request ids and metrics
//! (outermost, so refusals are counted too), security headers, a deadline
//! on reading the body, and the access check each route declares in
//! [`crate::http::routes`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{web, Error, HttpMessage, ResponseError};
use futures_util::{Stream, StreamExt};

use crate::http::auth::{authorize, Access, Denied, Keys};
use crate::http::error::{ApiError, Unauthorized};
use crate::http::metrics::Metrics;

/// The report is plain HTML and inline SVG with one inline style sheet: no
/// script, no frame, no form, nothing from elsewhere.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The header a request's id travels in, both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// The caller's id of a request (a load balancer's, say), when it sends a
/// plausible one: 1 to 64 visible ASCII characters.
fn given_request_id(req: &ServiceRequest) -> Option<String> {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
}

tokio::task_local! {
    /// The id of the request being served: the caller's, or one made when
    /// a log line first needs it.
    static REQUEST: std::cell::RefCell<Option<String>>;
}

/// The id of the request the calling task serves (16 random hex digits
/// made now when the caller sent none), if it serves one.
pub fn current_request_id() -> Option<String> {
    REQUEST.try_with(|id| id.borrow_mut().get_or_insert_with(|| format!("{:016x}", rand::random::<u64>())).clone()).ok()
}

/// Serves every request with its id at hand ([`current_request_id`]: a
/// 5xx is logged with it), inside a `request` span at debug level (its
/// method and path: `RUST_LOG=debug` traces every request, and costs
/// nothing otherwise). The answer carries the id in `X-Request-Id` when
/// the caller sent one or a log line named one, so a request that failed
/// can be found in the log; a plain success costs no id. Counts the
/// request by the route actix matched (or `unmatched`), its method and
/// status, and observes its latency.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    use tracing::Instrument;
    let started = Instant::now();
    let span = tracing::debug_span!("request", method = %req.method(), path = %req.path());
    let given = std::cell::RefCell::new(given_request_id(&req));
    let served = async {
        let response = next.call(req).instrument(span).await;
        (response, REQUEST.with(|id| id.borrow_mut().take()))
    };
    let (response, id) = REQUEST.scope(given, served).await;
    let mut response = response?;
    if let Some(value) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        response.headers_mut().insert(HeaderName::from_static(REQUEST_ID), value);
    }
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

/// CORS for a route browsers read from any origin (the SDK payload): a
/// preflight `OPTIONS` gets 204 with what it may send, and every answer,
/// a 404 for an unknown client key or a 304 included, carries
/// `Access-Control-Allow-Origin: *`, so a browser shows the real status
/// instead of a CORS error. The payload holds no secret and takes no
/// cookies.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, Error> {
    use actix_web::http::header;
    if req.method() == actix_web::http::Method::OPTIONS {
        let response = actix_web::HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, OPTIONS"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "If-None-Match, Content-Type"))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
            .finish();
        return Ok(req.into_response(response));
    }
    let mut response = next.call(req).await?.map_into_boxed_body();
    response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response.headers_mut().insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("ETag"));
    Ok(response)
}

/// How long a client may take to send a request body, from the moment its
/// head arrived.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub Duration);

/// Ends the body of a request that takes longer than [`BodyDeadline`] with
/// a timed-out error, which the JSON extractor turns into a 408: a client
/// that never sends its body cannot hold a worker. A request without a body
/// passes untouched.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if let Some(BodyDeadline(limit)) = req.app_data::<BodyDeadline>().copied() {
        match req.take_payload() {
            Payload::None => {}
            inner => {
                let body =
                    DeadlineBody { inner, deadline: tokio::time::Instant::now() + limit, timer: None, waited: false };
                req.set_payload(Payload::from(Box::pin(body) as Pin<Box<dyn Stream<Item = _>>>));
            }
        }
    }
    next.call(req).await
}

/// A body that ends with a timed-out error once its deadline passes. The
/// timer is armed only when the body is not all there yet: a small body
/// usually arrives with the head, and then costs no timer at all.
struct DeadlineBody {
    inner: Payload,
    deadline: tokio::time::Instant,
    /// Armed once the body had to be waited for twice in a row.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether the body was waited for once already.
    waited: bool,
}

impl Stream for DeadlineBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Poll::Ready(chunk) = this.inner.poll_next_unpin(cx) {
            return Poll::Ready(chunk);
        }
        if !this.waited {
            // actix feeds the body it has already read right after handing
            // the request on: ask to be polled again once, and arm the
            // timer only if the body is still not there then.
            this.waited = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let deadline = this.deadline;
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                this.inner = Payload::None;
                Poll::Ready(Some(Err(PayloadError::Io(std::io::ErrorKind::TimedOut.into()))))
            }
        }
    }
}

/// The access check of one route: the route table in [`crate::http::routes`]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::captured::Sink;
    use actix_web::middleware::from_fn;
    use actix_web::{test, App, HttpResponse};

    #[actix_web::test]
    async fn a_5xx_is_logged_under_the_request_id_its_answer_carries() {
        let sink = Sink::default();
        let _log = tracing::subscriber::set_default(sink.subscriber());
        let app = test::init_service(
            App::new()
                .wrap(from_fn(observe))
                .route("/ok", web::get().to(HttpResponse::Ok))
                .route("/bug", web::get().to(|| async { Err::<HttpResponse, _>(ApiError::Internal("a bug".into())) })),
        )
        .await;
        let given = test::TestRequest::get().uri("/ok").insert_header((REQUEST_ID, "lb-42")).to_request();
        let answer = test::call_service(&app, given).await;
        assert_eq!(answer.headers().get(REQUEST_ID).unwrap(), "lb-42", "the caller's id comes back");
        let plain = test::call_service(&app, test::TestRequest::get().uri("/ok").to_request()).await;
        assert!(plain.headers().get(REQUEST_ID).is_none(), "a plain success costs no id");
        let odd = test::TestRequest::get().uri("/ok").insert_header((REQUEST_ID, "a b")).to_request();
        let dropped = test::call_service(&app, odd).await;
        assert!(dropped.headers().get(REQUEST_ID).is_none(), "an implausible id is not echoed");
        let failed = test::call_service(&app, test::TestRequest::get().uri("/bug").to_request()).await;
        assert_eq!(failed.status().as_u16(), 500);
        let id = failed.headers().get(REQUEST_ID).unwrap().to_str().unwrap().to_owned();
        assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        let log = sink.text();
        let line = log.lines().find(|l| l.contains("a bug")).unwrap_or_else(|| panic!("the 5xx is logged: {log}"));
        assert!(line.contains(&format!("request={id}")), "{line}");
    }
}
