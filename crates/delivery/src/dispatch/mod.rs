//! First attempts. A reader task reads the partition's stream ahead of
//! the router; for each batch read, one call to Redis accepts its events
//! (idempotency, configuration version, slots), and every delivery whose
//! endpoint has a free slot here (and nothing waiting) is sent at once;
//! its entry stays pending in the consumer group until the settler records
//! its deliveries and acknowledges it. A delivery whose endpoint has no
//! free slot goes to the endpoint's lane (see [`LaneIndex`]): first here,
//! its entry id in memory and its entry still pending; past
//! [`HELD_HERE`] per partition, in the endpoint's lane in Redis
//! (`hookd_store::lanes`). Either way it no longer stands in the stream in
//! front of every other workspace's events. Deliveries that cannot go now
//! for other reasons (endpoint paused: held; rate-limited or unreadable:
//! the due queue) are settled without an attempt, and the scheduler takes
//! them from there.
//!
//! The lane filler, a task of its own, empties lanes into slots as they
//! come free, fairly: deficit round robin between the workspaces with
//! deliveries waiting (`[delivery] workspace_weights`), then round robin
//! between a workspace's endpoints; and work-conserving (a workspace alone
//! gets every slot it can use). While the router is behind the stream the
//! filler yields to it, since finding other workspaces' events comes
//! before draining one workspace's backlog.
//!
//! The configuration (who subscribes to what, endpoint documents, pause
//! flags, limits) is cached here and checked against the partition's
//! version once per batch. Concurrency across daemons: each daemon holds
//! slots per endpoint, members of the same lease sets the claim script
//! counts, renewed while in use and given back when idle.
//!
//! Here: the router (reading ahead, accepting, routing, sending) and the
//! configuration cache; in `lanes`, the lane index and the entries kept
//! with waiting deliveries; in `fill`, the lane filler.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookd_core::{AttemptTrigger, DeliveryStatus, Endpoint, Event, EventLimits, time};
use hookd_store::ingest::{EndpointState, Lane, Settled, SlotRequest};
use hookd_store::schedule::{Claimed, ConcurrencyLimits, Outcome};
use hookd_store::stream::Entry;
use hookd_store::{PartitionKeys, Store, StoreError};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::attempt::AttemptContext;
use crate::sender::Target;
use crate::settle::{Settle, Settler, Unsettled};

mod fill;
mod lanes;

pub(crate) use lanes::LaneIndex;
use lanes::{Body, HeldEntry, LaneBook, LanePart, PackedEntry, Ready, event_bytes, ready};

/// How often lanes are read back from Redis (other daemons' lanes, and
/// items a dead daemon took and never settled).
const DISCOVERY: Duration = Duration::from_secs(1);
/// An idle endpoint's slots are given back after this long.
const IDLE: Duration = Duration::from_secs(1);

/// Typed settings of first attempts.
#[derive(Debug, Clone)]
pub(crate) struct DispatchSettings {
    pub consumer: String,
    pub limits: ConcurrencyLimits,
    /// How long slots are held without being renewed (a dead daemon's lapse then).
    pub slot_lease: Duration,
    /// How long an item taken from a lane is leased (longer than any request).
    pub lane_lease: Duration,
    /// Workspaces' shares of the slots lanes fill, relative to 1 (the default).
    pub weights: HashMap<String, u32>,
    /// What an event must satisfy (lane items are read whole when taken).
    pub limits_events: EventLimits,
    /// The consumer group (lane entries are acknowledged as they enter).
    pub group: String,
}

/// An endpoint as cached: `None` documents were deleted.
struct Cached {
    state: EndpointState,
    endpoint: Option<Arc<Endpoint>>,
    target: Option<Arc<Target>>,
}

/// The partition's configuration as cached: subscriptions and endpoints,
/// at one configuration version.
#[derive(Default)]
struct Config {
    version: Option<u64>,
    /// Workspace -> event type -> subscribed endpoint ids.
    subscribers: HashMap<String, HashMap<String, Arc<[String]>>>,
    /// How many (workspace, event type) pairs `subscribers` holds.
    types: usize,
    endpoints: HashMap<String, Option<Arc<Cached>>>,
}

