//! `GET /api/v1/workspaces/{ws}/audit`: the workspace's audit log (admin
//! scope), newest first, a page at a time: who changed what (endpoints,
//! pauses and resumes, rotations, redeliveries, recoveries, keys, the
//! catalog, automatic pauses by hookd), kept for `[history] retention`.

use axum::Json;
use axum::extract::{Path, State};
use hookd_core::{Scope, time};
use hookd_store::audit::AuditEntry;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::QueryParams;

/// One change.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub id: String,
    pub at: String,
    /// An API key's id, `cli` (the command line), or `hookd` (the circuit
    /// breaker, a receiver's 410).
    pub actor: String,
    /// The key's name, when it has one.
    pub actor_name: Option<String>,
    /// `endpoint.created`, `endpoint.updated`, `endpoint.deleted`,
    /// `endpoint.paused`, `endpoint.resumed`, `endpoint.secret_rotated`,
    /// `delivery.redelivered`, `recovery.started`, `key.created`,
    /// `key.revoked`, `catalog.changed`.
    pub action: String,
    /// The endpoint, delivery, job or key id, or the event type.
    pub target: String,
    /// The admin request that made the change (its `X-Request-Id`).
    pub request_id: Option<String>,
    /// A pause's reason, a rotation's grace, the settings an update changed.
    pub detail: Option<String>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            at: time::format_rfc3339_ms(e.at_ms),
            id: e.id,
            actor: e.actor.id,
            actor_name: e.actor.name,
            action: e.action,
            target: e.target,
            request_id: e.actor.request_id,
            detail: e.detail,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub data: Vec<AuditView>,
    /// Pass as `before` for the next page; `null` at the end.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Page size: 1 to 500 (default 50).
    #[serde(default, deserialize_with = "crate::extract::non_empty")]
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The `next` of the previous page.
    #[serde(default, deserialize_with = "crate::extract::non_empty")]
    pub before: Option<String>,
}

/// The workspace's audit log, newest first (admin scope).
#[utoipa::path(get, operation_id = "list_audit_entries", path = "/api/v1/workspaces/{ws}/audit", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace id"), AuditQuery),
    responses((status = 200, description = "OK", body = AuditPage), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 422, description = "Validation failed: one issue per bad field (`validation_failed`)", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    QueryParams(q): QueryParams<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    caller.require(&ws, Scope::Admin)?;
    let limit = crate::extract::page_limit(q.limit, 50)?;
    // A cursor is an entry id after the stream's first possible one (0-1).
    if q.before.as_deref().is_some_and(|b| {
        let mut parts = b.splitn(2, '-').map(|n| n.parse::<u64>());
        !matches!((parts.next(), parts.next()), (Some(Ok(ms)), Some(Ok(seq))) if (ms, seq) > (0, 0))
    }) {
        return Err(ApiError::invalid(
            "/query/before",
            "is not a cursor from an earlier page",
        ));
    }
    let (entries, next) = state
        .store
        .audit_page(&ws, q.before.as_deref(), limit)
        .await?;
    Ok(Json(AuditPage {
        data: entries.into_iter().map(AuditView::from).collect(),
        next,
    }))
}
