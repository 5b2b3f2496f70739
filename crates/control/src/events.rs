//! Publishing an event onto the stream, exactly as a producer's XADD would:
//! refused here, with the same reason, when ingest would dead-letter it.

use hookd_core::{Event, EventLimits, event, id, time};
use hookd_store::Store;
use hookd_store::stream::Publication;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{ActionError, ActionResult};

/// An extra top-level member of the envelope.
#[derive(Debug, Clone)]
pub enum Member {
    /// Stays a string.
    Text(String),
    /// Enters the envelope as this JSON value (on the stream as the field
    /// `json:<name>`).
    Json(String),
}

/// An event to publish.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    /// The workspace it belongs to.
    pub workspace: String,
    /// The same id in the same workspace is delivered once; assigned when `None`.
    pub id: Option<String>,
    /// `card.created`, ...: what endpoints subscribe to.
    pub event_type: String,
    /// The payload, JSON text.
    pub data: String,
    /// RFC 3339; default ingest time.
    pub occurred_at: Option<String>,
    /// Extra members (`boardId`, `cardId`, ...), by name.
    pub members: Vec<(String, Member)>,
    /// W3C trace context (never payload): the attempts continue this trace.
    pub traceparent: Option<String>,
    /// The producer's `tracestate`, kept only with a `traceparent`.
    pub tracestate: Option<String>,
    /// Events with the same key reach endpoints with `ordering: key` in
    /// publish order (never payload).
    pub ordering_key: Option<String>,
}

/// What publishing wrote.
#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    /// The event id (the producer's, or one assigned).
    pub event_id: String,
    /// The stream entry id (for a repeat, the first one's).
    pub entry_id: String,
    /// The event id was published before: nothing was written this time.
    pub repeat: bool,
}

/// Adds `new` to the stream. A repeat of an id published before with the
/// same body writes nothing and answers the first entry (`repeat`); with a
/// different body it is a conflict.
pub async fn publish(store: &Store, limits: EventLimits, new: NewEvent) -> ActionResult<Published> {
    let event_id = new.id.unwrap_or_else(|| id::new_id("evt_"));
    let mut fields = vec![
        ("type".to_string(), new.event_type),
        ("workspace".to_string(), new.workspace.clone()),
        ("data".to_string(), new.data),
        ("id".to_string(), event_id.clone()),
    ];
    if let Some(at) = new.occurred_at {
        fields.push(("occurred_at".to_string(), at));
    }
    if let Some(tp) = new.traceparent {
        fields.push(("traceparent".to_string(), tp));
        if let Some(state) = new.tracestate {
            fields.push(("tracestate".to_string(), state));
        }
    }
    if let Some(key) = new.ordering_key {
        fields.push(("ordering_key".to_string(), key));
    }
    let mut reserved = Vec::new();
    for (name, value) in new.members {
        if event::RESERVED_FIELDS.contains(&name.as_str()) || name.starts_with(event::JSON_PREFIX) {
            reserved.push((
                format!("/fields/{name}"),
                "is a reserved member; use the top-level field (or a JSON value, not the json: prefix)"
                    .to_string(),
            ));
            continue;
        }
        match value {
            Member::Text(text) => fields.push((name, text)),
            Member::Json(json) => fields.push((format!("{}{name}", event::JSON_PREFIX), json)),
        }
    }
    if !reserved.is_empty() {
        return Err(ActionError::Invalid(reserved));
    }
    Event::from_fields(&fields, limits, time::now_ms()).map_err(refused)?;
    match store.publish(&new.workspace, &event_id, &fields).await? {
        Publication::New { entry_id } => Ok(Published {
            event_id,
            entry_id,
            repeat: false,
        }),
        Publication::Repeat {
            same: Some(false),
            entry_id,
        } => Err(ActionError::Conflict(format!(
            "event {event_id} was published before (entry {entry_id}) with a different body; publish a changed event under a new id"
        ))),
        Publication::Repeat { entry_id, .. } => Ok(Published {
            event_id,
            entry_id,
            repeat: true,
        }),
    }
}

/// An entry's refusal as the API's: the member of the request the stream
/// entry's check is about, and the check's code and message.
pub(crate) fn refused(r: event::Rejection) -> ActionError {
    let at = match r.code {
        "invalid_type" => "/type",
        "invalid_json" | "too_large" => "/data",
        "invalid_occurred_at" => "/occurred_at",
        "invalid_id" => "/id",
        "invalid_ordering_key" => "/ordering_key",
        "invalid_workspace" => "/path/ws",
        "too_many_fields" | "duplicate_field" | "reserved_field" => "/fields",
        _ => "",
    };
    // (The path names the member: the check's message does not again.)
    let message = match r.message.strip_prefix('`').and_then(|m| m.split_once("` ")) {
        Some((_, rest)) if !at.is_empty() => rest.to_string(),
        _ => r.message,
    };
    ActionError::invalid(at, format!("{}: {message}", r.code))
}
