//! Reading delivery history: one delivery with its attempts, or a filtered
//! page. Every delivery has a member in its endpoint's history log (see
//! `log.rs`); one that outlived its first attempt also has durable state,
//! which wins where both exist.

use std::collections::HashMap;

use hookd_core::delivery::{delivery_id, entry_time_ms, parse_delivery_id};
use hookd_core::{Attempt, Delivery, DeliveryStatus};

use crate::log::LogRecord;

use crate::{Result, Store, StoreError};

/// Which deliveries to list. Every filter is optional; they combine with AND.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this workspace's deliveries (reads the logs of its endpoints).
    pub workspace: Option<String>,
    /// Only this endpoint's deliveries (reads its log alone).
    pub endpoint: Option<String>,
    /// Only deliveries with this status.
    pub status: Option<DeliveryStatus>,
    /// Only deliveries of this event type.
    pub event_type: Option<String>,
    /// Only deliveries of this event.
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
    /// The delivery's creation time (ms).
    pub created_ms: i64,
    /// The delivery's id.
    pub id: String,
}

impl Cursor {
    /// What a client may pass as `before`: a cursor from an earlier page's
    /// `next`, or a time in any of `hookd_core::time::WHEN_FORMS` meaning
    /// "created before" (a duration counts back from `now_ms`). Why not,
    /// when it is neither.
    pub fn parse_before(s: &str, now_ms: i64) -> std::result::Result<Self, String> {
        if let Some(cursor) = Self::parse(s) {
            return Ok(cursor);
        }
        // No id sorts below the empty one: exactly the deliveries created before.
        hookd_core::time::parse_when(s, now_ms, hookd_core::time::Direction::Ago)
            .map(|created_ms| Self {
                created_ms,
                id: String::new(),
            })
            .map_err(|why| format!("{why}; or a cursor from an earlier page's next"))
    }

    /// A cursor written as `<ms>.<delivery id>`.
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
    /// Newest first.
    pub deliveries: Vec<Delivery>,
    /// Where the next page starts; `None` when the history ends here. A page
    /// can hold fewer than `limit` deliveries and still have a next one: one
    /// request examines at most [`SCAN_BUDGET`] log members per log.
    pub next: Option<Cursor>,
}

/// Log members one request examines per log before it returns a page.
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
        ordering_key: h.get("okey").cloned(),
        sequence: h.get("seq").and_then(|s| s.parse().ok()),
        waiting_for: None,
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

/// A delivery as its log member records it (durable state may be newer).
fn from_record(endpoint: &str, workspace: &str, created_ms: i64, r: LogRecord) -> Delivery {
    Delivery {
        id: delivery_id(&r.entry_id, endpoint),
        endpoint_id: endpoint.to_string(),
        workspace: workspace.to_string(),
        event_id: r.event_id,
        event_type: r.event_type,
        status: r.status,
        attempts_made: u32::from(r.attempt.is_some()),
        created_at_ms: created_ms,
        next_attempt_at_ms: None,
        attempts: r.attempt.into_iter().collect(),
        ordering_key: None,
        sequence: None,
        waiting_for: None,
    }
}

/// One history log: its partition, endpoint and workspace.
struct Log {
    p: crate::PartitionKeys,
    endpoint: String,
    workspace: String,
}

impl Store {
    /// The delivery at the head of an ordered endpoint's key.
    async fn key_head(
        &self,
        p: &crate::PartitionKeys,
        endpoint: &str,
        key: &str,
    ) -> Result<Option<String>> {
        let head: Vec<String> = redis::cmd("ZRANGE")
            .arg(p.order(endpoint, key))
            .arg(0)
            .arg(0)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(head.first().and_then(|m| {
            let (ms, seq) = m.split_once('-')?;
            let seq: u64 = seq.parse().ok()?;
            Some(delivery_id(&format!("{ms}-{seq}"), endpoint))
        }))
    }

