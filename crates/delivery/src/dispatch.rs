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

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookd_core::{AttemptTrigger, DeliveryStatus, Endpoint, Event, EventLimits, time};
use hookd_store::ingest::{EndpointState, Lane, Settled, SlotRequest};
use hookd_store::schedule::{Claimed, ConcurrencyLimits, Outcome};
use hookd_store::stream::Entry;
use hookd_store::{PartitionKeys, Store, StoreError};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::attempt::AttemptContext;
use crate::metrics::Waiting;
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
}

/// Most items taken from one lane in one call.
const TAKE_MAX: usize = 256;
/// Deliveries a workspace may take from lanes per turn, times its weight.
const QUANTUM: i64 = 32;
/// How often lanes are read back from Redis (other daemons' lanes, and
/// items a dead daemon took and never settled).
const DISCOVERY: Duration = Duration::from_secs(1);
/// How often `lane_work` returns when nothing happened (to look again).
const TICK: Duration = Duration::from_millis(100);
/// How long the filler leaves the router alone while it is behind.
const BEHIND_PAUSE: Duration = Duration::from_millis(2);

/// Endpoints with deliveries waiting in their lanes, shared by the router
/// (which puts deliveries there, and sends none of an endpoint's directly
/// while it has some waiting) and the lane filler (which takes them into
/// slots as they come free).
///
/// A lane has two parts. First, deliveries waiting here: their entry ids in
/// memory, the entries still pending in the consumer group, this daemon's
/// (so a crash loses nothing: another daemon reclaims them), read again
/// when taken. That costs Redis nothing while they wait, so a plain burst
/// costs what it did without lanes. Past [`HELD_HERE`] of them (memory),
/// the rest go to the endpoint's lane in Redis (`hookd_store::lanes`), and
/// so do the endpoint's later deliveries until that part runs dry, so the
/// order is kept. The Redis part counts the router's writes: a lane
/// written to while the filler found it empty is never taken for dry.
pub(crate) struct LaneIndex {
    lanes: std::sync::Mutex<Lanes>,
    /// Woken when the router put deliveries in a lane.
    written: Notify,
    /// The router is behind the stream (its last batch was a full read):
    /// the filler then leaves it most of the time (see `Dispatch::lane_work`),
    /// since finding other workspaces' events comes before draining a backlog.
    behind: std::sync::atomic::AtomicBool,
    /// Bytes of the entries kept with deliveries waiting here (see
    /// [`HeldEntry`]), counted down as the last of an entry's goes; shared
    /// by every partition's index.
    kept: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Default)]
struct Lanes {
    by_endpoint: HashMap<String, LaneState>,
    /// Deliveries waiting here, over every endpoint.
    here: usize,
}

/// A delivery waiting here: its entry id, and what its entry's deliveries
/// waiting here share.
pub(crate) struct Held {
    pub id: String,
    pub entry: Arc<HeldEntry>,
    /// The reclaim count when its entry was read (see `Settled::epoch`).
    pub epoch: u64,
}

/// What the deliveries of one entry waiting here share (one per entry, not
/// per delivery: a fan-out to ten endpoints keeps its entry once and checks
/// its idempotency marker once): the entry itself while the partition keeps
/// fewer than [`KEEP_BYTES`] of them (it is read again when taken
/// otherwise), and whether its event was accepted.
pub(crate) struct HeldEntry {
    pub body: Option<Body>,
    /// The event's idempotency marker: [`MARKER_UNKNOWN`] (routed on
    /// workspace and type alone: checked at the first take),
    /// [`MARKER_NEW`] or [`MARKER_DUPLICATE`].
    marker: std::sync::atomic::AtomicU8,
    /// A packed entry's event, read whole by the first take while other
    /// deliveries of it still wait (a fan-out reads it once, not once per
    /// endpoint); counted in the bytes kept.
    event: std::sync::OnceLock<Ready>,
    bytes: usize,
    kept: Arc<std::sync::atomic::AtomicUsize>,
}

const MARKER_UNKNOWN: u8 = 0;
const MARKER_NEW: u8 = 1;
const MARKER_DUPLICATE: u8 = 2;

