//! Settling first attempts: deliveries made straight from the stream are
//! recorded in batches (what finished within [`LINGER`] of the first, or
//! while the previous write ran, at most [`BATCH`]), and each stream entry
//! is acknowledged in the same atomic step as the record of its last
//! delivery, under the batched writers' failure policy (`writer.rs`).
//! Entries still in flight here are kept from looking abandoned (their idle
//! time in the consumer group is reset, while this consumer still owns
//! them), so no other daemon takes them over while they are being sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookd_store::ingest::{SettleBatch, Settled, Sighting};
use hookd_store::schedule::Breaker;
use hookd_store::{PartitionKeys, Store, StoreError};
use tokio::sync::{Notify, mpsc};

use crate::recorder::announce;
use crate::writer;

/// Most deliveries written in one call.
const BATCH: usize = 512;

/// How long a write waits for more to settle after the first: the
/// acknowledgement waits this much longer, and each write carries many
/// deliveries instead of a few (the slots are free already). 3 ms and 512
/// halve the settle calls of a burst or a fan-out (each call has a fixed
/// cost in `settle.lua`) against 1 ms and 256; a delivery is not later
/// for it, only its acknowledgement.
const LINGER: Duration = Duration::from_millis(3);

// A delivery is moved, not boxed: a box would cost an allocation per delivery.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Settle {
    /// An entry was accepted with this many deliveries (0: acknowledge it now).
    Expect(String, usize),
    /// As many `Expect`s, in one message (a routed batch).
    ExpectMany(Vec<(String, usize)>),
    /// One of its deliveries is settled.
    Done(Settled),
    /// Event types seen for the first time, to be counted.
    Seen(Vec<Sighting>),
    /// One of its deliveries needs no record (its event was a duplicate,
    /// or its entry is gone): it counts as settled.
    Skip(String),
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
    /// Starts the task; `due` is woken when deliveries went to the due
    /// queue. The task ends, its last records written and what it could not
    /// settle handed back, once every `Settler` is dropped.
    pub fn start(
        store: Store,
        partition: PartitionKeys,
        settings: SettlerSettings,
        metrics: Arc<crate::Metrics>,
        due: Arc<Notify>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(BATCH * 8);
        let task = Task {
            store,
            partition,
            settings,
            metrics,
            due,
            open: HashMap::new(),
            touched: Instant::now(),
            reclaims: None,
            seen: Vec::new(),
            seen_counted: Instant::now(),
        };
        (Self { tx }, tokio::spawn(task.run(rx)))
    }

    pub async fn send(&self, s: Settle) {
        // Fails only when the task is gone (shutdown): the entry stays
        // pending and is read again, by this daemon or another.
        let _ = self.tx.send(s).await;
    }
}

/// Held by a first attempt's task: if the task panics, the delivery is
/// settled anyway, as a failed attempt (kind `internal`) retried on the
/// schedule, so its stream entry is acknowledged and stops holding the
/// stream's trim point. (A task aborted at shutdown reports nothing: its
/// entry stays pending, to be read again.)
pub(crate) struct Unsettled {
    settled: Option<Settled>,
    settler: Settler,
    started_ms: i64,
}

impl Unsettled {
    pub fn new(settled: Settled, settler: Settler) -> Self {
        Self {
            settled: Some(settled),
            settler,
            started_ms: hookd_core::time::now_ms(),
        }
    }

