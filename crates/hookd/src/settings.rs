//! Configuration: `config/default.toml` (or `--config FILE`) overlaid with
//! `HOOKD__SECTION__KEY` environment variables, turned into the typed
//! settings the libraries take. Only the binary reads configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use hookd_core::{EventLimits, RetryPolicy};
use hookd_delivery::{DaemonSettings, IngestSettings, ScheduleSettings, SenderSettings};
use hookd_store::StoreSettings;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The file `hookd` reads when `--config` is not given and it exists.
pub const DEFAULT_CONFIG: &str = "config/default.toml";

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
    sealer: Option<hookd_core::sealing::Sealer>,
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

impl Default for Secrets {
    fn default() -> Self {
        Config::default().secrets
    }
}

/// A list, or one comma-separated string (as environment variables give it).
fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Items(Vec<String>),
        Text(String),
    }
    let items = match List::deserialize(d)? {
        List::Items(items) => items,
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
    pub event_types: Vec<hookd_admin::CatalogEntry>,
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

impl Default for Config {
    fn default() -> Self {
        Self {
            redis: Redis {
                url: "redis://127.0.0.1:6379".into(),
                cluster: false,
                key_prefix: "hookd".into(),
            },
            ingest: Ingest {
                stream: "hookd:events".into(),
                group: "hookd".into(),
                partitions: 1,
                batch: 256,
                reclaim_idle: Duration::from_secs(30),
                max_payload_bytes: 256 * 1024,
                stream_retention: Duration::from_secs(86_400),
                dead_letter_max_len: 100_000,
                max_fields: 128,
                max_deliveries: 10,
                housekeeping_interval: Duration::from_secs(60),
            },
            delivery: Delivery {
                concurrency: 256,
                endpoint_concurrency: 32,
                max_endpoint_concurrency: 128,
                workspace_concurrency: 128,
                claim_batch: 128,
                poll_interval: Duration::from_millis(100),
                connect_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(15),
                response_excerpt_bytes: 4096,
                shutdown_grace: Duration::from_secs(10),
                allow_networks: Vec::new(),
                nameservers: Vec::new(),
                breaker_failures: 50,
                breaker_window: Duration::from_secs(3600),
                operational_stream: "hookd:operational".into(),
                workspace_weights: Default::default(),
            },
            retry: {
                let r = RetryPolicy::default();
                Retry {
                    initial_delay: r.initial_delay,
                    factor: r.factor,
                    max_delay: r.max_delay,
                    max_attempts: r.max_attempts,
                    max_age: r.max_age,
                    jitter: r.jitter,
                }
            },
            signing: Signing {
                header_prefix: "X-Hookd".into(),
                rotation_signatures: "all".into(),
            },
            history: History {
                retention: Duration::from_secs(7 * 86_400),
                postgres_url: String::new(),
                long_retention: Duration::from_secs(90 * 86_400),
                migrate: false,
                ship_batch: 200,
                ship_backlog: 1_000_000,
            },
            log: Log {
                format: "text".into(),
                level: "info".into(),
            },
            telemetry: Telemetry::default(),
            secrets: Secrets {
                keys: Vec::new(),
                current: String::new(),
            },
            sealer: None,
            file: None,
            admin: Admin {
                enabled: true,
                bind: "127.0.0.1:8080".into(),
                rate_limit: 1200,
                rate_window: Duration::from_secs(60),
                max_body_bytes: 1024 * 1024,
                request_timeout: Duration::from_secs(30),
                max_endpoints_per_workspace: 1000,
                stats_interval: Duration::from_secs(10),
                event_types: Vec::new(),
                key_prefix: hookd_core::api_key::DEFAULT_PREFIX.into(),
                max_connections: 512,
                header_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
            },
        }
    }
}

// Each section defaults to its part of `Config::default()`.
impl Default for Admin {
    fn default() -> Self {
        Config::default().admin
    }
}

impl Default for Redis {
    fn default() -> Self {
        Config::default().redis
    }
}
impl Default for Ingest {
    fn default() -> Self {
        Config::default().ingest
    }
}
impl Default for Delivery {
    fn default() -> Self {
        Config::default().delivery
    }
}
impl Default for Retry {
    fn default() -> Self {
        Config::default().retry
    }
}
impl Default for Signing {
    fn default() -> Self {
        Config::default().signing
    }
}
impl Default for History {
    fn default() -> Self {
        Config::default().history
    }
}
impl Default for Log {
    fn default() -> Self {
        Config::default().log
    }
}

impl Config {
    /// Reads `path` (or the default file when present) and the environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut builder = config::Config::builder();
        let file = match path {
            Some(path) => Some(path.to_path_buf()),
            None if Path::new(DEFAULT_CONFIG).exists() => Some(PathBuf::from(DEFAULT_CONFIG)),
            None => None,
        };
        if let Some(file) = &file {
            builder = builder.add_source(config::File::from(file.as_path()).required(true));
        }
        let built = builder
            .add_source(
                config::Environment::with_prefix("HOOKD")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .context("reading configuration")?;
        let mut config: Config = built.try_deserialize().context("invalid configuration")?;
        config.file = file;
        config.check()?;
        if !config.secrets.keys.is_empty() {
            let sealer =
                hookd_core::sealing::Sealer::new(&config.secrets.keys, &config.secrets.current)
                    .context("invalid [secrets]")?;
            config.sealer = Some(sealer);
        }
        Ok(config)
    }

    /// `[signing] rotation_signatures`, checked at load.
    pub fn rotation_signatures(&self) -> hookd_core::RotationSignatures {
        hookd_core::RotationSignatures::parse(&self.signing.rotation_signatures).unwrap_or_default()
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            hookd_core::api_key::is_valid_prefix(&self.admin.key_prefix),
            "[admin] key_prefix {:?} must be 1 to 32 lower-case letters and digits, starting with a letter",
            self.admin.key_prefix
        );
        anyhow::ensure!(
            hookd_core::RotationSignatures::parse(&self.signing.rotation_signatures).is_some(),
            "[signing] rotation_signatures must be \"all\" or \"newest\", not {:?}",
            self.signing.rotation_signatures
        );
        // A URL that does not parse is a configuration error, said as one
        // (not "cannot reach Redis" later).
        for url in self.redis.url.split(',').map(str::trim) {
            if let Err(e) = redis::Client::open(url) {
                anyhow::bail!(
                    "[redis] url {:?} is not a Redis URL ({}): write it like redis://{} (redis://[user:password@]host:port[/db])",
                    redact_url(url),
                    e.detail().unwrap_or("it does not parse"),
                    redact_url(url)
                        .rsplit("://")
                        .next()
                        .unwrap_or("127.0.0.1:6379")
                );
            }
        }
        anyhow::ensure!(
            self.ingest.partitions >= 1,
            "[ingest] partitions must be at least 1"
        );
        anyhow::ensure!(
            self.delivery.concurrency >= 1,
            "[delivery] concurrency must be at least 1"
        );
        anyhow::ensure!(
            self.delivery.endpoint_concurrency >= 1,
            "[delivery] endpoint_concurrency must be at least 1"
        );
        anyhow::ensure!(
            self.delivery.max_endpoint_concurrency >= self.delivery.endpoint_concurrency,
            "[delivery] max_endpoint_concurrency must be at least endpoint_concurrency"
        );
        // A delivery's records expire a retention after it was made; one still
        // being retried past that would vanish with its retries due.
        anyhow::ensure!(
            self.history.retention >= self.retry.max_age,
            "[history] retention ({}) is shorter than [retry] max_age ({}): deliveries still being retried would expire from Redis. Make retention at least max_age",
            humantime::format_duration(self.history.retention),
            humantime::format_duration(self.retry.max_age)
        );
        anyhow::ensure!(
            self.retry.max_attempts >= 1,
            "[retry] max_attempts must be at least 1"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.telemetry.sampling_ratio),
            "[telemetry] sampling_ratio must be between 0 and 1"
        );
        anyhow::ensure!(
            self.retry.factor >= 1.0,
            "[retry] factor must be at least 1.0"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.retry.jitter),
            "[retry] jitter must be between 0 and 1"
        );
        anyhow::ensure!(
            matches!(self.log.format.as_str(), "text" | "json"),
            "[log] format must be \"text\" or \"json\""
        );
        self.admin_bind()?;
        anyhow::ensure!(
            self.admin.rate_limit >= 1,
            "[admin] rate_limit must be at least 1"
        );
        anyhow::ensure!(
            self.admin.rate_window >= Duration::from_secs(1),
            "[admin] rate_window must be at least 1s"
        );
        for t in &self.admin.event_types {
            anyhow::ensure!(
                hookd_core::event::is_valid_event_type(&t.name),
                "[[admin.event_types]] name {:?} must match [a-z0-9_.-]{{1,128}}",
                t.name
            );
        }
        hookd_delivery::HeaderNames::new(&self.signing.header_prefix).map_err(|_| {
            anyhow::anyhow!(
                "[signing] header_prefix {:?} is not a valid header name",
                self.signing.header_prefix
            )
        })?;
        Ok(())
    }

    pub fn store(&self) -> StoreSettings {
        StoreSettings {
            url: self.redis.url.clone(),
            cluster: self.redis.cluster,
            stream: self.ingest.stream.clone(),
            key_prefix: self.redis.key_prefix.clone(),
            partitions: self.ingest.partitions,
            history_retention: self.history.retention,
            read_block: Duration::from_secs(1),
            operational_stream: self.delivery.operational_stream.clone(),
            sealer: self.sealer.clone(),
            max_endpoints_per_workspace: self.admin.max_endpoints_per_workspace,
            max_endpoint_concurrency: self.delivery.max_endpoint_concurrency,
            dead_letter_max_len: self.ingest.dead_letter_max_len,
            ship_backlog: if self.history.postgres_url.is_empty() {
                0
            } else {
                self.history.ship_backlog.max(1)
            },
        }
    }

    fn admin_bind(&self) -> anyhow::Result<std::net::SocketAddr> {
        self.admin.bind.parse().with_context(|| {
            format!(
                "[admin] bind {:?} must be an address like 127.0.0.1:8080",
                self.admin.bind
            )
        })
    }

    /// `[redis] url` fit for logs and error texts: any password replaced by `***`.
    /// The PostgreSQL history settings, when `[history] postgres_url` is set.
    pub fn archive(&self) -> Option<hookd_history::ArchiveSettings> {
        (!self.history.postgres_url.is_empty()).then(|| hookd_history::ArchiveSettings {
            url: self.history.postgres_url.clone(),
            long_retention: self.history.long_retention,
        })
    }

    pub fn redis_url_redacted(&self) -> String {
        redact_url(&self.redis.url)
    }

    pub fn network(&self) -> hookd_core::network::NetworkPolicy {
        hookd_core::network::NetworkPolicy {
            allow: self.delivery.allow_networks.clone(),
        }
    }

    /// What endpoints are held to, for the API and the CLI alike.
    pub fn endpoint_policy(&self) -> hookd_admin::actions::EndpointPolicy {
        hookd_admin::actions::EndpointPolicy {
            network: self.network(),
        }
    }

    /// How new API keys are made, for the API and the CLI alike.
    pub fn key_policy(&self) -> hookd_admin::actions::KeyPolicy {
        hookd_admin::actions::KeyPolicy {
            prefix: self.admin.key_prefix.clone(),
        }
    }

    pub fn admin(&self) -> anyhow::Result<hookd_admin::AdminSettings> {
        Ok(hookd_admin::AdminSettings {
            bind: self.admin_bind()?,
            rate_limit: self.admin.rate_limit,
            rate_window: self.admin.rate_window,
            max_body_bytes: self.admin.max_body_bytes,
            request_timeout: self.admin.request_timeout,
            catalog: self.admin.event_types.clone(),
            group: self.ingest.group.clone(),
            event_limits: self.limits(),
            endpoint_policy: self.endpoint_policy(),
            key_policy: self.key_policy(),
            // The ingest loop turns at least once per read block (1 s) while Redis answers.
            ready_within: Duration::from_secs(15),
            stats_interval: self.admin.stats_interval,
            header_prefix: self.signing.header_prefix.clone(),
            listener: hookd_admin::listener::ListenerSettings {
                max_connections: self.admin.max_connections,
                header_read_timeout: self.admin.header_read_timeout,
                idle_timeout: self.admin.idle_timeout,
            },
        })
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            initial_delay: self.retry.initial_delay,
            factor: self.retry.factor,
            max_delay: self.retry.max_delay,
            max_attempts: self.retry.max_attempts,
            max_age: self.retry.max_age,
            jitter: self.retry.jitter,
        }
    }

    pub fn limits(&self) -> EventLimits {
        EventLimits {
            max_payload_bytes: self.ingest.max_payload_bytes,
            max_fields: self.ingest.max_fields,
        }
    }

    pub fn daemon(&self, consumer: String) -> DaemonSettings {
        let d = &self.delivery;
        DaemonSettings {
            ingest: IngestSettings {
                group: self.ingest.group.clone(),
                consumer,
                batch: self.ingest.batch,
                reclaim_idle: self.ingest.reclaim_idle,
                max_deliveries: self.ingest.max_deliveries.max(1),
                limits: self.limits(),
            },
            schedule: ScheduleSettings {
                concurrency: d.concurrency,
                claim_batch: d.claim_batch,
                poll_interval: d.poll_interval,
                lease: hookd_delivery::attempt::lease_for(d.request_timeout),
                shutdown_grace: d.shutdown_grace,
                limits: hookd_store::schedule::ConcurrencyLimits {
                    endpoint_default: d.endpoint_concurrency,
                    endpoint_max: d.max_endpoint_concurrency,
                    workspace: d.workspace_concurrency,
                },
                breaker: hookd_store::schedule::Breaker {
                    trip_after: d.breaker_failures,
                    trip_window: d.breaker_window,
                },
                weights: d.workspace_weights.clone(),
            },
            sender: SenderSettings {
                connect_timeout: d.connect_timeout,
                request_timeout: d.request_timeout,
                response_excerpt_bytes: d.response_excerpt_bytes,
                network: self.network(),
                nameservers: d.nameservers.clone(),
                ..SenderSettings::default()
            },
            retry: self.retry_policy(),
            header_prefix: self.signing.header_prefix.clone(),
            rotation_signatures: self.rotation_signatures(),
            stream_retention: self.ingest.stream_retention,
            housekeeping_interval: self.ingest.housekeeping_interval,
        }
    }
}

