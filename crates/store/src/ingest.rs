//! Events on their way to a first attempt straight from the stream:
//! accepting a batch (idempotency markers, slots for first attempts, the
//! configuration version), what the daemon caches of the configuration
//! (subscribers per event type, endpoints), and settling deliveries (their
//! history records, durable state for those that outlive the first attempt,
//! and the stream acknowledgements) in one atomic step per batch.

use std::time::Duration;

use bytes::Bytes;
use hookd_core::{Attempt, DeliveryStatus, Endpoint, Event};
use redis::Value;

use crate::keys::PartitionKeys;
use crate::log::LogRecord;
use crate::schedule::{Breaker, Tripped};
use crate::value::{int, items};
use crate::{Result, Store, StoreError};

/// Slots for first attempts to one endpoint that this daemon asks to hold.
#[derive(Debug, Clone)]
pub struct SlotRequest {
    pub endpoint: String,
    pub workspace: String,
    /// The endpoint's concurrency limit, across every daemon.
    pub cap: u32,
    /// The workspace's, across every daemon and endpoint.
    pub workspace_cap: u32,
    /// Slots this daemon holds now (0..held are its members).
    pub held: u32,
    /// Slots it wants to hold (0 gives them all back).
    pub wanted: u32,
}

/// What accepting a batch answered.
#[derive(Debug, Clone, Default)]
pub struct Accepted {
    /// The partition's configuration version now.
    pub config_version: u64,
    /// Per event: true to deliver, false for a duplicate (acknowledged already).
    pub accepted: Vec<bool>,
    /// Per slot request: the slots now held (leased until `slot_lease` from now).
    pub slots: Vec<u32>,
}

/// One delivery settled after its first attempt (or without one), to be recorded.
#[derive(Debug, Clone)]
pub struct Settled {
    pub entry_id: String,
    pub endpoint: String,
    pub workspace: String,
    pub event_id: String,
    pub event_type: String,
    /// `succeeded` ends it; any other status makes its durable state.
    pub status: DeliveryStatus,
    pub attempt: Option<Attempt>,
    /// When it is due next (retrying, pending).
    pub next_at_ms: Option<i64>,
    /// Pauses the endpoint too (a `410 Gone`).
    pub pause_reason: Option<String>,
    /// Needed by every status but `succeeded`.
    pub envelope: Option<Bytes>,
}

impl Settled {
    pub fn delivery_id(&self) -> String {
        hookd_core::delivery::delivery_id(&self.entry_id, &self.endpoint)
    }
}

/// An endpoint as the daemon caches it: `None` when the document cannot be
/// read here (its deliveries wait in the due queue, where claims skip it).
#[derive(Debug, Clone)]
pub struct EndpointState {
    pub id: String,
    pub workspace: String,
    pub endpoint: Option<Endpoint>,
    pub paused: bool,
}

