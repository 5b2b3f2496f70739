//! Spans (OpenTelemetry, exported over OTLP by the binary when
//! `[telemetry] otlp_endpoint` is set): one client span per attempt, the
//! child of the producer's span when its event carried a `traceparent`
//! (kept in durable state for retries),
//! and the `traceparent` header that attempt sends, so a receiver
//! instrumented with OpenTelemetry continues the same trace; one span per
//! ingest batch.
//!
//! Spans are made with the OpenTelemetry API directly, not through
//! `tracing` spans and tracing-opentelemetry: the sampler decides when the
//! span starts, and a sampled-out attempt costs that decision and one
//! header; its attributes are never built.

use std::borrow::Cow;

use hookd_core::Attempt;
use hookd_core::trace::{remote, traceparent};
use http::HeaderValue;
use opentelemetry::KeyValue;
use opentelemetry::global::{BoxedSpan, BoxedTracer};
use opentelemetry::trace::{Span, SpanKind, Status, Tracer};

use hookd_store::schedule::Claimed;

/// An attempt's span, open while the request is made.
pub struct AttemptSpan {
    span: BoxedSpan,
}

impl AttemptSpan {
    /// Opens the span of claimed delivery `c`'s attempt, a child of its producer's span when it has one.
    pub fn start(tracer: &BoxedTracer, c: &Claimed) -> Self {
        let parent = c.trace.as_deref().and_then(remote).unwrap_or_default();
        let span = tracer
            .span_builder("hookd.attempt")
            .with_kind(SpanKind::Client)
            .start_with_context(tracer, &parent);
        Self { span }
    }

    /// The `traceparent` header of this attempt (sent whether or not the
    /// span is sampled: the flags say which).
    pub fn traceparent(&self) -> HeaderValue {
        HeaderValue::from_str(&traceparent(self.span.span_context()))
            .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    }

    /// `tracestate`, when the producer sent one.
    pub fn tracestate(&self) -> Option<HeaderValue> {
        let state = self.span.span_context().trace_state().header();
        (!state.is_empty())
            .then(|| HeaderValue::from_str(&state).ok())
            .flatten()
    }

    /// (trace id, span id) for log lines.
    pub fn ids(&self) -> (String, String) {
        let sc = self.span.span_context();
        (sc.trace_id().to_string(), sc.span_id().to_string())
    }

    /// Ends the span with what happened (attributes only when it is sampled).
    pub fn finish(mut self, c: &Claimed, attempt: &Attempt, outcome: &'static str) {
        if self.span.is_recording() {
            let mut attributes = vec![
                KeyValue::new("hookd.workspace", c.endpoint.workspace.clone()),
                KeyValue::new("hookd.endpoint.id", c.endpoint.id.clone()),
                KeyValue::new("hookd.delivery.id", c.delivery_id.clone()),
                KeyValue::new("hookd.event.id", c.event_id.clone()),
                KeyValue::new("hookd.event.type", c.event_type.clone()),
                KeyValue::new("hookd.attempt.number", i64::from(attempt.number)),
                KeyValue::new("hookd.outcome", outcome),
                KeyValue::new("hookd.duration_ms", attempt.duration_ms as i64),
                KeyValue::new("http.request.method", "POST"),
            ];
            if let Some(host) = url_host(&c.endpoint.url) {
                attributes.push(KeyValue::new("server.address", host.to_string()));
            }
            if let Some(code) = attempt.status_code {
                attributes.push(KeyValue::new("http.response.status_code", i64::from(code)));
            }
            if let Some(kind) = attempt.error_kind {
                attributes.push(KeyValue::new("error.type", kind.as_str()));
            }
            self.span.set_attributes(attributes);
            if !attempt.succeeded {
                let message = attempt.error.clone().unwrap_or_default();
                self.span.set_status(Status::Error {
                    description: Cow::Owned(message),
                });
            }
        }
        self.span.end();
    }
}

/// A span for one batch of stream entries taken by ingest.
pub fn ingest_batch(tracer: &BoxedTracer, stream: &str, entries: usize) -> BoxedSpan {
    let mut span = tracer
        .span_builder("hookd.ingest")
        .with_kind(SpanKind::Consumer)
        .start(tracer);
    if span.is_recording() {
        span.set_attributes([
            KeyValue::new("messaging.system", "redis"),
            KeyValue::new("messaging.destination.name", stream.to_string()),
            KeyValue::new("messaging.batch.message_count", entries as i64),
        ]);
    }
    span
}

/// The host of an endpoint URL, for the span (never its path or query).
pub(crate) fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    Some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_alone_leaves_the_url() {
        assert_eq!(
            url_host("https://u:p@hooks.example.com:8443/a?b=c"),
            Some("hooks.example.com:8443")
        );
        assert_eq!(url_host("http://127.0.0.1:9/x"), Some("127.0.0.1:9"));
        assert_eq!(url_host("nonsense"), None);
    }
}
