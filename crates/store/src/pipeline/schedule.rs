//! The due queue: claiming deliveries whose time has come (with a lease),
//! recording each attempt and what follows it, releasing claims on shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hookd_core::{Attempt, AttemptTrigger, DeliveryStatus, Endpoint};
use redis::Value;

use crate::keys::PartitionKeys;
use crate::value::{bytes, int, items, string};
use crate::{Result, Store, StoreError};

/// One finished attempt, to be recorded.
#[derive(Debug, Clone)]
pub struct Record {
    /// The delivery attempted.
    pub delivery_id: String,
    /// Its endpoint.
    pub endpoint: String,
    /// Its workspace.
    pub workspace: String,
    /// The claim's lease token: the record is written only while it is the
    /// delivery's latest claim.
    pub lease: String,
    /// The recovery job that queued this attempt, if any.
    pub job: Option<String>,
    /// An ordered endpoint's delivery: its event's ordering key (once it
    /// ends, the key's next delivery goes).
    pub ordering_key: Option<String>,
    /// When the delivery was made: its attempts expire with it, a retention later.
    pub delivery_created_ms: i64,
    /// The attempt made.
    pub attempt: Attempt,
    /// What it leaves the delivery in.
    pub outcome: Outcome,
    /// Pauses the endpoint too (a `410 Gone`).
    pub pause_reason: Option<String>,
}

/// Most deliveries one claim takes (the script passes them to single
/// variadic commands, and Lua unpacks at most a few thousand values).
const MAX_CLAIM: usize = 1000;

/// Most due deliveries one claim looks at per endpoint (a paused or deleted
/// endpoint's queue moves this many per claim).
const CHUNK: usize = 500;

/// A delivery claimed for one attempt, with what is needed to make it.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The delivery to attempt.
    pub delivery_id: String,
    /// Shared by every delivery of the endpoint claimed in the same batch.
    pub endpoint: Arc<Endpoint>,
    /// Attempts made before this one.
    pub attempts_made: u32,
    /// When the delivery was made (Unix ms).
    pub created_at_ms: i64,
    /// Its event's id.
    pub event_id: String,
    /// Its event's type.
    pub event_type: String,
    /// Shared by every delivery of the event claimed in the same batch.
    pub envelope: Bytes,
    /// An operator asked for this attempt (redeliver or recover).
    pub manual: bool,
    /// The producer's trace context (from the stream entry; kept in
    /// durable state for later attempts).
    pub trace: Option<Arc<hookd_core::trace::TraceParent>>,
    /// The claim's lease token (empty for a first attempt from the stream).
    pub lease: String,
    /// The recovery job that queued this attempt, if any.
    pub job: Option<String>,
    /// An ordered endpoint's delivery: its event's ordering key.
    pub ordering_key: Option<String>,
    /// Its `X-Hookd-Sequence` (an ordered endpoint's delivery).
    pub sequence: Option<u64>,
}

/// When the circuit breaker pauses an endpoint: after `trip_after`
/// consecutive failed attempts (0: never) spanning at least `trip_window`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Breaker {
    /// Failures in a row that trip it (0: never).
    pub trip_after: u32,
    /// How long the failures must span at least.
    pub trip_window: Duration,
}

/// An endpoint the circuit breaker, or a receiver's `410 Gone`, just paused.
#[derive(Debug, Clone)]
pub struct Tripped {
    /// The endpoint, as paused.
    pub endpoint: Endpoint,
    /// A `410 Gone` paused it (`failures` is then 0, `last_error` the reason).
    pub gone: bool,
    /// Failed attempts in a row.
    pub failures: u64,
    /// When the first of them was made (Unix ms).
    pub failing_since_ms: i64,
    /// The last one's error.
    pub last_error: String,
}

/// What became of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Written.
    Stored,
    /// The delivery no longer exists (it expired).
    Expired,
    /// Its claim was taken over (this daemon was too slow): nothing written.
    Superseded,
    /// A key of its holds another type: the delivery ends `failed`
    /// (`unrecordable`) where its hash allows, and leaves its queue.
    Refused,
}

