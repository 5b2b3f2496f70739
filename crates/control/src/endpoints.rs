//! Endpoints: create, update, delete, pause, resume, rotate a secret, and
//! the view of one (what the API answers and the CLI prints).

use std::collections::BTreeMap;
use std::time::Duration;

use hookd_core::endpoint::{OnGiveUp, Ordering};
use hookd_core::network::NetworkPolicy;
use hookd_core::{Endpoint, RotationSignatures, SignatureScheme, time};
use hookd_store::Store;
use hookd_store::audit::Actor;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{ActionError, ActionResult, MAX_NAME_BYTES};

/// The limits an endpoint is held to: the operator's network policy.
#[derive(Debug, Clone, Default)]
pub struct EndpointPolicy {
    /// Which addresses endpoints may point at.
    pub network: NetworkPolicy,
}

impl EndpointPolicy {
    /// Everything wrong with `ep`, all at once.
    pub fn check(&self, ep: &Endpoint) -> ActionResult<()> {
        let mut problems: Vec<(String, String)> = Vec::new();
        if let Some(why) = self.network.refuses_url(&ep.url) {
            problems.push(("/url".into(), why));
        }
        problems.extend(
            ep.problems()
                .into_iter()
                .map(|(field, message)| (format!("/{field}"), message)),
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ActionError::Invalid(problems))
        }
    }
}

/// A new endpoint's settings.
#[derive(Debug, Clone, Default)]
pub struct NewEndpoint {
    /// The workspace whose events it receives.
    pub workspace: String,
    /// Where deliveries go (http or https).
    pub url: String,
    /// A name for people.
    pub description: Option<String>,
    /// `None`: every event type.
    pub event_types: Option<Vec<String>>,
    /// Extra request headers sent with every delivery.
    pub headers: BTreeMap<String, String>,
    /// The operator's own labels.
    pub metadata: BTreeMap<String, String>,
    /// Most attempts in flight at once (`None`: the configured default).
    pub max_concurrency: Option<u32>,
    /// Most attempts per second (`None`: no limit).
    pub rate_limit: Option<u32>,
    /// How deliveries are signed.
    pub scheme: SignatureScheme,
    /// Signatures during a rotation (`None`: the configured default).
    pub rotation_signatures: Option<RotationSignatures>,
    /// Whether events of one ordering key arrive one at a time, in order.
    pub ordering: Ordering,
    /// With ordering by key: what a given-up head does to its key.
    pub ordering_on_give_up: OnGiveUp,
}

/// Registers an endpoint; the returned endpoint carries its new secret.
pub async fn create(
    store: &Store,
    actor: &Actor,
    policy: &EndpointPolicy,
    new: NewEndpoint,
) -> ActionResult<Endpoint> {
    let mut ep = Endpoint::new(new.workspace, new.url, new.scheme, time::now_ms())
        .map_err(|e| ActionError::Randomness(e.to_string()))?;
    ep.description = new.description;
    ep.event_types = new.event_types;
    ep.headers = new.headers;
    ep.metadata = new.metadata;
    ep.max_concurrency = new.max_concurrency;
    ep.rate_limit = new.rate_limit;
    ep.rotation_signatures = new.rotation_signatures;
    ep.ordering = new.ordering;
    ep.ordering_on_give_up = new.ordering_on_give_up;
    policy.check(&ep)?;
    store.create_endpoint(&ep).await?;
    store
        .audit(&ep.workspace, actor, "endpoint.created", &ep.id, None)
        .await;
    Ok(ep)
}

/// How a map of an endpoint (headers, metadata) changes.
#[derive(Debug, Clone)]
pub enum MapChange {
    /// The whole map (the API's `PATCH` sends it whole).
    Replace(BTreeMap<String, String>),
    /// Set these members; `None` removes one (the CLI's `--header`, `--metadata`).
    Merge(BTreeMap<String, Option<String>>),
}

impl MapChange {
    fn apply(&self, map: &mut BTreeMap<String, String>) {
        match self {
            MapChange::Replace(whole) => *map = whole.clone(),
            MapChange::Merge(members) => {
                for (k, v) in members {
                    match v {
                        Some(v) => map.insert(k.clone(), v.clone()),
                        None => map.remove(k),
                    };
                }
            }
        }
    }
}

