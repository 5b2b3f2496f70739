//! The ingest loop of one partition: read entries with the consumer group
//! (no more than first attempts can start), validate them, dead-letter the
//! bad ones, hand the rest to [`Dispatch`] for their first attempts, and
//! take over entries a dead consumer left pending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookd_core::heartbeat::Heartbeat;
use hookd_core::{Event, EventLimits, time};
use hookd_store::stream::Entry;
use hookd_store::{PartitionKeys, Store, StoreError};
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::dispatch::Dispatch;
use crate::metrics::Metrics;

/// Typed ingest settings.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub group: String,
    /// This process's consumer name in the group (unique per process).
    pub consumer: String,
    /// Entries read per XREADGROUP.
    pub batch: usize,
    /// Entries pending this long in another consumer are taken over.
    pub reclaim_idle: Duration,
    /// An entry taken over after this many reads goes to the dead-letter stream.
    pub max_deliveries: u64,
    pub limits: EventLimits,
}

pub(crate) struct Ingest {
    pub store: Store,
    pub partition: PartitionKeys,
    pub settings: IngestSettings,
    pub dispatch: Dispatch,
    pub metrics: Arc<Metrics>,
    /// Beaten on every turn of the loop that reached Redis (for `/readyz`).
    pub heartbeat: Heartbeat,
    /// Ingest batch spans, when tracing is on.
    pub spans: crate::trace::Spans,
}

impl Ingest {
    /// Runs until `shutdown`; then lets first attempts in flight finish within `grace`.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let mut backoff = Backoff::new();
        let mut last_reclaim = Instant::now() - self.settings.reclaim_idle;
        // Where the next reclaim scans the pending list from (it goes round).
        let mut cursor = "0-0".to_string();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let room = self.dispatch.room();
            if room == 0 {
                tokio::select! {
                    _ = self.dispatch.wait_for_room() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let count = self.settings.batch.min(room).max(1);
            let reclaim_due = last_reclaim.elapsed() >= self.settings.reclaim_idle / 2;
            let limits = self.settings.limits;
            let read = if reclaim_due {
                last_reclaim = Instant::now();
                self.store
                    .reclaim(
                        &self.partition,
                        &self.settings.group,
                        &self.settings.consumer,
                        self.settings.reclaim_idle,
                        &cursor,
                        count,
                        &limits,
                        self.settings.max_deliveries,
                    )
                    .await
            } else {
                match self
                    .store
                    .take_new(
                        &self.partition,
                        &self.settings.group,
                        &self.settings.consumer,
                        count,
                        &limits,
                    )
                    .await
                {
                    Ok(taken) if taken.entries.is_empty() && taken.dead_lettered.is_empty() => {
                        if let Err(e) = self.dispatch.release_idle().await {
                            tracing::warn!(error = %e, "could not give back idle slots");
                        }
                        // Nothing waiting: block for the next entry.
                        tokio::select! {
                            read = self.store.wait_new(&self.partition, &self.settings.group, &self.settings.consumer, count, &limits) => read,
                            _ = shutdown.changed() => continue,
                        }
                    }
                    other => other,
                }
            };
            let entries = match read {
                Ok(taken) => {
                    if let Some(next) = &taken.cursor {
                        cursor.clone_from(next);
                    }
                    if !taken.trimmed.is_empty() {
                        self.metrics.pending_trimmed(taken.trimmed.len());
                        tracing::warn!(count = taken.trimmed.len(), ids = ?taken.trimmed, stream = %self.partition.stream,
                            "entries pending in the group had been trimmed from the stream; nothing is left of them to deliver (stream_retention shorter than an outage?)");
                    }
                    for reason in &taken.dead_lettered {
                        self.metrics.dead_letter(static_code(reason));
                    }
                    if !taken.dead_lettered.is_empty() {
                        tracing::warn!(count = taken.dead_lettered.len(), reasons = ?taken.dead_lettered, stream = %self.partition.stream, "hostile stream entries dead-lettered without being read");
                    }
                    taken.entries
                }
                Err(e) => {
                    self.pause_after_error("reading the stream", &e, &mut backoff, &mut shutdown)
                        .await;
                    continue;
                }
            };
            self.heartbeat.beat(time::now_ms());
            if entries.is_empty() {
                backoff.reset();
                continue;
            }
            let mut span = self
                .spans
                .as_deref()
                .map(|t| crate::trace::ingest_batch(t, &self.partition.stream, entries.len()));
            // Entries stay pending until this succeeds; keep trying (they
            // are ours). What a failed try dead-lettered or forwarded is
            // not done again.
            let mut entries = entries;
            while let Err(e) = self.process(&mut entries).await {
                self.pause_after_error("accepting events", &e, &mut backoff, &mut shutdown)
                    .await;
                if *shutdown.borrow() {
                    // Unacknowledged entries are reclaimed by another daemon (or by this one on restart).
                    break;
                }
            }
            if let Some(span) = span.as_mut() {
                opentelemetry::trace::Span::end(span);
            }
            backoff.reset();
        }
        self.dispatch.finish(grace).await;
    }

