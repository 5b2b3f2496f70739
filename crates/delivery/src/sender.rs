//! The HTTP side of an attempt: one pooled client (hyper's, on the policy
//! connector of `connect.rs`, which sees every socket address), no redirects,
//! bounded time and bounded response reads, failures sorted into kinds.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookd_core::ErrorKind;
use hookd_core::network::NetworkPolicy;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::connect::{ConnectError, PolicyConnector};

/// How requests are made.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// Longest a connection may take to open.
    pub connect_timeout: Duration,
    /// The whole request, connect to last byte of the (capped) response.
    pub request_timeout: Duration,
    /// Bytes of the response body kept for history.
    pub response_excerpt_bytes: usize,
    /// Which addresses may be reached.
    pub network: NetworkPolicy,
    /// DNS servers to ask (empty: the system's configuration).
    pub nameservers: Vec<std::net::SocketAddr>,
}

/// Idle keep-alive connections kept per receiver host: enough for an
/// endpoint's default concurrency (32), so a steady endpoint reconnects
/// rarely; more would only hold descriptors for bursts.
pub const POOL_IDLE_PER_HOST: usize = 32;

/// What a receiver did with one request.
#[derive(Debug, Clone)]
pub struct Response {
    /// From the first byte sent to the answer (or the failure).
    pub duration: Duration,
    /// The receiver's answer, or why there was none.
    pub result: Result<Answered, Failure>,
}

impl Response {
    /// An attempt that failed before any request was made.
    pub fn failed(kind: ErrorKind, message: String) -> Self {
        Self {
            duration: Duration::ZERO,
            result: Err(Failure { kind, message }),
        }
    }
}

