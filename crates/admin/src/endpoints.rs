//! `/api/v1/workspaces/{ws}/endpoints`: create, list, read, update, delete,
//! pause and resume, secret rotation, and recovery jobs.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use std::time::Duration;

use hookd_control::activity::{self, Activity, Window};
use hookd_control::endpoints::{self, EndpointChange, EndpointView, MapChange, NewEndpoint};
use hookd_control::probes::{self, TestEvent, TestResult};
use hookd_control::recovery::{self, JobView, Recovery};
use hookd_core::endpoint::{OnGiveUp, Ordering};
use hookd_core::time::Direction;
use hookd_core::{DeliveryStatus, Endpoint, RotationSignatures, Scope, SignatureScheme};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, in_workspace};
use crate::extract::{JsonBody, QueryParams, parse_time};
use crate::state::AppState;

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// http or https. The pattern describes host names; an IP literal is
    /// accepted when it is public or [delivery] allow_networks opens it.
    #[schema(
        pattern = r"^https?://([A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*(:[0-9]{1,5})?(/[!-~]*)?$",
        max_length = 2048
    )]
    pub url: String,
    /// A name for people; shown in place of the id.
    #[schema(max_length = 1024)]
    pub description: Option<String>,
    /// Absent or `null`: every event type.
    #[schema(value_type = Option<Vec<hookd_control::schema::EventTypeName>>, min_items = 1)]
    pub event_types: Option<Vec<String>>,
    /// Extra request headers sent with every delivery (not hookd's own).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Most attempts in flight at once; default `[delivery] endpoint_concurrency`.
    #[serde(default, deserialize_with = "crate::extract::whole")]
    #[schema(minimum = 1, maximum = 100000)]
    pub max_concurrency: Option<u32>,
    /// Most attempts per second; default no limit.
    #[serde(default, deserialize_with = "crate::extract::whole")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub rate_limit: Option<u32>,
    /// Your own labels.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Default `sha256`.
    #[schema(value_type = Option<hookd_control::schema::SchemeName>)]
    pub scheme: Option<SignatureScheme>,
    /// Signatures during a rotation's grace window: `all` or `newest`;
    /// absent or `null` takes `[signing] rotation_signatures`.
    #[schema(value_type = Option<hookd_control::schema::RotationSignaturesName>)]
    pub rotation_signatures: Option<RotationSignatures>,
    /// `key`: events of one `ordering_key` arrive one at a time, in
    /// publish order (each once the one before succeeded or was given up;
    /// events without a key and other keys go in parallel). Default `none`.
    #[schema(value_type = Option<hookd_control::schema::OrderingName>)]
    pub ordering: Option<Ordering>,
    /// With `ordering: key`: `continue` (default: a given-up delivery is
    /// failed and its key goes on) or `hold` (its key waits until it is
    /// redelivered or skipped).
    #[schema(value_type = Option<hookd_control::schema::OnGiveUpName>)]
    pub ordering_on_give_up: Option<OnGiveUp>,
}

/// Absent fields stay as they are; `null` clears the optional ones
/// (`event_types: null` subscribes to every type).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    /// A new URL (http or https).
    #[schema(
        pattern = r"^https?://([A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*(:[0-9]{1,5})?(/[!-~]*)?$",
        max_length = 2048
    )]
    pub url: Option<String>,
    /// A new name; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 1024)]
    pub description: Option<Option<String>>,
    /// Event types to deliver; `null`: every type.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<hookd_control::schema::EventTypeName>>, min_items = 1)]
    pub event_types: Option<Option<Vec<String>>>,
    /// The whole set of extra headers (replaces it).
    pub headers: Option<BTreeMap<String, String>>,
    /// `null` returns to the configured default.
    #[serde(default, deserialize_with = "present_count")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 100000)]
    pub max_concurrency: Option<Option<u32>>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "present_count")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 1000000)]
    pub rate_limit: Option<Option<u32>>,
    /// The whole set of labels (replaces it).
    pub metadata: Option<BTreeMap<String, String>>,
    /// `null` returns to the configured default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<hookd_control::schema::RotationSignaturesName>)]
    pub rotation_signatures: Option<Option<RotationSignatures>>,
    /// `key` or `none`.
    #[schema(value_type = Option<hookd_control::schema::OrderingName>)]
    pub ordering: Option<Ordering>,
    /// `continue` or `hold`.
    #[schema(value_type = Option<hookd_control::schema::OnGiveUpName>)]
    pub ordering_on_give_up: Option<OnGiveUp>,
}

/// [`present`] for counts (`3.0` is 3).
fn present_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    crate::extract::whole(d).map(Some)
}

/// Tells a field sent as `null` (`Some(None)`) from one not sent (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A page of a workspace's endpoints, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    /// The endpoints of this page.
    pub data: Vec<EndpointView>,
    /// Pass as `after` for the next page; `null` at the end.
    pub next: Option<String>,
}

