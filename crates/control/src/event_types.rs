//! Event-type discovery: the catalog (from configuration, plus entries a
//! workspace's admin keys add) merged with the types actually seen on the
//! stream, with counts and last-seen times; and a catalog entry put.

use std::collections::BTreeMap;

use hookd_core::{event, time};
use hookd_store::Store;
use hookd_store::audit::Actor;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ActionError, ActionResult};

/// An event type declared in configuration.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct CatalogEntry {
    /// The event type (`card.created`).
    pub name: String,
    /// What the event means, for receivers.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON Schema of the event's `data`.
    #[serde(default)]
    pub schema: Option<serde_json::Value>,
}

/// A catalog entry as the API takes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntryBody {
    /// What the event means, for receivers.
    pub description: Option<String>,
    /// JSON Schema of the event's `data` (an object or a boolean).
    /// Documentation only: hookd stores and serves it for receivers and SDK
    /// generators, and does not validate published events against it.
    #[schema(value_type = Option<crate::schema::JsonSchemaDoc>)]
    pub schema: Option<serde_json::Value>,
}

/// An event type of a workspace: declared, seen, or both.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeView {
    /// The event type (`card.created`).
    pub name: String,
    /// What the event means, from the catalog.
    pub description: Option<String>,
    /// JSON Schema of its `data`, from the catalog.
    #[schema(value_type = Option<crate::schema::JsonSchemaDoc>)]
    pub schema: Option<serde_json::Value>,
    /// Declared in configuration or through the API.
    pub in_catalog: bool,
    /// Events of this type ingested for the workspace (within retention of the counter).
    pub count: u64,
    /// When an event of this type was last ingested.
    pub last_seen: Option<String>,
}

/// A workspace's event types, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeList {
    /// The types.
    pub data: Vec<EventTypeView>,
}

/// The configured catalog, the workspace's own entries and the types seen
/// in its events, merged (what the API and `hookd event-types` list).
pub async fn list(
    store: &hookd_store::Store,
    configured: &[CatalogEntry],
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

/// Adds or replaces the catalog entry `name` of `workspace`; returns it
/// merged with what was seen of the type.
pub async fn put(
    store: &Store,
    actor: &Actor,
    configured: &[CatalogEntry],
    workspace: &str,
    name: &str,
    entry: &CatalogEntryBody,
) -> ActionResult<EventTypeView> {
    if !event::is_valid_event_type(name) {
        return Err(ActionError::invalid(
            "/path/name",
            "must match [a-z0-9_.-]{1,128}",
        ));
    }
    if entry
        .schema
        .as_ref()
        .is_some_and(|s| !s.is_object() && !s.is_boolean())
    {
        return Err(ActionError::invalid(
            "schema",
            "a JSON Schema is an object (or a boolean)",
        ));
    }
    let json = serde_json::to_string(entry).map_err(|e| ActionError::invalid("", e.to_string()))?;
    store.put_catalog_entry(workspace, name, &json).await?;
    store
        .audit(workspace, actor, "catalog.changed", name, None)
        .await;
    list(store, configured, workspace)
        .await?
        .data
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| {
            ActionError::Store(hookd_store::StoreError::NotFound(format!(
                "event type {name}"
            )))
        })
}