/// The state an attempt leaves its delivery in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Done: the receiver took it.
    Succeeded,
    /// Another attempt at this time (Unix ms).
    RetryAt(i64),
    /// No attempt left.
    Failed,
}

/// How many attempts may be in flight at once, across every daemon.
#[derive(Debug, Clone, Copy)]
pub struct ConcurrencyLimits {
    /// Per endpoint, for endpoints that set no `max_concurrency`.
    pub endpoint_default: u32,
    /// Per endpoint, whatever the endpoint asks for (the operator's bound).
    pub endpoint_max: u32,
    /// Per workspace, over all its endpoints (0: no limit), so one tenant
    /// cannot hold every worker.
    pub workspace: u32,
}

impl Store {
    /// Claims up to `limit` due deliveries, leasing each for `lease`, with a
    /// fair share per endpoint and at most its max concurrency in flight
    /// (bounded by `limits`), and at most `limits.workspace` per workspace.
    /// Lease expiry is judged by Redis's clock alone: the caller passes no time.
    /// Each claimed delivery carries `token` as its lease token.
    pub async fn claim_due(
        &self,
        p: &PartitionKeys,
        lease: Duration,
        limit: usize,
        limits: &ConcurrencyLimits,
        token: &str,
        group: &str,
    ) -> Result<Vec<Claimed>> {
        let limit = limit.clamp(1, MAX_CLAIM);
        let mut conn = self.conn.clone();
        // 1. Which endpoints have something due now (Redis's clock).
        let ready: Vec<Value> = self
            .scripts
            .ready
            .key(p.ready())
            .arg(limit)
            .invoke_async(&mut conn)
            .await?;
        let Some((now, endpoints)) = ready.split_first() else {
            return Ok(Vec::new());
        };
        if endpoints.is_empty() {
            return Ok(Vec::new());
        }
        let now = int(now)?;
        let endpoints: Vec<String> = endpoints.iter().map(string).collect::<Result<_>>()?;
        // 2. Their workspaces and due candidates; 3. the candidates' events:
        // the keys the claim step will touch, so it can declare them all.
        let per_endpoint = limit.div_ceil(endpoints.len()).clamp(1, CHUNK);
        let mut pipe = redis::pipe();
        for ep in &endpoints {
            pipe.cmd("HMGET")
                .arg(p.endpoint(ep))
                .arg("ws")
                .arg("paused")
                .arg("max_concurrency");
            pipe.cmd("ZRANGEBYSCORE")
                .arg(p.due(ep))
                .arg("-inf")
                .arg(now)
                .arg("LIMIT")
                .arg(0)
                .arg(per_endpoint);
            pipe.cmd("ZCOUNT").arg(p.leases(ep)).arg(now).arg("+inf");
        }
        let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
        let mut found: Vec<(String, Vec<String>)> = Vec::new();
        for (ep, reply) in endpoints.iter().zip(replies.chunks_exact(3)) {
            let fields = items(&reply[0])?;
            let workspace = fields.first().and_then(|v| string(v).ok());
            let paused = fields.get(1).and_then(bytes) == Some(b"1");
            let mut ids = items(&reply[1])?
                .iter()
                .map(string)
                .collect::<Result<Vec<_>>>()?;
            if workspace.is_some() && !paused {
                // No more candidates than the endpoint has room for (and a
                // few over, for candidates the claim finds not startable):
                // each costs the claim its keys and a read.
                let cap = fields
                    .get(2)
                    .and_then(|v| string(v).ok())
                    .and_then(|c| c.parse::<u64>().ok())
                    .unwrap_or(u64::from(limits.endpoint_default))
                    .min(u64::from(limits.endpoint_max));
                let free = cap.saturating_sub(int(&reply[2]).unwrap_or(0).max(0) as u64);
                ids.truncate((free + free / 4 + 4) as usize);
            }
            if (workspace.is_none() || paused) && ids.len() == per_endpoint {
                // Deleted or paused: its queue moves a chunk at a time, not a share.
                ids = redis::cmd("ZRANGEBYSCORE")
                    .arg(p.due(ep))
                    .arg("-inf")
                    .arg(now)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(CHUNK)
                    .query_async(&mut conn)
                    .await?;
            }
            let workspace = match workspace {
                Some(ws) => ws,
                // Endpoints written before the hash carried `ws` name it in their document.
                None => {
                    let doc: Option<Vec<u8>> = redis::cmd("HGET")
                        .arg(p.endpoint(ep))
                        .arg("doc")
                        .query_async(&mut conn)
                        .await?;
                    doc.and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
                        .and_then(|d| d.get("workspace")?.as_str().map(str::to_string))
                        .unwrap_or_default()
                }
            };
            found.push((workspace, ids));
        }
        let candidates: Vec<&String> = found.iter().flat_map(|(_, ids)| ids).collect();
        let events: Vec<(Option<String>, Option<String>)> = if candidates.is_empty() {
            Vec::new()
        } else {
            let mut pipe = redis::pipe();
            for id in &candidates {
                pipe.cmd("HMGET")
                    .arg(p.delivery(id))
                    .arg("workspace")
                    .arg("event_id");
            }
            pipe.query_async(&mut conn).await?
        };
        // 4. The claim itself, every key declared.
        let second = now.div_euclid(1000);
        let mut call = self.scripts.claim.key(p.ready());
        call.key(&p.stream);
        for (ep, (workspace, _)) in endpoints.iter().zip(&found) {
            call.key(p.endpoint(ep))
                .key(p.due(ep))
                .key(p.leases(ep))
                .key(p.held(ep))
                .key(p.workspace_leases(workspace))
                .key(p.endpoint_rate(ep, second));
        }
        for (id, event) in candidates.iter().zip(&events) {
            let envelope = match event {
                (Some(ws), Some(event_id)) => p.envelope(ws, event_id),
                // No event: the step drops the candidate (the key is never read).
                _ => p.delivery(id),
            };
            call.key(p.delivery(id)).key(envelope);
        }
        call.arg(lease.as_millis() as u64)
            .arg(limit)
            .arg(limits.endpoint_default.min(limits.endpoint_max))
            .arg(limits.endpoint_max)
            .arg(if limits.workspace == 0 {
                u32::MAX
            } else {
                limits.workspace
            })
            .arg(token)
            .arg(group);
        let (before, after) = p.order_reads_affixes();
        call.arg(before)
            .arg(after)
            .arg(p.order_prefix())
            .arg(p.sequence_prefix())
            .arg(self.retention_secs())
            .arg(endpoints.len());
        for (ep, (_, ids)) in endpoints.iter().zip(&found) {
            call.arg(ep).arg(ids.len());
        }
        for id in &candidates {
            call.arg(*id);
        }
        let reply: Value = call.invoke_async(&mut conn).await?;
        let Value::Array(flat) = reply else {
            return Err(StoreError::Reply(format!("claim: {reply:?}")));
        };
        // Per endpoint: id, doc, count, then CLAIM_FIELDS per delivery (see claim.lua).
        let mut reply = flat.into_iter();
        let mut next = || {
            reply
                .next()
                .ok_or_else(|| StoreError::Reply("claim: reply cut short".into()))
        };
        let mut out = Vec::new();
        let mut envelopes: HashMap<String, Bytes> = HashMap::new();
        while let Ok(endpoint_id) = next() {
            let endpoint_id = string(&endpoint_id)?;
            let doc = next()?;
            // One endpoint that cannot be read (a sealing key not configured
            // here yet, a newer document format) costs only its own
            // deliveries: they stay leased and come back when the lease ends.
            let endpoint = match self.parse_doc(&endpoint_id, bytes(&doc).unwrap_or_default()) {
                Ok(ep) => Some(Arc::new(ep)),
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint_id, error = %e, "cannot read an endpoint; its claimed deliveries wait for their lease to end");
                    None
                }
            };
            for _ in 0..int(&next()?)? {
                let delivery_id = string(&next()?)?;
                let attempts_made = int(&next()?)? as u32;
                let created_at_ms = int(&next()?)?;
                let event_id = string(&next()?)?;
                let event_type = string(&next()?)?;
                let event_key = string(&next()?)?;
                // Sent once per reply; later deliveries of the event share it.
                let envelope = match next()? {
                    Value::BulkString(b) => {
                        let b = Bytes::from(b);
                        envelopes.insert(event_key, b.clone());
                        b
                    }
                    // An ordered delivery's: its stream entry's fields.
                    Value::Array(fields) => {
                        let pairs: Vec<(String, Vec<u8>)> = fields
                            .chunks_exact(2)
                            .filter_map(|f| Some((string(&f[0]).ok()?, bytes(&f[1])?.to_vec())))
                            .collect();
                        let entry = hookd_core::delivery::parse_delivery_id(&delivery_id)
                            .map(|(entry, _)| entry)
                            .unwrap_or_default();
                        let b = crate::control::recovery::envelope_in(entry, &pairs, &event_id)
                            .map(Bytes::from)
                            .ok_or_else(|| {
                                StoreError::Corrupt(format!(
                                    "claim: the stream entry of {delivery_id} is not its event"
                                ))
                            })?;
                        envelopes.insert(event_key, b.clone());
                        b
                    }
                    _ => envelopes.get(&event_key).cloned().ok_or_else(|| {
                        StoreError::Reply(format!("claim: no envelope for {delivery_id}"))
                    })?,
                };
                let manual = bytes(&next()?).is_some_and(|b| b == b"1");
                let traceparent = string(&next()?).unwrap_or_default();
                let tracestate = string(&next()?).unwrap_or_default();
                let job = string(&next()?).unwrap_or_default();
                let ordering_key = string(&next()?).unwrap_or_default();
                let sequence = string(&next()?).ok().and_then(|s| s.parse().ok());
                let trace = (!traceparent.is_empty())
                    .then(|| {
                        let state = (!tracestate.is_empty()).then_some(tracestate.as_str());
                        hookd_core::trace::TraceParent::parse(&traceparent, state)
                    })
                    .flatten()
                    .map(Arc::new);
                let Some(endpoint) = &endpoint else { continue };
                out.push(Claimed {
                    delivery_id,
                    endpoint: endpoint.clone(),
                    attempts_made,
                    created_at_ms,
                    event_id,
                    event_type,
                    envelope,
                    manual,
                    trace,
                    lease: token.to_string(),
                    job: (!job.is_empty()).then_some(job),
                    ordering_key: (!ordering_key.is_empty()).then_some(ordering_key),
                    sequence,
                });
            }
        }
        Ok(out)
    }

    /// Records attempts and schedules what follows each, in one atomic step,
    /// and runs the circuit breaker (`lua/record.lua`). Fenced: an attempt
    /// whose claim was taken over by a later one records nothing. Returns,
    /// per attempt, what became of it; and the endpoints the breaker paused.
    pub async fn record_attempts(
        &self,
        p: &PartitionKeys,
        records: &[Record],
        breaker: Breaker,
    ) -> Result<(Vec<Recorded>, Vec<Tripped>)> {
        if records.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let now_ms = hookd_core::time::now_ms();
        let mut endpoints: Vec<(&str, &str)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for r in records {
            if !index.contains_key(r.endpoint.as_str()) {
                endpoints.push((&r.endpoint, &r.workspace));
                index.insert(&r.endpoint, endpoints.len());
            }
        }
        let mut call = self.scripts.record.prepare_invoke();
        call.key(p.ready()).key(p.config()).key(p.ship());
        for (ep, ws) in &endpoints {
            call.key(p.endpoint(ep))
                .key(p.leases(ep))
                .key(p.due(ep))
                .key(p.workspace_leases(ws));
        }
        for r in records {
            call.key(p.delivery(&r.delivery_id))
                .key(p.attempts(&r.delivery_id))
                .key(p.job(r.job.as_deref().unwrap_or_default()))
                .key(p.order(&r.endpoint, r.ordering_key.as_deref().unwrap_or_default()));
        }
        call.arg(breaker.trip_after)
            .arg(breaker.trip_window.as_millis() as u64)
            .arg(self.settings.ship_backlog)
            .arg(p.delivery(""))
            .arg(endpoints.len());
        for (ep, _) in &endpoints {
            call.arg(*ep);
        }
        for r in records {
            let (status, retry_in) = match r.outcome {
                Outcome::Succeeded => (DeliveryStatus::Succeeded, 0),
                Outcome::RetryAt(at) => (DeliveryStatus::Retrying, (at - now_ms).max(0)),
                Outcome::Failed => (DeliveryStatus::Failed, 0),
            };
            let json = serde_json::to_string(&r.attempt)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let expires_at_ms = r.delivery_created_ms + self.retention_secs() as i64 * 1000;
            call.arg(index[r.endpoint.as_str()])
                .arg(&r.delivery_id)
                .arg(&r.lease)
                .arg(json)
                .arg(r.attempt.number)
                .arg(status.as_str())
                .arg(retry_in)
                .arg(r.pause_reason.as_deref().unwrap_or(""))
                .arg(r.attempt.error.as_deref().unwrap_or(""))
                .arg(if r.attempt.trigger == AttemptTrigger::Manual {
                    "1"
                } else {
                    "0"
                })
                .arg(expires_at_ms)
                .arg(r.job.as_deref().unwrap_or_default());
        }
        let reply: Value = call.invoke_async(&mut self.conn.clone()).await?;
        let (results, tripped) = match items(&reply)? {
            [results, tripped] => (items(results)?, items(tripped)?),
            _ => return Err(StoreError::Reply(format!("record: {reply:?}"))),
        };
        let results = results
            .iter()
            .map(|v| {
                Ok(match int(v)? {
                    1 => Recorded::Stored,
                    0 => Recorded::Expired,
                    -1 => Recorded::Superseded,
                    _ => Recorded::Refused,
                })
            })
            .collect::<Result<_>>()?;
        Ok((results, self.parse_tripped(tripped)?))
    }

    /// The endpoints a script's circuit breaker paused (5 values each).
    pub(crate) fn parse_tripped(&self, tripped: &[Value]) -> Result<Vec<Tripped>> {
        let mut out = Vec::new();
        for t in tripped.chunks_exact(5) {
            let endpoint = self.parse_doc(&string(&t[0])?, bytes(&t[1]).unwrap_or_default())?;
            let failures = int(&t[2])? as u64;
            out.push(Tripped {
                endpoint,
                gone: failures == 0,
                failures,
                failing_since_ms: int(&t[3])?,
                last_error: string(&t[4])?,
            });
        }
        Ok(out)
    }

    /// Publishes an operational event (`type` plus fields) on the operational stream.
    pub async fn operational_event(&self, fields: &[(&str, String)]) -> Result<()> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.keys.operational())
            .arg("MAXLEN")
            .arg("~")
            .arg(100_000)
            .arg("*");
        for (k, v) in fields {
            cmd.arg(*k).arg(v);
        }
        let mut conn = self.conn.clone();
        let _: String = cmd.query_async(&mut conn).await?;
        Ok(())
    }

    /// Gives claimed deliveries back, due now (on shutdown).
    /// `claims` holds (delivery id, endpoint id) pairs.
    pub async fn release(
        &self,
        p: &PartitionKeys,
        claims: &[(String, String)],
        now_ms: i64,
    ) -> Result<()> {
        if claims.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (id, endpoint) in claims {
            pipe.cmd("ZADD")
                .arg(p.due(endpoint))
                .arg("XX")
                .arg(now_ms)
                .arg(id)
                .ignore();
            pipe.zrem(p.leases(endpoint), id).ignore();
            pipe.cmd("ZADD")
                .arg(p.ready())
                .arg("LT")
                .arg(now_ms)
                .arg(endpoint)
                .ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Drops history log members older than the retention (durable state
    /// expires on its own TTL), and forgets logs that are gone.
    pub async fn trim_history(&self, now_ms: i64) -> Result<()> {
        let cutoff = now_ms - self.settings.history_retention.as_millis() as i64;
        let mut conn = self.conn.clone();
        for p in self.keys.all_partitions() {
            let logs: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(p.logs())
                .query_async(&mut conn)
                .await?;
            if logs.is_empty() {
                continue;
            }
            let ids: Vec<&String> = logs.keys().collect();
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.zrembyscore(p.log(id), "-inf", cutoff)
                    .ignore()
                    .exists(p.log(id));
            }
            let exists: Vec<bool> = pipe.query_async(&mut conn).await?;
            let gone: Vec<&&String> = ids
                .iter()
                .zip(exists)
                .filter(|(_, e)| !e)
                .map(|(id, _)| id)
                .collect();
            if !gone.is_empty() {
                let _: i64 = redis::cmd("HDEL")
                    .arg(p.logs())
                    .arg(gone)
                    .query_async(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// Forgets ids whose records expired: members of held sets whose
    /// delivery is gone, and recovery-job index entries whose job is gone.
    /// Scans in chunks (SSCAN/HSCAN), so no single command is long.
    pub async fn forget_expired(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        for (id, ws) in self.endpoint_ids().await? {
            let p = self.keys.partition_of(&ws);
            let held = p.held(&id);
            let mut cursor = 0u64;
            loop {
                let (next, ids): (u64, Vec<String>) = redis::cmd("SSCAN")
                    .arg(&held)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(500)
                    .query_async(&mut conn)
                    .await?;
                self.forget_missing(
                    &ids,
                    |d| p.delivery(d),
                    |pipe, gone| {
                        pipe.cmd("SREM").arg(&held).arg(gone).ignore();
                    },
                )
                .await?;
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        let index = self.keys.job_index();
        let mut cursor = 0u64;
        loop {
            let (next, pairs): (u64, Vec<String>) = redis::cmd("HSCAN")
                .arg(&index)
                .arg(cursor)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await?;
            let jobs: HashMap<String, String> = pairs
                .chunks_exact(2)
                .map(|kv| (kv[0].clone(), kv[1].clone()))
                .collect();
            let ids: Vec<String> = jobs.keys().cloned().collect();
            self.forget_missing(
                &ids,
                |job| self.keys.partition_of(&jobs[job]).job(job),
                |pipe, gone| {
                    pipe.cmd("HDEL").arg(&index).arg(gone).ignore();
                },
            )
            .await?;
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(())
    }

    /// Of `ids`, those whose record key (`key_of`) no longer exists are
    /// passed to `forget`, in one pipeline.
    async fn forget_missing(
        &self,
        ids: &[String],
        key_of: impl Fn(&str) -> String,
        forget: impl Fn(&mut redis::Pipeline, &[&String]),
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        // The records may be in several partitions: on a cluster, one
        // command each (a pipeline stays in one slot); housekeeping, not hot.
        let exists: Vec<bool> = if self.conn.is_cluster() {
            let mut exists = Vec::with_capacity(ids.len());
            for id in ids {
                exists.push(
                    redis::cmd("EXISTS")
                        .arg(key_of(id))
                        .query_async(&mut conn)
                        .await?,
                );
            }
            exists
        } else {
            let mut pipe = redis::pipe();
            for id in ids {
                pipe.exists(key_of(id));
            }
            pipe.query_async(&mut conn).await?
        };
        let gone: Vec<&String> = ids
            .iter()
            .zip(exists)
            .filter(|(_, e)| !e)
            .map(|(id, _)| id)
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        forget(&mut pipe, &gone);
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }
}
