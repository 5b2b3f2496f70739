//! The configuration's sections and keys as serde reads them (`deny_unknown_fields`:
//! a misspelt key is an error), with the forms durations and lists take.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Whole days as days (`90d`: humantime would say "2months 29days 2h 52m
/// 48s", its months being 30.44 days), anything else as humantime writes it.
fn duration_text<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    let secs = d.as_secs();
    if secs >= 86_400 && secs.is_multiple_of(86_400) && d.subsec_nanos() == 0 {
        return s.serialize_str(&format!("{}d", secs / 86_400));
    }
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn displayed<S: Serializer, T: std::fmt::Display>(items: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(items.iter().map(|i| i.to_string()))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "{s:?} is not a duration like \"30s\" or \"5m\": {e}"
        ))
    })
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub redis: Redis,
    pub ingest: Ingest,
    pub delivery: Delivery,
    pub retry: Retry,
    pub signing: Signing,
    pub history: History,
    pub log: Log,
    pub telemetry: Telemetry,
    pub admin: Admin,
    pub secrets: Secrets,
    /// Built from `[secrets]` when the configuration is loaded.
    #[serde(skip)]
    pub(crate) sealer: Option<hookd_core::sealing::Sealer>,
    /// The file read, if any (`None`: built-in defaults and the environment).
    #[serde(skip)]
    pub file: Option<std::path::PathBuf>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Secrets {
    /// Keys that seal endpoint secrets at rest: `<id>:<base64 of 32 random
    /// bytes>` (`openssl rand -base64 32`). A list, or one comma-separated
    /// string (HOOKD__SECRETS__KEYS). Empty: secrets are stored in clear.
    #[serde(deserialize_with = "list")]
    pub keys: Vec<String>,
    /// The id of the key new secrets are sealed with; the others only open.
    pub current: String,
}

