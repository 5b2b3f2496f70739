//! How the CLI prints records: aligned text for people, one JSON object with `--json`.

use hookd_control::deliveries::{DeliveryPage, DeliveryView};
use hookd_control::endpoints::EndpointView;
use hookd_control::keys::KeyView;
use hookd_control::recovery::JobView;
use hookd_core::{Delivery, Endpoint, time};
use serde_json::{Value, json};
use std::io::Write;

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

/// An endpoint, as the API shows it (its secret only when the view carries
/// one: create and rotate).
pub fn endpoint(ep: &EndpointView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&serde_json::to_value(ep)?);
    }
    print_endpoint(ep);
    Ok(())
}

/// A resumed endpoint and how many held deliveries it released (the API's `Resumed`).
pub fn resumed(ep: &EndpointView, released: u64, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&json!({ "released": released, "endpoint": ep }));
    }
    print_endpoint(ep);
    println!("released:    {released} held deliveries");
    Ok(())
}

/// A deleted endpoint (the API answers 204 without a body; the CLI shows what went).
pub fn deleted(ep: &EndpointView, json: bool) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(ep)?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("deleted".into(), true.into());
        }
        return print_json(&v);
    }
    print_endpoint(ep);
    println!("deleted:     yes");
    Ok(())
}

/// The secrets an endpoint signs with now: current, then those in a
/// rotation's grace window (`endpoints secret ID`, asked for explicitly).
pub fn secrets(
    ep: &Endpoint,
    default: hookd_core::RotationSignatures,
    json: bool,
) -> anyhow::Result<()> {
    let now = time::now_ms();
    let rotation = ep.rotation_signatures.unwrap_or(default);
    // Under `newest` an old secret is kept for its grace but signs nothing:
    // a receiver still on it fails until it has the new one.
    let signing = ep.signing_secrets(now, default);
    let previous: Vec<_> = ep
        .previous_secrets
        .iter()
        .filter(|p| p.expires_at_ms > now)
        .map(|p| (p, signing.contains(&p.secret.as_str())))
        .collect();
    if json {
        let previous: Vec<Value> = previous
            .iter()
            .map(|(p, signs)| {
                json!({
                    "secret": p.secret,
                    "expires_at": time::format_rfc3339_ms(p.expires_at_ms),
                    "signing": signs,
                })
            })
            .collect();
        return print_json(&json!({
            "id": ep.id,
            "secret": ep.secret,
            "rotation_signatures": rotation.as_str(),
            "previous_secrets": previous,
        }));
    }
    println!("secret:      {}", ep.secret);
    for (p, signs) in previous {
        let until = time::format_rfc3339_ms(p.expires_at_ms);
        if signs {
            println!("old secret:  {} (signs until {until})", p.secret);
        } else {
            println!(
                "old secret:  {} (kept until {until}, not signing: rotation_signatures = {})",
                p.secret,
                rotation.as_str()
            );
        }
    }
    Ok(())
}

fn print_endpoint(ep: &EndpointView) {
    println!("id:          {}", ep.id);
    println!("workspace:   {}", ep.workspace);
    println!("url:         {}", ep.url);
    if let Some(secret) = &ep.secret {
        println!("secret:      {secret}");
    } else if let Some(until) = &ep.previous_secret_expires_at {
        println!(
            "rotation:    earlier secrets still sign until {until} (`hookd endpoints secret {}`)",
            ep.id
        );
    }
    if ep.scheme == hookd_core::SignatureScheme::StandardWebhooks {
        println!("scheme:      standard-webhooks");
    }
    match &ep.event_types {
        None => println!("event types: all"),
        Some(t) => println!("event types: {}", t.join(", ")),
    }
    if let Some(d) = &ep.description {
        println!("description: {d}");
    }
    for (k, v) in &ep.headers {
        println!("header:      {k}: {v}");
    }
    if let Some(n) = ep.max_concurrency {
        println!("concurrency: at most {n} in flight");
    }
    if ep.paused {
        println!(
            "paused:      since {} ({})",
            ep.paused_at.as_deref().unwrap_or_default(),
            ep.paused_reason.as_deref().unwrap_or("no reason given")
        );
    } else {
        println!("paused:      no");
    }
    if let Some(f) = &ep.failing {
        println!(
            "failing:     {} in a row since {}: {}",
            f.consecutive_failures, f.since, f.last_error
        );
    }
    if let Some(n) = ep.rate_limit {
        println!("rate limit:  {n} attempts/s");
    }
    for (k, v) in &ep.metadata {
        println!("metadata:    {k} = {v}");
    }
    if ep.held > 0 {
        println!("held:        {} deliveries", ep.held);
    }
    if ep.waiting.deliveries > 0 {
        println!(
            "waiting:     {} in its lane, the oldest since {}",
            ep.waiting.deliveries,
            ep.waiting.oldest.as_deref().unwrap_or_default()
        );
    }
    println!("created:     {}", ep.created_at);
}

