//! `/api/v1/workspaces/{ws}/jobs`: recovery jobs (started by
//! `POST .../endpoints/{id}/recover` or `hookd recover`) and their progress.

use axum::Json;
use axum::extract::{Path, State};
use hookd_core::{DeliveryStatus, Scope, time};
use hookd_store::recovery::Job;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody, in_workspace};

/// A recovery job's progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub endpoint_id: String,
    pub since: String,
    pub until: Option<String>,
    /// The status re-queued.
    #[schema(value_type = crate::schema::DeliveryStatusName)]
    pub status: DeliveryStatus,
    /// `scanning`, `delivering`, `completed` or `failed`.
    pub state: String,
    /// Why a `failed` job stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Deliveries in the window with that status.
    pub matched: u64,
    /// Of those, re-queued (the rest had an attempt in flight or had expired).
    pub queued: u64,
    /// Re-queued deliveries whose attempt has been made.
    pub done: u64,
    /// Of those, succeeded.
    pub succeeded: u64,
    pub created_at: String,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        Self {
            state: j.state().to_string(),
            id: j.id,
            endpoint_id: j.endpoint_id,
            since: time::format_rfc3339_ms(j.since_ms),
            until: j.until_ms.map(time::format_rfc3339_ms),
            status: j.status,
            matched: j.matched,
            queued: j.queued,
            done: j.done,
            succeeded: j.succeeded,
            created_at: time::format_rfc3339_ms(j.created_at_ms),
            error: j.error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// Newest first; jobs are kept for `[history] retention`.
    pub data: Vec<JobView>,
}

/// The workspace's recovery jobs, newest first.
#[utoipa::path(get, operation_id = "list_recovery_jobs", path = "/api/v1/workspaces/{ws}/jobs", tag = "deliveries",
    params(("ws" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "OK", body = JobList), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody)))]
pub async fn jobs(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
) -> ApiResult<Json<JobList>> {
    caller.require(&ws, Scope::Read)?;
    let data = state.store.jobs(Some(&ws)).await?;
    Ok(Json(JobList {
        data: data.into_iter().map(JobView::from).collect(),
    }))
}

/// A recovery job's progress.
#[utoipa::path(get, operation_id = "get_recovery_job", path = "/api/v1/workspaces/{ws}/jobs/{id}", tag = "deliveries",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "OK", body = JobView), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 404, description = "No such resource in this workspace (`not_found`)", body = ErrorBody)))]
pub async fn job(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<JobView>> {
    caller.require(&ws, Scope::Read)?;
    let job = in_workspace(
        state.store.job(&id).await,
        &ws,
        |j| &j.workspace,
        format!("job {id}"),
    )?;
    Ok(Json(JobView::from(job)))
}
