//! The Redis key layout, in one place.
//!
//! The stream is split into partitions (one by default). Every key a partition
//! uses carries the partition's stream key as its hash tag, so on Redis
//! Cluster each atomic step (persist + ack, claim, record attempt) touches one
//! slot. With one partition the stream is `hookd:events` and the other keys
//! are `{hookd:events}:...`, which hash to the same slot as the stream itself.
//!
//! Inside a partition (`P` = `{<stream>}`):
//! | key | type | holds |
//! |---|---|---|
//! | `P:ep:<endpoint>` | hash | `doc` (endpoint JSON), `paused`, `paused_reason`, `paused_at`, `max_concurrency` and `rate_limit` for the claim script, `fails`, `failing_since` and `last_error` for the circuit breaker (and the console) |
//! | `P:ws:<ws>:eps` | set | the workspace's endpoint ids |
//! | `P:ws:<ws>:type:<type>` / `P:ws:<ws>:all` | set | endpoints subscribed to a type / to every type |
//! | `P:evt:<ws>:<event id>` | string | the idempotency marker: the id of the stream entry that first carried the event (expires after the retention) |
//! | `P:pub:<ws>:<event id>` | string | an event published through the API or CLI: `<entry id> <fingerprint of the event without its id>` (expires after the retention), so a repeat is answered with the first entry, and a different body under the same id is a conflict |
//! | `P:env:<ws>:<event id>` | string | the envelope, only for events with a delivery that outlived its first attempt (a delivery whose first attempt succeeded needs none: its payload stays in the stream entry) |
//! | `P:dlv:<delivery>` | hash | durable delivery state, made only when a delivery outlives its first attempt (failed, held, waiting for a slot, redelivered; see `lua/settle.lua`) |
//! | `P:dlv:<delivery>:attempts` | list | attempt records, JSON |
//! | `P:due:<endpoint>` | zset | the endpoint's deliveries to attempt, scored by due time (ms); a claim pushes the score forward by the lease |
//! | `P:lease:<endpoint>` | zset | the endpoint's deliveries in flight, scored by lease expiry: its concurrency, across all daemons. Also the slots a daemon holds for first attempts (members `~<consumer>:<endpoint>:<n>`) |
//! | `P:ready` | zset | endpoints, scored by when they next have a delivery to attempt |
//! | `P:held:<endpoint>` | set | deliveries held while the endpoint is paused |
//! | `P:lane:<endpoint>` | list | first attempts waiting for a slot, oldest first: each item is the delivery's pending log member (`<entry id>_[event id, type, "pending"]`), so its stream entry and its history are found from it (see `lua/settle.lua`, `lua/take.lua`) |
//! | `P:taken:<endpoint>` | zset | items taken from the lane for their attempts, scored by the take's lease end (the take's token); a dead daemon's go back to the lane |
//! | `P:lanes` | hash | endpoint id -> workspace, for every endpoint with a lane or taken items |
//! | `P:here` | hash | `<endpoint>\|<consumer>` -> `<waiting> <oldest entry ms> <written ms>`: what waits in each daemon's memory for an endpoint (its lane's first part), written every second by that daemon; older than a few seconds, it is a stopped daemon's and ignored |
//! | `P:reclaims` | string | incremented before a daemon takes entries over from another; a settle that saw it unchanged since its entries were read knows they are still its own (see `lua/settle.lua`) |
//! | `P:ws:<ws>:lease` | zset | the workspace's deliveries in flight over all its endpoints, scored by lease expiry: its concurrency, across all daemons |
//! | `P:ep:<endpoint>:log` | zset | the endpoint's history: one member per delivery (a compact record of it and its first attempt, see `log.rs`), scored by creation time (ms) |
//! | `P:logs` | hash | endpoint id -> workspace, for every endpoint with a history log (deleted ones until their log expires) |
//! | `P:cfg` | string | the configuration version: bumped by every endpoint write; daemons check their cache against it once per batch |
//! | `P:ws:<ws>:types` | hash | event types seen: `n:<type>` count, `t:<type>` last seen (ms) |
//! | `P:ws:<ws>:catalog` | hash | event type -> catalog entry JSON (set through the API) |
//! | `P:ws:<ws>:audit` | stream | the workspace's audit log: one entry per change (who, what, which, request id), trimmed to the history retention (see `audit.rs`) |
//! | `P:rl:<endpoint>:<second>` | string | attempts claimed in that second, for the endpoint's rate limit (expires after 2 s) |
//! | `P:job:<job>` | hash | a recovery job's progress (`matched`, `queued`, `done`, ...) |
//! | `P:ordered` | set | endpoints with `ordering: key`: while it has a member, reads go through `lua/read.lua` |
//! | `P:ws:<ws>:ok:<key>` | list | keyed entries read and not yet ordered, in stream order (`lua/read.lua` adds, `lua/settle.lua` removes); a later delivery of the key waits while an earlier entry is here |
//! | `P:ord:<endpoint>:<key>` | zset | an ordered endpoint's deliveries of one key (members `<ms>-<seq padded to 10>`, of their entry ids), first = the head being attempted, the rest `waiting` |
//! | `P:seq:<endpoint>:<key>` | string | the last `X-Hookd-Sequence` an ordered endpoint gave for a key (expires a retention after; a key idle that long starts at 1 again) |
//! | `P:ship` | stream | with `[history] postgres_url`: history records not yet shipped to PostgreSQL, written in the step that writes them to Redis (see `ship.rs`) |
//!
//! `<ws>` is written as `<byte length>:<workspace>` so that no workspace and
//! id can run together into another pair's key. The Lua scripts in `lua/`
//! build no key name: every key they touch is built here and passed in
//! KEYS (declared, as Redis Cluster needs while a slot migrates); they name
//! statuses through `STATUS_<NAME>` ([`lua_prelude`]); a test holds both.
//!
//! Global (outside any partition, never in an atomic step):
//! - `<prefix>:endpoints`, a hash from endpoint id to workspace, to find an
//!   endpoint's partition from its id alone;
//! - `<prefix>:apikeys`, a hash from an API key's SHA-256 to its record (JSON),
//!   `<prefix>:apikeys:ids`, from key id to that hash, and
//!   `<prefix>:apikeys:used`, from key id to when it was last used (ms,
//!   written at most about once a minute per key and daemon);
//! - `<prefix>:operational`, a stream of operational events (`endpoint.paused`
//!   when the circuit breaker trips), capped at about 100,000 entries;
//! - `<prefix>:jobs`, a hash from recovery job id to workspace;
//! - `<prefix>:housekeeper`, the consumer name of the daemon that runs
//!   housekeeping now (with a lease of a few intervals);
//! - `<prefix>:partitions`, the partition count the state is laid out for,
//!   and `<prefix>:partitions:retired`, the streams of partitions that
//!   `hookd repartition` retired (see `repartition.rs`);
//! - `<prefix>:rate:<key id>:<window>`, a counter of one API key's requests in
//!   one rate-limit window (expires with it).

