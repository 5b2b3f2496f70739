//! `hookd deliveries` (list, show, redeliver), `hookd recover` (a bulk
//! recovery job, followed to its end) and `hookd jobs`.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hookd_control::deliveries;
use hookd_control::recovery::{self, Recovery};
use hookd_core::{DeliveryStatus, time};
use hookd_store::audit::Actor;
use hookd_store::history::{Cursor, DeliveryFilter};

use super::{JsonFlag, Listing, One, connect, history_reader, parse_when, refused};
use crate::output;
use crate::settings::Config;

#[derive(Subcommand)]
pub enum DeliveryCommand {
    /// List deliveries, newest first.
    List {
        /// Only this workspace's deliveries.
        #[arg(long)]
        workspace: Option<String>,
        /// Only deliveries to this endpoint (its id).
        #[arg(long)]
        endpoint: Option<String>,
        /// pending, held, retrying, succeeded, failed or waiting.
        #[arg(long)]
        status: Option<String>,
        /// Only deliveries of this event type.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Only deliveries of this event id.
        #[arg(long)]
        event_id: Option<String>,
        /// Created at or after: an RFC 3339 time, Unix seconds, or a duration
        /// ago (`2h`, `30m`, `7d`), as the API's `since`.
        #[arg(long)]
        since: Option<String>,
        /// Created at or before, in the same forms, as the API's `until`.
        #[arg(long)]
        until: Option<String>,
        /// 1 to 500, as the API's `limit`.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=500))]
        limit: u16,
        /// Continue after this cursor (printed as `next` by the previous
        /// page), or only deliveries created before a time (the forms of `--since`).
        #[arg(long)]
        before: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show a delivery and every attempt.
    Show(One),
    /// Make a fresh attempt now (recorded as manual in the delivery's history).
    Redeliver(One),
    /// Take a delivery out of its ordered key: it ends failed (`skipped`),
    /// unsent, and the key's next delivery goes (for a key held by a
    /// given-up delivery under `--ordering-on-give-up hold`).
    Skip(One),
}

#[derive(Args)]
pub struct RecoverArgs {
    /// The endpoint whose deliveries are queued again (its id).
    #[arg(long)]
    endpoint: String,
    /// Start of the window: an RFC 3339 time, Unix seconds, or a duration
    /// ago (`2h`, `30m`, `7d`).
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

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Recovery jobs still within the history retention, newest first.
    List(Listing),
    /// One job's progress.
    Show(One),
}

pub async fn run(config: &Config, cmd: DeliveryCommand) -> anyhow::Result<()> {
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
                Some(c) => Some(
                    Cursor::parse_before(&c, now)
                        .map_err(|why| anyhow::anyhow!("--before: {why}"))?,
                ),
            };
            let status = match status {
                None => None,
                Some(s) => Some(DeliveryStatus::parse(&s).with_context(|| {
                    format!(
                        "--status {s:?} must be one of pending, held, retrying, succeeded, failed, waiting"
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
        DeliveryCommand::Show(One { id, out }) => {
            output::delivery(&history.delivery(&id).await?, out.json)
        }
        DeliveryCommand::Redeliver(One { id, out }) => {
            let d = history.delivery(&id).await?;
            deliveries::redeliver(&history, &Actor::cli(), &d.workspace, &id)
                .await
                .map_err(refused)?;
            output::delivery(&store.delivery(&id).await?, out.json)
        }
        DeliveryCommand::Skip(One { id, out }) => {
            let d = history.delivery(&id).await?;
            deliveries::skip(&store, &Actor::cli(), &d.workspace, &id)
                .await
                .map_err(refused)?;
            output::delivery(&store.delivery(&id).await?, out.json)
        }
    }
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
    let job = recovery::start(
        &history,
        &Actor::cli(),
        Recovery {
            endpoint,
            since_ms: Some(since),
            until_ms: until,
            status,
            only: None,
        },
    )
    .await
    .map_err(refused)?;
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

pub async fn jobs(config: &Config, cmd: JobsCommand) -> anyhow::Result<()> {
    match cmd {
        JobsCommand::List(Listing { workspace, out }) => {
            let store = connect(config).await?;
            output::jobs(&store.jobs(workspace.as_deref()).await?, out.json)
        }
        JobsCommand::Show(One { id, out }) => job(config, &id, out.json).await,
    }
}

pub async fn job(config: &Config, id: &str, json: bool) -> anyhow::Result<()> {
    let store = connect(config).await?;
    output::job(&store.job(id).await?, json)
}
