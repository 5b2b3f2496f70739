//! `GET /api/v1/workspaces`: the workspaces the calling key can access (a
//! platform's first request), with how many endpoints each has. A key
//! belongs to one workspace, so the list has that one.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// A workspace the calling key can access.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceView {
    /// The workspace id.
    pub id: String,
    /// Endpoints registered in the workspace.
    pub endpoints: u64,
    /// The calling key's scope there.
    #[schema(value_type = hookd_control::schema::ScopeName)]
    pub scope: hookd_core::Scope,
}

/// The workspaces the calling key can access.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceList {
    /// The workspaces.
    pub data: Vec<WorkspaceView>,
}

/// The workspaces this key can access.
#[utoipa::path(get, operation_id = "list_workspaces", path = "/api/v1/workspaces", tag = "workspaces",
    responses((status = 200, description = "OK", body = WorkspaceList), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<WorkspaceList>> {
    let ws = caller.0.workspace.clone();
    let endpoints = state.store.endpoint_count(&ws).await?;
    Ok(Json(WorkspaceList {
        data: vec![WorkspaceView {
            id: ws,
            endpoints,
            scope: caller.0.scope,
        }],
    }))
}
