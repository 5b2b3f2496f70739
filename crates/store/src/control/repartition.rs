//! Changing the partition count (`hookd repartition --to M`). A workspace's
//! partition is FNV-1a of its id modulo the count, so a new count moves
//! workspaces; this module moves their state with them and keeps their
//! events flowing:
//!
//! - **State.** Every key of a partition is found by a `SCAN` of its hash
//!   tag (on a cluster, on the primary serving it), its owner read from its
//!   name ([`PartitionKeys::owner_of`]) and, when the owner's workspace now
//!   belongs to another partition, copied there (`DUMP`/`RESTORE`, time to
//!   live kept) and only then deleted. Members of the partition-wide `ready`
//!   and `logs` sets move one by one. A delivery whose first attempt
//!   succeeded keeps its payload only in the old stream entry: its envelope
//!   is copied first (`P:env`, for the rest of the retention), so a
//!   redelivery after the move still finds it.
//! - **Events.** Streams of partitions that no longer exist (shrinking, or
//!   leaving one partition, whose stream has no `:p0`) are *retired*: every
//!   entry not yet acknowledged is forwarded to its workspace's new stream,
//!   and the stream name is remembered so a later run forwards what
//!   producers still wrote there. Entries that producers keep writing to a
//!   surviving stream with the old count are forwarded by the daemons as
//!   they read them (`Store::forward`).
//!
//! Every step is repeatable, so a run that dies part-way is finished by
//! running it again. The count is recorded (`<prefix>:partitions`) last;
//! daemons refuse to start with another one. State moves only while no
//! daemon runs (the caller checks the consumer groups first); forwarding
//! from retired streams is safe at any time.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hookd_core::delivery::{delivery_id, entry_time_ms};
use redis::Value;

use crate::keys::Owner;
use crate::log::LogRecord;
use crate::stream::raw_entries;
use crate::value::{int, items, pairs, string};
use crate::{Keys, PartitionKeys, Result, Store, StoreError};

/// The consumer the command reads retired streams as.
const CONSUMER: &str = "hookd-repartition";
/// Entries, keys or log members handled per round trip.
const CHUNK: usize = 500;

/// What a run did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    /// The partition count before.
    pub from: u32,
    /// The partition count after.
    pub to: u32,
    /// Workspaces whose state moved to another partition.
    pub workspaces_moved: usize,
    /// Keys moved with them.
    pub keys_moved: u64,
    /// Envelopes copied out of old stream entries (deliveries that succeeded).
    pub envelopes_copied: u64,
    /// Entries forwarded from retired streams to their new partitions.
    pub entries_forwarded: u64,
    /// Streams no daemon reads any more (kept: `DEL` them once empty of interest).
    pub retired_streams: Vec<String>,
}

impl Store {
    /// The partition count the state in Redis is laid out for, if recorded.
    pub async fn stored_partitions(&self) -> Result<Option<u32>> {
        let v: Option<u32> = redis::cmd("GET")
            .arg(self.keys.partition_count())
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(v)
    }

    /// Records the configured partition count if none is; refuses to go on
    /// when Redis holds state laid out for another.
    pub async fn check_partitions(&self) -> Result<()> {
        let configured = self.keys.partitions();
        let _: Option<String> = redis::cmd("SET")
            .arg(self.keys.partition_count())
            .arg(configured)
            .arg("NX")
            .query_async(&mut self.conn.clone())
            .await?;
        match self.stored_partitions().await? {
            Some(stored) if stored != configured => Err(StoreError::Conflict(format!(
                "Redis holds hookd's state laid out for {stored} partition(s), but [ingest] partitions = {configured}. \
                 To change the count, stop every daemon and run `hookd repartition --to {configured}` \
                 with the old count still configured (deploy/README.md, \"Changing the partition count\")"
            ))),
            _ => Ok(()),
        }
    }

