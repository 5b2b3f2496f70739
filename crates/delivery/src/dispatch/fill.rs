//! The lane filler: the half of a partition's dispatch that takes
//! deliveries waiting in lanes into slots as they come free, by deficit
//! round robin between workspaces and round robin between a workspace's
//! endpoints (see the module comment of `dispatch`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookd_core::{DeliveryStatus, Endpoint, Event, Rejection, time};
use hookd_store::StoreError;
use hookd_store::ingest::{Lane, Settled};
use hookd_store::schedule::Claimed;
use hookd_store::stream::Entry;
use tokio::sync::OwnedSemaphorePermit;

use super::lanes::{Body, Held, MARKER_DUPLICATE, MARKER_UNKNOWN, Ready, ready};
use super::{Cached, Config, DISCOVERY, Dispatch, IDLE};
use crate::metrics::Waiting;
use crate::sender::Target;
use crate::settle::Settle;

/// Most items taken from one lane in one call.
pub(super) const TAKE_MAX: usize = 256;
/// Deliveries a workspace may take from lanes per turn, times its weight.
pub(super) const QUANTUM: i64 = 32;
/// How often `lane_work` returns when nothing happened (to look again).
pub(super) const TICK: Duration = Duration::from_millis(100);
/// How long the filler leaves the router alone while it is behind.
pub(super) const BEHIND_PAUSE: Duration = Duration::from_millis(2);

