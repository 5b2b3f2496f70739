//! Endpoints: where a workspace's deliveries go, which event types they take,
//! and the secret their requests are signed with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How an endpoint's deliveries are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureScheme {
    /// `<P>-Timestamp` and `<P>-Signature: sha256=<hex>` over `{timestamp}.{body}` (DESIGN.md).
    #[default]
    Sha256,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>` over
    /// `{id}.{timestamp}.{body}`, with a `whsec_` secret.
    StandardWebhooks,
}

impl SignatureScheme {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sha256" => Some(Self::Sha256),
            "standard-webhooks" => Some(Self::StandardWebhooks),
            _ => None,
        }
    }
}

/// A receiver URL registered by a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub workspace: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Event types delivered; `None` means every type.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Signing secret (HMAC key). Shown when the endpoint is created.
    pub secret: String,
    #[serde(default)]
    pub scheme: SignatureScheme,
    /// Secrets replaced by a rotation that still sign until their grace ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_secrets: Vec<PreviousSecret>,
    /// Extra request headers sent with every delivery.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Most attempts in flight at once to this endpoint, across all daemons;
    /// `None` takes the configured default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    pub created_at_ms: i64,
    #[serde(default)]
    pub paused: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_at_ms: Option<i64>,
}

/// A rotated-out secret, valid until `expires_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub secret: String,
    pub expires_at_ms: i64,
}

impl Endpoint {
    /// The secrets a delivery is signed with at `now_ms`: the current one
    /// first, then those still in their grace window, newest first.
    pub fn signing_secrets(&self, now_ms: i64) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
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

/// Checks an endpoint URL: absolute `http` or `https` with a host, no credentials.
pub fn validate_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("url {url:?} must start with http:// or https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("url {url:?} has no host"));
    }
    if authority.contains('@') {
        return Err(format!("url {url:?} must not carry credentials"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("url {url:?} contains whitespace"));
    }
    if url.len() > 2048 {
        return Err("url is longer than 2048 characters".into());
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
        assert_eq!(ep.signing_secrets(0), ["s2", "s1"]);
        assert_eq!(ep.signing_secrets(999), ["s2", "s1"]);
        assert_eq!(ep.signing_secrets(1000), ["s2"]);
        ep.rotate_secret("s3".into(), 500, 100);
        assert_eq!(ep.signing_secrets(100), ["s3", "s2", "s1"]);
        assert_eq!(ep.signing_secrets(599), ["s3", "s2", "s1"]);
        assert_eq!(
            ep.signing_secrets(600),
            ["s3"],
            "a rotation caps the grace of earlier secrets"
        );
        ep.rotate_secret("s4".into(), 0, 2000);
        assert_eq!(ep.signing_secrets(2000), ["s4"], "grace 0 switches at once");
        assert!(ep.previous_secrets.is_empty());
    }
}
