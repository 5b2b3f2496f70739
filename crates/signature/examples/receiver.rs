//! A complete hookd receiver in Rust: axum, the raw body, `hookd-signature`,
//! and deduplication by event id.
//!
//! `HOOKD_SECRET=hks_... cargo run -p hookd-signature --example receiver`
//! listens on 127.0.0.1:9000.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hookd_signature::Verifier;

#[derive(Clone)]
struct App {
    verifier: Verifier,
    // Use a store with expiry (Redis SET NX EX) in production.
    seen: Arc<Mutex<HashSet<String>>>,
}

async fn hook(State(app): State<App>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // Verify the raw bytes, before parsing anything.
    if let Err(e) = app.verifier.verify(
        header("x-hookd-timestamp"),
        header("x-hookd-signature"),
        &body,
    ) {
        return (StatusCode::UNAUTHORIZED, e.to_string());
    }
    let event_id = header("x-hookd-event-id").unwrap_or_default().to_string();
    let first_time = app
        .seen
        .lock()
        .map(|mut seen| seen.insert(event_id.clone()))
        .unwrap_or(true);
    if first_time {
        // Delivery is at least once: do the work once per event id.
        println!("event {event_id}: {}", String::from_utf8_lossy(&body));
    }
    (StatusCode::NO_CONTENT, String::new())
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
