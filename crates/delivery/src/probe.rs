//! A probe: one signed request of a test event to one endpoint, made now by
//! the same client, signing and network policy as deliveries, and answered
//! with what was sent and what came back. It is not a delivery: nothing is
//! queued, retried or written to the history.

use bytes::Bytes;
use hookd_core::{Endpoint, ErrorKind, RotationSignatures, time};

use crate::attempt::{HeaderNames, signed_headers, signing_problem};
use crate::sender::{BuildError, Sender, SenderSettings, header_pairs};

/// Sends probes. Cheap to clone (its connection pool is shared).
#[derive(Clone)]
pub struct Prober {
    sender: Sender,
    names: HeaderNames,
    rotation: RotationSignatures,
}

/// What one probe sent and what came back.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Every header of the request, in the order sent.
    pub request_headers: Vec<(String, String)>,
    /// The request body (the event's envelope).
    pub body: Bytes,
    /// From the first byte sent to the answer, or the failure.
    pub duration_ms: u64,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// The response's headers, when it answered.
    pub response_headers: Vec<(String, String)>,
    /// The start of the response body (as much as a delivery keeps).
    pub response_excerpt: Option<String>,
    /// Why there was no 2xx answer, when there was not.
    pub error_kind: Option<ErrorKind>,
    /// What went wrong.
    pub error: Option<String>,
}

impl Prober {
    /// A prober with its own connection pool: `settings` as deliveries'
    /// (the network policy included), the signed headers under `header_prefix`.
    pub fn new(
        settings: SenderSettings,
        names: HeaderNames,
        rotation: RotationSignatures,
    ) -> Result<Self, BuildError> {
        Ok(Self {
            sender: Sender::new(settings)?,
            names,
            rotation,
        })
    }

    /// Sends `envelope` (event `event_id`) to `endpoint` once, as attempt 1
    /// of delivery `delivery_id`, signed with its secrets now.
    pub async fn send(
        &self,
        endpoint: &Endpoint,
        event_id: &str,
        delivery_id: &str,
        envelope: Bytes,
    ) -> Probe {
        let now_ms = time::now_ms();
        let target = self.sender.target(&endpoint.url, &endpoint.headers);
        let signed = signed_headers(
            &self.names,
            self.rotation,
            endpoint,
            event_id,
            delivery_id,
            1,
            &envelope,
            now_ms,
        );
        let mut sent = target.headers().clone();
        sent.extend(signed.clone());
        let mut probe = Probe {
            request_headers: header_pairs(&sent, usize::MAX),
            body: envelope.clone(),
            duration_ms: 0,
            status_code: None,
            response_headers: Vec::new(),
            response_excerpt: None,
            error_kind: None,
            error: None,
        };
        if let Some(problem) = signing_problem(endpoint, self.rotation, now_ms) {
            probe.error_kind = Some(ErrorKind::Internal);
            probe.error = Some(problem);
            return probe;
        }
        let response = self.sender.send(&target, signed, envelope).await;
        probe.duration_ms = response.duration.as_millis() as u64;
        match response.result {
            Ok(answer) => {
                probe.status_code = Some(answer.status);
                probe.response_headers = header_pairs(&answer.headers, usize::MAX);
                probe.response_excerpt = (!answer.excerpt.is_empty()).then_some(answer.excerpt);
                if !(200..300).contains(&answer.status) {
                    probe.error_kind = Some(ErrorKind::Status);
                    probe.error = Some(format!("receiver answered {}", answer.status));
                }
            }
            Err(failure) => {
                probe.error_kind = Some(failure.kind);
                probe.error = Some(failure.message);
            }
        }
        probe
    }
}
