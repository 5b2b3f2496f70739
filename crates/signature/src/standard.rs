//! The Standard Webhooks scheme (standardwebhooks.com), for endpoints that
//! choose it, so off-the-shelf verifiers accept hookd's deliveries.
//!
//! Headers `webhook-id`, `webhook-timestamp` and `webhook-signature:
//! v1,<base64>` (space-separated when several); the secret is `whsec_` +
//! base64 of the key; the signed content is `{id}.{timestamp}.{body}`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{DEFAULT_TOLERANCE, VerifyError};

/// Secrets of this scheme start with this prefix.
pub const SECRET_PREFIX: &str = "whsec_";

/// The key inside a `whsec_<base64>` secret (the prefix is optional).
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, VerifyError> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    B64.decode(b64).map_err(|_| VerifyError::MalformedSecret)
}

/// `whsec_` + base64 of `key`.
pub fn encode_secret(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", B64.encode(key))
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// One signature, `v1,<base64>`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1,{}",
        B64.encode(mac(key, id, timestamp, body).finalize().into_bytes())
    )
}

/// The `webhook-signature` value for several keys, newest first, space-separated.
pub fn signature_header<K: AsRef<[u8]>>(
    keys: &[K],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    keys.iter()
        .map(|k| sign(k.as_ref(), id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Verifies Standard Webhooks deliveries against one or several secrets.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<Vec<u8>>,
    tolerance: Duration,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("standard::Verifier")
            .field("keys", &format_args!("[{} redacted]", self.keys.len()))
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl Verifier {
    /// From `whsec_...` secrets.
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Result<Self, VerifyError> {
        let keys = secrets
            .into_iter()
            .map(|s| decode_secret(s.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keys,
            tolerance: DEFAULT_TOLERANCE,
        })
    }

    /// Accepts timestamps this far from now (default five minutes).
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies a request's headers (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`) and raw body against the system clock.
    pub fn verify(
        &self,
        headers: &(impl crate::Headers + ?Sized),
        body: &[u8],
    ) -> Result<(), VerifyError> {
        self.verify_at(headers, body, crate::unix_now())
    }

    /// [`Verifier::verify`] as if the clock read `now` (unix seconds).
    pub fn verify_at(
        &self,
        headers: &(impl crate::Headers + ?Sized),
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let h = |name| headers.header(name);
        self.verify_parts_at(
            h("webhook-id"),
            h("webhook-timestamp"),
            h("webhook-signature"),
            body,
            now,
        )
    }

    /// Verifies against the system clock, given the three header values.
    pub fn verify_parts(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        self.verify_parts_at(id, timestamp, signature, body, crate::unix_now())
    }

    /// [`Verifier::verify_parts`] as if the clock read `now` (unix seconds).
    pub fn verify_parts_at(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let id = id.ok_or(VerifyError::MissingHeader("webhook-id"))?;
        let timestamp = timestamp.ok_or(VerifyError::MissingHeader("webhook-timestamp"))?;
        let signature = signature.ok_or(VerifyError::MissingHeader("webhook-signature"))?;
        let ts = crate::check_timestamp(timestamp, now, self.tolerance)?;
        let mut digests = Vec::new();
        for part in signature.split(' ').filter(|p| !p.is_empty()) {
            // Other versions may appear beside v1; only v1 is defined.
            let Some(b64) = part.strip_prefix("v1,") else {
                continue;
            };
            digests.push(
                B64.decode(b64)
                    .map_err(|_| VerifyError::MalformedSignature)?,
            );
        }
        if digests.is_empty() {
            return Err(VerifyError::MalformedSignature);
        }
        for key in &self.keys {
            for digest in &digests {
                if mac(key, id, ts, body).verify_slice(digest).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn spec_vector() {
        let key = decode_secret(SECRET).unwrap();
        assert_eq!(sign(&key, ID, 1614265330, BODY), EXPECTED);
        Verifier::new([SECRET])
            .unwrap()
            .verify_parts_at(
                Some(ID),
                Some("1614265330"),
                Some(EXPECTED),
                BODY,
                1614265330,
            )
            .unwrap();
    }

    #[test]
    fn reads_the_three_headers_from_a_map() {
        let headers = [
            ("Webhook-Id", ID),
            ("webhook-timestamp", "1614265330"),
            ("WEBHOOK-SIGNATURE", EXPECTED),
        ];
        Verifier::new([SECRET])
            .unwrap()
            .verify_at(&headers, BODY, 1614265330)
            .unwrap();
    }

    #[test]
    fn rotation_and_failures() {
        let (old, new) = (decode_secret(SECRET).unwrap(), b"another key".to_vec());
        let header = signature_header(&[&new, &old], ID, 1614265330, BODY);
        assert_eq!(header.split(' ').count(), 2);
        let verify = |secret: &str, body: &[u8], now: i64| {
            Verifier::new([secret]).unwrap().verify_parts_at(
                Some(ID),
                Some("1614265330"),
                Some(&header),
                body,
                now,
            )
        };
        verify(SECRET, BODY, 1614265330).unwrap();
        verify(&encode_secret(&new), BODY, 1614265330).unwrap();
        assert_eq!(verify(SECRET, b"{}", 1614265330), Err(VerifyError::NoMatch));
        assert!(matches!(
            verify(SECRET, BODY, 1614265330 + 301),
            Err(VerifyError::TimestampTooOld { .. })
        ));
        assert_eq!(
            Verifier::new(["whsec_!!"]).unwrap_err(),
            VerifyError::MalformedSecret
        );
        let v = Verifier::new([SECRET]).unwrap();
        assert_eq!(
            v.verify_parts_at(
                Some(ID),
                Some("1614265330"),
                Some("v2,abc"),
                BODY,
                1614265330
            ),
            Err(VerifyError::MalformedSignature)
        );
        assert_eq!(
            v.verify_parts_at(None, Some("1"), Some(EXPECTED), BODY, 1),
            Err(VerifyError::MissingHeader("webhook-id"))
        );
    }
}
