//! What every handler can reach ([`AppState`]), and the admin API's typed
//! settings (the binary reads them from `[admin]`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hookd_control::endpoints::EndpointPolicy;
use hookd_control::event_types::CatalogEntry;
use hookd_control::keys::KeyPolicy;
use hookd_core::EventLimits;
use hookd_core::heartbeat::Heartbeat;
use hookd_store::Store;

/// Typed settings of the admin API (the binary reads them from `[admin]`).
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// Where the API listens.
    pub bind: SocketAddr,
    /// Requests per key per `rate_window`.
    pub rate_limit: u32,
    /// The window `rate_limit` counts in.
    pub rate_window: Duration,
    /// Largest request body accepted (413 past it).
    pub max_body_bytes: usize,
    /// Longest a request may take before it is answered 503 `timeout`.
    pub request_timeout: Duration,
    /// Event types declared in configuration.
    pub catalog: Vec<CatalogEntry>,
    /// The consumer group, for lag and pending figures.
    pub group: String,
    /// What a published event must satisfy (the same limits ingest applies).
    pub event_limits: EventLimits,
    /// What an endpoint is held to (endpoints whose URL is a literal
    /// internal IP are refused, 422).
    pub endpoint_policy: EndpointPolicy,
    /// How new API keys are made (their prefix).
    pub key_policy: KeyPolicy,
    /// The ingest loop must have reported within this for `/readyz`.
    pub ready_within: Duration,
    /// How often the queue figures `/metrics` shows are read from Redis.
    pub stats_interval: Duration,
    /// The signed requests' header prefix (`X-Hookd`), to show what an attempt sent.
    pub header_prefix: String,
    /// Connection timeouts and cap.
    pub listener: crate::listener::ListenerSettings,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Redis.
    pub store: Store,
    /// Delivery history: Redis, and PostgreSQL when it is configured.
    pub history: hookd_history::merged::HistoryReader,
    /// Whether history ships to PostgreSQL (`None`: not configured), for `/readyz`.
    pub shipping: Option<std::sync::Arc<hookd_history::shipper::ShipHealth>>,
    /// The typed `[admin]` settings.
    pub settings: Arc<AdminSettings>,
    /// Beaten by the ingest loop; `/readyz` checks it.
    pub heartbeat: Heartbeat,
    /// The daemon's counters and histograms, rendered by `/metrics`.
    pub registry: prometheus::Registry,
    /// Queue figures for `/metrics`, refreshed by [`serve`] on an interval.
    pub figures: crate::ops::QueueFigures,
    /// When this daemon last wrote each key's `last_used_at`.
    pub key_use: crate::auth::KeyUse,
    /// Request spans, when tracing is on.
    pub spans: hookd_core::trace::Spans,
    /// Sends test events (the delivery client's settings and policy).
    pub prober: hookd_control::probes::Prober,
}
