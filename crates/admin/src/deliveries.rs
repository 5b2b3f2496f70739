//! `/api/v1/workspaces/{ws}/deliveries`: history with filters and cursor
//! pagination, one delivery with its attempts, redeliver; and recovery jobs'
//! progress.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hookd_control::deliveries::{self, DeliveryPage, DeliveryView};
use hookd_core::time::Direction;
use hookd_core::{Delivery, DeliveryStatus, Scope};
use hookd_store::history::{Cursor, DeliveryFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, in_workspace};
use crate::extract::QueryParams;
use crate::state::AppState;

/// The delivery history's filters and page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only deliveries to this endpoint (of the workspace).
    #[serde(default, deserialize_with = "crate::extract::non_empty")]
    pub endpoint_id: Option<String>,
    /// Only deliveries with this status.
    #[serde(default, deserialize_with = "status")]
    #[param(value_type = Option<hookd_control::schema::DeliveryStatusName>)]
    pub status: Option<DeliveryStatus>,
    /// Only deliveries of this event type.
    #[serde(default, deserialize_with = "crate::extract::non_empty")]
    pub event_type: Option<String>,
    /// Only deliveries of this event.
    #[serde(default, deserialize_with = "crate::extract::non_empty")]
    pub event_id: Option<String>,
    /// Created at or after: an RFC 3339 time, Unix seconds, or a duration
    /// ago (`2h`, `30m`, `7d`).
    pub since: Option<String>,
    /// Created at or before: the same forms as `since`.
    pub until: Option<String>,
    /// Page size: 1 to 500 (default 50).
    #[serde(default, deserialize_with = "crate::extract::non_empty")]
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// Only deliveries before this: the `next` of the previous page (an
    /// opaque cursor), or a time in the forms of `since` (created before it).
    #[serde(default, deserialize_with = "crate::extract::non_empty")]
    pub before: Option<String>,
}

fn status<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DeliveryStatus>, D::Error> {
    let s: Option<String> = crate::extract::non_empty(d)?;
    s.map(|s| {
        DeliveryStatus::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "status {s:?} must be pending, held, retrying, succeeded or failed"
            ))
        })
    })
    .transpose()
}

/// Delivery history, newest first.
#[utoipa::path(get, operation_id = "list_deliveries", path = "/api/v1/workspaces/{ws}/deliveries", tag = "deliveries",
    params(("ws" = String, Path, description = "Workspace id"), DeliveryQuery),
    responses((status = 200, description = "OK", body = DeliveryPage), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody),
        (status = 404, body = ErrorBody, description = "endpoint_id names no endpoint of this workspace"), (status = 422, description = "Validation failed: one issue per bad field (`validation_failed`)", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    QueryParams(q): QueryParams<DeliveryQuery>,
) -> ApiResult<Json<DeliveryPage>> {
    caller.require(&ws, Scope::Read)?;
    let limit = crate::extract::page_limit(q.limit, 50)?;
    let before = match &q.before {
        None => None,
        Some(c) => Some(
            Cursor::parse_before(c, hookd_core::time::now_ms())
                .map_err(|why| ApiError::invalid("/query/before", why))?,
        ),
    };
    if let Some(ep) = &q.endpoint_id {
        crate::endpoints::owned(&state, &ws, ep).await?;
    }
    let page = state
        .history
        .deliveries(&DeliveryFilter {
            workspace: Some(ws),
            endpoint: q.endpoint_id,
            status: q.status,
            event_type: q.event_type,
            event_id: q.event_id,
            since_ms: q
                .since
                .as_deref()
                .map(|s| crate::extract::parse_time("/query/since", s, Direction::Ago))
                .transpose()?,
            until_ms: q
                .until
                .as_deref()
                .map(|s| crate::extract::parse_time("/query/until", s, Direction::Ago))
                .transpose()?,
            before,
            limit,
        })
        .await?;
    Ok(Json(DeliveryPage {
        data: page
            .deliveries
            .into_iter()
            .map(|d| DeliveryView::new(d, false))
            .collect(),
        next: page.next.map(|c| c.to_string()),
    }))
}

async fn owned(state: &AppState, ws: &str, id: &str) -> ApiResult<Delivery> {
    let read = state.history.delivery(id).await;
    in_workspace(read, ws, |d| &d.workspace, format!("delivery {id}"))
}

/// One delivery with every attempt.
#[utoipa::path(get, operation_id = "get_delivery", path = "/api/v1/workspaces/{ws}/deliveries/{id}", tag = "deliveries",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Delivery id")),
    responses((status = 200, description = "OK", body = DeliveryView), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 404, description = "No such resource in this workspace (`not_found`)", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<DeliveryView>> {
    caller.require(&ws, Scope::Read)?;
    Ok(Json(DeliveryView::new(
        owned(&state, &ws, &id).await?,
        true,
    )))
}

/// Make a fresh attempt now (recorded in this delivery's history as `manual`).
/// The attempt is made by the scheduler; poll the delivery for its result.
#[utoipa::path(post, operation_id = "redeliver", path = "/api/v1/workspaces/{ws}/deliveries/{id}/redeliver", tag = "deliveries",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Delivery id")),
    responses((status = 202, description = "Accepted", body = DeliveryView), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 404, description = "No such resource in this workspace (`not_found`)", body = ErrorBody), (status = 409, description = "Conflicts with the resource's state (`conflict`)", body = ErrorBody)))]
pub async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    caller.require(&ws, Scope::Write)?;
    owned(&state, &ws, &id).await?;
    deliveries::redeliver(&state.history, &caller.actor(), &ws, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeliveryView::new(owned(&state, &ws, &id).await?, false)),
    ))
}