impl HeldEntry {
    fn marker(&self) -> u8 {
        self.marker.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set_marker(&self, new: bool) {
        let m = if new { MARKER_NEW } else { MARKER_DUPLICATE };
        self.marker.store(m, std::sync::atomic::Ordering::Relaxed);
    }

    /// Keeps `event` for the entry's other deliveries, while the bytes
    /// kept allow.
    fn keep_event(&self, event: &Ready) {
        let bytes = ready_bytes(event);
        if reserve(&self.kept, bytes) && self.event.set(event.clone()).is_err() {
            self.kept
                .fetch_sub(bytes, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Counts `bytes` more of entries kept, if [`KEEP_BYTES`] allows.
fn reserve(kept: &std::sync::atomic::AtomicUsize, bytes: usize) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    if kept.load(Relaxed) + bytes > KEEP_BYTES {
        return false;
    }
    kept.fetch_add(bytes, Relaxed);
    true
}

/// An event ready to send: its fields (the envelope moved out) and its
/// envelope, both shared by every delivery of it (no copy per delivery).
pub(crate) type Ready = (Arc<Event>, Bytes);

fn ready(mut event: Event) -> Ready {
    let envelope = Bytes::from(std::mem::take(&mut event.envelope));
    (Arc::new(event), envelope)
}

/// What keeping an event costs (with what each allocation costs beside its bytes).
fn event_bytes(e: &Event, envelope: usize) -> usize {
    envelope + e.id.len() + e.workspace.len() + 256
}

fn ready_bytes((e, envelope): &Ready) -> usize {
    event_bytes(e, envelope.len())
}

impl Drop for HeldEntry {
    fn drop(&mut self) {
        let bytes = self.bytes + self.event.get().map_or(0, ready_bytes);
        if bytes > 0 {
            self.kept
                .fetch_sub(bytes, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// What is kept of a held delivery's entry: as read (routed on workspace
/// and type alone), packed, or the event already read whole.
pub(crate) enum Body {
    Packed(PackedEntry),
    Event(Ready),
}

/// A stream entry kept while its deliveries wait here, in two allocations
/// (as read it is about ten: its id, and each field's name and value), so
/// a burst held in memory takes about half the room and the reader's
/// buffers are reused instead of the heap growing.
pub(crate) struct PackedEntry {
    /// The id, then each field's name and value, back to back.
    bytes: Box<[u8]>,
    /// Where the id ends, then where each name and each value ends.
    ends: Box<[u32]>,
}

impl PackedEntry {
    /// The id's and fields' bytes of `entry`.
    fn content(entry: &Entry) -> usize {
        entry.id.len()
            + entry
                .fields
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    /// What keeping `entry` packed costs (with what each allocation costs
    /// beside its bytes).
    fn cost(entry: &Entry) -> usize {
        Self::content(entry) + (1 + 2 * entry.fields.len()) * 4 + 96
    }

    fn pack(entry: &Entry) -> Self {
        let mut bytes = Vec::with_capacity(Self::content(entry));
        let mut ends = Vec::with_capacity(1 + 2 * entry.fields.len());
        bytes.extend_from_slice(entry.id.as_bytes());
        ends.push(bytes.len() as u32);
        for (k, v) in &entry.fields {
            bytes.extend_from_slice(k.as_bytes());
            ends.push(bytes.len() as u32);
            bytes.extend_from_slice(v);
            ends.push(bytes.len() as u32);
        }
        Self {
            bytes: bytes.into_boxed_slice(),
            ends: ends.into_boxed_slice(),
        }
    }

    fn part(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// (Packed from text: the id and names are UTF-8.)
    fn text(&self, i: usize) -> &str {
        std::str::from_utf8(self.part(i)).unwrap_or_default()
    }

    fn fields(&self) -> Vec<(&str, &[u8])> {
        (1..self.ends.len())
            .step_by(2)
            .map(|i| (self.text(i), self.part(i + 1)))
            .collect()
    }

    /// Its event, read whole now.
    fn event(&self, limits: EventLimits) -> Result<Event, hookd_core::event::Rejection> {
        Event::from_entry(self.text(0), &self.fields(), limits)
    }

    fn unpack(&self) -> Entry {
        Entry {
            id: self.text(0).to_string(),
            fields: self
                .fields()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect(),
        }
    }
}

/// Most bytes of entries the daemon keeps with its held deliveries (every
/// partition's together): an entry kept is not read again when taken,
/// which makes a burst cost Redis and the daemon what it did before lanes
/// (measured in BENCHMARKS.md; past it, entries are read again in ranges).
const KEEP_BYTES: usize = 128 << 20;

struct LaneState {
    workspace: String,
    /// Deliveries waiting here, oldest first.
    here: VecDeque<Held>,
    /// More wait in the endpoint's lane in Redis (behind those here).
    in_redis: bool,
    /// Writes to the Redis part so far.
    writes: u64,
}

impl LaneState {
    fn new(workspace: &str) -> Self {
        Self {
            workspace: workspace.to_string(),
            here: VecDeque::new(),
            in_redis: false,
            writes: 0,
        }
    }
}

/// Most deliveries one partition keeps waiting here (about 50 bytes each
/// in memory, and an entry pending in the group); past it, lanes go to Redis.
const HELD_HERE: usize = 250_000;

/// Where a lane's next delivery goes.
enum LanePart {
    Here,
    Redis,
}

impl LaneIndex {
    /// An empty index; `kept` counts the bytes of entries kept, shared by
    /// every partition (see [`KEEP_BYTES`]).
    pub fn new(kept: Arc<std::sync::atomic::AtomicUsize>) -> Self {
        Self {
            lanes: Default::default(),
            written: Notify::new(),
            behind: Default::default(),
            kept,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn contains(&self, endpoint: &str) -> bool {
        self.lock().by_endpoint.contains_key(endpoint)
    }

    /// What an entry's deliveries waiting here will share: its body (made
    /// by `body`, costing `bytes`) is kept while the bytes kept allow, and
    /// not made otherwise; `accepted`: its event's marker is set.
    fn held_entry(
        &self,
        bytes: usize,
        body: impl FnOnce() -> Body,
        accepted: bool,
    ) -> Arc<HeldEntry> {
        let keep = reserve(&self.kept, bytes);
        Arc::new(HeldEntry {
            body: keep.then(body),
            marker: std::sync::atomic::AtomicU8::new(if accepted {
                MARKER_NEW
            } else {
                MARKER_UNKNOWN
            }),
            event: std::sync::OnceLock::new(),
            bytes: if keep { bytes } else { 0 },
            kept: self.kept.clone(),
        })
    }

    /// Puts the delivery of `entry` in `endpoint`'s lane: here while there
    /// is room and nothing waits in Redis, else in Redis (the caller writes it).
    fn hold(
        &self,
        workspace: &str,
        endpoint: &str,
        entry: &str,
        shared: &Arc<HeldEntry>,
        epoch: u64,
    ) -> LanePart {
        let mut lanes = self.lock();
        let full = lanes.here >= HELD_HERE;
        // (Looked up before inserting: no key copied per delivery.)
        if !lanes.by_endpoint.contains_key(endpoint) {
            lanes
                .by_endpoint
                .insert(endpoint.to_string(), LaneState::new(workspace));
        }
        let Some(state) = lanes.by_endpoint.get_mut(endpoint) else {
            return LanePart::Redis;
        };
        if state.in_redis || full {
            return LanePart::Redis;
        }
        state.here.push_back(Held {
            id: entry.to_string(),
            entry: Arc::clone(shared),
            epoch,
        });
        lanes.here += 1;
        LanePart::Here
    }

    /// The router wrote to `endpoint`'s lane in Redis (or a lane was found there).
    fn written(&self, workspace: &str, endpoint: &str) {
        let mut lanes = self.lock();
        let state = lanes
            .by_endpoint
            .entry(endpoint.to_string())
            .or_insert_with(|| LaneState::new(workspace));
        state.in_redis = true;
        state.writes += 1;
    }

    /// Wakes the filler: deliveries were put in lanes.
    fn notify(&self) {
        self.written.notify_one();
    }

    /// Whether the router is behind the stream (see `behind`).
    pub fn set_behind(&self, behind: bool) {
        self.behind
            .store(behind, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_behind(&self) -> bool {
        self.behind.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Up to `max` deliveries waiting here for `endpoint`, oldest first.
    fn take_here(&self, endpoint: &str, max: usize) -> Vec<Held> {
        let mut lanes = self.lock();
        let Some(state) = lanes.by_endpoint.get_mut(endpoint) else {
            return Vec::new();
        };
        let n = max.min(state.here.len());
        let held: Vec<Held> = state.here.drain(..n).collect();
        if state.here.is_empty() && !state.in_redis {
            lanes.by_endpoint.remove(endpoint);
        }
        lanes.here -= n;
        held
    }

    /// Puts back deliveries taken with `take_here` that could not be sent
    /// (their entries could not be read): first again.
    fn put_back(&self, workspace: &str, endpoint: &str, held: Vec<Held>) {
        let mut lanes = self.lock();
        let n = held.len();
        let state = lanes
            .by_endpoint
            .entry(endpoint.to_string())
            .or_insert_with(|| LaneState::new(workspace));
        for h in held.into_iter().rev() {
            state.here.push_front(h);
        }
        lanes.here += n;
    }

    /// (Deliveries waiting here, whether more wait in Redis, and how many
    /// writes the Redis part has had) for `endpoint`.
    fn parts(&self, endpoint: &str) -> Option<(usize, bool, u64)> {
        self.lock()
            .by_endpoint
            .get(endpoint)
            .map(|s| (s.here.len(), s.in_redis, s.writes))
    }

    /// The filler found the Redis part of `endpoint`'s lane empty after
    /// `writes` writes: it is done with, unless written to since (and the
    /// lane leaves the index when nothing waits here either).
    fn dry(&self, endpoint: &str, writes: u64) -> bool {
        let mut lanes = self.lock();
        let Some(state) = lanes.by_endpoint.get_mut(endpoint) else {
            return true;
        };
        if state.writes != writes {
            return false;
        }
        state.in_redis = false;
        if state.here.is_empty() {
            lanes.by_endpoint.remove(endpoint);
            return true;
        }
        false
    }

    /// Gives up a lane whose endpoint is gone: what waited here is returned
    /// (to be settled), the Redis part is the delete's to fail.
    fn drop_endpoint(&self, endpoint: &str) -> Vec<Held> {
        let mut lanes = self.lock();
        let Some(state) = lanes.by_endpoint.remove(endpoint) else {
            return Vec::new();
        };
        lanes.here -= state.here.len();
        state.here.into_iter().collect()
    }

    /// Per endpoint: (workspace, deliveries waiting here, the oldest's entry id).
    fn waiting_here(&self) -> Vec<(String, String, usize, Option<String>)> {
        self.lock()
            .by_endpoint
            .iter()
            .map(|(ep, s)| {
                (
                    ep.clone(),
                    s.workspace.clone(),
                    s.here.len(),
                    s.here.front().map(|h| h.id.clone()),
                )
            })
            .collect()
    }

    fn snapshot(&self) -> Vec<(String, String)> {
        self.lock()
            .by_endpoint
            .iter()
            .map(|(ep, s)| (ep.clone(), s.workspace.clone()))
            .collect()
    }
}

/// The lane filler's turns: workspaces in the order they take turns (each
/// with its deficit, deficit round robin), and each workspace's endpoints
/// in turn.
#[derive(Default)]
struct LaneBook {
    turns: VecDeque<WorkspaceLanes>,
    /// Endpoint -> workspace, for every endpoint in `turns`.
    index: HashMap<String, String>,
}

struct WorkspaceLanes {
    workspace: String,
    endpoints: VecDeque<String>,
    deficit: i64,
}

impl LaneBook {
    fn add(&mut self, workspace: &str, endpoint: &str) {
        if self.index.contains_key(endpoint) {
            return;
        }
        self.index
            .insert(endpoint.to_string(), workspace.to_string());
        match self.turns.iter_mut().find(|w| w.workspace == workspace) {
            Some(w) => w.endpoints.push_back(endpoint.to_string()),
            None => self.turns.push_back(WorkspaceLanes {
                workspace: workspace.to_string(),
                endpoints: VecDeque::from([endpoint.to_string()]),
                deficit: 0,
            }),
        }
    }

    fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
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
        for (raw, workspace, event_type) in lane_only {
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
                let route = match self.route(endpoint_id) {
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
        self.give_back(requests).await
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
    pub fn lane_only(&self, workspace: &str, event_type: &str) -> bool {
        self.config
            .subscribers(workspace, event_type)
            .is_some_and(|subs| !subs.is_empty() && subs.iter().all(|ep| self.backlogged(ep)))
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
        let envelope = Bytes::from(event.envelope);
        let trace = event.trace.map(Arc::new);
        for (endpoint_id, route) in routes {
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
                lane: Lane::Direct,
                epoch,
            };
            match route {
                Route::Lane | Route::Here | Route::Redis => {}
                Route::Hold => {
                    self.settler
                        .send(Settle::Done(settled(DeliveryStatus::Held)))
                        .await;
                }
                Route::Due => {
                    self.settler
                        .send(Settle::Done(settled(DeliveryStatus::Pending)))
                        .await;
                }
                Route::Send(endpoint, target, permits) => {
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
                    };
                    self.spawn_attempt(
                        claimed,
                        target,
                        permits,
                        settled(DeliveryStatus::Succeeded),
                    );
                }
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

    /// Where one delivery goes now.
    fn route(&mut self, endpoint_id: &str) -> Route {
        let Some(Some(cached)) = self.config.endpoints.get(endpoint_id) else {
            // Deleted since: settling fails it (`endpoint_deleted`).
            return Route::Due;
        };
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
    async fn report_waiting(&mut self) -> Result<(), StoreError> {
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
    fn lane_room(&self, endpoint: &str) -> usize {
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
    async fn take_here(
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
    async fn settle_held(
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
                    // Routed without being read whole (see `dispatch`): refused now.
                    self.ctx.metrics.dead_letter(rejection.code);
                    tracing::warn!(entry = %id, reason = rejection.code, message = %rejection.message, "bad stream entry dead-lettered");
                    self.store
                        .dead_letter(
                            &self.partition,
                            &self.settings.group,
                            &entry,
                            rejection.code,
                            &rejection.message,
                            &self.settings.limits_events,
                        )
                        .await?;
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
    fn send_taken(
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
        };
        self.spawn_attempt(claimed, target.clone(), permits, settled);
    }

    /// Takes up to `max` deliveries from `endpoint`'s lane and starts their
    /// attempts (their events' idempotency markers checked first: a
    /// duplicate's item is given back with nothing to record); returns how
    /// many it took.
    async fn take(&mut self, endpoint: &str, max: usize) -> Result<usize, StoreError> {
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
                    // Routed without being read whole (see `dispatch`): refused now.
                    self.ctx.metrics.dead_letter(rejection.code);
                    self.store
                        .dead_letter(
                            &self.partition,
                            &self.settings.group,
                            &entry,
                            rejection.code,
                            &rejection.message,
                            &self.settings.limits_events,
                        )
                        .await?;
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
    async fn settle_unsendable(
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
            }))
            .await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_entry_reads_as_the_entry_it_was_packed_from() {
        let entry = Entry {
            id: "1733000000000-7".to_string(),
            fields: vec![
                ("type".to_string(), b"card.moved".to_vec()),
                ("workspace".to_string(), b"ws_1".to_vec()),
                ("data".to_string(), br#"{"card":42}"#.to_vec()),
                ("empty".to_string(), Vec::new()),
            ],
        };
        let packed = PackedEntry::pack(&entry);
        let back = packed.unpack();
        assert_eq!(
            (back.id, back.fields),
            (entry.id.clone(), entry.fields.clone())
        );
        let limits = EventLimits::default();
        let event = packed.event(limits).map_err(|r| r.message);
        let direct = Event::from_entry(&entry.id, &entry.fields, limits).map_err(|r| r.message);
        assert_eq!(event.map(|e| e.envelope), direct.map(|e| e.envelope));
        let none = PackedEntry::pack(&Entry {
            id: "1-0".to_string(),
            fields: Vec::new(),
        });
        assert_eq!(none.fields(), Vec::<(&str, &[u8])>::new());
        assert_eq!(none.text(0), "1-0");
    }
}
