//! The PostgreSQL side: one shared connection (re-made when it drops),
//! storing shipped records and their events' payloads idempotently, day partitions made ahead of
//! their rows and dropped whole at `long_retention`, and the history
//! queries.
//!
//! Idempotence: a delivery row is keyed by (creation time, id) and only a
//! record at least as new (attempts made, then when it was recorded)
//! overwrites it; an attempt row is keyed by (creation time, delivery id,
//! number) and a repeat is ignored. So a batch shipped twice, or two
//! shippers racing on one, store each record once. No transaction is
//! needed: each statement is idempotent, and a batch is acknowledged in
//! Redis only after both.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use hookd_core::time;
use hookd_core::{Attempt, Delivery, DeliveryStatus};
use hookd_store::history::{Cursor, DeliveryFilter};
use hookd_store::ship::{ShipRecord, ShippedEnvelope};
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

use crate::{HistoryError, Result};

const DAY_MS: i64 = 86_400_000;
/// The partitioned tables, each with one partition per UTC day.
const TABLES: [&str; 3] = ["hookd_deliveries", "hookd_attempts", "hookd_envelopes"];

/// Typed settings (the binary reads them from `[history]`).
#[derive(Debug, Clone)]
pub struct ArchiveSettings {
    /// A libpq-style connection string or `postgres://` URL.
    pub url: String,
    /// Rows are kept this long (whole days: a day's partition goes when its
    /// last moment is older).
    pub long_retention: Duration,
}

/// A handle on the history database. Cheap to clone.
#[derive(Clone)]
pub struct Archive {
    settings: Arc<ArchiveSettings>,
    client: Arc<Mutex<Option<Arc<Client>>>>,
    /// Days whose partitions exist (made by this process or found).
    days: Arc<std::sync::Mutex<HashSet<i64>>>,
}

impl Archive {
    /// A handle that connects on first use (and again after a drop), so a
    /// daemon starts, and delivers, while PostgreSQL is away.
    pub fn new(settings: ArchiveSettings) -> Self {
        Self {
            settings: Arc::new(settings),
            client: Default::default(),
            days: Default::default(),
        }
    }

    /// The shared connection, re-made if it dropped.
    pub async fn client(&self) -> Result<Arc<Client>> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let client = Arc::new(connect(&self.settings.url).await?);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// A connection of the caller's own (migrations need a transaction).
    pub async fn dedicated(&self) -> Result<Client> {
        connect(&self.settings.url).await
    }

    /// What this archive was made with.
    pub fn settings(&self) -> &ArchiveSettings {
        &self.settings
    }

