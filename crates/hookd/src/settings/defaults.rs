//! The built-in value of every configuration key, written once: here, or
//! in hookd-core where the core's own type carries it (`RetryPolicy`,
//! `EventLimits`). The libraries' settings have no defaults of their own.
//! `config/default.toml` writes the same values but for the keys the README
//! names (a test holds them together); each section defaults to its part of
//! `Config::default()`.

use std::time::Duration;

use hookd_core::{EventLimits, RetryPolicy};

use super::schema::*;

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
                max_payload_bytes: EventLimits::default().max_payload_bytes,
                stream_retention: Duration::from_secs(86_400),
                dead_letter_max_len: 100_000,
                max_fields: EventLimits::default().max_fields,
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

impl Default for Secrets {
    fn default() -> Self {
        Config::default().secrets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys where `config/default.toml` (what `make run` uses) differs
    /// from the built-in defaults, as docs/operations.md ("Configuration") says.
    const DOCUMENTED: &[&str] = &["delivery.allow_networks", "secrets.keys", "secrets.current"];

    #[test]
    fn the_documented_file_is_the_built_in_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/default.toml");
        let from_file: Config = config::Config::builder()
            .add_source(config::File::from(std::path::Path::new(path)))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("config/default.toml reads");
        let (serde_json::Value::Object(file), serde_json::Value::Object(built_in)) = (
            serde_json::to_value(&from_file).expect("serialises"),
            serde_json::to_value(Config::default()).expect("serialises"),
        ) else {
            panic!("the configuration is not an object");
        };
        let mut differ = Vec::new();
        for (section, keys) in &built_in {
            for (key, value) in keys.as_object().expect("a section is a table") {
                if file[section][key] != *value {
                    differ.push(format!(
                        "{section}.{key}: file {} built-in {value}",
                        file[section][key]
                    ));
                }
            }
        }
        let undocumented: Vec<_> = differ
            .iter()
            .filter(|d| !DOCUMENTED.iter().any(|k| d.starts_with(&format!("{k}:"))))
            .collect();
        assert!(undocumented.is_empty(), "{undocumented:#?}");
    }
}
