//! Endpoints: where a workspace's deliveries go, which event types they take,
//! and the secret their requests are signed with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How an endpoint's deliveries are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureScheme {
    /// `<P>-Timestamp` and `<P>-Signature: sha256=<hex>` over `{timestamp}.{body}` (docs/DESIGN.md).
    #[default]
    Sha256,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>` over
    /// `{id}.{timestamp}.{body}`, with a `whsec_` secret.
    StandardWebhooks,
}

impl SignatureScheme {
    /// Every scheme.
    pub const ALL: [Self; 2] = [Self::Sha256, Self::StandardWebhooks];

    /// A new signing secret of 256 random bits: `hks_<hex>` for the
    /// default scheme, `whsec_<base64>` for Standard Webhooks.
    pub fn new_secret(self) -> Result<String, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(match self {
            Self::Sha256 => format!("hks_{}", hex::encode(bytes)),
            Self::StandardWebhooks => hookd_signature::standard::encode_secret(&bytes),
        })
    }

    /// `sha256` or `standard-webhooks`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sha256" => Some(Self::Sha256),
            "standard-webhooks" => Some(Self::StandardWebhooks),
            _ => None,
        }
    }
}

/// Whether an endpoint's deliveries keep their events' order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    /// Deliveries go in parallel and retry independently.
    #[default]
    None,
    /// Events of one `ordering_key` are delivered one at a time, in publish
    /// order: the next starts once the one before has succeeded or been
    /// given up. Events without a key are unordered.
    Key,
}

/// What an ordered endpoint does with a key whose head delivery is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnGiveUp {
    /// It is recorded as failed and the key goes on.
    #[default]
    Continue,
    /// The key stops until an operator redelivers or skips the head.
    Hold,
}

impl Ordering {
    /// Every choice.
    pub const ALL: [Self; 2] = [Self::None, Self::Key];

    /// `none` or `key`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "key" => Some(Self::Key),
            _ => None,
        }
    }

    fn is_none(&self) -> bool {
        *self == Self::None
    }
}

impl OnGiveUp {
    /// Every choice.
    pub const ALL: [Self; 2] = [Self::Continue, Self::Hold];

    /// `continue` or `hold`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "continue" => Some(Self::Continue),
            "hold" => Some(Self::Hold),
            _ => None,
        }
    }

    fn is_continue(&self) -> bool {
        *self == Self::Continue
    }
}

/// An endpoint whose attempts are failing in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    /// Attempts failed in a row.
    pub consecutive: u64,
    /// Since the first of them (ms).
    pub since_ms: i64,
    /// The latest one's error.
    pub last_error: String,
}

/// A receiver URL registered by a workspace. Its `Debug` leaves the secrets out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `ep_...`.
    pub id: String,
    /// The workspace whose events it receives.
    pub workspace: String,
    /// Where deliveries are sent (http or https).
    pub url: String,
    /// A name for people; shown in place of the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Event types delivered; `None` means every type.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Signing secret (HMAC key). Shown when the endpoint is created.
    pub secret: String,
    /// How its deliveries are signed.
    #[serde(default)]
    pub scheme: SignatureScheme,
    /// Secrets replaced by a rotation that still sign until their grace ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_secrets: Vec<PreviousSecret>,
    /// How deliveries are signed during a rotation's grace window; `None`
    /// takes the configured default (`[signing] rotation_signatures`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_signatures: Option<RotationSignatures>,
    /// Extra request headers sent with every delivery.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Most attempts in flight at once to this endpoint, across all daemons;
    /// `None` takes the configured default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Most attempts per second to this endpoint, across all daemons; `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// `key`: events of one `ordering_key` arrive one at a time, in order.
    #[serde(default, skip_serializing_if = "Ordering::is_none")]
    pub ordering: Ordering,
    /// With `ordering: key`, what a given-up head does to its key.
    #[serde(default, skip_serializing_if = "OnGiveUp::is_continue")]
    pub ordering_on_give_up: OnGiveUp,
    /// Free-form labels kept for the workspace (never sent to the receiver).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// When it was registered (Unix ms).
    pub created_at_ms: i64,
    /// Deliveries are held, not attempted, until it is resumed.
    #[serde(default)]
    pub paused: bool,
    /// Why it was paused (an operator's reason, or the circuit breaker's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    /// When it was paused (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_at_ms: Option<i64>,
    /// Its attempts failing in a row now (kept beside the document, by the
    /// circuit breaker's count).
    #[serde(skip)]
    pub failing: Option<Failing>,
    /// How many times the stored document was written: a write succeeds only
    /// on the version it read (compare and set). Kept beside the document.
    #[serde(skip)]
    pub version: u64,
}

/// Which signatures a delivery carries while a rotation's grace window is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RotationSignatures {
    /// One per valid secret, newest first (`sha256=<new>,sha256=<old>`): a
    /// receiver on either secret verifies, if it accepts a list.
    #[default]
    All,
    /// One, under the newest secret: a receiver that compares the whole
    /// header with one signature keeps working once it has the new secret; one
    /// still on the old secret fails until it has it (the retries carry the
    /// deliveries through then; nothing is lost).
    Newest,
}