    /// The attempt ended: the caller settles it.
    pub fn finish(mut self) -> Settled {
        self.settled
            .take()
            .unwrap_or_else(|| unreachable!("finished twice"))
    }
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Some(mut s) = self.settled.take() else {
            return;
        };
        let now = hookd_core::time::now_ms();
        tracing::error!(delivery = %s.delivery_id(), endpoint = %s.endpoint, "a first attempt's task panicked; the delivery is retried on the schedule");
        s.status = hookd_core::DeliveryStatus::Retrying;
        s.next_at_ms = Some(now);
        s.pause_reason = None;
        s.attempt = Some(hookd_core::Attempt {
            number: 1,
            started_at_ms: self.started_ms,
            duration_ms: (now - self.started_ms).max(0) as u64,
            succeeded: false,
            status_code: None,
            error_kind: Some(hookd_core::ErrorKind::Internal),
            error: Some("hookd's attempt ended without an answer (its task panicked)".into()),
            response_excerpt: None,
            response_headers: Vec::new(),
            trigger: hookd_core::AttemptTrigger::Scheduled,
        });
        let settler = self.settler.clone();
        tokio::spawn(async move { settler.send(Settle::Done(s)).await });
    }
}

struct Task {
    store: Store,
    partition: PartitionKeys,
    settings: SettlerSettings,
    metrics: Arc<crate::Metrics>,
    due: Arc<Notify>,
    /// Entries with deliveries not yet recorded: how many, and since when
    /// (read, or last touched).
    open: HashMap<String, (usize, Instant)>,
    touched: Instant,
    /// The partition's reclaim count at the last touch (`None`: unknown).
    reclaims: Option<u64>,
    /// Event types seen since they were last counted.
    seen: Vec<Sighting>,
    seen_counted: Instant,
}

/// How often event types seen are counted (one call, not one per write).
const SIGHTINGS_EVERY: Duration = Duration::from_millis(500);

