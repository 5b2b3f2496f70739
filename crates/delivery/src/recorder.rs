//! Writing finished attempts to Redis in batches: attempts that finish
//! together are recorded in one Lua call instead of one round trip each,
//! under the batched writers' failure policy (`writer.rs`: a Redis outage
//! is waited out, never a reason to drop a record). The same call runs the
//! circuit breaker; an endpoint it (or a receiver's 410) pauses is announced
//! on the operational stream.

use std::sync::Arc;

use hookd_core::time;
use hookd_store::audit::Actor;
use hookd_store::schedule::{Breaker, Record, Recorded, Tripped};
use hookd_store::{PartitionKeys, Store, StoreError};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::writer;

/// Most attempts written in one call.
const BATCH: usize = 256;

type Reply = oneshot::Sender<Result<Recorded, String>>;

/// A handle to one partition's recorder task. Cheap to clone; the task ends
/// when every handle is gone, after writing what it was given.
#[derive(Clone)]
pub(crate) struct Recorder {
    tx: mpsc::Sender<(Record, Option<Reply>)>,
}

impl Recorder {
    /// Starts the task; `freed` is woken after each write (slots were freed,
    /// so the scheduler may claim again at once).
    pub fn start(
        store: Store,
        partition: PartitionKeys,
        breaker: Breaker,
        metrics: Arc<crate::Metrics>,
        freed: Arc<Notify>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(BATCH * 4);
        let writer = Writer {
            store,
            partition,
            breaker,
            metrics,
            freed,
        };
        tokio::spawn(writer.run(rx));
        Self { tx }
    }

    /// Records one attempt; returns once it is stored, or what became of it
    /// (the delivery had expired, or its claim was taken over).
    pub async fn record(&self, record: Record) -> Result<Recorded, String> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send((record, Some(reply)))
            .await
            .map_err(|_| "recorder stopped".to_string())?;
        done.await.map_err(|_| "recorder stopped".to_string())?
    }
}

struct Writer {
    store: Store,
    partition: PartitionKeys,
    breaker: Breaker,
    metrics: Arc<crate::Metrics>,
    freed: Arc<Notify>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<(Record, Option<Reply>)>) {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            writer::write_all(&mut self, std::mem::take(&mut batch), "recording attempts").await;
        }
    }
}

impl writer::Sink for Writer {
    type Item = (Record, Option<Reply>);

    async fn write(&mut self, items: &mut [Self::Item]) -> Result<(), StoreError> {
        let records: Vec<Record> = items.iter().map(|(r, _)| r.clone()).collect();
        let (results, tripped) = self
            .store
            .record_attempts(&self.partition, &records, self.breaker)
            .await?;
        let superseded = results
            .iter()
            .filter(|r| **r == Recorded::Superseded)
            .count();
        if superseded > 0 {
            tracing::warn!(
                count = superseded,
                "attempts not recorded: their claims had been taken over (this daemon was too slow); the newer claims' attempts count"
            );
            self.metrics.fenced("record", superseded);
        }
        for ((record, _), result) in items.iter().zip(&results) {
            if *result == Recorded::Refused {
                tracing::error!(delivery = %record.delivery_id, endpoint = %record.endpoint,
                    "an attempt could not be recorded (a key of its delivery holds another type); the delivery ends failed (unrecordable)");
            }
        }
        for ((_, reply), result) in items.iter_mut().zip(results) {
            if let Some(reply) = reply.take() {
                let _ = reply.send(Ok(result));
            }
        }
        self.freed.notify_one();
        for t in tripped {
            announce(&self.store, &self.metrics, t).await;
        }
        Ok(())
    }

    async fn quarantine(&mut self, (record, reply): Self::Item, error: &StoreError) {
        tracing::error!(delivery = %record.delivery_id, endpoint = %record.endpoint, error = %error,
            "an attempt's record was refused every time; the delivery is attempted again when its lease ends");
        if let Some(reply) = reply {
            let _ = reply.send(Err(error.to_string()));
        }
    }
}

/// Logs, counts and publishes an endpoint the breaker or a receiver's 410
/// Gone paused (once: the scripts report a pause only when they made it).
pub(crate) async fn announce(store: &Store, metrics: &crate::Metrics, t: Tripped) {
    let (reason, audit) = if t.gone {
        tracing::warn!(endpoint = %t.endpoint.id, workspace = %t.endpoint.workspace, reason = %t.last_error,
            "receiver answered 410 Gone; the endpoint is paused");
        ("gone", t.last_error.clone())
    } else {
        tracing::warn!(endpoint = %t.endpoint.id, workspace = %t.endpoint.workspace, failures = t.failures,
            last_error = %t.last_error, "circuit breaker paused the endpoint; resume it when the receiver is fixed");
        metrics.breaker_tripped();
        (
            "circuit_breaker",
            format!(
                "circuit breaker: {} consecutive failed attempts; last error: {}",
                t.failures, t.last_error
            ),
        )
    };
    let mut event = vec![
        ("type", "endpoint.paused".to_string()),
        ("reason", reason.to_string()),
        ("endpoint", t.endpoint.id.clone()),
        ("workspace", t.endpoint.workspace.clone()),
    ];
    if !t.gone {
        event.push(("failures", t.failures.to_string()));
        event.push(("failing_since", time::format_rfc3339_ms(t.failing_since_ms)));
    }
    event.push(("last_error", t.last_error.clone()));
    event.push(("at", time::format_rfc3339_ms(time::now_ms())));
    if let Err(e) = store.operational_event(&event).await {
        tracing::warn!(error = %e, "could not publish the operational event");
    }
    store
        .audit(
            &t.endpoint.workspace,
            &Actor::hookd(),
            "endpoint.paused",
            &t.endpoint.id,
            Some(&audit),
        )
        .await;
}
