//! Reading delivery history: one delivery with its attempts, or a filtered page.

use std::collections::HashMap;

use hookd_core::{Attempt, Delivery, DeliveryStatus};

use crate::{Result, Store, StoreError};

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub endpoint: Option<String>,
    pub status: Option<DeliveryStatus>,
    /// Newest first; at most this many.
    pub limit: usize,
}

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

    /// Deliveries, newest first, without their attempts.
    pub async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
        let mut conn = self.conn.clone();
        let mut out = Vec::new();
        let partitions: Vec<_> = match &filter.endpoint {
            Some(ep) => vec![self.history_partition(ep).await?],
            None => self.keys.all_partitions().collect(),
        };
        for p in partitions {
            let index = match &filter.endpoint {
                Some(ep) => p.endpoint_deliveries(ep),
                None => p.deliveries(),
            };
            let mut offset = 0;
            const PAGE: isize = 500;
            while out.len() < filter.limit {
                let ids: Vec<String> = redis::cmd("ZREVRANGE")
                    .arg(&index)
                    .arg(offset)
                    .arg(offset + PAGE - 1)
                    .query_async(&mut conn)
                    .await?;
                if ids.is_empty() {
                    break;
                }
                offset += PAGE;
                let mut pipe = redis::pipe();
                for id in &ids {
                    pipe.hgetall(p.delivery(id));
                }
                let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
                for (id, h) in ids.iter().zip(hashes) {
                    if h.is_empty() {
                        continue;
                    }
                    let d = from_hash(id, &h)?;
                    if filter.status.is_none_or(|s| s == d.status) && out.len() < filter.limit {
                        out.push(d);
                    }
                }
            }
        }
        out.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then(b.id.cmp(&a.id)));
        out.truncate(filter.limit);
        Ok(out)
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
