//! W3C trace context carried by an event: a stream entry's `traceparent`
//! and `tracestate` fields (or the `traceparent` header of `POST
//! .../events`). They are not payload and never enter the envelope; an
//! attempt's span continues the producer's trace from them.
//!
//! An invalid `traceparent` is ignored, as the W3C recommendation says
//! (the event starts a trace of its own); so is a `tracestate` without a
//! valid `traceparent`, or one over 512 bytes.
//!
//! Also the bridge to OpenTelemetry both the delivery workers and the admin
//! API use: the process's tracer, a span's `traceparent`, and a producer's
//! context as a remote parent.

use std::sync::Arc;

use opentelemetry::Context;
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

/// The tracer every span of this process comes from (`None`: tracing off).
pub type Spans = Option<Arc<BoxedTracer>>;

/// A valid `traceparent` (and the `tracestate` that came with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// 32 lowercase hex digits, not all zero.
    pub trace_id: String,
    /// 16 lowercase hex digits, not all zero: the producer's span.
    pub span_id: String,
    /// The flags byte (bit 0: sampled).
    pub flags: u8,
    /// The producer's `tracestate`, kept only with a valid `traceparent`.
    pub tracestate: Option<String>,
}

impl TraceParent {
    /// Parses `00-<trace id>-<span id>-<flags>` (a later version's extra
    /// fields after a dash are allowed and ignored, version `ff` is not).
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let mut parts = traceparent.trim().split('-');
        let version = parts.next()?;
        let trace_id = parts.next()?;
        let span_id = parts.next()?;
        let flags = parts.next()?;
        let hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        if !hex(trace_id, 32) || !hex(span_id, 16) || !hex(flags, 2) {
            return None;
        }
        if trace_id.bytes().all(|b| b == b'0') || span_id.bytes().all(|b| b == b'0') {
            return None;
        }
        Some(Self {
            trace_id: trace_id.to_string(),
            span_id: span_id.to_string(),
            flags: u8::from_str_radix(flags, 16).ok()?,
            tracestate: tracestate
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 512)
                .map(str::to_string),
        })
    }

    /// The producer asked for this trace to be recorded.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The `traceparent` value (version 00).
    pub fn header(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.span_id, self.flags)
    }
}

/// The W3C `traceparent` of a span.
pub fn traceparent(sc: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    )
}

/// The producer's span as a remote parent.
pub fn remote(tp: &TraceParent) -> Option<Context> {
    let state = tp
        .tracestate
        .as_deref()
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    let sc = SpanContext::new(
        TraceId::from_hex(&tp.trace_id).ok()?,
        SpanId::from_hex(&tp.span_id).ok()?,
        TraceFlags::new(tp.flags),
        true,
        state,
    );
    Some(Context::new().with_remote_span_context(sc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_traceparents() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceParent::parse(tp, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id, "00f067aa0ba902b7");
        assert!(t.sampled());
        assert_eq!(t.header(), tp);
        assert_eq!(t.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad, None), None, "{bad}");
        }
        // A later version may carry more fields.
        assert!(
            TraceParent::parse(
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x",
                None
            )
            .is_some_and(|t| !t.sampled())
        );
    }
}