/// Key names for one deployment (stream name, key prefix, partition count).
#[derive(Debug, Clone)]
pub struct Keys {
    stream: String,
    prefix: String,
    /// The prefix of global keys written together (endpoint index, API keys,
    /// jobs): `<prefix>`, or on Redis Cluster `{<prefix>}`, one slot for them.
    global: String,
    partitions: u32,
    operational: String,
}

/// The keys of one partition.
#[derive(Debug, Clone)]
pub struct PartitionKeys {
    /// Its number, 0 to the partition count - 1.
    pub index: u32,
    /// The partition's stream.
    pub stream: String,
    /// `{<stream>}`: every other key of the partition starts with it.
    pub tag: String,
}

impl Keys {
    /// The layout for `stream` and `prefix` over `partitions` partitions (at least one).
    pub fn new(stream: &str, prefix: &str, partitions: u32) -> Self {
        Self {
            stream: stream.to_string(),
            prefix: prefix.to_string(),
            global: prefix.to_string(),
            partitions: partitions.max(1),
            operational: format!("{prefix}:operational"),
        }
    }

    /// On Redis Cluster the global keys share one hash tag, `{<prefix>}`, so
    /// the writes that touch two of them (an API key and its id) stay in one
    /// slot. (Single-node names are unchanged.)
    pub fn for_cluster(mut self, cluster: bool) -> Self {
        if cluster {
            self.global = format!("{{{}}}", self.prefix);
        }
        self
    }

