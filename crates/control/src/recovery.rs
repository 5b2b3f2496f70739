//! Bulk recovery: an endpoint's deliveries of a window and a status queued
//! again as one job, scanned in the background; and the job's view.

use hookd_core::{DeliveryStatus, Endpoint, delivery, id, time};
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
    /// Deliveries created at or after this (Unix ms); `None` only with
    /// `only` (the window is then the selected deliveries').
    pub since_ms: Option<i64>,
    /// Created at or before this (Unix ms); `None`: now.
    pub until_ms: Option<i64>,
    /// The status of the deliveries queued again.
    pub status: DeliveryStatus,
    /// Only these deliveries of the endpoint (ids; at most
    /// [`MAX_SELECTED`]); the window is theirs when `since_ms` is `None`.
    pub only: Option<Vec<String>>,
}

/// Most deliveries one job may name.
pub const MAX_SELECTED: usize = 1000;

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
        only,
    } = recovery;
    let (since_ms, until_ms) = match (&only, since_ms) {
        (Some(ids), since) => {
            let (first, last) = selection_window(&endpoint, ids)?;
            (since.unwrap_or(first), until_ms.or(Some(last)))
        }
        (None, Some(since)) => (since, until_ms),
        (None, None) => {
            return Err(ActionError::invalid(
                "/since",
                "is required (or name delivery_ids)",
            ));
        }
    };
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
    let detail = match &only {
        Some(ids) => format!(
            "endpoint {}, {} selected {} deliveries",
            job.endpoint_id,
            ids.len(),
            job.status.as_str()
        ),
        None => format!(
            "endpoint {}, {} deliveries since {}",
            job.endpoint_id,
            job.status.as_str(),
            time::format_rfc3339_ms(job.since_ms)
        ),
    };
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
        only: only.map(|ids| ids.into_iter().collect()),
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

/// The creation times of the first and last of `ids`, each checked to be a
/// delivery of `endpoint` (422 at `/delivery_ids/<i>` otherwise).
fn selection_window(endpoint: &Endpoint, ids: &[String]) -> ActionResult<(i64, i64)> {
    if ids.is_empty() || ids.len() > MAX_SELECTED {
        return Err(ActionError::invalid(
            "/delivery_ids",
            format!("must name 1 to {MAX_SELECTED} deliveries"),
        ));
    }
    let mut bad = Vec::new();
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    for (i, id) in ids.iter().enumerate() {
        match delivery::parse_delivery_id(id)
            .filter(|(_, ep)| *ep == endpoint.id)
            .and_then(|(entry, _)| delivery::entry_time_ms(entry))
        {
            Some(at) => (first, last) = (first.min(at), last.max(at)),
            None => bad.push((
                format!("/delivery_ids/{i}"),
                "is not a delivery of this endpoint".to_string(),
            )),
        }
    }
    if !bad.is_empty() {
        return Err(ActionError::Invalid(bad));
    }
    Ok((first, last))
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