impl Store {
    /// Accepts events read from partition `p` (duplicates are acknowledged
    /// here) and adjusts this daemon's first-attempt slots. Plain commands
    /// in one pipeline (per event, `SET marker entry NX GET`); the slot
    /// script runs only when slots change or need renewing.
    #[allow(clippy::too_many_arguments)]
    pub async fn accept(
        &self,
        p: &PartitionKeys,
        group: &str,
        holder: &str,
        events: &[(&str, &Event)],
        slots: &[SlotRequest],
        slot_lease: Duration,
        now_ms: i64,
    ) -> Result<Accepted> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for (entry, e) in events {
            pipe.cmd("SET")
                .arg(p.event(&e.workspace, &e.id))
                .arg(*entry)
                .arg("NX")
                .arg("GET")
                .arg("EX")
                .arg(self.retention_secs());
        }
        pipe.get(p.config());
        let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
        let mut replies = replies.into_iter();
        let mut accepted = Vec::with_capacity(events.len());
        let mut duplicates = Vec::new();
        let mut seen: std::collections::HashMap<(&str, &str), u64> = Default::default();
        for (entry, e) in events {
            let first = replies.next().unwrap_or(Value::Nil);
            let new = match &first {
                Value::Nil => true,
                other => crate::value::bytes(other) == Some(entry.as_bytes()),
            };
            if matches!(first, Value::Nil) {
                *seen.entry((&e.workspace, &e.event_type)).or_default() += 1;
            }
            if !new {
                duplicates.push(*entry);
            }
            accepted.push(new);
        }
        let config_version = match replies.next() {
            Some(Value::Nil) | None => 0,
            Some(v) => int(&v)? as u64,
        };
        let granted = self.hold_slots(p, holder, slots, slot_lease).await?;
        // Duplicates acknowledged, first sightings counted for event-type discovery.
        if !duplicates.is_empty() || !seen.is_empty() {
            let mut pipe = redis::pipe();
            if !duplicates.is_empty() {
                pipe.cmd("XACK")
                    .arg(&p.stream)
                    .arg(group)
                    .arg(&duplicates)
                    .ignore();
            }
            for ((ws, t), n) in seen {
                pipe.hincr(p.types_seen(ws), format!("n:{t}"), n)
                    .ignore()
                    .hset(p.types_seen(ws), format!("t:{t}"), now_ms)
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn).await?;
        }
        Ok(Accepted {
            config_version,
            accepted,
            slots: granted,
        })
    }

    /// Adjusts this daemon's first-attempt slots (`lua/slots.lua`); returns
    /// the slots now held, per request. No call at all for no requests.
    pub async fn hold_slots(
        &self,
        p: &PartitionKeys,
        holder: &str,
        slots: &[SlotRequest],
        slot_lease: Duration,
    ) -> Result<Vec<u32>> {
        if slots.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = self.scripts.slots.key(p.config());
        call.arg(&p.tag)
            .arg(slot_lease.as_millis() as u64)
            .arg(holder);
        for s in slots {
            call.arg(&s.endpoint)
                .arg(&s.workspace)
                .arg(s.cap)
                .arg(s.workspace_cap)
                .arg(s.held)
                .arg(s.wanted);
        }
        let v: Value = call.invoke_async(&mut self.conn.clone()).await?;
        items(&v)?.iter().map(|v| Ok(int(v)? as u32)).collect()
    }

    /// Records settled deliveries and acknowledges `acks` (entries whose
    /// deliveries are all recorded, now or before), atomically, and runs the
    /// circuit breaker over their attempts. Returns the endpoints it paused.
    pub async fn settle(
        &self,
        p: &PartitionKeys,
        group: &str,
        deliveries: &[Settled],
        acks: &[String],
        breaker: Breaker,
        now_ms: i64,
    ) -> Result<Vec<Tripped>> {
        if deliveries.is_empty() && acks.is_empty() {
            return Ok(Vec::new());
        }
        if deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Succeeded && d.pause_reason.is_none())
        {
            self.settle_succeeded(p, group, deliveries, acks, now_ms)
                .await?;
            return Ok(Vec::new());
        }
        let mut call = self.scripts.settle.key(&p.stream);
        call.arg(group)
            .arg(&p.tag)
            .arg(self.retention_secs())
            .arg(now_ms)
            .arg(breaker.trip_after)
            .arg(breaker.trip_window.as_millis() as u64)
            .arg(deliveries.len());
        for d in deliveries {
            let created = hookd_core::delivery::entry_time_ms(&d.entry_id).unwrap_or(now_ms);
            let member = self.log_member(d);
            let attempt = match &d.attempt {
                Some(a) if d.status != DeliveryStatus::Succeeded => {
                    serde_json::to_string(a).map_err(|e| StoreError::Corrupt(e.to_string()))?
                }
                _ => String::new(),
            };
            let attempted = if d.attempt.is_some() && attempt.is_empty() {
                // Succeeded: the breaker counts it; no durable state needs its JSON.
                "-"
            } else {
                attempt.as_str()
            };
            call.arg(d.delivery_id())
                .arg(&d.endpoint)
                .arg(&d.workspace)
                .arg(&d.event_id)
                .arg(&d.event_type)
                .arg(created)
                .arg(member)
                .arg(d.status.as_str())
                .arg(attempted)
                .arg(d.next_at_ms.unwrap_or(now_ms))
                .arg(d.pause_reason.as_deref().unwrap_or(""))
                .arg(
                    d.attempt
                        .as_ref()
                        .and_then(|a| a.error.as_deref())
                        .unwrap_or(""),
                )
                .arg(p.envelope(&d.workspace, &d.event_id))
                .arg(d.envelope.as_deref().unwrap_or_default());
        }
        for a in acks {
            call.arg(a);
        }
        let mut conn = self.conn.clone();
        let reply: Value = call.invoke_async(&mut conn).await?;
        self.parse_tripped(items(&reply)?)
    }

    /// The common case of [`Store::settle`]: every delivery succeeded, so
    /// each needs only its log member. Plain commands in one MULTI/EXEC:
    /// log members per endpoint, the circuit breaker's streak reset, and
    /// the acknowledgements.
    async fn settle_succeeded(
        &self,
        p: &PartitionKeys,
        group: &str,
        deliveries: &[Settled],
        acks: &[String],
        now_ms: i64,
    ) -> Result<()> {
        let mut by_endpoint: std::collections::HashMap<&str, Vec<&Settled>> = Default::default();
        for d in deliveries {
            by_endpoint.entry(&d.endpoint).or_default().push(d);
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let retention = self.retention_secs() as i64;
        for (ep, ds) in by_endpoint {
            let log = p.log(ep);
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(&log);
            for d in &ds {
                zadd.arg(hookd_core::delivery::entry_time_ms(&d.entry_id).unwrap_or(now_ms))
                    .arg(self.log_member(d));
            }
            pipe.add_command(zadd)
                .ignore()
                .expire(&log, retention)
                .ignore()
                .hset(p.logs(), ep, &ds[0].workspace)
                .ignore()
                .hdel(p.endpoint(ep), &["fails", "failing_since"])
                .ignore();
        }
        if !acks.is_empty() {
            pipe.cmd("XACK")
                .arg(&p.stream)
                .arg(group)
                .arg(acks)
                .ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    fn log_member(&self, d: &Settled) -> String {
        LogRecord {
            entry_id: d.entry_id.clone(),
            event_id: d.event_id.clone(),
            event_type: d.event_type.clone(),
            status: d.status,
            attempt: d.attempt.clone(),
        }
        .encode()
    }

    /// The endpoints subscribed to each (workspace, event type), as the
    /// subscription sets hold them now.
    pub async fn subscribers(
        &self,
        p: &PartitionKeys,
        types: &[(String, String)],
    ) -> Result<Vec<Vec<String>>> {
        if types.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (ws, t) in types {
            pipe.sunion(&[p.type_subscribers(ws, t), p.all_subscribers(ws)]);
        }
        let mut conn = self.conn.clone();
        Ok(pipe.query_async(&mut conn).await?)
    }

    /// Endpoints as they are stored now (`None`: deleted).
    pub async fn endpoint_states(
        &self,
        p: &PartitionKeys,
        ids: &[String],
    ) -> Result<Vec<Option<EndpointState>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(p.endpoint(id));
        }
        let mut conn = self.conn.clone();
        let hashes: Vec<std::collections::HashMap<String, String>> =
            pipe.query_async(&mut conn).await?;
        Ok(ids
            .iter()
            .zip(hashes)
            .map(|(id, h)| {
                let doc = h.get("doc")?;
                let endpoint = match self.endpoint_from_hash(id, &h) {
                    Ok(ep) => Some(ep),
                    Err(e) => {
                        tracing::warn!(endpoint = %id, error = %e, "cannot read an endpoint; its deliveries wait in its due queue");
                        None
                    }
                };
                let workspace = h.get("ws").cloned().or_else(|| {
                    serde_json::from_str::<serde_json::Value>(doc)
                        .ok()?
                        .get("workspace")?
                        .as_str()
                        .map(str::to_string)
                })?;
                Some(EndpointState {
                    id: id.clone(),
                    workspace,
                    paused: h.get("paused").is_some_and(|v| v == "1"),
                    endpoint,
                })
            })
            .collect())
    }
}
