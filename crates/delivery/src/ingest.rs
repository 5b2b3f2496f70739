//! The ingest loop of one partition: entries are read by a task of their
//! own, as fast as they can be routed (never held back by a backlogged
//! endpoint: what cannot be sent now waits in its endpoint's lane, not in
//! the stream in front of everyone else's events), validated, the bad ones
//! dead-lettered, and the rest handed to [`Dispatch`]; between batches, and
//! whenever an attempt ends, deliveries waiting in lanes are taken into the
//! slots that came free. Entries a dead consumer left pending are taken over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookd_core::heartbeat::Heartbeat;
use hookd_core::{Event, EventLimits, time};
use hookd_store::stream::Entry;
use hookd_store::{PartitionKeys, Store, StoreError};
use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::dispatch::Dispatch;
use crate::metrics::Metrics;

/// Typed ingest settings.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// The consumer group every daemon reads the stream in.
    pub group: String,
    /// This process's consumer name in the group (unique per process).
    pub consumer: String,
    /// Entries read per XREADGROUP.
    pub batch: usize,
    /// Entries pending this long in another consumer are taken over.
    pub reclaim_idle: Duration,
    /// An entry taken over after this many reads goes to the dead-letter stream.
    pub max_deliveries: u64,
    /// What an entry must satisfy; past it, it is dead-lettered.
    pub limits: EventLimits,
}

pub(crate) struct Ingest {
    pub store: Store,
    pub partition: PartitionKeys,
    pub settings: IngestSettings,
    pub dispatch: Dispatch,
    pub metrics: Arc<Metrics>,
    /// Beaten on every read that reached Redis (for `/readyz`).
    pub heartbeat: Heartbeat,
    /// Ingest batch spans, when tracing is on.
    pub spans: hookd_core::trace::Spans,
}

/// Batches read ahead of the routing, at most (the reader waits past it).
const READ_AHEAD: usize = 2;

/// A reader that is behind reads up to this many batches at once.
const BEHIND: usize = 4;

