//! One delivery attempt: sign, send, and decide what follows (the
//! [`Record`] that the recorder then writes).

use std::time::Duration;

use hookd_core::{
    Attempt, AttemptTrigger, Endpoint, ErrorKind, RetryDecision, RetryPolicy, RotationSignatures,
    SignatureScheme, time,
};
use hookd_signature::standard;
use hookd_store::schedule::{Claimed, Outcome, Record};
use http::header::{HeaderMap, HeaderName, HeaderValue, InvalidHeaderName};

use crate::sender::{Sender, Target};
use crate::trace::AttemptSpan;
use hookd_core::trace::Spans;

/// The signed-request header names for a configured prefix (`X-Hookd` by default).
#[derive(Debug, Clone)]
pub struct HeaderNames {
    event_id: HeaderName,
    delivery_id: HeaderName,
    attempt: HeaderName,
    timestamp: HeaderName,
    signature: HeaderName,
    sequence: HeaderName,
}

impl HeaderNames {
    /// The header names under `prefix` (`X-Hookd`); an error when they are not valid header names.
    pub fn new(prefix: &str) -> Result<Self, InvalidHeaderName> {
        let name = |suffix: &str| HeaderName::from_bytes(format!("{prefix}-{suffix}").as_bytes());
        Ok(Self {
            event_id: name("Event-Id")?,
            delivery_id: name("Delivery-Id")?,
            attempt: name("Attempt")?,
            timestamp: name("Timestamp")?,
            signature: name("Signature")?,
            sequence: name("Sequence")?,
        })
    }
}

