//! Endpoint records and the subscription indexes ingest matches events with.

use std::collections::HashMap;

use hookd_core::Endpoint;
use hookd_core::endpoint::{OnGiveUp, Ordering};
use hookd_core::sealing::SealError;

use crate::keys::PartitionKeys;
use crate::{Result, Store, StoreError};

impl Store {
    /// The stored part of an endpoint that is not pause state, secrets sealed.
    pub(crate) fn doc(&self, ep: &Endpoint) -> Result<String> {
        let mut doc = ep.clone();
        doc.paused = false;
        doc.paused_reason = None;
        doc.paused_at_ms = None;
        if let Some(sealer) = &self.settings.sealer {
            doc.map_secrets(|s| sealer.seal(s))?;
        }
        serde_json::to_string(&doc).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Reads an endpoint document, opening its secrets.
    pub(crate) fn parse_doc(&self, id: &str, doc: &[u8]) -> Result<Endpoint> {
        let mut ep = read_doc(id, doc)?;
        ep.map_secrets(|s| self.open(s))?;
        Ok(ep)
    }

    /// Opens one sealed value (a value in clear comes back as it is).
    fn open(&self, stored: &str) -> std::result::Result<String, SealError> {
        match &self.settings.sealer {
            Some(sealer) => sealer.open(stored),
            // Name the key it was sealed with, not the absence of keys.
            None => match stored.strip_prefix("enc:") {
                Some(rest) => Err(SealError::UnknownKey(
                    rest.split(':').next().unwrap_or_default().to_string(),
                )),
                None => Ok(stored.to_string()),
            },
        }
    }

    /// Reads an endpoint document for display: the signing secrets (current
    /// and in grace) are not opened, and are left empty, so listing or
    /// showing endpoints never needs the sealing key; custom header values
    /// are opened when the key is there, else shown as `***`.
    fn parse_view(&self, id: &str, doc: &[u8]) -> Result<Endpoint> {
        let mut ep = read_doc(id, doc)?;
        ep.secret.clear();
        for p in &mut ep.previous_secrets {
            p.secret.clear();
        }
        for v in ep.headers.values_mut() {
            *v = self.open(v).unwrap_or_else(|_| "***".to_string());
        }
        Ok(ep)
    }

    /// Builds an endpoint from its hash fields.
    pub(crate) fn endpoint_from_hash(
        &self,
        id: &str,
        fields: &HashMap<String, String>,
    ) -> Result<Endpoint> {
        self.endpoint_with(id, fields, Self::parse_doc)
    }

    fn endpoint_with(
        &self,
        id: &str,
        fields: &HashMap<String, String>,
        parse: fn(&Self, &str, &[u8]) -> Result<Endpoint>,
    ) -> Result<Endpoint> {
        let doc = fields
            .get("doc")
            .ok_or_else(|| StoreError::NotFound(format!("endpoint {id}")))?;
        let mut ep = parse(self, id, doc.as_bytes())?;
        ep.paused = fields.get("paused").is_some_and(|p| p == "1");
        ep.paused_reason = fields.get("paused_reason").cloned();
        ep.paused_at_ms = fields.get("paused_at").and_then(|t| t.parse().ok());
        ep.failing = fields
            .get("fails")
            .and_then(|n| n.parse().ok())
            .filter(|n: &u64| *n > 0)
            .map(|consecutive| hookd_core::endpoint::Failing {
                consecutive,
                since_ms: fields
                    .get("failing_since")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0),
                last_error: fields.get("last_error").cloned().unwrap_or_default(),
            });
        ep.version = fields.get("v").and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(ep)
    }
}

/// An endpoint document as stored (secrets still sealed).
fn read_doc(id: &str, doc: &[u8]) -> Result<Endpoint> {
    serde_json::from_slice(doc).map_err(|e| StoreError::Corrupt(format!("endpoint {id}: {e}")))
}