/// Endpoints, as the API lists them (`{"data": [...]}`).
pub fn endpoints(list: &[EndpointView], json: bool) -> anyhow::Result<()> {
    if json {
        // The API's page shape; the CLI lists every endpoint at once.
        return print_json(&json!({ "data": list, "next": null }));
    }
    let rows = list.iter().map(|ep| {
        vec![
            ep.id.clone(),
            ep.workspace.clone(),
            ep.description.clone().unwrap_or_else(|| "-".into()),
            (if ep.paused { "yes" } else { "no" }).into(),
            ep.url.clone(),
        ]
    });
    table(&["ID", "WORKSPACE", "NAME", "PAUSED", "URL"], rows);
    println!("{}", count(list.len(), "endpoint", "endpoints"));
    Ok(())
}

/// A test event's request and response.
pub fn test_result(r: &hookd_control::probes::TestResult, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&serde_json::to_value(r)?);
    }
    match (&r.response, &r.error) {
        (Some(resp), _) if r.succeeded => {
            println!("succeeded:   {} in {} ms", resp.status_code, r.duration_ms)
        }
        (_, Some(e)) => println!("failed:      {e} (after {} ms)", r.duration_ms),
        _ => println!("failed:      no answer"),
    }
    println!("\n> POST {}", r.request.url);
    for h in &r.request.headers {
        println!("> {}: {}", h.name, h.value);
    }
    println!("{}", serde_json::to_string_pretty(&r.request.body)?);
    if let Some(resp) = &r.response {
        println!("\n< {}", resp.status_code);
        for h in &resp.headers {
            println!("< {}: {}", h.name, h.value);
        }
        if let Some(body) = &resp.body_excerpt {
            println!("{body}");
        }
    }
    Ok(())
}

pub fn object(json: bool, members: &[(&str, Value)]) -> anyhow::Result<()> {
    if json {
        let obj: serde_json::Map<String, Value> = members
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect();
        return print_json(&Value::Object(obj));
    }
    for (k, v) in members {
        println!(
            "{k}: {}",
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        );
    }
    Ok(())
}

pub fn repartition(r: &hookd_store::repartition::Report, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&serde_json::to_value(r)?);
    }
    println!(
        "partitions: {} -> {}\nworkspaces moved: {}\nkeys moved: {}\nenvelopes copied: {}\nentries forwarded: {}",
        r.from, r.to, r.workspaces_moved, r.keys_moved, r.envelopes_copied, r.entries_forwarded
    );
    if !r.retired_streams.is_empty() {
        println!(
            "retired streams (no daemon reads them; run this again after every producer uses {} partition(s)): {}",
            r.to,
            r.retired_streams.join(", ")
        );
    }
    Ok(())
}

