//! `POST /api/v1/workspaces/{ws}/events`: publish an event onto the stream,
//! exactly as a producer's XADD would (validated the way ingest validates).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use hookd_control::events::{self, Member, NewEvent, Published};
use hookd_core::{Scope, id};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonBody;
use crate::requests::RequestTrace;
use crate::state::AppState;
use hookd_core::trace::TraceParent;

/// An event to publish.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishEvent {
    /// Event id: the same id in the same workspace is delivered once. The
    /// `Idempotency-Key` header may give it instead; assigned when neither does.
    #[schema(pattern = "^[!-~]{1,128}$")]
    pub id: Option<String>,
    /// What endpoints subscribe to (`card.created`).
    #[serde(rename = "type")]
    #[schema(value_type = hookd_control::schema::EventTypeName)]
    pub event_type: String,
    /// The payload.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Default: ingest time.
    #[schema(format = DateTime)]
    pub occurred_at: Option<String>,
    /// Extra top-level members of the envelope (`boardId`, `cardId`, ...):
    /// a string stays a string; any other JSON value enters the envelope as
    /// that value (on the stream as a `json:<name>` field).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Events of the workspace with the same key (an order or card id)
    /// reach endpoints with `ordering: key` one at a time, in publish
    /// order. Not payload: it never enters the envelope.
    #[schema(min_length = 1, max_length = 256)]
    pub ordering_key: Option<String>,
}

/// Publish an event.
#[utoipa::path(post, operation_id = "publish_event", path = "/api/v1/workspaces/{ws}/events", tag = "events",
    params(("ws" = String, Path, description = "Workspace id"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,128}$", description = "Event id, when the body has none"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context: the event's attempts continue this trace (not payload: it never enters the envelope)")),
    request_body = PublishEvent,
    responses((status = 202, description = "Accepted: a new stream entry", body = Published),
        (status = 200, description = "A repeat of an event published before with the same id and body: nothing written, the first entry returned (header `Idempotent-Replayed: true`)", body = Published), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The body's id and the Idempotency-Key header differ, or the id was published before with a different body (`conflict`)"), (status = 413, description = "The body is over `[admin] max_body_bytes` (`payload_too_large`)", body = ErrorBody), (status = 422, description = "Validation failed: one issue per bad field (`validation_failed`)", body = ErrorBody)))]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    headers: HeaderMap,
    trace: Option<axum::Extension<RequestTrace>>,
    JsonBody(req): JsonBody<PublishEvent>,
) -> ApiResult<(StatusCode, HeaderMap, Json<Published>)> {
    caller.require(&ws, Scope::Write)?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let event_id = match (req.id, key) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::conflict(
                "the body's id and the Idempotency-Key header differ; send one, or the same in both",
            ));
        }
        (Some(id), _) | (None, Some(id)) => id,
        (None, None) => id::new_id("evt_"),
    };
    // Trace context (never payload): the request's span when tracing is on,
    // so the attempts continue the trace under it; else the caller's own.
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let traceparent = match &trace {
        Some(axum::Extension(RequestTrace(tp))) => Some(tp.clone()),
        None => header("traceparent")
            .filter(|tp| TraceParent::parse(tp, None).is_some())
            .map(str::to_string),
    };
    let tracestate = traceparent
        .as_ref()
        .and_then(|_| header("tracestate"))
        .map(str::to_string);
    let members = req
        .fields
        .into_iter()
        .map(|(name, value)| match value {
            serde_json::Value::String(text) => (name, Member::Text(text)),
            json => (name, Member::Json(json.to_string())),
        })
        .collect();
    let new = NewEvent {
        workspace: ws,
        id: Some(event_id),
        event_type: req.event_type,
        data: req.data.to_string(),
        occurred_at: req.occurred_at,
        members,
        traceparent,
        tracestate,
        ordering_key: req.ordering_key,
    };
    let published = events::publish(&state.store, state.settings.event_limits, new).await?;
    if published.repeat {
        let mut headers = HeaderMap::new();
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        Ok((StatusCode::OK, headers, Json(published)))
    } else {
        Ok((StatusCode::ACCEPTED, HeaderMap::new(), Json(published)))
    }
}
