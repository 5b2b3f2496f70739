//! Reading delivery history: one delivery with its attempts, or a filtered page.

use std::collections::HashMap;

use hookd_core::{Attempt, Delivery, DeliveryStatus};

use crate::{Result, Store, StoreError};

/// Which deliveries to list. Every filter is optional; they combine with AND.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this workspace's deliveries (uses the workspace's history index).
    pub workspace: Option<String>,
    pub endpoint: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<String>,
    pub event_id: Option<String>,
    /// Created at or after (ms).
    pub since_ms: Option<i64>,
    /// Created at or before (ms).
    pub until_ms: Option<i64>,
    /// Start after this position (the previous page's `next`).
    pub before: Option<Cursor>,
    /// Newest first; at most this many.
    pub limit: usize,
}

/// A position in the history order (newest first: creation time, then id,
/// both descending). Written as `<ms>.<delivery id>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub created_ms: i64,
    pub id: String,
}

impl Cursor {
    pub fn parse(s: &str) -> Option<Self> {
        let (ms, id) = s.split_once('.')?;
        Some(Self {
            created_ms: ms.parse().ok()?,
            id: id.to_string(),
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.created_ms, self.id)
    }
}

/// One page of history.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub deliveries: Vec<Delivery>,
    /// Where the next page starts; `None` when the history ends here. A page
    /// can hold fewer than `limit` deliveries and still have a next one: one
    /// request examines at most [`SCAN_BUDGET`] index entries per index.
    pub next: Option<Cursor>,
}

/// Index entries one request examines per index before it returns a page.
pub const SCAN_BUDGET: usize = 5_000;

fn from_hash(id: &str, h: &HashMap<String, String>) -> Result<Delivery> {
    let field = |name: &str| {
        h.get(name)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("delivery {id} has no {name}")))
    };
    let status = field("status")?;
    Ok(Delivery {
        id: id.to_string(),
        endpoint_id: field("endpoint")?,
        workspace: field("workspace")?,
        event_id: field("event_id")?,
        event_type: field("type")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery {id}: status {status}")))?,
        attempts_made: field("attempts")?.parse().unwrap_or(0),
        created_at_ms: field("created")?.parse().unwrap_or(0),
        next_attempt_at_ms: h.get("next_at").and_then(|t| t.parse().ok()),
        attempts: Vec::new(),
    })
}

impl DeliveryFilter {
    fn matches(&self, d: &Delivery) -> bool {
        self.status.is_none_or(|s| s == d.status)
            && self.event_type.as_ref().is_none_or(|t| *t == d.event_type)
            && self.event_id.as_ref().is_none_or(|e| *e == d.event_id)
            && self.workspace.as_ref().is_none_or(|w| *w == d.workspace)
    }
}

impl Store {
    /// One delivery with every attempt.
    pub async fn delivery(&self, id: &str) -> Result<Delivery> {
        let mut conn = self.conn.clone();
        for p in self.keys.all_partitions() {
            let (h, attempts): (HashMap<String, String>, Vec<String>) = redis::pipe()
                .hgetall(p.delivery(id))
                .lrange(p.attempts(id), 0, -1)
                .query_async(&mut conn)
                .await?;
            if h.is_empty() {
                continue;
            }
            let mut d = from_hash(id, &h)?;
            d.attempts = attempts
                .iter()
                .map(|a| {
                    serde_json::from_str::<Attempt>(a)
                        .map_err(|e| StoreError::Corrupt(format!("attempt of {id}: {e}")))
                })
                .collect::<Result<_>>()?;
            return Ok(d);
        }
        Err(StoreError::NotFound(format!("delivery {id}")))
    }

