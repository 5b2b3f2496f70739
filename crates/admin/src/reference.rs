//! The API reference pages, served from the binary so they work where the
//! daemon has no internet access: `/docs` (Scalar) and `/swagger` (Swagger
//! UI), both reading `/openapi.json`. Their scripts are vendored from npm
//! with their licenses under `assets/` (`scripts/vendor-api-reference.sh`),
//! gzipped as every browser accepts them; no page asks anything of another
//! host (Scalar's web fonts, developer toolbar and AI agent, and Swagger
//! UI's online validator, are turned off).

use axum::http::header::{
    CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::response::IntoResponse;

const DOCS: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>hookd admin API</title>
</head>
<body>
  <script id="api-reference" data-url="/openapi.json"
    data-configuration='{"withDefaultFonts": false, "hideClientButton": true, "showDeveloperTools": "never", "agent": {"disabled": true}}'></script>
  <script src="/docs/scalar.js"></script>
</body>
</html>
"#;

const SWAGGER: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>hookd admin API (Swagger UI)</title>
  <link rel="stylesheet" href="/swagger/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/swagger/swagger-ui-bundle.js"></script>
  <script src="/swagger/init.js"></script>
</body>
</html>
"##;

/// Swagger UI's start, a script of its own so the page needs no inline script.
const SWAGGER_INIT: &str = r##"window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", validatorUrl: null });
"##;

/// The pages' policy: scripts and everything else from this host only (no
/// inline script), styles inline too (both references set them), and no
/// framing by another page (clickjacking).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn page(html: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
            (CONTENT_SECURITY_POLICY, CSP),
            (X_FRAME_OPTIONS, "DENY"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
}

fn gzipped(content_type: &'static str, bytes: &'static [u8]) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_ENCODING, "gzip"),
            (CACHE_CONTROL, "public, max-age=86400"),
        ],
        bytes,
    )
}

/// `/docs`: Scalar's API reference.
pub async fn docs() -> impl IntoResponse {
    page(DOCS)
}

/// The vendored Scalar script of `/docs`.
pub async fn scalar_script() -> impl IntoResponse {
    gzipped(
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/scalar/standalone.js.gz"),
    )
}

/// `/swagger`: Swagger UI.
pub async fn swagger() -> impl IntoResponse {
    page(SWAGGER)
}

/// The vendored Swagger UI bundle of `/swagger`.
pub async fn swagger_script() -> impl IntoResponse {
    gzipped(
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/swagger/swagger-ui-bundle.js.gz"),
    )
}

/// The script that points Swagger UI at `/openapi.json`.
pub async fn swagger_init() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SWAGGER_INIT,
    )
}

/// The vendored Swagger UI style sheet.
pub async fn swagger_css() -> impl IntoResponse {
    gzipped(
        "text/css; charset=utf-8",
        include_bytes!("../assets/swagger/swagger-ui.css.gz"),
    )
}