    /// Names the operational events stream (default `<prefix>:operational`).
    pub fn with_operational(mut self, stream: &str) -> Self {
        self.operational = stream.to_string();
        self
    }

    /// How many partitions the stream is spread over.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The dead-letter stream of partition `p`: `<stream>:dead` on one Redis
    /// node; on Redis Cluster `{<partition stream>}:dead`, one per partition,
    /// in its slot, so an entry is moved there in one atomic step.
    pub fn dead_letter(&self, p: &PartitionKeys) -> String {
        if self.is_cluster() {
            format!("{}:dead", p.tag)
        } else {
            format!("{}:dead", self.stream)
        }
    }

    /// Laid out for Redis Cluster ([`Keys::for_cluster`]): the global keys
    /// carry the `{<prefix>}` hash tag.
    fn is_cluster(&self) -> bool {
        self.global != self.prefix
    }

    /// Every dead-letter stream (one, or one per partition on a cluster).
    pub fn dead_letters(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .all_partitions()
            .map(|p| self.dead_letter(&p))
            .collect();
        all.dedup();
        all
    }

    /// Endpoint id -> workspace.
    pub fn endpoint_index(&self) -> String {
        format!("{}:endpoints", self.global)
    }

    /// Operational events (an endpoint paused by the circuit breaker, ...).
    pub fn operational(&self) -> String {
        self.operational.clone()
    }

    /// API key hash -> key record.
    pub fn api_keys(&self) -> String {
        format!("{}:apikeys", self.global)
    }

    /// API key id -> key hash.
    pub fn api_key_ids(&self) -> String {
        format!("{}:apikeys:ids", self.global)
    }

    /// API key id -> last used (ms).
    pub fn api_key_used(&self) -> String {
        format!("{}:apikeys:used", self.global)
    }

    /// The partition count the state in Redis is laid out for (written by
    /// the first daemon, changed only by `hookd repartition`).
    pub fn partition_count(&self) -> String {
        format!("{}:partitions", self.global)
    }

    /// Streams of partitions that `hookd repartition` retired: no daemon
    /// reads them; the command forwards what producers still write there.
    pub fn retired_streams(&self) -> String {
        format!("{}:partitions:retired", self.global)
    }

    /// The same deployment laid out for another partition count.
    pub fn with_partitions(&self, partitions: u32) -> Self {
        Self {
            partitions: partitions.max(1),
            ..self.clone()
        }
    }

    /// Which daemon runs housekeeping now (its consumer name, with a lease).
    pub fn housekeeper(&self) -> String {
        format!("{}:housekeeper", self.global)
    }

    /// Recovery job id -> workspace.
    pub fn job_index(&self) -> String {
        format!("{}:jobs", self.global)
    }

    /// Requests of one API key in one rate-limit window.
    pub fn rate_window(&self, key_id: &str, window: i64) -> String {
        format!("{}:rate:{key_id}:{window}", self.prefix)
    }

    /// The keys of partition `index`.
    pub fn partition(&self, index: u32) -> PartitionKeys {
        let stream = if self.partitions == 1 {
            self.stream.clone()
        } else {
            format!("{}:p{index}", self.stream)
        };
        PartitionKeys {
            index,
            tag: format!("{{{stream}}}"),
            stream,
        }
    }

