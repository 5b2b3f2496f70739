//! The one error shape of the API: `{"code", "message", "issues"}` with a
//! stable `code`, and the mapping of store failures onto it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hookd_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// One problem with a request, located by a JSON-pointer-like path
/// (`url`, `event_types/0`, `query.limit`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Issue {
    /// A JSON Pointer to the bad value.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// Every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable: `unauthorized`, `forbidden`, `not_found`,
    /// `route_not_found`, `validation_failed`, `invalid_json`,
    /// `payload_too_large`, `unsupported_media_type`, `rate_limited`,
    /// `conflict`, `store_unavailable`, `timeout`, `internal`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// One per bad value (validation errors); else empty.
    pub issues: Vec<Issue>,
}

/// An error a handler returns; renders as [`ErrorBody`].
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// `ErrorBody::code`.
    pub code: &'static str,
    /// `ErrorBody::message`.
    pub message: String,
    /// `ErrorBody::issues`.
    pub issues: Vec<Issue>,
    /// Seconds, for 429.
    pub retry_after: Option<u64>,
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with no issues.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            issues: Vec::new(),
            retry_after: None,
        }
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`: `what` does not exist (in this workspace).
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 422 with one issue per (path, message).
    /// Paths are JSON Pointers: body members `/url`, `/headers/X-Team`;
    /// query parameters `/query/<name>`; path parameters `/path/<name>`; the
    /// whole body `""`. A path given without its leading `/` gets one.
    pub fn validation(issues: Vec<(String, String)>) -> Self {
        let issues: Vec<(String, String)> = issues
            .into_iter()
            .map(|(path, message)| {
                if path.is_empty() || path.starts_with('/') {
                    (path, message)
                } else {
                    (format!("/{path}"), message)
                }
            })
            .collect();
        let message = match issues.as_slice() {
            [(path, message)] => format!("{path}: {message}"),
            _ => format!("{} fields are invalid", issues.len()),
        };
        Self {
            issues: issues
                .into_iter()
                .map(|(path, message)| Issue { path, message })
                .collect(),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                message,
            )
        }
    }

    /// 422 with one issue at `path`.
    pub fn invalid(path: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![(path.to_string(), message.into())])
    }
}

impl From<hookd_control::ActionError> for ApiError {
    fn from(e: hookd_control::ActionError) -> Self {
        use hookd_control::ActionError;
        match e {
            ActionError::Invalid(issues) => Self::validation(issues),
            ActionError::Store(e) => e.into(),
            ActionError::Conflict(why) => Self::conflict(why),
            ActionError::Randomness(why) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("no randomness: {why}"),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::Invalid(field, why) => Self::invalid(&field, why),
            StoreError::Conflict(why) => Self::new(StatusCode::CONFLICT, "conflict", why),
            e @ StoreError::Redis(_) if e.is_transient() => {
                tracing::warn!(error = %e, "admin request failed on Redis");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "Redis is not answering; retry shortly",
                )
            }
            other => {
                tracing::error!(error = %other, "admin request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    other.to_string(),
                )
            }
        }
    }
}

/// A record read by id, kept only if it belongs to `ws`: another workspace's
/// record reads as not found, exactly like a missing one.
pub fn in_workspace<T>(
    read: Result<T, StoreError>,
    ws: &str,
    workspace_of: impl Fn(&T) -> &str,
    what: impl std::fmt::Display,
) -> ApiResult<T> {
    match read {
        Ok(record) if workspace_of(&record) == ws => Ok(record),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(ApiError::not_found(what)),
        Err(e) => Err(e.into()),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_string(),
            message: self.message,
            issues: self.issues,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 9110 §11.6.1: a 401 names the scheme it wants.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"hookd\""),
            );
        }
        response
    }
}

/// The fallback for paths no route serves.
pub async fn route_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route for {}", uri.path()),
    )
}

/// For a path served with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
