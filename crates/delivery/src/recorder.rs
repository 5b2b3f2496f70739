//! Writing finished attempts to Redis in batches: attempts that finish
//! together are recorded in one Lua call instead of one round trip each.

use hookd_core::time;
use hookd_store::schedule::Record;
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
    pub fn start(store: Store, partition: PartitionKeys, freed: Arc<Notify>) -> Self {
        let (tx, rx) = mpsc::channel(BATCH * 4);
        tokio::spawn(write_batches(store, partition, rx, freed));
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

async fn write_batches(
    store: Store,
    partition: PartitionKeys,
    mut rx: mpsc::Receiver<(Record, Reply)>,
    freed: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let (records, replies): (Vec<Record>, Vec<Reply>) = batch.drain(..).unzip();
        match store
            .record_attempts(&partition, &records, time::now_ms())
            .await
        {
            Ok(stored) => {
                for (reply, ok) in replies.into_iter().zip(stored) {
                    let _ = reply.send(Ok(ok));
                }
                freed.notify_one();
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
