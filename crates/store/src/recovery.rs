//! Operator-requested attempts: redelivering one delivery now, and recovery
//! jobs that re-queue many (say, every failed delivery of an endpoint since
//! T), paced by the endpoint's rate limit, with progress kept in Redis.
//!
//! A job scans the endpoint's history index oldest first and re-queues the
//! deliveries whose status matches, each for one manual attempt (the retry
//! policy still applies if it fails). Ingest's record step counts the job's
//! finished attempts, so any daemon's progress shows up in the job.

use std::collections::HashMap;

use hookd_core::{DeliveryStatus, Endpoint};
use redis::Value;

use crate::keys::PartitionKeys;
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
        let queued = self.requeue(&p, "", &[(id.to_string(), now_ms)]).await?;
        Ok(queued == 1)
    }

    async fn requeue(&self, p: &PartitionKeys, job: &str, due: &[(String, i64)]) -> Result<u64> {
        if due.is_empty() {
            return Ok(0);
        }
        let mut call = self.scripts.requeue.prepare_invoke();
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
        let index = p.endpoint_deliveries(&ep.id);
        let spacing_ms = ep.rate_limit.map_or(0.0, |r| 1000.0 / f64::from(r.max(1)));
        let max = req.until_ms.map_or("+inf".to_string(), |t| t.to_string());
        let mut conn = self.conn.clone();
        let (mut offset, mut matched_total) = (0, 0u64);
        loop {
            let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(&index)
                .arg(req.since_ms)
                .arg(&max)
                .arg("LIMIT")
                .arg(offset)
                .arg(PAGE)
                .query_async(&mut conn)
                .await?;
            offset += ids.len();
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
            for (id, status) in ids.iter().zip(statuses) {
                if status.as_deref() == Some(req.status.as_str()) {
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
            if ids.len() < PAGE {
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