    /// Consumers of `group`, on the streams of both counts and the retired
    /// ones, that read within `within`: daemons still running.
    pub async fn active_consumers(
        &self,
        group: &str,
        to: u32,
        within: Duration,
    ) -> Result<Vec<String>> {
        let mut conn = self.conn.clone();
        let mut active = Vec::new();
        for stream in self.streams_of(to).await? {
            let reply: redis::RedisResult<Value> = redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(&stream)
                .arg(group)
                .query_async(&mut conn)
                .await;
            let Ok(reply) = reply else { continue }; // no stream, or no group
            for consumer in items(&reply)? {
                let fields: HashMap<String, &Value> = pairs(consumer)?.into_iter().collect();
                let (Some(name), Some(idle)) = (fields.get("name"), fields.get("idle")) else {
                    continue;
                };
                let name = string(name)?;
                if name != CONSUMER && (int(idle)? as u128) < within.as_millis() {
                    active.push(format!("{name} on {stream}"));
                }
            }
        }
        Ok(active)
    }

    /// Every stream of the recorded count, of `to`, and retired before.
    async fn streams_of(&self, to: u32) -> Result<Vec<String>> {
        let from = self.keys.with_partitions(self.current_count().await?);
        let to = self.keys.with_partitions(to);
        let mut streams: Vec<String> = from
            .all_partitions()
            .chain(to.all_partitions())
            .map(|p| p.stream)
            .collect();
        let retired: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.retired_streams())
            .query_async(&mut self.conn.clone())
            .await?;
        streams.extend(retired);
        streams.sort();
        streams.dedup();
        Ok(streams)
    }

    async fn current_count(&self) -> Result<u32> {
        Ok(self
            .stored_partitions()
            .await?
            .unwrap_or(self.keys.partitions()))
    }

    /// Moves every workspace's state to its partition under `to` partitions,
    /// forwards what waits in retired streams, and records the new count.
    /// Run it with no daemon running (see the module comment).
    pub async fn repartition(&self, to: u32, group: &str) -> Result<Report> {
        let to = to.max(1);
        let from = self.current_count().await?;
        let (old, new) = (
            self.keys.with_partitions(from),
            self.keys.with_partitions(to),
        );
        let mut report = Report {
            from,
            to,
            ..Default::default()
        };
        let mut conn = self.conn.clone();
        let live: HashSet<String> = new.all_partitions().map(|p| p.stream).collect();
        let newly_retired: Vec<String> = old
            .all_partitions()
            .map(|p| p.stream)
            .filter(|s| !live.contains(s))
            .collect();
        if !newly_retired.is_empty() {
            let _: i64 = redis::cmd("SADD")
                .arg(self.keys.retired_streams())
                .arg(&newly_retired)
                .query_async(&mut conn)
                .await?;
        }
        // Streams that come back into use are no longer retired.
        let _: i64 = redis::cmd("SREM")
            .arg(self.keys.retired_streams())
            .arg(live.iter().collect::<Vec<_>>())
            .query_async(&mut conn)
            .await?;
        // New streams get the group before anything is forwarded to them.
        for p in new.all_partitions() {
            self.ensure_group(&p, group).await?;
        }
        if from != to {
            self.move_state(&old, &new, &mut report).await?;
        }
        report.entries_forwarded = self.drain_retired(&new, group).await?;
        // History records still waiting to ship from a partition that no
        // longer exists go to partition 0's backlog (records say whose they are).
        let live_tags: HashSet<String> = new.all_partitions().map(|p| p.tag).collect();
        for p in old.all_partitions().filter(|p| !live_tags.contains(&p.tag)) {
            self.move_backlog(&p, &new.partition(0)).await?;
        }
        report.retired_streams = redis::cmd("SMEMBERS")
            .arg(self.keys.retired_streams())
            .query_async(&mut conn)
            .await?;
        report.retired_streams.sort();
        for p in new.all_partitions() {
            let _: i64 = redis::cmd("INCR")
                .arg(p.config())
                .query_async(&mut conn)
                .await?;
        }
        let _: () = redis::cmd("SET")
            .arg(self.keys.partition_count())
            .arg(to)
            .query_async(&mut conn)
            .await?;
        Ok(report)
    }

    /// Moves the keys of every partition of both layouts whose owner's
    /// workspace belongs elsewhere under `new`.
    async fn move_state(&self, old: &Keys, new: &Keys, report: &mut Report) -> Result<()> {
        let mut conn = self.conn.clone();
        let mut tags: Vec<PartitionKeys> =
            old.all_partitions().chain(new.all_partitions()).collect();
        tags.sort_by(|a, b| a.tag.cmp(&b.tag));
        tags.dedup_by(|a, b| a.tag == b.tag);
        // Who owns what: endpoints (deleted ones through their logs) and jobs.
        let mut endpoints: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.endpoint_index())
            .query_async(&mut conn)
            .await?;
        for p in &tags {
            let logs: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(p.logs())
                .query_async(&mut conn)
                .await?;
            for (endpoint, ws) in logs {
                endpoints.entry(endpoint).or_insert(ws);
            }
        }
        let jobs: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.job_index())
            .query_async(&mut conn)
            .await?;
        let mut moved_workspaces = HashSet::new();
        for p in &tags {
            for key in self.scan_partition(p).await? {
                let workspace = match p.owner_of(&key) {
                    Some(Owner::Workspace(ws)) => Some(ws),
                    Some(Owner::Endpoint(ep)) => endpoints.get(&ep).cloned(),
                    Some(Owner::Job(job)) => jobs.get(&job).cloned(),
                    _ => None,
                };
                let Some(workspace) = workspace else { continue };
                let target = new.partition_of(&workspace);
                if target.tag == p.tag {
                    continue;
                }
                let Some(to_key) = p.moved_to(&key, &target) else {
                    continue;
                };
                if let Some(Owner::Endpoint(ep)) = p.owner_of(&key)
                    && key == p.log(&ep)
                {
                    report.envelopes_copied +=
                        self.copy_envelopes(p, &target, &ep, &workspace).await?;
                }
                if self.move_key(&key, &to_key).await? {
                    report.keys_moved += 1;
                    moved_workspaces.insert(workspace);
                }
                if key.starts_with(&p.delivery("")) && !key.ends_with(":attempts") {
                    // The durable state names its envelope's key: rename it too.
                    let envelope: Option<String> = redis::cmd("HGET")
                        .arg(&to_key)
                        .arg("event_key")
                        .query_async(&mut conn)
                        .await?;
                    if let Some(moved) = envelope.and_then(|e| p.moved_to(&e, &target)) {
                        let _: i64 = redis::cmd("HSET")
                            .arg(&to_key)
                            .arg("event_key")
                            .arg(moved)
                            .query_async(&mut conn)
                            .await?;
                    }
                }
            }
            // Members of the partition-wide sets.
            let logs: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(p.logs())
                .query_async(&mut conn)
                .await?;
            for (endpoint, ws) in logs {
                let target = new.partition_of(&ws);
                if target.tag != p.tag {
                    let _: i64 = redis::cmd("HSET")
                        .arg(target.logs())
                        .arg(&endpoint)
                        .arg(&ws)
                        .query_async(&mut conn)
                        .await?;
                    let _: i64 = redis::cmd("HDEL")
                        .arg(p.logs())
                        .arg(&endpoint)
                        .query_async(&mut conn)
                        .await?;
                }
            }
            let ready: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(p.ready())
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await?;
            for (endpoint, score) in ready {
                let Some(ws) = endpoints.get(&endpoint) else {
                    continue;
                };
                let target = new.partition_of(ws);
                if target.tag != p.tag {
                    let _: i64 = redis::cmd("ZADD")
                        .arg(target.ready())
                        .arg(score)
                        .arg(&endpoint)
                        .query_async(&mut conn)
                        .await?;
                    let _: i64 = redis::cmd("ZREM")
                        .arg(p.ready())
                        .arg(&endpoint)
                        .query_async(&mut conn)
                        .await?;
                }
            }
            // Ordered endpoints: their new partition reads in order.
            let ordered: Vec<String> = redis::cmd("SMEMBERS")
                .arg(p.ordered())
                .query_async(&mut conn)
                .await?;
            for endpoint in ordered {
                let Some(ws) = endpoints.get(&endpoint) else {
                    continue;
                };
                let target = new.partition_of(ws);
                if target.tag != p.tag {
                    let _: i64 = redis::cmd("SADD")
                        .arg(target.ordered())
                        .arg(&endpoint)
                        .query_async(&mut conn)
                        .await?;
                    let _: i64 = redis::cmd("SREM")
                        .arg(p.ordered())
                        .arg(&endpoint)
                        .query_async(&mut conn)
                        .await?;
                }
            }
        }
        report.workspaces_moved = moved_workspaces.len();
        Ok(())
    }

    /// Moves the entries of `from`'s shipping backlog to `to`'s (copied,
    /// then deleted: a crash in between ships a record twice, stored once).
    async fn move_backlog(&self, from: &PartitionKeys, to: &PartitionKeys) -> Result<()> {
        let mut conn = self.conn.clone();
        loop {
            let reply: Value = redis::cmd("XRANGE")
                .arg(from.ship())
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(CHUNK)
                .query_async(&mut conn)
                .await?;
            let entries = raw_entries(&reply)?;
            if entries.is_empty() {
                return Ok(());
            }
            for (id, fields) in &entries {
                let mut add = redis::cmd("XADD");
                add.arg(to.ship()).arg("*");
                for (k, v) in fields {
                    add.arg(k).arg(v.as_slice());
                }
                let _: String = add.query_async(&mut conn).await?;
                let _: i64 = redis::cmd("XDEL")
                    .arg(from.ship())
                    .arg(id)
                    .query_async(&mut conn)
                    .await?;
            }
        }
    }

    /// Every key of partition `p`: a `SCAN` of its hash tag, on the node
    /// serving it.
    async fn scan_partition(&self, p: &PartitionKeys) -> Result<Vec<String>> {
        let mut node = self.node_for(&p.tag).await?;
        let pattern = format!("{}*", glob_escape(&p.tag));
        let mut cursor = 0u64;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut node)
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Copies `key` to `to_key` with its time to live, then deletes it.
    /// False when the key was gone (expired meanwhile).
    async fn move_key(&self, key: &str, to_key: &str) -> Result<bool> {
        let mut conn = self.conn.clone();
        let (dump, ttl): (Option<Vec<u8>>, i64) = redis::pipe()
            .cmd("DUMP")
            .arg(key)
            .cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await?;
        let Some(dump) = dump else { return Ok(false) };
        if ttl == -2 {
            return Ok(false);
        }
        let _: () = redis::cmd("RESTORE")
            .arg(to_key)
            .arg(ttl.max(0))
            .arg(dump)
            .arg("REPLACE")
            .query_async(&mut conn)
            .await?;
        let _: i64 = redis::cmd("DEL").arg(key).query_async(&mut conn).await?;
        Ok(true)
    }

    /// For each delivery in an endpoint's log that has no durable state (its
    /// payload is only in the old stream entry), writes its envelope into
    /// the target partition for the rest of the retention. Returns how many.
    async fn copy_envelopes(
        &self,
        p: &PartitionKeys,
        target: &PartitionKeys,
        endpoint: &str,
        workspace: &str,
    ) -> Result<u64> {
        let mut conn = self.conn.clone();
        let retention_ms = self.retention_secs() as i64 * 1000;
        let now = hookd_core::time::now_ms();
        let mut copied = 0;
        let mut start = 0usize;
        loop {
            let members: Vec<String> = redis::cmd("ZRANGE")
                .arg(p.log(endpoint))
                .arg(start)
                .arg(start + CHUNK - 1)
                .query_async(&mut conn)
                .await?;
            start += members.len();
            for r in members.iter().filter_map(|m| LogRecord::decode(m)) {
                let id = delivery_id(&r.entry_id, endpoint);
                let envelope_key = target.envelope(workspace, &r.event_id);
                // (Two round trips: the two partitions are two slots.)
                let durable: bool = redis::cmd("EXISTS")
                    .arg(p.delivery(&id))
                    .query_async(&mut conn)
                    .await?;
                let (durable_moved, present): (bool, bool) = redis::pipe()
                    .exists(target.delivery(&id))
                    .exists(&envelope_key)
                    .query_async(&mut conn)
                    .await?;
                if durable || durable_moved || present {
                    continue;
                }
                let left_ms = entry_time_ms(&r.entry_id).unwrap_or(now) + retention_ms - now;
                if left_ms <= 0 {
                    continue;
                }
                let Some(envelope) = self
                    .entry_envelope(&p.stream, &r.entry_id, &r.event_id)
                    .await?
                else {
                    continue;
                };
                let _: Option<String> = redis::cmd("SET")
                    .arg(&envelope_key)
                    .arg(envelope)
                    .arg("PX")
                    .arg(left_ms)
                    .arg("NX")
                    .query_async(&mut conn)
                    .await?;
                copied += 1;
            }
            if members.len() < CHUNK {
                return Ok(copied);
            }
        }
    }

    /// Forwards every entry of the retired streams not yet acknowledged by
    /// `group` (unread, or pending in a consumer) to its workspace's
    /// partition under `new`. Returns how many.
    async fn drain_retired(&self, new: &Keys, group: &str) -> Result<u64> {
        let mut conn = self.conn.clone();
        let retired: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.retired_streams())
            .query_async(&mut conn)
            .await?;
        let mut forwarded = 0;
        for stream in retired {
            let exists: bool = redis::cmd("EXISTS")
                .arg(&stream)
                .query_async(&mut conn)
                .await?;
            if !exists {
                continue;
            }
            self.create_group(&stream, group, false).await?;
            loop {
                // Pending first (left by daemons), then never read.
                let entries = self
                    .take_entries(&stream, group, CONSUMER, Duration::ZERO, CHUNK)
                    .await?;
                if entries.is_empty() {
                    break;
                }
                for (id, fields) in &entries {
                    let workspace = fields
                        .iter()
                        .find(|(k, _)| k == "workspace")
                        .and_then(|(_, v)| std::str::from_utf8(v).ok())
                        .filter(|ws| hookd_core::event::is_valid_workspace(ws));
                    // Without a valid workspace it goes to partition 0,
                    // whose daemon dead-letters it with the reason.
                    let target =
                        workspace.map_or_else(|| new.partition(0), |ws| new.partition_of(ws));
                    self.forward_entry(&stream, group, id, fields, &target)
                        .await?;
                    forwarded += 1;
                }
            }
        }
        Ok(forwarded)
    }

    /// Adds a copy of entry `id` of `stream` to the target partition's
    /// stream, then acknowledges it. The copy keeps the event's identity:
    /// an entry without `id` or `occurred_at` gets the ones it had here
    /// (`evt_<entry id>`, the entry's time), which its new entry id would
    /// otherwise change. So a crash in between, which forwards it twice,
    /// makes the second copy a duplicate of the same event id, which the
    /// target's idempotency marker (workspace, event id) skips.
    pub(crate) async fn forward_entry(
        &self,
        stream: &str,
        group: &str,
        id: &str,
        fields: &[(String, Vec<u8>)],
        target: &PartitionKeys,
    ) -> Result<()> {
        let mut conn = self.conn.clone();
        let mut add = redis::cmd("XADD");
        add.arg(&target.stream).arg("*");
        for (k, v) in fields {
            add.arg(k).arg(v.as_slice());
        }
        if !fields.iter().any(|(k, _)| k == "id") {
            add.arg("id").arg(format!("evt_{id}"));
        }
        if !fields.iter().any(|(k, _)| k == "occurred_at")
            && let Some(ms) = hookd_core::delivery::entry_time_ms(id)
        {
            add.arg("occurred_at")
                .arg(hookd_core::time::format_rfc3339_ms(ms));
        }
        let _: String = add.query_async(&mut conn).await?;
        let _: i64 = redis::cmd("XACK")
            .arg(stream)
            .arg(group)
            .arg(id)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Entries a daemon read whose workspace belongs to another partition
    /// (a producer still writing with the old count): forwarded there.
    pub async fn forward(
        &self,
        from: &PartitionKeys,
        group: &str,
        entries: &[(&crate::stream::Entry, PartitionKeys)],
    ) -> Result<()> {
        for (entry, target) in entries {
            self.forward_entry(&from.stream, group, &entry.id, &entry.fields, target)
                .await?;
        }
        Ok(())
    }
}

/// `s` with the characters `SCAN MATCH` treats as a pattern escaped.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::glob_escape;

    #[test]
    fn scan_patterns_match_names_literally() {
        assert_eq!(glob_escape("{hookd:events:p1}"), "{hookd:events:p1}");
        assert_eq!(glob_escape("{a*b?[c]\\}"), "{a\\*b\\?\\[c\\]\\\\}");
    }
}
