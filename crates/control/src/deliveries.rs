//! Deliveries: the views of one (with its attempts) and of a page, and a
//! redelivery (a fresh attempt now, made by the scheduler).

use hookd_core::{Attempt, AttemptTrigger, Delivery, DeliveryStatus, ErrorKind, time};
use hookd_history::merged::HistoryReader;
use hookd_store::Store;
use hookd_store::audit::Actor;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{ActionError, ActionResult};

/// One header, as sent or received.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeaderPair {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// One HTTP request of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// 1 for the first attempt.
    pub number: u32,
    /// When the request started.
    pub started_at: String,
    /// How long until the answer, or the failure.
    pub duration_ms: u64,
    /// The receiver answered 2xx.
    pub succeeded: bool,
    /// The answer's HTTP status, when there was one.
    pub status_code: Option<u16>,
    /// Why it failed, when it did.
    #[schema(value_type = Option<crate::schema::ErrorKindName>)]
    pub error_kind: Option<ErrorKind>,
    /// What went wrong.
    pub error: Option<String>,
    /// The start of the response body.
    pub response_excerpt: Option<String>,
    /// The response's headers, for attempts answered with a status other
    /// than 2xx (the first 2 KiB of them).
    pub response_headers: Vec<HeaderPair>,
    /// `manual`: redeliver or recover.
    #[schema(value_type = crate::schema::TriggerName)]
    pub trigger: AttemptTrigger,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        Self {
            number: a.number,
            started_at: time::format_rfc3339_ms(a.started_at_ms),
            duration_ms: a.duration_ms,
            succeeded: a.succeeded,
            status_code: a.status_code,
            error_kind: a.error_kind,
            error: a.error,
            response_excerpt: a.response_excerpt,
            response_headers: a
                .response_headers
                .into_iter()
                .map(|(name, value)| HeaderPair { name, value })
                .collect(),
            trigger: a.trigger,
        }
    }
}

/// One event's delivery to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "dlv_1796412064944-0_ep_01a2428230d17446b67c772f6e858e64",
    "endpoint_id": "ep_01a2428230d17446b67c772f6e858e64",
    "event_id": "evt_card_42_moved_7",
    "event_type": "card.moved",
    "status": "succeeded",
    "attempts_made": 2,
    "created_at": "2026-12-04T19:21:04.944Z",
    "next_attempt_at": null,
    "last_status_code": 204,
    "last_error_kind": null,
    "attempts": [
        {"number": 1, "started_at": "2026-12-04T19:21:04.948Z", "duration_ms": 5002, "succeeded": false,
         "status_code": null, "error_kind": "timeout", "error": "no complete answer within 5000 ms",
         "response_excerpt": null, "response_headers": [], "trigger": "scheduled"},
        {"number": 2, "started_at": "2026-12-04T19:21:14.102Z", "duration_ms": 38, "succeeded": true,
         "status_code": 204, "error_kind": null, "error": null, "response_excerpt": null,
         "response_headers": [], "trigger": "scheduled"}
    ]
}))]
pub struct DeliveryView {
    /// `dlv_...`.
    pub id: String,
    /// The endpoint it goes to.
    pub endpoint_id: String,
    /// Its event's id.
    pub event_id: String,
    /// Its event's type.
    pub event_type: String,
    /// Where it stands.
    #[schema(value_type = crate::schema::DeliveryStatusName)]
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts_made: u32,
    /// When its event was accepted.
    pub created_at: String,
    /// When the next attempt is due, while one is.
    pub next_attempt_at: Option<String>,
    /// The last attempt's HTTP status, when it had an answer.
    pub last_status_code: Option<u16>,
    /// Why the last attempt failed, when it did.
    #[schema(value_type = Option<crate::schema::ErrorKindName>)]
    pub last_error_kind: Option<ErrorKind>,
    /// An ordered endpoint's delivery: its event's ordering key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
    /// Its `X-Hookd-Sequence` (once it went; an ordered endpoint's delivery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// While `waiting` (only when reading one delivery): the delivery at
    /// the head of its key, which must succeed or be given up first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// Every attempt, oldest first (only when reading one delivery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptView>>,
}

impl DeliveryView {
    /// The view of `d`; its attempts only when `with_attempts`.
    pub fn new(d: Delivery, with_attempts: bool) -> Self {
        let last = d.attempts.last();
        Self {
            last_status_code: last.and_then(|a| a.status_code),
            last_error_kind: last.and_then(|a| a.error_kind),
            attempts: with_attempts
                .then(|| d.attempts.into_iter().map(AttemptView::from).collect()),
            ordering_key: d.ordering_key,
            sequence: d.sequence,
            waiting_for: d.waiting_for,
            id: d.id,
            endpoint_id: d.endpoint_id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            attempts_made: d.attempts_made,
            created_at: time::format_rfc3339_ms(d.created_at_ms),
            next_attempt_at: d.next_attempt_at_ms.map(time::format_rfc3339_ms),
        }
    }
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// The deliveries of this page.
    pub data: Vec<DeliveryView>,
    /// Pass as `before` for the next page; `null` at the end of the history.
    /// A page may hold fewer than `limit` deliveries and still have a next one.
    pub next: Option<String>,
}

/// Takes a delivery out of its ordered key: it ends `failed` (`skipped`),
/// unsent from now, and when it was the key's head (held after it was
/// given up, or still being retried) the next delivery of the key goes.
pub async fn skip(store: &Store, actor: &Actor, workspace: &str, id: &str) -> ActionResult<()> {
    if !store.skip(workspace, id).await? {
        return Err(ActionError::Conflict(format!(
            "delivery {id} is not waiting in an ordered key (it ended, or its endpoint does not order by key)"
        )));
    }
    store
        .audit(workspace, actor, "delivery.skipped", id, None)
        .await;
    Ok(())
}

/// Queues a fresh attempt of delivery `id` (of `workspace`) now, recorded
/// as `manual`; refused while an attempt is in flight or when its endpoint
/// was deleted.
pub async fn redeliver(
    history: &HistoryReader,
    actor: &Actor,
    workspace: &str,
    id: &str,
) -> ActionResult<()> {
    if !history.redeliver(workspace, id, time::now_ms()).await? {
        return Err(ActionError::Conflict(format!(
            "delivery {id} cannot be attempted now: an attempt is in flight, or its endpoint was deleted"
        )));
    }
    history
        .store
        .audit(workspace, actor, "delivery.redelivered", id, None)
        .await;
    Ok(())
}