/// A change to an endpoint: `None` leaves a setting as it is; `Some(None)`
/// clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    /// A new URL.
    pub url: Option<String>,
    /// A new name; `Some(None)` removes it.
    pub description: Option<Option<String>>,
    /// `Some(None)`: every event type.
    pub event_types: Option<Option<Vec<String>>>,
    /// Headers replaced or changed.
    pub headers: Option<MapChange>,
    /// Labels replaced or changed.
    pub metadata: Option<MapChange>,
    /// A new concurrency limit; `Some(None)` returns to the default.
    pub max_concurrency: Option<Option<u32>>,
    /// A new rate limit; `Some(None)` removes it.
    pub rate_limit: Option<Option<u32>>,
    /// A rotation setting; `Some(None)` returns to the default.
    pub rotation_signatures: Option<Option<RotationSignatures>>,
    /// Ordering by key on or off.
    pub ordering: Option<Ordering>,
    /// What a given-up head does to its key.
    pub ordering_on_give_up: Option<OnGiveUp>,
}

impl EndpointChange {
    /// The settings it changes, by name (for the audit log: names, never values).
    pub fn names(&self) -> Vec<&'static str> {
        [
            ("url", self.url.is_some()),
            ("description", self.description.is_some()),
            ("event_types", self.event_types.is_some()),
            ("headers", self.headers.is_some()),
            ("metadata", self.metadata.is_some()),
            ("max_concurrency", self.max_concurrency.is_some()),
            ("rate_limit", self.rate_limit.is_some()),
            ("rotation_signatures", self.rotation_signatures.is_some()),
            ("ordering", self.ordering.is_some()),
            ("ordering_on_give_up", self.ordering_on_give_up.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// Applies `change` to the endpoint as stored when it is written (a rotation
/// or another change that lands first is kept, not overwritten).
pub async fn update(
    store: &Store,
    actor: &Actor,
    policy: &EndpointPolicy,
    id: &str,
    change: &EndpointChange,
) -> ActionResult<Endpoint> {
    let ep = store
        .modify_endpoint(id, |ep| {
            if let Some(url) = &change.url {
                ep.url = url.clone();
            }
            if let Some(d) = &change.description {
                ep.description = d.clone();
            }
            if let Some(t) = &change.event_types {
                ep.event_types = t.clone();
            }
            if let Some(h) = &change.headers {
                h.apply(&mut ep.headers);
            }
            if let Some(m) = &change.metadata {
                m.apply(&mut ep.metadata);
            }
            if let Some(n) = change.max_concurrency {
                ep.max_concurrency = n;
            }
            if let Some(r) = change.rate_limit {
                ep.rate_limit = r;
            }
            if let Some(r) = change.rotation_signatures {
                ep.rotation_signatures = r;
            }
            if let Some(o) = change.ordering {
                ep.ordering = o;
            }
            if let Some(o) = change.ordering_on_give_up {
                ep.ordering_on_give_up = o;
            }
            policy.check(ep)
        })
        .await?;
    let changed = change.names().join(", ");
    store
        .audit(
            &ep.workspace,
            actor,
            "endpoint.updated",
            &ep.id,
            Some(&changed),
        )
        .await;
    Ok(ep)
}

/// The longest grace a rotation may give the old secret: longer keeps a
/// leaked secret valid too long.
pub const MAX_GRACE: Duration = Duration::from_secs(30 * 86_400);

/// Gives an endpoint a new secret; the old one keeps signing for `grace`.
/// The returned endpoint carries the new secret.
pub async fn rotate_secret(
    store: &Store,
    actor: &Actor,
    id: &str,
    grace: Duration,
) -> ActionResult<Endpoint> {
    if grace > MAX_GRACE {
        return Err(ActionError::invalid(
            "/grace_seconds",
            "must be at most 2592000 (30 days)",
        ));
    }
    let scheme = store.endpoint_view(id).await?.scheme;
    let secret = scheme
        .new_secret()
        .map_err(|e| ActionError::Randomness(e.to_string()))?;
    let ep = store
        .rotate_secret(id, secret, grace, time::now_ms())
        .await?;
    let detail = format!("old secret valid {}s more", grace.as_secs());
    store
        .audit(
            &ep.workspace,
            actor,
            "endpoint.secret_rotated",
            &ep.id,
            Some(&detail),
        )
        .await;
    Ok(ep)
}

/// Pauses an endpoint: its deliveries are held from now on.
pub async fn pause(store: &Store, actor: &Actor, id: &str, reason: &str) -> ActionResult<Endpoint> {
    if reason.len() > MAX_NAME_BYTES {
        return Err(ActionError::invalid(
            "/reason",
            format!("must be at most {MAX_NAME_BYTES} bytes"),
        ));
    }
    let ep = store.pause_endpoint(id, reason, time::now_ms()).await?;
    store
        .audit(
            &ep.workspace,
            actor,
            "endpoint.paused",
            &ep.id,
            Some(reason),
        )
        .await;
    Ok(ep)
}

/// Resumes an endpoint; returns how many held deliveries it released, and
/// the endpoint (its secrets not opened).
pub async fn resume(store: &Store, actor: &Actor, id: &str) -> ActionResult<(u64, Endpoint)> {
    let released = store.resume_endpoint(id, time::now_ms()).await?;
    let ep = store.endpoint_view(id).await?;
    let detail = format!("{released} held deliveries released");
    store
        .audit(
            &ep.workspace,
            actor,
            "endpoint.resumed",
            &ep.id,
            Some(&detail),
        )
        .await;
    Ok((released, ep))
}

/// Deletes an endpoint: its pending deliveries fail; its history stays
/// until retention. Returns the endpoint as it was.
pub async fn delete(store: &Store, actor: &Actor, id: &str) -> ActionResult<Endpoint> {
    let deleted = store.delete_endpoint(id, time::now_ms()).await?;
    store
        .audit(&deleted.workspace, actor, "endpoint.deleted", id, None)
        .await;
    Ok(deleted)
}

/// An endpoint as the API shows it. `secret` appears only in the responses
/// of create and rotate.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "ep_01a2428230d17446b67c772f6e858e64",
    "workspace": "ws_kanera_acme",
    "url": "https://hooks.acme.example/kanera",
    "description": "Acme board sync",
    "event_types": ["card.created", "card.moved"],
    "scheme": "sha256",
    "headers": {"Authorization": "Bearer acme-77f1"},
    "max_concurrency": 8,
    "rate_limit": null,
    "metadata": {"team": "boards"},
    "created_at": "2026-12-04T09:12:44.120Z",
    "paused": false,
    "paused_reason": null,
    "paused_at": null,
    "failing": {"consecutive_failures": 3, "since": "2026-12-04T19:22:38.511Z", "last_error": "receiver answered 500"},
    "held": 0,
    "waiting": {"deliveries": 0, "oldest": null},
    "previous_secret_expires_at": null,
    "rotation_signatures": null
}))]
pub struct EndpointView {
    /// `ep_...`.
    pub id: String,
    /// The workspace whose events it receives.
    pub workspace: String,
    /// Where deliveries go.
    pub url: String,
    /// A name for people; shown in place of the id.
    pub description: Option<String>,
    /// `null`: every event type.
    pub event_types: Option<Vec<String>>,
    /// How deliveries are signed.
    #[schema(value_type = crate::schema::SchemeName)]
    pub scheme: SignatureScheme,
    /// Extra request headers. Their values (often a receiver's credentials)
    /// show only to keys that may write the endpoint; read keys see `***`.
    pub headers: BTreeMap<String, String>,
    /// Most attempts in flight at once (`null`: the configured default).
    pub max_concurrency: Option<u32>,
    /// Attempts per second.
    pub rate_limit: Option<u32>,
    /// The operator's own labels.
    pub metadata: BTreeMap<String, String>,
    /// When it was registered.
    pub created_at: String,
    /// Deliveries are held, not attempted, until it is resumed.
    pub paused: bool,
    /// Why it was paused (by an operator, or by the circuit breaker).
    pub paused_reason: Option<String>,
    /// When it was paused.
    pub paused_at: Option<String>,
    /// Set while its attempts fail in a row (the circuit breaker's count;
    /// cleared by a success or a resume).
    pub failing: Option<FailingView>,
    /// Deliveries held while paused.
    pub held: u64,
    /// First attempts waiting for a slot in the endpoint's lane (behind its
    /// backlog, not in front of other workspaces' events).
    pub waiting: WaitingView,
    /// Until when the previous secret still signs (during a rotation's grace window).
    pub previous_secret_expires_at: Option<String>,
    /// Signatures during a rotation's grace window: `all` (one per valid
    /// secret) or `newest` (one); `null` takes the configured default.
    #[schema(value_type = Option<crate::schema::RotationSignaturesName>)]
    pub rotation_signatures: Option<RotationSignatures>,
    /// `key`: events of one `ordering_key` arrive one at a time, in publish
    /// order (the next once the one before succeeded or was given up);
    /// `none`: in parallel.
    #[schema(value_type = crate::schema::OrderingName)]
    pub ordering: Ordering,
    /// With `ordering: key`, what a given-up delivery does to its key:
    /// `continue` (the next goes) or `hold` (the key waits until the
    /// delivery is redelivered or skipped).
    #[schema(value_type = crate::schema::OnGiveUpName)]
    pub ordering_on_give_up: OnGiveUp,
    /// Its signing secret: only in the answers of create and rotate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// What waits in an endpoint's lane.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct WaitingView {
    /// How many.
    pub deliveries: u64,
    /// When the oldest of them was published.
    pub oldest: Option<String>,
}

