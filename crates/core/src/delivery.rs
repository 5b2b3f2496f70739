//! Deliveries (one event bound for one endpoint) and their attempts.

use serde::{Deserialize, Serialize};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt.
    Pending,
    /// Its endpoint is paused; it goes out on resume.
    Held,
    /// At least one attempt failed; another is scheduled.
    Retrying,
    /// An attempt got a 2xx answer.
    Succeeded,
    /// No attempt left (max attempts or max age), or its endpoint is gone.
    Failed,
    /// Behind an earlier delivery of its ordering key (an endpoint with
    /// `ordering: key`); it goes once that one has succeeded or was given up.
    Waiting,
}

impl DeliveryStatus {
    /// Every status (the Lua scripts get a constant for each).
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Held,
        Self::Retrying,
        Self::Succeeded,
        Self::Failed,
        Self::Waiting,
    ];

    /// The name the API, the CLI and Redis use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Held => "held",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Waiting => "waiting",
        }
    }

    /// The status named `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No answer within the request timeout.
    Timeout,
    /// The connection could not be made (refused, reset, unreachable).
    Connect,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The receiver answered, but not 2xx.
    Status,
    /// Refused by network policy before connecting.
    Blocked,
    /// The receiver answered something that is not readable HTTP (a
    /// response head too large, a malformed status line).
    Response,
    /// hookd failed the attempt itself (its task ended before an answer).
    Internal,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: [Self; 8] = [
        Self::Timeout,
        Self::Connect,
        Self::Dns,
        Self::Tls,
        Self::Status,
        Self::Blocked,
        Self::Response,
        Self::Internal,
    ];

    /// The name the API, logs, metrics and spans use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Status => "status",
            Self::Blocked => "blocked",
            Self::Response => "response",
            Self::Internal => "internal",
        }
    }
}

/// What started an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AttemptTrigger {
    /// By the scheduler: a first attempt or a retry.
    #[default]
    Scheduled,
    /// By an operator: a redelivery or a recovery job.
    Manual,
}

impl AttemptTrigger {
    /// Every trigger.
    pub const ALL: [Self; 2] = [Self::Scheduled, Self::Manual];
}

/// Most bytes of response headers kept with an attempt (names and values;
/// the headers past it are left off).
pub const RESPONSE_HEADERS_KEPT: usize = 2048;

/// One HTTP request of a delivery, as recorded in its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based.
    pub number: u32,
    /// When the request started (Unix ms).
    pub started_at_ms: i64,
    /// How long until the answer, or the failure.
    pub duration_ms: u64,
    /// A 2xx answer.
    pub succeeded: bool,
    /// The answer's status, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// What went wrong, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The first few KiB of the response body (lossy UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_excerpt: Option<String>,
    /// The response's headers, (name, value) in the order received: kept for
    /// attempts answered with a status other than 2xx (what a receiver's
    /// `Retry-After` or error id says), up to [`RESPONSE_HEADERS_KEPT`] bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers: Vec<(String, String)>,
    /// What started it.
    #[serde(default)]
    pub trigger: AttemptTrigger,
}

/// A delivery with its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// `dlv_...`: the same for every attempt of it.
    pub id: String,
    /// The endpoint it goes to.
    pub endpoint_id: String,
    /// The workspace of its event and endpoint.
    pub workspace: String,
    /// Its event's id.
    pub event_id: String,
    /// Its event's type.
    pub event_type: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts_made: u32,
    /// When it was created (Unix ms): when its event was accepted.
    pub created_at_ms: i64,
    /// When the next attempt is due, while one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at_ms: Option<i64>,
    /// Every attempt, oldest first.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// An ordered endpoint's delivery: its event's ordering key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
    /// Its `X-Hookd-Sequence` (given when it first goes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// While `waiting`: the delivery at the head of its key, which goes first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
}

/// The id of the delivery of the event in stream entry `entry_id` to
/// `endpoint_id`: the same every time that entry is read, so a delivery
/// sent again after a crash carries the same id and receivers can drop the
/// repeat. (Entry ids, `<ms>-<seq>`, hold no `_`.)
pub fn delivery_id(entry_id: &str, endpoint_id: &str) -> String {
    format!("dlv_{entry_id}_{endpoint_id}")
}

/// The stream entry id and endpoint id a delivery id was made from.
pub fn parse_delivery_id(id: &str) -> Option<(&str, &str)> {
    let (entry, endpoint) = id.strip_prefix("dlv_")?.split_once('_')?;
    let (ms, seq) = entry.split_once('-')?;
    (ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok() && !endpoint.is_empty())
        .then_some((entry, endpoint))
}

/// The creation time (ms) of a delivery: its stream entry's time.
pub fn entry_time_ms(entry_id: &str) -> Option<i64> {
    entry_id.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_round_trip() {
        let id = delivery_id("1700000000000-3", "ep_01abc_x");
        assert_eq!(id, "dlv_1700000000000-3_ep_01abc_x");
        assert_eq!(
            parse_delivery_id(&id),
            Some(("1700000000000-3", "ep_01abc_x"))
        );
        assert_eq!(parse_delivery_id("dlv_01HZZ0000"), None);
        assert_eq!(parse_delivery_id("dlv_12-x_ep"), None);
        assert_eq!(entry_time_ms("1700000000000-3"), Some(1_700_000_000_000));
    }
}