/// A page of an audit log: the API's JSON, or one line per entry.
pub fn audit(
    entries: Vec<hookd_store::audit::AuditEntry>,
    next: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    use hookd_control::audit::{AuditPage, AuditView};
    let data: Vec<AuditView> = entries.into_iter().map(AuditView::from).collect();
    if json {
        return print_json(&serde_json::to_value(AuditPage { data, next })?);
    }
    let rows = data.iter().map(|e| {
        let actor = match &e.actor_name {
            Some(name) => format!("{} ({name})", e.actor),
            None => e.actor.clone(),
        };
        vec![
            e.at.clone(),
            actor,
            e.action.clone(),
            e.target.clone(),
            e.detail.clone().unwrap_or_default(),
        ]
    });
    table(&["AT", "ACTOR", "ACTION", "TARGET", "DETAIL"], rows);
    println!("{}", count(data.len(), "entry", "entries"));
    if let Some(next) = next {
        println!("more: --before {next}");
    }
    Ok(())
}

pub fn deliveries(
    list: &[Delivery],
    next: Option<&hookd_store::history::Cursor>,
    json: bool,
) -> anyhow::Result<()> {
    let next = next.map(ToString::to_string);
    if json {
        let data: Vec<DeliveryView> = list
            .iter()
            .map(|d| DeliveryView::new(d.clone(), false))
            .collect();
        return print_json(&serde_json::to_value(DeliveryPage { data, next })?);
    }
    let rows = list.iter().map(|d| {
        vec![
            d.id.clone(),
            d.endpoint_id.clone(),
            d.event_type.clone(),
            d.status.as_str().into(),
            last_result(d),
            d.attempts_made.to_string(),
            time::format_rfc3339_ms(d.created_at_ms),
        ]
    });
    table(
        &[
            "ID",
            "ENDPOINT",
            "EVENT TYPE",
            "STATUS",
            "LAST RESULT",
            "ATTEMPTS",
            "CREATED",
        ],
        rows,
    );
    println!("{}", count(list.len(), "delivery", "deliveries"));
    if let Some(next) = next {
        println!("more: --before {next}");
    }
    Ok(())
}

/// How a delivery's last attempt ended: its status code, or the error kind.
fn last_result(d: &Delivery) -> String {
    match d.attempts.last() {
        Some(a) => match (a.status_code, a.error_kind) {
            (Some(code), _) => code.to_string(),
            (None, Some(kind)) => kind.as_str().to_string(),
            (None, None) => "-".into(),
        },
        None => "-".into(),
    }
}

pub fn delivery(d: &Delivery, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&serde_json::to_value(DeliveryView::new(d.clone(), true))?);
    }
    println!("id:         {}", d.id);
    println!("endpoint:   {}", d.endpoint_id);
    println!("event:      {} ({})", d.event_id, d.event_type);
    println!("workspace:  {}", d.workspace);
    match &d.waiting_for {
        Some(head) => println!(
            "status:     {} (behind {head}, its key's head)",
            d.status.as_str()
        ),
        None => println!("status:     {}", d.status.as_str()),
    }
    if let Some(key) = &d.ordering_key {
        match d.sequence {
            Some(n) => println!("key:        {key} (sequence {n})"),
            None => println!("key:        {key}"),
        }
    }
    println!("created:    {}", time::format_rfc3339_ms(d.created_at_ms));
    if let Some(next) = d.next_attempt_at_ms {
        println!("next:       {}", time::format_rfc3339_ms(next));
    }
    println!("attempts:   {}", d.attempts.len());
    for a in &d.attempts {
        let result = match (a.succeeded, a.status_code, a.error_kind) {
            (true, Some(code), _) => format!("ok {code}"),
            (_, Some(code), _) => format!("status {code}"),
            (_, None, Some(kind)) => format!("{kind:?}").to_lowercase(),
            _ => "failed".into(),
        };
        println!(
            "  #{:<3} {}  {:>6} ms  {:<12} {}{}",
            a.number,
            time::format_rfc3339_ms(a.started_at_ms),
            a.duration_ms,
            result,
            a.error
                .as_deref()
                .filter(|_| a.status_code.is_none())
                .unwrap_or(""),
            a.response_excerpt
                .as_deref()
                .map(|r| format!("  body: {}", r.chars().take(200).collect::<String>()))
                .unwrap_or_default()
        );
    }
    Ok(())
}

