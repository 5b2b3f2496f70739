//! An axum extractor for receivers (feature `axum`): [`VerifiedWebhook`]
//! hands a handler a delivery whose signature verified, or answers `401`
//! with the reason, before the handler runs.
//!
//! ```no_run
//! use axum::{Router, routing::post};
//! use hookd_signature::{Verifier, axum::VerifiedWebhook};
//!
//! async fn hook(webhook: VerifiedWebhook) -> axum::http::StatusCode {
//!     println!("event {:?}: {} bytes", webhook.event_id, webhook.body.len());
//!     axum::http::StatusCode::NO_CONTENT
//! }
//!
//! let app: Router = Router::new().route("/hook", post(hook)).with_state(Verifier::new("hks_..."));
//! ```

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};

use crate::Verifier;

/// Largest body the extractor reads (hookd's default payload limit is 256 KiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A delivery whose signature verified against the [`Verifier`] in the router's state.
#[derive(Debug, Clone)]
pub struct VerifiedWebhook {
    /// `<prefix>-Event-Id`: the idempotency key (delivery is at least once).
    pub event_id: Option<String>,
    /// Every header of the request, the signature headers included.
    pub headers: HeaderMap,
    /// The raw body, exactly as signed: parse it with `serde_json::from_slice`.
    pub body: Bytes,
}

impl<S> FromRequest<S> for VerifiedWebhook
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = (StatusCode, String);

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Verifier::from_ref(state);
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|e| {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("cannot read the body: {e}"),
                )
            })?;
        verifier
            .verify(&parts.headers, &body)
            .map_err(|e| (StatusCode::UNAUTHORIZED, e.to_string()))?;
        let event_id = parts
            .headers
            .get(format!("{}-Event-Id", verifier.prefix))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Self {
            event_id,
            headers: parts.headers,
            body,
        })
    }
}
