//! Deliveries waiting for a slot: the lane index the router and the lane
//! filler share (in memory up to [`HELD_HERE`] per partition, in Redis
//! past it), the entries kept with them (packed, up to [`KEEP_BYTES`] for
//! the whole daemon) and the filler's turns between workspaces.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use hookd_core::{Event, EventLimits};
use hookd_store::stream::Entry;
use tokio::sync::Notify;

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
    pub(super) lanes: std::sync::Mutex<Lanes>,
    /// Woken when the router put deliveries in a lane.
    pub(super) written: Notify,
    /// The router is behind the stream (its last batch was a full read):
    /// the filler then leaves it most of the time (see `Dispatch::lane_work`),
    /// since finding other workspaces' events comes before draining a backlog.
    pub(super) behind: std::sync::atomic::AtomicBool,
    /// Bytes of the entries kept with deliveries waiting here (see
    /// [`HeldEntry`]), counted down as the last of an entry's goes; shared
    /// by every partition's index.
    pub(super) kept: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Default)]
pub(super) struct Lanes {
    pub(super) by_endpoint: HashMap<String, LaneState>,
    /// Deliveries waiting here, over every endpoint.
    pub(super) here: usize,
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
    pub(super) marker: std::sync::atomic::AtomicU8,
    /// A packed entry's event, read whole by the first take while other
    /// deliveries of it still wait (a fan-out reads it once, not once per
    /// endpoint); counted in the bytes kept.
    pub(super) event: std::sync::OnceLock<Ready>,
    pub(super) bytes: usize,
    pub(super) kept: Arc<std::sync::atomic::AtomicUsize>,
}

pub(super) const MARKER_UNKNOWN: u8 = 0;
pub(super) const MARKER_NEW: u8 = 1;
pub(super) const MARKER_DUPLICATE: u8 = 2;

