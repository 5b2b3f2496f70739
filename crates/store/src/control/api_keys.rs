//! Admin API keys: stored by hash only, looked up on every request, revoked
//! in place (a revoked key stays listed), and per-key request counters for
//! rate limiting.

use hookd_core::ApiKey;
use hookd_core::api_key::hash_key;

use crate::{Result, Store, StoreError};

fn to_json(key: &ApiKey) -> Result<String> {
    serde_json::to_string(key).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json(json: &str) -> Result<ApiKey> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("api key: {e}")))
}

impl Store {
    /// Stores a new key under its hash.
    pub async fn create_api_key(&self, key: &ApiKey, hash: &str) -> Result<()> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .hset(self.keys.api_keys(), hash, to_json(key)?)
            .ignore()
            .hset(self.keys.api_key_ids(), &key.id, hash)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// The key record for a presented key, if hookd made it (revoked or not).
    pub async fn api_key_by_secret(&self, presented: &str) -> Result<Option<ApiKey>> {
        let mut conn = self.conn.clone();
        let json: Option<String> = redis::cmd("HGET")
            .arg(self.keys.api_keys())
            .arg(hash_key(presented))
            .query_async(&mut conn)
            .await?;
        json.as_deref().map(from_json).transpose()
    }

    /// Every key of a workspace (or of all workspaces), oldest first.
    pub async fn api_keys(&self, workspace: Option<&str>) -> Result<Vec<ApiKey>> {
        let mut conn = self.conn.clone();
        let all: Vec<String> = redis::cmd("HVALS")
            .arg(self.keys.api_keys())
            .query_async(&mut conn)
            .await?;
        let mut keys = all
            .iter()
            .map(|j| from_json(j))
            .filter(|k| {
                k.as_ref()
                    .map_or(true, |k| workspace.is_none_or(|w| k.workspace == w))
            })
            .collect::<Result<Vec<_>>>()?;
        let used: std::collections::HashMap<String, i64> = redis::cmd("HGETALL")
            .arg(self.keys.api_key_used())
            .query_async(&mut conn)
            .await?;
        for k in &mut keys {
            k.last_used_at_ms = used.get(&k.id).copied();
        }
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(keys)
    }

    /// Records that a key was used at `now_ms` (callers write this at most
    /// about once a minute per key).
    pub async fn touch_api_key(&self, id: &str, now_ms: i64) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("HSET")
            .arg(self.keys.api_key_used())
            .arg(id)
            .arg(now_ms)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Revokes a key: from now on it gets 401. Returns the key as revoked.
    /// With `workspace`, a key of another workspace reads as not found.
    pub async fn revoke_api_key(
        &self,
        id: &str,
        workspace: Option<&str>,
        now_ms: i64,
    ) -> Result<ApiKey> {
        let mut conn = self.conn.clone();
        let hash: Option<String> = redis::cmd("HGET")
            .arg(self.keys.api_key_ids())
            .arg(id)
            .query_async(&mut conn)
            .await?;
        let not_found = || StoreError::NotFound(format!("api key {id}"));
        let hash = hash.ok_or_else(not_found)?;
        let json: Option<String> = redis::cmd("HGET")
            .arg(self.keys.api_keys())
            .arg(&hash)
            .query_async(&mut conn)
            .await?;
        let mut key = from_json(&json.ok_or_else(not_found)?)?;
        if workspace.is_some_and(|w| w != key.workspace) {
            return Err(not_found());
        }
        key.revoked_at_ms.get_or_insert(now_ms);
        let _: i64 = redis::cmd("HSET")
            .arg(self.keys.api_keys())
            .arg(&hash)
            .arg(to_json(&key)?)
            .query_async(&mut conn)
            .await?;
        Ok(key)
    }

    /// Counts one request of `key_id` in the fixed window starting at
    /// `window_start_ms` (lasting `window_ms`); returns the count so far,
    /// shared by every daemon.
    pub async fn count_request(
        &self,
        key_id: &str,
        window_start_ms: i64,
        window_ms: i64,
    ) -> Result<u64> {
        let key = self.keys.rate_window(key_id, window_start_ms);
        let mut conn = self.conn.clone();
        let (count,): (u64,) = redis::pipe()
            .incr(&key, 1)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(window_ms + 1000)
            .arg("NX")
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(count)
    }
}
