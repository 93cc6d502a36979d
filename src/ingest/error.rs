//! What the notify endpoint answers when it cannot accept a request.
//!
//! Every refusal is a 4xx/5xx with a JSON body `{"error": CODE, "reason": TEXT}`. The
//! reason is for the registry operator; internal details (SQL errors) stay in our log.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why a notify request was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No or wrong bearer token. Nothing is stored.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The body is not a distribution envelope media type.
    #[error(
        "unsupported content type `{0}`; send application/vnd.docker.distribution.events.v1+json, …v2+json or application/json"
    )]
    UnsupportedMediaType(String),
    /// The body is larger than the limit.
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The body could not be read.
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    /// Not an envelope.
    #[error("{0}")]
    BadEnvelope(#[from] super::envelope::EnvelopeError),
    /// The registry sends faster than its rate limit; it retries after `Retry-After`.
    #[error("{0}")]
    RateLimited(crate::ratelimit::Limited),
    /// The database is unreachable: the registry should retry later.
    #[error("storage is unavailable; retry later")]
    Unavailable,
    /// Something unexpected; details are in hookline's log.
    #[error("internal error; see hookline's log")]
    Internal,
}

impl IngestError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            IngestError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            IngestError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            IngestError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            IngestError::BodyRead(_) => (StatusCode::BAD_REQUEST, "body_unreadable"),
            IngestError::BadEnvelope(_) => (StatusCode::BAD_REQUEST, "bad_envelope"),
            IngestError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            IngestError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            IngestError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = Json(serde_json::json!({ "error": code, "reason": self.to_string() }));
        let retry_after = match &self {
            // Whole seconds, rounded up: never tell a registry to come back too early.
            IngestError::RateLimited(limited) => {
                Some(limited.retry_after.as_millis().div_ceil(1000).max(1))
            }
            // A storage fault (disk full, database unreachable) usually lasts seconds; the
            // registry retries anyway, and this says when it is worth it.
            IngestError::Unavailable => Some(1),
            _ => None,
        };
        let mut response = (status, body).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds as u64),
            );
        }
        if matches!(self, IngestError::TooLarge(_)) {
            // The rest of the body is never read, so this connection cannot carry another
            // request: say so, or a client may reuse it and fail writing its next one.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<crate::store::StoreError> for IngestError {
    fn from(error: crate::store::StoreError) -> Self {
        tracing::error!(%error, "storage error in the notify handler");
        if error.is_unavailable() {
            IngestError::Unavailable
        } else {
            IngestError::Internal
        }
    }
}
