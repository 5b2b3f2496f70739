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
    /// Event types seen for the first time in this batch, per workspace
    /// (for event-type discovery; [`Store::settle`] records them).
    pub seen: Vec<Sighting>,
}

/// Events of one type seen in a workspace, to be counted for discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub workspace: String,
    pub event_type: String,
    pub count: u64,
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
    /// The producer's trace context, kept for later attempts.
    pub trace: Option<std::sync::Arc<hookd_core::trace::TraceParent>>,
}

impl Settled {
    pub fn delivery_id(&self) -> String {
        hookd_core::delivery::delivery_id(&self.entry_id, &self.endpoint)
    }
}

/// One write of the settler: deliveries to record, entries whose
/// deliveries are all recorded (now or before) to acknowledge, and first
/// sightings of event types to count.
#[derive(Debug, Default)]
pub struct SettleBatch {
    pub deliveries: Vec<Settled>,
    pub acks: Vec<String>,
    pub seen: Vec<Sighting>,
}

impl SettleBatch {
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty() && self.acks.is_empty() && self.seen.is_empty()
    }
}

/// Counts event types seen, for discovery (how many, and when last).
fn count_sightings(pipe: &mut redis::Pipeline, p: &PartitionKeys, seen: &[Sighting], now_ms: i64) {
    for s in seen {
        let key = p.types_seen(&s.workspace);
        pipe.hincr(&key, format!("n:{}", s.event_type), s.count)
            .ignore()
            .hset(&key, format!("t:{}", s.event_type), now_ms)
            .ignore();
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
    /// Accepts events read from partition `p` and adjusts this daemon's
    /// first-attempt slots. One pipeline of plain commands (per event,
    /// `SET marker entry NX GET`, and the configuration version); the slot
    /// script runs only when slots change or need renewing. Writes nothing
    /// else: the caller acknowledges duplicates and has first sightings
    /// counted through [`Store::settle`], which writes anyway.
    pub async fn accept(
        &self,
        p: &PartitionKeys,
        holder: &str,
        events: &[(&str, &Event)],
        slots: &[SlotRequest],
        slot_lease: Duration,
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
        let mut seen: Vec<Sighting> = Vec::new();
        for (entry, e) in events {
            let first = replies.next().unwrap_or(Value::Nil);
            let new = match &first {
                Value::Nil => true,
                other => crate::value::bytes(other) == Some(entry.as_bytes()),
            };
            if matches!(first, Value::Nil) {
                match seen
                    .iter_mut()
                    .find(|s| s.workspace == e.workspace && s.event_type == e.event_type)
                {
                    Some(s) => s.count += 1,
                    None => seen.push(Sighting {
                        workspace: e.workspace.clone(),
                        event_type: e.event_type.clone(),
                        count: 1,
                    }),
                }
            }
            accepted.push(new);
        }
        let config_version = match replies.next() {
            Some(Value::Nil) | None => 0,
            Some(v) => int(&v)? as u64,
        };
        let granted = self.hold_slots(p, holder, slots, slot_lease).await?;
        Ok(Accepted {
            config_version,
            accepted,
            slots: granted,
            seen,
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

    /// Records a batch's settled deliveries and acknowledges its entries,
    /// atomically, counts its sightings, and runs the circuit breaker over
    /// its attempts. Returns the endpoints it paused.
    pub async fn settle(
        &self,
        p: &PartitionKeys,
        group: &str,
        batch: &SettleBatch,
        breaker: Breaker,
        now_ms: i64,
    ) -> Result<Vec<Tripped>> {
        let SettleBatch {
            deliveries,
            acks,
            seen,
        } = batch;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Succeeded && d.pause_reason.is_none())
        {
            self.settle_succeeded(p, group, batch, now_ms).await?;
            return Ok(Vec::new());
        }
        if !seen.is_empty() {
            let mut pipe = redis::pipe();
            count_sightings(&mut pipe, p, seen, now_ms);
            pipe.query_async::<()>(&mut self.conn.clone()).await?;
        }
        let mut call = self.scripts.settle.key(&p.stream);
        call.arg(group)
            .arg(&p.tag)
            .arg(self.retention_secs())
            .arg(now_ms)
            .arg(breaker.trip_after)
            .arg(breaker.trip_window.as_millis() as u64)
            .arg(deliveries.len())
            .arg(self.settings.ship_backlog);
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
                .arg(d.envelope.as_deref().unwrap_or_default())
                .arg(d.trace.as_ref().map(|t| t.header()).unwrap_or_default())
                .arg(
                    d.trace
                        .as_ref()
                        .and_then(|t| t.tracestate.as_deref())
                        .unwrap_or_default(),
                );
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
        batch: &SettleBatch,
        now_ms: i64,
    ) -> Result<()> {
        let SettleBatch {
            deliveries,
            acks,
            seen,
        } = batch;
        let mut by_endpoint: std::collections::HashMap<&str, Vec<&Settled>> = Default::default();
        for d in deliveries {
            by_endpoint.entry(&d.endpoint).or_default().push(d);
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let retention = self.retention_secs() as i64;
        let shipping = self.settings.ship_backlog > 0;
        let mut ship = redis::cmd("XADD");
        ship.arg(p.ship())
            .arg("MAXLEN")
            .arg("~")
            .arg(self.settings.ship_backlog)
            .arg("*");
        for (ep, ds) in by_endpoint {
            let log = p.log(ep);
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(&log);
            for d in &ds {
                let member = self.log_member(d);
                if shipping {
                    ship.arg(format!("l{} {}", d.endpoint, d.workspace))
                        .arg(&member);
                }
                zadd.arg(hookd_core::delivery::entry_time_ms(&d.entry_id).unwrap_or(now_ms))
                    .arg(member);
            }
            pipe.add_command(zadd)
                .ignore()
                .expire(&log, retention)
                .ignore()
                .hset(p.logs(), ep, &ds[0].workspace)
                .ignore()
                .hdel(p.endpoint(ep), &["fails", "failing_since", "last_error"])
                .ignore();
        }
        if shipping && !deliveries.is_empty() {
            pipe.add_command(ship).ignore();
        }
        count_sightings(&mut pipe, p, seen, now_ms);
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
