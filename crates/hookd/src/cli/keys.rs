//! `hookd keys` (API keys, made straight in Redis so the first can be made
//! before any exists) and `hookd secrets` (endpoint secrets at rest).

use anyhow::Context;
use clap::Subcommand;
use hookd_control::keys::{self, NewKey};
use hookd_core::{Scope, time};
use hookd_store::audit::Actor;

use super::{JsonFlag, Listing, One, connect, parse_until, refused};
use crate::output;
use crate::settings::Config;

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Make a key; prints it once (only its hash is stored).
    Create {
        /// The workspace the key may act on.
        #[arg(long)]
        workspace: String,
        /// read, write or admin (each includes the ones before it).
        #[arg(long, value_parser = ["read", "write", "admin"])]
        scope: String,
        /// A name to recognise the key by (shown in lists and the audit log).
        #[arg(long)]
        name: Option<String>,
        /// The <env> in <prefix>_<env>_<secret>.
        #[arg(long, default_value = "live", value_parser = ["live", "stg", "dev", "test"])]
        env: String,
        /// The key stops working then: an RFC 3339 time, Unix seconds, or a
        /// duration from now (`90d`).
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List keys (of one workspace, or all), revoked ones included.
    List(Listing),
    /// Revoke a key by id: it gets 401 from now on.
    Revoke(One),
}

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Re-seal every endpoint's secrets under [secrets] current (after adding
    /// a new key and making it current; then the old key can be removed).
    Reencrypt {
        #[command(flatten)]
        out: JsonFlag,
    },
}

pub async fn run(config: &Config, cmd: KeyCommand) -> anyhow::Result<()> {
    let store = connect(config).await?;
    match cmd {
        KeyCommand::Create {
            workspace,
            scope,
            name,
            env,
            expires,
            out,
        } => {
            let scope = Scope::parse(&scope).context("--scope must be read, write or admin")?;
            let now = time::now_ms();
            let expires_at_ms = expires
                .as_deref()
                .map(|e| parse_until("--expires", e, now))
                .transpose()?;
            let (key, text) = keys::mint(
                &store,
                &Actor::cli(),
                &config.key_policy(),
                NewKey {
                    workspace,
                    scope,
                    env,
                    name,
                    expires_at_ms,
                },
            )
            .await
            .map_err(refused)?;
            if !out.json {
                eprintln!("Store this key now: it is not shown again.");
            }
            output::api_key(&key, Some(&text), out.json)
        }
        KeyCommand::List(Listing { workspace, out }) => {
            output::api_keys(&store.api_keys(workspace.as_deref()).await?, out.json)
        }
        KeyCommand::Revoke(One { id, out }) => output::api_key(
            &keys::revoke(&store, &Actor::cli(), &id, None)
                .await
                .map_err(refused)?,
            None,
            out.json,
        ),
    }
}

pub async fn secrets(config: &Config, cmd: SecretsCommand) -> anyhow::Result<()> {
    let store = connect(config).await?;
    match cmd {
        SecretsCommand::Reencrypt { out } => {
            anyhow::ensure!(
                !config.secrets.keys.is_empty(),
                "no [secrets] keys configured (HOOKD__SECRETS__KEYS, HOOKD__SECRETS__CURRENT)"
            );
            let (total, resealed) = store.reseal_endpoints().await?;
            output::object(
                out.json,
                &[
                    ("endpoints", total.into()),
                    ("resealed", resealed.into()),
                    ("key", config.secrets.current.clone().into()),
                ],
            )
        }
    }
}
