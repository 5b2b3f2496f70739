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
//! its stream entry (kept as long as the history). One that Redis has
//! forgotten altogether is given it back from long-term history
//! (`Store::restore`, called by hookd-history's reader).

use std::collections::HashMap;

use hookd_core::{Delivery, DeliveryStatus, Endpoint, Event, EventLimits};
use redis::Value;

use crate::keys::PartitionKeys;
use crate::log::LogRecord;
use crate::value::{int, items};
use crate::{Result, Store, StoreError};

/// What a recovery job re-queues.
#[derive(Debug, Clone)]
pub struct RecoveryRequest {
    /// The endpoint whose deliveries are queued again.
    pub endpoint: Endpoint,
    /// Created at or after (ms).
    pub since_ms: i64,
    /// Created at or before (ms); `None`: no end.
    pub until_ms: Option<i64>,
    /// The status of the deliveries queued again.
    pub status: DeliveryStatus,
    /// Only these deliveries (by id) of those the window and status match:
    /// a selection; `None`: all of them.
    pub only: Option<std::collections::HashSet<String>>,
}

/// A recovery job and its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// `job_...`.
    pub id: String,
    /// The workspace of its endpoint.
    pub workspace: String,
    /// The endpoint whose deliveries it queues.
    pub endpoint_id: String,
    /// Created at or after (ms).
    pub since_ms: i64,
    /// Created at or before (ms).
    pub until_ms: Option<i64>,
    /// The status of the deliveries it queues.
    pub status: DeliveryStatus,
    /// When the job was started (Unix ms).
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
    /// Why the job stopped before the end (`None`: it did not).
    pub error: Option<String>,
}