/// What every attempt needs besides the delivery itself.
#[derive(Clone)]
pub struct AttemptContext {
    /// Makes the HTTP requests.
    pub sender: Sender,
    /// The signed headers' names.
    pub headers: HeaderNames,
    /// When a failed attempt is tried again, and when it is given up.
    pub retry: RetryPolicy,
    /// Counters and histograms of attempts.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// For endpoints that do not say (`[signing] rotation_signatures`).
    pub rotation_signatures: RotationSignatures,
    /// Attempt spans, when tracing is on.
    pub spans: Spans,
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The signed headers of one request of `envelope` (event `event_id`,
/// delivery `delivery_id`, attempt `number`) to `endpoint`, at `now_ms`; the
/// endpoint's fixed headers are in its [`Target`].
#[allow(clippy::too_many_arguments)]
pub fn signed_headers(
    names: &HeaderNames,
    rotation: RotationSignatures,
    endpoint: &Endpoint,
    event_id: &str,
    delivery_id: &str,
    number: u32,
    envelope: &[u8],
    now_ms: i64,
) -> HeaderMap {
    let timestamp = now_ms / 1000;
    let mut h = HeaderMap::with_capacity(6);
    h.insert(names.event_id.clone(), header_value(event_id));
    h.insert(names.delivery_id.clone(), header_value(delivery_id));
    h.insert(names.attempt.clone(), HeaderValue::from(number));
    // During a rotation's grace window: one signature per valid secret, newest
    // first, or the newest alone (`rotation_signatures`). Grace windows end to
    // the millisecond, not at the signed (whole-second) timestamp.
    let secrets = endpoint.signing_secrets(now_ms, rotation);
    match endpoint.scheme {
        SignatureScheme::Sha256 => {
            h.insert(names.timestamp.clone(), HeaderValue::from(timestamp));
            let signature = hookd_signature::signature_header(&secrets, timestamp, envelope);
            h.insert(names.signature.clone(), header_value(&signature));
        }
        SignatureScheme::StandardWebhooks => {
            // Secrets of this scheme are made by hookd as whsec_<base64>;
            // one that does not decode is left out (`signing_problem`
            // refuses to send when none is left).
            let keys: Vec<Vec<u8>> = secrets
                .iter()
                .filter_map(|s| standard::decode_secret(s).ok())
                .collect();
            let signature = standard::signature_header(&keys, event_id, timestamp, envelope);
            h.insert(
                HeaderName::from_static("webhook-id"),
                header_value(event_id),
            );
            h.insert(
                HeaderName::from_static("webhook-timestamp"),
                HeaderValue::from(timestamp),
            );
            h.insert(
                HeaderName::from_static("webhook-signature"),
                header_value(&signature),
            );
        }
    }
    h
}

/// Why no request can be signed for `endpoint` now: a Standard Webhooks
/// secret that is not a valid `whsec_` secret (signing with its raw bytes
/// would send a signature no receiver can check).
pub fn signing_problem(
    endpoint: &Endpoint,
    rotation: RotationSignatures,
    now_ms: i64,
) -> Option<String> {
    if endpoint.scheme != SignatureScheme::StandardWebhooks {
        return None;
    }
    let secrets = endpoint.signing_secrets(now_ms, rotation);
    let current = secrets.first()?;
    standard::decode_secret(current).err().map(|e| {
        format!(
            "the endpoint's signing secret is not a valid whsec_ secret ({e}); rotate it: nothing was sent"
        )
    })
}

impl AttemptContext {
    /// Where a claimed delivery's endpoint is sent, prepared once per batch.
    pub fn target(&self, c: &Claimed) -> Target {
        self.sender.target(&c.endpoint.url, &c.endpoint.headers)
    }

    /// Makes one attempt of a claimed delivery to its endpoint's `target`; returns what to record.
    pub async fn run(&self, c: Claimed, target: &Target, trigger: AttemptTrigger) -> Record {
        let number = c.attempts_made + 1;
        let started_at_ms = time::now_ms();
        if number == 1 {
            self.metrics
                .first_attempt((started_at_ms - c.created_at_ms) as f64 / 1000.0);
        }
        let mut headers = signed_headers(
            &self.headers,
            self.rotation_signatures,
            &c.endpoint,
            &c.event_id,
            &c.delivery_id,
            number,
            &c.envelope,
            started_at_ms,
        );
        if let Some(sequence) = c.sequence {
            // An ordered endpoint's delivery: its place in its key's order.
            let value = HeaderValue::from(sequence);
            if c.endpoint.scheme == SignatureScheme::StandardWebhooks {
                headers.insert(HeaderName::from_static("webhook-sequence"), value.clone());
            }
            headers.insert(self.headers.sequence.clone(), value);
        }
        let span = self.spans.as_deref().map(|t| AttemptSpan::start(t, &c));
        if let Some(span) = &span {
            headers.insert(HeaderName::from_static("traceparent"), span.traceparent());
            if let Some(state) = span.tracestate() {
                headers.insert(HeaderName::from_static("tracestate"), state);
            }
        }
        let response = match signing_problem(&c.endpoint, self.rotation_signatures, started_at_ms) {
            None => self.sender.send(target, headers, c.envelope.clone()).await,
            Some(problem) => crate::sender::Response::failed(ErrorKind::Internal, problem),
        };
        let now_ms = time::now_ms();
        let mut attempt = Attempt {
            number,
            started_at_ms,
            duration_ms: response.duration.as_millis() as u64,
            succeeded: false,
            status_code: None,
            error_kind: None,
            error: None,
            response_excerpt: None,
            response_headers: Vec::new(),
            trigger,
        };
        let mut retry_after = None;
        let mut pause_reason = None;
        match response.result {
            Ok(answer) => {
                attempt.status_code = Some(answer.status);
                attempt.response_excerpt = (!answer.excerpt.is_empty()).then_some(answer.excerpt);
                if (200..300).contains(&answer.status) {
                    attempt.succeeded = true;
                } else {
                    attempt.error_kind = Some(ErrorKind::Status);
                    attempt.error = Some(format!("receiver answered {}", answer.status));
                    attempt.response_headers = crate::sender::header_pairs(
                        &answer.headers,
                        hookd_core::delivery::RESPONSE_HEADERS_KEPT,
                    );
                    if matches!(answer.status, 429 | 503) {
                        retry_after = answer.retry_after;
                    }
                    if answer.status == 410 {
                        pause_reason = Some("receiver answered 410 Gone".to_string());
                    }
                }
            }
            Err(failure) => {
                attempt.error_kind = Some(failure.kind);
                attempt.error = Some(failure.message);
            }
        }
        let outcome = if attempt.succeeded {
            Outcome::Succeeded
        } else if attempt.error_kind == Some(ErrorKind::Blocked) {
            // The network policy refused the destination: another attempt
            // would be refused the same way.
            Outcome::Failed
        } else if pause_reason.is_some() {
            // Due now: the next claim finds the endpoint paused and holds it.
            Outcome::RetryAt(now_ms)
        } else {
            match self.retry.after_failure(
                number,
                c.created_at_ms,
                now_ms,
                retry_after,
                fastrand::f64(),
            ) {
                RetryDecision::RetryAt(at) => Outcome::RetryAt(at),
                RetryDecision::GiveUp => Outcome::Failed,
            }
        };
        let label = match outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::RetryAt(_) => "retrying",
            Outcome::Failed => "failed",
        };
        self.metrics.attempt(label, response.duration.as_secs_f64());
        self.metrics.result(
            result_label(&attempt),
            &c.endpoint.workspace,
            &c.endpoint.id,
        );
        if !attempt.succeeded {
            // (The span's ids are formatted only for the failure's log line.)
            let ids = span.as_ref().map(AttemptSpan::ids);
            log_failure(
                &c,
                &attempt,
                &outcome,
                now_ms,
                pause_reason.as_deref(),
                ids.as_ref(),
            );
        }
        if let Some(span) = span {
            span.finish(&c, &attempt, label);
        }
        Record {
            endpoint: c.endpoint.id.clone(),
            workspace: c.endpoint.workspace.clone(),
            lease: c.lease,
            job: c.job,
            ordering_key: c.ordering_key,
            delivery_id: c.delivery_id,
            delivery_created_ms: c.created_at_ms,
            attempt,
            outcome,
            pause_reason,
        }
    }
}

/// The `result` label of an attempt: success, the status class, or the error kind.
fn result_label(attempt: &Attempt) -> &'static str {
    if attempt.succeeded {
        return "success";
    }
    match (attempt.error_kind, attempt.status_code) {
        (Some(ErrorKind::Status), Some(code)) => match code {
            300..=399 => "3xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "other_status",
        },
        (Some(kind), _) => kind.as_str(),
        (None, _) => "other",
    }
}