    /// Stores shipped records: one row per delivery (its newest state) and
    /// one per attempt, and the payloads of their events.
    pub async fn store(
        &self,
        records: &[&ShipRecord],
        envelopes: &[ShippedEnvelope],
    ) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        let days: HashSet<i64> = records
            .iter()
            .map(|r| r.created_ms.div_euclid(DAY_MS))
            .collect();
        self.ensure_days(&client, days).await?;
        // Payloads first: a delivery row is never there without its payload.
        if !envelopes.is_empty() {
            let created: Vec<i64> = envelopes.iter().map(|e| e.created_ms).collect();
            let workspaces: Vec<&str> = envelopes.iter().map(|e| e.workspace.as_str()).collect();
            let events: Vec<&str> = envelopes.iter().map(|e| e.event_id.as_str()).collect();
            let bodies: Vec<&[u8]> = envelopes.iter().map(|e| e.envelope.as_slice()).collect();
            client
                .execute(
                    "INSERT INTO hookd_envelopes (created_ms, workspace, event_id, envelope)
                     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[])
                     ON CONFLICT DO NOTHING",
                    &[&created, &workspaces, &events, &bodies],
                )
                .await?;
        }
        // Newest record per delivery: one statement may not update a row twice.
        let mut newest: HashMap<&str, &ShipRecord> = HashMap::new();
        for &r in records {
            let e = newest.entry(&r.delivery_id).or_insert(r);
            if (r.attempts_made, r.recorded_ms) >= (e.attempts_made, e.recorded_ms) {
                *e = r;
            }
        }
        let rows: Vec<&ShipRecord> = newest.into_values().collect();
        let created: Vec<i64> = rows.iter().map(|r| r.created_ms).collect();
        let ids: Vec<&str> = rows.iter().map(|r| r.delivery_id.as_str()).collect();
        let workspaces: Vec<&str> = rows.iter().map(|r| r.workspace.as_str()).collect();
        let endpoints: Vec<&str> = rows.iter().map(|r| r.endpoint_id.as_str()).collect();
        let events: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
        let types: Vec<&str> = rows.iter().map(|r| r.event_type.as_str()).collect();
        let statuses: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
        let made: Vec<i32> = rows.iter().map(|r| r.attempts_made as i32).collect();
        let recorded: Vec<i64> = rows.iter().map(|r| r.recorded_ms).collect();
        client
            .execute(
                "INSERT INTO hookd_deliveries AS d
                   (created_ms, id, workspace, endpoint_id, event_id, event_type, status, attempts_made, recorded_ms)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                                      $6::text[], $7::text[], $8::int[], $9::bigint[])
                 ON CONFLICT (created_ms, id) DO UPDATE
                   SET status = EXCLUDED.status, attempts_made = EXCLUDED.attempts_made,
                       recorded_ms = EXCLUDED.recorded_ms
                   WHERE (d.attempts_made, d.recorded_ms) <= (EXCLUDED.attempts_made, EXCLUDED.recorded_ms)",
                &[
                    &created, &ids, &workspaces, &endpoints, &events, &types, &statuses, &made,
                    &recorded,
                ],
            )
            .await?;
        let mut attempts: Vec<(i64, &str, i32, String)> = Vec::new();
        for &r in records {
            if let Some(a) = &r.attempt {
                let json =
                    serde_json::to_string(a).map_err(|e| HistoryError::Corrupt(e.to_string()))?;
                attempts.push((r.created_ms, &r.delivery_id, a.number as i32, json));
            }
        }
        if !attempts.is_empty() {
            let created: Vec<i64> = attempts.iter().map(|a| a.0).collect();
            let ids: Vec<&str> = attempts.iter().map(|a| a.1).collect();
            let numbers: Vec<i32> = attempts.iter().map(|a| a.2).collect();
            let json: Vec<&str> = attempts.iter().map(|a| a.3.as_str()).collect();
            client
                .execute(
                    "INSERT INTO hookd_attempts (created_ms, delivery_id, number, attempt)
                     SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[])
                     ON CONFLICT DO NOTHING",
                    &[&created, &ids, &numbers, &json],
                )
                .await?;
        }
        Ok(())
    }

    /// Makes the partitions of `days` (and of the day after each, so rows
    /// arriving at midnight find theirs) that this process has not seen.
    async fn ensure_days(&self, client: &Client, days: HashSet<i64>) -> Result<()> {
        let missing: Vec<i64> = {
            let known = self.days.lock().map_err(|_| poisoned())?;
            days.iter()
                .flat_map(|d| [*d, d + 1])
                .filter(|d| !known.contains(d))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect()
        };
        for day in missing {
            for table in TABLES {
                let sql = format!(
                    "CREATE TABLE IF NOT EXISTS {} PARTITION OF {table} FOR VALUES FROM ({}) TO ({})",
                    partition_name(table, day),
                    day * DAY_MS,
                    (day + 1) * DAY_MS
                );
                match client.batch_execute(&sql).await {
                    Ok(()) => {}
                    // Another daemon made it at the same moment.
                    Err(e) if is_duplicate(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            self.days.lock().map_err(|_| poisoned())?.insert(day);
        }
        Ok(())
    }

    /// Drops the day partitions wholly older than `long_retention`. Returns
    /// their names.
    pub async fn drop_expired(&self, now_ms: i64) -> Result<Vec<String>> {
        let client = self.client().await?;
        let horizon = now_ms - self.settings.long_retention.as_millis() as i64;
        let rows = client
            .query(
                "SELECT c.relname FROM pg_inherits i
                   JOIN pg_class c ON c.oid = i.inhrelid
                   JOIN pg_class p ON p.oid = i.inhparent
                  WHERE p.relname = ANY($1)",
                &[&TABLES.to_vec()],
            )
            .await?;
        let mut dropped = Vec::new();
        for row in rows {
            let name: String = row.get(0);
            let Some(day) = partition_day(&name) else {
                continue;
            };
            if (day + 1) * DAY_MS <= horizon {
                client
                    .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
                    .await?;
                self.days.lock().map_err(|_| poisoned())?.remove(&day);
                dropped.push(name);
            }
        }
        Ok(dropped)
    }

    /// A page of deliveries matching `filter`, newest first, and where the
    /// next page starts (`None`: nothing further here).
    pub async fn page(&self, filter: &DeliveryFilter) -> Result<(Vec<Delivery>, Option<Cursor>)> {
        let client = self.client().await?;
        let mut sql = String::from(
            "SELECT d.created_ms, d.id, d.workspace, d.endpoint_id, d.event_id, d.event_type,
                    d.status, d.attempts_made,
                    (SELECT a.attempt FROM hookd_attempts a
                      WHERE a.created_ms = d.created_ms AND a.delivery_id = d.id
                      ORDER BY a.number DESC LIMIT 1)
               FROM hookd_deliveries d WHERE true",
        );
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut cond = |sql: &mut String, column: &str, value: Box<dyn ToSql + Sync + Send>| {
            params.push(value);
            sql.push_str(&format!(" AND d.{column} ${}", params.len()));
        };
        if let Some(ws) = &filter.workspace {
            cond(&mut sql, "workspace =", Box::new(ws.clone()));
        }
        if let Some(ep) = &filter.endpoint {
            cond(&mut sql, "endpoint_id =", Box::new(ep.clone()));
        }
        if let Some(s) = filter.status {
            cond(&mut sql, "status =", Box::new(s.as_str().to_string()));
        }
        if let Some(t) = &filter.event_type {
            cond(&mut sql, "event_type =", Box::new(t.clone()));
        }
        if let Some(e) = &filter.event_id {
            cond(&mut sql, "event_id =", Box::new(e.clone()));
        }
        if let Some(ms) = filter.since_ms {
            cond(&mut sql, "created_ms >=", Box::new(ms));
        }
        if let Some(ms) = filter.until_ms {
            cond(&mut sql, "created_ms <=", Box::new(ms));
        }
        if let Some(c) = &filter.before {
            params.push(Box::new(c.created_ms));
            params.push(Box::new(c.id.clone()));
            sql.push_str(&format!(
                " AND (d.created_ms, d.id) < (${}, ${})",
                params.len() - 1,
                params.len()
            ));
        }
        params.push(Box::new((filter.limit + 1) as i64));
        sql.push_str(&format!(
            " ORDER BY d.created_ms DESC, d.id DESC LIMIT ${}",
            params.len()
        ));
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client.query(&sql, &refs).await?;
        let mut out = rows
            .iter()
            .map(|row| {
                let status: String = row.get(6);
                Ok(Delivery {
                    created_at_ms: row.get(0),
                    id: row.get(1),
                    workspace: row.get(2),
                    endpoint_id: row.get(3),
                    event_id: row.get(4),
                    event_type: row.get(5),
                    status: DeliveryStatus::parse(&status)
                        .ok_or_else(|| HistoryError::Corrupt(format!("status {status}")))?,
                    attempts_made: row.get::<_, i32>(7) as u32,
                    next_attempt_at_ms: None,
                    // The last attempt only (a list's result column).
                    attempts: row
                        .get::<_, Option<&str>>(8)
                        .and_then(|a| serde_json::from_str::<Attempt>(a).ok())
                        .into_iter()
                        .collect(),
                    ordering_key: None,
                    sequence: None,
                    waiting_for: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let next = if out.len() > filter.limit {
            out.truncate(filter.limit);
            out.last().map(|d| Cursor {
                created_ms: d.created_at_ms,
                id: d.id.clone(),
            })
        } else {
            None
        };
        Ok((out, next))
    }

    /// One delivery with every attempt, if it was shipped.
    pub async fn delivery(&self, id: &str) -> Result<Option<Delivery>> {
        let Some(created) = hookd_core::delivery::parse_delivery_id(id)
            .and_then(|(entry, _)| hookd_core::delivery::entry_time_ms(entry))
        else {
            return Ok(None);
        };
        let mut page = self
            .page(&DeliveryFilter {
                since_ms: Some(created),
                until_ms: Some(created),
                limit: 1000,
                ..Default::default()
            })
            .await?
            .0;
        page.retain(|d| d.id == id);
        let Some(mut d) = page.pop() else {
            return Ok(None);
        };
        d.attempts = self
            .attempts(&[(created, id)])
            .await?
            .remove(id)
            .unwrap_or_default();
        Ok(Some(d))
    }
}

impl Archive {
    /// The attempts of deliveries, by (creation ms, id), in order.
    pub async fn attempts(
        &self,
        deliveries: &[(i64, &str)],
    ) -> Result<HashMap<String, Vec<Attempt>>> {
        let mut out: HashMap<String, Vec<Attempt>> = HashMap::new();
        if deliveries.is_empty() {
            return Ok(out);
        }
        let client = self.client().await?;
        let created: Vec<i64> = deliveries.iter().map(|d| d.0).collect();
        let ids: Vec<&str> = deliveries.iter().map(|d| d.1).collect();
        let rows = client
            .query(
                "SELECT a.delivery_id, a.attempt FROM hookd_attempts a
                   JOIN unnest($1::bigint[], $2::text[]) AS k(created_ms, delivery_id)
                     ON a.created_ms = k.created_ms AND a.delivery_id = k.delivery_id
                  ORDER BY a.delivery_id, a.number",
                &[&created, &ids],
            )
            .await?;
        for row in rows {
            let id: String = row.get(0);
            let attempt = serde_json::from_str::<Attempt>(row.get(1))
                .map_err(|e| HistoryError::Corrupt(format!("attempt of {id}: {e}")))?;
            out.entry(id).or_default().push(attempt);
        }
        Ok(out)
    }

    /// The payloads of events of `workspace`, by (creation ms, event id),
    /// for those shipped.
    pub async fn envelopes(
        &self,
        workspace: &str,
        events: &[(i64, &str)],
    ) -> Result<HashMap<(i64, String), Vec<u8>>> {
        if events.is_empty() {
            return Ok(HashMap::new());
        }
        let client = self.client().await?;
        let created: Vec<i64> = events.iter().map(|e| e.0).collect();
        let ids: Vec<&str> = events.iter().map(|e| e.1).collect();
        let rows = client
            .query(
                "SELECT e.created_ms, e.event_id, e.envelope FROM hookd_envelopes e
                   JOIN unnest($2::bigint[], $3::text[]) AS k(created_ms, event_id)
                     ON e.created_ms = k.created_ms AND e.event_id = k.event_id
                  WHERE e.workspace = $1",
                &[&workspace, &created, &ids],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| ((row.get(0), row.get(1)), row.get(2)))
            .collect())
    }
}

async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

/// `hookd_deliveries_20261129` for the UTC day `day` (days since the epoch).
fn partition_name(table: &str, day: i64) -> String {
    let date = time::format_rfc3339_ms(day * DAY_MS);
    format!(
        "{table}_{}",
        date.get(..10).unwrap_or_default().replace('-', "")
    )
}

/// The day of a partition named by [`partition_name`].
fn partition_day(name: &str) -> Option<i64> {
    let digits = name.rsplit('_').next()?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms = time::parse_rfc3339_ms(&format!(
        "{}-{}-{}T00:00:00Z",
        &digits[..4],
        &digits[4..6],
        &digits[6..]
    ))?;
    Some(ms.div_euclid(DAY_MS))
}

fn is_duplicate(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code()
        .is_some_and(|c| *c == SqlState::DUPLICATE_TABLE || *c == SqlState::UNIQUE_VIOLATION)
}

fn poisoned() -> HistoryError {
    HistoryError::Corrupt("partition cache lock poisoned".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        let day = 1_764_374_400_000 / DAY_MS; // 2025-11-29
        let name = partition_name("hookd_deliveries", day);
        assert_eq!(name, "hookd_deliveries_20251129");
        assert_eq!(partition_day(&name), Some(day));
        assert_eq!(partition_day("hookd_deliveries"), None);
    }
}
