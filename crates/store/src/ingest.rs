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
    /// here) and adjusts this daemon's first-attempt slots, in one call.
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
        let mut call = self.scripts.accept.key(&p.stream);
        call.arg(group)
            .arg(&p.tag)
            .arg(self.retention_secs())
            .arg(now_ms)
            .arg(events.len())
            .arg(slot_lease.as_millis() as u64)
            .arg(holder);
        for (entry, e) in events {
            call.arg(*entry)
                .arg(p.event(&e.workspace, &e.id))
                .arg(&e.workspace)
                .arg(&e.event_type);
        }
        for s in slots {
            call.arg(&s.endpoint)
                .arg(&s.workspace)
                .arg(s.cap)
                .arg(s.workspace_cap)
                .arg(s.held)
                .arg(s.wanted);
        }
        let mut conn = self.conn.clone();
        let reply: Value = call.invoke_async(&mut conn).await?;
        let [version, verdicts, granted] = items(&reply)? else {
            return Err(StoreError::Reply(format!("accept: {reply:?}")));
        };
        Ok(Accepted {
            config_version: int(version)? as u64,
            accepted: items(verdicts)?
                .iter()
                .map(|v| Ok(int(v)? == 1))
                .collect::<Result<_>>()?,
            slots: items(granted)?
                .iter()
                .map(|v| Ok(int(v)? as u32))
                .collect::<Result<_>>()?,
        })
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
            let member = LogRecord {
                entry_id: d.entry_id.clone(),
                event_id: d.event_id.clone(),
                event_type: d.event_type.clone(),
                status: d.status,
                attempt: d.attempt.clone(),
            }
            .encode();
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