impl Config {
    /// Looked up without building a key: this runs for every event.
    fn subscribers(&self, workspace: &str, event_type: &str) -> Option<&Arc<[String]>> {
        self.subscribers.get(workspace)?.get(event_type)
    }
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
    config: Config,
    slots: HashMap<String, Slots>,
    /// Shared with the other half (router or filler) of this partition.
    index: Arc<LaneIndex>,
    /// The filler's turns (unused by the router).
    lanes: LaneBook,
    /// When lanes were last read from Redis (other daemons', and after a restart).
    discovered: Instant,
    /// When idle slots were last given back.
    released: Instant,
    /// When the configuration version was last asked for.
    checked: Instant,
    /// Endpoints whose waiting deliveries the last report named.
    reported: Vec<String>,
    tasks: JoinSet<()>,
}

/// Where one delivery goes now.
enum Route {
    /// Sent now, with its slot and window permits.
    Send(Arc<Endpoint>, Arc<Target>, [OwnedSemaphorePermit; 2]),
    /// Its endpoint is paused: held.
    Hold,
    /// No free slot here (or deliveries wait already): into its
    /// endpoint's lane (decided further by `LaneIndex::hold`).
    Lane,
    /// Into the lane, waiting here (its entry stays pending, this daemon's).
    Here,
    /// Into the lane, in Redis (its entry is acknowledged once every
    /// delivery of it is recorded or in a lane in Redis).
    Redis,
    /// The due queue (rate-limited, unreadable or deleted endpoint): the
    /// scheduler's claims take it.
    Due,
    /// Its endpoint orders by key and its event has one: into the key's
    /// order (the due queue when it is the key's head), never sent from here.
    Ordered,
}

impl Dispatch {
    pub fn new(
        store: Store,
        partition: PartitionKeys,
        ctx: AttemptContext,
        settler: Settler,
        settings: DispatchSettings,
        index: Arc<LaneIndex>,
        window: Arc<Semaphore>,
    ) -> Self {
        Self {
            store,
            partition,
            ctx,
            settler,
            window,
            freed: Arc::new(Notify::new()),
            settings,
            config: Config::default(),
            slots: HashMap::new(),
            index,
            lanes: LaneBook::default(),
            discovered: Instant::now() - DISCOVERY,
            released: Instant::now(),
            checked: Instant::now(),
            reported: Vec::new(),
            tasks: JoinSet::new(),
        }
    }

    /// The lane index this half shares with the other.
    pub fn lanes(&self) -> &LaneIndex {
        &self.index
    }

