//! hookd-admin: the admin HTTP API that runs inside `hookd serve`.
//!
//! - [`auth`]: bearer keys, scopes, workspaces, the per-key rate limit;
//! - [`error`] and [`extract`]: the `{code, message, issues}` error shape and
//!   extractors that fail in it;
//! - [`actions`]: what an operator does (endpoints, keys, recovery), shared
//!   with the `hookd` CLI; the handlers only translate HTTP;
//! - [`endpoints`], [`deliveries`], [`jobs`], [`event_types`], [`events`],
//!   [`keys`], [`workspaces`], [`audit`]: the resources under `/api/v1`;
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`;
//! - [`reference`]: the API reference pages `/docs` and `/swagger`;
//! - [`requests`]: every request's id, span and log line;
//! - [`listener`]: accepting connections (timeouts, a cap, descriptors
//!   kept for delivery);
//! - [`console`]: the SRE console at `/console` (a page over `/api/v1`).
//!
//! Every `/api/v1` route is declared once, with its OpenAPI description
//! (utoipa), and [`router`] serves exactly the routes [`openapi`] documents;
//! `/openapi.json` and the reference pages at `/docs` and `/swagger` read
//! the same document.

pub mod actions;
pub mod audit;
pub mod auth;
pub mod console;
pub mod deliveries;
pub mod endpoints;
pub mod error;
pub mod event_types;
pub mod events;
pub mod extract;
pub mod jobs;
pub mod keys;
pub mod listener;
pub mod ops;
pub mod reference;
pub mod requests;
pub mod schema;
pub mod workspaces;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use hookd_core::EventLimits;
use hookd_core::heartbeat::Heartbeat;
use hookd_store::Store;
use tokio::sync::watch;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// An event type declared in configuration.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct CatalogEntry {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// JSON Schema of the event's `data`.
    #[serde(default)]
    pub schema: Option<serde_json::Value>,
}

/// Typed settings of the admin API (the binary reads them from `[admin]`).
#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub bind: SocketAddr,
    /// Requests per key per `rate_window`.
    pub rate_limit: u32,
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
    pub endpoint_policy: actions::EndpointPolicy,
    /// How new API keys are made (their prefix).
    pub key_policy: actions::KeyPolicy,
    /// The ingest loop must have reported within this for `/readyz`.
    pub ready_within: Duration,
    /// How often the queue figures `/metrics` shows are read from Redis.
    pub stats_interval: Duration,
    /// The signed requests' header prefix (`X-Hookd`), to show what an attempt sent.
    pub header_prefix: String,
    /// Connection timeouts and cap.
    pub listener: listener::ListenerSettings,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Delivery history: Redis, and PostgreSQL when it is configured.
    pub history: hookd_history::merged::HistoryReader,
    /// Whether history ships to PostgreSQL (`None`: not configured), for `/readyz`.
    pub shipping: Option<std::sync::Arc<hookd_history::shipper::ShipHealth>>,
    pub settings: Arc<AdminSettings>,
    /// Beaten by the ingest loop; `/readyz` checks it.
    pub heartbeat: Heartbeat,
    /// The daemon's counters and histograms, rendered by `/metrics`.
    pub registry: prometheus::Registry,
    /// Queue figures for `/metrics`, refreshed by [`serve`] on an interval.
    pub figures: ops::QueueFigures,
    /// When this daemon last wrote each key's `last_used_at`.
    pub key_use: auth::KeyUse,
    /// Request spans, when tracing is on.
    pub spans: hookd_delivery::trace::Spans,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "hookd admin API",
        description = "Endpoints, event types, delivery history, redelivery and recovery, pause/resume, secret rotation, API keys. Every error is {code, message, issues}."
    ),
    security(("bearer" = [])),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("hookd_<env>_<secret>")
                    .description(Some(
                        "An API key made by `hookd keys create` or POST /api/v1/workspaces/{ws}/keys.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The `/api/v1` routes (behind the key check) and the open ops routes.
fn routers() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let api = OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(workspaces::list))
        .routes(routes!(event_types::list))
        .routes(routes!(event_types::put))
        .routes(routes!(event_types::list_in_workspace))
        .routes(routes!(endpoints::create, endpoints::list))
        .routes(routes!(
            endpoints::get,
            endpoints::update,
            endpoints::delete
        ))
        .routes(routes!(endpoints::pause))
        .routes(routes!(endpoints::resume))
        .routes(routes!(endpoints::rotate_secret))
        .routes(routes!(endpoints::recover))
        .routes(routes!(deliveries::list))
        .routes(routes!(deliveries::get))
        .routes(routes!(deliveries::redeliver))
        .routes(routes!(deliveries::request))
        .routes(routes!(jobs::job))
        .routes(routes!(jobs::jobs))
        .routes(routes!(events::publish))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::revoke))
        .routes(routes!(audit::list));
    let ops = OpenApiRouter::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi_json));
    (api, ops)
}

/// The complete OpenAPI document.
pub fn openapi() -> OpenApi {
    let (api, ops) = routers();
    let mut doc = api.split_for_parts().1;
    doc.merge(ops.split_for_parts().1);
    schema::add_common_responses(&mut doc);
    doc
}

/// The whole admin HTTP surface.
pub fn router(state: AppState) -> Router {
    let (api, ops) = routers();
    let (api, mut doc) = api.split_for_parts();
    let (ops, ops_doc) = ops.split_for_parts();
    doc.merge(ops_doc);
    schema::add_common_responses(&mut doc);
    let api = api.layer(from_fn_with_state(state.clone(), auth::guard));
    let max_body = state.settings.max_body_bytes;
    Router::new()
        .merge(api)
        .merge(ops)
        .route("/console", get(console::page))
        .route("/console/app.js", get(console::script))
        .route("/console/console.css", get(console::style))
        .route("/docs", get(reference::docs))
        .route("/docs/scalar.js", get(reference::scalar_script))
        .route("/swagger", get(reference::swagger))
        .route(
            "/swagger/swagger-ui-bundle.js",
            get(reference::swagger_script),
        )
        .route("/swagger/swagger-ui.css", get(reference::swagger_css))
        .route("/swagger/init.js", get(reference::swagger_init))
        .layer(axum::Extension(Arc::new(doc)))
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(from_fn_with_state(state.clone(), deadline))
        .layer(from_fn_with_state(state.clone(), requests::observe))
        .with_state(state)
}

/// Answers 503 `timeout` when a request takes longer than `[admin] request_timeout`.
async fn deadline(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(state.settings.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => error::ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took longer than [admin] request_timeout; retry",
        )
        .into_response(),
    }
}

/// Serves the API on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    tokio::spawn(state.figures.clone().refresh(
        state.store.clone(),
        state.settings.group.clone(),
        state.settings.stats_interval,
        shutdown.clone(),
    ));
    let settings = state.settings.listener;
    listener::serve(listener, router(state), settings, shutdown).await
}
