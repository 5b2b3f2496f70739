//! Routes for operators and orchestrators, without a key: `/healthz`
//! (process alive), `/readyz` (Redis answers and the consumer is running),
//! `/metrics` (Prometheus text), `/openapi.json`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use hookd_core::time;
use hookd_store::stats::QueueStats;
use prometheus::{Encoder, Gauge, Registry, TextEncoder};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// What `/healthz` and `/readyz` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready`, `degraded` (delivering, but history is not reaching
    /// PostgreSQL) or `not_ready`.
    pub status: String,
    /// What failed, when not ready.
    pub problems: Vec<String>,
}

/// The process is alive.
#[utoipa::path(get, operation_id = "healthz", path = "/healthz", tag = "ops", security(()), responses((status = 200, description = "OK", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        problems: Vec::new(),
    })
}

/// Redis answers and the ingest consumer has run recently.
#[utoipa::path(get, operation_id = "readyz", path = "/readyz", tag = "ops", security(()),
    responses((status = 200, description = "OK", body = Health), (status = 503, description = "Redis is unavailable (`store_unavailable`)", body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let mut problems = Vec::new();
    if let Err(e) = state.store.ping().await {
        problems.push(format!("redis: {e}"));
    }
    let within = state.settings.ready_within.as_millis() as i64;
    match state.heartbeat.last_ms() {
        None => problems.push("consumer: not started".into()),
        Some(t) if time::now_ms() - t > within => {
            problems.push(format!("consumer: last ran {} ms ago", time::now_ms() - t));
        }
        Some(_) => {}
    }
    // History not reaching PostgreSQL degrades history, not delivery: ready.
    let degraded = state.shipping.as_ref().and_then(|s| s.problem());
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = match (problems.is_empty(), &degraded) {
        (false, _) => "not_ready",
        (true, Some(_)) => "degraded",
        (true, None) => "ready",
    };
    problems.extend(degraded);
    (
        status,
        Json(Health {
            status: word.into(),
            problems,
        }),
    )
}

fn gauge_f64(registry: &Registry, name: &str, help: &str, value: f64) {
    if let Ok(g) = Gauge::new(name, help) {
        g.set(value);
        let _ = registry.register(Box::new(g));
    }
}

fn gauge(registry: &Registry, name: &str, help: &str, value: u64) {
    gauge_f64(registry, name, help, value as f64);
}

/// Prometheus metrics: the daemon's counters and histograms, and queue
/// figures read from Redis on an interval ([`QueueFigures`]).
#[utoipa::path(get, operation_id = "metrics", path = "/metrics", tag = "ops", security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut families = state.registry.gather();
    let scrape = Registry::new();
    // Figures refreshed on an interval (`QueueFigures`): a scrape costs Redis nothing.
    let (latest, age) = state.figures.latest();
    if let Some(age) = age {
        gauge_f64(
            &scrape,
            "hookd_queue_figures_age_seconds",
            "How old the queue figures below are (they are read from Redis on an interval).",
            age.as_secs_f64(),
        );
    }
    match latest {
        Some(s) => {
            gauge(
                &scrape,
                "hookd_stream_length",
                "Entries in the event stream(s).",
                s.stream_length,
            );
            gauge(
                &scrape,
                "hookd_stream_lag",
                "Stream entries not yet read by the consumer group.",
                s.lag,
            );
            gauge(
                &scrape,
                "hookd_stream_pending",
                "Stream entries read but not yet acknowledged.",
                s.pending,
            );
            gauge(
                &scrape,
                "hookd_due_deliveries",
                "Deliveries in due queues (waiting or in flight).",
                s.due,
            );
            gauge_f64(
                &scrape,
                "hookd_oldest_due_age_seconds",
                "How long the longest-waiting due delivery has been due (0: none is); retries scheduled for later are not counted.",
                s.oldest_due_ms
                    .map_or(0.0, |at| (time::now_ms() - at).max(0) as f64 / 1000.0),
            );
            gauge(
                &scrape,
                "hookd_held_deliveries",
                "Deliveries held by paused endpoints.",
                s.held,
            );
            gauge(
                &scrape,
                "hookd_endpoints",
                "Registered endpoints.",
                s.endpoints,
            );
            gauge(
                &scrape,
                "hookd_paused_endpoints",
                "Paused endpoints.",
                s.paused_endpoints,
            );
            gauge(
                &scrape,
                "hookd_dead_letters",
                "Entries in the dead-letter stream.",
                s.dead_letters,
            );
            gauge(
                &scrape,
                "hookd_redis_up",
                "1 when Redis answered the last reading of the queue figures.",
                1,
            );
        }
        None => {
            gauge(
                &scrape,
                "hookd_redis_up",
                "1 when Redis answered the last reading of the queue figures.",
                0,
            );
        }
    }
    families.extend(scrape.gather());
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// This API's OpenAPI document.
#[utoipa::path(get, operation_id = "openapi_document", path = "/openapi.json", tag = "ops", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json(Extension(doc): Extension<Arc<serde_json::Value>>) -> impl IntoResponse {
    Json(doc.as_ref().clone())
}

/// Queue figures read from Redis on an interval by [`QueueFigures::refresh`],
/// so `/metrics` scrapes (however many, however often) cost Redis nothing.
#[derive(Clone, Default)]
pub struct QueueFigures(Arc<std::sync::RwLock<Option<Reading>>>);

#[derive(Clone)]
struct Reading {
    /// `None` when Redis did not answer.
    stats: Option<QueueStats>,
    at: std::time::Instant,
}

impl QueueFigures {
    /// The last figures read (`None` if that reading failed), and their age.
    pub fn latest(&self) -> (Option<QueueStats>, Option<std::time::Duration>) {
        let guard = self.0.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(r) => (r.stats.clone(), Some(r.at.elapsed())),
            None => (None, None),
        }
    }

    /// Reads the figures every `interval` until `shutdown` turns true.
    pub async fn refresh(
        self,
        store: hookd_store::Store,
        group: String,
        interval: std::time::Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let stats = match store.queue_stats(&group).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: cannot read queue figures");
                    None
                }
            };
            *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(Reading {
                stats,
                at: std::time::Instant::now(),
            });
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }
}
