//! hookd-control: what an operator does, once. The admin API's handlers and
//! the `hookd` CLI both call these functions and print these views, so the
//! two cannot drift apart: the handlers only translate HTTP (paths, bodies,
//! scopes), the CLI only translates flags.
//!
//! - [`endpoints`]: create, update, delete, pause, resume, rotate a secret,
//!   and the endpoint view;
//! - [`events`]: publish an event as a producer's XADD would;
//! - [`deliveries`]: redeliver, and the delivery views;
//! - [`recovery`]: bulk recovery jobs and their view;
//! - [`keys`]: API keys made and revoked;
//! - [`probes`]: a test event sent to one endpoint now, with its answer;
//! - [`event_types`]: the catalog merged with the types seen;
//! - [`audit`]: the audit log's view;
//! - [`activity`]: an endpoint's attempts and latency over an hour or a day;
//! - [`schema`]: OpenAPI descriptions of hookd-core's values the views carry.
//!
//! Every change an action makes is written to the audit log here, under the
//! same action name whoever asked.

#![warn(missing_docs)]

pub mod activity;
pub mod audit;
pub mod deliveries;
pub mod endpoints;
pub mod event_types;
pub mod events;
pub mod keys;
pub mod probes;
pub mod recovery;
pub mod schema;

use hookd_store::StoreError;

/// Why an action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// (field, why) for each problem; fields are JSON Pointers into the request.
    #[error("{}", .0.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(String, String)>),
    /// (No `source`: the message carries it, and error chains print it once.)
    #[error("{0}")]
    Store(StoreError),
    /// The request conflicts with what is stored (an event id published with
    /// another body, a delivery that cannot be attempted now).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The system had no randomness for a secret or a key.
    #[error("no randomness for a secret: {0}")]
    Randomness(String),
}

impl From<StoreError> for ActionError {
    fn from(e: StoreError) -> Self {
        ActionError::Store(e)
    }
}

impl ActionError {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        ActionError::Invalid(vec![(field.to_string(), message.into())])
    }
}

/// What the actions return.
pub type ActionResult<T> = Result<T, ActionError>;

/// Longest pause reason or key name kept (they are shown and audited).
pub const MAX_NAME_BYTES: usize = 1024;
