//! hookd-core: the domain of hookd with no I/O.
//!
//! - [`api_key`]: admin API keys, their scopes and hashes;
//! - [`event`]: what a producer puts on the stream, its validation, and the
//!   envelope (the exact bytes every endpoint receives);
//! - [`endpoint`]: where deliveries go and how they are signed;
//! - [`delivery`]: one event bound for one endpoint, its status and attempts;
//! - [`network`]: which destination addresses deliveries may reach;
//! - [`sealing`]: endpoint secrets encrypted at rest, with rotatable keys;
//! - [`retry`]: when the next attempt is due, or that there is none;
//! - [`trace`]: W3C trace context an event carries (not payload);
//! - [`id`] and [`time`]: identifiers and RFC 3339 timestamps.

#![warn(missing_docs)]

pub mod api_key;
pub mod delivery;
pub mod endpoint;
pub mod event;
pub mod heartbeat;
pub mod id;
pub mod network;
pub mod retry;
pub mod sealing;
pub mod time;
pub mod trace;

pub use api_key::{ApiKey, Scope};
pub use delivery::{Attempt, AttemptTrigger, Delivery, DeliveryStatus, ErrorKind};
pub use endpoint::{Endpoint, PreviousSecret, RotationSignatures, SignatureScheme};
pub use event::{Event, EventLimits, Rejection};
pub use retry::{RetryDecision, RetryPolicy};

/// The `User-Agent` of every attempt (and what the admin API shows it sent).
pub const USER_AGENT: &str = concat!("hookd/", env!("CARGO_PKG_VERSION"));
