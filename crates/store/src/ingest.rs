//! Persisting events: deliveries for every subscribed endpoint, the envelope
//! once, and the stream acknowledgement, in one atomic step per batch.

use hookd_core::{Event, id};

use crate::keys::PartitionKeys;
use crate::value::{int, items};
use crate::{Result, Store, StoreError};

/// What one persisted batch produced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Persisted {
    pub deliveries: u64,
    /// Events whose (workspace, id) had been ingested before: acknowledged, not delivered again.
    pub duplicates: u64,
}

impl Store {
    /// Persists validated events read from entries of partition `p` and
    /// acknowledges those entries, atomically (one Lua call for the batch).
    pub async fn persist(
        &self,
        p: &PartitionKeys,
        group: &str,
        events: &[(String, Event)],
        now_ms: i64,
    ) -> Result<Persisted> {
        if events.is_empty() {
            return Ok(Persisted::default());
        }
        let mut conn = self.conn.clone();
        let mut call = self.scripts.ingest.key(&p.stream);
        call.arg(group)
            .arg(&p.tag)
            .arg(now_ms)
            .arg(self.retention_secs());
        for (entry_id, e) in events {
            call.arg(entry_id)
                .arg(p.event(&e.workspace, &e.id))
                .arg(p.type_subscribers(&e.workspace, &e.event_type))
                .arg(p.all_subscribers(&e.workspace))
                .arg(&e.id)
                .arg(&e.event_type)
                .arg(&e.workspace)
                .arg(e.envelope.as_slice())
                .arg(id::new_id("dlv_"));
        }
        let reply: redis::Value = call.invoke_async(&mut conn).await?;
        match items(&reply)? {
            [created, duplicates] => Ok(Persisted {
                deliveries: int(created)? as u64,
                duplicates: int(duplicates)? as u64,
            }),
            other => Err(StoreError::Reply(format!(
                "ingest script returned {other:?}"
            ))),
        }
    }
}
