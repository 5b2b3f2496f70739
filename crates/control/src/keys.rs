//! API keys: made (shown once, only the hash kept) and revoked, and the
//! view of one.

use hookd_core::{ApiKey, Scope, api_key, id, time};
use hookd_store::Store;
use hookd_store::audit::Actor;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{ActionError, ActionResult, MAX_NAME_BYTES};

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
    /// The workspace it may act on.
    pub workspace: String,
    /// What it may do there.
    pub scope: Scope,
    /// `live`, `stg`, `dev` or `test`.
    pub env: String,
    /// A name for people to recognise it by.
    pub name: Option<String>,
    /// After this the key gets 401 `key_expired`.
    pub expires_at_ms: Option<i64>,
}

/// Makes and stores a key; returns its record and the key text (shown once).
pub async fn mint(
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
pub async fn revoke(
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

/// An API key as the API shows it (never its hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// `key_...`.
    pub id: String,
    /// The workspace it may act on.
    pub workspace: String,
    /// What it may do there.
    #[schema(value_type = crate::schema::ScopeName)]
    pub scope: Scope,
    /// The `<env>` in its text.
    #[schema(value_type = crate::schema::KeyEnvName)]
    pub env: String,
    /// A name for people to recognise it by.
    pub name: Option<String>,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    /// When it was made.
    pub created_at: String,
    /// When it was revoked; it gets 401 since.
    pub revoked_at: Option<String>,
    /// After this the key gets 401 `key_expired`; `null`: never.
    pub expires_at: Option<String>,
    /// When a request last used the key (to about a minute); `null`: never.
    pub last_used_at: Option<String>,
    /// The key itself: only in the response that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl KeyView {
    /// The view of `k`; `key` is its text, only when it was just made.
    pub fn new(k: ApiKey, key: Option<String>) -> Self {
        Self {
            id: k.id,
            workspace: k.workspace,
            scope: k.scope,
            env: k.env,
            name: k.name,
            prefix: k.prefix,
            created_at: time::format_rfc3339_ms(k.created_at_ms),
            revoked_at: k.revoked_at_ms.map(time::format_rfc3339_ms),
            expires_at: k.expires_at_ms.map(time::format_rfc3339_ms),
            last_used_at: k.last_used_at_ms.map(time::format_rfc3339_ms),
            key,
        }
    }
}

/// A workspace's keys, revoked ones included.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// The keys.
    pub data: Vec<KeyView>,
}