    /// Routes a batch of valid events read from the partition: a delivery
    /// whose endpoint has deliveries waiting in its lane goes there too
    /// (behind them, never before); the others are accepted (idempotency,
    /// slots) and sent now, or put in their lanes when no slot is free, or
    /// held, or queued. `lane_only` events (every delivery to a lane) were
    /// routed on workspace and type alone: their idempotency markers are
    /// checked when their deliveries are taken. Returns (accepted, duplicates).
    pub async fn dispatch(
        &mut self,
        direct: Vec<(String, Event)>,
        lane_only: Vec<(Arc<Entry>, String, String)>,
        epoch: u64,
    ) -> Result<(u64, u64), StoreError> {
        while self.tasks.try_join_next().is_some() {}
        // (The configuration is as `load_types` found it for `lane_only`.)
        let mut to_redis: HashMap<String, (String, Vec<String>)> = HashMap::new();
        let mut redis_acks: Vec<String> = Vec::new();
        let mut expect: Vec<(String, usize)> = Vec::new();
        let lane_count = lane_only.len() as u64;
        // Keyed entries none of whose deliveries is ordered: out of their
        // keys' read lists (while reads note them), so nothing waits on them.
        let reads_ordered = self.store.reads_ordered(&self.partition);
        let mut unordered: Vec<(String, String, String)> = Vec::new();
        for (raw, workspace, event_type) in lane_only {
            if reads_ordered {
                let key = raw.fields.iter().find(|(k, _)| k == "ordering_key");
                if let Some(key) = key.and_then(|(_, v)| std::str::from_utf8(v).ok()) {
                    unordered.push((workspace.clone(), key.to_string(), raw.id.clone()));
                }
            }
            let entry = &raw.id.clone();
            let shared = self.index.held_entry(
                PackedEntry::cost(&raw),
                || Body::Packed(PackedEntry::pack(&raw)),
                false,
            );
            let subs = self
                .config
                .subscribers(&workspace, &event_type)
                .cloned()
                .unwrap_or_else(|| Arc::from(Vec::new()));
            let mut here = 0;
            for ep in subs.iter() {
                match self.index.hold(&workspace, ep, entry, &shared, epoch) {
                    LanePart::Here => here += 1,
                    LanePart::Redis => to_redis
                        .entry(ep.clone())
                        .or_insert_with(|| (workspace.clone(), Vec::new()))
                        .1
                        .push(entry.clone()),
                }
            }
            if here == 0 && !subs.is_empty() {
                redis_acks.push(entry.clone());
            } else {
                // (No subscriber any more: acknowledged with nothing to record.)
                expect.push((entry.clone(), here));
            }
        }
        let mut accepted = hookd_store::ingest::Accepted::default();
        if !direct.is_empty() {
            self.load(&direct).await?;
            let needed = self.needed_by(&direct);
            let requests = self.slot_requests(needed);
            let refs: Vec<(&str, &Event)> = direct.iter().map(|(id, e)| (id.as_str(), e)).collect();
            accepted = self
                .store
                .accept(
                    &self.partition,
                    &self.settings.consumer,
                    &refs,
                    &requests,
                    self.settings.slot_lease,
                )
                .await?;
            self.apply_grants(&requests, &accepted.slots);
            if self.config.version != Some(accepted.config_version) {
                self.config = Config {
                    version: Some(accepted.config_version),
                    ..Config::default()
                };
                self.load(&direct).await?;
            }
        }
        // Where each delivery goes, decided before anything is sent: the
        // Redis lanes are written first, so a failure there sends nothing twice.
        let mut plan = Vec::with_capacity(direct.len());
        let (mut new, mut duplicates) = (lane_count, 0);
        for ((entry, event), ok) in direct.into_iter().zip(accepted.accepted) {
            if !ok {
                duplicates += 1;
                plan.push((entry, event, None));
                continue;
            }
            new += 1;
            let subscribers = self
                .config
                .subscribers(&event.workspace, &event.event_type)
                .cloned()
                .unwrap_or_else(|| Arc::from(Vec::new()));
            let mut routes = Vec::with_capacity(subscribers.len());
            let mut shared: Option<Arc<HeldEntry>> = None;
            for endpoint_id in subscribers.iter() {
                let route = match self.route(endpoint_id, event.ordering_key.as_deref()) {
                    Route::Lane => match self.index.hold(
                        &event.workspace,
                        endpoint_id,
                        &entry,
                        shared.get_or_insert_with(|| {
                            self.index.held_entry(
                                event_bytes(&event, event.envelope.len()),
                                || Body::Event(ready(event.clone())),
                                true,
                            )
                        }),
                        epoch,
                    ) {
                        LanePart::Here => Route::Here,
                        LanePart::Redis => {
                            to_redis
                                .entry(endpoint_id.clone())
                                .or_insert_with(|| (event.workspace.clone(), Vec::new()))
                                .1
                                .push(entry.clone());
                            Route::Redis
                        }
                    },
                    other => other,
                };
                routes.push((endpoint_id.clone(), route));
            }
            if !routes.is_empty() && routes.iter().all(|(_, r)| matches!(r, Route::Redis)) {
                redis_acks.push(entry.clone());
            }
            plan.push((entry, event, Some(routes)));
        }
        if !to_redis.is_empty() || !redis_acks.is_empty() {
            let writes: Vec<(&str, &str, Vec<&str>)> = to_redis
                .iter()
                .map(|(ep, (ws, ids))| {
                    (
                        ep.as_str(),
                        ws.as_str(),
                        ids.iter().map(String::as_str).collect(),
                    )
                })
                .collect();
            let acks: Vec<&str> = redis_acks.iter().map(String::as_str).collect();
            self.store
                .enter_lanes(&self.partition, &self.settings.group, &writes, &acks)
                .await?;
            for (ep, (ws, _)) in &to_redis {
                self.index.written(ws, ep);
            }
        }
        if reads_ordered {
            for (entry, event, routes) in &plan {
                let ordered = routes
                    .as_ref()
                    .is_some_and(|r| r.iter().any(|(_, r)| matches!(r, Route::Ordered)));
                if let (Some(key), false) = (&event.ordering_key, ordered) {
                    unordered.push((event.workspace.clone(), key.clone(), entry.clone()));
                }
            }
            self.store.unorder(&self.partition, &unordered).await?;
        }
        if !accepted.seen.is_empty() {
            self.settler.send(Settle::Seen(accepted.seen)).await;
        }
        if !expect.is_empty() {
            self.settler.send(Settle::ExpectMany(expect)).await;
        }
        for (entry, event, routes) in plan {
            match routes {
                // Delivered under the first entry that carried its id: acknowledged with nothing to record.
                None => self.settler.send(Settle::Expect(entry, 0)).await,
                Some(routes) => self.deliver(entry, event, routes, epoch).await,
            }
        }
        self.index.notify();
        self.release_backlogged().await?;
        Ok((new, duplicates))
    }

