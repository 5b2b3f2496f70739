//! First attempts straight from the stream. For each batch of events read,
//! one call to Redis accepts them (idempotency, configuration version,
//! slots), and every delivery whose endpoint has a free slot here is sent at
//! once; the entry stays pending in the consumer group until the settler
//! records its deliveries and acknowledges it. A delivery that cannot go now
//! (endpoint paused, rate-limited, unreadable, or no free slot here) is
//! settled without an attempt into the due queue, where the scheduler's
//! claims take it. The ingest loop reads no more entries than there are
//! free slots, so with steady traffic to endpoints that keep up, nothing
//! takes that detour.
//!
//! The configuration (who subscribes to what, endpoint documents, pause
//! flags, limits) is cached here and checked against the partition's
//! version once per batch. Concurrency across daemons: each daemon holds
//! slots per endpoint, members of the same lease sets the claim script
//! counts, renewed while in use and given back when idle.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookd_core::{AttemptTrigger, DeliveryStatus, Endpoint, Event, time};
use hookd_store::ingest::Settled;
use hookd_store::ingest::{EndpointState, SlotRequest};
use hookd_store::schedule::{Claimed, ConcurrencyLimits, Outcome};
use hookd_store::{PartitionKeys, Store, StoreError};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::attempt::AttemptContext;
use crate::sender::Target;
use crate::settle::{Settle, Settler, Unsettled};

/// An idle endpoint's slots are given back after this long.
const IDLE: Duration = Duration::from_secs(1);

/// Typed settings of first attempts.
#[derive(Debug, Clone)]
pub(crate) struct DispatchSettings {
    pub consumer: String,
    pub limits: ConcurrencyLimits,
    /// How long slots are held without being renewed (a dead daemon's lapse then).
    pub slot_lease: Duration,
    /// First attempts waiting or in flight at once, per partition.
    pub window: usize,
}

/// An endpoint as cached: `None` documents were deleted.
struct Cached {
    state: EndpointState,
    endpoint: Option<Arc<Endpoint>>,
    target: Option<Arc<Target>>,
}

impl Config {
    /// Looked up without building a key: this runs for every event.
    fn subscribers(&self, workspace: &str, event_type: &str) -> Option<&Arc<[String]>> {
        self.subscribers.get(workspace)?.get(event_type)
    }
}

#[derive(Default)]
struct Config {
    version: Option<u64>,
    /// Workspace -> event type -> subscribed endpoint ids.
    subscribers: HashMap<String, HashMap<String, Arc<[String]>>>,
    /// How many (workspace, event type) pairs `subscribers` holds.
    types: usize,
    endpoints: HashMap<String, Option<Arc<Cached>>>,
}

/// Most (workspace, event type) pairs cached: producers inventing types
/// cannot grow the cache without end (past it, it starts again empty).
const MAX_CACHED_TYPES: usize = 50_000;

/// This daemon's slots for one endpoint.
struct Slots {
    held: u32,
    /// The endpoint's limit, across every daemon.
    cap: u32,
    /// What this daemon aims to hold: `cap`, or less when the endpoints of
    /// one workspace share the workspace's limit here.
    share: u32,
    /// The most it may hold now: `share`, or fewer when the last grant fell
    /// short of the request (other daemons or due deliveries hold the rest).
    ceiling: u32,
    workspace: String,
    renewed: Instant,
    last_used: Instant,
    /// One permit per slot held and free.
    permits: Arc<Semaphore>,
}

impl Slots {
    /// The request giving every slot back.
    fn give_back(&self, endpoint: &str) -> SlotRequest {
        SlotRequest {
            endpoint: endpoint.to_string(),
            workspace: self.workspace.clone(),
            cap: self.cap,
            workspace_cap: 0,
            held: self.held,
            wanted: 0,
        }
    }

    fn in_use(&self) -> u32 {
        self.held
            .saturating_sub(self.permits.available_permits() as u32)
    }
}

