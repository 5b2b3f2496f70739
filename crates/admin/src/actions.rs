//! What an operator does to endpoints, keys and recovery, once: the HTTP
//! handlers and the `hookd` CLI both call these functions, so the two cannot
//! drift apart. The handlers only translate HTTP (paths, bodies, scopes,
//! views); the CLI only translates flags.

use std::collections::BTreeMap;
use std::time::Duration;

use hookd_core::network::NetworkPolicy;
use hookd_core::{
    ApiKey, DeliveryStatus, Endpoint, RotationSignatures, Scope, SignatureScheme, api_key, id, time,
};
use hookd_history::merged::HistoryReader;
use hookd_store::audit::Actor;
use hookd_store::recovery::{Job, RecoveryRequest};
use hookd_store::{Store, StoreError};

/// Why an action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// (field, why) for each problem; fields are JSON Pointers into the request.
    #[error("{}", .0.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(String, String)>),
    /// (No `source`: the message carries it, and error chains print it once.)
    #[error("{0}")]
    Store(StoreError),
    #[error("no randomness for a secret: {0}")]
    Randomness(String),
}

impl From<StoreError> for ActionError {
    fn from(e: StoreError) -> Self {
        ActionError::Store(e)
    }
}

impl ActionError {
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        ActionError::Invalid(vec![(field.to_string(), message.into())])
    }
}

pub type ActionResult<T> = Result<T, ActionError>;

/// The limits an endpoint is held to: the operator's network policy.
#[derive(Debug, Clone, Default)]
pub struct EndpointPolicy {
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
    pub workspace: String,
    pub url: String,
    pub description: Option<String>,
    /// `None`: every event type.
    pub event_types: Option<Vec<String>>,
    pub headers: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
    pub max_concurrency: Option<u32>,
    pub rate_limit: Option<u32>,
    pub scheme: SignatureScheme,
    pub rotation_signatures: Option<RotationSignatures>,
}

/// Registers an endpoint; the returned endpoint carries its new secret.
pub async fn create_endpoint(
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
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    /// `Some(None)`: every event type.
    pub event_types: Option<Option<Vec<String>>>,
    pub headers: Option<MapChange>,
    pub metadata: Option<MapChange>,
    pub max_concurrency: Option<Option<u32>>,
    pub rate_limit: Option<Option<u32>>,
    pub rotation_signatures: Option<Option<RotationSignatures>>,
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
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// Applies `change` to the endpoint as stored when it is written (a rotation
/// or another change that lands first is kept, not overwritten).
pub async fn update_endpoint(
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
    let secret = id::new_secret(scheme).map_err(|e| ActionError::Randomness(e.to_string()))?;
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

/// Longest pause reason or key name kept (they are shown and audited).
pub const MAX_NAME_BYTES: usize = 1024;

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

/// How new API keys are made.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    /// The first part of every new key (`<prefix>_<env>_<secret>`); keys made
    /// under an earlier prefix keep working.
    pub prefix: String,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            prefix: api_key::DEFAULT_PREFIX.to_string(),
        }
    }
}

/// A new key's settings.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub workspace: String,
    pub scope: Scope,
    /// `live`, `stg`, `dev` or `test`.
    pub env: String,
    pub name: Option<String>,
    /// After this the key gets 401 `key_expired`.
    pub expires_at_ms: Option<i64>,
}

