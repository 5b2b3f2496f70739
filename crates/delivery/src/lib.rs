//! hookd-delivery: the moving parts of the daemon.
//!
//! - [`ingest`]: stream entries in, validated, handed to dispatch;
//! - `dispatch`: first attempts straight from the stream, on cached
//!   configuration and slots held per endpoint;
//! - `settle`: first attempts recorded in batches, with the stream acks;
//! - [`schedule`]: due deliveries (retries, held, redelivered) claimed and
//!   attempted on a bounded pool;
//! - [`attempt`]: one signed request and the record of it;
//! - `recorder`: the scheduler's attempts written to Redis in batches;
//! - `writer`: the failure policy both batched writers share;
//! - [`sender`]: the HTTP client and how failures are classified;
//! - [`connect`]: every connection resolved and checked against the network policy;
//! - [`trace`]: OpenTelemetry spans of attempts and ingest batches.
//!
//! [`run`] starts one ingest loop and one scheduler per stream partition,
//! plus housekeeping (trimming the stream and history indexes), and returns
//! when `shutdown` turns true and everything has stopped.

#![warn(missing_docs)]

pub mod attempt;
mod backoff;
pub mod connect;
mod dispatch;
pub mod ingest;
pub mod metrics;
pub mod probe;
mod recorder;
pub mod schedule;
pub mod sender;
mod settle;
pub mod trace;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use hookd_core::heartbeat::Heartbeat;
use hookd_core::{RetryPolicy, time};
use hookd_store::Store;
use tokio::sync::{Notify, watch};

pub use attempt::{AttemptContext, HeaderNames};
pub use ingest::IngestSettings;
pub use metrics::Metrics;
pub use schedule::ScheduleSettings;
pub use sender::{Sender, SenderSettings};

/// Everything the daemon needs besides the store, typed.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// Reading the stream.
    pub ingest: IngestSettings,
    /// Claiming due deliveries and first attempts' slots.
    pub schedule: ScheduleSettings,
    /// Making the HTTP requests.
    pub sender: SenderSettings,
    /// Retries of failed attempts.
    pub retry: RetryPolicy,
    /// `X-Hookd` by default.
    pub header_prefix: String,
    /// Signatures during a rotation, for endpoints that do not say.
    pub rotation_signatures: hookd_core::RotationSignatures,
    /// Stream entries older than this are trimmed.
    pub stream_retention: Duration,
    /// How often the stream and the history indexes are trimmed.
    pub housekeeping_interval: Duration,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The HTTP client could not be built (TLS roots, DNS resolver).
    #[error(transparent)]
    Client(#[from] sender::BuildError),
    /// `[signing] header_prefix` does not make valid header names.
    #[error("invalid [signing] header_prefix: {0}")]
    HeaderPrefix(String),
}

/// What the daemon reports while it runs, for the admin API.
#[derive(Clone)]
pub struct Telemetry {
    /// Counters and histograms, registered for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Beaten by every ingest loop turn that reached Redis.
    pub heartbeat: Heartbeat,
    /// Where spans go (`None`: tracing off).
    pub spans: hookd_core::trace::Spans,
}

