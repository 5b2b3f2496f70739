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

use crate::log::LogRecord;
use crate::recovery::envelope_in;
use crate::stream::RawFields;
use crate::{PartitionKeys, Result, Store};
use hookd_core::delivery::{delivery_id, entry_time_ms, parse_delivery_id};
use hookd_core::{Attempt, DeliveryStatus};

/// One delivery's state as a history write left it, with the attempt it
/// recorded (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct ShipRecord {
    /// The delivery.
    pub delivery_id: String,
    /// Its endpoint.
    pub endpoint_id: String,
    /// Its workspace.
    pub workspace: String,
    /// Its event's id.
    pub event_id: String,
    /// Its event's type.
    pub event_type: String,
    /// When it was made (its entry's time, ms).
    pub created_ms: i64,
    /// Its status after the write.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts_made: u32,
    /// The attempt the write recorded, if any.
    pub attempt: Option<Attempt>,
    /// When the record was written (its entry's time, ms).
    pub recorded_ms: i64,
    /// The delivery's first record (from its log member): its event's
    /// payload is shipped with it.
    pub first: bool,
}

/// The payload of an event with deliveries, shipped with their first
/// records so they can be attempted again once Redis has forgotten them.
#[derive(Debug, Clone)]
pub struct ShippedEnvelope {
    /// The event's stream entry time (its deliveries' creation time), ms.
    pub created_ms: i64,
    /// The event's workspace.
    pub workspace: String,
    /// The event's id.
    pub event_id: String,
    /// The envelope, as delivered.
    pub envelope: Vec<u8>,
}

/// One backlog entry: its id and records.
#[derive(Debug, Clone)]
pub struct Shipment {
    /// The backlog entry's id (acknowledged once stored).
    pub entry_id: String,
    /// Its records.
    pub records: Vec<ShipRecord>,
}

impl Store {
    /// Creates the shippers' consumer group on partition `p`'s backlog.
    pub async fn ensure_ship_group(&self, p: &PartitionKeys, group: &str) -> Result<()> {
        self.create_group(&p.ship(), group, true).await
    }

    /// Up to `count` backlog entries: first those other shippers left
    /// pending longer than `reclaim_idle`, then new ones. Never waits (the
    /// caller polls; see `Store::take_entries`).
    pub async fn take_shipments(
        &self,
        p: &PartitionKeys,
        group: &str,
        consumer: &str,
        count: usize,
        reclaim_idle: Duration,
    ) -> Result<Vec<Shipment>> {
        self.take_entries(&p.ship(), group, consumer, reclaim_idle, count)
            .await?
            .into_iter()
            .map(|(entry_id, fields)| shipment(entry_id, &fields))
            .collect()
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

    /// The envelopes of the events whose deliveries start in `records`
    /// (one per event), read from their stream entries, or from the kept
    /// copy where the entry is gone (see `materialize`). An event whose
    /// payload is in neither is left out.
    pub async fn shipment_envelopes(
        &self,
        p: &PartitionKeys,
        records: &[&ShipRecord],
    ) -> Result<Vec<ShippedEnvelope>> {
        let mut events: Vec<(&str, &ShipRecord)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for &r in records.iter().filter(|r| r.first) {
            let Some((entry, _)) = parse_delivery_id(&r.delivery_id) else {
                continue;
            };
            if seen.insert((entry, r.workspace.as_str())) {
                events.push((entry, r));
            }
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (entry, r) in &events {
            pipe.cmd("XRANGE").arg(&p.stream).arg(*entry).arg(*entry);
            pipe.cmd("GET").arg(p.envelope(&r.workspace, &r.event_id));
        }
        type Entries = Vec<(String, Vec<(String, Vec<u8>)>)>;
        let replies: Vec<redis::Value> = pipe.query_async(&mut self.conn.clone()).await?;
        let mut out = Vec::with_capacity(events.len());
        for ((entry, r), pair) in events.iter().zip(replies.chunks(2)) {
            let from_entry = pair
                .first()
                .and_then(|v| redis::from_redis_value_ref::<Entries>(v).ok())
                .and_then(|entries| entries.into_iter().next())
                .and_then(|(_, fields)| envelope_in(entry, &fields, &r.event_id));
            let kept = || {
                pair.get(1)
                    .and_then(|v| redis::from_redis_value_ref::<Option<Vec<u8>>>(v).ok())
                    .flatten()
            };
            if let Some(envelope) = from_entry.or_else(kept) {
                out.push(ShippedEnvelope {
                    created_ms: r.created_ms,
                    workspace: r.workspace.clone(),
                    event_id: r.event_id.clone(),
                    envelope,
                });
            }
        }
        Ok(out)
    }

    /// Entries waiting in partition `p`'s backlog (each holds the records
    /// of one step).
    pub async fn ship_backlog(&self, p: &PartitionKeys) -> Result<u64> {
        Ok(redis::cmd("XLEN")
            .arg(p.ship())
            .query_async(&mut self.conn.clone())
            .await?)
    }
}

/// A backlog entry's records. One that cannot be decoded (written by a
/// newer hookd, or damaged) is logged and left out: it never holds back
/// the records beside it, nor the backlog behind it.
fn shipment(entry_id: String, fields: &RawFields) -> Result<Shipment> {
    let recorded_ms = entry_time_ms(&entry_id).unwrap_or(0);
    let mut records = Vec::new();
    for (name, value) in fields {
        let value = String::from_utf8_lossy(value);
        match decode(name, &value, recorded_ms) {
            Some(record) => records.push(record),
            None => {
                let shown: String = value.chars().take(200).collect();
                tracing::error!(entry = %entry_id, field = %name, value = %shown,
                    "a history record in the shipping backlog cannot be decoded; it is left out of PostgreSQL");
            }
        }
    }
    Ok(Shipment { entry_id, records })
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
            first: true,
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
        first: false,
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
