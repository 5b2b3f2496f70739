//! `/api/v1/workspaces/{ws}/keys`: admin keys make, list and revoke the
//! workspace's API keys. A new key is shown once; only its hash is kept.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hookd_control::keys::{self, KeyList, KeyView, NewKey};
use hookd_core::Scope;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::JsonBody;
use crate::state::AppState;

/// A new API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What it may do in the workspace.
    #[schema(value_type = hookd_control::schema::ScopeName)]
    pub scope: Scope,
    /// A name for people to recognise it by.
    pub name: Option<String>,
    /// Default `live`.
    #[schema(value_type = Option<hookd_control::schema::KeyEnvName>)]
    pub env: Option<String>,
    /// When the key stops working: an RFC 3339 time, Unix seconds, or a
    /// duration from now (`90d`); in the future. Default never.
    pub expires_at: Option<String>,
}

/// Make an API key for the workspace (admin scope). The key is in this response only.
#[utoipa::path(post, operation_id = "create_api_key", path = "/api/v1/workspaces/{ws}/keys", tag = "keys",
    params(("ws" = String, Path, description = "Workspace id")),
    request_body = CreateKey,
    responses((status = 201, description = "Created", body = KeyView), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 422, description = "Validation failed: one issue per bad field (`validation_failed`)", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    JsonBody(req): JsonBody<CreateKey>,
) -> ApiResult<(StatusCode, Json<KeyView>)> {
    caller.require(&ws, Scope::Admin)?;
    let expires_at_ms = req
        .expires_at
        .as_deref()
        .map(|t| crate::extract::parse_time("/expires_at", t, hookd_core::time::Direction::Ahead))
        .transpose()?;
    let (key, text) = keys::mint(
        &state.store,
        &caller.actor(),
        &state.settings.key_policy,
        NewKey {
            workspace: ws,
            scope: req.scope,
            env: req.env.unwrap_or_else(|| "live".into()),
            name: req.name,
            expires_at_ms,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(KeyView::new(key, Some(text)))))
}

/// The workspace's keys, revoked ones included.
#[utoipa::path(get, operation_id = "list_api_keys", path = "/api/v1/workspaces/{ws}/keys", tag = "keys",
    params(("ws" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "OK", body = KeyList), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
) -> ApiResult<Json<KeyList>> {
    caller.require(&ws, Scope::Admin)?;
    let keys = state.store.api_keys(Some(&ws)).await?;
    Ok(Json(KeyList {
        data: keys.into_iter().map(|k| KeyView::new(k, None)).collect(),
    }))
}

/// Revoke a key: it gets 401 from now on.
#[utoipa::path(delete, operation_id = "revoke_api_key", path = "/api/v1/workspaces/{ws}/keys/{id}", tag = "keys",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "OK", body = KeyView), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 404, description = "No such resource in this workspace (`not_found`)", body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<KeyView>> {
    caller.require(&ws, Scope::Admin)?;
    let key = keys::revoke(&state.store, &caller.actor(), &id, Some(&ws)).await?;
    Ok(Json(KeyView::new(key, None)))
}
