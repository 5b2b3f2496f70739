//! Lanes: first attempts waiting for a slot, per endpoint, in Redis.
//!
//! The second part of an endpoint's lane (the first waits in the daemon's
//! memory, `hookd_delivery::dispatch`): when a daemon already keeps its
//! most deliveries waiting, an endpoint's further deliveries do not wait in
//! the stream, where they would hold up every other workspace's events
//! behind them, nor get durable state: each goes to the endpoint's lane in
//! Redis, a list of stream entry ids, and
//! its entry is acknowledged in the same step ([`Store::enter_lanes`]: one
//! MULTI of plain commands, about 20 bytes of Redis per delivery). Nothing
//! else is written for it then, not even its idempotency marker: routing a
//! burst costs little more than reading it, so a quiet workspace's event
//! behind it is found soon. The stream keeps every entry a lane still
//! names (see [`Store::lane_floor`]).
//!
//! A daemon with free slots for the endpoint takes items (oldest first,
//! `lua/take.lua`) with a lease, reads their entries, checks their
//! idempotency markers, attempts them, and settles each (`lua/settle.lua`,
//! fenced by the lease); a dead daemon's items go back to the head of the
//! lane when their lease ends. A delivery in a lane is not in its
//! endpoint's history until it is taken; the endpoint view counts what
//! waits (`waiting`).

use std::collections::HashMap;
use std::time::Duration;

use redis::Value;

use crate::keys::PartitionKeys;
use crate::stream::{Entry, raw_entries};
use crate::value::{items, string};
use crate::{Result, Store};

/// Items taken from a lane: the take's lease (its token), and per item its
/// entry (`None`: trimmed from the stream meanwhile).
#[derive(Debug, Default)]
pub struct TakenItems {
    /// The take's lease token (settling the items needs it).
    pub lease: String,
    /// Each item taken (its entry id) with its stream entry, `None` once trimmed away.
    pub items: Vec<(String, Option<Entry>)>,
}

impl Store {
    /// Takes up to `max` items from `endpoint`'s lane, leased for `lease`.
    pub async fn take_lane(
        &self,
        p: &PartitionKeys,
        endpoint: &str,
        max: usize,
        lease: Duration,
    ) -> Result<TakenItems> {
        let reply: Value = self
            .scripts
            .take
            .key(p.lane(endpoint))
            .key(p.taken(endpoint))
            .key(p.lanes())
            .key(&p.stream)
            .arg(max.max(1))
            .arg(lease.as_millis() as u64)
            .arg(endpoint)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let values = items(&reply)?;
        let Some((lease, rest)) = values.split_first() else {
            return Ok(TakenItems::default());
        };
        let mut out = TakenItems {
            lease: string(lease)?,
            items: Vec::with_capacity(rest.len() / 2),
        };
        for pair in rest.chunks_exact(2) {
            let item = string(&pair[0])?;
            let entry = match &pair[1] {
                Value::Array(_) => {
                    let wrapped =
                        Value::Array(vec![Value::Array(vec![pair[0].clone(), pair[1].clone()])]);
                    raw_entries(&wrapped)?
                        .into_iter()
                        .next()
                        .map(|(id, fields)| Entry { id, fields })
                }
                _ => None,
            };
            out.items.push((item, entry));
        }
        Ok(out)
    }

