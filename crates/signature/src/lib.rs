//! hookd-signature: signing and verifying hookd webhook deliveries.
//!
//! A delivery carries two headers (names prefixed, `X-Hookd-` by default):
//! `Timestamp` (unix seconds when the attempt was signed) and `Signature`:
//! `sha256=` followed by the lowercase hex HMAC-SHA256 of `"{timestamp}.{rawBody}"`
//! under the endpoint's secret. During a secret rotation the signature header
//! holds one signature per valid secret, newest first, comma-separated.
//!
//! ```
//! use hookd_signature::{sign, Verifier};
//! let header = sign(b"secret", 1636936200, b"hello !");
//! assert_eq!(header, "sha256=1b3d69df55f1e52f05224ba94a5162abeb17ef52cd7f4948c390f810d6a87e98");
//! let verifier = Verifier::new("secret");
//! let headers = [("X-Hookd-Timestamp", "1636936200"), ("X-Hookd-Signature", header.as_str())];
//! verifier.verify_at(&headers, b"hello !", 1636936200).unwrap();
//! ```
//!
//! # A complete receiver
//!
//! Verify the raw bytes before parsing them, answer 401 when they do not
//! verify, and handle each event id once (delivery is at least once):
//!
//! ```no_run
//! use std::collections::HashSet;
//! use std::io::{BufRead, BufReader, Read, Write};
//! use std::net::TcpListener;
//!
//! use hookd_signature::Verifier;
//!
//! let verifier = Verifier::new(std::env::var("HOOKD_SECRET").unwrap_or_default());
//! let mut seen = HashSet::new(); // a store with expiry in production
//! for stream in TcpListener::bind("127.0.0.1:9000")?.incoming() {
//!     let mut stream = stream?;
//!     let mut reader = BufReader::new(stream.try_clone()?);
//!     let mut headers = Vec::new();
//!     let mut line = String::new();
//!     reader.read_line(&mut line)?; // request line
//!     loop {
//!         line.clear();
//!         reader.read_line(&mut line)?;
//!         match line.trim_end().split_once(':') {
//!             Some((name, value)) => headers.push((name.to_string(), value.trim().to_string())),
//!             None => break,
//!         }
//!     }
//!     let length = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
//!         .and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
//!     let mut body = vec![0; length];
//!     reader.read_exact(&mut body)?;
//!     let status = match verifier.verify(&headers, &body) {
//!         Err(e) => { eprintln!("refused: {e}"); "401 Unauthorized" }
//!         Ok(()) => {
//!             let id = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("x-hookd-event-id"))
//!                 .map(|(_, v)| v.clone()).unwrap_or_default();
//!             if seen.insert(id.clone()) {
//!                 println!("event {id}: {}", String::from_utf8_lossy(&body));
//!             }
//!             "204 No Content"
//!         }
//!     };
//!     write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n")?;
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! With axum, the `axum` feature's `VerifiedWebhook` extractor does the
//! verification before the handler runs (see `examples/receiver.rs`).
//! Endpoints may instead use the Standard Webhooks scheme: see [`standard`].
//!
//! Verification compares in constant time, accepts a header with several
//! signatures and a verifier with several secrets (either may be rotated), and
//! refuses timestamps outside a tolerance (default five minutes, both ways), so
//! a captured request cannot be replayed later.

#![warn(missing_docs)]

#[cfg(feature = "axum")]
pub mod axum;
pub mod standard;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The scheme tag in front of every hex signature.
pub const SCHEME: &str = "sha256=";

/// Default prefix of hookd's headers (`X-Hookd-Timestamp`, ...).
pub const DEFAULT_PREFIX: &str = "X-Hookd";

