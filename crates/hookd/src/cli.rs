//! The command line: `hookd serve` runs the daemon; the other commands manage
//! endpoints, publish events and read delivery history straight from Redis.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use hookd_core::{DeliveryStatus, Endpoint, Event, Scope, SignatureScheme, id, time};
use hookd_store::Store;
use hookd_store::audit::Actor;
use hookd_store::history::{Cursor, DeliveryFilter};
use hookd_store::stream::Publication;

use hookd_admin::actions::{
    self, ActionError, EndpointChange, MapChange, NewEndpoint, NewKey, Recovery,
};
use hookd_core::RotationSignatures;

use crate::output;
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
    Endpoints(EndpointCommand),
    /// Publish an event to the stream (as a producer's XADD would).
    Publish(PublishArgs),
    /// Read delivery history.
    #[command(subcommand)]
    Deliveries(DeliveryCommand),
    /// Manage admin API keys (straight in Redis, so the first key can be made
    /// before any key exists).
    #[command(subcommand)]
    Keys(KeyCommand),
    /// Re-queue an endpoint's deliveries (failed ones by default) created in a
    /// window, one manual attempt each, and show progress until they are done.
    Recover(RecoverArgs),
    /// Endpoint secrets at rest.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Event types of a workspace: counts and last seen, from the stream.
    EventTypes {
        #[arg(long)]
        workspace: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Recovery jobs: list them, or show one's progress.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// A workspace's audit log, newest first: who changed what, when.
    Audit {
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
    Repartition(RepartitionArgs),
    /// Create or migrate the PostgreSQL history schema (`[history] postgres_url`).
    Migrate(MigrateArgs),
    /// Check the signature of one captured request; exit 0 when valid, 1 when not.
    Verify(crate::receive::VerifyArgs),
    /// Run a local receiver that prints each delivery (and can fail on purpose).
    Listen(crate::receive::ListenArgs),
}

#[derive(Args)]
pub struct JsonFlag {
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum EndpointCommand {
    /// Register an endpoint; prints its id and signing secret.
    Create {
        #[arg(long)]
        workspace: String,
        /// Receiver URL (http or https).
        #[arg(long)]
        url: String,
        /// Deliver only these event types (repeatable); all types when absent.
        #[arg(long = "event-type")]
        event_types: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        /// Extra request header, `Name: value` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// Your own label, `key=value` (repeatable), as the API's `metadata`.
        #[arg(long = "metadata")]
        metadata: Vec<String>,
        /// Most attempts in flight at once to this endpoint, across all daemons
        /// (default: [delivery] endpoint_concurrency).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        max_concurrency: Option<u32>,
        /// Most attempts per second to this endpoint, across all daemons (default: no limit).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        rate_limit: Option<u32>,
        /// How deliveries are signed: `sha256` (X-Hookd-Signature, the default)
        /// or `standard-webhooks` (webhook-signature, whsec_ secret).
        #[arg(long, default_value = "sha256", value_parser = ["sha256", "standard-webhooks"])]
        scheme: String,
        /// During a rotation's grace window: `all` (one signature per valid
        /// secret) or `newest` (one); default: [signing] rotation_signatures.
        #[arg(long, value_parser = ["all", "newest"])]
        rotation_signatures: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List endpoints (of one workspace, or all).
    List {
        #[arg(long)]
        workspace: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show one endpoint (without its secrets).
    Show {
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Print the secrets an endpoint signs with now: the current one, and
    /// earlier ones still in a rotation's grace window.
    Secret {
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Pause: deliveries are held, not attempted, until resume.
    Pause {
        id: String,
        #[arg(long, default_value = "paused by operator")]
        reason: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Resume: held deliveries go out.
    Resume {
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Rotate the signing secret: prints the new one. During the grace window
    /// deliveries carry both signatures (new first), so receivers can switch
    /// at their own pace; `--grace 0` switches at once.
    RotateSecret {
        id: String,
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Change an endpoint's settings; flags not given stay as they are.
    Update {
        id: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Deliver only these event types (repeatable); replaces the list.
        #[arg(long = "event-type", conflicts_with = "all_types")]
        event_types: Vec<String>,
        /// Deliver every event type.
        #[arg(long)]
        all_types: bool,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        max_concurrency: Option<u32>,
        /// Attempts per second; 0 removes the limit.
        #[arg(long)]
        rate_limit: Option<u32>,
        /// Set a request header, `Name: value`; `Name:` with no value removes
        /// it (repeatable; other headers stay).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// Set a metadata label, `key=value`; `key=` removes it (repeatable).
        #[arg(long = "metadata")]
        metadata: Vec<String>,
        /// `all`, `newest`, or `default` to follow [signing] rotation_signatures.
        #[arg(long, value_parser = ["all", "newest", "default"])]
        rotation_signatures: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Delete: pending deliveries fail; history stays until retention.
    Delete {
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Make a key; prints it once (only its hash is stored).
    Create {
        #[arg(long)]
        workspace: String,
        /// read, write or admin (each includes the ones before it).
        #[arg(long, value_parser = ["read", "write", "admin"])]
        scope: String,
        #[arg(long)]
        name: Option<String>,
        /// The <env> in <prefix>_<env>_<secret>.
        #[arg(long, default_value = "live", value_parser = ["live", "stg", "dev", "test"])]
        env: String,
        /// The key stops working then: RFC 3339, or a duration from now (`90d`).
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List keys (of one workspace, or all), revoked ones included.
    List {
        #[arg(long)]
        workspace: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Revoke a key by id: it gets 401 from now on.
    Revoke {
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
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

#[derive(Args)]
pub struct RecoverArgs {
    #[arg(long)]
    endpoint: String,
    /// Start of the window: a duration back from now (`2h`, `30m`) or an RFC 3339 time.
    #[arg(long)]
    since: String,
    /// End of the window (same forms); default now.
    #[arg(long)]
    until: Option<String>,
    /// Which deliveries to re-queue.
    #[arg(long, default_value = "failed", value_parser = ["pending", "held", "retrying", "succeeded", "failed"])]
    status: String,
    /// Start the job and return without waiting for its attempts.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Args)]
pub struct PublishArgs {
    #[arg(long)]
    workspace: String,
    /// Event type, e.g. card.created.
    #[arg(long = "type")]
    event_type: String,
    /// The payload, a JSON value.
    #[arg(long)]
    data: String,
    /// Event id (idempotency key within the workspace); assigned when absent.
    #[arg(long)]
    id: Option<String>,
    /// Extra envelope member, a string: `name=value` (repeatable).
    #[arg(long = "field")]
    fields: Vec<String>,
    /// Extra envelope member with a JSON value: `name=<json>` (repeatable;
    /// on the stream as the field `json:<name>`).
    #[arg(long = "json-field")]
    json_fields: Vec<String>,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Recovery jobs still within the history retention, newest first.
    List {
        #[arg(long)]
        workspace: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// One job's progress.
    Show {
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Subcommand)]
pub enum DeliveryCommand {
    /// List deliveries, newest first.
    List {
        #[arg(long)]
        workspace: Option<String>,
        #[arg(long)]
        endpoint: Option<String>,
        /// pending, held, retrying, succeeded or failed.
        #[arg(long)]
        status: Option<String>,
        /// Only deliveries of this event type.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Only deliveries of this event id.
        #[arg(long)]
        event_id: Option<String>,
        /// Created at or after: RFC 3339, unix ms, or a duration ago (`2h`).
        #[arg(long)]
        since: Option<String>,
        /// Created at or before: RFC 3339, unix ms, or a duration ago.
        #[arg(long)]
        until: Option<String>,
        /// 1 to 500, as the API's `limit`.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=500))]
        limit: u16,
        /// Continue after this cursor (printed as `next` by the previous
        /// page), or only deliveries created before a time (RFC 3339 or unix seconds).
        #[arg(long)]
        before: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show a delivery and every attempt.
    Show {
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Make a fresh attempt now (recorded as manual in the delivery's history).
    Redeliver {
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

/// The store, once Redis holds state for the configured partition count.
async fn connect(config: &Config) -> anyhow::Result<Store> {
    let store = connect_any(config).await?;
    store.check_partitions().await?;
    Ok(store)
}

async fn connect_any(config: &Config) -> anyhow::Result<Store> {
    Store::connect(config.store()).await.with_context(|| {
        format!(
            "cannot reach Redis at {} (set [redis] url or HOOKD__REDIS__URL)",
            config.redis_url_redacted()
        )
    })
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

pub async fn endpoints(config: &Config, cmd: EndpointCommand) -> anyhow::Result<()> {
    let store = connect(config).await?;
    let now = time::now_ms();
    match cmd {
        EndpointCommand::Create {
            workspace,
            url,
            event_types,
            description,
            headers,
            metadata,
            max_concurrency,
            rate_limit,
            scheme,
            rotation_signatures,
            out,
        } => {
            let scheme = SignatureScheme::parse(&scheme).with_context(|| {
                format!("--scheme {scheme:?} must be sha256 or standard-webhooks")
            })?;
            let ep = actions::create_endpoint(
                &store,
                &Actor::cli(),
                &config.endpoint_policy(),
                NewEndpoint {
                    workspace,
                    url,
                    description,
                    event_types: (!event_types.is_empty()).then_some(event_types),
                    headers: header_pairs(&headers)?.into_iter().collect(),
                    metadata: metadata_pairs(&metadata)?.into_iter().collect(),
                    max_concurrency,
                    rate_limit,
                    scheme,
                    rotation_signatures: rotation_signatures
                        .as_deref()
                        .and_then(RotationSignatures::parse),
                },
            )
            .await?;
            output::endpoint_with_secret(&ep, out.json)
        }
        EndpointCommand::List { workspace, out } => {
            let mut list = Vec::new();
            for ep in store.endpoints(workspace.as_deref()).await? {
                let held = held(&store, &ep).await?;
                list.push((ep, held));
            }
            output::endpoints(&list, out.json)
        }
        EndpointCommand::Show { id, out } => {
            let ep = store.endpoint_view(&id).await?;
            output::endpoint(&ep, held(&store, &ep).await?, out.json)
        }
        EndpointCommand::Secret { id, out } => {
            output::secrets(&store.endpoint(&id).await?, out.json)
        }
        EndpointCommand::Pause { id, reason, out } => {
            let ep = actions::pause(&store, &Actor::cli(), &id, &reason).await?;
            output::endpoint(&ep, held(&store, &ep).await?, out.json)
        }
        EndpointCommand::Resume { id, out } => {
            let (released, ep) = actions::resume(&store, &Actor::cli(), &id).await?;
            output::resumed(&ep, released, out.json)
        }
        EndpointCommand::RotateSecret { id, grace, out } => {
            let ep = actions::rotate_secret(&store, &Actor::cli(), &id, grace)
                .await
                .map_err(|e| match e {
                    // Named as the flag, not as the API's field.
                    ActionError::Invalid(_) if grace > actions::MAX_GRACE => anyhow::anyhow!(
                        "--grace: must be at most 30 days (2592000 s), as the API's grace_seconds"
                    ),
                    e => e.into(),
                })?;
            output::endpoint_with_secret(&ep, out.json)
        }
        EndpointCommand::Update {
            id,
            url,
            description,
            event_types,
            all_types,
            max_concurrency,
            rate_limit,
            headers,
            metadata,
            rotation_signatures,
            out,
        } => {
            let merge = |pairs: Vec<(String, String)>| {
                MapChange::Merge(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k, (!v.is_empty()).then_some(v)))
                        .collect(),
                )
            };
            let headers = header_pairs(&headers)?;
            let metadata = metadata_pairs(&metadata)?;
            let change = EndpointChange {
                url,
                description: description.map(Some),
                event_types: if all_types {
                    Some(None)
                } else {
                    (!event_types.is_empty()).then_some(Some(event_types))
                },
                headers: (!headers.is_empty()).then(|| merge(headers)),
                metadata: (!metadata.is_empty()).then(|| merge(metadata)),
                max_concurrency: max_concurrency.map(Some),
                rate_limit: rate_limit.map(|r| (r > 0).then_some(r)),
                rotation_signatures: rotation_signatures
                    .as_deref()
                    .map(RotationSignatures::parse),
            };
            let ep = actions::update_endpoint(
                &store,
                &Actor::cli(),
                &config.endpoint_policy(),
                &id,
                &change,
            )
            .await?;
            output::endpoint(&ep, held(&store, &ep).await?, out.json)
        }
        EndpointCommand::Delete { id, out } => {
            let deleted = store.delete_endpoint(&id, now).await?;
            store
                .audit(
                    &deleted.workspace,
                    &Actor::cli(),
                    "endpoint.deleted",
                    &id,
                    None,
                )
                .await;
            output::deleted(&deleted, out.json)
        }
    }
}

/// How many deliveries a paused endpoint holds (0 when it is not paused), as the API shows.
async fn held(store: &Store, ep: &Endpoint) -> anyhow::Result<u64> {
    Ok(if ep.paused {
        store.held_count(ep).await?
    } else {
        0
    })
}

/// `Name: value` flags; a name with nothing after the colon has an empty value.
fn header_pairs(flags: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    flags
        .iter()
        .map(|h| {
            let (k, v) = h
                .split_once(':')
                .with_context(|| format!("--header {h:?} must be `Name: value`"))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// `key=value` flags.
fn metadata_pairs(flags: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    flags
        .iter()
        .map(|m| {
            let (k, v) = m
                .split_once('=')
                .with_context(|| format!("--metadata {m:?} must be `key=value`"))?;
            Ok((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

pub async fn publish(config: &Config, args: PublishArgs) -> anyhow::Result<()> {
    let id = args.id.unwrap_or_else(|| id::new_id("evt_"));
    let mut fields = vec![
        ("type".to_string(), args.event_type),
        ("workspace".to_string(), args.workspace.clone()),
        ("data".to_string(), args.data),
        ("id".to_string(), id.clone()),
    ];
    for f in &args.fields {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("--field {f:?} must be `name=value`"))?;
        // As the API: a reserved name has its own flag.
        if hookd_core::event::RESERVED_FIELDS.contains(&k)
            || k.starts_with(hookd_core::event::JSON_PREFIX)
        {
            bail!(
                "--field {k}: is a reserved member; use --type, --workspace, --data or --id (or --json-field)"
            );
        }
        fields.push((k.to_string(), v.to_string()));
    }
    for f in &args.json_fields {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("--json-field {f:?} must be `name=<json>`"))?;
        fields.push((
            format!("{}{k}", hookd_core::event::JSON_PREFIX),
            v.to_string(),
        ));
    }
    // Refuse here what ingest would dead-letter, with the same reason.
    Event::from_fields(&fields, config.limits(), time::now_ms())
        .map_err(|r| anyhow::anyhow!("{}: {}", r.code, r.message))?;
    let store = connect(config).await?;
    let (entry, repeat) = match store.publish(&args.workspace, &id, &fields).await? {
        Publication::New { entry_id } => (entry_id, false),
        Publication::Repeat {
            same: Some(false),
            entry_id,
        } => bail!(
            "conflict: event {id} was published before (entry {entry_id}) with a different body; publish a changed event under a new id"
        ),
        Publication::Repeat { entry_id, .. } => (entry_id, true),
    };
    output::object(
        args.out.json,
        &[
            ("event_id", id.into()),
            ("entry_id", entry.into()),
            ("repeat", repeat.into()),
        ],
    )
}

/// Where the CLI reads history: Redis, and PostgreSQL when configured.
fn history_reader(config: &Config, store: &Store) -> hookd_history::merged::HistoryReader {
    hookd_history::merged::HistoryReader {
        store: store.clone(),
        archive: config.archive().map(hookd_history::Archive::new),
    }
}

pub async fn deliveries(config: &Config, cmd: DeliveryCommand) -> anyhow::Result<()> {
    let store = connect(config).await?;
    let history = history_reader(config, &store);
    match cmd {
        DeliveryCommand::List {
            workspace,
            endpoint,
            status,
            event_type,
            event_id,
            since,
            until,
            limit,
            before,
            out,
        } => {
            // As the API: an endpoint that does not exist (or is another
            // workspace's) is an error, not an empty page.
            if let Some(id) = &endpoint {
                let ep = store.endpoint_view(id).await?;
                if workspace.as_ref().is_some_and(|ws| *ws != ep.workspace) {
                    bail!("endpoint {id} not found in workspace {}", ep.workspace);
                }
            }
            let now = time::now_ms();
            let since_ms = since.map(|v| parse_when("--since", &v, now)).transpose()?;
            let until_ms = until.map(|v| parse_when("--until", &v, now)).transpose()?;
            let before = match before {
                None => None,
                Some(c) => Some(Cursor::parse_before(&c).with_context(|| {
                    format!("--before {c:?} is not a cursor printed by an earlier page, an RFC 3339 time or unix seconds")
                })?),
            };
            let status = match status {
                None => None,
                Some(s) => Some(DeliveryStatus::parse(&s).with_context(|| {
                    format!(
                        "--status {s:?} must be one of pending, held, retrying, succeeded, failed"
                    )
                })?),
            };
            let list = history
                .deliveries(&DeliveryFilter {
                    workspace,
                    endpoint,
                    status,
                    event_type,
                    event_id,
                    since_ms,
                    until_ms,
                    before,
                    limit: usize::from(limit),
                })
                .await?;
            output::deliveries(&list.deliveries, list.next.as_ref(), out.json)
        }
        DeliveryCommand::Show { id, out } => {
            output::delivery(&history.delivery(&id).await?, out.json)
        }
        DeliveryCommand::Redeliver { id, out } => {
            let d = history.delivery(&id).await?;
            if !history.redeliver(&d.workspace, &id, time::now_ms()).await? {
                bail!(
                    "delivery {id} cannot be attempted now: an attempt is in flight, or its endpoint was deleted"
                );
            }
            store
                .audit(
                    &d.workspace,
                    &Actor::cli(),
                    "delivery.redelivered",
                    &id,
                    None,
                )
                .await;
            output::delivery(&store.delivery(&id).await?, out.json)
        }
    }
}

/// A time ahead: RFC 3339, unix ms, or a duration from now (`90d`).
fn parse_until(flag: &str, value: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(d) = humantime::parse_duration(value) {
        return Ok(now + d.as_millis() as i64);
    }
    value
        .parse::<i64>()
        .ok()
        .or_else(|| time::parse_rfc3339_ms(value))
        .with_context(|| {
            format!("{flag} {value:?}: expected RFC 3339, unix ms, or a duration like 90d")
        })
}

pub async fn keys(config: &Config, cmd: KeyCommand) -> anyhow::Result<()> {
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
            let (key, text) = actions::mint_key(
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
            .await?;
            if !out.json {
                eprintln!("Store this key now: it is not shown again.");
            }
            output::api_key(&key, Some(&text), out.json)
        }
        KeyCommand::List { workspace, out } => {
            output::api_keys(&store.api_keys(workspace.as_deref()).await?, out.json)
        }
        KeyCommand::Revoke { id, out } => output::api_key(
            &actions::revoke_key(&store, &Actor::cli(), &id, None).await?,
            None,
            out.json,
        ),
    }
}

/// `2h` back from now, or an RFC 3339 time.
fn parse_when(flag: &str, value: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(d) = humantime::parse_duration(value) {
        return Ok(now - d.as_millis() as i64);
    }
    time::parse_rfc3339_ms(value).with_context(|| {
        format!("{flag} {value:?} must be a duration back from now (2h) or an RFC 3339 time")
    })
}

pub async fn recover(config: &Config, args: RecoverArgs) -> anyhow::Result<()> {
    let store = connect(config).await?;
    let now = time::now_ms();
    let since = parse_when("--since", &args.since, now)?;
    let until = args
        .until
        .as_deref()
        .map(|u| parse_when("--until", u, now))
        .transpose()?;
    let status = DeliveryStatus::parse(&args.status).context("--status")?;
    let endpoint = store.endpoint_view(&args.endpoint).await?;
    let history = history_reader(config, &store);
    let job = actions::start_recovery(
        &history,
        &Actor::cli(),
        Recovery {
            endpoint,
            since_ms: since,
            until_ms: until,
            status,
        },
    )
    .await?;
    // The id first, so an interrupted wait loses nothing: the job goes on.
    eprintln!(
        "recovery job {} started (`hookd jobs show {}` follows it)",
        job.id, job.id
    );
    let mut progress = output::Progress::new();
    loop {
        let job = store.job(&job.id).await?;
        let finished = job.scanned && (args.no_wait || job.done >= job.queued);
        if !args.out.json {
            progress.show(&job);
        }
        if finished {
            progress.finish();
            return output::job(&job, args.out.json);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

pub async fn event_types(config: &Config, workspace: &str, json: bool) -> anyhow::Result<()> {
    let store = connect(config).await?;
    let list =
        hookd_admin::event_types::catalog_and_seen(&store, &config.admin.event_types, workspace)
            .await?;
    output::event_types(&list, json)
}

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

pub async fn jobs(config: &Config, cmd: JobsCommand) -> anyhow::Result<()> {
    match cmd {
        JobsCommand::List { workspace, out } => {
            let store = connect(config).await?;
            output::jobs(&store.jobs(workspace.as_deref()).await?, out.json)
        }
        JobsCommand::Show { id, out } => job(config, &id, out.json).await,
    }
}

pub async fn job(config: &Config, id: &str, json: bool) -> anyhow::Result<()> {
    let store = connect(config).await?;
    output::job(&store.job(id).await?, json)
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
