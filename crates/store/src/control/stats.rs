//! What the queues hold right now, for `/metrics` and `/readyz`: stream
//! length, consumer-group lag and pending entries, due and held deliveries
//! (and how long the longest-waiting has been due), paused endpoints.

use redis::Value;

use crate::value::int;
use crate::{Result, Store};

/// Queue figures summed over every partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Entries in the stream(s).
    pub stream_length: u64,
    /// Entries not yet read by the consumer group.
    pub lag: u64,
    /// Entries read but not yet acknowledged.
    pub pending: u64,
    /// Deliveries waiting in due queues (including those in flight).
    pub due: u64,
    /// Deliveries held by paused endpoints.
    pub held: u64,
    /// Endpoints registered.
    pub endpoints: u64,
    /// Of those, paused.
    pub paused_endpoints: u64,
    /// Entries in the dead-letter stream.
    pub dead_letters: u64,
    /// When the longest-waiting due delivery became due (ms; `None`:
    /// nothing is due). Retries scheduled for later are not due yet.
    pub oldest_due_ms: Option<i64>,
}

impl Store {
    /// Round trip to Redis.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Whether Redis keeps an append-only file (`INFO persistence`, which
    /// works where `CONFIG` is disabled); `None` when it does not say.
    pub async fn aof_enabled(&self) -> Result<Option<bool>> {
        let mut conn = self.conn.clone();
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query_async(&mut conn)
            .await?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("aof_enabled:"))
            .map(|v| v.trim() == "1"))
    }

    /// Queue depths, endpoint counts and the consumer group's lag, over every partition.
    pub async fn queue_stats(&self, group: &str) -> Result<QueueStats> {
        let mut stats = QueueStats::default();
        let mut conn = self.conn.clone();
        for p in self.keys.all_partitions() {
            stats.stream_length += redis::cmd("XLEN")
                .arg(&p.stream)
                .query_async::<u64>(&mut conn)
                .await?;
            // No group yet (no daemon has started) is not an error here.
            let groups: Value = redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(&p.stream)
                .query_async(&mut conn)
                .await
                .unwrap_or(Value::Nil);
            if let Some(info) = crate::stream::group_info(&groups, group)? {
                let field = |name: &str| info.get(name).and_then(|v| int(v).ok()).unwrap_or(0);
                stats.pending += field("pending") as u64;
                stats.lag += field("lag").max(0) as u64;
            }
        }
        for dead in self.keys.dead_letters() {
            stats.dead_letters += redis::cmd("XLEN")
                .arg(dead)
                .query_async::<u64>(&mut conn)
                .await?;
        }
        // Ids, paused flags and queue sizes only: no endpoint document is
        // parsed and no secret opened on a metrics scrape.
        let endpoints = self.endpoint_ids().await?;
        stats.endpoints = endpoints.len() as u64;
        let groups = self
            .keys
            .by_partition(endpoints.iter().map(|(id, ws)| (ws.as_str(), id)));
        for (p, ids) in groups {
            let mut pipe = redis::pipe();
            for id in ids {
                pipe.hget(p.endpoint(id), "paused")
                    .zcard(p.due(id))
                    .scard(p.held(id))
                    .zrange_withscores(p.due(id), 0, 0);
            }
            type Counts = (Option<String>, u64, u64, Vec<(String, f64)>);
            let counts: Vec<Counts> = pipe.query_async(&mut conn).await?;
            let now = hookd_core::time::now_ms();
            for (paused, due, held, first) in counts {
                stats.paused_endpoints += u64::from(paused.as_deref() == Some("1"));
                stats.due += due;
                stats.held += held;
                if let Some((_, at)) = first.first()
                    && (*at as i64) <= now
                {
                    let at = *at as i64;
                    stats.oldest_due_ms = Some(stats.oldest_due_ms.map_or(at, |o| o.min(at)));
                }
            }
        }
        Ok(stats)
    }
}