/// One effective setting, for `hookd config`.
#[derive(Debug, Serialize)]
pub struct Setting {
    /// `section.key`.
    pub key: String,
    /// The value, secrets redacted.
    pub value: serde_json::Value,
    /// `file <path>`, `env HOOKD__SECTION__KEY` or `default`.
    pub source: String,
}

impl Config {
    /// Every setting with its effective value (secrets redacted) and source.
    pub fn describe(&self) -> anyhow::Result<Vec<Setting>> {
        let file = match &self.file {
            Some(path) => Some(
                config::Config::builder()
                    .add_source(config::File::from(path.as_path()))
                    .build()
                    .context("reading configuration")?,
            ),
            None => None,
        };
        let serde_json::Value::Object(sections) = serde_json::to_value(self)? else {
            anyhow::bail!("the configuration did not serialise to an object");
        };
        let mut out = Vec::new();
        for (section, keys) in sections {
            let serde_json::Value::Object(keys) = keys else {
                continue;
            };
            for (key, value) in keys {
                let name = format!("{section}.{key}");
                let env = format!("HOOKD__{}__{}", section.to_uppercase(), key.to_uppercase());
                let source = if std::env::var_os(&env).is_some() {
                    format!("env {env}")
                } else if file
                    .as_ref()
                    .is_some_and(|f| f.get::<config::Value>(&name).is_ok())
                {
                    format!(
                        "file {}",
                        self.file.as_deref().unwrap_or(Path::new("")).display()
                    )
                } else {
                    "default".to_string()
                };
                out.push(Setting {
                    value: redacted(&name, value),
                    key: name,
                    source,
                });
            }
        }
        Ok(out)
    }
}