    /// Gives back the router's free slots of endpoints that have deliveries
    /// waiting in their lanes: the lane filler sends theirs now.
    async fn release_backlogged(&mut self) -> Result<(), StoreError> {
        let requests: Vec<SlotRequest> = self
            .slots
            .iter()
            .filter(|(id, s)| s.held > 0 && s.in_use() == 0 && self.index.contains(id))
            .map(|(id, s)| s.give_back(id))
            .collect();
        if requests.is_empty() {
            return Ok(());
        }
        self.request_slots(requests).await
    }

    /// Loads the subscribers of these (workspace, event type) pairs into
    /// the cache, with their endpoints.
    pub async fn load_types(&mut self, keys: &[(String, String)]) -> Result<(), StoreError> {
        self.check_version().await?;
        let mut types: Vec<(String, String)> = keys
            .iter()
            .filter(|(ws, ty)| self.config.subscribers(ws, ty).is_none())
            .cloned()
            .collect();
        types.sort();
        types.dedup();
        self.load_subscribers(types).await
    }

    /// Whether every delivery of an event of this type goes to a lane now
    /// (it has subscribers, each with deliveries waiting in its lane).
    /// (Never when one orders by key: its keyed deliveries must not enter a lane.)
    pub fn lane_only(&self, workspace: &str, event_type: &str) -> bool {
        self.config
            .subscribers(workspace, event_type)
            .is_some_and(|subs| {
                !subs.is_empty()
                    && subs
                        .iter()
                        .all(|ep| self.backlogged(ep) && !self.ordered(ep))
            })
    }

    /// Whether `endpoint` orders its deliveries by key (as cached).
    fn ordered(&self, endpoint: &str) -> bool {
        matches!(self.config.endpoints.get(endpoint), Some(Some(c))
            if c.endpoint.as_ref().is_some_and(|ep| ep.ordering == hookd_core::endpoint::Ordering::Key))
    }

    /// Drops the cache when the partition's configuration changed; asked at
    /// most once a second (a batch that is accepted tells it anyway).
    async fn check_version(&mut self) -> Result<(), StoreError> {
        if self.checked.elapsed() < DISCOVERY {
            return Ok(());
        }
        self.checked = Instant::now();
        let version = self.store.config_version(&self.partition).await?;
        if self.config.version != Some(version) {
            self.config = Config {
                version: Some(version),
                ..Config::default()
            };
        }
        Ok(())
    }

    /// Whether `endpoint` has deliveries waiting in its lane that new ones
    /// must queue behind (and is not paused: a paused endpoint's deliveries
    /// are held).
    fn backlogged(&self, endpoint: &str) -> bool {
        self.index.contains(endpoint)
            && !matches!(self.config.endpoints.get(endpoint), Some(Some(c)) if c.state.paused)
    }

    /// A delivery of `event` (stream entry `entry`) to `endpoint`, settled
    /// with `status` (its attempt, if any, is added by the caller).
    fn settled(
        &self,
        entry: &str,
        (event, envelope): &Ready,
        endpoint: &str,
        status: DeliveryStatus,
        lane: Lane,
        epoch: u64,
    ) -> Settled {
        Settled {
            entry_id: entry.to_string(),
            endpoint: endpoint.to_string(),
            workspace: event.workspace.clone(),
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            status,
            attempt: None,
            next_at_ms: Some(time::now_ms()),
            pause_reason: None,
            envelope: Some(envelope.clone()),
            trace: event.trace.clone().map(Arc::new),
            lane,
            epoch,
            ordering_key: None,
        }
    }

    /// Sends (or settles without an attempt) the deliveries of one event
    /// as routed; those waiting here in a lane are the filler's to settle.
    async fn deliver(
        &mut self,
        entry: String,
        event: Event,
        routes: Vec<(String, Route)>,
        epoch: u64,
    ) {
        let settled_here = routes
            .iter()
            .filter(|(_, r)| !matches!(r, Route::Redis))
            .count();
        if settled_here == 0 && !routes.is_empty() {
            // Every delivery went to a lane in Redis: the entry was acknowledged with them.
            return;
        }
        self.settler
            .send(Settle::Expect(entry.clone(), settled_here))
            .await;
        if settled_here == 0 {
            return;
        }
        let created_ms = hookd_core::delivery::entry_time_ms(&entry).unwrap_or(event.created_at_ms);
        let ready = ready(event);
        let trace = ready.0.trace.clone().map(Arc::new);
        for (endpoint_id, route) in routes {
            let status = match route {
                Route::Lane | Route::Here | Route::Redis => continue,
                Route::Hold => DeliveryStatus::Held,
                Route::Due => DeliveryStatus::Pending,
                Route::Ordered => DeliveryStatus::Waiting,
                Route::Send(..) => DeliveryStatus::Succeeded,
            };
            let mut settled =
                self.settled(&entry, &ready, &endpoint_id, status, Lane::Direct, epoch);
            if status == DeliveryStatus::Waiting {
                settled.ordering_key = ready.0.ordering_key.as_deref().map(Arc::from);
                // Its payload stays in the stream entry (the claim reads it there).
                settled.envelope = None;
            }
            match route {
                Route::Send(endpoint, target, permits) => {
                    let (event, envelope) = &ready;
                    let claimed = Claimed {
                        delivery_id: hookd_core::delivery::delivery_id(&entry, &endpoint_id),
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
                        ordering_key: None,
                        sequence: None,
                    };
                    self.spawn_attempt(claimed, target, permits, settled);
                }
                // Held or due: settled now, without an attempt.
                _ => self.settler.send(Settle::Done(settled)).await,
            }
        }
    }

