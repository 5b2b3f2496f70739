//! Operator-requested attempts: redelivering one delivery now, and recovery
//! jobs that re-queue many (say, every failed delivery of an endpoint since
//! T), paced by the endpoint's rate limit, with progress kept in Redis.
//!
//! A job scans the endpoint's history log oldest first and re-queues the
//! deliveries whose status matches, each for one manual attempt (the retry
//! policy still applies if it fails). The record step counts the job's
//! finished attempts, so any daemon's progress shows up in the job.
//!
//! A delivery that settled on its first attempt has only its log member:
//! re-queueing it first gives it durable state, its envelope rebuilt from
//! its stream entry (kept as long as the history).

use std::collections::HashMap;

use hookd_core::{DeliveryStatus, Endpoint, Event, EventLimits};
use redis::Value;

use crate::keys::PartitionKeys;
use crate::log::LogRecord;
use crate::value::{int, items};
use crate::{Result, Store, StoreError};

/// What a recovery job re-queues.
#[derive(Debug, Clone)]
pub struct RecoveryRequest {
    pub endpoint: Endpoint,
    pub since_ms: i64,
    pub until_ms: Option<i64>,
    pub status: DeliveryStatus,
}

/// A recovery job and its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub workspace: String,
    pub endpoint_id: String,
    pub since_ms: i64,
    pub until_ms: Option<i64>,
    pub status: DeliveryStatus,
    pub created_at_ms: i64,
    /// Deliveries in the window with the wanted status.
    pub matched: u64,
    /// Of those, re-queued (skipped: expired, or an attempt already in flight).
    pub queued: u64,
    /// Re-queued deliveries whose attempt has been made.
    pub done: u64,
    /// Of those, succeeded.
    pub succeeded: u64,
    /// The scan of the history has finished (`matched` and `queued` are final).
    pub scanned: bool,
}

impl Job {
    /// `scanning`, `delivering` or `completed`.
    pub fn state(&self) -> &'static str {
        if !self.scanned {
            "scanning"
        } else if self.done < self.queued {
            "delivering"
        } else {
            "completed"
        }
    }
}

impl Store {
    /// Queues a delivery for a manual attempt now. Returns false when it
    /// cannot be (expired, endpoint deleted, or an attempt already in flight).
    pub async fn redeliver(&self, workspace: &str, id: &str, now_ms: i64) -> Result<bool> {
        let p = self.keys.partition_of(workspace);
        if let Some((entry, endpoint)) = hookd_core::delivery::parse_delivery_id(id)
            && let Some(r) = self.log_record(&p, endpoint, entry).await?
        {
            self.materialize(&p, endpoint, workspace, &r).await?;
        }
        let queued = self.requeue(&p, "", &[(id.to_string(), now_ms)]).await?;
        Ok(queued == 1)
    }

