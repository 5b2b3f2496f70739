//! Configuration: `config/default.toml` (or `--config FILE`) overlaid with
//! `HOOKD__SECTION__KEY` environment variables, turned into the typed
//! settings the libraries take. Only the binary reads configuration.
//!
//! - [`schema`]: the sections and keys, as serde reads them;
//! - [`defaults`]: the built-in value of every key (the one source: the
//!   libraries' settings have no defaults of their own);
//! - here: loading and validation;
//! - [`convert`]: the typed settings of each library;
//! - [`describe`]: `hookd config`, each value with its source, redacted.

pub mod convert;
pub mod defaults;
pub mod describe;
pub mod schema;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

pub use describe::{Setting, redact_url};
pub use schema::*;

/// The file `hookd` reads when `--config` is not given and it exists.
pub const DEFAULT_CONFIG: &str = "config/default.toml";

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

    pub(crate) fn admin_bind(&self) -> anyhow::Result<std::net::SocketAddr> {
        self.admin.bind.parse().with_context(|| {
            format!(
                "[admin] bind {:?} must be an address like 127.0.0.1:8080",
                self.admin.bind
            )
        })
    }
}
