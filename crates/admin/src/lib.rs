//! hookd-admin: the admin HTTP API that runs inside `hookd serve`.
//!
//! - [`auth`]: bearer keys, scopes, workspaces, the per-key rate limit;
//! - [`error`] and [`extract`]: the `{code, message, issues}` error shape and
//!   extractors that fail in it;
//! - [`state`]: what every handler can reach ([`AppState`]) and the typed
//!   settings ([`AdminSettings`]);
//! - [`endpoints`], [`deliveries`], [`jobs`], [`event_types`], [`events`],
//!   [`keys`], [`workspaces`], [`audit`]: the resources under `/api/v1`;
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`;
//! - [`reference`]: the API reference pages `/docs` and `/swagger`;
//! - [`requests`]: every request's id, span and log line;
//! - [`listener`]: accepting connections (timeouts, a cap, descriptors
//!   kept for delivery);
//! - [`console`]: the SRE console at `/console` (a page over `/api/v1`).
//!
//! What an operator does, and the views answered, are hookd-control's (the
//! CLI calls the same functions): the handlers here only translate HTTP.
//!
//! Every `/api/v1` route is declared once, with its OpenAPI description
//! (utoipa), and [`router`] serves exactly the routes [`openapi`] documents;
//! `/openapi.json` and the reference pages at `/docs` and `/swagger` read
//! the same document.

#![warn(missing_docs)]

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
pub mod state;
pub mod workspaces;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use tokio::sync::watch;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use state::{AdminSettings, AppState};

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
        .routes(routes!(endpoints::test))
        .routes(routes!(endpoints::activity))
        .routes(routes!(deliveries::list))
        .routes(routes!(deliveries::get))
        .routes(routes!(deliveries::redeliver))
        .routes(routes!(deliveries::skip))
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
        .route("/console/", get(console::page))
        .route("/console/app.js", get(console::script))
        .route("/console/console.css", get(console::style))
        .route("/console/favicon.svg", get(console::icon))
        .route("/favicon.ico", get(console::icon))
        .route("/docs", get(reference::docs))
        .route("/docs/", get(reference::docs))
        .route("/docs/scalar.js", get(reference::scalar_script))
        .route("/swagger", get(reference::swagger))
        .route("/swagger/", get(reference::swagger))
        .route(
            "/swagger/swagger-ui-bundle.js",
            get(reference::swagger_script),
        )
        .route("/swagger/swagger-ui.css", get(reference::swagger_css))
        .route("/swagger/init.js", get(reference::swagger_init))
        .layer(axum::Extension(Arc::new(schema::published(&doc))))
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