pub fn api_key(key: &hookd_core::ApiKey, text: Option<&str>, json: bool) -> anyhow::Result<()> {
    if json {
        let view = KeyView::new(key.clone(), text.map(str::to_string));
        return print_json(&serde_json::to_value(view)?);
    }
    if let Some(text) = text {
        println!("key:        {text}");
    }
    println!("id:         {}", key.id);
    println!("workspace:  {}", key.workspace);
    println!("scope:      {}", key.scope.as_str());
    if let Some(at) = key.revoked_at_ms {
        println!("revoked:    {}", time::format_rfc3339_ms(at));
    }
    if let Some(at) = key.expires_at_ms {
        println!("expires:    {}", time::format_rfc3339_ms(at));
    }
    Ok(())
}

pub fn api_keys(keys: &[hookd_core::ApiKey], json: bool) -> anyhow::Result<()> {
    if json {
        let data: Vec<KeyView> = keys.iter().map(|k| KeyView::new(k.clone(), None)).collect();
        return print_json(&json!({ "data": data }));
    }
    let now = time::now_ms();
    let at = |t: Option<i64>| t.map_or("-".to_string(), time::format_rfc3339_ms);
    let rows = keys.iter().map(|k| {
        let state = if k.revoked_at_ms.is_some() {
            "revoked"
        } else if k.expires_at_ms.is_some_and(|t| t <= now) {
            "expired"
        } else {
            "active"
        };
        vec![
            k.id.clone(),
            k.workspace.clone(),
            k.name.clone().unwrap_or_else(|| "-".into()),
            k.scope.as_str().into(),
            k.prefix.clone(),
            at(k.last_used_at_ms),
            at(k.expires_at_ms),
            state.into(),
        ]
    });
    table(
        &[
            "ID",
            "WORKSPACE",
            "NAME",
            "SCOPE",
            "PREFIX",
            "LAST USED",
            "EXPIRES",
            "STATE",
        ],
        rows,
    );
    println!("{}", count(keys.len(), "key", "keys"));
    Ok(())
}

/// A recovery job's progress on stderr: an indicatif bar with rate and ETA
/// on a terminal; elsewhere (a file, a pipe, CI logs) a plain line when the
/// figures change, at most once a second, never redrawn with `\r`.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: std::time::Instant,
    last_line: Option<(std::time::Instant, String)>,
}

