//! The typed settings each library takes, made from the configuration.

use std::time::Duration;

use hookd_core::{EventLimits, RetryPolicy};
use hookd_delivery::{DaemonSettings, IngestSettings, ScheduleSettings, SenderSettings};
use hookd_store::StoreSettings;

use super::{Config, redact_url};

/// Longest a blocking stream read waits for new entries: short enough that
/// a daemon notices shutdown, a repartition or a new partition within a
/// second, long enough that an idle daemon costs Redis one call a second.
pub const READ_BLOCK: Duration = Duration::from_secs(1);

/// `/readyz` fails when the ingest loop has not reported for this long. The
/// loop turns at least once per [`READ_BLOCK`] while Redis answers; fifteen
/// of them leave room for a slow Redis or a long batch without a false alarm.
pub const READY_WITHIN: Duration = Duration::from_secs(15);

impl Config {
    pub fn store(&self) -> StoreSettings {
        StoreSettings {
            url: self.redis.url.clone(),
            cluster: self.redis.cluster,
            stream: self.ingest.stream.clone(),
            key_prefix: self.redis.key_prefix.clone(),
            partitions: self.ingest.partitions,
            history_retention: self.history.retention,
            read_block: READ_BLOCK,
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

    /// The PostgreSQL history settings, when `[history] postgres_url` is set.
    pub fn archive(&self) -> Option<hookd_history::ArchiveSettings> {
        (!self.history.postgres_url.is_empty()).then(|| hookd_history::ArchiveSettings {
            url: self.history.postgres_url.clone(),
            long_retention: self.history.long_retention,
        })
    }

    /// `[redis] url` fit for logs and error texts: any password replaced by `***`.
    pub fn redis_url_redacted(&self) -> String {
        redact_url(&self.redis.url)
    }

    pub fn network(&self) -> hookd_core::network::NetworkPolicy {
        hookd_core::network::NetworkPolicy {
            allow: self.delivery.allow_networks.clone(),
        }
    }

    /// What endpoints are held to, for the API and the CLI alike.
    pub fn endpoint_policy(&self) -> hookd_control::endpoints::EndpointPolicy {
        hookd_control::endpoints::EndpointPolicy {
            network: self.network(),
        }
    }

    /// How new API keys are made, for the API and the CLI alike.
    pub fn key_policy(&self) -> hookd_control::keys::KeyPolicy {
        hookd_control::keys::KeyPolicy {
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
            ready_within: READY_WITHIN,
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

    /// How deliveries (and test events) are sent.
    fn sender(&self) -> SenderSettings {
        let d = &self.delivery;
        SenderSettings {
            connect_timeout: d.connect_timeout,
            request_timeout: d.request_timeout,
            response_excerpt_bytes: d.response_excerpt_bytes,
            network: self.network(),
            nameservers: d.nameservers.clone(),
        }
    }

    /// What sends the admin API's test events: a client of its own, under
    /// the same settings and network policy as deliveries.
    pub fn prober(&self) -> anyhow::Result<hookd_control::probes::Prober> {
        let names = hookd_delivery::HeaderNames::new(&self.signing.header_prefix)
            .map_err(|_| anyhow::anyhow!("[signing] header_prefix is not a valid header name"))?;
        Ok(hookd_control::probes::Prober::new(
            self.sender(),
            names,
            self.rotation_signatures(),
        )?)
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
            sender: self.sender(),
            retry: self.retry_policy(),
            header_prefix: self.signing.header_prefix.clone(),
            rotation_signatures: self.rotation_signatures(),
            stream_retention: self.ingest.stream_retention,
            housekeeping_interval: self.ingest.housekeeping_interval,
        }
    }
}
