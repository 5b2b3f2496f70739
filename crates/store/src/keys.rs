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
//! | `P:ep:<endpoint>` | hash | `doc` (endpoint JSON), `paused`, `paused_reason`, `paused_at`, `max_concurrency` and `rate_limit` for the claim script, `fails` and `failing_since` for the circuit breaker |
//! | `P:ws:<ws>:eps` | set | the workspace's endpoint ids |
//! | `P:ws:<ws>:type:<type>` / `P:ws:<ws>:all` | set | endpoints subscribed to a type / to every type |
//! | `P:evt:<ws>:<event id>` | string | the envelope (stored once per event); doubles as the idempotency marker |
//! | `P:dlv:<delivery>` | hash | delivery state (see `lua/ingest.lua`) |
//! | `P:dlv:<delivery>:attempts` | list | attempt records, JSON |
//! | `P:due:<endpoint>` | zset | the endpoint's deliveries to attempt, scored by due time (ms); a claim pushes the score forward by the lease |
//! | `P:lease:<endpoint>` | zset | the endpoint's deliveries in flight, scored by lease expiry: its concurrency, across all daemons |
//! | `P:ready` | zset | endpoints, scored by when they next have a delivery to attempt |
//! | `P:held:<endpoint>` | set | deliveries held while the endpoint is paused |
//! | `P:ws:<ws>:lease` | zset | the workspace's deliveries in flight over all its endpoints, scored by lease expiry: its concurrency, across all daemons (built in `lua/queues.lua` too) |
//! | `P:ep:<endpoint>:dlvs`, `P:ws:<ws>:dlvs`, `P:dlvs` | zset | history indexes (endpoint, workspace, all) by creation time (ms) |
//! | `P:ws:<ws>:types` | hash | event types seen: `n:<type>` count, `t:<type>` last seen (ms) |
//! | `P:ws:<ws>:catalog` | hash | event type -> catalog entry JSON (set through the API) |
//! | `P:rl:<endpoint>:<second>` | string | attempts claimed in that second, for the endpoint's rate limit (expires after 2 s) |
//! | `P:job:<job>` | hash | a recovery job's progress (`matched`, `queued`, `done`, ...) |
//!
//! `<ws>` is written as `<byte length>:<workspace>` so that no workspace and
//! id can run together into another pair's key. The Lua scripts in `lua/`
//! build per-delivery keys from the partition prefix and these same suffixes.
//!
//! Global (outside any partition, never in an atomic step):
//! - `<prefix>:endpoints`, a hash from endpoint id to workspace, to find an
//!   endpoint's partition from its id alone;
//! - `<prefix>:apikeys`, a hash from an API key's SHA-256 to its record (JSON),
//!   and `<prefix>:apikeys:ids`, from key id to that hash;
//! - `<prefix>:operational`, a stream of operational events (`endpoint.paused`
//!   when the circuit breaker trips), capped at about 100,000 entries;
//! - `<prefix>:jobs`, a hash from recovery job id to workspace;
//! - `<prefix>:rate:<key id>:<window>`, a counter of one API key's requests in
//!   one rate-limit window (expires with it).

/// Key names for one deployment (stream name, key prefix, partition count).
#[derive(Debug, Clone)]
pub struct Keys {
    stream: String,
    prefix: String,
    partitions: u32,
    operational: String,
}

/// The keys of one partition.
#[derive(Debug, Clone)]
pub struct PartitionKeys {
    pub index: u32,
    /// The partition's stream.
    pub stream: String,
    /// `{<stream>}`: every other key of the partition starts with it.
    pub tag: String,
}

impl Keys {
    pub fn new(stream: &str, prefix: &str, partitions: u32) -> Self {
        Self {
            stream: stream.to_string(),
            prefix: prefix.to_string(),
            partitions: partitions.max(1),
            operational: format!("{prefix}:operational"),
        }
    }