/// Makes and stores a key; returns its record and the key text (shown once).
pub async fn mint_key(
    store: &Store,
    actor: &Actor,
    policy: &KeyPolicy,
    new: NewKey,
) -> ActionResult<(ApiKey, String)> {
    let mut problems = Vec::new();
    if !api_key::KEY_ENVS.contains(&new.env.as_str()) {
        problems.push((
            "/env".to_string(),
            "must be live, stg, dev or test".to_string(),
        ));
    }
    if !hookd_core::event::is_valid_workspace(&new.workspace) {
        problems.push((
            "/workspace".to_string(),
            "must be 1..128 characters without control characters".to_string(),
        ));
    }
    if new.name.as_ref().is_some_and(|n| n.len() > MAX_NAME_BYTES) {
        problems.push((
            "/name".to_string(),
            format!("must be at most {MAX_NAME_BYTES} bytes"),
        ));
    }
    let now = time::now_ms();
    if new.expires_at_ms.is_some_and(|t| t <= now) {
        problems.push((
            "/expires_at".to_string(),
            "must be in the future".to_string(),
        ));
    }
    if !problems.is_empty() {
        return Err(ActionError::Invalid(problems));
    }
    let (text, hash) = api_key::new_key(&policy.prefix, &new.env)
        .map_err(|e| ActionError::Randomness(e.to_string()))?;
    let key = ApiKey {
        id: id::new_id("key_"),
        workspace: new.workspace,
        scope: new.scope,
        prefix: text
            .chars()
            .take(policy.prefix.len() + new.env.len() + 2 + 4)
            .collect(),
        env: new.env,
        name: new.name,
        created_at_ms: now,
        revoked_at_ms: None,
        expires_at_ms: new.expires_at_ms,
        last_used_at_ms: None,
    };
    store.create_api_key(&key, &hash).await?;
    let detail = format!("scope {}", key.scope.as_str());
    store
        .audit(&key.workspace, actor, "key.created", &key.id, Some(&detail))
        .await;
    Ok((key, text))
}

/// Revokes a key (of `workspace`, when given): it gets 401 from now on.
pub async fn revoke_key(
    store: &Store,
    actor: &Actor,
    id: &str,
    workspace: Option<&str>,
) -> ActionResult<ApiKey> {
    let key = store.revoke_api_key(id, workspace, time::now_ms()).await?;
    store
        .audit(&key.workspace, actor, "key.revoked", &key.id, None)
        .await;
    Ok(key)
}

/// A recovery: an endpoint's deliveries created in a window with a status.
#[derive(Debug, Clone)]
pub struct Recovery {
    pub endpoint: Endpoint,
    pub since_ms: i64,
    pub until_ms: Option<i64>,
    pub status: DeliveryStatus,
}

/// Records a recovery job and runs its scan in the background (of the
/// history in Redis, and of the shipped history where there is one).
pub async fn start_recovery(
    history: &HistoryReader,
    actor: &Actor,
    recovery: Recovery,
) -> ActionResult<Job> {
    let now = time::now_ms();
    let Recovery {
        endpoint,
        since_ms,
        until_ms,
        status,
    } = recovery;
    if until_ms.is_some_and(|u| u < since_ms) {
        return Err(ActionError::invalid("/until", "is before since"));
    }
    let job = Job {
        id: id::new_id("job_"),
        workspace: endpoint.workspace.clone(),
        endpoint_id: endpoint.id.clone(),
        since_ms,
        until_ms,
        status,
        created_at_ms: now,
        matched: 0,
        queued: 0,
        done: 0,
        succeeded: 0,
        scanned: false,
        error: None,
    };
    history.store.create_job(&job).await?;
    let detail = format!(
        "endpoint {}, {} deliveries since {}",
        job.endpoint_id,
        job.status.as_str(),
        time::format_rfc3339_ms(job.since_ms)
    );
    history
        .store
        .audit(
            &job.workspace,
            actor,
            "recovery.started",
            &job.id,
            Some(&detail),
        )
        .await;
    let request = RecoveryRequest {
        endpoint,
        since_ms,
        until_ms: Some(until_ms.unwrap_or(now)),
        status,
    };
    let (history, started) = (history.clone(), job.clone());
    tokio::spawn(async move {
        if let Err(e) = history
            .run_recovery(&started, &request, time::now_ms())
            .await
        {
            tracing::error!(job = %started.id, error = %e, "recovery job failed");
            // Never left `scanning`: the job ends failed, with the reason.
            if let Err(e2) = history.store.fail_job(&started, &e.to_string()).await {
                tracing::error!(job = %started.id, error = %e2, "could not record the job's failure");
            }
        }
    });
    Ok(job)
}
