//! `GET /api/v1/workspaces/{ws}/audit`: the workspace's audit log (admin
//! scope), newest first, a page at a time: who changed what (endpoints,
//! pauses and resumes, rotations, redeliveries, recoveries, keys, the
//! catalog, automatic pauses by hookd), kept for `[history] retention`.

use axum::Json;
use axum::extract::{Path, State};
use hookd_control::audit::{AuditPage, AuditView};
use hookd_core::Scope;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::QueryParams;
use crate::state::AppState;

/// The audit log's query parameters.
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
