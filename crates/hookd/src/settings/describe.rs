//! `hookd config`: every effective setting, where it came from (the file,
//! an environment variable, the built-in default), secrets redacted.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::Config;

/// One effective setting, for `hookd config`.
#[derive(Debug, Serialize)]
pub struct Setting {
    /// `section.key`.
    pub key: String,
    /// The value, secrets redacted.
    pub value: serde_json::Value,
    /// `file <path>`, `env HOOKD__SECTION__KEY` or `default`.
    pub source: String,
}

impl Config {
    /// Every setting with its effective value (secrets redacted) and source.
    pub fn describe(&self) -> anyhow::Result<Vec<Setting>> {
        let file = match &self.file {
            Some(path) => Some(
                config::Config::builder()
                    .add_source(config::File::from(path.as_path()))
                    .build()
                    .context("reading configuration")?,
            ),
            None => None,
        };
        let serde_json::Value::Object(sections) = serde_json::to_value(self)? else {
            anyhow::bail!("the configuration did not serialise to an object");
        };
        let mut out = Vec::new();
        for (section, keys) in sections {
            let serde_json::Value::Object(keys) = keys else {
                continue;
            };
            for (key, value) in keys {
                let name = format!("{section}.{key}");
                let env = format!("HOOKD__{}__{}", section.to_uppercase(), key.to_uppercase());
                let source = if std::env::var_os(&env).is_some() {
                    format!("env {env}")
                } else if file
                    .as_ref()
                    .is_some_and(|f| f.get::<config::Value>(&name).is_ok())
                {
                    format!(
                        "file {}",
                        self.file.as_deref().unwrap_or(Path::new("")).display()
                    )
                } else {
                    "default".to_string()
                };
                out.push(Setting {
                    value: redacted(&name, value),
                    key: name,
                    source,
                });
            }
        }
        Ok(out)
    }
}

fn redacted(name: &str, value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (name, value) {
        ("redis.url", Value::String(url)) => Value::String(redact_url(&url)),
        // A libpq `key=value` string may hold `password=`: shown only as set.
        ("history.postgres_url", Value::String(url)) if !url.contains("://") && !url.is_empty() => {
            Value::String("***".into())
        }
        ("history.postgres_url", Value::String(url)) => Value::String(redact_url(&url)),
        ("secrets.keys", Value::Array(keys)) => Value::Array(
            keys.into_iter()
                .map(|k| {
                    let id = k.as_str().and_then(|k| k.split_once(':')).map(|(id, _)| id);
                    Value::String(format!("{}:***", id.unwrap_or("?")))
                })
                .collect(),
        ),
        (_, value) => value,
    }
}

/// A URL (or comma-separated URLs) with each password replaced by `***`:
/// `redis://user:pw@host:6379` -> `redis://user:***@host:6379`.
pub fn redact_url(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let Some((scheme, rest)) = url.split_once("://") else {
                // Not a URL: say nothing of what it holds but its shape.
                return if url.contains('@') {
                    "***".to_string()
                } else {
                    url.to_string()
                };
            };
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                None => url.to_string(),
                Some(at) => {
                    let user = rest[..at].split(':').next().unwrap_or_default();
                    let user = if rest[..at].contains(':') {
                        format!("{user}:***")
                    } else {
                        "***".to_string()
                    };
                    format!("{scheme}://{user}@{}", &rest[at + 1..])
                }
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod redaction_tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_a_log() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("redis://:s3cret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact_url("rediss://app:s3cret@host/0"),
            "rediss://app:***@host/0"
        );
        assert_eq!(redact_url("redis://s3cret@host"), "redis://***@host");
        assert_eq!(
            redact_url("redis://a:p1@h1:7000,redis://b:p2@h2:7000"),
            "redis://a:***@h1:7000,redis://b:***@h2:7000"
        );
        assert!(!redact_url("user:s3cret@host").contains("s3cret"));
    }
}
