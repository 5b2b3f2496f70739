//! hookd-store: everything hookd keeps in Redis, behind typed functions.
//!
//! Two sides, one folder each: [`pipeline`], what every event and attempt
//! goes through (the hot path: stream reads, accepting and settling, lanes,
//! the history log, claiming due deliveries, the shipping backlog), and
//! [`control`], what operators and the admin API read and change
//! (endpoints, keys, audit, event types, history pages, recovery,
//! repartitioning, queue figures). Beside them, shared by both:
//!
//! - [`keys`]: the key layout (the only place key names are built);
//! - `scripts`: every Lua script (the files in `lua/`), loaded once;
//! - `connection`: the multiplexed connection (a node or a cluster).
//!
//! The pipeline:
//!
//! - [`stream`]: the consumer group, reading and reclaiming entries, dead letters;
//! - [`ingest`]: accepting events for first attempts, the configuration the
//!   daemon caches, settling deliveries together with the acks;
//! - [`log`]: the history log's record of each delivery;
//! - [`lanes`]: first attempts waiting for a slot, per endpoint;
//! - [`schedule`]: claiming due deliveries and recording attempts;
//! - [`ship`]: history records waiting to be shipped to PostgreSQL;
//! - `reader`: the stream's own connection, parsing replies under the limits.
//!
//! The control plane:
//!
//! - [`endpoints`]: endpoint records and their subscription indexes;
//! - [`history`]: reading deliveries and their attempts back, a page at a time;
//! - [`recovery`]: redelivering one delivery, recovery jobs for many;
//! - [`repartition`]: moving state and events to a new partition count;
//! - [`api_keys`]: admin API keys (by hash) and their request counters;
//! - [`audit`]: each workspace's log of changes and who made them;
//! - [`event_types`]: types seen per workspace and the workspace catalog;
//! - [`stats`]: queue depths and stream lag, for metrics and readiness.
//!
//! Connections: one multiplexed connection (`connection.rs`: a node or a cluster) for ordinary
//! commands, and one per partition for its stream reads (`reader.rs`: a
//! blocked read holds its connection, so partitions must not share one, and
//! replies are parsed under the event limits as they arrive). All reconnect
//! on their own.

#![warn(missing_docs)]

mod connection;
pub mod keys;
mod scripts;
mod value;

pub mod control;
pub mod pipeline;

// Each module is reached by its own name (`hookd_store::stream`,
// `hookd_store::endpoints`): the folder says which side it is on.
pub use control::{api_keys, audit, endpoints, event_types, history, recovery, repartition, stats};
use pipeline::reader;
pub use pipeline::{ingest, lanes, log, schedule, ship, stream};

use std::time::Duration;

use redis::aio::ConnectionManagerConfig;

pub use keys::{Keys, PartitionKeys};

/// Typed settings for the store (the binary reads them from configuration).
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// One URL, or with `cluster` one or more seed nodes, comma-separated.
    pub url: String,
    /// Redis Cluster: the rest of the topology is discovered from `url`.
    pub cluster: bool,
    /// Stream producers write to.
    pub stream: String,
    /// Prefix of keys outside the partitions.
    pub key_prefix: String,
    /// How many partitions the stream is spread over.
    pub partitions: u32,
    /// How long delivery history and envelopes are kept. Also the window in
    /// which a repeated (workspace, event id) is recognised as a duplicate.
    pub history_retention: Duration,
    /// Longest a blocking read waits for new entries.
    pub read_block: Duration,
    /// Where operational events go (`endpoint.paused` by the circuit breaker).
    pub operational_stream: String,
    /// Seals endpoint secrets at rest; `None` stores them in clear.
    pub sealer: Option<hookd_core::sealing::Sealer>,
    /// Most endpoints one workspace may have (0: no limit); also bounds the
    /// fan-out of one event.
    pub max_endpoints_per_workspace: u32,
    /// Highest `max_concurrency` an endpoint may ask for.
    pub max_endpoint_concurrency: u32,
    /// The dead-letter stream keeps at most this many entries (the oldest go).
    pub dead_letter_max_len: u64,
    /// With history shipped to PostgreSQL: the most records each partition's
    /// shipping backlog (`P:ship`) holds (the oldest go past it). 0: history
    /// is not shipped.
    pub ship_backlog: u64,
}

/// What went wrong talking to Redis, or with what it held.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// (No `source`: redis-rs's message already carries its cause, and an
    /// error chain would print it again.)
    #[error("redis: {0}")]
    Redis(redis::RedisError),
    /// Redis answered something this code does not expect.
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
    /// A stored record does not read back as written.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// The record named does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A write the operator's limits refuse: (field, why).
    #[error("{0}: {1}")]
    Invalid(String, String),
    /// The Redis server is older than hookd needs.
    #[error("{0}")]
    Version(String),
    /// A compare-and-set write lost to other writers every time it retried.
    #[error("{0}")]
    Conflict(String),
    /// (No `source`: the message carries it, and error chains print it once.)
    #[error("endpoint secret: {0} (check [secrets] keys)")]
    Sealing(hookd_core::sealing::SealError),
}