/// Default tolerance between a delivery's timestamp and the receiver's clock.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a delivery did not verify. Each variant says what the receiver should look at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header the scheme needs is not in the request.
    #[error("missing header: the request has no {0} header")]
    MissingHeader(&'static str),
    /// The timestamp header is not Unix seconds.
    #[error("malformed timestamp header: expected unix seconds, got {0:?}")]
    MalformedTimestamp(String),
    /// The signature header is not in the scheme's form.
    #[error(
        "malformed signature header: expected `sha256=<64 hex>` (comma-separated when several), or `v1,<base64>` (space-separated) for Standard Webhooks"
    )]
    MalformedSignature,
    /// The request was signed longer ago than the tolerance.
    #[error(
        "timestamp too old: signed {age_secs}s ago, tolerance is {tolerance_secs}s (replayed or delayed request)"
    )]
    TimestampTooOld {
        /// How long ago it was signed.
        age_secs: u64,
        /// How old a signature may be.
        tolerance_secs: u64,
    },
    /// The request was signed further ahead of this clock than the tolerance.
    #[error(
        "timestamp in the future: signed {ahead_secs}s ahead of this clock, tolerance is {tolerance_secs}s (check clock sync)"
    )]
    TimestampInFuture {
        /// How far ahead of this clock it was signed.
        ahead_secs: u64,
        /// How far ahead a signature may be.
        tolerance_secs: u64,
    },
    /// No signature in the header is the body's under this secret.
    #[error(
        "no signature matches: wrong secret, or the body was changed (verify the raw bytes, not re-serialized JSON)"
    )]
    NoMatch,
    /// The secret is not in the scheme's form.
    #[error("malformed secret: a Standard Webhooks secret is `whsec_` followed by base64")]
    MalformedSecret,
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    #[allow(clippy::expect_used)]
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// One signature, `sha256=<hex>`, of `"{timestamp}.{body}"` under `secret`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    let mut out = String::with_capacity(SCHEME.len() + 64);
    out.push_str(SCHEME);
    out.push_str(&hex::encode(digest));
    out
}

/// The signature header value for a set of secrets, newest first:
/// `sha256=<a>,sha256=<b>`. With one secret it is exactly [`sign`].
pub fn signature_header<S: AsRef<[u8]>>(secrets: &[S], timestamp: i64, body: &[u8]) -> String {
    let mut out = String::with_capacity(secrets.len() * (SCHEME.len() + 65));
    for (i, secret) in secrets.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&sign(secret.as_ref(), timestamp, body));
    }
    out
}

/// Parses a signature header into raw 32-byte digests.
pub fn parse_signature_header(header: &str) -> Result<Vec<[u8; 32]>, VerifyError> {
    let mut digests = Vec::new();
    for part in header.split(',') {
        let part = part.trim();
        let hex_part = part
            .strip_prefix(SCHEME)
            .ok_or(VerifyError::MalformedSignature)?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut digest).map_err(|_| VerifyError::MalformedSignature)?;
        digests.push(digest);
    }
    if digests.is_empty() {
        return Err(VerifyError::MalformedSignature);
    }
    Ok(digests)
}

