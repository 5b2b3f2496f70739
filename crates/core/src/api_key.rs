//! Admin API keys: their format (`<prefix>_<env>_<secret>`, the prefix
//! `hookd` unless `[admin] key_prefix` says otherwise), scopes, and the hash
//! that is all hookd keeps of them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a key may do. Scopes are levels: `admin` includes `write`, which
/// includes `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read anything of the workspace.
    Read,
    /// Also change endpoints, publish, redeliver and recover.
    Write,
    /// Also manage the workspace's keys and catalog, and read its audit log.
    Admin,
}

impl Scope {
    /// Every scope, narrowest first.
    pub const ALL: [Self; 3] = [Self::Read, Self::Write, Self::Admin];

    /// `read`, `write` or `admin`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// The name the API and the CLI use.
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
    /// `key_...`.
    pub id: String,
    /// The workspace it may act on.
    pub workspace: String,
    /// What it may do there.
    pub scope: Scope,
    /// The `<env>` in its text: `live`, `stg`, `dev` or `test`.
    pub env: String,
    /// A name for people to recognise it by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The first characters of the key (`hookd_live_ab12`), to recognise it in lists.
    pub prefix: String,
    /// When it was made (Unix ms).
    pub created_at_ms: i64,
    /// When it was revoked (Unix ms); it gets 401 since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<i64>,
    /// After this the key is refused (401 `key_expired`); `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// When a request last used it, to the minute (kept apart from the
    /// record; filled in by listings).
    #[serde(skip)]
    pub last_used_at_ms: Option<i64>,
}

/// The prefix of keys when `[admin] key_prefix` is not set.
pub const DEFAULT_PREFIX: &str = "hookd";

/// Whether `prefix` can start a key: 1 to 32 lower-case letters and digits,
/// starting with a letter (so `<prefix>_<env>_` splits one way only).
pub fn is_valid_prefix(prefix: &str) -> bool {
    (1..=32).contains(&prefix.len())
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Mints a key `<prefix>_<env>_<48 hex digits>`: the text to show once, and
/// its hash to store.
pub fn new_key(prefix: &str, env: &str) -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    let key = format!("{prefix}_{env}_{}", hex::encode(bytes));
    let hash = hash_key(&key);
    Ok((key, hash))
}

/// Whether `token` looks like a key (`<prefix>_<env>_<48 hex digits>`),
/// under any valid prefix: keys made before a platform changed
/// `[admin] key_prefix` keep working (they are found by their hash).
pub fn is_well_formed(token: &str) -> bool {
    let Some((prefix, rest)) = token.split_once('_') else {
        return false;
    };
    if !is_valid_prefix(prefix) {
        return false;
    }
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
        let (key, hash) = new_key("hookd", "live").unwrap();
        assert!(is_well_formed(&key), "{key}");
        assert_eq!(hash, hash_key(&key));
        assert_ne!(hash, hash_key(&new_key("hookd", "live").unwrap().0));
        let (kanera, _) = new_key("kanera", "stg").unwrap();
        assert!(
            kanera.starts_with("kanera_stg_") && is_well_formed(&kanera),
            "{kanera}"
        );
        assert!(!is_well_formed(&kanera.replacen("kanera", "Kanera", 1)));
        assert!(is_valid_prefix("wbk") && !is_valid_prefix("9x") && !is_valid_prefix("a_b"));
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