impl StoreError {
    /// Whether trying the same call again later may succeed: Redis was not
    /// reached, not ready, busy, or moving (a failover, a resharding, a
    /// restart, memory full). The other errors are Redis refusing this call
    /// for what it holds or asks (a key of the wrong type, a script error,
    /// a corrupt record): the same call fails the same way.
    pub fn is_transient(&self) -> bool {
        let StoreError::Redis(e) = self else {
            return false;
        };
        if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_cluster_error() {
            return true;
        }
        match e.code() {
            Some(code) => matches!(
                code,
                "LOADING"
                    | "BUSY"
                    | "TRYAGAIN"
                    | "CLUSTERDOWN"
                    | "MASTERDOWN"
                    | "READONLY"
                    | "MOVED"
                    | "ASK"
                    | "OOM"
                    | "NOSCRIPT"
                    | "NOREPLICAS"
            ),
            // Not an answer of the server's: the client's side (no connection, a timeout).
            None => !matches!(
                e.kind(),
                redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType
            ),
        }
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::Redis(e)
    }
}

impl From<hookd_core::sealing::SealError> for StoreError {
    fn from(e: hookd_core::sealing::SealError) -> Self {
        StoreError::Sealing(e)
    }
}

/// What the store's functions return.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A handle on hookd's Redis. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) conn: connection::Connection,
    /// Per partition, for its stream reads.
    pub(crate) readers: std::sync::Arc<Vec<reader::EntryReader>>,
    /// Per partition, for reading again entries waiting in lanes (`lanes.rs`).
    pub(crate) lane_readers: std::sync::Arc<Vec<reader::EntryReader>>,
    pub(crate) keys: Keys,
    pub(crate) settings: StoreSettings,
    pub(crate) scripts: std::sync::Arc<scripts::Scripts>,
    /// The first seed node's address and credentials (cluster: for direct
    /// connections to one node).
    pub(crate) seed: redis::ConnectionInfo,
}

impl Store {
    /// Connects (the shared connection; stream readers connect on their
    /// first read). Fails when Redis is not reachable now; once connected,
    /// every connection reconnects by itself.
    pub async fn connect(settings: StoreSettings) -> Result<Self> {
        let seeds: Vec<&str> = settings.url.split(',').map(str::trim).collect();
        let client = redis::Client::open(seeds[0])?;
        let conn = if settings.cluster {
            let cluster = redis::cluster::ClusterClient::builder(seeds.clone())
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(Duration::from_secs(5))
                .retries(6)
                .build()?;
            connection::Connection::Cluster(cluster.get_async_connection().await?)
        } else {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_max_delay(Duration::from_secs(2))
                .set_number_of_retries(2)
                .set_response_timeout(Some(Duration::from_secs(5)));
            connection::Connection::Node(client.get_connection_manager_with_config(config).await?)
        };
        let keys = Keys::new(&settings.stream, &settings.key_prefix, settings.partitions)
            .with_operational(&settings.operational_stream)
            .for_cluster(settings.cluster);
        let readers = || {
            let all = keys.all_partitions().map(|p| {
                reader::EntryReader::new(
                    client.get_connection_info().clone(),
                    conn.clone(),
                    p.stream,
                )
            });
            std::sync::Arc::new(all.collect::<Vec<_>>())
        };
        let (readers, lane_readers) = (readers(), readers());
        // (On a cluster every node answers; any one tells the version.)
        let info: redis::Value = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn.clone())
            .await?;
        check_version(&info_text(&info))?;
        Ok(Self {
            conn,
            readers,
            lane_readers,
            keys,
            settings,
            scripts: Default::default(),
            seed: client.get_connection_info().clone(),
        })
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// What the store was made with.
    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    /// A connection to the node serving `key` (see `Connection::node_for`).
    pub(crate) async fn node_for(&self, key: &str) -> Result<connection::Connection> {
        Ok(self.conn.node_for(key, &self.seed).await?)
    }

    pub(crate) fn retention_secs(&self) -> u64 {
        self.settings.history_retention.as_secs().max(1)
    }
}

/// The oldest Redis hookd runs on: it uses `PEXPIRE ... NX` (7.0) for API key
/// rate limits, and XAUTOCLAIM (6.2) and scripts that read streams.
const MIN_REDIS: (u32, u32) = (7, 0);

/// The text of an `INFO` reply: a node's, or the first node's of a cluster's.
fn info_text(v: &redis::Value) -> String {
    use redis::Value;
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => s.clone(),
        Value::Map(nodes) => nodes.first().map(|(_, v)| info_text(v)).unwrap_or_default(),
        Value::Array(items) => items.first().map(info_text).unwrap_or_default(),
        _ => String::new(),
    }
}

/// Refuses a server older than [`MIN_REDIS`], from its `INFO server` text.
fn check_version(info: &str) -> Result<()> {
    let Some(version) = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(str::trim)
    else {
        // Not Redis's INFO (a compatible server): let it run.
        return Ok(());
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < MIN_REDIS {
        return Err(StoreError::Version(format!(
            "hookd needs Redis {}.{} or newer; this server is {version}. Upgrade Redis (Debian 12 and later ship 7.x)",
            MIN_REDIS.0, MIN_REDIS.1
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_version;

    #[test]
    fn redis_older_than_7_is_refused_with_a_clear_message() {
        let info = |v: &str| format!("# Server\r\nredis_version:{v}\r\nredis_mode:standalone\r\n");
        assert!(check_version(&info("7.0.15")).is_ok());
        assert!(check_version(&info("7.2.4")).is_ok());
        assert!(check_version(&info("8.0.0")).is_ok());
        let err = check_version(&info("6.2.14")).unwrap_err().to_string();
        assert!(
            err.contains("needs Redis 7.0") && err.contains("6.2.14"),
            "{err}"
        );
        assert!(check_version(&info("5.0.7")).is_err());
        assert!(check_version("no version here").is_ok());
    }
}