/// Take a delivery out of its ordered key (an endpoint with `ordering:
/// key`): it ends `failed` (reason `skipped`), unsent from now, and when it
/// was the key's head (held after it was given up under
/// `ordering_on_give_up: hold`, or still retrying) the key's next delivery
/// goes. 409 when it is not waiting in an ordered key.
#[utoipa::path(post, operation_id = "skip_delivery", path = "/api/v1/workspaces/{ws}/deliveries/{id}/skip", tag = "deliveries",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Delivery id")),
    responses((status = 200, description = "OK", body = DeliveryView), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 404, description = "No such resource in this workspace (`not_found`)", body = ErrorBody), (status = 409, description = "Conflicts with the resource's state (`conflict`)", body = ErrorBody)))]
pub async fn skip(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<DeliveryView>> {
    caller.require(&ws, Scope::Write)?;
    owned(&state, &ws, &id).await?;
    deliveries::skip(&state.store, &caller.actor(), &ws, &id).await?;
    Ok(Json(DeliveryView::new(
        owned(&state, &ws, &id).await?,
        false,
    )))
}

/// One header of the request an attempt sends.
#[derive(Debug, Serialize, ToSchema)]
pub struct SentHeader {
    /// The header's name.
    pub name: String,
    /// `null` for the signature: it is not stored (an HMAC of the
    /// timestamp and body with the secrets in force when the attempt was
    /// signed; `note` says so).
    pub value: Option<String>,
    /// Why the value is not shown, where it is not.
    pub note: Option<String>,
}

/// What the latest attempt of a delivery sent: its headers and body.
#[derive(Debug, Serialize, ToSchema)]
pub struct SentRequest {
    /// The attempt the headers are of (0: no attempt yet; they are then the
    /// first attempt's).
    pub attempt: u32,
    /// Every header, in the order sent.
    pub headers: Vec<SentHeader>,
    /// The envelope, the same bytes on every attempt; `null` once neither
    /// Redis nor the history database holds it.
    #[schema(value_type = Option<Object>)]
    pub body: Option<Box<serde_json::value::RawValue>>,
}

/// The request the delivery's latest attempt sent: the endpoint's own
/// headers (values `***` to read keys), hookd's headers (the signature
/// itself is not stored) and the envelope.
#[utoipa::path(get, operation_id = "get_delivery_request", path = "/api/v1/workspaces/{ws}/deliveries/{id}/request", tag = "deliveries",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Delivery id")),
    responses((status = 200, description = "OK", body = SentRequest), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 404, description = "No such resource in this workspace (`not_found`)", body = ErrorBody)))]
pub async fn request(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<SentRequest>> {
    caller.require(&ws, Scope::Read)?;
    let d = owned(&state, &ws, &id).await?;
    let body = state
        .history
        .envelope(&d)
        .await?
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| serde_json::value::RawValue::from_string(text).ok());
    // The endpoint's scheme names the headers (a deleted endpoint: the
    // default's, and no custom headers).
    let endpoint = state.store.endpoint_view(&d.endpoint_id).await.ok();
    let scheme = endpoint
        .as_ref()
        .map_or(hookd_core::SignatureScheme::Sha256, |ep| ep.scheme);
    let last = d.attempts.last();
    let number = last.map_or(0, |a| a.number);
    let timestamp = last.map(|a| (a.started_at_ms / 1000).to_string());
    let header = |name: String, value: Option<String>| SentHeader {
        name,
        value,
        note: None,
    };
    let not_stored = "not stored: an HMAC-SHA256 of the timestamp and body with the secret(s) in force when the attempt was signed";
    let p = &state.settings.header_prefix;
    // In the order sent: the endpoint's own headers (their values, often a
    // receiver's credentials, only to keys that may write the endpoint),
    // then hookd's.
    let values = caller.may(&ws, Scope::Write);
    let mut headers: Vec<SentHeader> = endpoint
        .iter()
        .flat_map(|ep| ep.headers.iter())
        .map(|(name, value)| {
            let value = if values { value.clone() } else { "***".into() };
            header(name.clone(), Some(value))
        })
        .collect();
    headers.extend([
        header("Content-Type".into(), Some("application/json".into())),
        header("User-Agent".into(), Some(hookd_core::USER_AGENT.into())),
        header(format!("{p}-Event-Id"), Some(d.event_id.clone())),
        header(format!("{p}-Delivery-Id"), Some(d.id.clone())),
        header(format!("{p}-Attempt"), Some(number.max(1).to_string())),
    ]);
    match scheme {
        hookd_core::SignatureScheme::Sha256 => {
            headers.push(header(format!("{p}-Timestamp"), timestamp));
            headers.push(SentHeader {
                name: format!("{p}-Signature"),
                value: None,
                note: Some(format!("sha256=<hex>, {not_stored}")),
            });
        }
        hookd_core::SignatureScheme::StandardWebhooks => {
            headers.push(header("webhook-id".into(), Some(d.event_id.clone())));
            headers.push(header("webhook-timestamp".into(), timestamp));
            headers.push(SentHeader {
                name: "webhook-signature".into(),
                value: None,
                note: Some(format!("v1,<base64>, {not_stored}")),
            });
        }
    }
    // An ordered endpoint's delivery: its place in its key's order.
    if let Some(n) = d.sequence {
        headers.push(header(format!("{p}-Sequence"), Some(n.to_string())));
        if scheme == hookd_core::SignatureScheme::StandardWebhooks {
            headers.push(header("webhook-sequence".into(), Some(n.to_string())));
        }
    }
    Ok(Json(SentRequest {
        attempt: number,
        headers,
        body,
    }))
}