/// With nothing read for this long, the router gives back idle slots.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Takes deliveries waiting in the partition's lanes into slots as they
/// come free (see `Dispatch::fill_lanes`), until `shutdown`; then lets the
/// attempts in flight finish within `grace`.
pub(crate) async fn fill_lanes(
    mut filler: Dispatch,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => {}
            _ = filler.lane_work() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        if let Err(e) = filler.fill_lanes().await {
            tracing::warn!(error = %e, stream = %filler.partition.stream, "taking deliveries from lanes failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    filler.finish(grace).await;
}

impl Ingest {
    /// Runs until `shutdown`; then lets first attempts in flight finish within `grace`.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let (tx, mut rx) = mpsc::channel(READ_AHEAD);
        let reader = Reader {
            store: self.store.clone(),
            partition: self.partition.clone(),
            settings: self.settings.clone(),
            metrics: self.metrics.clone(),
            heartbeat: self.heartbeat.clone(),
        };
        let reading = tokio::spawn(reader.run(tx, shutdown.clone()));
        let mut backoff = Backoff::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                biased;
                _ = shutdown.changed() => continue,
                read = rx.recv() => {
                    let Some(entries) = read else { break };
                    let full = entries.0.len() >= self.settings.batch;
                    self.dispatch.lanes().set_behind(full);
                    self.route(entries, &mut backoff, &mut shutdown).await;
                    if !full {
                        self.dispatch.lanes().set_behind(false);
                    }
                }
                // Nothing read for a while: idle slots go back.
                _ = tokio::time::sleep(IDLE_CHECK) => {
                    self.dispatch.lanes().set_behind(false);
                    if let Err(e) = self.dispatch.release_idle().await {
                        tracing::warn!(error = %e, "could not give back idle slots");
                    }
                }
            }
        }
        reading.abort();
        self.dispatch.finish(grace).await;
    }

    /// Routes one batch read: retried until it succeeds (the entries are
    /// ours, pending), unless the daemon is stopping.
    async fn route(
        &mut self,
        (entries, epoch): (Vec<Entry>, u64),
        backoff: &mut Backoff,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let mut span = self
            .spans
            .as_deref()
            .map(|t| crate::trace::ingest_batch(t, &self.partition.stream, entries.len()));
        // What a failed try dead-lettered or forwarded is not done again.
        // (Shared: a delivery waiting in a lane keeps its entry without a copy.)
        let mut entries: Vec<Arc<Entry>> = entries.into_iter().map(Arc::new).collect();
        while let Err(e) = self.process(&mut entries, epoch).await {
            pause_after_error(&self.partition, "accepting events", &e, backoff, shutdown).await;
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

    /// Dead-letters the bad entries, forwards those of other partitions,
    /// and dispatches the rest. An entry all of whose deliveries go to
    /// lanes (their endpoints have deliveries waiting) is routed on its
    /// workspace and type alone, and read whole when taken: routing a
    /// burst costs little more than reading it. Entries dead-lettered or
    /// forwarded leave `entries` as soon as that is done, so a retry after a
    /// later failure does neither twice.
    async fn process(
        &mut self,
        entries: &mut Vec<Arc<Entry>>,
        epoch: u64,
    ) -> Result<(), StoreError> {
        let mut elsewhere = Vec::new();
        let mut keys: Vec<(String, String)> = Vec::with_capacity(entries.len());
        let mut i = 0;
        while i < entries.len() {
            let entry = &entries[i];
            match hookd_core::event::route_key(&entry.fields) {
                Ok((workspace, event_type)) => {
                    let home = self.store.keys().partition_of(workspace);
                    if home.index == self.partition.index {
                        keys.push((workspace.to_string(), event_type.to_string()));
                    } else {
                        elsewhere.push((i, home));
                        keys.push((String::new(), String::new()));
                    }
                    i += 1;
                }
                Err(rejection) => {
                    self.refuse(entry, rejection).await?;
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
                .map(|(i, home)| (&*entries[*i], home.clone()))
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
            let mut index = 0;
            keys.retain(|_| {
                index += 1;
                !gone.contains(&(index - 1))
            });
        }
        if entries.is_empty() {
            return Ok(());
        }
        self.dispatch.load_types(&keys).await?;
        let mut events = Vec::with_capacity(entries.len());
        let mut lane_only = Vec::new();
        let mut refused = Vec::new();
        for (n, (entry, (workspace, event_type))) in entries.iter().zip(&mut keys).enumerate() {
            if self.dispatch.lane_only(workspace, event_type) {
                // (Moved, not copied: the keys are not needed again.)
                lane_only.push((
                    Arc::clone(entry),
                    std::mem::take(workspace),
                    std::mem::take(event_type),
                ));
                continue;
            }
            match Event::from_entry(&entry.id, &entry.fields, self.settings.limits) {
                Ok(event) => events.push((entry.id.clone(), event)),
                Err(rejection) => refused.push((n, rejection)),
            }
        }
        // In stream order; each leaves `entries` once dead-lettered.
        for (removed, (n, rejection)) in refused.into_iter().enumerate() {
            self.refuse(&entries[n - removed], rejection).await?;
            entries.remove(n - removed);
        }
        let count = events.len() + lane_only.len();
        let (accepted, duplicates) = self.dispatch.dispatch(events, lane_only, epoch).await?;
        self.metrics.ingested(accepted, duplicates);
        tracing::debug!(events = count, duplicates, "ingested");
        Ok(())
    }

    /// Moves a bad entry to the dead-letter stream with its reason.
    async fn refuse(
        &self,
        entry: &Entry,
        rejection: hookd_core::event::Rejection,
    ) -> Result<(), StoreError> {
        let at = (&self.partition, self.settings.group.as_str());
        dead_letter(
            &self.store,
            &self.metrics,
            at,
            entry,
            &rejection,
            &self.settings.limits,
        )
        .await
    }
}

async fn pause_after_error(
    partition: &PartitionKeys,
    what: &str,
    e: &StoreError,
    backoff: &mut Backoff,
    shutdown: &mut watch::Receiver<bool>,
) {
    let wait = backoff.next_delay();
    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, stream = %partition.stream, "{what} failed");
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = shutdown.changed() => {}
    }
}

/// Reads the partition's stream for the ingest loop: new entries as they
/// come (a blocking read when there are none), and now and then entries a
/// dead consumer left pending.
struct Reader {
    store: Store,
    partition: PartitionKeys,
    settings: IngestSettings,
    metrics: Arc<Metrics>,
    heartbeat: Heartbeat,
}

impl Reader {
    async fn run(self, tx: mpsc::Sender<(Vec<Entry>, u64)>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new();
        let mut last_reclaim = Instant::now() - self.settings.reclaim_idle;
        // Where the next reclaim scans the pending list from (it goes round).
        let mut cursor = "0-0".to_string();
        let (group, consumer) = (&self.settings.group, &self.settings.consumer);
        let limits = self.settings.limits;
        let batch = self.settings.batch.max(1);
        // Behind (the last read was full): read bigger batches, fewer round trips.
        let mut count = batch;
        // The last reclaim took a full batch and did not finish its scan of
        // the pending list: take over the rest now, not a batch per
        // half `reclaim_idle` (a dead daemon may have left many thousands).
        let mut more_to_reclaim = false;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let reclaiming =
                more_to_reclaim || last_reclaim.elapsed() >= self.settings.reclaim_idle / 2;
            let read = if reclaiming {
                last_reclaim = Instant::now();
                self.store
                    .reclaim(
                        &self.partition,
                        group,
                        consumer,
                        self.settings.reclaim_idle,
                        &cursor,
                        count,
                        &limits,
                        self.settings.max_deliveries,
                    )
                    .await
            } else {
                // Blocks until an entry comes (or the read's block time ends).
                tokio::select! {
                    read = self.store.wait_new(&self.partition, group, consumer, count, &limits) => read,
                    _ = shutdown.changed() => return,
                }
            };
            let taken = match read {
                Ok(taken) => taken,
                Err(e) => {
                    pause_after_error(
                        &self.partition,
                        "reading the stream",
                        &e,
                        &mut backoff,
                        &mut shutdown,
                    )
                    .await;
                    continue;
                }
            };
            backoff.reset();
            self.heartbeat.beat(time::now_ms());
            if let Some(next) = &taken.cursor {
                cursor.clone_from(next);
            }
            if reclaiming {
                more_to_reclaim = !taken.entries.is_empty() && cursor != "0-0";
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
            count = if taken.entries.len() >= count {
                (count * 2).min(batch * BEHIND)
            } else {
                batch
            };
            if taken.entries.is_empty() {
                continue;
            }
            if tx.send((taken.entries, taken.epoch)).await.is_err() {
                return;
            }
        }
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

/// Moves a bad entry of partition `at.0` (group `at.1`) to the dead-letter
/// stream with its reason, counted and logged: ingest's refusals, and the
/// lane filler's of entries routed before they were read whole.
pub(crate) async fn dead_letter(
    store: &Store,
    metrics: &Metrics,
    at: (&PartitionKeys, &str),
    entry: &Entry,
    rejection: &hookd_core::event::Rejection,
    limits: &hookd_core::EventLimits,
) -> Result<(), StoreError> {
    metrics.dead_letter(rejection.code);
    tracing::warn!(entry = %entry.id, reason = rejection.code, message = %rejection.message, "bad stream entry dead-lettered");
    store
        .dead_letter(
            at.0,
            at.1,
            entry,
            rejection.code,
            &rejection.message,
            limits,
        )
        .await
}
