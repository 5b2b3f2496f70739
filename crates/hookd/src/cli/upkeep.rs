//! Upkeep of the store: `hookd audit` (who changed what), `hookd migrate`
//! (the PostgreSQL history schema) and `hookd repartition`.

use anyhow::{Context, bail};
use clap::Args;

use super::{JsonFlag, connect, connect_any};
use crate::output;
use crate::settings::Config;

/// `hookd audit`: a page of a workspace's audit log.
pub async fn audit(
    config: &Config,
    workspace: &str,
    limit: u16,
    before: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=500).contains(&limit),
        "--limit must be between 1 and 500"
    );
    if let Some(b) = before {
        anyhow::ensure!(
            hookd_core::delivery::entry_time_ms(b).is_some(),
            "--before {b:?} is not a cursor printed by an earlier page"
        );
    }
    let store = connect(config).await?;
    let (entries, next) = store
        .audit_page(workspace, before, usize::from(limit))
        .await?;
    output::audit(entries, next, json)
}

#[derive(Args)]
pub struct MigrateArgs {
    /// Stop after this schema version (default: the newest).
    #[arg(long)]
    pub to: Option<i32>,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `hookd migrate`: creates or migrates the PostgreSQL history schema.
pub async fn migrate(config: &Config, args: MigrateArgs) -> anyhow::Result<()> {
    let Some(settings) = config.archive() else {
        bail!(
            "no [history] postgres_url (HOOKD__HISTORY__POSTGRES_URL) is set: history lives in Redis only"
        );
    };
    let archive = hookd_history::Archive::new(settings);
    let mut client = archive
        .dedicated()
        .await
        .context("cannot reach PostgreSQL at [history] postgres_url")?;
    let applied = hookd_history::migrate::migrate(&mut client, args.to).await?;
    let version = hookd_history::migrate::current_version(&client).await?;
    output::object(
        args.out.json,
        &[
            ("applied", serde_json::json!(applied)),
            ("version", serde_json::json!(version)),
            (
                "latest",
                serde_json::json!(hookd_history::migrate::latest()),
            ),
        ],
    )
}

#[derive(Args)]
pub struct RepartitionArgs {
    /// The new partition count.
    #[arg(long)]
    pub to: u32,
    /// Move state even though a consumer read the streams in the last
    /// seconds (only when you know every daemon is stopped).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `hookd repartition --to M`: see `hookd_store::repartition`. State moves
/// only with every daemon stopped; a run that only forwards from retired
/// streams (the count is already M) may run beside them.
pub async fn repartition(config: &Config, args: RepartitionArgs) -> anyhow::Result<()> {
    if args.to == 0 {
        anyhow::bail!("--to must be 1 or more");
    }
    let store = connect_any(config).await?;
    let group = &config.ingest.group;
    let moving = store
        .stored_partitions()
        .await?
        .unwrap_or(store.keys().partitions())
        != args.to;
    if moving && !args.force {
        // A running daemon reads every second or so (`[redis] read_block`).
        let quiet = (config.store().read_block * 3).max(std::time::Duration::from_secs(3));
        let deadline = std::time::Instant::now() + quiet + std::time::Duration::from_secs(10);
        loop {
            let active = store.active_consumers(group, args.to, quiet).await?;
            if active.is_empty() {
                break;
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!(
                    "daemons are still reading the streams ({}); stop every daemon first, \
                     or pass --force if you know they are stopped",
                    active.join(", ")
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
    let report = store.repartition(args.to, group).await?;
    output::repartition(&report, args.out.json)
}
