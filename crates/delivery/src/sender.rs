//! The HTTP side of an attempt: one pooled client, no redirects, bounded time
//! and bounded response reads, failures sorted into kinds, and the network
//! policy: a DNS resolver that drops internal addresses, and a check of
//! literal-IP URLs (which skip the resolver) before each send.

use std::error::Error as _;
use std::time::{Duration, Instant};

use std::sync::Arc;

use hookd_core::ErrorKind;
use hookd_core::network::NetworkPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// How requests are made.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    pub connect_timeout: Duration,
    /// The whole request, connect to last byte of the (capped) response.
    pub request_timeout: Duration,
    /// Bytes of the response body kept for history.
    pub response_excerpt_bytes: usize,
    pub user_agent: String,
    /// Idle keep-alive connections kept per receiver host.
    pub pool_idle_per_host: usize,
    /// Which addresses may be reached.
    pub network: NetworkPolicy,
}

impl Default for SenderSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            response_excerpt_bytes: 4096,
            user_agent: concat!("hookd/", env!("CARGO_PKG_VERSION")).into(),
            pool_idle_per_host: 32,
            network: NetworkPolicy::default(),
        }
    }
}

/// What a receiver did with one request.
#[derive(Debug, Clone)]
pub struct Response {
    pub duration: Duration,
    pub result: Result<Answered, Failure>,
}

/// The receiver answered (any status).
#[derive(Debug, Clone)]
pub struct Answered {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub excerpt: String,
}

/// No usable answer.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct BuildError(#[from] reqwest::Error);

/// Sends deliveries. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    settings: SenderSettings,
}

impl Sender {
    pub fn new(settings: SenderSettings) -> Result<Self, BuildError> {
        let client = reqwest::Client::builder()
            .dns_resolver(PolicyResolver {
                policy: Arc::new(settings.network.clone()),
            })
            .redirect(reqwest::redirect::Policy::none())
            // Proxy variables would route around the destination checks.
            .no_proxy()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .pool_max_idle_per_host(settings.pool_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(&settings.user_agent)
            .build()?;
        Ok(Self { client, settings })
    }

    /// POSTs `body` to `url` with `headers`; never follows redirects.
    pub async fn send(&self, url: &str, headers: HeaderMap, body: bytes::Bytes) -> Response {
        let started = Instant::now();
        let result = self.exchange(url, headers, body).await;
        Response {
            duration: started.elapsed(),
            result,
        }
    }

    async fn exchange(
        &self,
        url: &str,
        headers: HeaderMap,
        body: bytes::Bytes,
    ) -> Result<Answered, Failure> {
        if let Some(why) = self.settings.network.refuses_url(url) {
            return Err(Failure {
                kind: ErrorKind::Blocked,
                message: format!("{BLOCKED}: {why}"),
            });
        }
        let mut response = self
            .client
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(classify)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let cap = self.settings.response_excerpt_bytes;
        let mut kept = Vec::with_capacity(cap.min(1024));
        // Read at most `cap` bytes; the rest of a huge body is never buffered.
        while kept.len() < cap {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    kept.extend_from_slice(&chunk[..chunk.len().min(cap - kept.len())])
                }
                Ok(None) => break,
                // The status already arrived: a body cut short does not change the outcome.
                Err(_) => break,
            }
        }
        Ok(Answered {
            status,
            retry_after,
            excerpt: String::from_utf8_lossy(&kept).into_owned(),
        })
    }
}

/// `Retry-After` in delta-seconds (HTTP dates are ignored: the backoff applies).
fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(86_400)))
}

/// Marks a refusal by the network policy in error messages.
const BLOCKED: &str = "blocked by network policy";

/// Resolves names with the system resolver and keeps only the addresses the
/// policy permits; the connection then goes to one of those, so a name that
/// resolves to an internal address (or is rebound to one) is never reached.
struct PolicyResolver {
    policy: Arc<NetworkPolicy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<_> = found
                .iter()
                .copied()
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if allowed.is_empty() && !found.is_empty() {
                let message = format!(
                    "{BLOCKED}: {host} resolves only to internal addresses ({}); allow their network in [delivery] allow_networks",
                    found
                        .iter()
                        .map(|a| a.ip().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return Err(message.into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

fn classify(e: reqwest::Error) -> Failure {
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = e.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    let lower = chain.to_ascii_lowercase();
    let kind = if lower.contains(BLOCKED) {
        ErrorKind::Blocked
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        ErrorKind::Dns
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        ErrorKind::Tls
    } else {
        ErrorKind::Connect
    };
    let message = format!("{}{chain}", e.without_url());
    Failure { kind, message }
}

/// Builds a header from strings, skipping pairs that are not valid HTTP.
pub fn insert_header(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 10 "), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
