//! The HTTP layer's error: every refusal the API can give, each with a
//! stable machine-readable `code`, mapped to a status and a JSON body
//! `{"error": {"code", "message", "field"?, "details"?}}` in one place.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::assignment::AssignError;
use crate::experiment::ValidationErrors;
use crate::store::StoreError;
use crate::tracking::TrackError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a field is invalid.
    #[error("{message}")]
    Invalid { code: &'static str, message: String, field: Option<String> },
    #[error("unknown experiment \"{0}\"; GET /api/v1/experiments lists the known ones")]
    UnknownExperiment(String),
    #[error("{0}")]
    UnknownVariant(String),
    /// A segment `segments.toml` does not define, and the ones it does.
    #[error("unknown segment \"{0}\"; segments.toml defines {1}")]
    UnknownSegment(String, String),
    #[error("no route for {0}")]
    NotFound(String),
    /// The definitions on disk are invalid; the running set stays.
    #[error("the experiments folder is invalid; the running set stays:\n{0}")]
    InvalidDefinitions(ValidationErrors),
    #[error("request body is larger than {0} bytes; send smaller batches")]
    PayloadTooLarge(usize),
    #[error("the request body did not arrive in time; send the whole body right after the headers")]
    BodyTimeout,
    #[error("{method} is not allowed here; this path takes {allow}")]
    MethodNotAllowed { method: String, allow: String },
    #[error("{0}")]
    Track(#[from] TrackError),
    /// A write the store did not take.
    #[error("{0}; the write was not acknowledged, retry it")]
    Storage(Arc<StoreError>),
    /// A read the store did not answer.
    #[error("{0}; the store could not be read, try again shortly")]
    StorageRead(Arc<StoreError>),
    #[error("{0}")]
    Unauthorized(Unauthorized),
    #[error("{0}")]
    ClientKey(#[from] crate::http::auth::ClientDenied),
    #[error("internal error: {0}")]
    Internal(String),
}

/// A refused credential, and whether to ask a browser for HTTP Basic.
#[derive(Debug, Clone, Copy)]
pub struct Unauthorized {
    pub basic: bool,
    pub wrong: bool,
}

impl std::fmt::Display for Unauthorized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.basic {
            "the read key (as the HTTP Basic password, or a bearer token)"
        } else {
            "Authorization: Bearer <write key>"
        };
        if self.wrong {
            write!(f, "the key is not valid; send {what}")
        } else {
            write!(f, "this route needs {what}")
        }
    }
}

