//! Events on their way to a first attempt straight from the stream:
//! accepting a batch (idempotency markers, slots for first attempts, the
//! configuration version), what the daemon caches of the configuration
//! (subscribers per event type, endpoints), and settling deliveries (their
//! history records, durable state for those that outlive the first attempt,
//! and the stream acknowledgements) in one atomic step per batch.

use std::collections::HashMap;
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
    /// The endpoint.
    pub endpoint: String,
    /// Its workspace (for the workspace's limit).
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
    /// The workspace.
    pub workspace: String,
    /// The event type.
    pub event_type: String,
    /// Events of it in the batch.
    pub count: u64,
}

/// One delivery settled after its first attempt (or without one), to be recorded.
#[derive(Debug, Clone)]
pub struct Settled {
    /// Its stream entry.
    pub entry_id: String,
    /// The endpoint it went to.
    pub endpoint: String,
    /// Its workspace.
    pub workspace: String,
    /// Its event's id.
    pub event_id: String,
    /// Its event's type.
    pub event_type: String,
    /// `succeeded` ends it; any other status makes its durable state.
    pub status: DeliveryStatus,
    /// The first attempt, when one was made.
    pub attempt: Option<Attempt>,
    /// When it is due next (retrying, pending).
    pub next_at_ms: Option<i64>,
    /// Pauses the endpoint too (a `410 Gone`).
    pub pause_reason: Option<String>,
    /// Needed by every status but `succeeded`.
    pub envelope: Option<Bytes>,
    /// The producer's trace context, kept for later attempts.
    pub trace: Option<std::sync::Arc<hookd_core::trace::TraceParent>>,
    /// Where it comes from: its entry (pending in the group), or an item
    /// taken from its endpoint's lane.
    pub lane: Lane,
    /// The partition's reclaim count when its entry was read (`Taken::epoch`;
    /// 0 when unknown: its ownership is then always asked).
    pub epoch: u64,
    /// With status `waiting`: its event's ordering key (an ordered endpoint's
    /// delivery, which joins its key's order).
    pub ordering_key: Option<std::sync::Arc<str>>,
}

/// Where a settled delivery came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Lane {
    /// From its stream entry, pending in the group (fenced by ownership).
    #[default]
    Direct,
    /// Taken from its endpoint's lane (`Store::take_lane`) with `lease`
    /// (fenced by it): `item` is its entry id.
    Taken {
        /// The item's entry id.
        item: String,
        /// The take's lease token.
        lease: String,
    },
}

impl Settled {
    /// The delivery's id, from its entry and endpoint.
    pub fn delivery_id(&self) -> String {
        hookd_core::delivery::delivery_id(&self.entry_id, &self.endpoint)
    }
}

/// One write of the settler: deliveries to record, and entries whose
/// deliveries are all recorded (now or before) to acknowledge.
#[derive(Debug, Default)]
pub struct SettleBatch<'a> {
    /// Deliveries to record.
    pub deliveries: Vec<&'a Settled>,
    /// Entries to acknowledge.
    pub acks: Vec<&'a str>,
}

/// Most distinct event types counted per workspace (types seen for
/// discovery); past it, new types are not counted.
pub const MAX_TYPES_SEEN: usize = 1000;

/// What a settle call did beside writing.
#[derive(Debug, Default)]
pub struct SettleReply {
    /// Endpoints the circuit breaker paused.
    pub tripped: Vec<Tripped>,
    /// Deliveries not recorded because another consumer owns their entry now.
    pub skipped: usize,
    /// Deliveries that could not be recorded (a key of theirs holds another
    /// type): their entries went to the dead-letter stream instead.
    pub set_aside: usize,
}

impl SettleBatch<'_> {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty() && self.acks.is_empty()
    }
}