/// Runs the daemon until `shutdown` turns true.
pub async fn run(
    store: Store,
    settings: DaemonSettings,
    telemetry: Telemetry,
    shutdown: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let sender = Sender::new(settings.sender.clone())?;
    let headers = HeaderNames::new(&settings.header_prefix)
        .map_err(|e| DaemonError::HeaderPrefix(e.to_string()))?;
    let ctx = AttemptContext {
        sender,
        headers,
        retry: settings.retry,
        metrics: telemetry.metrics.clone(),
        rotation_signatures: settings.rotation_signatures,
        spans: telemetry.spans.clone(),
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut settlers = Vec::new();
    // Bytes of entries kept with deliveries waiting in lanes, every partition's.
    let kept = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for partition in store.keys().all_partitions() {
        let wake = Arc::new(Notify::new());
        let (settler, settling) = settle::Settler::start(
            store.clone(),
            partition.clone(),
            settle::SettlerSettings {
                group: settings.ingest.group.clone(),
                consumer: settings.ingest.consumer.clone(),
                breaker: settings.schedule.breaker,
                reclaim_idle: settings.ingest.reclaim_idle,
            },
            telemetry.metrics.clone(),
            wake.clone(),
        );
        settlers.push(settling);
        let dispatch_settings = dispatch::DispatchSettings {
            consumer: settings.ingest.consumer.clone(),
            limits: settings.schedule.limits,
            slot_lease: settings.schedule.lease,
            lane_lease: settings.schedule.lease,
            weights: settings.schedule.weights.clone(),
            limits_events: settings.ingest.limits,
            group: settings.ingest.group.clone(),
        };
        // The router and the lane filler share the lanes they know of and
        // the partition's window of first attempts; each holds slots of
        // its own (the filler's under a holder name of its own).
        let lanes = Arc::new(dispatch::LaneIndex::new(kept.clone()));
        let window = Arc::new(tokio::sync::Semaphore::new(
            settings.schedule.concurrency.max(1),
        ));
        let dispatch = dispatch::Dispatch::new(
            store.clone(),
            partition.clone(),
            ctx.clone(),
            settler.clone(),
            dispatch_settings.clone(),
            lanes.clone(),
            window.clone(),
        );
        let filler = dispatch::Dispatch::new(
            store.clone(),
            partition.clone(),
            ctx.clone(),
            settler,
            dispatch::DispatchSettings {
                consumer: format!("{}~lanes", settings.ingest.consumer),
                ..dispatch_settings
            },
            lanes,
            window,
        );
        let ingest = ingest::Ingest {
            store: store.clone(),
            partition: partition.clone(),
            settings: settings.ingest.clone(),
            dispatch,
            metrics: telemetry.metrics.clone(),
            heartbeat: telemetry.heartbeat.clone(),
            spans: telemetry.spans.clone(),
        };
        let scheduler = schedule::Scheduler {
            store: store.clone(),
            ctx: ctx.clone(),
            partition,
            settings: settings.schedule.clone(),
            wake,
            consumer: settings.ingest.consumer.clone(),
            group: settings.ingest.group.clone(),
        };
        let (ingest_stop, schedule_stop) = (shutdown.clone(), shutdown.clone());
        let grace = settings.schedule.shutdown_grace;
        let filler_stop = shutdown.clone();
        tasks.spawn(async move {
            ensure_group(&ingest, ingest_stop.clone()).await;
            ingest.run(ingest_stop, grace).await
        });
        tasks.spawn(ingest::fill_lanes(filler, filler_stop, grace));
        tasks.spawn(scheduler.run(schedule_stop));
    }
    tasks.spawn(housekeeping(
        store.clone(),
        settings.clone(),
        shutdown.clone(),
    ));
    tracing::info!(partitions = store.keys().partitions(), consumer = %settings.ingest.consumer, "hookd running");
    while tasks.join_next().await.is_some() {}
    // The settlers write what was answered and hand back the rest (their
    // senders are gone now); a Redis that does not answer leaves it pending.
    let settled = async {
        for s in settlers {
            let _ = s.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), settled)
        .await
        .is_err()
    {
        tracing::warn!(
            "settling at shutdown did not finish in 10 s; what is left stays pending, to be taken over"
        );
    }
    tracing::info!("hookd stopped");
    Ok(())
}

async fn ensure_group(ingest: &ingest::Ingest, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = backoff::Backoff::new();
    while let Err(e) = ingest
        .store
        .ensure_group(&ingest.partition, &ingest.settings.group)
        .await
    {
        let wait = backoff.next_delay();
        tracing::warn!(error = %e, "cannot create the consumer group yet");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn housekeeping(store: Store, settings: DaemonSettings, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(settings.housekeeping_interval) => {}
            _ = shutdown.changed() => return,
        }
        // One daemon at a time does this (the others would only repeat it).
        let lease = settings.housekeeping_interval * 3;
        match store
            .lead_housekeeping(&settings.ingest.consumer, lease)
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "housekeeping: cannot tell which daemon runs it");
                continue;
            }
        }
        let now = time::now_ms();
        // A stream entry holds the payload of its deliveries' history (for
        // redelivery): it stays at least as long as the history does.
        let keep = settings
            .stream_retention
            .max(store.settings().history_retention);
        for p in store.keys().all_partitions() {
            if let Err(e) = store
                .trim_stream(&p, &settings.ingest.group, keep, now)
                .await
            {
                tracing::warn!(error = %e, "trimming the stream failed");
            }
        }
        if let Err(e) = store.trim_history(now).await {
            tracing::warn!(error = %e, "trimming history indexes failed");
        }
        if let Err(e) = store.forget_expired().await {
            tracing::warn!(error = %e, "forgetting expired held deliveries and jobs failed");
        }
        // Daemons that stopped leave their consumer names in the group; once
        // their entries were reclaimed (nothing pending), forget them.
        let (group, me) = (&settings.ingest.group, &settings.ingest.consumer);
        for p in store.keys().all_partitions() {
            match store
                .prune_consumers(&p, group, me, settings.ingest.reclaim_idle * 2)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed consumers of stopped daemons"),
                Err(e) => tracing::warn!(error = %e, "pruning consumers failed"),
            }
        }
    }
}
