//! Who is calling: the bearer key checked against its stored hash (401 when
//! missing, malformed, unknown or revoked), the per-key rate limit with its
//! `X-RateLimit-*` headers (429 past it), and scope/workspace checks (403).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hookd_core::{ApiKey, Scope, api_key, time};

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The authenticated key of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub ApiKey);

impl Caller {
    /// Whether the key may act on `workspace` with `scope` (no error: for
    /// deciding what a view shows).
    pub fn may(&self, workspace: &str, scope: Scope) -> bool {
        self.0.workspace == workspace && self.0.scope.allows(scope)
    }

    /// Allows the request only on the key's own workspace and with at least `scope`.
    pub fn require(&self, workspace: &str, scope: Scope) -> ApiResult<()> {
        if self.0.workspace != workspace {
            return Err(ApiError::forbidden(format!(
                "this key belongs to another workspace than {workspace:?}"
            )));
        }
        if !self.0.scope.allows(scope) {
            return Err(ApiError::forbidden(format!(
                "this key has scope {}; this needs {}",
                self.0.scope.as_str(),
                scope.as_str()
            )));
        }
        Ok(())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("missing API key"))
    }
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> ApiResult<ApiKey> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer hookd_<env>_<secret>"))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| api_key::is_well_formed(t))
        .ok_or_else(|| {
            ApiError::unauthorized("malformed API key: expected Bearer hookd_<env>_<secret>")
        })?;
    let key = state
        .store
        .api_key_by_secret(token)
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown API key"))?;
    if key.revoked_at_ms.is_some() {
        return Err(ApiError::unauthorized("this API key was revoked"));
    }
    Ok(key)
}

/// Middleware on every `/api/v1` route.
pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let key = match authenticate(&state, req.headers()).await {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let limit = state.settings.rate_limit;
    let window = state.settings.rate_window.as_millis().max(1) as i64;
    let now = time::now_ms();
    let start = now - now.rem_euclid(window);
    let reset_secs = ((start + window - now) as u64).div_ceil(1000);
    let count = match state.store.count_request(&key.id, start, window).await {
        Ok(n) => n,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut response = if count > u64::from(limit) {
        ApiError {
            retry_after: Some(reset_secs),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("this key made more than {limit} requests in the current window"),
            )
        }
        .into_response()
    } else {
        req.extensions_mut().insert(Caller(key));
        next.run(req).await
    };
    let h = response.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(limit));
    h.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(u64::from(limit).saturating_sub(count)),
    );
    h.insert("x-ratelimit-reset", HeaderValue::from(reset_secs));
    response
}