/// An endpoint as the daemon caches it: `None` when the document cannot be
/// read here (its deliveries wait in the due queue, where claims skip it).
#[derive(Debug, Clone)]
pub struct EndpointState {
    /// The endpoint id.
    pub id: String,
    /// Its workspace.
    pub workspace: String,
    /// Its document, when it reads.
    pub endpoint: Option<Endpoint>,
    /// Its deliveries are held.
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
        let mut call = self.scripts.slots.key(p.ready());
        call.arg(slot_lease.as_millis() as u64).arg(holder);
        for s in slots {
            call.key(p.leases(&s.endpoint))
                .key(p.workspace_leases(&s.workspace))
                .key(p.due(&s.endpoint))
                .arg(&s.endpoint)
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
    /// atomically, and runs the circuit breaker over its attempts
    /// (`lua/settle.lua`). Fenced: only entries `consumer` still owns in the
    /// group are settled; the deliveries of the others are skipped (and
    /// counted in the reply). A delivery whose keys hold another type is set
    /// aside (dead-lettered) in the same step; a shared key of the wrong type
    /// fails the call with nothing written. Sightings are not written here
    /// (see [`Store::count_sightings`]).
    pub async fn settle(
        &self,
        p: &PartitionKeys,
        group: &str,
        consumer: &str,
        batch: &SettleBatch<'_>,
        breaker: Breaker,
    ) -> Result<SettleReply> {
        let SettleBatch { deliveries, acks } = batch;
        if batch.is_empty() {
            return Ok(SettleReply::default());
        }
        let now_ms = hookd_core::time::now_ms();
        // The endpoints of the batch, in order of first appearance.
        let mut endpoints: Vec<(&str, &str)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for d in deliveries {
            if !index.contains_key(d.endpoint.as_str()) {
                endpoints.push((&d.endpoint, &d.workspace));
                index.insert(&d.endpoint, endpoints.len());
            }
        }
        let mut call = self.scripts.settle.prepare_invoke();
        call.key(&p.stream)
            .key(p.ready())
            .key(p.config())
            .key(p.logs())
            .key(p.ship())
            .key(self.keys.dead_letter(p))
            .key(p.lanes())
            .key(p.reclaims());
        for (ep, _) in &endpoints {
            call.key(p.endpoint(ep))
                .key(p.log(ep))
                .key(p.due(ep))
                .key(p.held(ep))
                .key(p.lane(ep))
                .key(p.taken(ep));
        }
        // (Only the full ones can get durable state; in their order.)
        for d in deliveries
            .iter()
            .filter(|d| d.status != DeliveryStatus::Succeeded)
        {
            let id = d.delivery_id();
            let key = d.ordering_key.as_deref().unwrap_or_default();
            call.key(p.delivery(&id))
                .key(p.attempts(&id))
                .key(p.envelope(&d.workspace, &d.event_id))
                .key(p.order(&d.endpoint, key))
                .key(p.order_reads(&d.workspace, key));
        }
        call.arg(group)
            .arg(consumer)
            .arg(self.retention_secs())
            .arg(breaker.trip_after)
            .arg(breaker.trip_window.as_millis() as u64)
            .arg(self.settings.ship_backlog);
        // The common case told in few arguments: a first attempt from the
        // stream that succeeded (and paused nothing).
        let is_short = |d: &&&Settled| {
            d.status == DeliveryStatus::Succeeded
                && d.lane == Lane::Direct
                && d.attempt.is_some()
                && d.pause_reason.is_none()
        };
        // Grouped by endpoint (in order of first appearance), each group's
        // (created, member) pairs as ZADD takes them.
        let mut groups: Vec<Vec<&Settled>> = vec![Vec::new(); endpoints.len()];
        let mut full: Vec<&&Settled> = Vec::new();
        for d in deliveries {
            if is_short(&d) {
                groups[index[d.endpoint.as_str()] - 1].push(d);
            } else {
                full.push(d);
            }
        }
        call.arg(endpoints.len())
            .arg(full.len())
            .arg(self.settings.dead_letter_max_len.max(1))
            .arg(groups.iter().filter(|g| !g.is_empty()).count())
            .arg(
                deliveries
                    .iter()
                    .filter(|d| d.lane == Lane::Direct)
                    .map(|d| d.epoch)
                    .min()
                    .unwrap_or(0),
            );
        for (ep, ws) in &endpoints {
            call.arg(*ep).arg(*ws);
        }
        for (e, group) in groups.iter().enumerate().filter(|(_, g)| !g.is_empty()) {
            call.arg(e + 1).arg(group.len());
            for d in group {
                call.arg(hookd_core::delivery::entry_time_ms(&d.entry_id).unwrap_or(now_ms))
                    .arg(self.log_member(d));
            }
        }
        for d in full {
            let created = hookd_core::delivery::entry_time_ms(&d.entry_id).unwrap_or(now_ms);
            let attempt = match &d.attempt {
                Some(a) if d.status != DeliveryStatus::Succeeded => {
                    serde_json::to_string(a).map_err(|e| StoreError::Corrupt(e.to_string()))?
                }
                // Succeeded: the breaker counts it; no durable state needs its JSON.
                Some(_) => "-".to_string(),
                None => String::new(),
            };
            // (What only durable state needs is left empty for a delivery that ends here.)
            let ends = d.status == DeliveryStatus::Succeeded;
            call.arg(&d.entry_id)
                .arg(index[d.endpoint.as_str()])
                .arg(if ends { String::new() } else { d.delivery_id() })
                .arg(if ends { "" } else { d.event_id.as_str() })
                .arg(if ends { "" } else { d.event_type.as_str() })
                .arg(created)
                .arg(self.log_member(d))
                .arg(d.status.as_str())
                .arg(attempt)
                .arg(d.next_at_ms.map_or(0, |at| (at - now_ms).max(0)))
                .arg(d.pause_reason.as_deref().unwrap_or(""))
                .arg(
                    d.attempt
                        .as_ref()
                        .and_then(|a| a.error.as_deref())
                        .unwrap_or(""),
                )
                .arg(if d.status == DeliveryStatus::Succeeded {
                    &[][..]
                } else {
                    d.envelope.as_deref().unwrap_or_default()
                })
                .arg(d.trace.as_ref().map(|t| t.header()).unwrap_or_default())
                .arg(
                    d.trace
                        .as_ref()
                        .and_then(|t| t.tracestate.as_deref())
                        .unwrap_or_default(),
                );
            match &d.lane {
                Lane::Direct => call.arg("").arg(""),
                Lane::Taken { item, lease } => call.arg(lease).arg(item),
            };
            call.arg(d.ordering_key.as_deref().unwrap_or_default());
        }
        for a in acks {
            call.arg(*a);
        }
        let mut conn = self.conn.clone();
        let reply: Value = call.invoke_async(&mut conn).await?;
        match items(&reply)? {
            [tripped, skipped, set_aside] => Ok(SettleReply {
                tripped: self.parse_tripped(items(tripped)?)?,
                skipped: int(skipped)? as usize,
                set_aside: int(set_aside)? as usize,
            }),
            _ => Err(StoreError::Reply(format!("settle: {reply:?}"))),
        }
    }

    /// Counts event types seen, for discovery (how many, and when last).
    /// Best effort, once per batch: never retried, so never counted twice.
    pub async fn count_sightings(&self, p: &PartitionKeys, seen: &[Sighting]) -> Result<()> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut call = self.scripts.sightings.prepare_invoke();
        call.arg(MAX_TYPES_SEEN).arg(hookd_core::time::now_ms());
        for s in seen {
            call.key(p.types_seen(&s.workspace))
                .arg(&s.event_type)
                .arg(s.count);
        }
        let dropped: i64 = call.invoke_async(&mut self.conn.clone()).await?;
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "event types not counted: their workspace has {MAX_TYPES_SEEN} types seen already"
            );
        }
        Ok(())
    }

    /// A delivery that could not be recorded (its write kept failing): its
    /// stream entry, with the delivery and the reason, goes to the
    /// dead-letter stream, so an operator sees it and can publish it again.
    pub async fn quarantine_delivery(
        &self,
        p: &PartitionKeys,
        d: &Settled,
        error: &str,
    ) -> Result<()> {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(self.keys.dead_letter(p))
            .arg("MAXLEN")
            .arg("~")
            .arg(self.settings.dead_letter_max_len.max(1))
            .arg("*")
            .arg("reason")
            .arg("unrecordable")
            .arg("message")
            .arg(format!(
                "the delivery's record could not be written: {error}"
            ))
            .arg("entry_id")
            .arg(&d.entry_id)
            .arg("stream")
            .arg(&p.stream)
            .arg("delivery")
            .arg(d.delivery_id())
            .arg("endpoint")
            .arg(&d.endpoint)
            .arg("workspace")
            .arg(&d.workspace)
            .arg("event_id")
            .arg(&d.event_id)
            .arg("status")
            .arg(d.status.as_str());
        let _: String = xadd.query_async(&mut self.conn.clone()).await?;
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
