//! The command line: `hookd serve` runs the daemon; the other commands manage
//! endpoints, publish events and read delivery history straight from Redis,
//! through the same use cases as the admin API (`hookd_control`). One file
//! per command group: [`endpoints`], [`events`] (publish, event types),
//! [`deliveries`] (history, redelivery, recovery jobs), [`keys`] (API keys,
//! secrets at rest), [`upkeep`] (audit log, migrations, repartitioning).

pub mod deliveries;
pub mod endpoints;
pub mod events;
pub mod keys;
pub mod upkeep;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hookd_core::time;
use hookd_store::Store;

use crate::settings::Config;

#[derive(Parser)]
#[command(
    name = "hookd",
    version,
    about = "Webhook delivery daemon: Redis stream in, signed HTTP deliveries out."
)]
pub struct Cli {
    /// Configuration file (default: config/default.toml when present). Every
    /// setting can be overridden by HOOKD__SECTION__KEY, e.g. HOOKD__REDIS__URL.
    #[arg(long, global = true, env = "HOOKD_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon: ingest the stream and deliver, until SIGTERM or SIGINT.
    Serve,
    /// Manage endpoints.
    #[command(subcommand)]
    Endpoints(endpoints::EndpointCommand),
    /// Publish an event to the stream (as a producer's XADD would).
    Publish(events::PublishArgs),
    /// Read delivery history.
    #[command(subcommand)]
    Deliveries(deliveries::DeliveryCommand),
    /// Manage admin API keys (straight in Redis, so the first key can be made
    /// before any key exists).
    #[command(subcommand)]
    Keys(keys::KeyCommand),
    /// Re-queue an endpoint's deliveries (failed ones by default) created in a
    /// window, one manual attempt each, and show progress until they are done.
    Recover(deliveries::RecoverArgs),
    /// Endpoint secrets at rest.
    #[command(subcommand)]
    Secrets(keys::SecretsCommand),
    /// Event types of a workspace: counts and last seen, from the stream.
    EventTypes {
        /// The workspace.
        #[arg(long)]
        workspace: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Recovery jobs: list them, or show one's progress.
    #[command(subcommand)]
    Jobs(deliveries::JobsCommand),
    /// A workspace's audit log, newest first: who changed what, when.
    Audit {
        /// The workspace.
        #[arg(long)]
        workspace: String,
        /// Entries per page (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: u16,
        /// The `next` cursor a previous page printed.
        #[arg(long)]
        before: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show a recovery job's progress (the same as `jobs show`).
    #[command(hide = true)]
    Job {
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Print the effective configuration (secrets redacted) and where each
    /// value came from: the file, an environment variable, or the built-in default.
    Config {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Change the partition count: move every workspace's state to its new
    /// partition and forward waiting events (stop every daemon first; see
    /// deploy/README.md, "Changing the partition count").
    Repartition(upkeep::RepartitionArgs),
    /// Create or migrate the PostgreSQL history schema (`[history] postgres_url`).
    Migrate(upkeep::MigrateArgs),
    /// Check the signature of one captured request; exit 0 when valid, 1 when not.
    Verify(crate::receive::VerifyArgs),
    /// Run a local receiver that prints each delivery (and can fail on purpose).
    Listen(crate::receive::ListenArgs),
}

/// A command on one record: its id, and `--json`.
#[derive(Args)]
pub struct One {
    /// The id (`ep_...`, `dlv_...`, `key_...`, `job_...`).
    pub id: String,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// A listing of one workspace's records, or of all: `--workspace`, `--json`.
#[derive(Args)]
pub struct Listing {
    /// Only this workspace's (default: every workspace).
    #[arg(long)]
    pub workspace: Option<String>,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Args)]
pub struct JsonFlag {
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The store, once Redis holds state for the configured partition count.
pub(crate) async fn connect(config: &Config) -> anyhow::Result<Store> {
    let store = connect_any(config).await?;
    store.check_partitions().await?;
    Ok(store)
}

pub(crate) async fn connect_any(config: &Config) -> anyhow::Result<Store> {
    Store::connect(config.store()).await.with_context(|| {
        format!(
            "cannot reach Redis at {} (set [redis] url or HOOKD__REDIS__URL)",
            config.redis_url_redacted()
        )
    })
}

/// Where the CLI reads history: Redis, and PostgreSQL when configured.
pub(crate) fn history_reader(
    config: &Config,
    store: &Store,
) -> hookd_history::merged::HistoryReader {
    hookd_history::merged::HistoryReader {
        store: store.clone(),
        archive: config.archive().map(hookd_history::Archive::new),
    }
}

/// A time given to `flag`: RFC 3339, Unix seconds, or a duration back from
/// now (`2h`), read exactly as the API reads `since` and `until`.
pub(crate) fn parse_when(flag: &str, value: &str, now: i64) -> anyhow::Result<i64> {
    time::parse_when(value, now, time::Direction::Ago)
        .map_err(|why| anyhow::anyhow!("{flag}: {why}"))
}

/// A time ahead given to `flag`: RFC 3339, Unix seconds, or a duration
/// from now (`90d`), as the API reads a key's `expires_at`.
pub(crate) fn parse_until(flag: &str, value: &str, now: i64) -> anyhow::Result<i64> {
    time::parse_when(value, now, time::Direction::Ahead)
        .map_err(|why| anyhow::anyhow!("{flag}: {why}"))
}

/// An action's refusal as the CLI says it: each field named by the flag
/// that sets it (`--url`, `--header X-Team`), not by the API's JSON Pointer.
pub(crate) fn refused(e: hookd_control::ActionError) -> anyhow::Error {
    match e {
        hookd_control::ActionError::Invalid(issues) => anyhow::anyhow!(
            "{}",
            issues
                .iter()
                .map(|(pointer, message)| format!("{}: {message}", flag_of(pointer)))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => other.into(),
    }
}

/// The flag that sets the request member `pointer` names.
fn flag_of(pointer: &str) -> String {
    let mut parts = pointer.trim_start_matches('/').splitn(2, '/');
    let field = parts.next().unwrap_or_default();
    let rest = parts.next();
    let flag = match field {
        "" => return "the input".into(),
        "path" => return "--workspace".into(),
        "fields" => "--field",
        "event_types" => "--event-type",
        "headers" => "--header",
        "metadata" => "--metadata",
        "expires_at" => "--expires",
        "grace_seconds" => "--grace",
        other => return format!("--{}", other.replace('_', "-")),
    };
    match rest {
        // A member of a map: name it (`--header X-Team`); an item of a list
        // is the flag's value.
        Some(name) if field != "event_types" => format!("{flag} {name}"),
        _ => flag.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::flag_of;

    #[test]
    fn a_field_is_named_by_its_flag() {
        assert_eq!(flag_of("/url"), "--url");
        assert_eq!(flag_of("/max_concurrency"), "--max-concurrency");
        assert_eq!(flag_of("/headers/X-Team"), "--header X-Team");
        assert_eq!(flag_of("/fields/type"), "--field type");
        assert_eq!(flag_of("/event_types/0"), "--event-type");
        assert_eq!(flag_of("/grace_seconds"), "--grace");
        assert_eq!(flag_of("/path/ws"), "--workspace");
    }
}
