//! The shipping backlog: with history shipped to PostgreSQL, every history
//! write also appends a record to its partition's `P:ship` stream, in the
//! same atomic step (`settle.lua`, the succeeded fast path of `ingest.rs`,
//! `record.lua`). Shippers read it with a consumer group, store the records
//! in PostgreSQL (idempotently), then acknowledge and delete them. A shipper
//! that dies mid-batch leaves its entries pending, and another takes them
//! over, so a record is shipped at least once and stored once.
//!
//! An entry holds the records of one step, as field/value pairs:
//! - `l<endpoint> <workspace>` -> a history log member (`log.rs`): a new
//!   delivery and its first attempt, if one was made;
//! - `r` -> `[delivery id, endpoint, workspace, event id, event type,
//!   created ms, status, attempts made, attempt JSON]`: a later attempt.

use std::time::Duration;

use hookd_core::delivery::{delivery_id, entry_time_ms};
use hookd_core::{Attempt, DeliveryStatus};
use redis::Value;

use crate::log::LogRecord;
use crate::value::{items, string};
use crate::{PartitionKeys, Result, Store, StoreError};

/// One delivery's state as a history write left it, with the attempt it
/// recorded (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct ShipRecord {
    pub delivery_id: String,
    pub endpoint_id: String,
    pub workspace: String,
    pub event_id: String,
    pub event_type: String,
    pub created_ms: i64,
    pub status: DeliveryStatus,
    pub attempts_made: u32,
    pub attempt: Option<Attempt>,
    /// When the record was written (its entry's time, ms).
    pub recorded_ms: i64,
}

/// One backlog entry: its id and records.
#[derive(Debug, Clone)]
pub struct Shipment {
    pub entry_id: String,
    pub records: Vec<ShipRecord>,
}