impl Job {
    /// `scanning`, `delivering`, `completed` or `failed`.
    pub fn state(&self) -> &'static str {
        if self.error.is_some() {
            "failed"
        } else if !self.scanned {
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

    /// Takes a delivery out of its ordered key (`lua/skip.lua`): it ends
    /// `failed` (`skipped`) and, when it was the key's head, the next
    /// delivery of the key goes. `false` when it is not waiting in an order
    /// (it ended, or its endpoint does not order by key).
    pub async fn skip(&self, workspace: &str, id: &str) -> Result<bool> {
        let p = self.keys.partition_of(workspace);
        let Some((_, endpoint)) = hookd_core::delivery::parse_delivery_id(id) else {
            return Ok(false);
        };
        let mut conn = self.conn.clone();
        let key: Option<String> = redis::cmd("HGET")
            .arg(p.delivery(id))
            .arg("okey")
            .query_async(&mut conn)
            .await?;
        let Some(key) = key else { return Ok(false) };
        let skipped: i64 = self
            .scripts
            .skip
            .key(p.delivery(id))
            .key(p.order(endpoint, &key))
            .key(p.due(endpoint))
            .key(p.held(endpoint))
            .key(p.ready())
            .arg(id)
            .arg(endpoint)
            .arg(p.delivery(""))
            .invoke_async(&mut conn)
            .await?;
        Ok(skipped == 1)
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
        let id = hookd_core::delivery::delivery_id(&r.entry_id, endpoint);
        if self.has_state(p, &id).await? {
            return Ok(());
        }
        let d = Delivery {
            id,
            endpoint_id: endpoint.to_string(),
            workspace: workspace.to_string(),
            event_id: r.event_id.clone(),
            event_type: r.event_type.clone(),
            status: r.status,
            attempts_made: u32::from(r.attempt.is_some()),
            created_at_ms: hookd_core::delivery::entry_time_ms(&r.entry_id).unwrap_or(0),
            next_attempt_at_ms: None,
            attempts: r.attempt.iter().cloned().collect(),
            ordering_key: None,
            sequence: None,
            waiting_for: None,
        };
        match self.delivery_envelope(&d).await? {
            Some(envelope) => self.write_state(p, &d, &envelope).await,
            None => Ok(()),
        }
    }

    /// Gives a delivery that Redis no longer holds (its history copied out
    /// to long-term storage, with its payload) durable state again, so it
    /// can be queued. Does nothing when it has durable state already.
    pub async fn restore(&self, d: &Delivery, envelope: &[u8]) -> Result<()> {
        let p = self.keys.partition_of(&d.workspace);
        if self.has_state(&p, &d.id).await? {
            return Ok(());
        }
        self.write_state(&p, d, envelope).await
    }

    async fn has_state(&self, p: &PartitionKeys, id: &str) -> Result<bool> {
        Ok(redis::cmd("EXISTS")
            .arg(p.delivery(id))
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// Whether Redis knows delivery `id` of `workspace`: durable state, or
    /// its log member.
    pub async fn holds_delivery(&self, workspace: &str, id: &str) -> Result<bool> {
        let p = self.keys.partition_of(workspace);
        if self.has_state(&p, id).await? {
            return Ok(true);
        }
        Ok(match hookd_core::delivery::parse_delivery_id(id) {
            Some((entry, endpoint)) => self.log_record(&p, endpoint, entry).await?.is_some(),
            None => false,
        })
    }

    /// Durable state for `d` (as settle.lua writes it) and its envelope,
    /// both for the history retention from now.
    async fn write_state(&self, p: &PartitionKeys, d: &Delivery, envelope: &[u8]) -> Result<()> {
        let envkey = p.envelope(&d.workspace, &d.event_id);
        let retention = self.retention_secs();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&envkey)
            .arg(envelope)
            .arg("EX")
            .arg(retention)
            .ignore()
            .hset_multiple(
                p.delivery(&d.id),
                &[
                    ("endpoint", d.endpoint_id.as_str()),
                    ("workspace", &d.workspace),
                    ("event_id", &d.event_id),
                    ("event_key", &envkey),
                    ("type", &d.event_type),
                    ("status", d.status.as_str()),
                    ("attempts", &d.attempts_made.to_string()),
                    ("created", &d.created_at_ms.to_string()),
                ],
            )
            .ignore()
            .expire(p.delivery(&d.id), retention as i64)
            .ignore();
        if !d.attempts.is_empty() {
            let json = d
                .attempts
                .iter()
                .map(serde_json::to_string)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            pipe.rpush(p.attempts(&d.id), json)
                .ignore()
                .expire(p.attempts(&d.id), retention as i64)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// The body delivery `d` sends: its kept envelope (kept for a delivery
    /// that outlived its first attempt, or copied there when its workspace
    /// moved partition, see `repartition.rs`), else rebuilt from its stream
    /// entry (`None` once both are gone).
    pub async fn delivery_envelope(&self, d: &Delivery) -> Result<Option<Vec<u8>>> {
        let p = self.keys.partition_of(&d.workspace);
        let kept: Option<Vec<u8>> = redis::cmd("GET")
            .arg(p.envelope(&d.workspace, &d.event_id))
            .query_async(&mut self.conn.clone())
            .await?;
        if kept.is_some() {
            return Ok(kept);
        }
        match hookd_core::delivery::parse_delivery_id(&d.id) {
            Some((entry, _)) => self.entry_envelope(&p.stream, entry, &d.event_id).await,
            None => Ok(None),
        }
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
        // (Names as bytes: an entry with a name that is not UTF-8 carries
        // no event hookd delivers, and must not fail the read.)
        type Fields = Vec<(Vec<u8>, Vec<u8>)>;
        let entries: Vec<(String, Fields)> = redis::cmd("XRANGE")
            .arg(stream)
            .arg(entry_id)
            .arg(entry_id)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(entries.into_iter().next().and_then(|(_, fields)| {
            let fields: Option<Vec<(String, Vec<u8>)>> = fields
                .into_iter()
                .map(|(k, v)| Some((String::from_utf8(k).ok()?, v)))
                .collect();
            envelope_in(entry_id, &fields?, event_id)
        }))
    }

    async fn requeue(&self, p: &PartitionKeys, job: &str, due: &[(String, i64)]) -> Result<u64> {
        if due.is_empty() {
            return Ok(0);
        }
        let mut call = self.scripts.requeue.key(p.ready());
        call.arg(job);
        for (id, at) in due {
            // The delivery's id names its endpoint; an id that does not is no delivery.
            let Some((_, endpoint)) = hookd_core::delivery::parse_delivery_id(id) else {
                continue;
            };
            call.key(p.delivery(id))
                .key(p.endpoint(endpoint))
                .key(p.leases(endpoint))
                .key(p.held(endpoint))
                .key(p.due(endpoint))
                .arg(id)
                .arg(endpoint)
                .arg(at);
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
            error: h.get("error").cloned(),
        })
    }

    /// Runs a job's scan of the history in Redis (the endpoint's log):
    /// re-queues every matching delivery, due one after another at the
    /// endpoint's rate limit (all at once without one), and updates the
    /// job's counts as it goes. The scan is finished with
    /// [`Store::finish_scan`] (after the long-term history's, if any).
    pub async fn run_recovery(
        &self,
        job_id: &str,
        req: &RecoveryRequest,
        now_ms: i64,
    ) -> Result<LogScan> {
        const PAGE: usize = 500;
        let ep = &req.endpoint;
        let p = self.keys.partition_of(&ep.workspace);
        let log = p.log(&ep.id);
        let max = req.until_ms.map_or("+inf".to_string(), |t| t.to_string());
        let mut conn = self.conn.clone();
        let mut offset = 0;
        let mut scan = LogScan::default();
        loop {
            let members: Vec<(String, i64)> = redis::cmd("ZRANGEBYSCORE")
                .arg(&log)
                .arg(req.since_ms)
                .arg(&max)
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(offset)
                .arg(PAGE)
                .query_async(&mut conn)
                .await?;
            offset += members.len();
            if let Some((_, first)) = members.first() {
                scan.oldest_ms.get_or_insert(*first);
            }
            let records: Vec<LogRecord> = members
                .iter()
                .filter_map(|(m, _)| LogRecord::decode(m))
                .collect();
            let ids: Vec<String> = records
                .iter()
                .map(|r| hookd_core::delivery::delivery_id(&r.entry_id, &ep.id))
                .collect();
            // The status now: durable state's where there is some, else the log's.
            let statuses = self.statuses(&ep.workspace, &ids).await?;
            let mut due = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for ((id, r), status) in ids.iter().zip(&records).zip(statuses) {
                if req.only.as_ref().is_some_and(|only| !only.contains(id)) {
                    continue;
                }
                if status.unwrap_or(r.status) == req.status && seen.insert(id.clone()) {
                    if status.is_none()
                        && let Err(e) = self.materialize(&p, &ep.id, &ep.workspace, r).await
                    {
                        // One delivery that cannot be read back costs only itself.
                        tracing::warn!(job = job_id, delivery = %id, error = %e, "a delivery of the recovery job cannot be re-queued; the job goes on");
                        scan.unreadable += 1;
                        continue;
                    }
                    due.push(id.clone());
                }
            }
            scan.matched += self
                .queue_for_job(job_id, req, &due, scan.matched, now_ms)
                .await?;
            if members.len() < PAGE {
                break;
            }
        }
        Ok(scan)
    }

    /// The durable state's status of each delivery (`None`: it has none).
    pub async fn statuses(
        &self,
        workspace: &str,
        ids: &[String],
    ) -> Result<Vec<Option<DeliveryStatus>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let p = self.keys.partition_of(workspace);
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hget(p.delivery(id), "status");
        }
        let statuses: Vec<Option<String>> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(statuses
            .iter()
            .map(|s| s.as_deref().and_then(DeliveryStatus::parse))
            .collect())
    }

    /// Re-queues deliveries `due` for recovery job `job_id`, paced after the
    /// `earlier` ones it matched before, and counts them in the job.
    /// Returns how many matched (`due.len()`).
    pub async fn queue_for_job(
        &self,
        job_id: &str,
        req: &RecoveryRequest,
        due: &[String],
        earlier: u64,
        now_ms: i64,
    ) -> Result<u64> {
        if due.is_empty() {
            return Ok(0);
        }
        let ep = &req.endpoint;
        let p = self.keys.partition_of(&ep.workspace);
        let spacing_ms = ep.rate_limit.map_or(0.0, |r| 1000.0 / f64::from(r.max(1)));
        let due: Vec<(String, i64)> = due
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let at = now_ms + ((earlier + i as u64) as f64 * spacing_ms) as i64;
                (id.clone(), at)
            })
            .collect();
        let queued = self.requeue(&p, job_id, &due).await?;
        let _: () = redis::pipe()
            .hincr(p.job(job_id), "matched", due.len())
            .ignore()
            .hincr(p.job(job_id), "queued", queued)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(due.len() as u64)
    }

    /// Marks a job's scan finished (`matched` and `queued` are final).
    /// Ends a job that could not go on: `failed`, with the reason.
    pub async fn fail_job(&self, job: &Job, reason: &str) -> Result<()> {
        let _: () = redis::cmd("HSET")
            .arg(self.keys.partition_of(&job.workspace).job(&job.id))
            .arg("scanned")
            .arg(1)
            .arg("error")
            .arg(reason)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Records that the job's scan is over: every matching delivery was queued or counted.
    pub async fn finish_scan(&self, job: &Job) -> Result<()> {
        let _: i64 = redis::cmd("HSET")
            .arg(self.keys.partition_of(&job.workspace).job(&job.id))
            .arg("scanned")
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}

/// The envelope rebuilt from stream entry `entry_id`'s fields, if it
/// carries event `event_id` (a stream written after a repartition may hold
/// another entry under the same id). No limits: it was accepted once.
pub(crate) fn envelope_in(
    entry_id: &str,
    fields: &[(String, Vec<u8>)],
    event_id: &str,
) -> Option<Vec<u8>> {
    let limits = EventLimits {
        max_payload_bytes: usize::MAX / 2,
        max_fields: usize::MAX / 2,
    };
    Event::from_entry(entry_id, fields, limits)
        .ok()
        .filter(|event| event.id == event_id)
        .map(|event| event.envelope)
}

/// What a recovery's scan of the history in Redis found.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogScan {
    /// Deliveries matched (and re-queued, or skipped).
    pub matched: u64,
    /// The creation time of the oldest delivery in the window that Redis
    /// still holds (`None`: none): older ones are only in long-term history.
    pub oldest_ms: Option<i64>,
    /// Matching deliveries that could not be read back to be re-queued.
    pub unreadable: u64,
}
