//! Event-type discovery: the types each workspace's events carried (count and
//! last seen, counted by ingest) and the workspace's catalog entries set
//! through the API.

use std::collections::{BTreeMap, HashMap};

use crate::{Result, Store};

/// An event type seen on the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeSeen {
    /// Events of the type ingested for the workspace.
    pub count: u64,
    /// When the last of them was ingested (Unix ms).
    pub last_seen_ms: i64,
}

impl Store {
    /// Types seen in a workspace's events, by name.
    pub async fn types_seen(&self, workspace: &str) -> Result<BTreeMap<String, TypeSeen>> {
        let p = self.keys.partition_of(workspace);
        let mut conn = self.conn.clone();
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(p.types_seen(workspace))
            .query_async(&mut conn)
            .await?;
        let mut out = BTreeMap::new();
        for (field, value) in &fields {
            if let Some(name) = field.strip_prefix("n:") {
                out.insert(
                    name.to_string(),
                    TypeSeen {
                        count: value.parse().unwrap_or(0),
                        last_seen_ms: fields
                            .get(&format!("t:{name}"))
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(0),
                    },
                );
            }
        }
        Ok(out)
    }

    /// A workspace's catalog entries (JSON documents) by type name.
    pub async fn catalog(&self, workspace: &str) -> Result<BTreeMap<String, String>> {
        let p = self.keys.partition_of(workspace);
        let mut conn = self.conn.clone();
        Ok(redis::cmd("HGETALL")
            .arg(p.catalog(workspace))
            .query_async(&mut conn)
            .await?)
    }

    /// Adds or replaces a workspace's catalog entry.
    pub async fn put_catalog_entry(&self, workspace: &str, name: &str, json: &str) -> Result<()> {
        let p = self.keys.partition_of(workspace);
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("HSET")
            .arg(p.catalog(workspace))
            .arg(name)
            .arg(json)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}