impl Store {
    /// Creates the shippers' consumer group on partition `p`'s backlog.
    pub async fn ensure_ship_group(&self, p: &PartitionKeys, group: &str) -> Result<()> {
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(p.ship())
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn.clone())
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Up to `count` backlog entries: first those other shippers left
    /// pending longer than `reclaim_idle`, then new ones. Never waits: a
    /// blocking read would hold the shared connection every other command
    /// goes through (the caller polls).
    pub async fn take_shipments(
        &self,
        p: &PartitionKeys,
        group: &str,
        consumer: &str,
        count: usize,
        reclaim_idle: Duration,
    ) -> Result<Vec<Shipment>> {
        let mut conn = self.conn.clone();
        let reply: Value = redis::cmd("XAUTOCLAIM")
            .arg(p.ship())
            .arg(group)
            .arg(consumer)
            .arg(reclaim_idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        let mut out = match items(&reply)? {
            [_, claimed, ..] => shipments(claimed)?,
            _ => Vec::new(),
        };
        if out.is_empty() {
            let reply: Value = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(group)
                .arg(consumer)
                .arg("COUNT")
                .arg(count)
                .arg("STREAMS")
                .arg(p.ship())
                .arg(">")
                .query_async(&mut conn)
                .await?;
            let streams: Vec<&Value> = match &reply {
                Value::Nil => Vec::new(),
                Value::Map(m) => m.iter().map(|(_, v)| v).collect(),
                other => items(other)?
                    .iter()
                    .filter_map(|s| items(s).ok()?.get(1))
                    .collect(),
            };
            for entries in streams {
                out.extend(shipments(entries)?);
            }
        }
        Ok(out)
    }

    /// Shipped: acknowledged and deleted from the backlog.
    pub async fn shipped(&self, p: &PartitionKeys, group: &str, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let _: () = redis::pipe()
            .atomic()
            .cmd("XACK")
            .arg(p.ship())
            .arg(group)
            .arg(ids)
            .ignore()
            .cmd("XDEL")
            .arg(p.ship())
            .arg(ids)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Records waiting in every partition's backlog (entries, each the
    /// records of one step).
    pub async fn ship_backlog(&self) -> Result<u64> {
        let mut total = 0;
        for p in self.keys.all_partitions() {
            let n: u64 = redis::cmd("XLEN")
                .arg(p.ship())
                .query_async(&mut self.conn.clone())
                .await?;
            total += n;
        }
        Ok(total)
    }
}

fn shipments(v: &Value) -> Result<Vec<Shipment>> {
    let mut out = Vec::new();
    for entry in items(v)? {
        let Ok([id, fields]) = items(entry) else {
            continue;
        };
        let Ok(fields) = items(fields) else { continue }; // deleted meanwhile
        let entry_id = string(id)?;
        let recorded_ms = entry_time_ms(&entry_id).unwrap_or(0);
        let mut records = Vec::new();
        for kv in fields.chunks_exact(2) {
            let (name, value) = (string(&kv[0])?, string(&kv[1])?);
            let record = decode(&name, &value, recorded_ms).ok_or_else(|| {
                StoreError::Corrupt(format!("shipping record {entry_id}: {name} {value}"))
            })?;
            records.push(record);
        }
        out.push(Shipment { entry_id, records });
    }
    Ok(out)
}

/// One field/value pair of a backlog entry (see the module comment).
fn decode(name: &str, value: &str, recorded_ms: i64) -> Option<ShipRecord> {
    if let Some(rest) = name.strip_prefix('l') {
        let (endpoint, workspace) = rest.split_once(' ')?;
        let r = LogRecord::decode(value)?;
        return Some(ShipRecord {
            delivery_id: delivery_id(&r.entry_id, endpoint),
            endpoint_id: endpoint.to_string(),
            workspace: workspace.to_string(),
            created_ms: entry_time_ms(&r.entry_id)?,
            event_id: r.event_id,
            event_type: r.event_type,
            status: r.status,
            attempts_made: u32::from(r.attempt.is_some()),
            attempt: r.attempt,
            recorded_ms,
        });
    }
    if name != "r" {
        return None;
    }
    let v: Vec<serde_json::Value> = serde_json::from_str(value).ok()?;
    let text = |i: usize| v.get(i)?.as_str().map(str::to_string);
    let attempt: Attempt = serde_json::from_str(v.get(8)?.as_str()?).ok()?;
    Some(ShipRecord {
        delivery_id: text(0)?,
        endpoint_id: text(1)?,
        workspace: text(2)?,
        event_id: text(3)?,
        event_type: text(4)?,
        created_ms: v.get(5)?.as_i64()?,
        status: DeliveryStatus::parse(&text(6)?)?,
        attempts_made: v.get(7)?.as_u64()? as u32,
        attempt: Some(attempt),
        recorded_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_record_forms_decode() {
        let member = LogRecord {
            entry_id: "1700000000000-0".into(),
            event_id: "evt_1".into(),
            event_type: "a.b".into(),
            status: DeliveryStatus::Succeeded,
            attempt: None,
        }
        .encode();
        let r = decode("lep_1 ws one", &member, 5).unwrap();
        assert_eq!(r.delivery_id, "dlv_1700000000000-0_ep_1");
        assert_eq!(r.workspace, "ws one");
        assert_eq!(r.created_ms, 1_700_000_000_000);
        assert_eq!(r.attempts_made, 0);
        let attempt = r#"{"number":2,"started_at_ms":1700000001000,"duration_ms":3,"succeeded":false,"status_code":503}"#;
        let later = serde_json::json!([
            "dlv_1700000000000-0_ep_1",
            "ep_1",
            "ws",
            "evt_1",
            "a.b",
            1_700_000_000_000i64,
            "retrying",
            2,
            attempt
        ]);
        let r = decode("r", &later.to_string(), 5).unwrap();
        assert_eq!(r.status, DeliveryStatus::Retrying);
        assert_eq!(r.attempt.unwrap().status_code, Some(503));
        assert!(decode("x", "y", 0).is_none());
    }
}