    /// The partition a workspace's events and endpoints live in (FNV-1a of
    /// the workspace id, modulo the partition count). Producers writing to
    /// several partitions must use the same function.
    pub fn partition_of(&self, workspace: &str) -> PartitionKeys {
        let mut hash: u32 = 0x811c_9dc5;
        for b in workspace.bytes() {
            hash ^= u32::from(b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        self.partition(hash % self.partitions)
    }

    /// Items grouped by the partition of their workspace, partitions in
    /// order: one pipeline per group, since on a cluster a pipeline stays in
    /// one slot.
    pub fn by_partition<'a, T>(
        &self,
        items: impl IntoIterator<Item = (&'a str, T)>,
    ) -> Vec<(PartitionKeys, Vec<T>)> {
        let mut groups: std::collections::BTreeMap<u32, Vec<T>> = Default::default();
        for (workspace, item) in items {
            groups
                .entry(self.partition_of(workspace).index)
                .or_default()
                .push(item);
        }
        groups
            .into_iter()
            .map(|(index, items)| (self.partition(index), items))
            .collect()
    }

    /// Every partition's keys, in order.
    pub fn all_partitions(&self) -> impl Iterator<Item = PartitionKeys> + '_ {
        (0..self.partitions).map(|i| self.partition(i))
    }
}

fn ws(workspace: &str) -> String {
    format!("{}:{workspace}", workspace.len())
}

/// One kind of per-partition key: `<tag><prefix><id><suffix>`, where `<id>`
/// is an endpoint, delivery or job id, or a workspace written
/// `<byte length>:<workspace>`. The functions below build names from this
/// one table.
pub(crate) struct Kind {
    prefix: &'static str,
    suffix: &'static str,
    id: Id,
}

enum Id {
    None,
    Plain,
    Workspace,
    /// `<byte length>:<workspace>:<id>` (an event of a workspace).
    WorkspaceItem,
}

macro_rules! kinds {
    ($($name:ident = $lua:literal, $prefix:literal, $id:ident, $suffix:literal;)*) => {
        $(pub(crate) const $name: Kind = Kind { prefix: $prefix, suffix: $suffix, id: Id::$id };)*
        /// Every kind (the scripts' test checks none is written by hand).
        #[cfg(test)]
        pub(crate) const KINDS: &[Kind] = &[$($name),*];
    };
}

kinds! {
    ENDPOINT = "endpoint", ":ep:", Plain, "";
    LOG = "log", ":ep:", Plain, ":log";
    ENDPOINT_RATE = "endpoint_rate", ":rl:", Plain, "";
    WORKSPACE_ENDPOINTS = "workspace_endpoints", ":ws:", Workspace, ":eps";
    WORKSPACE_LEASES = "workspace_leases", ":ws:", Workspace, ":lease";
    TYPES_SEEN = "types_seen", ":ws:", Workspace, ":types";
    CATALOG = "catalog", ":ws:", Workspace, ":catalog";
    AUDIT = "audit", ":ws:", Workspace, ":audit";
    DELIVERY = "delivery", ":dlv:", Plain, "";
    ATTEMPTS = "attempts", ":dlv:", Plain, ":attempts";
    DUE = "due", ":due:", Plain, "";
    LEASES = "leases", ":lease:", Plain, "";
    HELD = "held", ":held:", Plain, "";
    JOB = "job", ":job:", Plain, "";
    ENVELOPE = "envelope", ":env:", WorkspaceItem, "";
    LANE = "lane", ":lane:", Plain, "";
    TAKEN = "taken", ":taken:", Plain, "";
    LANES = "lanes", ":lanes", None, "";
    RECLAIMS = "reclaims", ":reclaims", None, "";
    HERE = "here", ":here", None, "";
    READY = "ready", ":ready", None, "";
    LOGS = "logs", ":logs", None, "";
    CONFIG = "config", ":cfg", None, "";
    SHIP = "ship", ":ship", None, "";
    ORDERED = "ordered", ":ordered", None, "";
    ORDER = "order", ":ord:", Plain, "";
    SEQUENCE = "sequence", ":seq:", Plain, "";
}

impl PartitionKeys {
    fn key(&self, kind: &Kind, id: &str) -> String {
        match kind.id {
            Id::None => format!("{}{}", self.tag, kind.prefix),
            Id::Plain => format!("{}{}{id}{}", self.tag, kind.prefix, kind.suffix),
            Id::Workspace => format!("{}{}{}{}", self.tag, kind.prefix, ws(id), kind.suffix),
            Id::WorkspaceItem => unreachable!("keys of a workspace's item take two ids"),
        }
    }

    fn item_key(&self, kind: &Kind, workspace: &str, id: &str) -> String {
        format!(
            "{}{}{}:{id}{}",
            self.tag,
            kind.prefix,
            ws(workspace),
            kind.suffix
        )
    }