impl Progress {
    pub fn new() -> Self {
        let target = indicatif::ProgressDrawTarget::stderr();
        let bar = (!target.is_hidden()).then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(Some(0), target);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "[{bar:30}] {pos}/{len} attempted, {per_sec}, ETA {eta}  {msg}",
            ) {
                bar.set_style(style.progress_chars("#>-"));
            }
            bar
        });
        Self {
            bar,
            started: std::time::Instant::now(),
            last_line: None,
        }
    }

    pub fn show(&mut self, job: &hookd_store::recovery::Job) {
        let message = format!(
            "{} succeeded, {} matched, {}",
            job.succeeded,
            job.matched,
            job.state()
        );
        if let Some(bar) = &self.bar {
            bar.set_length(job.queued);
            bar.set_position(job.done.min(job.queued));
            bar.set_message(message);
            return;
        }
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = job.done as f64 / elapsed;
        let eta = match job.queued.saturating_sub(job.done) {
            0 => "0s".to_string(),
            left if rate > 0.0 => format!("{:.0}s", left as f64 / rate),
            _ => "unknown".to_string(),
        };
        let line = format!(
            "{}/{} attempted, {rate:.1}/s, ETA {eta}, {message}",
            job.done, job.queued
        );
        let due = self.last_line.as_ref().is_none_or(|(at, shown)| {
            *shown != line && at.elapsed() >= std::time::Duration::from_secs(1)
        });
        if due {
            eprintln!("{line}");
            self.last_line = Some((std::time::Instant::now(), line));
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// A job as the API shows it (`JobView`).
pub fn job(job: &hookd_store::recovery::Job, json: bool) -> anyhow::Result<()> {
    let view = JobView::from(job.clone());
    if json {
        return print_json(&serde_json::to_value(view)?);
    }
    println!("id:         {}", view.id);
    println!("endpoint:   {}", view.endpoint_id);
    println!(
        "window:     {} .. {} ({})",
        view.since,
        view.until.as_deref().unwrap_or("now"),
        view.status.as_str()
    );
    println!("state:      {}", view.state);
    println!(
        "progress:   {}/{} attempted, {} succeeded, {} matched",
        view.done, view.queued, view.succeeded, view.matched
    );
    println!("created:    {}", view.created_at);
    Ok(())
}

/// Jobs, newest first, as the API lists them (`{"data": [...]}`).
pub fn jobs(jobs: &[hookd_store::recovery::Job], json: bool) -> anyhow::Result<()> {
    let views: Vec<JobView> = jobs.iter().cloned().map(JobView::from).collect();
    if json {
        return print_json(&json!({ "data": views }));
    }
    let rows = views.iter().map(|j| {
        vec![
            j.id.clone(),
            j.endpoint_id.clone(),
            j.state.clone(),
            format!("{}/{}", j.done, j.queued),
            j.created_at.clone(),
        ]
    });
    table(&["ID", "ENDPOINT", "STATE", "DONE/QUEUED", "CREATED"], rows);
    println!("{}", count(views.len(), "job", "jobs"));
    Ok(())
}

/// Event types as the API lists them: catalog entries (configuration, then
/// the workspace's own) merged with the types seen.
pub fn event_types(
    list: &hookd_control::event_types::EventTypeList,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        return print_json(&serde_json::to_value(list)?);
    }
    let rows = list.data.iter().map(|t| {
        vec![
            t.name.clone(),
            t.count.to_string(),
            t.last_seen.clone().unwrap_or_else(|| "-".into()),
            (if t.in_catalog { "yes" } else { "no" }).into(),
        ]
    });
    table(&["TYPE", "COUNT", "LAST SEEN", "CATALOG"], rows);
    println!("{}", count(list.data.len(), "event type", "event types"));
    Ok(())
}

/// `hookd config`: the file read, then every setting, its value and its source.
pub fn config(config: &crate::settings::Config, json: bool) -> anyhow::Result<()> {
    let settings = config.describe()?;
    let file = config.file.as_ref().map(|f| f.display().to_string());
    if json {
        println!(
            "{}",
            serde_json::json!({ "file": file, "settings": settings })
        );
        return Ok(());
    }
    match &file {
        Some(file) => println!("# read {file}, then HOOKD__* variables, over built-in defaults"),
        None => println!(
            "# no configuration file (no --config, no HOOKD_CONFIG, no {} in this folder): built-in defaults and HOOKD__* variables",
            crate::settings::DEFAULT_CONFIG
        ),
    }
    let width = settings.iter().map(|s| s.key.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for s in &settings {
        let line = writeln!(out, "{:width$} = {}  # {}", s.key, s.value, s.source);
        // `hookd config | head` closes the pipe early: not an error.
        if matches!(&line, Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe) {
            break;
        }
        line?;
    }
    Ok(())
}

/// A table whose columns are as wide as their widest cell (the last is not
/// padded), two spaces apart; columns of figures are right-aligned.
fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.into_iter().collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let figures: Vec<bool> = (0..header.len())
        .map(|i| {
            !rows.is_empty()
                && rows.iter().all(|r| {
                    r.get(i).is_some_and(|c| {
                        !c.is_empty() && c.chars().all(|ch| ch.is_ascii_digit() || ch == '/')
                    })
                })
        })
        .collect();
    let last = header.len().saturating_sub(1);
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| match (i == last, figures[i]) {
                (_, true) => format!("{c:>w$}", w = widths[i]),
                (true, false) => (*c).to_string(),
                (false, false) => format!("{c:<w$}", w = widths[i]),
            })
            .collect();
        println!("{}", text.join("  "));
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `1 delivery`, `2 deliveries`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
