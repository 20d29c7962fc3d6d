//! RFC 9457 problem details: the one shape of every error freshet's API returns.
//!
//! Handlers return [`ApiError`]; it becomes `application/problem+json` with a stable `type`
//! URI per kind of problem and, for input problems, `errors[]` naming each offending field.
//! Server-side failures are logged with their cause and answered with a generic detail, so
//! internals never leak to clients.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use freshet_model::FieldError;
use freshet_store::StoreError;
use serde::Serialize;

/// Seconds a client is asked to wait after a 503.
const UNAVAILABLE_RETRY_AFTER: u64 = 5;

/// The media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem details document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; stable, so clients can branch on it.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time, for a person to read.
    pub detail: String,
    /// Each field of the input that is wrong, when the problem is with the input.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Every way an API call can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request could not be read: malformed JSON, wrong types, unknown fields, bad query.
    #[error("{detail}")]
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// The request was read but its values are not acceptable.
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("no route")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{detail}")]
    Conflict { field: &'static str, detail: String },
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// The request body stopped arriving before it was complete.
    #[error("the request body stopped arriving; send it again, without pausing")]
    RequestTimeout,
    #[error("{0}")]
    Unavailable(String),
    /// Too many failed attempts from this client; it may try again after `retry_after` seconds.
    #[error("too many failed authentications from this address; try again in {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    /// The bank answered with an error, or not at all.
    #[error("{0}")]
    BadGateway(String),
    /// A failure on freshet's side; the cause is logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 naming one field.
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let error = FieldError::new(field, message);
        Self::BadRequest {
            detail: format!("`{}` {}", error.field, error.message),
            errors: vec![error],
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::BadRequest { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Invalid request",
            ),
            Self::Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid field values",
            ),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::NoRoute => (StatusCode::NOT_FOUND, "no-route", "No such route"),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Self::Conflict { .. } => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
            ),
            Self::TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many requests",
            ),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Self::BadGateway(_) => (
                StatusCode::BAD_GATEWAY,
                "bank-error",
                "The bank failed the request",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }

    /// The problem document for this error.
    pub fn to_problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        let (detail, errors) = match self {
            Self::BadRequest { detail, errors } => (detail.clone(), errors.clone()),
            Self::Validation(errors) => {
                let fields: Vec<_> = errors.iter().map(|e| format!("`{}`", e.field)).collect();
                (
                    format!("invalid value for {}", fields.join(", ")),
                    errors.clone(),
                )
            }
            Self::Conflict { field, detail } => (
                detail.clone(),
                vec![FieldError::new(*field, detail.clone())],
            ),
            Self::Internal(_) => (
                "freshet failed to handle this request; the cause is in its log".into(),
                vec![],
            ),
            other => (other.to_string(), vec![]),
        };
        Problem {
            type_uri: problem_type(slug),
            title: title.into(),
            status: status.as_u16(),
            detail,
            errors,
        }
    }
}

/// The `type` URI of a kind of problem.
pub fn problem_type(slug: &str) -> String {
    format!("urn:freshet:problem:{slug}")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(%cause, "request failed");
        }
        let problem = self.to_problem();
        let mut response = problem_response(&problem);
        let retry_after = match self {
            Self::TooManyRequests { retry_after } => Some(retry_after),
            Self::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if matches!(self, Self::Unauthorized(_)) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"freshet\""),
            );
        }
        response
    }
}

/// Serialises a problem with its status and media type.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(problem)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { field } => Self::Conflict {
                field,
                detail: format!("another record already has this `{field}`"),
            },
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "request failed: the database is unavailable");
                Self::Unavailable("the database is unavailable; try again shortly".into())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<freshet_engine::refresh::RefreshError> for ApiError {
    fn from(e: freshet_engine::refresh::RefreshError) -> Self {
        use freshet_engine::refresh::RefreshError as E;
        match e {
            E::NotFound(what) => Self::NotFound(what),
            E::Invalid { field, message } => {
                Self::Validation(vec![FieldError::new(field, message)])
            }
            E::Bank(b) => Self::BadGateway(format!("{}: {}", b.result.as_str(), b.detail)),
            E::Store(s) => s.into(),
        }
    }
}

impl From<Vec<FieldError>> for ApiError {
    fn from(errors: Vec<FieldError>) -> Self {
        Self::Validation(errors)
    }
}