    /// The endpoint's hash: its document and the state the scripts read.
    pub fn endpoint(&self, id: &str) -> String {
        self.key(&ENDPOINT, id)
    }
    /// The endpoint's history log (every delivery, by creation time).
    pub fn log(&self, endpoint: &str) -> String {
        self.key(&LOG, endpoint)
    }
    /// Endpoint id -> workspace, for every endpoint with a history log.
    pub fn logs(&self) -> String {
        self.key(&LOGS, "")
    }
    /// Bumped by every write of an endpoint or subscription: daemons check
    /// their cached configuration against it once per batch.
    pub fn config(&self) -> String {
        self.key(&CONFIG, "")
    }
    /// Attempts claimed for an endpoint in one second (`<endpoint>:<unix second>`).
    pub fn endpoint_rate(&self, id: &str, second: i64) -> String {
        self.key(&ENDPOINT_RATE, &format!("{id}:{second}"))
    }
    /// The workspace's endpoint ids.
    pub fn workspace_endpoints(&self, workspace: &str) -> String {
        self.key(&WORKSPACE_ENDPOINTS, workspace)
    }
    /// Endpoints of the workspace subscribed to `event_type`.
    pub fn type_subscribers(&self, workspace: &str, event_type: &str) -> String {
        format!("{}:ws:{}:type:{event_type}", self.tag, ws(workspace))
    }
    /// Endpoints of the workspace subscribed to every type.
    pub fn all_subscribers(&self, workspace: &str) -> String {
        format!("{}:ws:{}:all", self.tag, ws(workspace))
    }
    /// The idempotency marker of (workspace, event id): the entry id that first carried it.
    pub fn event(&self, workspace: &str, event_id: &str) -> String {
        format!("{}:evt:{}:{event_id}", self.tag, ws(workspace))
    }
    /// What publishing (workspace, event id) through the API or CLI wrote:
    /// `<entry id> <fingerprint>`, to answer a repeat without a second entry.
    pub fn published(&self, workspace: &str, event_id: &str) -> String {
        format!("{}:pub:{}:{event_id}", self.tag, ws(workspace))
    }
    /// The envelope of an event with a delivery that outlived its first attempt.
    pub fn envelope(&self, workspace: &str, event_id: &str) -> String {
        self.item_key(&ENVELOPE, workspace, event_id)
    }
    /// A delivery's durable state (made once it outlives its first attempt).
    pub fn delivery(&self, id: &str) -> String {
        self.key(&DELIVERY, id)
    }
    /// A delivery's attempt records.
    pub fn attempts(&self, delivery: &str) -> String {
        self.key(&ATTEMPTS, delivery)
    }
    /// The endpoint's deliveries to attempt, by due time.
    pub fn due(&self, endpoint: &str) -> String {
        self.key(&DUE, endpoint)
    }
    /// The endpoint's deliveries in flight and slots held, by lease expiry.
    pub fn leases(&self, endpoint: &str) -> String {
        self.key(&LEASES, endpoint)
    }
    /// History records waiting to be shipped to PostgreSQL (a stream).
    pub fn ship(&self) -> String {
        self.key(&SHIP, "")
    }
    /// Endpoints, by when they next have a delivery to attempt.
    pub fn ready(&self) -> String {
        self.key(&READY, "")
    }
    /// The workspace's deliveries in flight over all its endpoints.
    pub fn workspace_leases(&self, workspace: &str) -> String {
        self.key(&WORKSPACE_LEASES, workspace)
    }
    /// Deliveries held while the endpoint is paused.
    pub fn held(&self, endpoint: &str) -> String {
        self.key(&HELD, endpoint)
    }
    /// The endpoint's lane: first attempts waiting for a slot, oldest first.
    pub fn lane(&self, endpoint: &str) -> String {
        self.key(&LANE, endpoint)
    }
    /// Items taken from the endpoint's lane, scored by their lease's end.
    pub fn taken(&self, endpoint: &str) -> String {
        self.key(&TAKEN, endpoint)
    }
    /// Endpoint id -> workspace, for every endpoint with a lane (or items taken from it).
    pub fn lanes(&self) -> String {
        self.key(&LANES, "")
    }
    /// What waits in each daemon's memory, per endpoint (see `lanes.rs`).
    pub fn here(&self) -> String {
        self.key(&HERE, "")
    }
    /// Counts the times a daemon took entries over from another (see `lua/settle.lua`).
    pub fn reclaims(&self) -> String {
        self.key(&RECLAIMS, "")
    }
    /// Event types seen in the workspace, with counts and last-seen times.
    pub fn types_seen(&self, workspace: &str) -> String {
        self.key(&TYPES_SEEN, workspace)
    }
    /// The workspace's own catalog entries.
    pub fn catalog(&self, workspace: &str) -> String {
        self.key(&CATALOG, workspace)
    }
    /// The workspace's audit log (a stream).
    pub fn audit(&self, workspace: &str) -> String {
        self.key(&AUDIT, workspace)
    }
    /// A recovery job's progress.
    pub fn job(&self, id: &str) -> String {
        self.key(&JOB, id)
    }
    /// Endpoints with `ordering: key` (while there is one, reads note keyed entries).
    pub fn ordered(&self) -> String {
        self.key(&ORDERED, "")
    }
    /// Keyed entries of (workspace, ordering key) read and not yet ordered,
    /// in stream order (written by `lua/read.lua`).
    pub fn order_reads(&self, workspace: &str, key: &str) -> String {
        let (before, after) = self.order_reads_affixes();
        format!("{before}{}{after}{key}", ws(workspace))
    }
    /// What `lua/read.lua` puts around `<byte length>:<workspace>` and
    /// after which it writes the key, to name a read list.
    pub fn order_reads_affixes(&self) -> (String, &'static str) {
        (format!("{}:ws:", self.tag), ":ok:")
    }
    /// An ordered endpoint's deliveries of one key, in stream order: the
    /// first is the key's head there, the rest wait behind it.
    pub fn order(&self, endpoint: &str, key: &str) -> String {
        self.key(&ORDER, &format!("{endpoint}:{key}"))
    }
    /// What every order zset's name starts with (then `<endpoint>:<key>`).
    pub fn order_prefix(&self) -> String {
        format!("{}{}", self.tag, ORDER.prefix)
    }
    /// What every sequence counter's name starts with (then `<endpoint>:<key>`).
    pub fn sequence_prefix(&self) -> String {
        format!("{}{}", self.tag, SEQUENCE.prefix)
    }
}

/// Whose state a key of a partition holds: what `hookd repartition` needs
/// to know to move it to the partition its workspace has under another count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    Workspace(String),
    Endpoint(String),
    Job(String),
    /// Shared by the partition (`ready`, `logs`, `cfg`, the dead letters).
    Partition,
    /// Expires within seconds (rate-limit counters): left where it is.
    Ephemeral,
}

