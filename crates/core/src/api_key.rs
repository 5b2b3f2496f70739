//! Admin API keys: their format (`hookd_<env>_<secret>`), scopes, and the
//! hash that is all hookd keeps of them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a key may do. Scopes are levels: `admin` includes `write`, which
/// includes `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }

    /// Whether a key with this scope may do what needs `required`.
    pub fn allows(self, required: Scope) -> bool {
        self >= required
    }
}

/// The environments a key can be minted for (the `<env>` in its text).
pub const KEY_ENVS: [&str; 4] = ["live", "stg", "dev", "test"];

/// A key as stored: everything but the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub workspace: String,
    pub scope: Scope,
    pub env: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The first characters of the key (`hookd_live_ab12`), to recognise it in lists.
    pub prefix: String,
    pub created_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<i64>,
}

/// Mints a key for `env`: the text to show once, and its hash to store.
pub fn new_key(env: &str) -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    let key = format!("hookd_{env}_{}", hex::encode(bytes));
    let hash = hash_key(&key);
    Ok((key, hash))
}

/// Whether `token` looks like a hookd key (`hookd_<env>_<48 hex digits>`).
pub fn is_well_formed(token: &str) -> bool {
    let Some(rest) = token.strip_prefix("hookd_") else {
        return false;
    };
    let Some((env, secret)) = rest.split_once('_') else {
        return false;
    };
    KEY_ENVS.contains(&env) && secret.len() == 48 && secret.bytes().all(|b| b.is_ascii_hexdigit())
}

/// SHA-256 of the key, hex. Keys carry 192 random bits, so a fast hash is
/// enough: there is nothing to guess by brute force.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_well_formed_and_hashed() {
        let (key, hash) = new_key("live").unwrap();
        assert!(is_well_formed(&key), "{key}");
        assert_eq!(hash, hash_key(&key));
        assert_ne!(hash, hash_key(&new_key("live").unwrap().0));
        assert!(!is_well_formed("hookd_prod_abc"));
        assert!(!is_well_formed(&key.replace("live", "prod")));
        assert!(!is_well_formed(&format!("{key}0")));
        assert!(!is_well_formed("Bearer x"));
    }

    #[test]
    fn scopes_are_levels() {
        assert!(Scope::Admin.allows(Scope::Write));
        assert!(Scope::Write.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Write));
        assert!(!Scope::Write.allows(Scope::Admin));
    }
}
