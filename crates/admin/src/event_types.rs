//! `/api/v1/event-types`: event-type discovery (the catalog merged with the
//! types seen, `hookd_control::event_types`) and catalog entries put by a
//! workspace's admin keys.

use axum::Json;
use axum::extract::{Path, State};
use hookd_control::event_types::{self, CatalogEntryBody, EventTypeList, EventTypeView};
use hookd_core::Scope;

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::JsonBody;
use crate::state::AppState;

async fn merged(state: &AppState, ws: &str) -> ApiResult<EventTypeList> {
    Ok(event_types::list(&state.store, &state.settings.catalog, ws).await?)
}

/// Event types of the calling key's workspace: catalog plus types seen.
#[utoipa::path(get, operation_id = "list_event_types", path = "/api/v1/event-types", tag = "event types",
    responses((status = 200, description = "OK", body = EventTypeList), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<EventTypeList>> {
    Ok(Json(merged(&state, &caller.0.workspace).await?))
}

/// Event types of a workspace: catalog plus types seen.
#[utoipa::path(get, operation_id = "list_workspace_event_types", path = "/api/v1/workspaces/{ws}/event-types", tag = "event types",
    params(("ws" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "OK", body = EventTypeList), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody)))]
pub async fn list_in_workspace(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
) -> ApiResult<Json<EventTypeList>> {
    caller.require(&ws, Scope::Read)?;
    Ok(Json(merged(&state, &ws).await?))
}

/// Add or replace a catalog entry for the calling key's workspace (admin scope).
#[utoipa::path(put, operation_id = "put_event_type", path = "/api/v1/event-types/{name}", tag = "event types",
    params(("name" = hookd_control::schema::EventTypeName, Path, description = "Event type")),
    request_body(content = Option<CatalogEntryBody>),
    responses((status = 200, description = "OK", body = EventTypeView), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 422, description = "Validation failed: one issue per bad field (`validation_failed`)", body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(entry): JsonBody<CatalogEntryBody>,
) -> ApiResult<Json<EventTypeView>> {
    let ws = caller.0.workspace.clone();
    caller.require(&ws, Scope::Admin)?;
    let view = event_types::put(
        &state.store,
        &caller.actor(),
        &state.settings.catalog,
        &ws,
        &name,
        &entry,
    )
    .await?;
    Ok(Json(view))
}