impl PartitionKeys {
    /// The owner of `key`, one of this partition's keys; `None` when the key
    /// is not in this partition or not a key hookd writes.
    pub(crate) fn owner_of(&self, key: &str) -> Option<Owner> {
        let rest = key.strip_prefix(&self.tag)?.strip_prefix(':')?;
        let (kind, id) = rest.split_once(':').unwrap_or((rest, ""));
        let workspace = |id: &str| {
            let (len, tail) = id.split_once(':')?;
            let len: usize = len.parse().ok()?;
            tail.get(..len).map(str::to_string)
        };
        let first = |id: &str| id.split(':').next().map(str::to_string);
        Some(match kind {
            "ready" | "logs" | "cfg" | "dead" | "ship" | "lanes" | "ordered" if id.is_empty() => {
                Owner::Partition
            }
            "rl" => Owner::Ephemeral,
            "ws" | "evt" | "pub" | "env" => Owner::Workspace(workspace(id)?),
            "ep" | "due" | "lease" | "held" | "lane" | "taken" | "ord" | "seq" => {
                Owner::Endpoint(first(id)?)
            }
            "dlv" => {
                let delivery = id.strip_suffix(":attempts").unwrap_or(id);
                let (_, endpoint) = hookd_core::delivery::parse_delivery_id(delivery)?;
                Owner::Endpoint(endpoint.to_string())
            }
            "job" => Owner::Job(id.to_string()),
            _ => return None,
        })
    }