/// What the claim script reads from the endpoint hash beside the document:
/// its limits ('' = none) and its workspace.
/// and, for record.lua, its ordering ('', `key`, or `hold`: a given-up head
/// holds its key).
fn limits(ep: &Endpoint) -> [(&'static str, String); 4] {
    let text = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    let ordering = match (ep.ordering, ep.ordering_on_give_up) {
        (Ordering::None, _) => "",
        (Ordering::Key, OnGiveUp::Continue) => "key",
        (Ordering::Key, OnGiveUp::Hold) => "hold",
    };
    [
        ("max_concurrency", text(ep.max_concurrency)),
        ("rate_limit", text(ep.rate_limit)),
        ("ws", ep.workspace.clone()),
        ("ordering", ordering.to_string()),
    ]
}

/// The sets an endpoint id is a member of for its event types (and the
/// partition's ordered endpoints, when it is one).
fn subscriptions(p: &PartitionKeys, ep: &Endpoint) -> Vec<String> {
    let mut sets = match &ep.event_types {
        None => vec![p.all_subscribers(&ep.workspace)],
        Some(types) => types
            .iter()
            .map(|t| p.type_subscribers(&ep.workspace, t))
            .collect(),
    };
    if ep.ordering == Ordering::Key {
        sets.push(p.ordered());
    }
    sets
}

/// How often a compare-and-set write re-reads and re-applies its change
/// before giving up (only when other writers keep winning).
const CAS_ROUNDS: usize = 8;

/// Held deliveries one resume script call releases.
const RESUME_CHUNK: usize = 1000;

impl Store {
    /// The operator's bounds on what an endpoint may ask for.
    fn within_limits(&self, ep: &Endpoint) -> Result<()> {
        let max = self.settings.max_endpoint_concurrency;
        if ep.max_concurrency.is_some_and(|c| c > max) {
            return Err(StoreError::Invalid(
                "max_concurrency".into(),
                format!(
                    "must be at most {max} (the operator's [delivery] max_endpoint_concurrency)"
                ),
            ));
        }
        Ok(())
    }

    /// Stores a new endpoint and subscribes it to its event types, unless
    /// its workspace has the most endpoints allowed already (checked in the
    /// same step as the write: racing creates cannot pass it together).
    pub async fn create_endpoint(&self, ep: &Endpoint) -> Result<()> {
        self.within_limits(ep)?;
        let p = self.keys.partition_of(&ep.workspace);
        let max = self.settings.max_endpoints_per_workspace;
        let mut conn = self.conn.clone();
        // The global id index lives in another slot. Written first: a crash in
        // between leaves an index entry that reads as "not found", never an
        // endpoint that receives deliveries but cannot be listed.
        let _: i64 = redis::cmd("HSET")
            .arg(self.keys.endpoint_index())
            .arg(&ep.id)
            .arg(&ep.workspace)
            .query_async(&mut conn)
            .await?;
        let mut call = self.scripts.endpoint_create.prepare_invoke();
        call.key(p.endpoint(&ep.id))
            .key(p.workspace_endpoints(&ep.workspace))
            .key(p.config())
            .key(subscriptions(&p, ep))
            .arg(max)
            .arg(&ep.id)
            .arg("doc")
            .arg(self.doc(ep)?)
            .arg("paused")
            .arg(if ep.paused { "1" } else { "0" })
            .arg("v")
            .arg("1");
        for (field, value) in limits(ep) {
            call.arg(field).arg(value);
        }
        let created: i64 = call.invoke_async(&mut conn).await?;
        if created < 0 {
            let _: i64 = redis::cmd("HDEL")
                .arg(self.keys.endpoint_index())
                .arg(&ep.id)
                .query_async(&mut conn)
                .await?;
            return Err(StoreError::Invalid(
                "url".into(),
                format!(
                    "the workspace already has {} endpoints, the most allowed ([admin] max_endpoints_per_workspace)",
                    -created
                ),
            ));
        }
        Ok(())
    }

    /// The workspace an endpoint belongs to, from the global id index
    /// (`None` when no endpoint has this id, or it was deleted).
    pub(crate) async fn endpoint_workspace(&self, id: &str) -> Result<Option<String>> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("HGET")
            .arg(self.keys.endpoint_index())
            .arg(id)
            .query_async(&mut conn)
            .await?)
    }

    /// The partition an endpoint lives in.
    async fn endpoint_partition(&self, id: &str) -> Result<PartitionKeys> {
        let ws = self.endpoint_workspace(id).await?;
        let ws = ws.ok_or_else(|| StoreError::NotFound(format!("endpoint {id}")))?;
        Ok(self.keys.partition_of(&ws))
    }

    /// An endpoint with its secrets opened (to sign, to rotate, to write back).
    pub async fn endpoint(&self, id: &str) -> Result<Endpoint> {
        let fields = self.endpoint_hash(id).await?;
        self.endpoint_from_hash(id, &fields)
    }

    /// An endpoint to show: its signing secrets left sealed and empty (see
    /// `parse_view`). Never write it back.
    pub async fn endpoint_view(&self, id: &str) -> Result<Endpoint> {
        let fields = self.endpoint_hash(id).await?;
        self.endpoint_with(id, &fields, Self::parse_view)
    }

    async fn endpoint_hash(&self, id: &str) -> Result<HashMap<String, String>> {
        let p = self.endpoint_partition(id).await?;
        let mut conn = self.conn.clone();
        Ok(redis::cmd("HGETALL")
            .arg(p.endpoint(id))
            .query_async(&mut conn)
            .await?)
    }

    /// Every endpoint's (id, workspace), from the index alone: for callers
    /// that need neither the document nor its (sealed) secrets.
    pub(crate) async fn endpoint_ids(&self) -> Result<Vec<(String, String)>> {
        let mut conn = self.conn.clone();
        let all: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.endpoint_index())
            .query_async(&mut conn)
            .await?;
        Ok(all.into_iter().collect())
    }

    /// How many endpoints a workspace has.
    pub async fn endpoint_count(&self, workspace: &str) -> Result<u64> {
        let p = self.keys.partition_of(workspace);
        let mut conn = self.conn.clone();
        Ok(redis::cmd("SCARD")
            .arg(p.workspace_endpoints(workspace))
            .query_async(&mut conn)
            .await?)
    }

    /// Endpoints of one workspace, or of all workspaces, ordered by id
    /// (creation), to show: signing secrets not opened, as [`Store::endpoint_view`].
    pub async fn endpoints(&self, workspace: Option<&str>) -> Result<Vec<Endpoint>> {
        let ids = match workspace {
            Some(ws) => self.workspace_endpoint_ids(ws).await?,
            None => {
                let mut ids = self.endpoint_ids().await?;
                ids.sort();
                ids
            }
        };
        self.endpoints_by_id(&ids).await
    }

    /// A page of a workspace's endpoints in id order (oldest first): at most
    /// `limit` after `after`, and the id the next page starts after. Only
    /// the page's records are read.
    pub async fn endpoints_page(
        &self,
        workspace: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Endpoint>, Option<String>)> {
        let ids: Vec<(String, String)> = self
            .workspace_endpoint_ids(workspace)
            .await?
            .into_iter()
            .filter(|(id, _)| after.is_none_or(|a| id.as_str() > a))
            .collect();
        let more = ids.len() > limit;
        let page = &ids[..ids.len().min(limit)];
        let next = more
            .then(|| page.last().map(|(id, _)| id.clone()))
            .flatten();
        Ok((self.endpoints_by_id(page).await?, next))
    }

    /// A workspace's endpoint ids, sorted (oldest first: ids are time-ordered).
    async fn workspace_endpoint_ids(&self, ws: &str) -> Result<Vec<(String, String)>> {
        let p = self.keys.partition_of(ws);
        let mut ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(p.workspace_endpoints(ws))
            .query_async(&mut self.conn.clone())
            .await?;
        ids.sort();
        Ok(ids.into_iter().map(|id| (id, ws.to_string())).collect())
    }

    /// The endpoints (id, workspace) that still exist, in the order given.
    async fn endpoints_by_id(&self, ids: &[(String, String)]) -> Result<Vec<Endpoint>> {
        if ids.is_empty() {
            // An empty pipeline is an error in redis-rs.
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut hashes: Vec<HashMap<String, String>> = vec![HashMap::new(); ids.len()];
        let groups = self
            .keys
            .by_partition(ids.iter().enumerate().map(|(i, (_, ws))| (ws.as_str(), i)));
        for (p, at) in groups {
            let mut pipe = redis::pipe();
            for i in &at {
                pipe.hgetall(p.endpoint(&ids[*i].0));
            }
            let got: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
            for (i, h) in at.into_iter().zip(got) {
                hashes[i] = h;
            }
        }
        ids.iter()
            .zip(hashes)
            .filter(|(_, h)| !h.is_empty())
            .map(|((id, _), h)| self.endpoint_with(id, &h, Self::parse_view))
            .collect()
    }

    /// Pauses an endpoint: its deliveries are held from now on.
    pub async fn pause_endpoint(&self, id: &str, reason: &str, now_ms: i64) -> Result<Endpoint> {
        let mut ep = self.endpoint(id).await?;
        let p = self.keys.partition_of(&ep.workspace);
        let mut conn = self.conn.clone();
        // Only while the endpoint exists: a pause racing a delete must not
        // leave a hash behind.
        let written: i64 = self
            .scripts
            .pause
            .key(p.endpoint(id))
            .key(p.config())
            .arg(reason)
            .arg(now_ms)
            .invoke_async(&mut conn)
            .await?;
        if written == 0 {
            return Err(StoreError::NotFound(format!("endpoint {id}")));
        }
        ep.paused = true;
        ep.paused_reason = Some(reason.to_string());
        ep.paused_at_ms = Some(now_ms);
        Ok(ep)
    }

    /// Gives an endpoint a new secret; the old one keeps signing for `grace`.
    pub async fn rotate_secret(
        &self,
        id: &str,
        new_secret: String,
        grace: std::time::Duration,
        now_ms: i64,
    ) -> Result<Endpoint> {
        self.modify_endpoint(id, |ep| {
            ep.rotate_secret(new_secret.clone(), grace.as_millis() as i64, now_ms);
            Ok::<(), StoreError>(())
        })
        .await
    }

    /// Reads an endpoint, applies `change` and writes it back only if no
    /// other write came in between (compare and set on its version); if one
    /// did, reads again and re-applies `change`. Subscriptions move with the
    /// event types in the same atomic step. Not found when it was deleted.
    pub async fn modify_endpoint<E: From<StoreError>>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut Endpoint) -> std::result::Result<(), E>,
    ) -> std::result::Result<Endpoint, E> {
        for _ in 0..CAS_ROUNDS {
            let before = self.endpoint(id).await?;
            let mut after = before.clone();
            change(&mut after)?;
            self.within_limits(&after)?;
            if self.write_if_unchanged(&before, Some(&after)).await? {
                after.version = before.version + 1;
                return Ok(after);
            }
        }
        Err(StoreError::Conflict(format!("endpoint {id} kept changing; try again")).into())
    }

    /// The compare-and-set step: `after` `None` deletes. Ok(false) when the
    /// endpoint changed since `before` was read.
    async fn write_if_unchanged(
        &self,
        before: &Endpoint,
        after: Option<&Endpoint>,
    ) -> Result<bool> {
        let p = self.keys.partition_of(&before.workspace);
        let leave = subscriptions(&p, before);
        let mut script = self.scripts.endpoint_write.prepare_invoke();
        script.key(p.endpoint(&before.id)).key(p.config());
        match after {
            None => {
                script
                    .key(&leave)
                    .key(p.workspace_endpoints(&before.workspace))
                    .arg(before.version)
                    .arg("")
                    .arg(&before.id)
                    .arg(leave.len() + 1);
            }
            Some(after) => {
                script
                    .key(&leave)
                    .key(subscriptions(&p, after))
                    .arg(before.version)
                    .arg(self.doc(after)?)
                    .arg(&before.id)
                    .arg(leave.len());
                for (field, value) in limits(after) {
                    script.arg(field).arg(value);
                }
            }
        }
        let mut conn = self.conn.clone();
        let written: i64 = script.invoke_async(&mut conn).await?;
        match written {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(StoreError::NotFound(format!("endpoint {}", before.id))),
        }
    }

    /// How many deliveries a paused endpoint holds: those held, and those
    /// waiting in its lane (nothing is taken from it while it is paused).
    pub async fn held_count(&self, ep: &Endpoint) -> Result<u64> {
        let p = self.keys.partition_of(&ep.workspace);
        let (held, lane): (u64, u64) = redis::pipe()
            .scard(p.held(&ep.id))
            .llen(p.lane(&ep.id))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(held + lane)
    }

    /// Re-seals every endpoint's secrets under the current key (after a key
    /// rotation, or to seal secrets stored in clear). Returns (endpoints,
    /// re-sealed). A document changed meanwhile is left alone (compare and set).
    pub async fn reseal_endpoints(&self) -> Result<(u64, u64)> {
        let Some(sealer) = &self.settings.sealer else {
            return Err(
                hookd_core::sealing::SealError::NoCurrentKey("(none configured)".into()).into(),
            );
        };
        let mut conn = self.conn.clone();
        let index: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.endpoint_index())
            .query_async(&mut conn)
            .await?;
        let (mut total, mut resealed) = (0, 0);
        for (id, ws) in index {
            let p = self.keys.partition_of(&ws);
            let key = p.endpoint(&id);
            let stored: Option<String> = redis::cmd("HGET")
                .arg(&key)
                .arg("doc")
                .query_async(&mut conn)
                .await?;
            let Some(stored) = stored else { continue };
            total += 1;
            let raw: Endpoint = serde_json::from_str(&stored)
                .map_err(|e| StoreError::Corrupt(format!("endpoint {id}: {e}")))?;
            let current = sealer.is_current(&raw.secret)
                && raw
                    .previous_secrets
                    .iter()
                    .all(|p| sealer.is_current(&p.secret))
                && raw.headers.values().all(|v| sealer.is_current(v));
            if current {
                continue;
            }
            let ep = self.parse_doc(&id, stored.as_bytes())?;
            let swapped: i64 = self
                .scripts
                .swap_doc
                .key(&key)
                .key(p.config())
                .arg(&stored)
                .arg(self.doc(&ep)?)
                .invoke_async(&mut conn)
                .await?;
            resealed += swapped as u64;
        }
        Ok((total, resealed))
    }

    /// Resumes an endpoint and releases its held deliveries, in chunks of
    /// [`RESUME_CHUNK`] per script call. Returns how many were released.
    pub async fn resume_endpoint(&self, id: &str, _now_ms: i64) -> Result<u64> {
        let p = self.endpoint_partition(id).await?;
        let mut conn = self.conn.clone();
        let mut total = 0u64;
        loop {
            let chunk: Vec<String> = redis::cmd("SRANDMEMBER")
                .arg(p.held(id))
                .arg(RESUME_CHUNK)
                .query_async(&mut conn)
                .await?;
            let mut call = self.scripts.resume.prepare_invoke();
            call.key(p.endpoint(id))
                .key(p.held(id))
                .key(p.due(id))
                .key(p.ready())
                .key(p.config())
                .arg(id);
            for d in &chunk {
                call.key(p.delivery(d)).arg(d);
            }
            let (released, left): (i64, u64) = call.invoke_async(&mut conn).await?;
            if released < 0 {
                return Err(StoreError::NotFound(format!("endpoint {id}")));
            }
            total += released as u64;
            if left == 0 || chunk.is_empty() {
                return Ok(total);
            }
        }
    }

    /// Deletes an endpoint. Its held and due deliveries fail (reason
    /// `endpoint_deleted`) without an attempt: a paused endpoint is never
    /// resumed on the way out. Its history stays until retention.
    pub async fn delete_endpoint(&self, id: &str, _now_ms: i64) -> Result<Endpoint> {
        for _ in 0..CAS_ROUNDS {
            let ep = self.endpoint(id).await?;
            // Removed with the subscriptions it has now, not those of a
            // version an update replaced meanwhile.
            if !self.write_if_unchanged(&ep, None).await? {
                continue;
            }
            let mut conn = self.conn.clone();
            let _: i64 = redis::cmd("HDEL")
                .arg(self.keys.endpoint_index())
                .arg(id)
                .query_async(&mut conn)
                .await?;
            self.drop_queued(&ep).await?;
            return Ok(ep);
        }
        Err(StoreError::Conflict(format!(
            "endpoint {id} kept changing; try again"
        )))
    }

    /// Fails what waits in the lane of endpoint `id` of partition `p`, once
    /// the endpoint is gone (a lane written by a daemon that had not seen
    /// the delete yet).
    pub async fn drop_lane(&self, p: &PartitionKeys, id: &str) -> Result<u64> {
        self.drop_queued_in(p, id).await
    }

    /// Fails what a deleted endpoint still holds, has due or has in its
    /// lane, a chunk per script call (`lua/drop_queued.lua`); returns how many.
    async fn drop_queued(&self, ep: &Endpoint) -> Result<u64> {
        let p = self.keys.partition_of(&ep.workspace);
        self.drop_queued_in(&p, &ep.id).await
    }

    async fn drop_queued_in(&self, p: &PartitionKeys, id: &str) -> Result<u64> {
        let mut conn = self.conn.clone();
        let mut total = 0;
        loop {
            let (held, due, lane, taken): (Vec<String>, Vec<String>, u64, u64) = redis::pipe()
                .cmd("SRANDMEMBER")
                .arg(p.held(id))
                .arg(RESUME_CHUNK)
                .cmd("ZRANGE")
                .arg(p.due(id))
                .arg(0)
                .arg(RESUME_CHUNK - 1)
                .llen(p.lane(id))
                .zcard(p.taken(id))
                .query_async(&mut conn)
                .await?;
            if held.is_empty() && due.is_empty() && lane == 0 && taken == 0 {
                return Ok(total);
            }
            let mut call = self.scripts.drop_queued.prepare_invoke();
            call.key(p.endpoint(id))
                .key(p.held(id))
                .key(p.due(id))
                .key(p.ready())
                .key(p.lane(id))
                .key(p.taken(id))
                .key(p.log(id))
                .key(p.lanes())
                .key(&p.stream)
                .arg(id)
                .arg(RESUME_CHUNK);
            for id in held.iter().chain(&due) {
                call.key(p.delivery(id)).arg(id);
            }
            let failed: i64 = call.invoke_async(&mut conn).await?;
            if failed < 0 {
                // Created again under the same id meanwhile (it cannot be): leave it be.
                return Ok(total);
            }
            total += failed as u64;
        }
    }
}
