//! Test events: one signed request of an event of a chosen type to one
//! endpoint, sent now and answered with the request and the response (the
//! console's and the portal's "Send a test event"). Not a delivery: nothing
//! is queued, retried or kept in the history; the audit log records it.

use bytes::Bytes;
use hookd_core::{Endpoint, ErrorKind, Event, EventLimits, id, time};
pub use hookd_delivery::probe::Prober;
use hookd_store::Store;
use hookd_store::audit::Actor;
use serde::Serialize;
use utoipa::ToSchema;

use crate::deliveries::HeaderPair;
use crate::events::refused;
use crate::{ActionError, ActionResult};

/// The payload of a test event when the caller gives none.
pub const DEFAULT_DATA: &str = r#"{"test":true}"#;

/// A test event to send.
#[derive(Debug, Clone)]
pub struct TestEvent {
    /// Its type (any valid type: the endpoint need not subscribe to it).
    pub event_type: String,
    /// Its `data`, JSON text; [`DEFAULT_DATA`] when `None`.
    pub data: Option<String>,
}

/// What a test event's request carried.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestEventRequest {
    /// Where it went.
    pub url: String,
    /// Every header, signature included.
    pub headers: Vec<HeaderPair>,
    /// The body: the envelope, as a receiver parses it.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

/// What the receiver answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestEventResponse {
    /// The HTTP status.
    pub status_code: u16,
    /// Its headers.
    pub headers: Vec<HeaderPair>,
    /// The start of its body (as much as a delivery's history keeps).
    pub body_excerpt: Option<String>,
}

/// A test event's request and what came of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    /// `evt_test_...`: its event id.
    pub event_id: String,
    /// `dlv_test_...`: the delivery id it carried (no delivery was recorded).
    pub delivery_id: String,
    /// The receiver answered 2xx.
    pub succeeded: bool,
    /// From the first byte sent to the answer or the failure.
    pub duration_ms: u64,
    /// Why it did not succeed, when it did not.
    #[schema(value_type = Option<crate::schema::ErrorKindName>)]
    pub error_kind: Option<ErrorKind>,
    /// What went wrong.
    pub error: Option<String>,
    /// What was sent.
    pub request: TestEventRequest,
    /// What came back (`null`: no answer).
    pub response: Option<TestEventResponse>,
}

fn headers(pairs: Vec<(String, String)>) -> Vec<HeaderPair> {
    pairs
        .into_iter()
        .map(|(name, value)| HeaderPair { name, value })
        .collect()
}

/// Sends `test` to `endpoint` now (paused or not), signed with its secrets,
/// under the same network policy as deliveries; audited as `endpoint.tested`.
pub async fn send(
    store: &Store,
    prober: &Prober,
    limits: EventLimits,
    actor: &Actor,
    endpoint: &Endpoint,
    test: TestEvent,
) -> ActionResult<TestResult> {
    let event_id = id::new_id("evt_test_");
    let delivery_id = id::new_id("dlv_test_");
    let data = test.data.unwrap_or_else(|| DEFAULT_DATA.to_string());
    let fields = [
        ("type", test.event_type.as_str()),
        ("workspace", endpoint.workspace.as_str()),
        ("data", data.as_str()),
        ("id", event_id.as_str()),
    ];
    // (The request names the type `event_type`.)
    let event =
        Event::from_fields(&fields, limits, time::now_ms()).map_err(|r| match refused(r) {
            ActionError::Invalid(mut issues) => {
                for (at, _) in &mut issues {
                    if at == "/type" {
                        *at = "/event_type".to_string();
                    }
                }
                ActionError::Invalid(issues)
            }
            other => other,
        })?;
    let probe = prober
        .send(
            endpoint,
            &event_id,
            &delivery_id,
            Bytes::from(event.envelope),
        )
        .await;
    let detail = format!(
        "{} to {}: {}",
        test.event_type,
        endpoint.url,
        match (probe.status_code, &probe.error) {
            (Some(code), _) => format!("answered {code}"),
            (None, Some(e)) => e.clone(),
            (None, None) => "no answer".to_string(),
        }
    );
    store
        .audit(
            &endpoint.workspace,
            actor,
            "endpoint.tested",
            &endpoint.id,
            Some(&detail),
        )
        .await;
    Ok(TestResult {
        event_id,
        delivery_id,
        succeeded: probe.status_code.is_some_and(|c| (200..300).contains(&c)),
        duration_ms: probe.duration_ms,
        error_kind: probe.error_kind,
        error: probe.error,
        request: TestEventRequest {
            url: endpoint.url.clone(),
            headers: headers(probe.request_headers),
            body: serde_json::from_slice(&probe.body).unwrap_or(serde_json::Value::Null),
        },
        response: probe.status_code.map(|status_code| TestEventResponse {
            status_code,
            headers: headers(probe.response_headers),
            body_excerpt: probe.response_excerpt,
        }),
    })
}
