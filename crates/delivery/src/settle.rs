//! Settling first attempts: deliveries made straight from the stream are
//! recorded in batches (what finished within [`LINGER`] of the first, or
//! while the previous write ran, at most [`BATCH`]), and each stream entry
//! is acknowledged in the same atomic step as the record of its last
//! delivery. Entries still in flight here
//! are kept from looking abandoned (their idle time in the consumer group is
//! reset), so no other daemon takes them over while they are being sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookd_core::time;
use hookd_store::ingest::{SettleBatch, Settled, Sighting};
use hookd_store::schedule::Breaker;
use hookd_store::{PartitionKeys, Store};
use tokio::sync::{Notify, mpsc};

use crate::backoff::Backoff;
use crate::recorder::announce;

/// Most deliveries written in one call.
const BATCH: usize = 256;

/// How long a write waits for more to settle after the first: the
/// acknowledgement waits this much longer, and each write carries many
/// deliveries instead of a few (the slots are free already).
const LINGER: Duration = Duration::from_millis(1);

// A delivery is moved, not boxed: a box would cost an allocation per delivery.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Settle {
    /// An entry was accepted with this many deliveries (0: acknowledge it now).
    Expect(String, usize),
    /// One of its deliveries is settled.
    Done(Settled),
    /// Event types seen for the first time, to be counted.
    Seen(Vec<Sighting>),
}

/// A handle to one partition's settling task. Cheap to clone; the task
/// ends when every handle is gone, after writing what it was given.
#[derive(Clone)]
pub(crate) struct Settler {
    tx: mpsc::Sender<Settle>,
}

pub(crate) struct SettlerSettings {
    pub group: String,
    pub consumer: String,
    pub breaker: Breaker,
    /// Entries pending this long in the group may be taken over by others.
    pub reclaim_idle: Duration,
}

impl Settler {
    /// Starts the task; `due` is woken when deliveries went to the due queue.
    pub fn start(
        store: Store,
        partition: PartitionKeys,
        settings: SettlerSettings,
        metrics: Arc<crate::Metrics>,
        due: Arc<Notify>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(BATCH * 8);
        let task = Task {
            store,
            partition,
            settings,
            metrics,
            due,
            open: HashMap::new(),
        };
        tokio::spawn(task.run(rx));
        Self { tx }
    }

    pub async fn send(&self, s: Settle) {
        // Fails only when the task is gone (shutdown): the entry stays
        // pending and is read again, by this daemon or another.
        let _ = self.tx.send(s).await;
    }
}

struct Task {
    store: Store,
    partition: PartitionKeys,
    settings: SettlerSettings,
    metrics: Arc<crate::Metrics>,
    due: Arc<Notify>,
    /// Entries with deliveries not yet recorded: how many, and since when.
    open: HashMap<String, (usize, Instant)>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Settle>) {
        let mut received = Vec::with_capacity(BATCH);
        let touch_every = self.settings.reclaim_idle / 4;
        let mut touched = Instant::now();
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut received, BATCH) => n,
                _ = tokio::time::sleep(touch_every) => 0,
            };
            if n == 0 && rx.is_closed() && received.is_empty() {
                return;
            }
            if n > 0 && received.len() < BATCH && !rx.is_closed() {
                tokio::time::sleep(LINGER).await;
                while received.len() < BATCH {
                    let Ok(s) = rx.try_recv() else { break };
                    received.push(s);
                }
            }
            let mut batch = SettleBatch::default();
            for s in received.drain(..) {
                match s {
                    Settle::Expect(entry, 0) => batch.acks.push(entry),
                    Settle::Expect(entry, n) => {
                        self.open.insert(entry, (n, Instant::now()));
                    }
                    Settle::Done(d) => {
                        if let Some((left, _)) = self.open.get_mut(&d.entry_id) {
                            *left -= 1;
                            if *left == 0 {
                                self.open.remove(&d.entry_id);
                                batch.acks.push(d.entry_id.clone());
                            }
                        }
                        batch.deliveries.push(d);
                    }
                    Settle::Seen(seen) => batch.seen.extend(seen),
                }
            }
            self.write(&batch).await;
            if touched.elapsed() >= touch_every {
                touched = Instant::now();
                self.touch(touch_every).await;
            }
        }
    }

    /// Writes until it succeeds: the deliveries were made, their records must land.
    async fn write(&self, batch: &SettleBatch) {
        if batch.is_empty() {
            return;
        }
        let mut backoff = Backoff::new();
        loop {
            match self
                .store
                .settle(
                    &self.partition,
                    &self.settings.group,
                    batch,
                    self.settings.breaker,
                    time::now_ms(),
                )
                .await
            {
                Ok(tripped) => {
                    if batch
                        .deliveries
                        .iter()
                        .any(|d| d.status != hookd_core::DeliveryStatus::Succeeded)
                    {
                        self.due.notify_one();
                    }
                    for t in tripped {
                        announce(&self.store, &self.metrics, t).await;
                    }
                    return;
                }
                Err(e) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "recording first attempts failed");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Resets the idle time of entries in flight here for a while, so they
    /// do not look abandoned to other daemons.
    async fn touch(&self, older_than: Duration) {
        let ids: Vec<&String> = self
            .open
            .iter()
            .filter(|(_, (_, since))| since.elapsed() >= older_than)
            .map(|(id, _)| id)
            .collect();
        if ids.is_empty() {
            return;
        }
        if let Err(e) = self
            .store
            .touch(
                &self.partition,
                &self.settings.group,
                &self.settings.consumer,
                &ids,
            )
            .await
        {
            tracing::warn!(error = %e, "could not keep in-flight entries claimed");
        }
    }
}