pub(crate) struct Dispatch {
    pub store: Store,
    pub partition: PartitionKeys,
    pub ctx: AttemptContext,
    pub settler: Settler,
    pub settings: DispatchSettings,
    window: Arc<Semaphore>,
    /// Woken whenever a first attempt ends (a slot came free).
    freed: Arc<Notify>,
    /// Deliveries per accepted event, recently (a moving average).
    fanout: f64,
    config: Config,
    slots: HashMap<String, Slots>,
    tasks: JoinSet<()>,
}

enum Route {
    Send(Arc<Endpoint>, Arc<Target>, [OwnedSemaphorePermit; 2]),
    Hold,
    Defer,
}

impl Dispatch {
    pub fn new(
        store: Store,
        partition: PartitionKeys,
        ctx: AttemptContext,
        settler: Settler,
        settings: DispatchSettings,
    ) -> Self {
        Self {
            store,
            partition,
            ctx,
            settler,
            window: Arc::new(Semaphore::new(settings.window.max(1))),
            freed: Arc::new(Notify::new()),
            fanout: 1.0,
            settings,
            config: Config::default(),
            slots: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    /// How many entries to read next: as many as the slots this daemon
    /// holds or may grow to can take, within the window, divided by the
    /// recent fan-out (an endpoint's default share while it holds none yet).
    /// Read any more and the surplus would go the due queue's way.
    pub fn room(&self) -> usize {
        let window = self.window.available_permits();
        if self.slots.is_empty() {
            return window.min(self.settings.limits.endpoint_default.max(1) as usize);
        }
        let (mut free, mut in_use) = (0usize, 0usize);
        for s in self.slots.values() {
            free += s.ceiling.saturating_sub(s.in_use()) as usize;
            in_use += s.in_use() as usize;
        }
        let room = (free.min(window) as f64 / self.fanout.max(1.0)) as usize;
        if room == 0 && in_use == 0 {
            // Every grant fell short and nothing is in flight here: read
            // one entry anyway, to ask again (its deliveries may wait in
            // the due queue, behind the ones holding the slots).
            return window.min(1);
        }
        room
    }

    /// Waits until a first attempt ends (or a moment, to look again).
    pub async fn wait_for_room(&self) {
        let _ = tokio::time::timeout(Duration::from_millis(100), self.freed.notified()).await;
    }

    /// Accepts and sends a batch of valid events read from the partition.
    /// Returns (accepted, duplicates).
    pub async fn dispatch(
        &mut self,
        events: Vec<(String, Event)>,
    ) -> Result<(u64, u64), StoreError> {
        while self.tasks.try_join_next().is_some() {}
        self.load(&events).await?;
        let requests = self.slot_requests(&events);
        let refs: Vec<(&str, &Event)> = events.iter().map(|(id, e)| (id.as_str(), e)).collect();
        let accepted = self
            .store
            .accept(
                &self.partition,
                &self.settings.consumer,
                &refs,
                &requests,
                self.settings.slot_lease,
            )
            .await?;
        if !accepted.seen.is_empty() {
            self.settler.send(Settle::Seen(accepted.seen)).await;
        }
        self.apply_grants(&requests, &accepted.slots);
        if self.config.version != Some(accepted.config_version) {
            self.config = Config {
                version: Some(accepted.config_version),
                ..Config::default()
            };
            self.load(&events).await?;
        }
        let (mut new, mut duplicates, mut deliveries) = (0, 0, 0);
        for ((entry, event), ok) in events.into_iter().zip(accepted.accepted) {
            if !ok {
                // Delivered under the first entry that carried its id: acknowledged with nothing to record.
                self.settler.send(Settle::Expect(entry, 0)).await;
                duplicates += 1;
                continue;
            }
            new += 1;
            deliveries += self.deliver(entry, event).await;
        }
        if new > 0 {
            self.fanout = 0.8 * self.fanout + 0.2 * (deliveries as f64 / new as f64);
        }
        Ok((new, duplicates))
    }

    /// Sends (or settles without an attempt) every delivery of one event;
    /// returns how many it has.
    async fn deliver(&mut self, entry: String, event: Event) -> usize {
        let subscribers = self
            .config
            .subscribers(&event.workspace, &event.event_type)
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()));
        self.settler
            .send(Settle::Expect(entry.clone(), subscribers.len()))
            .await;
        if subscribers.is_empty() {
            return 0;
        }
        let created_ms = hookd_core::delivery::entry_time_ms(&entry).unwrap_or(event.created_at_ms);
        let envelope = Bytes::from(event.envelope);
        let trace = event.trace.map(Arc::new);
        for endpoint_id in subscribers.iter() {
            let settled = |status: DeliveryStatus| Settled {
                entry_id: entry.clone(),
                endpoint: endpoint_id.clone(),
                workspace: event.workspace.clone(),
                event_id: event.id.clone(),
                event_type: event.event_type.clone(),
                status,
                attempt: None,
                next_at_ms: Some(time::now_ms()),
                pause_reason: None,
                envelope: Some(envelope.clone()),
                trace: trace.clone(),
            };
            match self.route(endpoint_id) {
                Route::Hold => {
                    self.settler
                        .send(Settle::Done(settled(DeliveryStatus::Held)))
                        .await;
                }
                Route::Defer => {
                    self.settler
                        .send(Settle::Done(settled(DeliveryStatus::Pending)))
                        .await;
                }
                Route::Send(endpoint, target, permits) => {
                    let claimed = Claimed {
                        delivery_id: hookd_core::delivery::delivery_id(&entry, endpoint_id),
                        endpoint,
                        attempts_made: 0,
                        created_at_ms: created_ms,
                        event_id: event.id.clone(),
                        event_type: event.event_type.clone(),
                        envelope: envelope.clone(),
                        manual: false,
                        trace: trace.clone(),
                        lease: String::new(),
                        job: None,
                    };
                    let guard =
                        Unsettled::new(settled(DeliveryStatus::Succeeded), self.settler.clone());
                    let (ctx, settler, freed) =
                        (self.ctx.clone(), self.settler.clone(), self.freed.clone());
                    self.tasks.spawn(async move {
                        let record = ctx.run(claimed, &target, AttemptTrigger::Scheduled).await;
                        let mut settled = guard.finish();
                        // The slot is free once the response is in.
                        drop(permits);
                        freed.notify_one();
                        (settled.status, settled.next_at_ms) = match record.outcome {
                            Outcome::Succeeded => (DeliveryStatus::Succeeded, None),
                            Outcome::RetryAt(at) => (DeliveryStatus::Retrying, Some(at)),
                            Outcome::Failed => (DeliveryStatus::Failed, None),
                        };
                        if settled.status == DeliveryStatus::Succeeded {
                            settled.envelope = None;
                        }
                        settled.attempt = Some(record.attempt);
                        settled.pause_reason = record.pause_reason;
                        settler.send(Settle::Done(settled)).await;
                    });
                }
            }
        }
        subscribers.len()
    }

