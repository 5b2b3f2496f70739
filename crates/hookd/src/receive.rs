//! The receiver-side tools: `hookd verify` checks one captured request (for
//! support engineers), `hookd listen` is a local receiver for development
//! that prints each delivery and can be told to fail, to rehearse retries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use clap::Args;
use hookd_signature::{Verifier, VerifyError, standard};

/// Headers by lowercase name.
type Headers = BTreeMap<String, String>;

#[derive(Args)]
pub struct VerifyArgs {
    /// The endpoint's secret (repeat for the old and new secret of a rotation).
    #[arg(long = "secret", required = true)]
    secrets: Vec<String>,
    /// The request headers: `Name: value` lines, or a JSON object (`-` reads stdin).
    #[arg(long, requires = "body", conflicts_with = "request")]
    headers: Option<PathBuf>,
    /// The raw request body, byte for byte (`-` reads stdin).
    #[arg(long, requires = "headers")]
    body: Option<PathBuf>,
    /// A raw HTTP request dump: request line, headers, blank line, body (`-` reads stdin).
    #[arg(long)]
    request: Option<PathBuf>,
    /// Header prefix of the sha256 scheme (default: [signing] header_prefix).
    #[arg(long)]
    prefix: Option<String>,
    /// Accept timestamps this far from now (e.g. `5m`, or `100y` to check an old capture).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    tolerance: Duration,
    /// Print the verdict as one JSON object (`valid`, `scheme` or `code` and `message`).
    #[arg(long)]
    json: bool,
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
        return Ok(buf);
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn parse_headers(text: &str) -> anyhow::Result<Headers> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let map: BTreeMap<String, String> =
            serde_json::from_str(trimmed).context("headers JSON must be an object of strings")?;
        return Ok(map
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect());
    }
    let mut headers = Headers::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        // A request or status line, or an empty line, carries no header.
        if let Some((name, value)) = line
            .split_once(':')
            .filter(|(n, _)| !n.contains(' ') && !n.is_empty())
        {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    Ok(headers)
}

/// Splits a raw HTTP request dump into headers and body (the body's bytes untouched).
fn split_request(raw: &[u8]) -> anyhow::Result<(Headers, Vec<u8>)> {
    let (head_end, sep) = match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (i, 4),
        None => (
            raw.windows(2)
                .position(|w| w == b"\n\n")
                .context("no blank line between headers and body")?,
            2,
        ),
    };
    let head = std::str::from_utf8(&raw[..head_end]).context("request headers are not UTF-8")?;
    Ok((parse_headers(head)?, raw[head_end + sep..].to_vec()))
}

/// Verifies with whichever scheme the headers carry.
fn verify_request(
    secrets: &[String],
    headers: &Headers,
    body: &[u8],
    prefix: &str,
    tolerance: Duration,
) -> Result<&'static str, VerifyError> {
    if headers.contains_key("webhook-signature") {
        standard::Verifier::new(secrets)?
            .tolerance(tolerance)
            .verify(headers, body)?;
        return Ok("standard-webhooks");
    }
    Verifier::with_secrets(secrets)
        .tolerance(tolerance)
        .header_prefix(prefix)
        .verify(headers, body)?;
    Ok("sha256")
}

pub fn verify(args: VerifyArgs, default_prefix: &str) -> anyhow::Result<bool> {
    let (headers, body) = match (&args.request, &args.headers, &args.body) {
        (Some(request), _, _) => split_request(&read(request)?)?,
        (None, Some(h), Some(b)) => {
            let h = read(h)?;
            (
                parse_headers(std::str::from_utf8(&h).context("headers are not UTF-8")?)?,
                read(b)?,
            )
        }
        _ => bail!("give --request FILE, or --headers FILE and --body FILE"),
    };
    let prefix = args.prefix.as_deref().unwrap_or(default_prefix);
    let verdict = verify_request(&args.secrets, &headers, &body, prefix, args.tolerance);
    if args.json {
        let out = match &verdict {
            Ok(scheme) => {
                serde_json::json!({ "valid": true, "scheme": scheme, "body_bytes": body.len() })
            }
            Err(e) => {
                serde_json::json!({ "valid": false, "code": e.code(), "message": e.to_string() })
            }
        };
        println!("{out}");
        return Ok(verdict.is_ok());
    }
    match verdict {
        Ok(scheme) => {
            println!(
                "valid: the {scheme} signature matches ({} body bytes)",
                body.len()
            );
            Ok(true)
        }
        Err(e) => {
            println!("invalid ({}): {e}", e.code());
            Ok(false)
        }
    }
}