impl Dispatch {
    /// Returns when there may be lane work: a first attempt ended (a slot
    /// came free), or a moment passed (to look again).
    pub async fn lane_work(&self) {
        if self.index.is_behind() {
            // Routing first: the filler takes a turn now and then.
            tokio::time::sleep(BEHIND_PAUSE).await;
            return;
        }
        tokio::select! {
            _ = self.freed.notified() => {}
            _ = self.index.written.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
    }

    /// Takes deliveries waiting in lanes into the slots free here, fairly
    /// (see the module comment), until no lane can take more.
    pub async fn fill_lanes(&mut self) -> Result<(), StoreError> {
        while self.tasks.try_join_next().is_some() {}
        if self.discovered.elapsed() >= DISCOVERY {
            self.discovered = Instant::now();
            for (endpoint, workspace) in self.store.lanes(&self.partition).await? {
                if self
                    .index
                    .parts(&endpoint)
                    .is_none_or(|(_, in_redis, _)| !in_redis)
                {
                    self.index.written(&workspace, &endpoint);
                }
            }
            self.report_waiting().await?;
            // Lanes may be all that moves: the cache is checked here too.
            let version = self.store.config_version(&self.partition).await?;
            if self.config.version != Some(version) {
                self.config = Config {
                    version: Some(version),
                    ..Config::default()
                };
            }
        }
        for (endpoint, workspace) in self.index.snapshot() {
            self.lanes.add(&workspace, &endpoint);
        }
        let missing: Vec<String> = self
            .lanes
            .index
            .keys()
            .filter(|id| !self.config.endpoints.contains_key(*id))
            .cloned()
            .collect();
        if !missing.is_empty() {
            self.load_endpoints(missing).await?;
        }
        // A lane of an endpoint deleted meanwhile: its deliveries fail
        // (those waiting here are settled as the delete leaves them).
        let deleted: Vec<String> = self
            .lanes
            .index
            .keys()
            .filter(|id| matches!(self.config.endpoints.get(*id), Some(None)))
            .cloned()
            .collect();
        for endpoint in deleted {
            self.store.drop_lane(&self.partition, &endpoint).await?;
            let here = self.index.drop_endpoint(&endpoint);
            let workspace = self.lanes.index.get(&endpoint).cloned().unwrap_or_default();
            self.settle_held(&workspace, &endpoint, here, None).await?;
            self.lanes.index.remove(&endpoint);
            for turn in &mut self.lanes.turns {
                turn.endpoints.retain(|e| *e != endpoint);
            }
            self.lanes.turns.retain(|t| !t.endpoints.is_empty());
        }
        // A paused endpoint's deliveries waiting here are held (durably, as
        // any delivery of a paused endpoint is); its Redis part waits as it is.
        let paused: Vec<String> = self
            .lanes
            .index
            .keys()
            .filter(|id| matches!(self.config.endpoints.get(*id), Some(Some(c)) if c.state.paused))
            .cloned()
            .collect();
        for endpoint in paused {
            let workspace = self.lanes.index.get(&endpoint).cloned().unwrap_or_default();
            loop {
                let ids = self.index.take_here(&endpoint, TAKE_MAX);
                if ids.is_empty() {
                    break;
                }
                self.settle_held(&workspace, &endpoint, ids, None).await?;
            }
        }
        if self.released.elapsed() >= IDLE {
            self.released = Instant::now();
            self.release_idle().await?;
        }
        if self.lanes.is_empty() {
            return Ok(());
        }
        let needed: HashMap<String, u32> = self
            .lanes
            .index
            .keys()
            .map(|ep| (ep.clone(), u32::MAX))
            .collect();
        let requests = self.slot_requests(needed);
        if !requests.is_empty() {
            self.request_slots(requests).await?;
        }
        // Turns of deficit round robin while anything was taken.
        loop {
            let mut progress = false;
            for _ in 0..self.lanes.turns.len() {
                if self.window.available_permits() == 0 {
                    return Ok(());
                }
                let Some(mut turn) = self.lanes.turns.pop_front() else {
                    break;
                };
                let weight = self
                    .settings
                    .weights
                    .get(&turn.workspace)
                    .copied()
                    .unwrap_or(1);
                turn.deficit += QUANTUM * i64::from(weight.max(1));
                let mut served = 0;
                let mut emptied = Vec::new();
                for _ in 0..turn.endpoints.len() {
                    if turn.deficit <= 0 {
                        break;
                    }
                    let Some(endpoint) = turn.endpoints.pop_front() else {
                        break;
                    };
                    turn.endpoints.push_back(endpoint.clone());
                    let room = self.lane_room(&endpoint).min(turn.deficit as usize);
                    if room == 0 {
                        continue;
                    }
                    let Some((here, in_redis, writes)) = self.index.parts(&endpoint) else {
                        emptied.push(endpoint);
                        continue;
                    };
                    // Those waiting here first (they are the older), then Redis's.
                    let taken = if here > 0 {
                        self.take_here(&turn.workspace, &endpoint, room).await
                    } else if in_redis {
                        self.take(&endpoint, room).await
                    } else {
                        Ok(0)
                    };
                    let taken = match taken {
                        Ok(taken) => taken,
                        Err(e) => {
                            // Its turn is not lost with the error.
                            self.lanes.turns.push_front(turn);
                            return Err(e);
                        }
                    };
                    turn.deficit -= taken as i64;
                    served += taken;
                    let dry = if here > 0 {
                        self.index.parts(&endpoint).is_none()
                    } else {
                        taken < room && self.index.dry(&endpoint, writes)
                    };
                    if dry {
                        emptied.push(endpoint);
                    }
                }
                for endpoint in emptied {
                    turn.endpoints.retain(|e| *e != endpoint);
                    self.lanes.index.remove(&endpoint);
                }
                if served == 0 {
                    // Nothing it could take now: no credit carried over.
                    turn.deficit = 0;
                }
                progress |= served > 0;
                if !turn.endpoints.is_empty() {
                    self.lanes.turns.push_back(turn);
                }
            }
            if !progress {
                return Ok(());
            }
        }
    }

    /// Sets the waiting gauges: what waits here, and in the partition's
    /// Redis lanes, per workspace, with the oldest's age.
    pub(super) async fn report_waiting(&mut self) -> Result<(), StoreError> {
        let now = time::now_ms();
        let age = |entry: Option<&str>| {
            entry
                .and_then(hookd_core::delivery::entry_time_ms)
                .map_or(0.0, |ms| (now - ms).max(0) as f64 / 1000.0)
        };
        let mut by_ws: HashMap<String, Waiting> = HashMap::new();
        let mut reports = Vec::new();
        for (ep, ws, here, oldest) in self.index.waiting_here() {
            let w = by_ws.entry(ws).or_default();
            w.here += here as u64;
            w.oldest_seconds = w.oldest_seconds.max(age(oldest.as_deref()));
            if here > 0 {
                let since = oldest
                    .as_deref()
                    .and_then(hookd_core::delivery::entry_time_ms)
                    .unwrap_or(now);
                reports.push((ep, here as u64, since));
            }
        }
        // (For the endpoint view: what waits here, told to Redis.)
        let gone: Vec<String> = self
            .reported
            .iter()
            .filter(|ep| !reports.iter().any(|(r, _, _)| r == *ep))
            .cloned()
            .collect();
        self.store
            .report_here(&self.partition, &self.settings.consumer, &reports, &gone)
            .await?;
        self.reported = reports.into_iter().map(|(ep, _, _)| ep).collect();
        for (_, ws, len, head) in self.store.lanes_waiting(&self.partition).await? {
            let w = by_ws.entry(ws).or_default();
            w.in_redis += len;
            w.oldest_seconds = w.oldest_seconds.max(age(head.as_deref()));
        }
        self.ctx
            .metrics
            .waiting(self.partition.index, by_ws.into_iter().collect());
        Ok(())
    }

    /// How many deliveries `endpoint`'s lane may send now from here (a
    /// deleted endpoint's lane is emptied by the delete itself).
    pub(super) fn lane_room(&self, endpoint: &str) -> usize {
        let Some(Some(cached)) = self.config.endpoints.get(endpoint) else {
            return 0;
        };
        if cached.state.paused
            || cached
                .endpoint
                .as_ref()
                .is_none_or(|e| e.rate_limit.is_some())
        {
            return 0;
        }
        let Some(slots) = self.slots.get(endpoint) else {
            return 0;
        };
        slots
            .permits
            .available_permits()
            .min(self.window.available_permits())
            .min(TAKE_MAX)
    }

    /// Takes up to `max` deliveries waiting here in `endpoint`'s lane, reads
    /// their entries again and starts their attempts; returns how many.
    pub(super) async fn take_here(
        &mut self,
        workspace: &str,
        endpoint: &str,
        max: usize,
    ) -> Result<usize, StoreError> {
        let ids = self.index.take_here(endpoint, max);
        let count = ids.len();
        let cached = match self.config.endpoints.get(endpoint) {
            Some(Some(c)) => Some(c.clone()),
            _ => None,
        };
        self.settle_held(workspace, endpoint, ids, cached).await?;
        Ok(count)
    }

    /// Sends the deliveries of `ids` (entries pending in the group, waiting
    /// here) to `endpoint`, or, when it is gone (`cached` is `None`), lets
    /// settling fail them. Their entries are read again; one trimmed away
    /// meanwhile has nothing left to send; one that does not read as an
    /// event is dead-lettered; a duplicate event is skipped. On a Redis
    /// error the ids wait here again.
    pub(super) async fn settle_held(
        &mut self,
        workspace: &str,
        endpoint: &str,
        held: Vec<Held>,
        cached: Option<Arc<Cached>>,
    ) -> Result<(), StoreError> {
        if held.is_empty() {
            return Ok(());
        }
        // Read again only the entries not kept with them.
        let unread: Vec<String> = held
            .iter()
            .filter(|h| h.entry.body.is_none())
            .map(|h| h.id.clone())
            .collect();
        let mut read = match self
            .store
            .entries(&self.partition, &unread, &self.settings.limits_events)
            .await
        {
            Ok(entries) => entries.into_iter(),
            Err(e) => {
                if cached.is_some() {
                    self.index.put_back(workspace, endpoint, held);
                }
                return Err(e);
            }
        };
        // (id, event, epoch, what its entry's deliveries share, whether its
        // marker is still to be checked)
        let mut events = Vec::with_capacity(held.len());
        for h in held {
            let Held {
                id,
                entry: shared,
                epoch,
            } = h;
            let entry = match &shared.body {
                Some(Body::Event(event)) => {
                    let unchecked = shared.marker() == MARKER_UNKNOWN;
                    events.push((id, event.clone(), epoch, shared, unchecked));
                    continue;
                }
                Some(Body::Packed(packed)) => {
                    let read = match shared.event.get() {
                        _ if shared.marker() == MARKER_DUPLICATE => None,
                        Some(event) => Some(Ok(event.clone())),
                        None => {
                            let read = packed.event(self.settings.limits_events).map(ready);
                            if let Ok(event) = &read
                                && Arc::strong_count(&shared) > 1
                            {
                                // Other deliveries of it wait (a fan-out).
                                shared.keep_event(event);
                            }
                            Some(read)
                        }
                    };
                    match read {
                        Some(Ok(event)) => {
                            let unchecked = shared.marker() == MARKER_UNKNOWN;
                            events.push((id, event, epoch, shared, unchecked));
                            continue;
                        }
                        // A duplicate, or refused: as below.
                        _ => Some(Arc::new(packed.unpack())),
                    }
                }
                None => read.next().flatten().map(Arc::new),
            };
            if shared.marker() == MARKER_DUPLICATE {
                // Another endpoint's take found the event a duplicate.
                self.ctx.metrics.ingested(0, 1);
                self.settler.send(Settle::Skip(id)).await;
                continue;
            }
            let Some(entry) = entry else {
                self.ctx.metrics.pending_trimmed(1);
                tracing::warn!(entry = %id, endpoint, "a delivery waiting in its lane lost its stream entry (trimmed); nothing is left to send");
                self.settler.send(Settle::Skip(id)).await;
                continue;
            };
            match Event::from_entry(&entry.id, &entry.fields, self.settings.limits_events) {
                Ok(event) => {
                    let unchecked = shared.marker() == MARKER_UNKNOWN;
                    events.push((id, ready(event), epoch, shared, unchecked));
                }
                Err(rejection) => {
                    self.refuse(&entry, &rejection).await?;
                    self.settler.send(Settle::Skip(id)).await;
                }
            }
        }
        if events.is_empty() {
            return Ok(());
        }
        // Idempotency markers, once per entry: those its other deliveries'
        // takes (or routing) have not checked yet.
        let unchecked: Vec<(&str, &Event)> = events
            .iter()
            .filter(|e| e.4)
            .map(|(id, e, ..)| (id.as_str(), &*e.0))
            .collect();
        if !unchecked.is_empty() {
            let accepted = self
                .store
                .accept(
                    &self.partition,
                    &self.settings.consumer,
                    &unchecked,
                    &[],
                    self.settings.slot_lease,
                )
                .await?;
            if !accepted.seen.is_empty() {
                self.settler.send(Settle::Seen(accepted.seen)).await;
            }
            let mut answers = accepted.accepted.into_iter();
            for e in events.iter().filter(|e| e.4) {
                // (No answer cannot happen; sending is the safe side of it.)
                e.3.set_marker(answers.next().unwrap_or(true));
            }
        }
        let target = cached
            .as_ref()
            .and_then(|c| Some((c.endpoint.clone()?, c.target.clone()?)));
        for (id, event, epoch, shared, _) in events {
            if shared.marker() == MARKER_DUPLICATE {
                self.ctx.metrics.ingested(0, 1);
                self.settler.send(Settle::Skip(id)).await;
                continue;
            }
            let permits = match (
                &target,
                self.slots
                    .get(endpoint)
                    .and_then(|s| s.permits.clone().try_acquire_owned().ok()),
                self.window.clone().try_acquire_owned().ok(),
            ) {
                (Some(_), Some(slot), Some(window)) => [slot, window],
                _ => {
                    // No attempt now: held (its endpoint paused), or pending
                    // (gone: settling fails it; or, it cannot be, no slot).
                    let status = match self.config.endpoints.get(endpoint) {
                        Some(Some(c)) if c.state.paused => DeliveryStatus::Held,
                        _ => DeliveryStatus::Pending,
                    };
                    let settled = self.settled(&id, &event, endpoint, status, Lane::Direct, epoch);
                    self.settler.send(Settle::Done(settled)).await;
                    continue;
                }
            };
            let Some((ep, target)) = &target else {
                continue;
            };
            if let Some(slots) = self.slots.get_mut(endpoint) {
                slots.last_used = Instant::now();
            }
            self.send_taken(
                &id,
                event,
                endpoint,
                (ep, target),
                permits,
                Lane::Direct,
                epoch,
            );
        }
        Ok(())
    }

    /// Starts the first attempt of a delivery taken from a lane (waiting
    /// here, or in Redis: `lane`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_taken(
        &mut self,
        entry: &str,
        ready: Ready,
        endpoint: &str,
        (ep, target): (&Arc<Endpoint>, &Arc<Target>),
        permits: [OwnedSemaphorePermit; 2],
        lane: Lane,
        epoch: u64,
    ) {
        let settled = self.settled(
            entry,
            &ready,
            endpoint,
            DeliveryStatus::Succeeded,
            lane,
            epoch,
        );
        let (event, envelope) = ready;
        let claimed = Claimed {
            delivery_id: hookd_core::delivery::delivery_id(entry, endpoint),
            endpoint: ep.clone(),
            attempts_made: 0,
            created_at_ms: hookd_core::delivery::entry_time_ms(entry)
                .unwrap_or(event.created_at_ms),
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            envelope,
            manual: false,
            trace: event.trace.clone().map(Arc::new),
            lease: String::new(),
            job: None,
            ordering_key: None,
            sequence: None,
        };
        self.spawn_attempt(claimed, target.clone(), permits, settled);
    }

