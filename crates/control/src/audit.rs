//! The audit log's view: who changed what, and when.

use hookd_core::time;
use hookd_store::audit::AuditEntry;
use serde::Serialize;
use utoipa::ToSchema;

/// One change.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// `aud_...`.
    pub id: String,
    /// When the change was made.
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

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// The entries of this page.
    pub data: Vec<AuditView>,
    /// Pass as `before` for the next page; `null` at the end.
    pub next: Option<String>,
}