/// A list; from an environment variable, a JSON array or the items
/// separated by commas.
fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Items(Vec<String>),
        Text(String),
    }
    let items = match List::deserialize(d)? {
        List::Items(items) => items,
        // From the environment: a JSON array (`["a","b"]`), or the items
        // separated by commas (`a,b`).
        List::Text(text) if text.trim_start().starts_with('[') => {
            serde_json::from_str::<Vec<String>>(&text).map_err(|e| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a JSON array of strings ({e}); write the items as [\"a\",\"b\"] or a,b"
                ))
            })?
        }
        List::Text(text) => text.split(',').map(str::to_string).collect(),
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Redis {
    /// One URL; with `cluster`, one or more seed nodes, comma-separated.
    pub url: String,
    /// Redis Cluster: the topology is discovered from the seeds and followed.
    pub cluster: bool,
    pub key_prefix: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ingest {
    pub stream: String,
    pub group: String,
    pub partitions: u32,
    pub batch: usize,
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub reclaim_idle: Duration,
    pub max_payload_bytes: usize,
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub stream_retention: Duration,
    /// The dead-letter stream keeps at most this many entries.
    pub dead_letter_max_len: u64,
    /// Most fields a stream entry may have.
    pub max_fields: usize,
    /// An entry read this many times without being settled (each reader
    /// died or failed first) goes to the dead-letter stream.
    pub max_deliveries: u64,
    /// How often to trim the stream and history indexes and forget stopped consumers.
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub housekeeping_interval: Duration,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    pub concurrency: usize,
    pub endpoint_concurrency: u32,
    /// The highest max_concurrency an endpoint may ask for.
    pub max_endpoint_concurrency: u32,
    /// Attempts in flight at once per workspace over all its endpoints,
    /// across all daemons (0: no limit).
    pub workspace_concurrency: u32,
    pub claim_batch: usize,
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub poll_interval: Duration,
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub request_timeout: Duration,
    pub response_excerpt_bytes: usize,
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub shutdown_grace: Duration,
    /// Internal networks deliveries may reach anyway (every internal address
    /// is refused otherwise). A list, or one comma-separated string (for the
    /// environment: HOOKD__DELIVERY__ALLOW_NETWORKS=10.0.0.0/8,127.0.0.0/8).
    #[serde(deserialize_with = "networks", serialize_with = "displayed")]
    pub allow_networks: Vec<hookd_core::network::Cidr>,
    /// DNS servers (`ip:port`) that receiver names are resolved with;
    /// empty: the system's (/etc/resolv.conf). A list or one comma-separated string.
    #[serde(deserialize_with = "socket_addrs", serialize_with = "displayed")]
    pub nameservers: Vec<std::net::SocketAddr>,
    /// The circuit breaker pauses an endpoint after this many failed attempts
    /// in a row (0: never) ...
    pub breaker_failures: u32,
    /// ... that span at least this long.
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub breaker_window: Duration,
    /// Stream of operational events (an endpoint paused by the breaker).
    pub operational_stream: String,
    /// Workspaces' shares of the slots that lanes fill (deliveries waiting
    /// for a slot), relative to 1, the share of every workspace not named:
    /// `{ "ws_big" = 4 }`.
    pub workspace_weights: std::collections::HashMap<String, u32>,
}

fn socket_addrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<std::net::SocketAddr>, D::Error> {
    list(d)?
        .iter()
        .map(|s| {
            s.parse().map_err(|_| {
                serde::de::Error::custom(format!("{s:?} must be ip:port, like 10.0.0.2:53"))
            })
        })
        .collect()
}

fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<hookd_core::network::Cidr>, D::Error> {
    list(d)?
        .iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retry {
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub initial_delay: Duration,
    pub factor: f64,
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub max_delay: Duration,
    pub max_attempts: u32,
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub max_age: Duration,
    pub jitter: f64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Signing {
    pub header_prefix: String,
    /// `all` (every valid secret signs during a rotation's grace) or
    /// `newest` (only the newest), for endpoints that do not say.
    pub rotation_signatures: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct History {
    /// How long Redis keeps deliveries, attempts and envelopes (the hot
    /// window; also the window in which a repeated event id is dropped).
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub retention: Duration,
    /// PostgreSQL for long history (`postgres://user:pw@host/db` or a
    /// libpq string); empty: history lives in Redis only.
    pub postgres_url: String,
    /// How long PostgreSQL keeps history (whole days, dropped by partition).
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub long_retention: Duration,
    /// Apply the schema migrations at start-up (else run `hookd migrate`).
    pub migrate: bool,
    /// Backlog entries shipped per batch.
    pub ship_batch: usize,
    /// Most backlog entries each partition holds while PostgreSQL is away;
    /// past it the oldest unshipped records are dropped (alert on
    /// `hookd_history_ship_backlog`).
    pub ship_backlog: u64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// Serve the admin API at all.
    pub enabled: bool,
    pub bind: String,
    /// Requests per API key per `rate_window`, shared by every daemon.
    pub rate_limit: u32,
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub rate_window: Duration,
    pub max_body_bytes: usize,
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub request_timeout: Duration,
    /// Most endpoints per workspace (0: no limit); bounds an event's fan-out.
    pub max_endpoints_per_workspace: u32,
    /// How often the queue figures `/metrics` shows are read from Redis.
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub stats_interval: Duration,
    /// The event-type catalog: `[[admin.event_types]]` with name, description, schema.
    pub event_types: Vec<hookd_control::event_types::CatalogEntry>,
    /// New API keys are `<key_prefix>_<env>_<secret>`; keys made under an
    /// earlier prefix keep working.
    pub key_prefix: String,
    /// Most connections open at once (also held under a quarter of the
    /// process's open-file limit, so delivery keeps the rest).
    pub max_connections: usize,
    /// A request's head must arrive within this.
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub header_read_timeout: Duration,
    /// A connection with no bytes either way for this long is closed.
    #[serde(deserialize_with = "duration", serialize_with = "duration_text")]
    pub idle_timeout: Duration,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Telemetry {
    /// Where spans go over OTLP/HTTP (protobuf), e.g.
    /// `http://otel-collector:4318`. Empty: `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// and tracing is off when that is unset too.
    pub otlp_endpoint: String,
    /// The share of traces started here that are recorded (0 to 1); a
    /// producer's sampled trace is always continued. `OTEL_TRACES_SAMPLER_ARG` wins when set.
    pub sampling_ratio: f64,
    /// The spans' `service.name`. `OTEL_SERVICE_NAME` wins when set.
    pub service_name: String,
    /// How many endpoints get series of their own in
    /// `hookd_attempt_results_total` (the rest are counted as `_other`).
    pub endpoint_series: usize,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            sampling_ratio: 1.0,
            service_name: "hookd".into(),
            endpoint_series: 100,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter (`info`, `hookd=debug,info`); `RUST_LOG` wins when set.
    pub level: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list-valued key from the environment: a JSON array, or the items
    /// separated by commas, read alike; a broken array is an error that
    /// says both forms.
    #[test]
    fn lists_from_the_environment_take_both_forms() {
        let keys = |text: &str| {
            serde_json::from_value::<Secrets>(serde_json::json!({ "keys": text, "current": "a" }))
                .map(|s| s.keys)
                .map_err(|e| e.to_string())
        };
        let both = Ok(vec!["a:x".to_string(), "b:y".to_string()]);
        assert_eq!(keys(r#"["a:x", "b:y"]"#), both);
        assert_eq!(keys("a:x, b:y"), both);
        let broken = keys(r#"["a:x", 1]"#).unwrap_err();
        assert!(broken.contains("JSON array"), "{broken}");
    }
}