    async fn pause_after_error(
        &self,
        what: &str,
        e: &StoreError,
        backoff: &mut Backoff,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let wait = backoff.next_delay();
        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, stream = %self.partition.stream, "{what} failed");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }

    /// Dead-letters the bad entries, forwards those of other partitions,
    /// and dispatches the rest. Entries dead-lettered or forwarded leave
    /// `entries` as soon as that is done, so a retry after a later failure
    /// does neither twice.
    async fn process(&mut self, entries: &mut Vec<Entry>) -> Result<(), StoreError> {
        let mut events = Vec::with_capacity(entries.len());
        let mut elsewhere = Vec::new();
        let mut i = 0;
        while i < entries.len() {
            let entry = &entries[i];
            match Event::from_entry(&entry.id, &entry.fields, self.settings.limits) {
                Ok(event) => {
                    let home = self.store.keys().partition_of(&event.workspace);
                    if home.index == self.partition.index {
                        events.push((entry.id.clone(), event));
                    } else {
                        elsewhere.push((i, home));
                    }
                    i += 1;
                }
                Err(rejection) => {
                    self.metrics.dead_letter(rejection.code);
                    tracing::warn!(entry = %entry.id, reason = rejection.code, message = %rejection.message, "bad stream entry dead-lettered");
                    self.store
                        .dead_letter(
                            &self.partition,
                            &self.settings.group,
                            entry,
                            rejection.code,
                            &rejection.message,
                            &self.settings.limits,
                        )
                        .await?;
                    entries.remove(i);
                    // (Indexes in `elsewhere` are of entries before this one.)
                }
            }
        }
        if !elsewhere.is_empty() {
            // A producer still using an earlier partition count (see
            // `hookd repartition`): the entry goes to its workspace's stream,
            // with its event id kept.
            let moving: Vec<(&Entry, _)> = elsewhere
                .iter()
                .map(|(i, home)| (&entries[*i], home.clone()))
                .collect();
            self.store
                .forward(&self.partition, &self.settings.group, &moving)
                .await?;
            self.metrics.forwarded(elsewhere.len());
            tracing::info!(count = elsewhere.len(), stream = %self.partition.stream, "entries of workspaces in other partitions forwarded to their streams");
            let gone: std::collections::HashSet<usize> =
                elsewhere.iter().map(|(i, _)| *i).collect();
            let mut index = 0;
            entries.retain(|_| {
                index += 1;
                !gone.contains(&(index - 1))
            });
        }
        if events.is_empty() {
            return Ok(());
        }
        let count = events.len();
        let (accepted, duplicates) = self.dispatch.dispatch(events).await?;
        self.metrics.ingested(accepted, duplicates);
        tracing::debug!(events = count, duplicates, "ingested");
        Ok(())
    }
}

/// A dead-letter reason the stream reader reported, as the metric label.
fn static_code(reason: &str) -> &'static str {
    match reason {
        "too_many_fields" => "too_many_fields",
        "too_large" => "too_large",
        "invalid_field_name" => "invalid_field_name",
        "redelivered_too_often" => "redelivered_too_often",
        _ => "other",
    }
}