/// The endpoint list's page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EndpointQuery {
    /// Page size: 1 to 500 (default 100).
    #[serde(default, deserialize_with = "crate::extract::non_empty")]
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The `next` of the previous page: endpoints after this id.
    #[serde(default, deserialize_with = "crate::extract::non_empty")]
    pub after: Option<String>,
}

/// A pause.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// Why (shown and audited); default `paused through the API`.
    pub reason: Option<String>,
}

/// What a resume did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Resumed {
    /// Held deliveries released to the due queue.
    pub released: u64,
    /// The endpoint, resumed.
    pub endpoint: EndpointView,
}

/// How the old secret is retired.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the old secret keeps signing (default 86400; 0 switches at once).
    #[serde(default, deserialize_with = "crate::extract::whole")]
    #[schema(minimum = 0, maximum = 2592000)]
    pub grace_seconds: Option<u64>,
}

/// Which deliveries a recovery job queues again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    /// Deliveries created at or after: an RFC 3339 time, Unix seconds, or a
    /// duration ago (`2h`, `30m`, `7d`). Required unless `delivery_ids`
    /// names the deliveries (their window is then the default).
    pub since: Option<String>,
    /// Only these deliveries of the endpoint (as selected in a list), of
    /// those the window and `status` match.
    #[schema(max_items = 1000, min_items = 1)]
    pub delivery_ids: Option<Vec<String>>,
    /// Created at or before, in the same forms; default now.
    pub until: Option<String>,
    /// Which deliveries to re-queue (default `failed`).
    #[schema(value_type = Option<hookd_control::schema::DeliveryStatusName>)]
    pub status: Option<DeliveryStatus>,
}

/// The endpoint, if it belongs to `ws` (another workspace's id reads as not found).
pub(crate) async fn owned(state: &AppState, ws: &str, id: &str) -> ApiResult<Endpoint> {
    let read = state.store.endpoint(id).await;
    in_workspace(read, ws, |e| &e.workspace, format!("endpoint {id}"))
}

/// The view for `caller` (`with_secret` only for create and rotate): header
/// values only for keys that may write the endpoint.
async fn view(
    state: &AppState,
    caller: &Caller,
    ep: Endpoint,
    with_secret: bool,
) -> ApiResult<EndpointView> {
    let header_values = caller.may(&ep.workspace, Scope::Write);
    Ok(endpoints::view(&state.store, ep, with_secret, header_values).await?)
}

/// Register an endpoint. The response carries its signing secret, once.
#[utoipa::path(post, operation_id = "create_endpoint", path = "/api/v1/workspaces/{ws}/endpoints", tag = "endpoints",
    params(("ws" = String, Path, description = "Workspace id")),
    request_body = CreateEndpoint,
    responses((status = 201, description = "Created", body = EndpointView), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 422, description = "Validation failed: one issue per bad field (`validation_failed`)", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    JsonBody(req): JsonBody<CreateEndpoint>,
) -> ApiResult<(StatusCode, Json<EndpointView>)> {
    caller.require(&ws, Scope::Write)?;
    let ep = endpoints::create(
        &state.store,
        &caller.actor(),
        &state.settings.endpoint_policy,
        NewEndpoint {
            workspace: ws,
            url: req.url,
            description: req.description,
            event_types: req.event_types,
            headers: req.headers,
            metadata: req.metadata,
            max_concurrency: req.max_concurrency,
            rate_limit: req.rate_limit,
            scheme: req.scheme.unwrap_or_default(),
            rotation_signatures: req.rotation_signatures,
            ordering: req.ordering.unwrap_or_default(),
            ordering_on_give_up: req.ordering_on_give_up.unwrap_or_default(),
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointView::new(ep, 0, true, true)),
    ))
}

/// The workspace's endpoints, oldest first, a page at a time.
#[utoipa::path(get, operation_id = "list_endpoints", path = "/api/v1/workspaces/{ws}/endpoints", tag = "endpoints",
    params(("ws" = String, Path, description = "Workspace id"), EndpointQuery),
    responses((status = 200, description = "OK", body = EndpointList), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    QueryParams(q): QueryParams<EndpointQuery>,
) -> ApiResult<Json<EndpointList>> {
    caller.require(&ws, Scope::Read)?;
    let limit = crate::extract::page_limit(q.limit, 100)?;
    let (page, next) = state
        .store
        .endpoints_page(&ws, q.after.as_deref(), limit)
        .await?;
    let mut data = Vec::new();
    for ep in page {
        data.push(view(&state, &caller, ep, false).await?);
    }
    Ok(Json(EndpointList { data, next }))
}