    /// Where one delivery goes now.
    fn route(&mut self, endpoint_id: &str) -> Route {
        let Some(Some(cached)) = self.config.endpoints.get(endpoint_id) else {
            // Deleted since: the due queue's claim fails it (`endpoint_deleted`).
            return Route::Defer;
        };
        if cached.state.paused {
            return Route::Hold;
        }
        let (Some(endpoint), Some(target)) = (&cached.endpoint, &cached.target) else {
            return Route::Defer;
        };
        if endpoint.rate_limit.is_some() {
            // Rate limits are kept by the claim script alone.
            return Route::Defer;
        }
        let Some(slots) = self.slots.get_mut(endpoint_id) else {
            return Route::Defer;
        };
        let Ok(slot) = slots.permits.clone().try_acquire_owned() else {
            return Route::Defer;
        };
        let Ok(window) = self.window.clone().try_acquire_owned() else {
            return Route::Defer;
        };
        slots.last_used = Instant::now();
        Route::Send(endpoint.clone(), target.clone(), [slot, window])
    }

    /// Loads what the cache lacks for these events: their subscribers, and
    /// those endpoints.
    async fn load(&mut self, events: &[(String, Event)]) -> Result<(), StoreError> {
        let mut types: Vec<(String, String)> = events
            .iter()
            .filter(|(_, e)| {
                self.config
                    .subscribers(&e.workspace, &e.event_type)
                    .is_none()
            })
            .map(|(_, e)| (e.workspace.clone(), e.event_type.clone()))
            .collect();
        types.sort();
        types.dedup();
        if self.config.types + types.len() > MAX_CACHED_TYPES {
            self.config = Config {
                version: self.config.version,
                ..Config::default()
            };
        }
        self.config.types += types.len();
        let found = self.store.subscribers(&self.partition, &types).await?;
        let mut missing: Vec<String> = Vec::new();
        for ((workspace, event_type), mut ids) in types.into_iter().zip(found) {
            ids.sort();
            for id in &ids {
                if !self.config.endpoints.contains_key(id) && !missing.contains(id) {
                    missing.push(id.clone());
                }
            }
            self.config
                .subscribers
                .entry(workspace)
                .or_default()
                .insert(event_type, Arc::from(ids));
        }
        let states = self
            .store
            .endpoint_states(&self.partition, &missing)
            .await?;
        for (id, state) in missing.into_iter().zip(states) {
            let cached = state.map(|state| {
                let endpoint = state.endpoint.clone().map(Arc::new);
                let target = endpoint
                    .as_ref()
                    .map(|ep| Arc::new(self.ctx.sender.target(&ep.url, &ep.headers)));
                Arc::new(Cached {
                    state,
                    endpoint,
                    target,
                })
            });
            self.config.endpoints.insert(id, cached);
        }
        Ok(())
    }

