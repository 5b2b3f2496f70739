//! Who is calling: the bearer key checked against its stored hash (401 when
//! missing, malformed, unknown, revoked or expired), when it was last used
//! (written at most once a minute per key), the rate limit with its
//! `X-RateLimit-*` headers on every answer (per key; per client address for
//! requests without a valid key; 429 past it), and scope/workspace checks (403).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hookd_core::{ApiKey, Scope, api_key, time};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The authenticated key of a request, and the request's id.
#[derive(Debug, Clone)]
pub struct Caller(pub ApiKey, pub Option<String>);

impl Caller {
    /// Who is making changes, for the audit log.
    pub fn actor(&self) -> hookd_store::audit::Actor {
        hookd_store::audit::Actor {
            id: self.0.id.clone(),
            name: self.0.name.clone(),
            request_id: self.1.clone(),
        }
    }

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

/// When this daemon last recorded each key's use: `last_used_at` is written
/// at most once a minute per key, so it costs nothing per request.
#[derive(Clone, Default)]
pub struct KeyUse(Arc<Mutex<HashMap<String, i64>>>);

impl KeyUse {
    /// Whether a use at `now_ms` should be written (and notes it if so).
    fn due(&self, key_id: &str, now_ms: i64) -> bool {
        const EVERY_MS: i64 = 60_000;
        let Ok(mut last) = self.0.lock() else {
            return false;
        };
        match last.get(key_id) {
            Some(at) if now_ms - at < EVERY_MS => false,
            _ => {
                // Bounded: keys not seen for a while are forgotten.
                if last.len() > 100_000 {
                    last.retain(|_, at| now_ms - *at < EVERY_MS);
                }
                last.insert(key_id.to_string(), now_ms);
                true
            }
        }
    }
}

async fn authenticate(state: &AppState, headers: &HeaderMap, now_ms: i64) -> ApiResult<ApiKey> {
    // The key shape named in refusals (built only when refusing).
    let shape = || format!("Bearer {}_<env>_<secret>", state.settings.key_policy.prefix);
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized(format!("send Authorization: {}", shape())))?;
    let token = value
        .to_str()
        .ok()
        // (Auth schemes are case-insensitive: `bearer` is `Bearer`.)
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| api_key::is_well_formed(t))
        .ok_or_else(|| {
            ApiError::unauthorized(format!("malformed API key: expected {}", shape()))
        })?;
    let key = state
        .store
        .api_key_by_secret(token)
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown API key"))?;
    if key.revoked_at_ms.is_some() {
        return Err(ApiError::unauthorized("this API key was revoked"));
    }
    if let Some(at) = key.expires_at_ms.filter(|at| *at <= now_ms) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "key_expired",
            format!(
                "this API key expired at {}; make a new one",
                time::format_rfc3339_ms(at)
            ),
        ));
    }
    Ok(key)
}

/// Middleware on every `/api/v1` route.
pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let now = time::now_ms();
    let authenticated = authenticate(&state, req.headers(), now).await;
    // Requests without a valid key are counted by client address, so a 401
    // carries the same headers and a flood of them meets the same limit.
    let bucket = match &authenticated {
        Ok(key) => key.id.clone(),
        Err(_) => {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "unknown".into());
            format!("ip:{peer}")
        }
    };
    let limit = state.settings.rate_limit;
    let window = state.settings.rate_window.as_millis().max(1) as i64;
    let start = now - now.rem_euclid(window);
    let reset_secs = ((start + window - now) as u64).div_ceil(1000);
    let count = match state.store.count_request(&bucket, start, window).await {
        Ok(n) => n,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut response = if count > u64::from(limit) {
        ApiError {
            retry_after: Some(reset_secs),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("more than {limit} requests in the current window"),
            )
        }
        .into_response()
    } else {
        match authenticated {
            Err(e) => e.into_response(),
            Ok(key) => {
                if state.key_use.due(&key.id, now) {
                    let (store, id) = (state.store.clone(), key.id.clone());
                    tokio::spawn(async move {
                        if let Err(e) = store.touch_api_key(&id, now).await {
                            tracing::debug!(error = %e, "could not record an API key's use");
                        }
                    });
                }
                let info = crate::requests::CallerInfo {
                    key_id: key.id.clone(),
                    workspace: key.workspace.clone(),
                };
                let request_id = req
                    .extensions()
                    .get::<crate::requests::RequestId>()
                    .map(|r| r.0.clone());
                req.extensions_mut().insert(Caller(key, request_id));
                let mut response = next.run(req).await;
                response.extensions_mut().insert(info);
                response
            }
        }
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