    /// Takes up to `max` deliveries from `endpoint`'s lane and starts their
    /// attempts (their events' idempotency markers checked first: a
    /// duplicate's item is given back with nothing to record); returns how
    /// many it took.
    pub(super) async fn take(&mut self, endpoint: &str, max: usize) -> Result<usize, StoreError> {
        let taken = self
            .store
            .take_lane(&self.partition, endpoint, max, self.settings.lane_lease)
            .await?;
        let count = taken.items.len();
        let Some(Some(cached)) = self.config.endpoints.get(endpoint).cloned() else {
            return Ok(count);
        };
        let (Some(ep), Some(target)) = (cached.endpoint.clone(), cached.target.clone()) else {
            return Ok(count);
        };
        let workspace = cached.state.workspace.clone();
        let mut events = Vec::with_capacity(count);
        for (item, entry) in taken.items {
            let lane = Lane::Taken {
                item: item.clone(),
                lease: taken.lease.clone(),
            };
            let Some(entry) = entry else {
                // Trimmed from the stream meanwhile: nothing left to send.
                self.settle_unsendable(
                    &item,
                    endpoint,
                    &workspace,
                    lane,
                    "its stream entry is gone",
                )
                .await;
                continue;
            };
            match Event::from_entry(&entry.id, &entry.fields, self.settings.limits_events) {
                Ok(event) => events.push((item, lane, ready(event))),
                Err(rejection) => {
                    self.refuse(&entry, &rejection).await?;
                    self.store
                        .untake(&self.partition, endpoint, std::slice::from_ref(&item))
                        .await?;
                }
            }
        }
        if events.is_empty() {
            return Ok(count);
        }
        // The idempotency markers of events that were routed to lanes only.
        let refs: Vec<(&str, &Event)> = events
            .iter()
            .map(|(id, _, e)| (id.as_str(), &*e.0))
            .collect();
        let accepted = self
            .store
            .accept(
                &self.partition,
                &self.settings.consumer,
                &refs,
                &[],
                self.settings.slot_lease,
            )
            .await?;
        if !accepted.seen.is_empty() {
            self.settler.send(Settle::Seen(accepted.seen)).await;
        }
        let mut duplicates = Vec::new();
        for ((item, lane, event), ok) in events.into_iter().zip(accepted.accepted) {
            if !ok {
                duplicates.push(item);
                continue;
            }
            let permits = match (
                self.slots
                    .get(endpoint)
                    .and_then(|s| s.permits.clone().try_acquire_owned().ok()),
                self.window.clone().try_acquire_owned().ok(),
            ) {
                (Some(slot), Some(window)) => [slot, window],
                // (Cannot happen: `max` was counted from the free permits.)
                _ => {
                    duplicates.push(item);
                    continue;
                }
            };
            if let Some(slots) = self.slots.get_mut(endpoint) {
                slots.last_used = Instant::now();
            }
            self.send_taken(&item, event, endpoint, (&ep, &target), permits, lane, 0);
        }
        if !duplicates.is_empty() {
            self.ctx.metrics.ingested(0, duplicates.len() as u64);
            self.store
                .untake(&self.partition, endpoint, &duplicates)
                .await?;
        }
        Ok(count)
    }