    /// A page of deliveries, newest first, without their attempts.
    pub async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Page> {
        let indexes: Vec<(crate::PartitionKeys, String)> =
            match (&filter.endpoint, &filter.workspace) {
                (Some(ep), _) => {
                    let p = self.history_partition(ep).await?;
                    let index = p.endpoint_deliveries(ep);
                    vec![(p, index)]
                }
                (None, Some(ws)) => {
                    let p = self.keys.partition_of(ws);
                    let index = p.workspace_deliveries(ws);
                    vec![(p, index)]
                }
                (None, None) => self
                    .keys
                    .all_partitions()
                    .map(|p| {
                        let index = p.deliveries();
                        (p, index)
                    })
                    .collect(),
            };
        let mut found = Vec::new();
        // The deepest position every index was scanned to, when a scan stopped
        // on its budget: results past it could be missing entries of that index.
        let mut frontier: Option<Cursor> = None;
        for (p, index) in &indexes {
            let (matches, stopped_at) = self.scan_index(p, index, filter).await?;
            found.extend(matches);
            if let Some(at) = stopped_at {
                frontier = Some(frontier.map_or(at.clone(), |f| f.max(at)));
            }
        }
        let position = |d: &Delivery| Cursor {
            created_ms: d.created_at_ms,
            id: d.id.clone(),
        };
        found.sort_by_key(|d| std::cmp::Reverse(position(d)));
        if let Some(f) = &frontier {
            found.retain(|d| position(d) >= *f);
        }
        let next = if found.len() > filter.limit {
            found.truncate(filter.limit);
            found.last().map(position)
        } else {
            frontier
        };
        Ok(Page {
            deliveries: found,
            next,
        })
    }

    /// Up to `limit + 1` matches from one index, and, when the scan budget
    /// ran out first, the position it stopped at.
    async fn scan_index(
        &self,
        p: &crate::PartitionKeys,
        index: &str,
        filter: &DeliveryFilter,
    ) -> Result<(Vec<Delivery>, Option<Cursor>)> {
        const PAGE: usize = 500;
        let mut conn = self.conn.clone();
        let mut max = filter.until_ms.unwrap_or(i64::MAX);
        if let Some(c) = &filter.before {
            max = max.min(c.created_ms);
        }
        let min = filter
            .since_ms
            .map_or("-inf".to_string(), |ms| ms.to_string());
        let mut out = Vec::new();
        let (mut offset, mut scanned) = (0, 0);
        loop {
            let entries: Vec<(String, i64)> = redis::cmd("ZREVRANGEBYSCORE")
                .arg(index)
                .arg(max)
                .arg(&min)
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(offset)
                .arg(PAGE)
                .query_async(&mut conn)
                .await?;
            let last_page = entries.len() < PAGE;
            offset += entries.len();
            let entries: Vec<(String, i64)> = entries
                .into_iter()
                .filter(|(id, ms)| {
                    filter
                        .before
                        .as_ref()
                        .is_none_or(|c| *ms < c.created_ms || (*ms == c.created_ms && *id < c.id))
                })
                .collect();
            let mut pipe = redis::pipe();
            for (id, _) in &entries {
                pipe.hgetall(p.delivery(id));
            }
            let hashes: Vec<HashMap<String, String>> = if entries.is_empty() {
                Vec::new()
            } else {
                pipe.query_async(&mut conn).await?
            };
            for ((id, ms), h) in entries.iter().zip(hashes) {
                scanned += 1;
                if !h.is_empty() {
                    let d = from_hash(id, &h)?;
                    if filter.matches(&d) {
                        out.push(d);
                        if out.len() > filter.limit {
                            return Ok((out, None));
                        }
                    }
                }
                if scanned >= SCAN_BUDGET && !last_page {
                    let at = Cursor {
                        created_ms: *ms,
                        id: id.clone(),
                    };
                    return Ok((out, Some(at)));
                }
            }
            if last_page {
                return Ok((out, None));
            }
        }
    }

    /// The partition holding an endpoint's history. A deleted endpoint is no
    /// longer in the id index; with one partition its history stays readable.
    async fn history_partition(&self, endpoint: &str) -> Result<crate::PartitionKeys> {
        match self.endpoint_workspace(endpoint).await? {
            Some(ws) => Ok(self.keys.partition_of(&ws)),
            None if self.keys.partitions() == 1 => Ok(self.keys.partition(0)),
            None => Err(StoreError::NotFound(format!("endpoint {endpoint}"))),
        }
    }
}