    /// One delivery with every attempt (and, while it waits behind its
    /// ordered key's head, that head).
    pub async fn delivery(&self, id: &str) -> Result<Delivery> {
        let mut conn = self.conn.clone();
        let not_found = || StoreError::NotFound(format!("delivery {id}"));
        // Durable state first (it has every attempt), in whichever partition holds it.
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
            if let (DeliveryStatus::Waiting, Some(key)) = (d.status, &d.ordering_key) {
                d.waiting_for = self.key_head(&p, &d.endpoint_id, key).await?;
            }
            d.attempts = attempts
                .iter()
                .map(|a| {
                    serde_json::from_str::<Attempt>(a)
                        .map_err(|e| StoreError::Corrupt(format!("attempt of {id}: {e}")))
                })
                .collect::<Result<_>>()?;
            return Ok(d);
        }
        // Otherwise its log member, found by creation time (the entry's).
        let (entry, endpoint) = parse_delivery_id(id).ok_or_else(not_found)?;
        let created = entry_time_ms(entry).ok_or_else(not_found)?;
        let log = self.log_of(endpoint).await?.ok_or_else(not_found)?;
        self.log_record(&log.p, endpoint, entry)
            .await?
            .map(|r| from_record(endpoint, &log.workspace, created, r))
            .ok_or_else(not_found)
    }

    /// The log member of the delivery of stream entry `entry` to `endpoint`,
    /// found by its creation time (the entry's).
    pub(crate) async fn log_record(
        &self,
        p: &crate::PartitionKeys,
        endpoint: &str,
        entry: &str,
    ) -> Result<Option<LogRecord>> {
        let Some(created) = entry_time_ms(entry) else {
            return Ok(None);
        };
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(p.log(endpoint))
            .arg(created)
            .arg(created)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(members
            .iter()
            .filter_map(|m| LogRecord::decode(m))
            .find(|r| r.entry_id == entry))
    }

    /// The log of an endpoint, deleted or not, while it has one.
    async fn log_of(&self, endpoint: &str) -> Result<Option<Log>> {
        let mut conn = self.conn.clone();
        for p in self.keys.all_partitions() {
            let ws: Option<String> = redis::cmd("HGET")
                .arg(p.logs())
                .arg(endpoint)
                .query_async(&mut conn)
                .await?;
            if let Some(workspace) = ws {
                return Ok(Some(Log {
                    p,
                    endpoint: endpoint.to_string(),
                    workspace,
                }));
            }
        }
        Ok(None)
    }

    /// The logs a filter reads: one endpoint's, a workspace's endpoints', or all.
    async fn logs_for(&self, filter: &DeliveryFilter) -> Result<Vec<Log>> {
        if let Some(ep) = &filter.endpoint {
            return Ok(self.log_of(ep).await?.into_iter().collect());
        }
        let partitions: Vec<crate::PartitionKeys> = match &filter.workspace {
            Some(ws) => vec![self.keys.partition_of(ws)],
            None => self.keys.all_partitions().collect(),
        };
        let mut conn = self.conn.clone();
        let mut out = Vec::new();
        for p in partitions {
            let logs: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(p.logs())
                .query_async(&mut conn)
                .await?;
            for (endpoint, workspace) in logs {
                if filter.workspace.as_ref().is_none_or(|w| *w == workspace) {
                    out.push(Log {
                        p: p.clone(),
                        endpoint,
                        workspace,
                    });
                }
            }
        }
        Ok(out)
    }

    /// A page of deliveries, newest first, each with its last attempt
    /// (when one was made) in place of them all.
    pub async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Page> {
        let logs = self.logs_for(filter).await?;
        let mut found = Vec::new();
        // The deepest position every log was scanned to, when a scan stopped
        // on its budget: results past it could be missing members of that log.
        let mut frontier: Option<Cursor> = None;
        for log in &logs {
            let (matches, stopped_at) = self.scan_log(log, filter).await?;
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

    /// Up to `limit + 1` matches from one log, and, when the scan budget
    /// ran out first, the position it stopped at.
    async fn scan_log(
        &self,
        log: &Log,
        filter: &DeliveryFilter,
    ) -> Result<(Vec<Delivery>, Option<Cursor>)> {
        let page = (filter.limit + 1).clamp(50, 500);
        let mut conn = self.conn.clone();
        let mut max = filter.until_ms.unwrap_or(i64::MAX);
        if let Some(c) = &filter.before {
            max = max.min(c.created_ms);
        }
        let min = filter
            .since_ms
            .map_or("-inf".to_string(), |ms| ms.to_string());
        let key = log.p.log(&log.endpoint);
        let mut out = Vec::new();
        // A delivery sent again after a crash can have two members.
        let mut seen = std::collections::HashSet::new();
        let (mut offset, mut scanned) = (0, 0);
        loop {
            let members: Vec<(String, i64)> = redis::cmd("ZREVRANGEBYSCORE")
                .arg(&key)
                .arg(max)
                .arg(&min)
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(offset)
                .arg(page)
                .query_async(&mut conn)
                .await?;
            let last_page = members.len() < page;
            offset += members.len();
            let rows: Vec<(Delivery, i64)> = members
                .into_iter()
                .filter_map(|(m, ms)| {
                    let r = LogRecord::decode(&m)?;
                    Some((from_record(&log.endpoint, &log.workspace, ms, r), ms))
                })
                .filter(|(d, ms)| {
                    filter
                        .before
                        .as_ref()
                        .is_none_or(|c| *ms < c.created_ms || (*ms == c.created_ms && d.id < c.id))
                })
                .collect();
            // Durable state, where there is some, and its last attempt.
            let mut pipe = redis::pipe();
            for (d, _) in &rows {
                pipe.hgetall(log.p.delivery(&d.id))
                    .lindex(log.p.attempts(&d.id), -1);
            }
            let states: Vec<(HashMap<String, String>, Option<String>)> = if rows.is_empty() {
                Vec::new()
            } else {
                pipe.query_async(&mut conn).await?
            };
            for ((record, ms), (h, last)) in rows.into_iter().zip(states) {
                scanned += 1;
                let at = Cursor {
                    created_ms: ms,
                    id: record.id.clone(),
                };
                if seen.insert(record.id.clone()) {
                    let d = if h.is_empty() {
                        record
                    } else {
                        let mut d = from_hash(&record.id, &h)?;
                        // (One that does not parse is left out of a list.)
                        d.attempts = last
                            .and_then(|a| serde_json::from_str::<Attempt>(&a).ok())
                            .into_iter()
                            .collect();
                        d
                    };
                    if filter.matches(&d) {
                        // Its last attempt only (a list's result column).
                        out.push(d);
                        if out.len() > filter.limit {
                            return Ok((out, None));
                        }
                    }
                }
                if scanned >= SCAN_BUDGET && !last_page {
                    return Ok((out, Some(at)));
                }
            }
            if last_page {
                return Ok((out, None));
            }
        }
    }

    /// The attempts of `endpoint`'s deliveries created in `[since_ms,
    /// until_ms]`, for its activity charts: from the newest delivery back,
    /// at most `cap` deliveries; `true` when the cap stopped the scan.
    pub async fn attempts_of(
        &self,
        endpoint: &str,
        since_ms: i64,
        until_ms: i64,
        cap: usize,
    ) -> Result<(Vec<Attempt>, bool)> {
        const PAGE: usize = 2_000;
        let Some(log) = self.log_of(endpoint).await? else {
            return Ok((Vec::new(), false));
        };
        let mut conn = self.conn.clone();
        let key = log.p.log(endpoint);
        let (mut out, mut offset) = (Vec::new(), 0);
        loop {
            let take = PAGE.min(cap - offset);
            let members: Vec<String> = redis::cmd("ZREVRANGEBYSCORE")
                .arg(&key)
                .arg(until_ms)
                .arg(since_ms)
                .arg("LIMIT")
                .arg(offset)
                .arg(take)
                .query_async(&mut conn)
                .await?;
            offset += members.len();
            let records: Vec<LogRecord> = members
                .iter()
                .filter_map(|m| LogRecord::decode(m))
                .collect();
            // A delivery that outlived its first attempt keeps every attempt
            // in its durable state while it has one.
            let mut pipe = redis::pipe();
            let outlived: Vec<&LogRecord> = records
                .iter()
                .filter(|r| r.status != DeliveryStatus::Succeeded)
                .collect();
            for r in &outlived {
                pipe.lrange(log.p.attempts(&delivery_id(&r.entry_id, endpoint)), 0, -1);
            }
            let lists: Vec<Vec<String>> = if outlived.is_empty() {
                Vec::new()
            } else {
                pipe.query_async(&mut conn).await?
            };
            let mut full = HashMap::new();
            for (r, list) in outlived.iter().zip(lists) {
                if !list.is_empty() {
                    full.insert(r.entry_id.as_str(), list);
                }
            }
            for r in &records {
                match full.get(r.entry_id.as_str()) {
                    Some(list) => out.extend(
                        list.iter()
                            .filter_map(|a| serde_json::from_str::<Attempt>(a).ok()),
                    ),
                    None => out.extend(r.attempt.clone()),
                }
            }
            if members.len() < take {
                return Ok((out, false));
            }
            if offset >= cap {
                return Ok((out, true));
            }
        }
    }
}