    /// Names the operational events stream (default `<prefix>:operational`).
    pub fn with_operational(mut self, stream: &str) -> Self {
        self.operational = stream.to_string();
        self
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The dead-letter stream: `<stream>:dead`.
    pub fn dead_letter(&self) -> String {
        format!("{}:dead", self.stream)
    }

    /// Endpoint id -> workspace.
    pub fn endpoint_index(&self) -> String {
        format!("{}:endpoints", self.prefix)
    }

    /// Operational events (an endpoint paused by the circuit breaker, ...).
    pub fn operational(&self) -> String {
        self.operational.clone()
    }

    /// API key hash -> key record.
    pub fn api_keys(&self) -> String {
        format!("{}:apikeys", self.prefix)
    }

    /// API key id -> key hash.
    pub fn api_key_ids(&self) -> String {
        format!("{}:apikeys:ids", self.prefix)
    }

    /// Recovery job id -> workspace.
    pub fn job_index(&self) -> String {
        format!("{}:jobs", self.prefix)
    }

    /// Requests of one API key in one rate-limit window.
    pub fn rate_window(&self, key_id: &str, window: i64) -> String {
        format!("{}:rate:{key_id}:{window}", self.prefix)
    }

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

    pub fn all_partitions(&self) -> impl Iterator<Item = PartitionKeys> + '_ {
        (0..self.partitions).map(|i| self.partition(i))
    }
}

fn ws(workspace: &str) -> String {
    format!("{}:{workspace}", workspace.len())
}

impl PartitionKeys {
    pub fn endpoint(&self, id: &str) -> String {
        format!("{}:ep:{id}", self.tag)
    }
    pub fn endpoint_deliveries(&self, id: &str) -> String {
        format!("{}:ep:{id}:dlvs", self.tag)
    }
    pub fn workspace_endpoints(&self, workspace: &str) -> String {
        format!("{}:ws:{}:eps", self.tag, ws(workspace))
    }
    pub fn type_subscribers(&self, workspace: &str, event_type: &str) -> String {
        format!("{}:ws:{}:type:{event_type}", self.tag, ws(workspace))
    }
    pub fn all_subscribers(&self, workspace: &str) -> String {
        format!("{}:ws:{}:all", self.tag, ws(workspace))
    }
    pub fn event(&self, workspace: &str, event_id: &str) -> String {
        format!("{}:evt:{}:{event_id}", self.tag, ws(workspace))
    }
    pub fn delivery(&self, id: &str) -> String {
        format!("{}:dlv:{id}", self.tag)
    }
    pub fn attempts(&self, delivery: &str) -> String {
        format!("{}:dlv:{delivery}:attempts", self.tag)
    }
    pub fn due(&self, endpoint: &str) -> String {
        format!("{}:due:{endpoint}", self.tag)
    }
    pub fn leases(&self, endpoint: &str) -> String {
        format!("{}:lease:{endpoint}", self.tag)
    }
    pub fn ready(&self) -> String {
        format!("{}:ready", self.tag)
    }
    pub fn workspace_leases(&self, workspace: &str) -> String {
        format!("{}:ws:{}:lease", self.tag, ws(workspace))
    }
    pub fn held(&self, endpoint: &str) -> String {
        format!("{}:held:{endpoint}", self.tag)
    }
    pub fn deliveries(&self) -> String {
        format!("{}:dlvs", self.tag)
    }
    pub fn workspace_deliveries(&self, workspace: &str) -> String {
        format!("{}:ws:{}:dlvs", self.tag, ws(workspace))
    }
    pub fn types_seen(&self, workspace: &str) -> String {
        format!("{}:ws:{}:types", self.tag, ws(workspace))
    }
    pub fn catalog(&self, workspace: &str) -> String {
        format!("{}:ws:{}:catalog", self.tag, ws(workspace))
    }
    pub fn job(&self, id: &str) -> String {
        format!("{}:job:{id}", self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_partition_shares_the_stream_slot() {
        let keys = Keys::new("hookd:events", "hookd", 1);
        let p = keys.partition_of("ws_1");
        assert_eq!(p.stream, "hookd:events");
        assert_eq!(p.due("ep_1"), "{hookd:events}:due:ep_1");
        assert_eq!(p.event("ws_1", "e1"), "{hookd:events}:evt:4:ws_1:e1");
        assert_eq!(keys.dead_letter(), "hookd:events:dead");
        // The same name lua/queues.lua builds.
        assert_eq!(p.workspace_leases("ws_1"), "{hookd:events}:ws:4:ws_1:lease");
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
}