/// One endpoint.
#[utoipa::path(get, operation_id = "get_endpoint", path = "/api/v1/workspaces/{ws}/endpoints/{id}", tag = "endpoints",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Endpoint id")),
    responses((status = 200, description = "OK", body = EndpointView), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 404, description = "No such resource in this workspace (`not_found`)", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<EndpointView>> {
    caller.require(&ws, Scope::Read)?;
    let ep = owned(&state, &ws, &id).await?;
    Ok(Json(view(&state, &caller, ep, false).await?))
}

/// Change an endpoint's settings (not its secret or pause state).
#[utoipa::path(patch, operation_id = "update_endpoint", path = "/api/v1/workspaces/{ws}/endpoints/{id}", tag = "endpoints",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Endpoint id")),
    request_body = UpdateEndpoint,
    responses((status = 200, description = "OK", body = EndpointView), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 404, description = "No such resource in this workspace (`not_found`)", body = ErrorBody), (status = 422, description = "Validation failed: one issue per bad field (`validation_failed`)", body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    JsonBody(req): JsonBody<UpdateEndpoint>,
) -> ApiResult<Json<EndpointView>> {
    caller.require(&ws, Scope::Write)?;
    owned(&state, &ws, &id).await?;
    let change = EndpointChange {
        url: req.url,
        description: req.description,
        event_types: req.event_types,
        headers: req.headers.map(MapChange::Replace),
        metadata: req.metadata.map(MapChange::Replace),
        max_concurrency: req.max_concurrency,
        rate_limit: req.rate_limit,
        rotation_signatures: req.rotation_signatures,
        ordering: req.ordering,
        ordering_on_give_up: req.ordering_on_give_up,
    };
    let ep = endpoints::update(
        &state.store,
        &caller.actor(),
        &state.settings.endpoint_policy,
        &id,
        &change,
    )
    .await?;
    Ok(Json(view(&state, &caller, ep, false).await?))
}

/// Delete an endpoint: its pending deliveries fail; its history stays until retention.
#[utoipa::path(delete, operation_id = "delete_endpoint", path = "/api/v1/workspaces/{ws}/endpoints/{id}", tag = "endpoints",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Endpoint id")),
    responses((status = 204, description = "Deleted"), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 404, description = "No such resource in this workspace (`not_found`)", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(&ws, Scope::Write)?;
    owned(&state, &ws, &id).await?;
    endpoints::delete(&state.store, &caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pause: new and due deliveries are held until resume.
#[utoipa::path(post, operation_id = "pause_endpoint", path = "/api/v1/workspaces/{ws}/endpoints/{id}/pause", tag = "endpoints",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Endpoint id")),
    request_body(content = Option<PauseRequest>),
    responses((status = 200, description = "OK", body = EndpointView), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 404, description = "No such resource in this workspace (`not_found`)", body = ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    JsonBody(req): JsonBody<PauseRequest>,
) -> ApiResult<Json<EndpointView>> {
    caller.require(&ws, Scope::Write)?;
    owned(&state, &ws, &id).await?;
    let reason = req
        .reason
        .unwrap_or_else(|| "paused through the API".into());
    let ep = endpoints::pause(&state.store, &caller.actor(), &id, &reason).await?;
    Ok(Json(view(&state, &caller, ep, false).await?))
}

/// Resume: held deliveries go out.
#[utoipa::path(post, operation_id = "resume_endpoint", path = "/api/v1/workspaces/{ws}/endpoints/{id}/resume", tag = "endpoints",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Endpoint id")),
    responses((status = 200, description = "OK", body = Resumed), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 404, description = "No such resource in this workspace (`not_found`)", body = ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<Resumed>> {
    caller.require(&ws, Scope::Write)?;
    owned(&state, &ws, &id).await?;
    let (released, ep) = endpoints::resume(&state.store, &caller.actor(), &id).await?;
    Ok(Json(Resumed {
        released,
        endpoint: view(&state, &caller, ep, false).await?,
    }))
}

/// Rotate the signing secret; the response carries the new one, once. During
/// the grace window deliveries carry both signatures, newest first.
#[utoipa::path(post, operation_id = "rotate_endpoint_secret", path = "/api/v1/workspaces/{ws}/endpoints/{id}/secret/rotate", tag = "endpoints",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Endpoint id")),
    request_body(content = Option<RotateRequest>),
    responses((status = 200, description = "OK", body = EndpointView), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 404, description = "No such resource in this workspace (`not_found`)", body = ErrorBody), (status = 422, description = "Validation failed: one issue per bad field (`validation_failed`)", body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    JsonBody(req): JsonBody<RotateRequest>,
) -> ApiResult<Json<EndpointView>> {
    caller.require(&ws, Scope::Write)?;
    owned(&state, &ws, &id).await?;
    let grace = Duration::from_secs(req.grace_seconds.unwrap_or(86_400));
    let ep = endpoints::rotate_secret(&state.store, &caller.actor(), &id, grace).await?;
    Ok(Json(view(&state, &caller, ep, true).await?))
}

/// The window of an endpoint's activity.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    /// `1h` (by minute, the default) or `1d` (by 15 minutes).
    #[param(pattern = "^(1h|1d|24h)$")]
    pub window: Option<String>,
}

/// An endpoint's attempts by outcome and their latency (p50, p99), per
/// interval over the last hour or day, from the delivery history in Redis.
#[utoipa::path(get, operation_id = "endpoint_activity", path = "/api/v1/workspaces/{ws}/endpoints/{id}/activity", tag = "endpoints",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Endpoint id"), ActivityQuery),
    responses((status = 200, description = "OK", body = Activity), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 404, description = "No such resource in this workspace (`not_found`)", body = ErrorBody), (status = 422, description = "Validation failed: one issue per bad field (`validation_failed`)", body = ErrorBody)))]
