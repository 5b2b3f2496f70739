//! Bulk recovery: an endpoint's deliveries of a window and a status queued
//! again as one job, scanned in the background; and the job's view.

use hookd_core::{DeliveryStatus, Endpoint, id, time};
use hookd_history::merged::HistoryReader;
use hookd_store::audit::Actor;
use hookd_store::recovery::{Job, RecoveryRequest};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{ActionError, ActionResult};

/// A recovery: an endpoint's deliveries created in a window with a status.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The endpoint whose deliveries are queued again.
    pub endpoint: Endpoint,
    /// Deliveries created at or after this (Unix ms).
    pub since_ms: i64,
    /// Created at or before this (Unix ms); `None`: now.
    pub until_ms: Option<i64>,
    /// The status of the deliveries queued again.
    pub status: DeliveryStatus,
}

/// Records a recovery job and runs its scan in the background (of the
/// history in Redis, and of the shipped history where there is one).
pub async fn start(
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

/// A recovery job's progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// `job_...`.
    pub id: String,
    /// The endpoint whose deliveries it queues.
    pub endpoint_id: String,
    /// Deliveries created at or after this.
    pub since: String,
    /// Created at or before this.
    pub until: Option<String>,
    /// The status re-queued.
    #[schema(value_type = crate::schema::DeliveryStatusName)]
    pub status: DeliveryStatus,
    /// `scanning`, `delivering`, `completed` or `failed`.
    pub state: String,
    /// Why a `failed` job stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Deliveries in the window with that status.
    pub matched: u64,
    /// Of those, re-queued (the rest had an attempt in flight or had expired).
    pub queued: u64,
    /// Re-queued deliveries whose attempt has been made.
    pub done: u64,
    /// Of those, succeeded.
    pub succeeded: u64,
    /// When the job was started.
    pub created_at: String,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        Self {
            state: j.state().to_string(),
            id: j.id,
            endpoint_id: j.endpoint_id,
            since: time::format_rfc3339_ms(j.since_ms),
            until: j.until_ms.map(time::format_rfc3339_ms),
            status: j.status,
            matched: j.matched,
            queued: j.queued,
            done: j.done,
            succeeded: j.succeeded,
            created_at: time::format_rfc3339_ms(j.created_at_ms),
            error: j.error,
        }
    }
}

/// A workspace's recovery jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// Newest first; jobs are kept for `[history] retention`.
    pub data: Vec<JobView>,
}