    /// Runs one first attempt on its own task; the slot is free once the
    /// response is in, and the settler records it.
    fn spawn_attempt(
        &mut self,
        claimed: Claimed,
        target: Arc<Target>,
        permits: [OwnedSemaphorePermit; 2],
        settled: Settled,
    ) {
        let guard = Unsettled::new(settled, self.settler.clone());
        let (ctx, settler, freed) = (self.ctx.clone(), self.settler.clone(), self.freed.clone());
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

    /// Where one delivery goes now (of an event with `ordering_key`).
    fn route(&mut self, endpoint_id: &str, ordering_key: Option<&str>) -> Route {
        let Some(Some(cached)) = self.config.endpoints.get(endpoint_id) else {
            // Deleted since: settling fails it (`endpoint_deleted`).
            return Route::Due;
        };
        if cached
            .endpoint
            .as_ref()
            .is_some_and(|ep| ep.orders(ordering_key))
        {
            return Route::Ordered;
        }
        if cached.state.paused {
            return Route::Hold;
        }
        let (Some(endpoint), Some(target)) = (&cached.endpoint, &cached.target) else {
            return Route::Due;
        };
        if endpoint.rate_limit.is_some() {
            // Rate limits are kept by the claim script alone.
            return Route::Due;
        }
        // Behind deliveries already waiting in its lane, never before them.
        if self.backlogged(endpoint_id) {
            return Route::Lane;
        }
        let Some(slots) = self.slots.get_mut(endpoint_id) else {
            return Route::Lane;
        };
        let Ok(slot) = slots.permits.clone().try_acquire_owned() else {
            return Route::Lane;
        };
        let Ok(window) = self.window.clone().try_acquire_owned() else {
            return Route::Lane;
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
        self.load_subscribers(types).await
    }

    /// Loads the subscribers of `types` (not cached yet), and the endpoints
    /// among them not cached yet.
    async fn load_subscribers(&mut self, types: Vec<(String, String)>) -> Result<(), StoreError> {
        if types.is_empty() {
            return Ok(());
        }
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
        self.load_endpoints(missing).await
    }

    async fn load_endpoints(&mut self, missing: Vec<String>) -> Result<(), StoreError> {
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

    /// Deliveries per endpoint a batch of events brings.
    fn needed_by(&self, events: &[(String, Event)]) -> HashMap<String, u32> {
        let mut needed: HashMap<String, u32> = HashMap::new();
        for (_, e) in events {
            for id in self
                .config
                .subscribers(&e.workspace, &e.event_type)
                .iter()
                .flat_map(|s| s.iter())
            {
                match needed.get_mut(id.as_str()) {
                    Some(n) => *n = n.saturating_add(1),
                    None => {
                        needed.insert(id.clone(), 1);
                    }
                }
            }
        }
        needed
    }

    /// Slots to ask for: more for endpoints `needed` needs them for,
    /// renewals for those in use, none for those idle.
    fn slot_requests(&mut self, needed: HashMap<String, u32>) -> Vec<SlotRequest> {
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
            let mut wanted = share.min(slots.held.max(slots.in_use().saturating_add(n)));
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
        self.request_slots(requests).await
    }

    /// Asks Redis for the slots `requests` say (more, fewer, none) and
    /// keeps what it grants.
    async fn request_slots(&mut self, requests: Vec<SlotRequest>) -> Result<(), StoreError> {
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
        if let Err(e) = self.request_slots(all).await {
            tracing::warn!(error = %e, "could not give slots back; they lapse with their lease");
        }
    }
}
