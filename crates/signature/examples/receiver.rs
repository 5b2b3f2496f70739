//! A complete hookd receiver in Rust: axum, the `VerifiedWebhook` extractor
//! of `hookd-signature` (feature `axum`), and deduplication by event id.
//!
//! `HOOKD_SECRET=hks_... cargo run -p hookd-signature --features axum --example receiver`
//! listens on 127.0.0.1:9000.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::FromRef;
use axum::http::StatusCode;
use hookd_signature::Verifier;
use hookd_signature::axum::VerifiedWebhook;

#[derive(Clone)]
struct App {
    verifier: Verifier,
    // Use a store with expiry (Redis SET NX EX) in production.
    seen: Arc<Mutex<HashSet<String>>>,
}

impl FromRef<App> for Verifier {
    fn from_ref(app: &App) -> Verifier {
        app.verifier.clone()
    }
}

// The extractor has already answered 401 to anything that does not verify.
async fn hook(
    axum::extract::State(app): axum::extract::State<App>,
    webhook: VerifiedWebhook,
) -> StatusCode {
    let event_id = webhook.event_id.unwrap_or_default();
    let first_time = app
        .seen
        .lock()
        .map(|mut seen| seen.insert(event_id.clone()))
        .unwrap_or(true);
    if first_time {
        // Delivery is at least once: do the work once per event id.
        println!(
            "event {event_id}: {}",
            String::from_utf8_lossy(&webhook.body)
        );
    }
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // During a secret rotation, give both secrets: Verifier::with_secrets([new, old]).
    let secret = std::env::var("HOOKD_SECRET").map_err(|_| "set HOOKD_SECRET")?;
    let app = App {
        verifier: Verifier::new(secret),
        seen: Default::default(),
    };
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
    axum::serve(listener, router).await?;
    Ok(())
}