impl RotationSignatures {
    /// Every choice.
    pub const ALL: [Self; 2] = [Self::All, Self::Newest];

    /// `all` or `newest`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(Self::All),
            "newest" => Some(Self::Newest),
            _ => None,
        }
    }

    /// The name configuration and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Newest => "newest",
        }
    }
}

/// A rotated-out secret, valid until `expires_at_ms`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    /// The secret itself.
    pub secret: String,
    /// After this (Unix ms) it no longer signs.
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for PreviousSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreviousSecret")
            .field("secret", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("workspace", &self.workspace)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("secret", &"<redacted>")
            .field("scheme", &self.scheme)
            .field("previous_secrets", &self.previous_secrets)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("paused", &self.paused)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Whether deliveries of an event with this key are ordered here.
    pub fn orders(&self, ordering_key: Option<&str>) -> bool {
        self.ordering == Ordering::Key && ordering_key.is_some()
    }

    /// Applies `f` to the current and every previous secret, and to the
    /// custom header values (often a receiver's `Authorization`): sealing for
    /// storage, opening after reading.
    pub fn map_secrets<E>(
        &mut self,
        mut f: impl FnMut(&str) -> Result<String, E>,
    ) -> Result<(), E> {
        self.secret = f(&self.secret)?;
        for p in &mut self.previous_secrets {
            p.secret = f(&p.secret)?;
        }
        for v in self.headers.values_mut() {
            *v = f(v)?;
        }
        Ok(())
    }
}

impl Endpoint {
    /// A new endpoint with a fresh id and secret, subscribed to every type;
    /// callers set the optional parts.
    pub fn new(
        workspace: String,
        url: String,
        scheme: SignatureScheme,
        created_at_ms: i64,
    ) -> Result<Self, getrandom::Error> {
        Ok(Self {
            id: crate::id::new_id("ep_"),
            workspace,
            url,
            description: None,
            event_types: None,
            secret: scheme.new_secret()?,
            scheme,
            previous_secrets: Vec::new(),
            rotation_signatures: None,
            headers: BTreeMap::new(),
            max_concurrency: None,
            rate_limit: None,
            ordering: Ordering::None,
            ordering_on_give_up: OnGiveUp::Continue,
            metadata: BTreeMap::new(),
            created_at_ms,
            paused: false,
            paused_reason: None,
            paused_at_ms: None,
            failing: None,
            version: 0,
        })
    }

    /// The secrets a delivery is signed with at `now_ms`: the current one
    /// first, then (unless the endpoint, or else `default`, says `newest`)
    /// those still in their grace window, newest first.
    pub fn signing_secrets(&self, now_ms: i64, default: RotationSignatures) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if self.rotation_signatures.unwrap_or(default) == RotationSignatures::Newest {
            return secrets;
        }
        secrets.extend(
            self.previous_secrets
                .iter()
                .filter(|p| p.expires_at_ms > now_ms)
                .map(|p| p.secret.as_str()),
        );
        secrets
    }

    /// Replaces the secret; the old one keeps signing for `grace_ms`. Earlier
    /// secrets stop by then too, so `grace_ms` 0 leaves only the new secret.
    pub fn rotate_secret(&mut self, new_secret: String, grace_ms: i64, now_ms: i64) {
        let old = std::mem::replace(&mut self.secret, new_secret);
        let until = now_ms + grace_ms.max(0);
        for p in &mut self.previous_secrets {
            p.expires_at_ms = p.expires_at_ms.min(until);
        }
        self.previous_secrets.retain(|p| p.expires_at_ms > now_ms);
        if grace_ms > 0 {
            self.previous_secrets.insert(
                0,
                PreviousSecret {
                    secret: old,
                    expires_at_ms: now_ms + grace_ms,
                },
            );
        }
    }
}

/// Headers an endpoint may not set: hookd or HTTP itself decides them
/// (the message framing, hop-by-hop headers, the body's encoding, the
/// signature, the trace context).
const RESERVED_HEADERS: [&str; 17] = [
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "proxy-authorization",
    "proxy-connection",
    "webhook-signature",
    "traceparent",
    "tracestate",
    "user-agent",
];

/// Most custom headers an endpoint may have: they are sent with every
/// delivery.
pub const MAX_HEADERS: usize = 32;
/// Most bytes of an endpoint's custom headers, names and values together.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