/// A failed attempt's log line: values, not debug text; INFO while another
/// attempt follows, WARN when the delivery gives up (or the endpoint pauses).
fn log_failure(
    c: &Claimed,
    attempt: &Attempt,
    outcome: &Outcome,
    now_ms: i64,
    pause_reason: Option<&str>,
    ids: Option<&(String, String)>,
) {
    // Fields without a value are left out of the line (no `status=0` for a
    // DNS failure, no empty trace ids when tracing is off).
    let kind = attempt.error_kind.map(ErrorKind::as_str);
    let status = attempt.status_code;
    let error = attempt.error.as_deref().unwrap_or_default();
    let host = crate::trace::url_host(&c.endpoint.url).unwrap_or_default();
    let trace_id = ids.map(|(t, _)| t.as_str());
    let span_id = ids.map(|(_, s)| s.as_str());
    macro_rules! line {
        ($level:ident, $($rest:tt)*) => {
            tracing::$level!(
                error_kind = kind,
                status,
                error,
                endpoint = %c.endpoint.id,
                workspace = %c.endpoint.workspace,
                delivery = %c.delivery_id,
                event = %c.event_id,
                attempt = attempt.number,
                host,
                trace_id,
                span_id,
                $($rest)*
            )
        };
    }
    match (outcome, pause_reason) {
        (_, Some(_)) => line!(warn, "receiver answered 410 Gone; the endpoint is paused"),
        (Outcome::RetryAt(at), None) => line!(
            info,
            retry_in_ms = at - now_ms,
            "attempt failed; retry scheduled"
        ),
        (_, None) => line!(warn, "attempt failed; no attempt left, delivery failed"),
    }
}

/// The lease a claim takes: long enough that the request (its total timeout
/// includes connecting) and recording it finish before anyone else may claim
/// it again, so a live worker's attempt is never sent twice (Svix PR #2181).
pub fn lease_for(request_timeout: Duration) -> Duration {
    request_timeout + Duration::from_secs(5)
}