impl ApiError {
    pub fn invalid(code: &'static str, field: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        ApiError::Invalid { code, message: message.into(), field: field.into() }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { code, .. } => code,
            ApiError::UnknownExperiment(_) => "unknown_experiment",
            ApiError::UnknownSegment(..) => "unknown_segment",
            ApiError::UnknownVariant(_) => "unknown_variant",
            ApiError::NotFound(_) => "not_found",
            ApiError::InvalidDefinitions(_) => "invalid_definitions",
            ApiError::PayloadTooLarge(_) => "body_too_large",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Track(e) => e.code(),
            ApiError::Storage(e) | ApiError::StorageRead(e) if matches!(**e, StoreError::Busy) => "busy",
            ApiError::Storage(e) | ApiError::StorageRead(e) => match **e {
                StoreError::Corrupt(_) => "corrupt_record",
                _ if e.retryable() => "storage_unavailable",
                _ => "storage_error",
            },
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::ClientKey(_) => "unknown_client_key",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl ApiError {
    /// Logs a 5xx with its cause and the request's id, once per answer,
    /// wherever the answer is built (JSON here, HTML for the report pages).
    /// A client's mistakes, 4xx, are answered, not logged.
    pub fn log(&self) {
        let status = self.status_code();
        if status.is_server_error() {
            let request = crate::http::middleware::current_request_id().unwrap_or_default();
            tracing::error!(status = status.as_u16(), code = self.code(), request = %request, "{self}");
        }
    }
}

impl From<AssignError> for ApiError {
    fn from(e: AssignError) -> Self {
        match e {
            AssignError::UnknownExperiment(id) => ApiError::UnknownExperiment(id),
            e @ AssignError::UnknownVariant { .. } => ApiError::UnknownVariant(e.to_string()),
        }
    }
}

impl From<Arc<StoreError>> for ApiError {
    fn from(e: Arc<StoreError>) -> Self {
        ApiError::Storage(e)
    }
}

/// Writes come back from the store as `Arc<StoreError>` (one error answers
/// a whole group), reads as `StoreError`.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::StorageRead(Arc::new(e))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } | ApiError::UnknownVariant(_) => StatusCode::BAD_REQUEST,
            ApiError::UnknownExperiment(_)
            | ApiError::UnknownSegment(..)
            | ApiError::NotFound(_)
            | ApiError::ClientKey(_) => StatusCode::NOT_FOUND,
            ApiError::InvalidDefinitions(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Track(e) => match e {
                TrackError::UnknownExperiment(_) => StatusCode::NOT_FOUND,
                TrackError::NotRunning { .. }
                | TrackError::IdConflict(_)
                | TrackError::AssignmentMismatch { .. }
                | TrackError::NotInExperiment(_) => StatusCode::CONFLICT,
                TrackError::UnknownVariant { .. }
                | TrackError::Invalid { .. }
                | TrackError::BeforeStart { .. }
                | TrackError::UnknownField(_) => StatusCode::BAD_REQUEST,
            },
            ApiError::Storage(e) | ApiError::StorageRead(e) if e.retryable() => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Storage(_) | ApiError::StorageRead(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The answer, JSON; every 5xx is logged ([`ApiError::log`]).
    fn error_response(&self) -> HttpResponse {
        self.log();
        let mut body = json!({ "code": self.code(), "message": self.to_string() });
        match self {
            ApiError::Invalid { field: Some(f), .. } => body["field"] = json!(f),
            ApiError::Track(e) if e.field().is_some() => body["field"] = json!(e.field()),
            ApiError::InvalidDefinitions(errors) => body["details"] = json!(errors),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized(Unauthorized { basic: true, .. }) => {
                response.insert_header(("WWW-Authenticate", "Basic realm=\"offerlab\", charset=\"UTF-8\""));
            }
            ApiError::Storage(e) | ApiError::StorageRead(e) if e.retryable() => {
                response.insert_header(("Retry-After", "1"));
            }
            _ => {}
        }
        response.json(json!({ "error": body }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::captured::Sink;

    #[test]
    fn every_5xx_is_logged_with_its_cause_and_no_4xx_is() {
        let sink = Sink::default();
        tracing::subscriber::with_default(sink.subscriber(), || {
            let down = ApiError::Storage(Arc::new(StoreError::Unavailable("disk full".into())));
            assert_eq!(down.error_response().status(), StatusCode::SERVICE_UNAVAILABLE);
            let bad = ApiError::NotFound("GET /nope".into());
            assert_eq!(bad.error_response().status(), StatusCode::NOT_FOUND);
        });
        let log = sink.text();
        assert!(log.contains("ERROR") && log.contains("status=503") && log.contains("disk full"), "{log}");
        assert!(!log.contains("GET /nope"), "{log}");
    }

    /// An outage is worth a retry (503, Retry-After); a newer schema, a bad
    /// configuration or a bug is not (500, none).
    #[test]
    fn store_errors_are_503_only_when_a_retry_can_help() {
        // Answers log; with a subscriber of its own, this test never leaves
        // the shared log callsite registered as disabled for the test above.
        let _log = tracing::subscriber::set_default(Sink::default().subscriber());
        let answer = |e: StoreError| ApiError::StorageRead(Arc::new(e)).error_response();
        for retry in [StoreError::Unavailable("gone".into()), StoreError::Busy, StoreError::Closed] {
            let r = answer(retry);
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(r.headers().contains_key("Retry-After"));
        }
        for fatal in [
            StoreError::NewerSchema { found: 9, known: 3 },
            StoreError::Config("bad URL".into()),
            StoreError::Internal("a bug".into()),
        ] {
            let r = answer(fatal);
            assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert!(!r.headers().contains_key("Retry-After"));
        }
    }
}