impl HeldEntry {
    pub(super) fn marker(&self) -> u8 {
        self.marker.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn set_marker(&self, new: bool) {
        let m = if new { MARKER_NEW } else { MARKER_DUPLICATE };
        self.marker.store(m, std::sync::atomic::Ordering::Relaxed);
    }

    /// Keeps `event` for the entry's other deliveries, while the bytes
    /// kept allow.
    pub(super) fn keep_event(&self, event: &Ready) {
        let bytes = ready_bytes(event);
        if reserve(&self.kept, bytes) && self.event.set(event.clone()).is_err() {
            self.kept
                .fetch_sub(bytes, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Counts `bytes` more of entries kept, if [`KEEP_BYTES`] allows.
pub(super) fn reserve(kept: &std::sync::atomic::AtomicUsize, bytes: usize) -> bool {
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

pub(super) fn ready(mut event: Event) -> Ready {
    let envelope = Bytes::from(std::mem::take(&mut event.envelope));
    (Arc::new(event), envelope)
}

/// What keeping an event costs (with what each allocation costs beside its bytes).
pub(super) fn event_bytes(e: &Event, envelope: usize) -> usize {
    envelope + e.id.len() + e.workspace.len() + 256
}

pub(super) fn ready_bytes((e, envelope): &Ready) -> usize {
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
    pub(super) bytes: Box<[u8]>,
    /// Where the id ends, then where each name and each value ends.
    pub(super) ends: Box<[u32]>,
}

impl PackedEntry {
    /// The id's and fields' bytes of `entry`.
    pub(super) fn content(entry: &Entry) -> usize {
        entry.id.len()
            + entry
                .fields
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    /// What keeping `entry` packed costs (with what each allocation costs
    /// beside its bytes).
    pub(super) fn cost(entry: &Entry) -> usize {
        Self::content(entry) + (1 + 2 * entry.fields.len()) * 4 + 96
    }

    pub(super) fn pack(entry: &Entry) -> Self {
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

    pub(super) fn part(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// (Packed from text: the id and names are UTF-8.)
    pub(super) fn text(&self, i: usize) -> &str {
        std::str::from_utf8(self.part(i)).unwrap_or_default()
    }

    pub(super) fn fields(&self) -> Vec<(&str, &[u8])> {
        (1..self.ends.len())
            .step_by(2)
            .map(|i| (self.text(i), self.part(i + 1)))
            .collect()
    }

    /// Its event, read whole now.
    pub(super) fn event(&self, limits: EventLimits) -> Result<Event, hookd_core::event::Rejection> {
        Event::from_entry(self.text(0), &self.fields(), limits)
    }

    pub(super) fn unpack(&self) -> Entry {
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
pub(super) const KEEP_BYTES: usize = 128 << 20;

pub(super) struct LaneState {
    pub(super) workspace: String,
    /// Deliveries waiting here, oldest first.
    pub(super) here: VecDeque<Held>,
    /// More wait in the endpoint's lane in Redis (behind those here).
    pub(super) in_redis: bool,
    /// Writes to the Redis part so far.
    pub(super) writes: u64,
}

impl LaneState {
    pub(super) fn new(workspace: &str) -> Self {
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
pub(super) const HELD_HERE: usize = 250_000;

/// Where a lane's next delivery goes.
pub(super) enum LanePart {
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

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn contains(&self, endpoint: &str) -> bool {
        self.lock().by_endpoint.contains_key(endpoint)
    }

    /// What an entry's deliveries waiting here will share: its body (made
    /// by `body`, costing `bytes`) is kept while the bytes kept allow, and
    /// not made otherwise; `accepted`: its event's marker is set.
    pub(super) fn held_entry(
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
    pub(super) fn hold(
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
    pub(super) fn written(&self, workspace: &str, endpoint: &str) {
        let mut lanes = self.lock();
        let state = lanes
            .by_endpoint
            .entry(endpoint.to_string())
            .or_insert_with(|| LaneState::new(workspace));
        state.in_redis = true;
        state.writes += 1;
    }

    /// Wakes the filler: deliveries were put in lanes.
    pub(super) fn notify(&self) {
        self.written.notify_one();
    }

    /// Whether the router is behind the stream (see `behind`).
    pub fn set_behind(&self, behind: bool) {
        self.behind
            .store(behind, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn is_behind(&self) -> bool {
        self.behind.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Up to `max` deliveries waiting here for `endpoint`, oldest first.
    pub(super) fn take_here(&self, endpoint: &str, max: usize) -> Vec<Held> {
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
    pub(super) fn put_back(&self, workspace: &str, endpoint: &str, held: Vec<Held>) {
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
    pub(super) fn parts(&self, endpoint: &str) -> Option<(usize, bool, u64)> {
        self.lock()
            .by_endpoint
            .get(endpoint)
            .map(|s| (s.here.len(), s.in_redis, s.writes))
    }

    /// The filler found the Redis part of `endpoint`'s lane empty after
    /// `writes` writes: it is done with, unless written to since (and the
    /// lane leaves the index when nothing waits here either).
    pub(super) fn dry(&self, endpoint: &str, writes: u64) -> bool {
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
    pub(super) fn drop_endpoint(&self, endpoint: &str) -> Vec<Held> {
        let mut lanes = self.lock();
        let Some(state) = lanes.by_endpoint.remove(endpoint) else {
            return Vec::new();
        };
        lanes.here -= state.here.len();
        state.here.into_iter().collect()
    }

    /// Per endpoint: (workspace, deliveries waiting here, the oldest's entry id).
    pub(super) fn waiting_here(&self) -> Vec<(String, String, usize, Option<String>)> {
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

    pub(super) fn snapshot(&self) -> Vec<(String, String)> {
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
pub(super) struct LaneBook {
    pub(super) turns: VecDeque<WorkspaceLanes>,
    /// Endpoint -> workspace, for every endpoint in `turns`.
    pub(super) index: HashMap<String, String>,
}

pub(super) struct WorkspaceLanes {
    pub(super) workspace: String,
    pub(super) endpoints: VecDeque<String>,
    pub(super) deficit: i64,
}

impl LaneBook {
    pub(super) fn add(&mut self, workspace: &str, endpoint: &str) {
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

    pub(super) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn a_packed_entry_reads_as_the_entry_it_was_packed_from() {
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