impl VerifyError {
    /// A stable code for the error, as used in `testdata/vectors.json`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::MalformedTimestamp(_) => "malformed_timestamp",
            Self::MalformedSignature => "malformed_signature",
            Self::TimestampTooOld { .. } => "timestamp_too_old",
            Self::TimestampInFuture { .. } => "timestamp_in_future",
            Self::NoMatch => "no_match",
            Self::MalformedSecret => "malformed_secret",
        }
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A request's headers, looked up by name without regard to case.
pub trait Headers {
    /// The value of header `name` (any case), if present.
    fn header(&self, name: &str) -> Option<&str>;
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for [(K, V)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Headers for [(K, V); N] {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for Vec<(K, V)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl<S: std::hash::BuildHasher> Headers for std::collections::HashMap<String, String, S> {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Headers for std::collections::BTreeMap<String, String> {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `http::HeaderMap` (axum, hyper, reqwest): with the `http` feature.
#[cfg(feature = "http")]
impl Headers for http::HeaderMap {
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Parses a timestamp header and checks it is within `tolerance` of `now`.
pub(crate) fn check_timestamp(
    timestamp: &str,
    now: i64,
    tolerance: Duration,
) -> Result<i64, VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::MalformedTimestamp(timestamp.to_string()))?;
    let tolerance_secs = tolerance.as_secs();
    if now > ts && now.abs_diff(ts) > tolerance_secs {
        return Err(VerifyError::TimestampTooOld {
            age_secs: now.abs_diff(ts),
            tolerance_secs,
        });
    }
    if ts > now && ts.abs_diff(now) > tolerance_secs {
        return Err(VerifyError::TimestampInFuture {
            ahead_secs: ts.abs_diff(now),
            tolerance_secs,
        });
    }
    Ok(ts)
}

/// Checks deliveries against one or several secrets (several during a rotation).
#[derive(Clone)]
pub struct Verifier {
    secrets: Vec<Vec<u8>>,
    tolerance: Duration,
    prefix: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl Verifier {
    /// A verifier for one secret with the default tolerance.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self::with_secrets([secret])
    }

    /// A verifier that accepts a signature made with any of `secrets`.
    pub fn with_secrets<S: AsRef<[u8]>>(secrets: impl IntoIterator<Item = S>) -> Self {
        Self {
            secrets: secrets.into_iter().map(|s| s.as_ref().to_vec()).collect(),
            tolerance: DEFAULT_TOLERANCE,
            prefix: DEFAULT_PREFIX.to_string(),
        }
    }

    /// The header prefix the deployment uses (default `X-Hookd`).
    pub fn header_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How far the timestamp may be from this clock, in either direction.
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies a request's headers and raw body against the system clock.
    /// Reads `<prefix>-Timestamp` and `<prefix>-Signature` (case-insensitive).
    pub fn verify(
        &self,
        headers: &(impl Headers + ?Sized),
        body: &[u8],
    ) -> Result<(), VerifyError> {
        self.verify_at(headers, body, unix_now())
    }

    /// [`Verifier::verify`] as if the clock read `now` (unix seconds).
    pub fn verify_at(
        &self,
        headers: &(impl Headers + ?Sized),
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let timestamp = headers.header(&format!("{}-Timestamp", self.prefix));
        let signature = headers.header(&format!("{}-Signature", self.prefix));
        self.verify_parts_at(timestamp, signature, body, now)
    }

    /// Verifies against the system clock, given the two header values
    /// (`None` when a header is absent) and the raw body.
    pub fn verify_parts(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        self.verify_parts_at(timestamp, signature, body, unix_now())
    }

    /// [`Verifier::verify_parts`] as if the clock read `now` (unix seconds).
    pub fn verify_parts_at(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let timestamp = timestamp.ok_or(VerifyError::MissingHeader("Timestamp"))?;
        let signature = signature.ok_or(VerifyError::MissingHeader("Signature"))?;
        let digests = parse_signature_header(signature)?;
        let ts = check_timestamp(timestamp, now, self.tolerance)?;
        for secret in &self.secrets {
            for digest in &digests {
                // verify_slice compares in constant time.
                if mac(secret, ts, body).verify_slice(digest).is_ok() {
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

    const KNOWN: &str = "sha256=1b3d69df55f1e52f05224ba94a5162abeb17ef52cd7f4948c390f810d6a87e98";

    #[test]
    fn known_vector() {
        assert_eq!(sign(b"secret", 1636936200, b"hello !"), KNOWN);
    }

    #[test]
    fn verifies_known_vector_within_tolerance() {
        let v = Verifier::new("secret");
        v.verify_parts_at(
            Some("1636936200"),
            Some(KNOWN),
            b"hello !",
            1636936200 + 299,
        )
        .unwrap();
        v.verify_parts_at(
            Some("1636936200"),
            Some(KNOWN),
            b"hello !",
            1636936200 - 299,
        )
        .unwrap();
    }

    #[test]
    fn rejects_tampered_body_and_wrong_secret() {
        assert_eq!(
            Verifier::new("secret").verify_parts_at(
                Some("1636936200"),
                Some(KNOWN),
                b"hello!",
                1636936200
            ),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            Verifier::new("other").verify_parts_at(
                Some("1636936200"),
                Some(KNOWN),
                b"hello !",
                1636936200
            ),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn rejects_old_and_future_timestamps() {
        let v = Verifier::new("secret");
        assert!(matches!(
            v.verify_parts_at(
                Some("1636936200"),
                Some(KNOWN),
                b"hello !",
                1636936200 + 301
            ),
            Err(VerifyError::TimestampTooOld { age_secs: 301, .. })
        ));
        assert!(matches!(
            v.verify_parts_at(
                Some("1636936200"),
                Some(KNOWN),
                b"hello !",
                1636936200 - 301
            ),
            Err(VerifyError::TimestampInFuture {
                ahead_secs: 301,
                ..
            })
        ));
        let wide = Verifier::new("secret").tolerance(Duration::from_secs(1000));
        wide.verify_parts_at(
            Some("1636936200"),
            Some(KNOWN),
            b"hello !",
            1636936200 + 900,
        )
        .unwrap();
    }

    #[test]
    fn missing_and_malformed_headers() {
        let v = Verifier::new("secret");
        assert_eq!(
            v.verify_parts_at(None, Some(KNOWN), b"", 0),
            Err(VerifyError::MissingHeader("Timestamp"))
        );
        assert_eq!(
            v.verify_parts_at(Some("1"), None, b"", 1),
            Err(VerifyError::MissingHeader("Signature"))
        );
        assert!(matches!(
            v.verify_parts_at(Some("soon"), Some(KNOWN), b"", 1),
            Err(VerifyError::MalformedTimestamp(_))
        ));
        for bad in [
            "",
            "sha256=",
            "sha256=zz",
            "md5=00",
            "1b3d69df55f1e52f",
            "sha256=abcd",
        ] {
            assert_eq!(
                v.verify_parts_at(Some("1636936200"), Some(bad), b"hello !", 1636936200),
                Err(VerifyError::MalformedSignature),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn several_secrets_and_several_signatures() {
        let header = signature_header(&["new", "old"], 100, b"body");
        assert_eq!(
            header,
            format!(
                "{},{}",
                sign(b"new", 100, b"body"),
                sign(b"old", 100, b"body")
            )
        );
        // A receiver holding either secret alone verifies.
        Verifier::new("new")
            .verify_parts_at(Some("100"), Some(&header), b"body", 100)
            .unwrap();
        Verifier::new("old")
            .verify_parts_at(Some("100"), Some(&header), b"body", 100)
            .unwrap();
        // A receiver mid-rotation holding both verifies a single-signature header.
        let single = sign(b"old", 100, b"body");
        Verifier::with_secrets(["new", "old"])
            .verify_parts_at(Some("100"), Some(&single), b"body", 100)
            .unwrap();
        assert_eq!(
            Verifier::new("third").verify_parts_at(Some("100"), Some(&header), b"body", 100),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn reads_headers_by_name_and_prefix() {
        let headers = vec![
            ("x-hookd-timestamp".to_string(), "1636936200".to_string()),
            ("X-HOOKD-SIGNATURE".to_string(), KNOWN.to_string()),
        ];
        Verifier::new("secret")
            .verify_at(&headers, b"hello !", 1636936200)
            .unwrap();
        let kanera = [
            ("X-Kanera-Timestamp", "1636936200"),
            ("X-Kanera-Signature", KNOWN),
        ];
        assert_eq!(
            Verifier::new("secret").verify_at(&kanera, b"hello !", 1636936200),
            Err(VerifyError::MissingHeader("Timestamp"))
        );
        Verifier::new("secret")
            .header_prefix("X-Kanera")
            .verify_at(&kanera, b"hello !", 1636936200)
            .unwrap();
    }

    #[test]
    fn debug_does_not_print_secrets() {
        let printed = format!("{:?}", Verifier::new("topsecret"));
        assert!(!printed.contains("topsecret"), "{printed}");
    }
}
