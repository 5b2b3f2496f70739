//! Event-type discovery: the catalog (from configuration, plus entries a
//! workspace's admin keys add) merged with the types actually seen on the
//! stream, with counts and last-seen times.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use hookd_core::{Scope, event, time};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonBody;

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntryBody {
    pub description: Option<String>,
    /// JSON Schema of the event's `data` (an object or a boolean).
    /// Documentation only: hookd stores and serves it for receivers and SDK
    /// generators, and does not validate published events against it.
    #[schema(value_type = Option<crate::schema::JsonSchemaDoc>)]
    pub schema: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeView {
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = Option<crate::schema::JsonSchemaDoc>)]
    pub schema: Option<serde_json::Value>,
    /// Declared in configuration or through the API.
    pub in_catalog: bool,
    /// Events of this type ingested for the workspace (within retention of the counter).
    pub count: u64,
    pub last_seen: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeList {
    pub data: Vec<EventTypeView>,
}

async fn merged(state: &AppState, ws: &str) -> ApiResult<EventTypeList> {
    Ok(catalog_and_seen(&state.store, &state.settings.catalog, ws).await?)
}

/// The configured catalog, the workspace's own entries and the types seen
/// in its events, merged (what the API and `hookd event-types` list).
pub async fn catalog_and_seen(
    store: &hookd_store::Store,
    configured: &[crate::CatalogEntry],
    ws: &str,
) -> Result<EventTypeList, hookd_store::StoreError> {
    let mut types: BTreeMap<String, EventTypeView> = BTreeMap::new();
    let mut add = |name: &str, entry: CatalogEntryBody| {
        types.insert(
            name.to_string(),
            EventTypeView {
                name: name.to_string(),
                description: entry.description,
                schema: entry.schema,
                in_catalog: true,
                count: 0,
                last_seen: None,
            },
        );
    };
    for c in configured {
        add(
            &c.name,
            CatalogEntryBody {
                description: c.description.clone(),
                schema: c.schema.clone(),
            },
        );
    }
    for (name, json) in store.catalog(ws).await? {
        add(&name, serde_json::from_str(&json).unwrap_or_default());
    }
    for (name, seen) in store.types_seen(ws).await? {
        let t = types.entry(name.clone()).or_insert_with(|| EventTypeView {
            name,
            description: None,
            schema: None,
            in_catalog: false,
            count: 0,
            last_seen: None,
        });
        t.count = seen.count;
        t.last_seen = Some(time::format_rfc3339_ms(seen.last_seen_ms));
    }
    Ok(EventTypeList {
        data: types.into_values().collect(),
    })
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
    params(("name" = crate::schema::EventTypeName, Path, description = "Event type")),
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
    if !event::is_valid_event_type(&name) {
        return Err(ApiError::invalid(
            "/path/name",
            "must match [a-z0-9_.-]{1,128}",
        ));
    }
    if entry
        .schema
        .as_ref()
        .is_some_and(|s| !s.is_object() && !s.is_boolean())
    {
        return Err(ApiError::invalid(
            "schema",
            "a JSON Schema is an object (or a boolean)",
        ));
    }
    let json = serde_json::to_string(&entry).map_err(|e| ApiError::invalid("", e.to_string()))?;
    state.store.put_catalog_entry(&ws, &name, &json).await?;
    state
        .store
        .audit(&ws, &caller.actor(), "catalog.changed", &name, None)
        .await;
    let view = merged(&state, &ws)
        .await?
        .data
        .into_iter()
        .find(|t| t.name == name);
    view.map(Json)
        .ok_or_else(|| ApiError::not_found(format!("event type {name}")))
}