/// The receiver answered (any status).
#[derive(Debug, Clone)]
pub struct Answered {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After`, when a 429 or 503 carried one.
    pub retry_after: Option<Duration>,
    /// The start of the response body, kept for history.
    pub excerpt: String,
    /// The response's headers (moved out of the response, not copied; only
    /// a probe shows them).
    pub headers: HeaderMap,
}

/// No usable answer.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What kind of failure (timeout, DNS, TLS, ...).
    pub kind: ErrorKind,
    /// What happened, for the delivery's history.
    pub message: String,
}

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct BuildError(String);

type HttpsClient = Client<hyper_rustls::HttpsConnector<PolicyConnector>, Full<Bytes>>;

/// Sends deliveries. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Sender {
    client: HttpsClient,
    settings: SenderSettings,
    user_agent: HeaderValue,
}

impl Sender {
    /// A client with its own connection pool, under `settings`.
    pub fn new(settings: SenderSettings) -> Result<Self, BuildError> {
        use rustls_platform_verifier::BuilderVerifierExt;
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_platform_verifier())
            .map_err(|e| BuildError(e.to_string()))?
            .with_no_client_auth();
        let connector = PolicyConnector::new(
            settings.network.clone(),
            settings.connect_timeout,
            &settings.nameservers,
        )
        .map_err(|e| BuildError(format!("DNS resolver: {e}")))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(connector);
        // No proxy and no redirects: hyper's client follows neither.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        let user_agent = HeaderValue::from_static(hookd_core::USER_AGENT);
        Ok(Self {
            client,
            settings,
            user_agent,
        })
    }

    /// Works out an endpoint's destination and fixed headers (its custom
    /// ones, content type, user agent) once, for every attempt of a batch.
    pub fn target(&self, url: &str, custom: &BTreeMap<String, String>) -> Target {
        let mut headers = HeaderMap::with_capacity(custom.len() + 8);
        for (name, value) in custom {
            insert_header(&mut headers, name, value);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, self.user_agent.clone());
        Target {
            uri: self.parse_uri(url),
            headers,
        }
    }

    /// Reads an endpoint URL the way browsers do (WHATWG: `127.1` is
    /// `127.0.0.1`) and hands hyper the normalised form, so the connector
    /// sees the host the policy judged. The policy check here (the connector
    /// makes it again on the socket address) gives a literal IP a clear
    /// message before any work is done.
    fn parse_uri(&self, url: &str) -> Result<Uri, Failure> {
        let invalid = |e: String| Failure {
            kind: ErrorKind::Connect,
            message: format!("invalid url: {e}"),
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if let Some(why) = self.settings.network.refuses(&parsed) {
            return Err(Failure {
                kind: ErrorKind::Blocked,
                message: format!("{BLOCKED}: {why}"),
            });
        }
        parsed
            .as_str()
            .parse::<Uri>()
            .map_err(|e| invalid(e.to_string()))
    }

    /// POSTs `body` to `target` with its headers and `extra` ones; never
    /// follows redirects.
    pub async fn send(&self, target: &Target, extra: HeaderMap, body: Bytes) -> Response {
        let started = Instant::now();
        let result = match &target.uri {
            Err(failure) => Err(failure.clone()),
            Ok(uri) => {
                let mut headers = target.headers.clone();
                headers.extend(extra);
                match tokio::time::timeout(
                    self.settings.request_timeout,
                    self.exchange(uri.clone(), headers, body),
                )
                .await
                {
                    Ok(result) => result,
                    Err(_) => Err(Failure {
                        kind: ErrorKind::Timeout,
                        message: format!(
                            "no complete answer within {} ms",
                            self.settings.request_timeout.as_millis()
                        ),
                    }),
                }
            }
        };
        Response {
            duration: started.elapsed(),
            result,
        }
    }

    async fn exchange(
        &self,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Answered, Failure> {
        let mut request = Request::post(uri)
            .body(Full::new(body))
            .map_err(|e| Failure {
                kind: ErrorKind::Connect,
                message: format!("invalid request: {e}"),
            })?;
        *request.headers_mut() = headers;
        let response = self.client.request(request).await.map_err(classify)?;
        let (parts, mut body) = response.into_parts();
        let status = parts.status.as_u16();
        let retry_after = parts
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let cap = self.settings.response_excerpt_bytes;
        let mut kept = Vec::with_capacity(cap.min(1024));
        // Read at most `cap` bytes; the rest of a huge body is never buffered.
        while kept.len() < cap {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(chunk) = frame.data_ref() {
                        kept.extend_from_slice(&chunk[..chunk.len().min(cap - kept.len())]);
                    }
                }
                // The status already arrived: a body cut short does not change the outcome.
                Some(Err(_)) | None => break,
            }
        }
        Ok(Answered {
            status,
            retry_after,
            excerpt: String::from_utf8_lossy(&kept).into_owned(),
            headers: parts.headers,
        })
    }
}

/// `headers` as (name, value) text pairs in their order, up to `budget`
/// bytes of names and values (the headers past it are left off).
pub fn header_pairs(headers: &HeaderMap, budget: usize) -> Vec<(String, String)> {
    let mut left = budget;
    let mut out = Vec::new();
    for (name, value) in headers {
        let size = name.as_str().len() + value.len();
        if size > left {
            break;
        }
        left -= size;
        out.push((
            name.to_string(),
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        ));
    }
    out
}

/// Where an endpoint's requests go, and the headers every one of them
/// carries: prepared once per endpoint and claimed batch (see [`Sender::target`]).
#[derive(Debug)]
pub struct Target {
    /// The parsed URL, or why no request can be made to it.
    uri: Result<Uri, Failure>,
    headers: HeaderMap,
}

impl Target {
    /// The headers every request to it carries (its custom ones,
    /// `Content-Type`, `User-Agent`).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
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

fn classify(e: hyper_util::client::legacy::Error) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = source {
        if let Some(c) = s.downcast_ref::<ConnectError>() {
            let kind = match c {
                ConnectError::Blocked(_) => ErrorKind::Blocked,
                ConnectError::Dns(_) | ConnectError::NoHost => ErrorKind::Dns,
                ConnectError::Timeout => ErrorKind::Timeout,
                ConnectError::Connect(_) => ErrorKind::Connect,
            };
            return Failure {
                kind,
                message: c.to_string(),
            };
        }
        source = s.source();
    }
    let mut chain = e.to_string();
    let mut source = e.source();
    let mut malformed = false;
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            // The receiver answered, but not in HTTP we can read (a head
            // too large, a bad status line): not a connection failure.
            malformed |= h.is_parse() || h.is_parse_status();
        }
        source = s.source();
    }
    if malformed {
        return Failure {
            kind: ErrorKind::Response,
            message: chain,
        };
    }
    // A connect error that is not the TCP connector's comes from the TLS layer.
    let lower = chain.to_ascii_lowercase();
    let kind = if e.is_connect()
        || lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
    {
        ErrorKind::Tls
    } else {
        ErrorKind::Connect
    };
    Failure {
        kind,
        message: chain,
    }
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