    /// An item whose entry is gone from the stream: it ends failed, without
    /// an attempt (its event cannot be known: the history names the entry).
    pub(super) async fn settle_unsendable(
        &self,
        item: &str,
        endpoint: &str,
        workspace: &str,
        lane: Lane,
        why: &str,
    ) {
        tracing::warn!(entry = %item, endpoint, why, "a delivery waiting in its lane cannot be sent; it fails");
        self.settler
            .send(Settle::Done(Settled {
                entry_id: item.to_string(),
                endpoint: endpoint.to_string(),
                workspace: workspace.to_string(),
                event_id: format!("evt_{item}"),
                event_type: String::new(),
                status: DeliveryStatus::Failed,
                attempt: None,
                next_at_ms: None,
                pause_reason: None,
                envelope: None,
                trace: None,
                lane,
                epoch: 0,
                ordering_key: None,
            }))
            .await;
    }

    /// Dead-letters an entry routed without being read whole (see
    /// `dispatch`) that its read whole refuses.
    async fn refuse(&self, entry: &Entry, rejection: &Rejection) -> Result<(), StoreError> {
        let at = (&self.partition, self.settings.group.as_str());
        let limits = &self.settings.limits_events;
        crate::ingest::dead_letter(&self.store, &self.ctx.metrics, at, entry, rejection, limits)
            .await
    }
}
