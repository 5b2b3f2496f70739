//! The SRE console at `/console`: one HTML page, a stylesheet and a
//! JavaScript module (`console/` in this crate), embedded in the binary,
//! calling the same `/api/v1` routes with the same key and scopes as curl
//! and the CLI. No build step, no library, nothing fetched from another
//! host: the Content-Security-Policy allows this origin only.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

/// This origin only: scripts, styles, and the API calls (`connect-src`);
/// no framing (clickjacking), no inline script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "no-cache"),
            (axum::http::header::CONTENT_SECURITY_POLICY, CSP),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (axum::http::header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}

/// `/console`: the page.
pub async fn page() -> impl IntoResponse {
    asset(
        "text/html; charset=utf-8",
        include_str!("../console/index.html"),
    )
}

/// `/console/app.js`: the page's script.
pub async fn script() -> impl IntoResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../console/app.js"),
    )
}

/// `/console/console.css`: its style sheet.
pub async fn style() -> impl IntoResponse {
    asset(
        "text/css; charset=utf-8",
        include_str!("../console/console.css"),
    )
}

/// `/console/favicon.svg` (and `/favicon.ico`): the console's icon.
pub async fn icon() -> impl IntoResponse {
    asset("image/svg+xml", include_str!("../console/favicon.svg"))
}
