//! The API reference pages, served from the binary so they work where the
//! daemon has no internet access: `/docs` (Scalar) and `/swagger` (Swagger
//! UI), both reading `/openapi.json`. Their scripts are vendored from npm
//! with their licenses under `assets/` (`scripts/vendor-api-reference.sh`),
//! gzipped as every browser accepts them; no page asks anything of another
//! host (Scalar's web fonts, developer toolbar and AI agent, and Swagger
//! UI's online validator, are turned off).

use axum::http::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE};
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
  <script>
    window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", validatorUrl: null });
  </script>
</body>
</html>
"##;

fn page(html: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
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

pub async fn swagger_script() -> impl IntoResponse {
    gzipped(
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/swagger/swagger-ui-bundle.js.gz"),
    )
}

pub async fn swagger_css() -> impl IntoResponse {
    gzipped(
        "text/css; charset=utf-8",
        include_bytes!("../assets/swagger/swagger-ui.css.gz"),
    )
}