    /// `key` (one of this partition's) renamed into partition `to`.
    pub(crate) fn moved_to(&self, key: &str, to: &PartitionKeys) -> Option<String> {
        key.strip_prefix(&self.tag)
            .map(|rest| format!("{}{rest}", to.tag))
    }
}

/// The Lua every script starts with: `STATUS_<NAME>` for each delivery
/// status, the shapes of the batched scripts' arguments, and `clock_ms()`.
/// No script builds a key name: every key it touches is passed in KEYS,
/// built by the functions above, so Redis (and a cluster's slot checks)
/// sees each one.
pub fn lua_prelude() -> String {
    use std::fmt::Write;
    let mut lua = String::from("-- Generated from DeliveryStatus and scripts.rs.\n");
    for status in hookd_core::DeliveryStatus::ALL {
        let _ = writeln!(
            lua,
            "local STATUS_{} = '{}'",
            status.as_str().to_ascii_uppercase(),
            status.as_str()
        );
    }
    // How many arguments and keys each item of a batched script takes,
    // written once (scripts.rs) for both sides.
    for (name, n) in crate::scripts::SHAPES {
        let _ = writeln!(lua, "local {name} = {n}");
    }
    // Every time a script writes (due times, leases, breaker times) is
    // Redis's clock, so daemons with skewed clocks agree.
    lua.push_str(
        "local function clock_ms()\n  local t = redis.call('TIME')\n  \
         return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\nend\n",
    );
    lua
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_key_names_its_owner() {
        let keys = Keys::new("hookd:events", "hookd", 3);
        let p = keys.partition_of("ws:1");
        let ws = || Some(Owner::Workspace("ws:1".into()));
        let ep = || Some(Owner::Endpoint("ep_1".into()));
        let dlv = "dlv_1700000000000-0_ep_1";
        for key in [
            p.workspace_endpoints("ws:1"),
            p.type_subscribers("ws:1", "a:b"),
            p.all_subscribers("ws:1"),
            p.event("ws:1", "evt:1"),
            p.published("ws:1", "evt:1"),
            p.envelope("ws:1", "evt:1"),
            p.types_seen("ws:1"),
            p.catalog("ws:1"),
            p.workspace_leases("ws:1"),
        ] {
            assert_eq!(p.owner_of(&key), ws(), "{key}");
        }
        for key in [
            p.endpoint("ep_1"),
            p.log("ep_1"),
            p.due("ep_1"),
            p.leases("ep_1"),
            p.held("ep_1"),
            p.delivery(dlv),
            p.attempts(dlv),
        ] {
            assert_eq!(p.owner_of(&key), ep(), "{key}");
        }
        assert_eq!(
            p.owner_of(&p.job("job_1")),
            Some(Owner::Job("job_1".into()))
        );
        for key in [
            p.ready(),
            p.logs(),
            p.config(),
            keys.clone().for_cluster(true).dead_letter(&p),
        ] {
            assert_eq!(p.owner_of(&key), Some(Owner::Partition), "{key}");
        }
        assert_eq!(
            p.owner_of(&p.endpoint_rate("ep_1", 5)),
            Some(Owner::Ephemeral)
        );
        assert_eq!(p.owner_of(&keys.partition(9).endpoint("ep_1")), None);
        assert_eq!(p.owner_of("hookd:endpoints"), None);
        let to = keys.with_partitions(5).partition(4);
        assert_eq!(p.moved_to(&p.log("ep_1"), &to), Some(to.log("ep_1")));
    }

    #[test]
    fn one_partition_shares_the_stream_slot() {
        let keys = Keys::new("hookd:events", "hookd", 1);
        let p = keys.partition_of("ws_1");
        assert_eq!(p.stream, "hookd:events");
        assert_eq!(p.due("ep_1"), "{hookd:events}:due:ep_1");
        assert_eq!(p.event("ws_1", "e1"), "{hookd:events}:evt:4:ws_1:e1");
        assert_eq!(keys.dead_letter(&keys.partition(0)), "hookd:events:dead");
        let cluster = Keys::new("hookd:events", "hookd", 2).for_cluster(true);
        assert_eq!(
            cluster.dead_letter(&cluster.partition(1)),
            "{hookd:events:p1}:dead"
        );
        assert_eq!(cluster.endpoint_index(), "{hookd}:endpoints");
        assert_eq!(p.workspace_leases("ws_1"), "{hookd:events}:ws:4:ws_1:lease");
        assert_eq!(p.log("ep_1"), "{hookd:events}:ep:ep_1:log");
        assert_eq!(p.endpoint_rate("ep_1", 17), "{hookd:events}:rl:ep_1:17");
        assert_eq!(p.ready(), "{hookd:events}:ready");
    }

    #[test]
    fn workspaces_spread_over_partitions() {
        let keys = Keys::new("hookd:events", "hookd", 4);
        let used: std::collections::BTreeSet<u32> = (0..100)
            .map(|i| keys.partition_of(&format!("ws_{i}")).index)
            .collect();
        assert_eq!(used.len(), 4);
        assert_eq!(keys.partition(2).tag, "{hookd:events:p2}");
    }

    /// The scripts build no key name and write no status by hand: every
    /// key comes from KEYS (declared, built in this module), every status
    /// from the prelude.
    #[test]
    fn scripts_take_every_key_from_keys_and_name_no_status_by_hand() {
        let scripts = [
            include_str!("lua/slots.lua"),
            include_str!("lua/settle.lua"),
            include_str!("lua/claim.lua"),
            include_str!("lua/record.lua"),
            include_str!("lua/queues.lua"),
            include_str!("lua/resume.lua"),
            include_str!("lua/requeue.lua"),
            include_str!("lua/dead_letter.lua"),
            include_str!("lua/endpoint_write.lua"),
            include_str!("lua/pause.lua"),
            include_str!("lua/swap_doc.lua"),
            include_str!("lua/publish.lua"),
            include_str!("lua/touch.lua"),
            include_str!("lua/drop_queued.lua"),
            include_str!("lua/prune.lua"),
            include_str!("lua/endpoint_create.lua"),
            include_str!("lua/sightings.lua"),
            include_str!("lua/ready.lua"),
            include_str!("lua/take.lua"),
            include_str!("lua/read.lua"),
            include_str!("lua/skip.lua"),
        ];
        for script in scripts {
            for line in script.lines().filter(|l| !l.trim_start().starts_with("--")) {
                for kind in KINDS {
                    assert!(
                        !line.contains(&format!("'{}", kind.prefix)),
                        "a hand-written key in: {line}"
                    );
                }
                assert!(
                    !line.contains("key_") || line.contains("key_types"),
                    "a key built from data, not declared: {line}"
                );
                assert!(
                    !line.contains("tag .."),
                    "a key built from the tag, not declared: {line}"
                );
                for status in hookd_core::DeliveryStatus::ALL {
                    assert!(
                        !line.contains(&format!("'{}'", status.as_str())),
                        "a hand-written status in: {line}"
                    );
                }
            }
        }
        let prelude = lua_prelude();
        assert!(prelude.contains("local STATUS_HELD = 'held'"));
        assert!(prelude.contains("local SETTLE_FIELDS = 18"));
    }

    /// The shared vectors producers in other languages check against
    /// (docs/producers/partition-vectors.json): the same function here.
    #[test]
    fn partitions_match_the_shared_vectors() {
        let doc: serde_json::Value = serde_json::from_str(include_str!(
            "../../../docs/producers/partition-vectors.json"
        ))
        .unwrap();
        let vectors = doc["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 80);
        for v in vectors {
            let (ws, n) = (
                v["workspace"].as_str().unwrap(),
                v["partitions"].as_u64().unwrap() as u32,
            );
            let p = Keys::new("hookd:events", "hookd", n).partition_of(ws);
            assert_eq!(u64::from(p.index), v["partition"].as_u64().unwrap(), "{v}");
            let expected = if n == 1 {
                "hookd:events".to_string()
            } else {
                format!("hookd:events:p{}", p.index)
            };
            assert_eq!(p.stream, expected);
        }
    }
}