impl Endpoint {
    /// Everything wrong with an endpoint's settings, as (field, message)
    /// pairs; empty when it is valid.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut add = |field: &str, message: String| out.push((field.to_string(), message));
        if !crate::event::is_valid_workspace(&self.workspace) {
            add(
                "workspace",
                "must be 1..128 characters without control characters".into(),
            );
        }
        if let Err(e) = validate_url(&self.url) {
            add("url", e);
        }
        if self.description.as_ref().is_some_and(|d| d.len() > 1024) {
            add("description", "must be at most 1024 bytes".into());
        }
        for (i, t) in self.event_types.iter().flatten().enumerate() {
            if !crate::event::is_valid_event_type(t) {
                add(
                    &format!("event_types/{i}"),
                    format!("{t:?} must match [a-z0-9_.-]{{1,128}}"),
                );
            }
        }
        if self.event_types.as_ref().is_some_and(|t| t.is_empty()) {
            add(
                "event_types",
                "must name at least one type (or be null for every type)".into(),
            );
        }
        if self.headers.len() > MAX_HEADERS {
            add(
                "headers",
                format!("at most {MAX_HEADERS} custom headers (they go with every delivery)"),
            );
        }
        let total: usize = self.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        if total > MAX_HEADER_BYTES {
            add(
                "headers",
                format!("at most {MAX_HEADER_BYTES} bytes of names and values in all"),
            );
        }
        for (name, value) in &self.headers {
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                add(
                    &format!("headers/{name}"),
                    "is not a valid header name".into(),
                );
            } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                add(
                    &format!("headers/{name}"),
                    "is set by hookd and cannot be overridden".into(),
                );
            }
            if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                add(
                    &format!("headers/{name}"),
                    "value contains control characters".into(),
                );
            }
        }
        if self.max_concurrency == Some(0) {
            add("max_concurrency", "must be at least 1".into());
        }
        if self.rate_limit == Some(0) {
            add(
                "rate_limit",
                "must be at least 1 (or null for no limit)".into(),
            );
        }
        if self.metadata.len() > 64 || self.metadata.iter().any(|(k, v)| k.len() + v.len() > 1024) {
            add(
                "metadata",
                "at most 64 entries of at most 1024 bytes each".into(),
            );
        }
        out
    }
}

/// Checks an endpoint URL: absolute `http` or `https` with a host, no credentials.
pub fn validate_url(url: &str) -> Result<(), String> {
    if url.len() > 2048 {
        return Err("url is longer than 2048 characters".into());
    }
    // The parser drops tabs and newlines silently; a URL with any is refused.
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("url {url:?} contains whitespace"));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("url {url:?} must start with http:// or https://"))?;
    if rest
        .split(['/', '?', '#', '\\'])
        .next()
        .unwrap_or_default()
        .is_empty()
    {
        return Err(format!("url {url:?} has no host"));
    }
    // Judged as the HTTP client will read it (WHATWG URL parsing).
    let parsed = url::Url::parse(url).map_err(|e| format!("url {url:?} is not valid: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("url {url:?} must not carry credentials"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(validate_url("https://example.com/hook").is_ok());
        assert!(validate_url("http://127.0.0.1:9000").is_ok());
        for bad in [
            "ftp://x",
            "https://",
            "https:///path",
            "https://u:p@host/",
            "example.com",
            "http://a b",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rotation_keeps_the_old_secret_for_its_grace() {
        let mut ep: Endpoint = serde_json::from_str(
            r#"{"id":"ep","workspace":"w","url":"http://x","secret":"s1","created_at_ms":0}"#,
        )
        .unwrap();
        ep.rotate_secret("s2".into(), 1000, 0);
        assert_eq!(ep.signing_secrets(0, RotationSignatures::All), ["s2", "s1"]);
        assert_eq!(
            ep.signing_secrets(999, RotationSignatures::All),
            ["s2", "s1"]
        );
        assert_eq!(ep.signing_secrets(1000, RotationSignatures::All), ["s2"]);
        ep.rotate_secret("s3".into(), 500, 100);
        assert_eq!(
            ep.signing_secrets(100, RotationSignatures::All),
            ["s3", "s2", "s1"]
        );
        assert_eq!(
            ep.signing_secrets(599, RotationSignatures::All),
            ["s3", "s2", "s1"]
        );
        assert_eq!(
            ep.signing_secrets(600, RotationSignatures::All),
            ["s3"],
            "a rotation caps the grace of earlier secrets"
        );
        ep.rotate_secret("s4".into(), 0, 2000);
        assert_eq!(
            ep.signing_secrets(2000, RotationSignatures::All),
            ["s4"],
            "grace 0 switches at once"
        );
        assert!(ep.previous_secrets.is_empty());
        // `newest`: one signature during the grace, from the endpoint or the default.
        ep.rotate_secret("s5".into(), 1000, 3000);
        assert_eq!(
            ep.signing_secrets(3500, RotationSignatures::All),
            ["s5", "s4"]
        );
        assert_eq!(ep.signing_secrets(3500, RotationSignatures::Newest), ["s5"]);
        ep.rotation_signatures = Some(RotationSignatures::Newest);
        assert_eq!(ep.signing_secrets(3500, RotationSignatures::All), ["s5"]);
        ep.rotation_signatures = Some(RotationSignatures::All);
        assert_eq!(
            ep.signing_secrets(3500, RotationSignatures::Newest),
            ["s5", "s4"]
        );
    }

    #[test]
    fn secrets_differ() {
        let a = SignatureScheme::Sha256.new_secret().unwrap();
        assert!(a.starts_with("hks_"));
        assert_ne!(a, SignatureScheme::Sha256.new_secret().unwrap());
        let w = SignatureScheme::StandardWebhooks.new_secret().unwrap();
        assert_eq!(
            hookd_signature::standard::decode_secret(&w).unwrap().len(),
            32
        );
    }
}