    /// Gives a delivery known only by its log member durable state, as
    /// settle.lua would have made it, so it can be queued again. Does
    /// nothing when it has durable state already, or when its stream entry
    /// (and so its payload) is gone: re-queueing then finds nothing.
    async fn materialize(
        &self,
        p: &PartitionKeys,
        endpoint: &str,
        workspace: &str,
        r: &LogRecord,
    ) -> Result<()> {
        let mut conn = self.conn.clone();
        let id = hookd_core::delivery::delivery_id(&r.entry_id, endpoint);
        let exists: bool = redis::cmd("EXISTS")
            .arg(p.delivery(&id))
            .query_async(&mut conn)
            .await?;
        if exists {
            return Ok(());
        }
        // The envelope: kept already (copied there when the workspace moved
        // partition, see `repartition.rs`), or rebuilt from the stream entry.
        let envkey = p.envelope(workspace, &r.event_id);
        let kept: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&envkey)
            .query_async(&mut conn)
            .await?;
        let envelope = match kept {
            Some(envelope) => envelope,
            None => match self
                .entry_envelope(&p.stream, &r.entry_id, &r.event_id)
                .await?
            {
                Some(envelope) => envelope,
                None => return Ok(()),
            },
        };
        let created = hookd_core::delivery::entry_time_ms(&r.entry_id).unwrap_or(0);
        let retention = self.retention_secs();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&envkey)
            .arg(envelope.as_slice())
            .arg("EX")
            .arg(retention)
            .ignore()
            .hset_multiple(
                p.delivery(&id),
                &[
                    ("endpoint", endpoint),
                    ("workspace", workspace),
                    ("event_id", &r.event_id),
                    ("event_key", &envkey),
                    ("type", &r.event_type),
                    ("status", r.status.as_str()),
                    ("attempts", if r.attempt.is_some() { "1" } else { "0" }),
                    ("created", &created.to_string()),
                ],
            )
            .ignore()
            .expire(p.delivery(&id), retention as i64)
            .ignore();
        if let Some(a) = &r.attempt {
            let json = serde_json::to_string(a).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            pipe.rpush(p.attempts(&id), json)
                .ignore()
                .expire(p.attempts(&id), retention as i64)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// The envelope of the event in stream entry `entry_id`, if the entry is
    /// still there and carries event `event_id` (a stream written after a
    /// repartition may hold another entry under the same id).
    pub(crate) async fn entry_envelope(
        &self,
        stream: &str,
        entry_id: &str,
        event_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        type Fields = Vec<(String, Vec<u8>)>;
        let entries: Vec<(String, Fields)> = redis::cmd("XRANGE")
            .arg(stream)
            .arg(entry_id)
            .arg(entry_id)
            .query_async(&mut self.conn.clone())
            .await?;
        let Some((_, fields)) = entries.into_iter().next() else {
            return Ok(None);
        };
        let limits = EventLimits {
            max_payload_bytes: usize::MAX / 2,
            max_fields: usize::MAX / 2,
        };
        Ok(Event::from_entry(entry_id, &fields, limits)
            .ok()
            .filter(|event| event.id == event_id)
            .map(|event| event.envelope))
    }

    async fn requeue(&self, p: &PartitionKeys, job: &str, due: &[(String, i64)]) -> Result<u64> {
        if due.is_empty() {
            return Ok(0);
        }
        // The configuration key only routes the call to the partition's node (on a cluster).
        let mut call = self.scripts.requeue.key(p.config());
        call.arg(&p.tag).arg(job);
        for (id, at) in due {
            call.arg(id).arg(at);
        }
        let mut conn = self.conn.clone();
        let reply: Value = call.invoke_async(&mut conn).await?;
        let mut queued = 0;
        for v in items(&reply)? {
            queued += int(v)? as u64;
        }
        Ok(queued)
    }

    /// Records a new job (nothing scanned yet).
    pub async fn create_job(&self, job: &Job) -> Result<()> {
        let p = self.keys.partition_of(&job.workspace);
        let mut conn = self.conn.clone();
        let until = job.until_ms.map(|t| t.to_string()).unwrap_or_default();
        let _: i64 = redis::cmd("HSET")
            .arg(self.keys.job_index())
            .arg(&job.id)
            .arg(&job.workspace)
            .query_async(&mut conn)
            .await?;
        redis::pipe()
            .atomic()
            .hset_multiple(
                p.job(&job.id),
                &[
                    ("workspace", job.workspace.as_str()),
                    ("endpoint", job.endpoint_id.as_str()),
                    ("since", &job.since_ms.to_string()),
                    ("until", &until),
                    ("status", job.status.as_str()),
                    ("created", &job.created_at_ms.to_string()),
                    ("matched", "0"),
                    ("queued", "0"),
                    ("done", "0"),
                    ("succeeded", "0"),
                    ("scanned", "0"),
                ],
            )
            .ignore()
            .expire(p.job(&job.id), self.retention_secs() as i64)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Recovery jobs (of one workspace, or all) still within the retention,
    /// newest first.
    pub async fn jobs(&self, workspace: Option<&str>) -> Result<Vec<Job>> {
        let mut conn = self.conn.clone();
        let index: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.job_index())
            .query_async(&mut conn)
            .await?;
        let mut jobs = Vec::new();
        for (id, ws) in index {
            if workspace.is_some_and(|w| w != ws) {
                continue;
            }
            match self.job(&id).await {
                Ok(job) => jobs.push(job),
                // Expired since (housekeeping forgets its index entry).
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        jobs.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
        Ok(jobs)
    }

    /// A job and its progress now.
    pub async fn job(&self, id: &str) -> Result<Job> {
        let mut conn = self.conn.clone();
        let ws: Option<String> = redis::cmd("HGET")
            .arg(self.keys.job_index())
            .arg(id)
            .query_async(&mut conn)
            .await?;
        let not_found = || StoreError::NotFound(format!("job {id}"));
        let ws = ws.ok_or_else(not_found)?;
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.partition_of(&ws).job(id))
            .query_async(&mut conn)
            .await?;
        if h.is_empty() {
            return Err(not_found());
        }
        let num = |f: &str| h.get(f).and_then(|v| v.parse::<i64>().ok());
        Ok(Job {
            id: id.to_string(),
            workspace: ws,
            endpoint_id: h.get("endpoint").cloned().unwrap_or_default(),
            since_ms: num("since").unwrap_or(0),
            until_ms: num("until"),
            status: h
                .get("status")
                .and_then(|s| DeliveryStatus::parse(s))
                .unwrap_or(DeliveryStatus::Failed),
            created_at_ms: num("created").unwrap_or(0),
            matched: num("matched").unwrap_or(0) as u64,
            queued: num("queued").unwrap_or(0) as u64,
            done: num("done").unwrap_or(0) as u64,
            succeeded: num("succeeded").unwrap_or(0) as u64,
            scanned: num("scanned") == Some(1),
        })
    }

    /// Runs a job's scan: re-queues every matching delivery, due one after
    /// another at the endpoint's rate limit (all at once without one), and
    /// updates the job's counts as it goes.
    pub async fn run_recovery(
        &self,
        job_id: &str,
        req: &RecoveryRequest,
        now_ms: i64,
    ) -> Result<()> {
        const PAGE: usize = 500;
        let ep = &req.endpoint;
        let p = self.keys.partition_of(&ep.workspace);
        let log = p.log(&ep.id);
        let spacing_ms = ep.rate_limit.map_or(0.0, |r| 1000.0 / f64::from(r.max(1)));
        let max = req.until_ms.map_or("+inf".to_string(), |t| t.to_string());
        let mut conn = self.conn.clone();
        let (mut offset, mut matched_total) = (0, 0u64);
        loop {
            let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(&log)
                .arg(req.since_ms)
                .arg(&max)
                .arg("LIMIT")
                .arg(offset)
                .arg(PAGE)
                .query_async(&mut conn)
                .await?;
            offset += members.len();
            let records: Vec<LogRecord> = members
                .iter()
                .filter_map(|m| LogRecord::decode(m))
                .collect();
            let ids: Vec<String> = records
                .iter()
                .map(|r| hookd_core::delivery::delivery_id(&r.entry_id, &ep.id))
                .collect();
            // The status now: durable state's where there is some, else the log's.
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.hget(p.delivery(id), "status");
            }
            let statuses: Vec<Option<String>> = if ids.is_empty() {
                Vec::new()
            } else {
                pipe.query_async(&mut conn).await?
            };
            let mut due = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for ((id, r), status) in ids.iter().zip(&records).zip(statuses) {
                let now = status.as_deref().unwrap_or(r.status.as_str());
                if now == req.status.as_str() && seen.insert(id.clone()) {
                    if status.is_none() {
                        self.materialize(&p, &ep.id, &ep.workspace, r).await?;
                    }
                    let at = now_ms + (matched_total as f64 * spacing_ms) as i64;
                    due.push((id.clone(), at));
                    matched_total += 1;
                }
            }
            let queued = self.requeue(&p, job_id, &due).await?;
            let _: () = redis::pipe()
                .hincr(p.job(job_id), "matched", due.len())
                .ignore()
                .hincr(p.job(job_id), "queued", queued)
                .ignore()
                .query_async(&mut conn)
                .await?;
            if members.len() < PAGE {
                break;
            }
        }
        let _: i64 = redis::cmd("HSET")
            .arg(p.job(job_id))
            .arg("scanned")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}