/// One thing to write: a delivery's record, or an entry's acknowledgement
/// (placed after the last of its deliveries, so a split batch writes it
/// with that delivery or after it, never before). Moved, not boxed: a box
/// would cost an allocation per delivery.
#[allow(clippy::large_enum_variant)]
enum Item {
    Delivery(Settled),
    Ack(String),
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Settle>) {
        let mut received = Vec::with_capacity(BATCH);

        let touch_every = self.touch_every();
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut received, BATCH) => n,
                // (Sooner while event types seen wait to be counted.)
                _ = tokio::time::sleep(if self.seen.is_empty() {
                    touch_every
                } else {
                    touch_every.min(SIGHTINGS_EVERY)
                }) => 0,
            };
            if n == 0 && rx.is_closed() && received.is_empty() {
                self.count_sightings().await;
                self.hand_back().await;
                return;
            }
            if n > 0 && received.len() < BATCH && !rx.is_closed() {
                tokio::time::sleep(LINGER).await;
                while received.len() < BATCH {
                    let Ok(s) = rx.try_recv() else { break };
                    received.push(s);
                }
            }
            let mut items = Vec::with_capacity(received.len());
            for s in received.drain(..) {
                match s {
                    Settle::Expect(entry, 0) => items.push(Item::Ack(entry)),
                    Settle::Expect(entry, n) => {
                        self.open.insert(entry, (n, Instant::now()));
                    }
                    Settle::ExpectMany(expected) => {
                        let now = Instant::now();
                        for (entry, n) in expected {
                            if n == 0 {
                                items.push(Item::Ack(entry));
                            } else {
                                self.open.insert(entry, (n, now));
                            }
                        }
                    }
                    Settle::Done(d) => {
                        // (A delivery taken from a lane has no entry pending here.)
                        let from_stream =
                            !matches!(d.lane, hookd_store::ingest::Lane::Taken { .. });
                        let closes = match self.open.get_mut(&d.entry_id).filter(|_| from_stream) {
                            Some((left, _)) => {
                                *left -= 1;
                                *left == 0
                            }
                            None => false,
                        };
                        let entry = closes.then(|| d.entry_id.clone());
                        items.push(Item::Delivery(d));
                        if let Some(entry) = entry {
                            self.open.remove(&entry);
                            items.push(Item::Ack(entry));
                        }
                    }
                    Settle::Seen(s) => {
                        for s in s {
                            match self.seen.iter_mut().find(|m| {
                                m.workspace == s.workspace && m.event_type == s.event_type
                            }) {
                                Some(m) => m.count += s.count,
                                None => self.seen.push(s),
                            }
                        }
                    }
                    Settle::Skip(entry) => {
                        let closes = match self.open.get_mut(&entry) {
                            Some((left, _)) => {
                                *left -= 1;
                                *left == 0
                            }
                            None => false,
                        };
                        if closes {
                            self.open.remove(&entry);
                            items.push(Item::Ack(entry));
                        }
                    }
                }
            }
            if !self.seen.is_empty() && (n == 0 || self.seen_counted.elapsed() >= SIGHTINGS_EVERY) {
                self.count_sightings().await;
            }
            writer::write_all(&mut self, items, "recording first attempts").await;
            if self.touched.elapsed() >= touch_every {
                self.touch().await;
            }
        }
    }

    fn touch_every(&self) -> Duration {
        self.settings.reclaim_idle / 4
    }

    /// Resets the idle time of entries in flight here for a while, so they
    /// do not look abandoned to other daemons; forgets those another
    /// daemon has taken over meanwhile (it settles them now).
    async fn touch(&mut self) {
        self.touched = Instant::now();
        let older_than = self.touch_every();
        let ids: Vec<String> = self
            .open
            .iter()
            .filter(|(_, (_, since))| since.elapsed() >= older_than)
            .map(|(id, _)| id.clone())
            .collect();
        // In chunks: no call holds Redis up for long.
        for chunk in ids.chunks(TOUCH_CHUNK) {
            let refs: Vec<&String> = chunk.iter().collect();
            match self
                .store
                .touch(
                    &self.partition,
                    &self.settings.group,
                    &self.settings.consumer,
                    &refs,
                    self.reclaims,
                )
                .await
            {
                Ok((lost, reclaims)) => {
                    self.reclaims = Some(reclaims);
                    if !lost.is_empty() {
                        tracing::warn!(count = lost.len(), stream = %self.partition.stream, "entries in flight here were taken over by another daemon; it settles them");
                        self.metrics.fenced("settle", lost.len());
                    }
                    for id in lost {
                        self.open.remove(&id);
                    }
                    // Fresh again for another `touch_every`.
                    let now = Instant::now();
                    for id in chunk {
                        if let Some((_, since)) = self.open.get_mut(id) {
                            *since = now;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not keep in-flight entries claimed");
                    return;
                }
            }
        }
    }
}

impl Task {
    /// Discovery counts, gathered over [`SIGHTINGS_EVERY`]: once, best
    /// effort (a retried write would count them twice).
    async fn count_sightings(&mut self) {
        self.seen_counted = Instant::now();
        let seen = std::mem::take(&mut self.seen);
        if let Err(e) = self.store.count_sightings(&self.partition, &seen).await {
            tracing::warn!(error = %e, "could not count event types seen");
        }
    }

    /// The daemon stops: every entry it still has pending (deliveries that
    /// waited here for a slot, entries read ahead, attempts the shutdown
    /// grace cut short) is handed back, for another daemon (or this one
    /// restarted) to take over at once rather than after `reclaim_idle`,
    /// without counting as a failed read.
    async fn hand_back(&mut self) {
        // Idle far past any reclaim_idle: the next reclaim takes them.
        let idle = (self.settings.reclaim_idle * 100).max(Duration::from_secs(3600));
        match self
            .store
            .hand_back(
                &self.partition,
                &self.settings.group,
                &self.settings.consumer,
                idle,
            )
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(count = n, stream = %self.partition.stream, "entries not yet settled handed back for another daemon to take over")
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not hand entries back; they are taken over after reclaim_idle")
            }
        }
    }
}

/// Most entries one touch call names.
const TOUCH_CHUNK: usize = 2000;

impl writer::Sink for Task {
    type Item = Item;