fn redacted(name: &str, value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (name, value) {
        ("redis.url", Value::String(url)) => Value::String(redact_url(&url)),
        // A libpq `key=value` string may hold `password=`: shown only as set.
        ("history.postgres_url", Value::String(url)) if !url.contains("://") && !url.is_empty() => {
            Value::String("***".into())
        }
        ("history.postgres_url", Value::String(url)) => Value::String(redact_url(&url)),
        ("secrets.keys", Value::Array(keys)) => Value::Array(
            keys.into_iter()
                .map(|k| {
                    let id = k.as_str().and_then(|k| k.split_once(':')).map(|(id, _)| id);
                    Value::String(format!("{}:***", id.unwrap_or("?")))
                })
                .collect(),
        ),
        (_, value) => value,
    }
}

/// A URL (or comma-separated URLs) with each password replaced by `***`:
/// `redis://user:pw@host:6379` -> `redis://user:***@host:6379`.
pub fn redact_url(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let Some((scheme, rest)) = url.split_once("://") else {
                // Not a URL: say nothing of what it holds but its shape.
                return if url.contains('@') {
                    "***".to_string()
                } else {
                    url.to_string()
                };
            };
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                None => url.to_string(),
                Some(at) => {
                    let user = rest[..at].split(':').next().unwrap_or_default();
                    let user = if rest[..at].contains(':') {
                        format!("{user}:***")
                    } else {
                        "***".to_string()
                    };
                    format!("{scheme}://{user}@{}", &rest[at + 1..])
                }
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod redaction_tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_a_log() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("redis://:s3cret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact_url("rediss://app:s3cret@host/0"),
            "rediss://app:***@host/0"
        );
        assert_eq!(redact_url("redis://s3cret@host"), "redis://***@host");
        assert_eq!(
            redact_url("redis://a:p1@h1:7000,redis://b:p2@h2:7000"),
            "redis://a:***@h1:7000,redis://b:***@h2:7000"
        );
        assert!(!redact_url("user:s3cret@host").contains("s3cret"));
    }
}
