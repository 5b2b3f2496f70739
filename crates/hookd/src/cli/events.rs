//! `hookd publish` (an event onto the stream, as a producer's XADD would)
//! and `hookd event-types`.

use anyhow::Context;
use clap::Args;
use hookd_control::event_types;
use hookd_control::events::{self, Member, NewEvent};

use super::{JsonFlag, connect, refused};
use crate::output;
use crate::settings::Config;

#[derive(Args)]
pub struct PublishArgs {
    /// The workspace the event belongs to.
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
    /// Events with the same key reach endpoints with `--ordering key` in
    /// publish order (up to 256 bytes; never payload).
    #[arg(long)]
    ordering_key: Option<String>,
    #[command(flatten)]
    out: JsonFlag,
}

pub async fn publish(config: &Config, args: PublishArgs) -> anyhow::Result<()> {
    let split = |flag: &str, f: &String| {
        f.split_once('=')
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .with_context(|| format!("{flag} {f:?} must be `name=value`"))
    };
    let mut members = Vec::new();
    for f in &args.fields {
        let (k, v) = split("--field", f)?;
        members.push((k, Member::Text(v)));
    }
    for f in &args.json_fields {
        let (k, v) = split("--json-field", f)?;
        members.push((k, Member::Json(v)));
    }
    let new = NewEvent {
        workspace: args.workspace,
        id: args.id,
        event_type: args.event_type,
        data: args.data,
        members,
        ordering_key: args.ordering_key,
        ..NewEvent::default()
    };
    let store = connect(config).await?;
    let published = events::publish(&store, config.limits(), new)
        .await
        .map_err(refused)?;
    output::object(
        args.out.json,
        &[
            ("event_id", published.event_id.into()),
            ("entry_id", published.entry_id.into()),
            ("repeat", published.repeat.into()),
        ],
    )
}

pub async fn event_types(config: &Config, workspace: &str, json: bool) -> anyhow::Result<()> {
    let store = connect(config).await?;
    let list = event_types::list(&store, &config.admin.event_types, workspace).await?;
    output::event_types(&list, json)
}