    /// Stream entries by id (`ids` in stream order), as they are now
    /// (`None`: trimmed away). One range read covers them (a lane's ids
    /// are mostly neighbours in the stream; a few others' entries between
    /// them are read and dropped); ids it did not reach are read one by one.
    pub async fn entries(
        &self,
        p: &PartitionKeys,
        ids: &[String],
        limits: &hookd_core::EventLimits,
    ) -> Result<Vec<Option<Entry>>> {
        let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
            return Ok(Vec::new());
        };
        // (The filler's own connection, parsed as it arrives: a burst's
        // entries are read again at about what reading them first cost.)
        let reader = &self.lane_readers[p.index as usize % self.lane_readers.len()];
        let read = match reader
            .range(&p.stream, first, last, ids.len() * 2 + 64, limits)
            .await
        {
            Ok(read) => read.entries,
            Err(crate::pipeline::reader::ReadError::Server(e)) => {
                return Err(crate::StoreError::Reply(e));
            }
            Err(crate::pipeline::reader::ReadError::Store(e)) => return Err(e),
        };
        let reached = read.last().and_then(|e| crate::stream::stream_id(&e.id));
        let mut found: HashMap<String, Entry> =
            read.into_iter().map(|e| (e.id.clone(), e)).collect();
        let beyond: Vec<&String> = ids
            .iter()
            .filter(|id| {
                !found.contains_key(*id)
                    && crate::stream::stream_id(id).is_some_and(|n| reached.is_none_or(|r| n > r))
            })
            .collect();
        if !beyond.is_empty() {
            let mut pipe = redis::pipe();
            for id in &beyond {
                pipe.cmd("XRANGE").arg(&p.stream).arg(*id).arg(*id);
            }
            let replies: Vec<Value> = pipe.query_async(&mut self.conn.clone()).await?;
            for v in &replies {
                for (id, fields) in raw_entries(v)? {
                    found.insert(id.clone(), Entry { id, fields });
                }
            }
        }
        Ok(ids.iter().map(|id| found.remove(id)).collect())
    }

    /// Every endpoint of the partition with a lane (or items taken from
    /// one), with its workspace.
    pub async fn lanes(&self, p: &PartitionKeys) -> Result<HashMap<String, String>> {
        Ok(redis::cmd("HGETALL")
            .arg(p.lanes())
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// Puts deliveries in their endpoints' lanes (each `(endpoint,
    /// workspace, entry ids)`), and acknowledges `acks`, the entries all of
    /// whose deliveries went to lanes: one MULTI of plain commands.
    pub async fn enter_lanes(
        &self,
        p: &PartitionKeys,
        group: &str,
        lanes: &[(&str, &str, Vec<&str>)],
        acks: &[&str],
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (endpoint, workspace, ids) in lanes {
            pipe.rpush(p.lane(endpoint), ids)
                .ignore()
                .hset(p.lanes(), endpoint, workspace)
                .ignore();
        }
        if !acks.is_empty() {
            pipe.cmd("XACK")
                .arg(&p.stream)
                .arg(group)
                .arg(acks)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// Gives back items taken from a lane that need no attempt (their
    /// event was a duplicate): they leave the taken set.
    pub async fn untake(&self, p: &PartitionKeys, endpoint: &str, items: &[String]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let _: i64 = redis::cmd("ZREM")
            .arg(p.taken(endpoint))
            .arg(items)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// The partition's configuration version (see `Keys::config`).
    pub async fn config_version(&self, p: &PartitionKeys) -> Result<u64> {
        let v: Option<u64> = redis::cmd("GET")
            .arg(p.config())
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(v.unwrap_or(0))
    }

    /// Every lane of the partition in Redis: (endpoint, workspace, waiting
    /// (taken ones included), the oldest's entry id).
    pub async fn lanes_waiting(
        &self,
        p: &PartitionKeys,
    ) -> Result<Vec<(String, String, u64, Option<String>)>> {
        let lanes: Vec<(String, String)> = self.lanes(p).await?.into_iter().collect();
        if lanes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (ep, _) in &lanes {
            pipe.llen(p.lane(ep))
                .zcard(p.taken(ep))
                .cmd("LINDEX")
                .arg(p.lane(ep))
                .arg(0);
        }
        let replies: Vec<Value> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(lanes
            .into_iter()
            .zip(replies.chunks_exact(3))
            .map(|((ep, ws), r)| {
                let n =
                    crate::value::int(&r[0]).unwrap_or(0) + crate::value::int(&r[1]).unwrap_or(0);
                (ep, ws, n.max(0) as u64, string(&r[2]).ok())
            })
            .collect())
    }

    /// Reports what waits in `consumer`'s memory for each endpoint
    /// (`(endpoint, waiting, oldest entry's ms)`), and that nothing does any
    /// more for `gone` (endpoints reported before).
    pub async fn report_here(
        &self,
        p: &PartitionKeys,
        consumer: &str,
        waiting: &[(String, u64, i64)],
        gone: &[String],
    ) -> Result<()> {
        if waiting.is_empty() && gone.is_empty() {
            return Ok(());
        }
        let now = hookd_core::time::now_ms();
        let mut pipe = redis::pipe();
        for (ep, n, oldest) in waiting {
            pipe.hset(
                p.here(),
                format!("{ep}|{consumer}"),
                format!("{n} {oldest} {now}"),
            )
            .ignore();
        }
        for ep in gone {
            pipe.hdel(p.here(), format!("{ep}|{consumer}")).ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// What waits for `endpoint` (of `workspace`), in every daemon's memory
    /// and in its Redis lane: (deliveries, the oldest's entry time in ms).
    pub async fn waiting(&self, workspace: &str, endpoint: &str) -> Result<(u64, Option<i64>)> {
        let p = self.keys.partition_of(workspace);
        let (here, lane, taken, head): (HashMap<String, String>, u64, u64, Option<String>) =
            redis::pipe()
                .hgetall(p.here())
                .llen(p.lane(endpoint))
                .zcard(p.taken(endpoint))
                .cmd("LINDEX")
                .arg(p.lane(endpoint))
                .arg(0)
                .query_async(&mut self.conn.clone())
                .await?;
        let now = hookd_core::time::now_ms();
        let prefix = format!("{endpoint}|");
        let mut count = lane + taken;
        let mut oldest = head
            .as_deref()
            .and_then(hookd_core::delivery::entry_time_ms);
        for (field, value) in &here {
            if !field.starts_with(&prefix) {
                continue;
            }
            let mut parts = value.split(' ').map(|v| v.parse::<i64>().ok());
            let (Some(Some(n)), Some(Some(since)), Some(Some(written))) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            // A report not renewed for a while is a stopped daemon's.
            if now - written > 5_000 {
                continue;
            }
            count += n.max(0) as u64;
            oldest = Some(oldest.map_or(since, |o| o.min(since)));
        }
        Ok((count, oldest))
    }

    /// How many deliveries wait in `endpoint`'s lane (taken ones included).
    pub async fn lane_len(&self, p: &PartitionKeys, endpoint: &str) -> Result<u64> {
        let (waiting, taken): (u64, u64) = redis::pipe()
            .llen(p.lane(endpoint))
            .zcard(p.taken(endpoint))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(waiting + taken)
    }

    /// The oldest stream entry any lane of the partition still names (the
    /// stream is never trimmed past it), `None` when no lane names one.
    pub async fn lane_floor(&self, p: &PartitionKeys) -> Result<Option<String>> {
        let lanes = self.lanes(p).await?;
        if lanes.is_empty() {
            return Ok(None);
        }
        let mut pipe = redis::pipe();
        for ep in lanes.keys() {
            pipe.cmd("LINDEX").arg(p.lane(ep)).arg(0);
            pipe.cmd("ZRANGE").arg(p.taken(ep)).arg(0).arg(-1);
        }
        let replies: Vec<Value> = pipe.query_async(&mut self.conn.clone()).await?;
        let mut oldest: Option<(u64, u64)> = None;
        let mut consider = |item: &str| {
            if let Some(id) = crate::stream::stream_id(item) {
                oldest = Some(oldest.map_or(id, |o| o.min(id)));
            }
        };
        for pair in replies.chunks_exact(2) {
            if let Ok(head) = string(&pair[0]) {
                consider(&head);
            }
            for item in items(&pair[1]).unwrap_or_default() {
                if let Ok(item) = string(item) {
                    consider(&item);
                }
            }
        }
        Ok(oldest.map(|(ms, seq)| format!("{ms}-{seq}")))
    }
}