/// An endpoint's attempts failing in a row.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailingView {
    /// Failed attempts in a row.
    pub consecutive_failures: u64,
    /// When the first of them was made.
    pub since: String,
    /// The last one's error.
    pub last_error: String,
}

impl EndpointView {
    /// `header_values`: show custom header values (else `***`).
    pub fn new(ep: Endpoint, held: u64, with_secret: bool, header_values: bool) -> Self {
        let now = time::now_ms();
        let headers = if header_values {
            ep.headers
        } else {
            ep.headers
                .into_keys()
                .map(|k| (k, REDACTED.to_string()))
                .collect()
        };
        Self {
            previous_secret_expires_at: ep
                .previous_secrets
                .iter()
                .map(|p| p.expires_at_ms)
                .filter(|t| *t > now)
                .max()
                .map(time::format_rfc3339_ms),
            secret: with_secret.then(|| ep.secret.clone()),
            rotation_signatures: ep.rotation_signatures,
            ordering: ep.ordering,
            ordering_on_give_up: ep.ordering_on_give_up,
            id: ep.id,
            workspace: ep.workspace,
            url: ep.url,
            description: ep.description,
            event_types: ep.event_types,
            scheme: ep.scheme,
            headers,
            max_concurrency: ep.max_concurrency,
            rate_limit: ep.rate_limit,
            metadata: ep.metadata,
            created_at: time::format_rfc3339_ms(ep.created_at_ms),
            paused: ep.paused,
            paused_reason: ep.paused_reason,
            paused_at: ep.paused_at_ms.map(time::format_rfc3339_ms),
            failing: ep.failing.clone().map(|f| FailingView {
                consecutive_failures: f.consecutive,
                since: time::format_rfc3339_ms(f.since_ms),
                last_error: f.last_error,
            }),
            held,
            waiting: WaitingView::default(),
        }
    }
}

/// What a header value reads as to a key that may not write the endpoint.
const REDACTED: &str = "***";

/// The view of `ep` with what is stored beside it: deliveries held while
/// paused and deliveries waiting in its lane. `with_secret` only for create
/// and rotate; `header_values` for callers that may write the endpoint.
pub async fn view(
    store: &Store,
    ep: Endpoint,
    with_secret: bool,
    header_values: bool,
) -> ActionResult<EndpointView> {
    let held = if ep.paused {
        store.held_count(&ep).await?
    } else {
        0
    };
    let (deliveries, oldest) = store.waiting(&ep.workspace, &ep.id).await?;
    let mut view = EndpointView::new(ep, held, with_secret, header_values);
    view.waiting = WaitingView {
        deliveries,
        oldest: oldest.map(time::format_rfc3339_ms),
    };
    Ok(view)
}