    /// Slots to ask for: more for endpoints this batch needs them for,
    /// renewals for those in use, none for those idle.
    fn slot_requests(&mut self, events: &[(String, Event)]) -> Vec<SlotRequest> {
        let mut needed: HashMap<String, u32> = HashMap::new();
        for (_, e) in events {
            for id in self
                .config
                .subscribers(&e.workspace, &e.event_type)
                .iter()
                .flat_map(|s| s.iter())
            {
                match needed.get_mut(id.as_str()) {
                    Some(n) => *n += 1,
                    None => {
                        needed.insert(id.clone(), 1);
                    }
                }
            }
        }
        let limits = self.settings.limits;
        let workspace_cap = if limits.workspace == 0 {
            u32::MAX
        } else {
            limits.workspace
        };
        // The endpoints of one workspace share its limit: count those in
        // use here or needed now, per workspace.
        let mut sharing: HashMap<&str, u32> = HashMap::new();
        for (id, slots) in &self.slots {
            if slots.held > 0 && !needed.contains_key(id.as_str()) {
                *sharing.entry(slots.workspace.as_str()).or_default() += 1;
            }
        }
        for id in needed.keys() {
            if let Some(Some(cached)) = self.config.endpoints.get(id) {
                *sharing.entry(cached.state.workspace.as_str()).or_default() += 1;
            }
        }
        let share_of: HashMap<String, u32> = sharing
            .into_iter()
            .map(|(ws, n)| (ws.to_string(), (workspace_cap / n.max(1)).max(1)))
            .collect();
        let renew_after = self.settings.slot_lease / 3;
        let mut out = Vec::new();
        for (id, n) in needed {
            let Some(Some(cached)) = self.config.endpoints.get(&id) else {
                continue;
            };
            let Some(endpoint) = &cached.endpoint else {
                continue;
            };
            if cached.state.paused || endpoint.rate_limit.is_some() {
                continue;
            }
            let cap = endpoint
                .max_concurrency
                .unwrap_or(limits.endpoint_default)
                .min(limits.endpoint_max)
                .max(1);
            let share = share_of
                .get(&cached.state.workspace)
                .map_or(cap, |&s| s.min(cap));
            let slots = self.slots.entry(id.clone()).or_insert_with(|| Slots {
                held: 0,
                cap,
                share,
                ceiling: share,
                workspace: cached.state.workspace.clone(),
                renewed: Instant::now(),
                last_used: Instant::now(),
                permits: Arc::new(Semaphore::new(0)),
            });
            slots.cap = cap;
            slots.share = share;
            slots.ceiling = slots.ceiling.min(share);
            let mut wanted = share.min(slots.held.max(slots.in_use() + n));
            let renew = slots.renewed.elapsed() >= renew_after;
            if renew && slots.ceiling < share {
                // Held back last time: ask for the whole share again, to see if it came free.
                wanted = share;
            }
            if wanted > slots.held || renew {
                out.push(SlotRequest {
                    endpoint: id,
                    workspace: slots.workspace.clone(),
                    cap,
                    workspace_cap,
                    held: slots.held,
                    wanted,
                });
            }
        }
        out.extend(self.idle_releases(&out));
        out
    }

