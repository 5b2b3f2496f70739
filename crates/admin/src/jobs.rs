//! `/api/v1/workspaces/{ws}/jobs`: recovery jobs (started by
//! `POST .../endpoints/{id}/recover` or `hookd recover`) and their progress.

use axum::Json;
use axum::extract::{Path, State};
use hookd_control::recovery::{JobList, JobView};
use hookd_core::Scope;

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody, in_workspace};
use crate::state::AppState;

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
