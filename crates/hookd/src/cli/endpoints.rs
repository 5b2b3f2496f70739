//! `hookd endpoints`: create, list, show, update, pause, resume, rotate a
//! secret, print secrets, send a test event, delete.

use anyhow::Context;
use clap::Subcommand;
use hookd_control::endpoints::{self, EndpointChange, EndpointView, MapChange, NewEndpoint};
use hookd_control::probes::{self, TestEvent};
use hookd_core::endpoint::{OnGiveUp, Ordering};
use hookd_core::{Endpoint, RotationSignatures, SignatureScheme};
use hookd_store::Store;
use hookd_store::audit::Actor;

use super::{JsonFlag, Listing, One, connect, refused};
use crate::output;
use crate::settings::Config;

#[derive(Subcommand)]
pub enum EndpointCommand {
    /// Register an endpoint; prints its id and signing secret.
    Create {
        /// The workspace whose events it receives.
        #[arg(long)]
        workspace: String,
        /// Receiver URL (http or https).
        #[arg(long)]
        url: String,
        /// Deliver only these event types (repeatable); all types when absent.
        #[arg(long = "event-type")]
        event_types: Vec<String>,
        /// A name for people, shown in place of the id.
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
        /// `key`: events of one ordering key arrive one at a time, in publish
        /// order; `none` (default): in parallel.
        #[arg(long, value_parser = ["none", "key"])]
        ordering: Option<String>,
        /// With `--ordering key`: `continue` (default: a given-up delivery is
        /// failed and its key goes on) or `hold` (the key waits until it is
        /// redelivered or skipped).
        #[arg(long, value_parser = ["continue", "hold"])]
        ordering_on_give_up: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List endpoints (of one workspace, or all).
    List(Listing),
    /// Show one endpoint (without its secrets).
    Show(One),
    /// Print the secrets an endpoint signs with now: the current one, and
    /// earlier ones still in a rotation's grace window.
    Secret(One),
    /// Pause: deliveries are held, not attempted, until resume.
    Pause {
        /// The endpoint's id.
        id: String,
        /// Why (shown on the endpoint and in the audit log).
        #[arg(long, default_value = "paused by operator")]
        reason: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Resume: held deliveries go out.
    Resume(One),
    /// Rotate the signing secret: prints the new one. During the grace window
    /// deliveries carry both signatures (new first), so receivers can switch
    /// at their own pace; `--grace 0` switches at once.
    RotateSecret {
        /// The endpoint's id.
        id: String,
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Change an endpoint's settings; flags not given stay as they are.
    Update {
        /// The endpoint's id.
        id: String,
        /// A new receiver URL (http or https).
        #[arg(long)]
        url: Option<String>,
        /// A new name for people.
        #[arg(long)]
        description: Option<String>,
        /// Deliver only these event types (repeatable); replaces the list.
        #[arg(long = "event-type", conflicts_with = "all_types")]
        event_types: Vec<String>,
        /// Deliver every event type.
        #[arg(long)]
        all_types: bool,
        /// Most attempts in flight at once, across all daemons.
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
        /// `key`: events of one ordering key arrive one at a time, in publish
        /// order; `none` (default): in parallel.
        #[arg(long, value_parser = ["none", "key"])]
        ordering: Option<String>,
        /// With `--ordering key`: `continue` (default: a given-up delivery is
        /// failed and its key goes on) or `hold` (the key waits until it is
        /// redelivered or skipped).
        #[arg(long, value_parser = ["continue", "hold"])]
        ordering_on_give_up: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Delete: pending deliveries fail; history stays until retention.
    Delete(One),
    /// Send a test event now, signed as a delivery is (paused or not), and
    /// print the request and the response; nothing is kept as a delivery.
    Test {
        /// The endpoint's id.
        id: String,
        /// The event's type (the endpoint need not subscribe to it).
        #[arg(long = "type", default_value = "hookd.test")]
        event_type: String,
        /// The event's `data`, JSON (default `{"test":true}`).
        #[arg(long)]
        data: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
}

pub async fn run(config: &Config, cmd: EndpointCommand) -> anyhow::Result<()> {
    let store = connect(config).await?;
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
            ordering,
            ordering_on_give_up,
            out,
        } => {
            let scheme = SignatureScheme::parse(&scheme).with_context(|| {
                format!("--scheme {scheme:?} must be sha256 or standard-webhooks")
            })?;
            let ep = endpoints::create(
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
                    ordering: ordering
                        .as_deref()
                        .and_then(Ordering::parse)
                        .unwrap_or_default(),
                    ordering_on_give_up: ordering_on_give_up
                        .as_deref()
                        .and_then(OnGiveUp::parse)
                        .unwrap_or_default(),
                },
            )
            .await
            .map_err(refused)?;
            output::endpoint(&view(&store, ep, true).await?, out.json)
        }
        EndpointCommand::List(Listing { workspace, out }) => {
            let mut list = Vec::new();
            for ep in store.endpoints(workspace.as_deref()).await? {
                list.push(view(&store, ep, false).await?);
            }
            output::endpoints(&list, out.json)
        }
        EndpointCommand::Show(One { id, out }) => {
            let ep = store.endpoint_view(&id).await?;
            output::endpoint(&view(&store, ep, false).await?, out.json)
        }
        EndpointCommand::Secret(One { id, out }) => output::secrets(
            &store.endpoint(&id).await?,
            config.rotation_signatures(),
            out.json,
        ),
        EndpointCommand::Pause { id, reason, out } => {
            let ep = endpoints::pause(&store, &Actor::cli(), &id, &reason)
                .await
                .map_err(refused)?;
            output::endpoint(&view(&store, ep, false).await?, out.json)
        }
        EndpointCommand::Resume(One { id, out }) => {
            let (released, ep) = endpoints::resume(&store, &Actor::cli(), &id)
                .await
                .map_err(refused)?;
            output::resumed(&view(&store, ep, false).await?, released, out.json)
        }
        EndpointCommand::RotateSecret { id, grace, out } => {
            let ep = endpoints::rotate_secret(&store, &Actor::cli(), &id, grace)
                .await
                .map_err(refused)?;
            output::endpoint(&view(&store, ep, true).await?, out.json)
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
            ordering,
            ordering_on_give_up,
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
                ordering: ordering.as_deref().and_then(Ordering::parse),
                ordering_on_give_up: ordering_on_give_up.as_deref().and_then(OnGiveUp::parse),
            };
            let ep = endpoints::update(
                &store,
                &Actor::cli(),
                &config.endpoint_policy(),
                &id,
                &change,
            )
            .await
            .map_err(refused)?;
            output::endpoint(&view(&store, ep, false).await?, out.json)
        }
        EndpointCommand::Test {
            id,
            event_type,
            data,
            out,
        } => {
            let ep = store.endpoint(&id).await?;
            let result = probes::send(
                &store,
                &config.prober()?,
                config.limits(),
                &Actor::cli(),
                &ep,
                TestEvent { event_type, data },
            )
            .await
            .map_err(refused)?;
            output::test_result(&result, out.json)
        }
        EndpointCommand::Delete(One { id, out }) => {
            let deleted = endpoints::delete(&store, &Actor::cli(), &id)
                .await
                .map_err(refused)?;
            output::deleted(&view(&store, deleted, false).await?, out.json)
        }
    }
}

/// The API's view of `ep` (held and waiting counts included; header values
/// shown: the CLI holds the Redis credentials anyway).
async fn view(store: &Store, ep: Endpoint, with_secret: bool) -> anyhow::Result<EndpointView> {
    endpoints::view(store, ep, with_secret, true)
        .await
        .map_err(refused)
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