    /// Requests giving back the slots of endpoints idle for a while.
    fn idle_releases(&self, already: &[SlotRequest]) -> Vec<SlotRequest> {
        self.slots
            .iter()
            .filter(|(id, s)| {
                s.held > 0
                    && s.in_use() == 0
                    && s.last_used.elapsed() >= IDLE
                    && !already.iter().any(|r| &r.endpoint == *id)
            })
            .map(|(id, s)| s.give_back(id))
            .collect()
    }

    fn apply_grants(&mut self, requests: &[SlotRequest], granted: &[u32]) {
        for (r, &now) in requests.iter().zip(granted) {
            let Some(slots) = self.slots.get_mut(&r.endpoint) else {
                continue;
            };
            if now > slots.held {
                slots.permits.add_permits((now - slots.held) as usize);
            } else if now < slots.held {
                // Best effort: permits in use now come back as usable until
                // the next grant (a lapse of at most the attempts in flight).
                slots.permits.forget_permits((slots.held - now) as usize);
            }
            slots.held = now;
            slots.ceiling = if now < r.wanted { now } else { slots.share };
            slots.renewed = Instant::now();
            if r.wanted == 0 && slots.in_use() == 0 {
                self.slots.remove(&r.endpoint);
            }
        }
    }

    /// Gives back the slots of idle endpoints (called when no events come).
    pub async fn release_idle(&mut self) -> Result<(), StoreError> {
        while self.tasks.try_join_next().is_some() {}
        // Endpoints refused any slot a while ago hold nothing to give back.
        self.slots
            .retain(|_, s| s.held > 0 || s.in_use() > 0 || s.renewed.elapsed() < IDLE);
        let requests = self.idle_releases(&[]);
        self.give_back(requests).await
    }

    async fn give_back(&mut self, requests: Vec<SlotRequest>) -> Result<(), StoreError> {
        let granted = self
            .store
            .hold_slots(
                &self.partition,
                &self.settings.consumer,
                &requests,
                self.settings.slot_lease,
            )
            .await?;
        self.apply_grants(&requests, &granted);
        Ok(())
    }

    /// On shutdown: lets first attempts in flight finish within `grace`
    /// (the rest stay pending in the group, to be sent again by whoever
    /// reads them next), then gives every slot back.
    pub async fn finish(mut self, grace: Duration) {
        let finished = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::info!(
                count = self.tasks.len(),
                "shutdown grace over; first attempts in flight are left to be read again"
            );
            self.tasks.abort_all();
        }
        let all: Vec<SlotRequest> = self.slots.iter().map(|(id, s)| s.give_back(id)).collect();
        if let Err(e) = self.give_back(all).await {
            tracing::warn!(error = %e, "could not give slots back; they lapse with their lease");
        }
    }
}
