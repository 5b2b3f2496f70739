//! Every admin request: its id (`X-Request-Id`: the caller's when it sends
//! a sane one, else a new one, returned either way), a server span
//! (OpenTelemetry, when tracing is on; the child of the caller's
//! `traceparent`), and one log line with method, route template, status,
//! key id, workspace, duration and request id (INFO for `/api/v1`, DEBUG
//! for probes and scrapes). No header value other than the request id and
//! trace context is read, so no secret reaches a log line or a span.

use std::borrow::Cow;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use hookd_core::trace::TraceParent;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span, SpanKind, Status, Tracer};

use crate::state::AppState;

/// The request's id, for handlers that record it (audit entries).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The request span's `traceparent`, for `POST .../events`: the event's
/// attempts continue the trace under the request.
#[derive(Debug, Clone)]
pub struct RequestTrace(pub String);

/// Who called, put on the response by the key check for the log line.
#[derive(Debug, Clone)]
pub struct CallerInfo {
    /// The calling key's id.
    pub key_id: String,
    /// The calling key's workspace.
    pub workspace: String,
}

fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_string())
}

/// Gives every request an id (`X-Request-Id`, kept when the client sent a
/// sane one), a span when tracing is on, and one log line when it is answered.
pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(sane_request_id)
        .unwrap_or_else(|| hookd_core::id::new_id("req_"));
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(no route)".to_string(), |p| p.as_str().to_string());
    let mut span = state.spans.as_deref().map(|tracer| {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let parent = header("traceparent")
            .and_then(|tp| TraceParent::parse(tp, header("tracestate")))
            .and_then(|tp| hookd_core::trace::remote(&tp))
            .unwrap_or_default();
        tracer
            .span_builder(format!("{method} {route}"))
            .with_kind(SpanKind::Server)
            .start_with_context(tracer, &parent)
    });
    if let Some(span) = &span {
        let tp = hookd_core::trace::traceparent(span.span_context());
        req.extensions_mut().insert(RequestTrace(tp));
    }
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let mut response = next.run(req).await;
    let status = response.status().as_u16();
    let caller = response.extensions().get::<CallerInfo>().cloned();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    let (key_id, workspace) = caller
        .as_ref()
        .map_or(("", ""), |c| (c.key_id.as_str(), c.workspace.as_str()));
    // Two decimals (`1.13`, not `1.1309989999999999`).
    let duration_ms = (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
    // Only when tracing is on: no empty ids in the log line otherwise.
    let ids = span.as_ref().map(|s| {
        let sc = s.span_context();
        (sc.trace_id().to_string(), sc.span_id().to_string())
    });
    let trace_id = ids.as_ref().map(|(t, _)| t.as_str());
    let span_id = ids.as_ref().map(|(_, s)| s.as_str());
    if let Some(span) = span.as_mut() {
        if span.is_recording() {
            span.set_attributes([
                KeyValue::new("http.request.method", method.clone()),
                KeyValue::new("http.route", route.clone()),
                KeyValue::new("http.response.status_code", i64::from(status)),
                KeyValue::new("hookd.key.id", key_id.to_string()),
                KeyValue::new("hookd.workspace", workspace.to_string()),
                KeyValue::new("hookd.request_id", request_id.clone()),
            ]);
            if status >= 500 {
                span.set_status(Status::Error {
                    description: Cow::Owned(format!("answered {status}")),
                });
            }
        }
        span.end();
    }
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                method = %method,
                route = %route,
                status,
                key_id,
                workspace,
                duration_ms,
                request_id = %request_id,
                trace_id,
                span_id,
                "admin request"
            )
        };
    }
    if route.starts_with("/api/") {
        line!(info);
    } else {
        line!(debug);
    }
    response
}