    async fn write(&mut self, items: &mut [Item]) -> Result<(), StoreError> {
        let mut batch = SettleBatch::default();
        for item in items.iter() {
            match item {
                Item::Delivery(d) => batch.deliveries.push(d),
                Item::Ack(entry) => batch.acks.push(entry),
            }
        }
        let reply = self
            .store
            .settle(
                &self.partition,
                &self.settings.group,
                &self.settings.consumer,
                &batch,
                self.settings.breaker,
            )
            .await?;
        if batch
            .deliveries
            .iter()
            .any(|d| d.status != hookd_core::DeliveryStatus::Succeeded)
        {
            self.due.notify_one();
        }
        if reply.set_aside > 0 {
            tracing::error!(count = reply.set_aside, stream = %self.partition.stream, "first attempts that could not be recorded (a key of theirs holds another type) went to the dead-letter stream as unrecordable");
            for _ in 0..reply.set_aside {
                self.metrics.dead_letter("unrecordable");
            }
        }
        if reply.skipped > 0 {
            tracing::warn!(count = reply.skipped, stream = %self.partition.stream, "first attempts not recorded: another daemon took their entries over (this one was too slow); it sends and records them");
            self.metrics.fenced("settle", reply.skipped);
        }
        for t in reply.tripped {
            announce(&self.store, &self.metrics, t).await;
        }
        Ok(())
    }

    async fn quarantine(&mut self, item: Item, error: &StoreError) {
        match item {
            Item::Delivery(d) => {
                self.metrics.dead_letter("unrecordable");
                tracing::error!(delivery = %d.delivery_id(), entry = %d.entry_id, endpoint = %d.endpoint, error = %error,
                    "a first attempt's record was refused every time; its entry goes to the dead-letter stream");
                if let Err(e) = self
                    .store
                    .quarantine_delivery(&self.partition, &d, &error.to_string())
                    .await
                {
                    tracing::error!(error = %e, entry = %d.entry_id, "could not dead-letter the entry either");
                }
            }
            Item::Ack(entry) => {
                tracing::error!(entry = %entry, error = %error, "acknowledging an entry was refused every time; it stays pending");
            }
        }
    }

    async fn waiting(&mut self) {
        if self.touched.elapsed() >= self.touch_every() {
            self.touch().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookd_core::{DeliveryStatus, ErrorKind};

    fn settled() -> Settled {
        Settled {
            entry_id: "1-0".into(),
            endpoint: "ep_1".into(),
            workspace: "ws".into(),
            event_id: "evt_1".into(),
            event_type: "a.b".into(),
            status: DeliveryStatus::Succeeded,
            attempt: None,
            next_at_ms: None,
            pause_reason: None,
            envelope: Some(bytes::Bytes::from_static(b"{}")),
            trace: None,
            lane: hookd_store::ingest::Lane::Direct,
            epoch: 0,
            ordering_key: None,
        }
    }

    #[tokio::test]
    async fn a_panicking_attempt_is_settled_as_failed_and_an_aborted_one_is_not() {
        let (tx, mut rx) = mpsc::channel(8);
        let settler = Settler { tx };
        let mut tasks = tokio::task::JoinSet::new();
        let guard = Unsettled::new(settled(), settler.clone());
        tasks.spawn(async move {
            let _guard = guard;
            panic!("an attempt that panics");
        });
        assert!(tasks.join_next().await.is_some_and(|r| r.is_err()));
        let Some(Settle::Done(d)) = rx.recv().await else {
            panic!("no settle for the panicked attempt");
        };
        assert_eq!(d.status, DeliveryStatus::Retrying);
        let attempt = d.attempt.expect("an attempt");
        assert_eq!(attempt.error_kind, Some(ErrorKind::Internal));
        assert!(d.envelope.is_some(), "the retry needs its envelope");

        let guard = Unsettled::new(settled(), settler.clone());
        tasks.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let finished = Unsettled::new(settled(), settler).finish();
        assert_eq!(finished.entry_id, "1-0");
        drop(tasks);
        assert!(
            rx.try_recv().is_err(),
            "an aborted or finished attempt settles nothing by itself"
        );
    }
}
