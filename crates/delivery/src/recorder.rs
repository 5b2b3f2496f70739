//! Writing finished attempts to Redis in batches: attempts that finish
//! together are recorded in one Lua call instead of one round trip each.
//! The same call runs the circuit breaker; an endpoint it pauses is
//! announced on the operational stream.

use hookd_core::time;
use hookd_store::audit::Actor;
use hookd_store::schedule::{Breaker, Record, Tripped};
use hookd_store::{PartitionKeys, Store};
use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

/// Most attempts written in one call.
const BATCH: usize = 256;

type Reply = oneshot::Sender<Result<bool, String>>;

/// A handle to one partition's recorder task. Cheap to clone; the task ends
/// when every handle is gone, after writing what it was given.
#[derive(Clone)]
pub(crate) struct Recorder {
    tx: mpsc::Sender<(Record, Reply)>,
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
        };
        tokio::spawn(writer.run(rx, freed));
        Self { tx }
    }

    /// Records one attempt; returns once it is stored (false: the delivery had expired).
    pub async fn record(&self, record: Record) -> Result<bool, String> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send((record, reply))
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
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<(Record, Reply)>, freed: Arc<Notify>) {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            let (records, replies): (Vec<Record>, Vec<Reply>) = batch.drain(..).unzip();
            match self
                .store
                .record_attempts(&self.partition, &records, self.breaker, time::now_ms())
                .await
            {
                Ok((stored, tripped)) => {
                    for (reply, ok) in replies.into_iter().zip(stored) {
                        let _ = reply.send(Ok(ok));
                    }
                    freed.notify_one();
                    for t in tripped {
                        announce(&self.store, &self.metrics, t).await;
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(message.clone()));
                    }
                }
            }
        }
    }
}

/// Publishes an endpoint a receiver's 410 Gone pauses (the attempt's WARN
/// line names it; the record step pauses it).
pub(crate) async fn announce_gone(store: &Store, c: &hookd_store::schedule::Claimed, reason: &str) {
    let event = [
        ("type", "endpoint.paused".to_string()),
        ("reason", "gone".to_string()),
        ("endpoint", c.endpoint.id.clone()),
        ("workspace", c.endpoint.workspace.clone()),
        ("delivery", c.delivery_id.clone()),
        ("last_error", reason.to_string()),
        ("at", time::format_rfc3339_ms(time::now_ms())),
    ];
    if let Err(e) = store.operational_event(&event).await {
        tracing::warn!(error = %e, "could not publish the operational event");
    }
    store
        .audit(
            &c.endpoint.workspace,
            &Actor::hookd(),
            "endpoint.paused",
            &c.endpoint.id,
            Some(reason),
        )
        .await;
}

/// Logs, counts and publishes an endpoint the breaker paused.
pub(crate) async fn announce(store: &Store, metrics: &crate::Metrics, t: Tripped) {
    tracing::warn!(endpoint = %t.endpoint.id, workspace = %t.endpoint.workspace, failures = t.failures,
        last_error = %t.last_error, "circuit breaker paused the endpoint; resume it when the receiver is fixed");
    metrics.breaker_tripped();
    let event = [
        ("type", "endpoint.paused".to_string()),
        ("reason", "circuit_breaker".to_string()),
        ("endpoint", t.endpoint.id.clone()),
        ("workspace", t.endpoint.workspace.clone()),
        ("failures", t.failures.to_string()),
        ("failing_since", time::format_rfc3339_ms(t.failing_since_ms)),
        ("last_error", t.last_error.clone()),
        ("at", time::format_rfc3339_ms(time::now_ms())),
    ];
    if let Err(e) = store.operational_event(&event).await {
        tracing::warn!(error = %e, "could not publish the operational event");
    }
    let reason = format!(
        "circuit breaker: {} consecutive failed attempts; last error: {}",
        t.failures, t.last_error
    );
    store
        .audit(
            &t.endpoint.workspace,
            &Actor::hookd(),
            "endpoint.paused",
            &t.endpoint.id,
            Some(&reason),
        )
        .await;
}
