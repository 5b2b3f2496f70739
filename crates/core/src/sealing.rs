//! Endpoint secrets at rest: sealed with XChaCha20-Poly1305 under a key
//! named by an id, so the key can be rotated (`hookd secrets reencrypt`
//! re-seals everything under the current key while older keys still open).
//!
//! A sealed secret is `enc:<key id>:<base64 of nonce and ciphertext>`; the key
//! id is also the associated data, so a value cannot be moved to another key's
//! name. Text without the `enc:` prefix is a secret stored in clear (before a
//! key was configured) and is returned as is.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

const PREFIX: &str = "enc:";

/// Why a sealing key or a sealed value is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// A configured key is not `<id>:<base64 of 32 bytes>`.
    #[error("secret key {0:?}: expected <id>:<base64 of 32 bytes>")]
    BadKey(String),
    /// `[secrets] current` names no configured key.
    #[error("the current secret key {0:?} is not among the configured keys")]
    NoCurrentKey(String),
    /// A value was sealed with a key no longer configured.
    #[error("a secret is sealed with key {0:?}, which is not configured")]
    UnknownKey(String),
    /// A value does not open under the key it names.
    #[error("a sealed secret is corrupt or was sealed with another key of the same id")]
    Corrupt,
    /// The system had no randomness for a nonce.
    #[error("no randomness for a nonce")]
    Random,
}

/// The configured keys and which one seals. Its `Debug` shows key ids only.
#[derive(Clone)]
pub struct Sealer {
    current: String,
    keys: HashMap<String, XChaCha20Poly1305>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Sealer")
            .field("current", &self.current)
            .field("key_ids", &ids)
            .finish()
    }
}

impl Sealer {
    /// `keys` are `<id>:<base64 of 32 random bytes>`; `current` names the sealing one.
    pub fn new<S: AsRef<str>>(keys: &[S], current: &str) -> Result<Self, SealError> {
        let mut map = HashMap::new();
        for k in keys {
            let k = k.as_ref().trim();
            let bad = || SealError::BadKey(k.split(':').next().unwrap_or_default().to_string());
            let (id, material) = k.split_once(':').ok_or_else(bad)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(material.trim())
                .map_err(|_| bad())?;
            if id.is_empty() || id.contains(':') || bytes.len() != 32 {
                return Err(bad());
            }
            map.insert(
                id.to_string(),
                XChaCha20Poly1305::new(Key::from_slice(&bytes)),
            );
        }
        if !map.contains_key(current) {
            return Err(SealError::NoCurrentKey(current.to_string()));
        }
        Ok(Self {
            current: current.to_string(),
            keys: map,
        })
    }

    /// The id of the key new values are sealed with.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// Seals a secret under the current key.
    pub fn seal(&self, secret: &str) -> Result<String, SealError> {
        let cipher = &self.keys[&self.current];
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|_| SealError::Random)?;
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: self.current.as_bytes(),
                },
            )
            .map_err(|_| SealError::Corrupt)?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}:{}", self.current, B64.encode(blob)))
    }

    /// Opens a sealed secret (text in clear passes through).
    pub fn open(&self, stored: &str) -> Result<String, SealError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let (id, blob) = rest.split_once(':').ok_or(SealError::Corrupt)?;
        let cipher = self
            .keys
            .get(id)
            .ok_or_else(|| SealError::UnknownKey(id.to_string()))?;
        let blob = B64.decode(blob).map_err(|_| SealError::Corrupt)?;
        if blob.len() < 24 {
            return Err(SealError::Corrupt);
        }
        let (nonce, sealed) = blob.split_at(24);
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| SealError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| SealError::Corrupt)
    }

    /// Whether a stored value is sealed under the current key already.
    pub fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(PREFIX)
            .and_then(|r| r.split_once(':'))
            .is_some_and(|(id, _)| id == self.current)
    }
}

/// Whether a stored value is sealed at all.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";

    #[test]
    fn seals_opens_and_rotates() {
        let one = Sealer::new(&[K1], "k1").unwrap();
        let sealed = one.seal("hks_secret").unwrap();
        assert!(sealed.starts_with("enc:k1:") && !sealed.contains("hks_secret"));
        assert_ne!(
            sealed,
            one.seal("hks_secret").unwrap(),
            "fresh nonce each time"
        );
        assert_eq!(one.open(&sealed).unwrap(), "hks_secret");
        assert_eq!(one.open("hks_clear").unwrap(), "hks_clear");

        let both = Sealer::new(&[K1, K2], "k2").unwrap();
        assert_eq!(
            both.open(&sealed).unwrap(),
            "hks_secret",
            "old keys still open"
        );
        assert!(!both.is_current(&sealed));
        assert!(both.is_current(&both.seal("x").unwrap()));
        let two = Sealer::new(&[K2], "k2").unwrap();
        assert_eq!(two.open(&sealed), Err(SealError::UnknownKey("k1".into())));

        let tampered = sealed.replace("enc:k1:", "enc:k1:A");
        assert!(one.open(&tampered).is_err());
        assert!(
            !format!("{one:?}").contains("AAEC"),
            "Debug shows no key material"
        );
        assert!(Sealer::new(&["k1:short"], "k1").is_err());
        assert!(Sealer::new(&[K1], "k9").is_err());
    }
}
