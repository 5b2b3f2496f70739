//! The scheduler of one partition: claims due deliveries and runs their
//! attempts on a bounded pool of tasks; on shutdown, stops claiming, lets
//! in-flight attempts finish within a grace time, and releases the rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookd_core::{AttemptTrigger, time};
use hookd_store::{PartitionKeys, Store};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::attempt::AttemptContext;
use crate::backoff::Backoff;
use crate::recorder::Recorder;
use crate::sender::Target;

/// Typed scheduling settings.
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// Attempts in flight at once, per partition.
    pub concurrency: usize,
    /// Deliveries claimed per round trip.
    pub claim_batch: usize,
    /// How often to look for due deliveries when nothing woke the scheduler.
    pub poll_interval: Duration,
    /// How long a claim holds a delivery (longer than any request).
    pub lease: Duration,
    /// Attempts in flight at once per endpoint and per workspace, across all daemons.
    pub limits: hookd_store::schedule::ConcurrencyLimits,
    /// On shutdown, how long in-flight attempts may take before being released.
    pub shutdown_grace: Duration,
    /// When to pause an endpoint that keeps failing.
    pub breaker: hookd_store::schedule::Breaker,
    /// Workspaces' shares of the slots that lanes fill, relative to 1
    /// (`[delivery] workspace_weights`; the others weigh 1).
    pub weights: std::collections::HashMap<String, u32>,
}

pub(crate) struct Scheduler {
    pub store: Store,
    pub ctx: AttemptContext,
    pub partition: PartitionKeys,
    pub settings: ScheduleSettings,
    pub wake: Arc<Notify>,
    /// This daemon's consumer name: the claims' lease tokens start with it.
    pub consumer: String,
    /// The consumer group (a key's head starts only once no earlier entry
    /// of the key is pending there unordered).
    pub group: String,
}

impl Scheduler {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let in_flight: Arc<Mutex<HashMap<String, String>>> = Default::default();
        let mut tasks = JoinSet::new();
        let mut backoff = Backoff::new();
        let recorder = Recorder::start(
            self.store.clone(),
            self.partition.clone(),
            self.settings.breaker,
            self.ctx.metrics.clone(),
            self.wake.clone(),
        );
        let mut claims: u64 = 0;
        loop {
            while tasks.try_join_next().is_some() {}
            if *shutdown.borrow() {
                break;
            }
            let free = permits.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = permits.acquire() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            claims += 1;
            // Unique per claim: only this claim's record of an attempt is written.
            let token = format!("{}:{claims}", self.consumer);
            let claimed = self
                .store
                .claim_due(
                    &self.partition,
                    self.settings.lease,
                    free.min(self.settings.claim_batch),
                    &self.settings.limits,
                    &token,
                    &self.group,
                )
                .await;
            match claimed {
                Ok(claimed) if !claimed.is_empty() => {
                    backoff.reset();
                    // One target per endpoint of the batch (its deliveries share one `Arc<Endpoint>`).
                    // (Keyed by the shared endpoint's address.)
                    let mut targets: HashMap<usize, Arc<Target>> = HashMap::new();
                    for c in claimed {
                        let target = targets
                            .entry(Arc::as_ptr(&c.endpoint) as usize)
                            .or_insert_with(|| Arc::new(self.ctx.target(&c)))
                            .clone();
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            break;
                        };
                        let (ctx, recorder, in_flight) =
                            (self.ctx.clone(), recorder.clone(), in_flight.clone());
                        lock(&in_flight).insert(c.delivery_id.clone(), c.endpoint.id.clone());
                        tasks.spawn(async move {
                            let id = c.delivery_id.clone();
                            let trigger = if c.manual { AttemptTrigger::Manual } else { AttemptTrigger::Scheduled };
                            let record = ctx.run(c, &target, trigger).await;
                            // The worker is free once the response is in; the
                            // delivery's lease holds it until the record is written.
                            drop(permit);
                            if let Err(e) = recorder.record(record).await {
                                // The lease expires and the delivery is attempted again.
                                tracing::warn!(delivery = %id, error = %e, "could not record an attempt");
                            }
                            lock(&in_flight).remove(&id);
                        });
                    }
                }
                Ok(_) => {
                    backoff.reset();
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.settings.poll_interval) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(e) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "claiming due deliveries failed");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
        self.drain(tasks, &in_flight).await;
    }

    async fn drain(&self, mut tasks: JoinSet<()>, in_flight: &Mutex<HashMap<String, String>>) {
        let grace = self.settings.shutdown_grace;
        let finished =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if finished.is_ok() {
            return;
        }
        tasks.abort_all();
        let ids: Vec<(String, String)> = lock(in_flight).drain().collect();
        tracing::info!(
            count = ids.len(),
            "shutdown grace over; releasing in-flight deliveries"
        );
        if let Err(e) = self
            .store
            .release(&self.partition, &ids, time::now_ms())
            .await
        {
            tracing::warn!(error = %e, "could not release deliveries; they are retried when their lease ends");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