pub async fn activity(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    QueryParams(q): QueryParams<ActivityQuery>,
) -> ApiResult<Json<Activity>> {
    caller.require(&ws, Scope::Read)?;
    owned(&state, &ws, &id).await?;
    let window = match q.window.as_deref() {
        None => Window::Hour,
        Some(w) => Window::parse(w)
            .ok_or_else(|| ApiError::invalid("/query/window", "must be 1h or 1d"))?,
    };
    Ok(Json(
        activity::of_endpoint(&state.store, &id, window).await?,
    ))
}

/// A test event to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// Its type (the endpoint need not subscribe to it).
    #[schema(example = "card.created")]
    pub event_type: String,
    /// Its `data`; default `{"test": true}`.
    #[schema(value_type = Option<Object>, example = json!({"test": true}))]
    pub data: Option<serde_json::Value>,
}

/// Send a test event of a chosen type to this endpoint now (paused or not),
/// signed and sent as a delivery is, and answer what was sent and what came
/// back. Nothing is queued, retried or kept in the delivery history; the
/// audit log records it.
#[utoipa::path(post, operation_id = "test_endpoint", path = "/api/v1/workspaces/{ws}/endpoints/{id}/test", tag = "endpoints",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Endpoint id")),
    request_body = TestRequest,
    responses((status = 200, description = "Sent (or refused by the network policy); `succeeded` says whether the receiver answered 2xx", body = TestResult), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 404, description = "No such resource in this workspace (`not_found`)", body = ErrorBody), (status = 422, description = "Validation failed: one issue per bad field (`validation_failed`)", body = ErrorBody)))]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    JsonBody(req): JsonBody<TestRequest>,
) -> ApiResult<Json<TestResult>> {
    caller.require(&ws, Scope::Write)?;
    let ep = owned(&state, &ws, &id).await?;
    let test = TestEvent {
        event_type: req.event_type,
        data: req.data.map(|d| d.to_string()),
    };
    let result = probes::send(
        &state.store,
        &state.prober,
        state.settings.event_limits,
        &caller.actor(),
        &ep,
        test,
    )
    .await?;
    Ok(Json(result))
}

/// Start a job that re-queues the endpoint's deliveries created in a window
/// with a status (default `failed`), paced by the endpoint's rate limit.
#[utoipa::path(post, operation_id = "recover_endpoint", path = "/api/v1/workspaces/{ws}/endpoints/{id}/recover", tag = "endpoints",
    params(("ws" = String, Path, description = "Workspace id"), ("id" = String, Path, description = "Endpoint id")),
    request_body = RecoverRequest,
    responses((status = 202, description = "Accepted", body = JobView), (status = 401, description = "Missing, malformed, unknown, expired or revoked API key (`unauthorized`)", body = ErrorBody), (status = 403, description = "The key's workspace or scope does not allow this (`forbidden`)", body = ErrorBody), (status = 404, description = "No such resource in this workspace (`not_found`)", body = ErrorBody), (status = 422, description = "Validation failed: one issue per bad field (`validation_failed`)", body = ErrorBody)))]
pub async fn recover(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    JsonBody(req): JsonBody<RecoverRequest>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    caller.require(&ws, Scope::Write)?;
    let endpoint = owned(&state, &ws, &id).await?;
    let since_ms = req
        .since
        .as_deref()
        .map(|s| parse_time("/since", s, Direction::Ago))
        .transpose()?;
    let until_ms = req
        .until
        .as_deref()
        .map(|u| parse_time("/until", u, Direction::Ago))
        .transpose()?;
    let job = recovery::start(
        &state.history,
        &caller.actor(),
        Recovery {
            endpoint,
            since_ms,
            until_ms,
            status: req.status.unwrap_or(DeliveryStatus::Failed),
            only: req.delivery_ids,
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(JobView::from(job))))
}