#[derive(Args)]
pub struct ListenArgs {
    /// The loopback port to listen on.
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// The endpoint's secret, to check signatures (repeatable).
    #[arg(long = "secret")]
    secrets: Vec<String>,
    /// Answer every request with this status (default 204; with --fail-first, the failing status, default 500).
    #[arg(long)]
    status: Option<u16>,
    /// Fail the first N requests (with --status, default 500), then answer 204.
    #[arg(long, default_value_t = 0)]
    fail_first: usize,
    /// Header prefix of the sha256 scheme (default: [signing] header_prefix).
    #[arg(long)]
    prefix: Option<String>,
    /// Answer as usual even when a signature does not verify (by default
    /// such a request gets 401, as a real receiver would answer it).
    #[arg(long)]
    accept_bad_signatures: bool,
}

pub async fn listen(args: ListenArgs, default_prefix: &str) -> anyhow::Result<()> {
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| default_prefix.to_string());
    let listener = tokio::net::TcpListener::bind((args.bind.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port))?;
    println!(
        "listening on http://{}:{}/ (Ctrl-C to stop)",
        args.bind, args.port
    );
    let seen = Arc::new(AtomicUsize::new(0));
    let args = Arc::new(args);
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let (args, seen, prefix) = (args.clone(), seen.clone(), prefix.clone());
        async move {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            // As received, in order, for the printout; by lowercase name to verify.
            let wire: Vec<(String, String)> = headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let by_name: Headers = wire.iter().cloned().collect();
            let verified = print_delivery(&wire, &by_name, &body, &args.secrets, &prefix);
            let status = match (args.status, n < args.fail_first) {
                _ if verified == Some(false) && !args.accept_bad_signatures => 401,
                (Some(s), true) => s,
                (None, true) => 500,
                (Some(s), false) if args.fail_first == 0 => s,
                _ => 204,
            };
            println!("  -> answered {status}\n");
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// Prints one delivery: its summary, the signature check, every header
/// as received and the body byte for byte (in wire order: a receiver
/// verifies these bytes, not a re-serialised copy). `Some(valid)` when
/// secrets were given to check the signature with.
fn print_delivery(
    wire: &[(String, String)],
    headers: &Headers,
    body: &[u8],
    secrets: &[String],
    prefix: &str,
) -> Option<bool> {
    let get = |name: &str| {
        headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
            .unwrap_or("-")
    };
    let event = if get("webhook-id") != "-" {
        get("webhook-id")
    } else {
        get(&format!("{prefix}-Event-Id"))
    };
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let event_type = parsed
        .as_ref()
        .and_then(|v| v["type"].as_str())
        .unwrap_or("-");
    println!(
        "event {event}  type {event_type}  delivery {}  attempt {}",
        get(&format!("{prefix}-Delivery-Id")),
        get(&format!("{prefix}-Attempt"))
    );
    let verified = if secrets.is_empty() {
        println!("  signature: not checked (give --secret)");
        None
    } else {
        match verify_request(
            secrets,
            headers,
            body,
            prefix,
            hookd_signature::DEFAULT_TOLERANCE,
        ) {
            Ok(scheme) => {
                println!("  signature ok ({scheme})");
                Some(true)
            }
            Err(e) => {
                println!("  signature FAILED ({}): {e}", e.code());
                Some(false)
            }
        }
    };
    for (name, value) in wire {
        println!("  {name}: {value}");
    }
    println!("{}", String::from_utf8_lossy(body));
    verified
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_raw_requests_and_header_lists() {
        let (h, body) = split_request(b"POST /hook HTTP/1.1\r\nX-Hookd-Timestamp: 1\r\nContent-Type: application/json\r\n\r\n{\"a\":1}\r\n").unwrap();
        assert_eq!(h["x-hookd-timestamp"], "1");
        assert_eq!(body, b"{\"a\":1}\r\n");
        let h = parse_headers("HTTP/1.1 200 OK\nX-Hookd-Signature: sha256=ab:cd\n").unwrap();
        assert_eq!(h["x-hookd-signature"], "sha256=ab:cd");
        let h = parse_headers(r#"{"X-Hookd-Timestamp": "5"}"#).unwrap();
        assert_eq!(h["x-hookd-timestamp"], "5");
    }
}
