//! The event stream: consumer group, reading new and reclaiming abandoned
//! entries, dead-lettering bad ones, trimming.

use std::collections::HashMap;
use std::time::Duration;

use redis::Value;

use hookd_core::EventLimits;

use crate::keys::PartitionKeys;
pub use crate::pipeline::reader::Entry;
use crate::pipeline::reader::{EntryReader, OrderKeys, Read, ReadError};

/// How long a read list of keyed entries lives past its last write (s): a
/// list whose entries were never ordered (an entry dead-lettered) goes then.
const ORDER_READS_TTL: u64 = 86_400;
use crate::value::{bytes, int, items, pairs, string};
use crate::{Result, Store, StoreError};

fn is_nogroup(e: &redis::RedisError) -> bool {
    // From a script, the code can arrive inside the message.
    e.code() == Some("NOGROUP") || e.to_string().contains("NOGROUP")
}

/// What publishing an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// A new stream entry.
    New {
        /// The entry's id.
        entry_id: String,
    },
    /// The event id was published before: nothing written. `same` says
    /// whether the event was the same apart from its id (`None` when the
    /// first came from a producer's XADD, which left nothing to compare).
    Repeat {
        /// The first entry's id.
        entry_id: String,
        /// The same event (`None`: not known).
        same: Option<bool>,
    },
}

/// Entries taken by a read, and the reasons of those it moved to the
/// dead-letter stream without reading them (too many fields, too large, a
/// field name that is not UTF-8, taken over too many times).
#[derive(Debug, Default)]
pub struct Taken {
    /// The entries read.
    pub entries: Vec<Entry>,
    /// The reasons of the entries dead-lettered unread, one each.
    pub dead_lettered: Vec<String>,
    /// A reclaim: where the next one starts in the pending list (`0-0`:
    /// from the start again).
    pub cursor: Option<String>,
    /// A reclaim: ids that were pending but whose entries had been trimmed
    /// away (nothing left to deliver; Redis dropped them).
    pub trimmed: Vec<String>,
    /// The partition's reclaim count when the entries were read: settling
    /// them may skip asking whose they are while it has not changed (see
    /// `lua/settle.lua`). 0 for reclaimed entries (asked about every time).
    pub epoch: u64,
}

impl Store {
    /// Creates the consumer group (and the stream) if missing. Idempotent.
    pub async fn ensure_group(&self, p: &PartitionKeys, group: &str) -> Result<()> {
        self.create_group(&p.stream, group, true).await
    }

    /// Creates `group` on `stream`, reading from its start, unless it
    /// exists; with `make_stream` the stream too (else a missing stream is
    /// an error).
    pub(crate) async fn create_group(
        &self,
        stream: &str,
        group: &str,
        make_stream: bool,
    ) -> Result<()> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE").arg(stream).arg(group).arg("0");
        if make_stream {
            cmd.arg("MKSTREAM");
        }
        let created: redis::RedisResult<()> = cmd.query_async(&mut self.conn.clone()).await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Up to `count` entries of `stream` for `consumer` of `group`: those
    /// pending in any consumer longer than `min_idle` first, otherwise new
    /// ones. Never waits: a blocking read would hold the shared connection
    /// every other command goes through (callers poll). Entries deleted
    /// while pending are skipped. For the side streams (retired partitions,
    /// the history backlog); partitions' own reads go through `reader.rs`.
    pub(crate) async fn take_entries(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<(String, RawFields)>> {
        let mut conn = self.conn.clone();
        let reply: Value = redis::cmd("XAUTOCLAIM")
            .arg(stream)
            .arg(group)
            .arg(consumer)
            .arg(min_idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        let claimed = match items(&reply)? {
            [_, claimed, ..] => raw_entries(claimed)?,
            _ => Vec::new(),
        };
        if !claimed.is_empty() {
            return Ok(claimed);
        }
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(stream)
            .arg(">")
            .query_async(&mut conn)
            .await?;
        let streams: Vec<&Value> = match &reply {
            Value::Nil => Vec::new(),
            Value::Map(m) => m.iter().map(|(_, v)| v).collect(),
            other => items(other)?
                .iter()
                .filter_map(|s| items(s).ok()?.get(1))
                .collect(),
        };
        let mut out = Vec::new();
        for entries in streams {
            out.extend(raw_entries(entries)?);
        }
        Ok(out)
    }

    /// Takes up to `count` new entries for `consumer` without waiting.
    /// Entries over `limits` are drained unread by the stream reader and
    /// dead-lettered inside Redis (see `reader.rs`).
    pub async fn take_new(
        &self,
        p: &PartitionKeys,
        group: &str,
        consumer: &str,
        count: usize,
        limits: &EventLimits,
    ) -> Result<Taken> {
        self.read_new(p, group, consumer, count, None, limits).await
    }

    /// Waits up to the configured block time for new entries (taking at
    /// most `count`), under `limits` as [`Store::take_new`]. If the group
    /// vanished (Redis restarted empty), it is recreated and nothing returned.
    pub async fn wait_new(
        &self,
        p: &PartitionKeys,
        group: &str,
        consumer: &str,
        count: usize,
        limits: &EventLimits,
    ) -> Result<Taken> {
        let block = self.settings.read_block;
        self.read_new(p, group, consumer, count, Some(block), limits)
            .await
    }

    /// New entries for `consumer`, waiting up to `block` for them.
    async fn read_new(
        &self,
        p: &PartitionKeys,
        group: &str,
        consumer: &str,
        count: usize,
        block: Option<Duration>,
        limits: &EventLimits,
    ) -> Result<Taken> {
        let read = self
            .reader(p)
            .read_new(
                group,
                consumer,
                &p.stream,
                &p.reclaims(),
                &OrderKeys {
                    ordered: p.ordered(),
                    affixes: p.order_reads_affixes(),
                    ttl: ORDER_READS_TTL,
                },
                count,
                block,
                limits,
            )
            .await;
        self.taken(p, group, read).await
    }

    /// Takes over entries another consumer left pending for longer than
    /// `min_idle` (that consumer died before acknowledging them), under
    /// `limits` as [`Store::take_new`], scanning the pending list from
    /// `cursor` (the last reclaim's [`Taken::cursor`], or `0-0`). An entry
    /// taken over more than `max_deliveries` times (it keeps failing, or
    /// keeps killing whoever reads it) goes to the dead-letter stream
    /// instead (`redelivered_too_often`).
    #[allow(clippy::too_many_arguments)]
    pub async fn reclaim(
        &self,
        p: &PartitionKeys,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        cursor: &str,
        count: usize,
        limits: &EventLimits,
        max_deliveries: u64,
    ) -> Result<Taken> {
        // Nothing idle long enough: nothing to take over (and the reclaim
        // count stays as it is, so settles keep their fast path).
        let idle: redis::RedisResult<Value> = redis::cmd("XPENDING")
            .arg(&p.stream)
            .arg(group)
            .arg("IDLE")
            .arg(min_idle.as_millis() as u64)
            .arg("-")
            .arg("+")
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await;
        let idle = match idle {
            // The group is gone (Redis came back empty, a failover lost it):
            // made again here too, or a daemon that reclaims before every
            // read would never read again.
            Err(e) if e.code() == Some("NOGROUP") => {
                self.recreate_group(p, group).await?;
                return Ok(Taken {
                    cursor: Some(cursor.to_string()),
                    ..Taken::default()
                });
            }
            other => other?,
        };
        if items(&idle).map_or(true, <[Value]>::is_empty) {
            return Ok(Taken {
                cursor: Some(cursor.to_string()),
                ..Taken::default()
            });
        }
        // Counted before anything is taken over: a settle of the entries'
        // old owner that runs after this sees the count changed.
        let _: i64 = redis::cmd("INCR")
            .arg(p.reclaims())
            .query_async(&mut self.conn.clone())
            .await?;
        let mut read = self
            .reader(p)
            .reclaim(group, consumer, &p.stream, min_idle, cursor, count, limits)
            .await;
        if let Ok(r) = &mut read
            && !r.entries.is_empty()
        {
            let counts = self.delivery_counts(p, group, &r.entries).await?;
            let mut kept = Vec::with_capacity(r.entries.len());
            for (entry, n) in std::mem::take(&mut r.entries).into_iter().zip(counts) {
                if n > max_deliveries {
                    r.refused.push(crate::pipeline::reader::Refused {
                        message: format!(
                            "read {n} times without being settled (over [ingest] max_deliveries = {max_deliveries}): each daemon that read it died or failed before settling it"
                        ),
                        id: entry.id,
                        reason: "redelivered_too_often",
                    });
                } else {
                    kept.push(entry);
                }
            }
            r.entries = kept;
        }
        self.taken(p, group, read).await
    }

    /// How many times each entry has been read in the group (its pending
    /// list's delivery counter; 0 when no longer pending).
    async fn delivery_counts(
        &self,
        p: &PartitionKeys,
        group: &str,
        entries: &[Entry],
    ) -> Result<Vec<u64>> {
        let mut pipe = redis::pipe();
        for e in entries {
            pipe.cmd("XPENDING")
                .arg(&p.stream)
                .arg(group)
                .arg(&e.id)
                .arg(&e.id)
                .arg(1);
        }
        let replies: Vec<Value> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(replies
            .iter()
            .map(|v| {
                items(v)
                    .ok()
                    .and_then(|rows| rows.first())
                    .and_then(|row| items(row).ok())
                    .and_then(|row| row.get(3))
                    .and_then(|n| int(n).ok())
                    .unwrap_or(0) as u64
            })
            .collect())
    }

    /// Whether the partition's reads note keyed entries now (it had an
    /// ordered endpoint at the last read).
    pub fn reads_ordered(&self, p: &PartitionKeys) -> bool {
        self.reader(p).ordered()
    }

    /// Takes keyed entries that have no ordered delivery (`(workspace, key,
    /// entry id)`) out of their keys' read lists: nothing waits on them.
    /// (An entry with an ordered delivery leaves its list when that delivery
    /// joins its key's order, in `lua/settle.lua`.)
    pub async fn unorder(
        &self,
        p: &PartitionKeys,
        entries: &[(String, String, String)],
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (workspace, key, entry) in entries {
            pipe.cmd("LREM")
                .arg(p.order_reads(workspace, key))
                .arg(1)
                .arg(entry)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await?;
        Ok(())
    }

    fn reader(&self, p: &PartitionKeys) -> &EntryReader {
        &self.readers[p.index as usize % self.readers.len()]
    }

    /// Makes the consumer group again after a read or reclaim found it gone.
    async fn recreate_group(&self, p: &PartitionKeys, group: &str) -> Result<()> {
        tracing::warn!(stream = %p.stream, group, "consumer group missing (Redis restarted empty?); recreating it");
        self.ensure_group(p, group).await
    }

    /// What a read took: the refused entries dead-lettered, a missing
    /// group made again.
    async fn taken(
        &self,
        p: &PartitionKeys,
        group: &str,
        read: std::result::Result<Read, ReadError>,
    ) -> Result<Taken> {
        let read = match read {
            Ok(read) => read,
            Err(ReadError::Server(e)) if e.starts_with("NOGROUP") => {
                self.recreate_group(p, group).await?;
                return Ok(Taken::default());
            }
            Err(ReadError::Server(e)) => return Err(StoreError::Reply(e)),
            Err(ReadError::Store(e)) => return Err(e),
        };
        if !read.refused.is_empty() {
            let mut conn = self.conn.clone();
            let mut call = self.scripts.dead_letter.key(&p.stream);
            call.key(self.keys.dead_letter(p))
                .arg(group)
                .arg(self.settings.dead_letter_max_len.max(1));
            for o in &read.refused {
                call.arg(&o.id).arg(o.reason).arg(&o.message);
            }
            let _: Value = call.invoke_async(&mut conn).await?;
        }
        Ok(Taken {
            entries: read.entries,
            dead_lettered: read
                .refused
                .into_iter()
                .map(|o| o.reason.to_string())
                .collect(),
            cursor: read.cursor,
            trimmed: read.trimmed,
            epoch: read.epoch,
        })
    }

    /// Resets the idle time of entries `consumer` still works on, so no
    /// daemon takes them over as abandoned; only those it still owns
    /// (`lua/touch.lua`), asked about only when a daemon took entries over
    /// since `known` (the reclaim count the last touch returned; `None`:
    /// always asked). Returns the ids it no longer owns, and the reclaim
    /// count now.
    pub async fn touch(
        &self,
        p: &PartitionKeys,
        group: &str,
        consumer: &str,
        ids: &[&String],
        known: Option<u64>,
    ) -> Result<(Vec<String>, u64)> {
        let mut call = self.scripts.touch.key(&p.stream);
        call.key(p.reclaims())
            .arg(group)
            .arg(consumer)
            .arg(known.map(|k| k.to_string()).unwrap_or_default())
            .arg(ids);
        Ok(call.invoke_async(&mut self.conn.clone()).await?)
    }

    /// Hands back every entry `consumer` still has pending as it stops
    /// (`lua/hand_back.lua`, 1,000 a call): each looks abandoned at once
    /// (idle `idle`), for the next reclaim to take over, and its delivery
    /// count is set back by one. Returns how many it handed back.
    pub async fn hand_back(
        &self,
        p: &PartitionKeys,
        group: &str,
        consumer: &str,
        idle: Duration,
    ) -> Result<u64> {
        let mut after = "-".to_string();
        let mut handed = 0;
        loop {
            let mut call = self.scripts.hand_back.key(&p.stream);
            call.arg(group)
                .arg(consumer)
                .arg(idle.as_millis() as u64)
                .arg(&after)
                .arg(1000);
            let (n, last): (u64, String) = call.invoke_async(&mut self.conn.clone()).await?;
            handed += n;
            if last.is_empty() {
                return Ok(handed);
            }
            after = last;
        }
    }

    /// Moves a bad entry to the dead-letter stream with a reason, then acks it.
    /// (Two commands, in this order: a crash in between dead-letters it twice, never zero times.)
    pub async fn dead_letter(
        &self,
        p: &PartitionKeys,
        group: &str,
        entry: &Entry,
        code: &str,
        message: &str,
        limits: &EventLimits,
    ) -> Result<()> {
        let mut conn = self.conn.clone();
        // An entry over the limits is kept cut short: its first fields, each
        // value to 1 KiB (as lua/dead_letter.lua does).
        let hostile = limits.oversized(&entry.fields);
        let mut xadd = redis::cmd("XADD");
        // Capped: a producer sending only garbage cannot fill Redis.
        xadd.arg(self.keys.dead_letter(p))
            .arg("MAXLEN")
            .arg(self.settings.dead_letter_max_len.max(1))
            .arg("*")
            .arg("reason")
            .arg(code)
            .arg("message")
            .arg(message)
            .arg("entry_id")
            .arg(&entry.id)
            .arg("stream")
            .arg(&p.stream);
        if hostile {
            xadd.arg("truncated").arg("1");
            for (k, v) in entry.fields.iter().take(16) {
                xadd.arg(format!("field.{k}")).arg(&v[..v.len().min(1024)]);
            }
        } else {
            for (k, v) in &entry.fields {
                xadd.arg(format!("field.{k}")).arg(v.as_slice());
            }
        }
        redis::pipe()
            .add_command(xadd)
            .ignore()
            .cmd("XACK")
            .arg(&p.stream)
            .arg(group)
            .arg(&entry.id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Drops stream entries older than `keep` (approximate, O(1) amortised),
    /// but never one the group has not read, nor one still pending.
    pub async fn trim_stream(
        &self,
        p: &PartitionKeys,
        group: &str,
        keep: Duration,
        now_ms: i64,
    ) -> Result<()> {
        let mut conn = self.conn.clone();
        let by_age = ((now_ms - keep.as_millis() as i64).max(0) as u64, 0);
        // Never past what the group has read and acknowledged: an entry not
        // yet read, or read and still pending, stays whatever its age.
        let groups: Value = match redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&p.stream)
            .query_async(&mut conn)
            .await
        {
            Ok(v) => v,
            // No stream yet: nothing to trim. Any other error is one.
            Err(e) if e.to_string().contains("no such key") => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        // No group: nothing was ever read; keep everything.
        let Some(info) = group_info(&groups, group)? else {
            return Ok(());
        };
        let Some(last_delivered) = info
            .get("last-delivered-id")
            .and_then(|v| string(v).ok())
            .and_then(|id| stream_id(&id))
        else {
            return Ok(());
        };
        let summary: Value = redis::cmd("XPENDING")
            .arg(&p.stream)
            .arg(group)
            .query_async(&mut conn)
            .await?;
        let oldest_pending = match items(&summary)? {
            [count, oldest, ..] if int(count).unwrap_or(0) > 0 => {
                string(oldest).ok().and_then(|id| stream_id(&id))
            }
            _ => None,
        };
        let mut cut = by_age.min(last_delivered);
        if let Some(oldest) = oldest_pending {
            cut = cut.min(oldest);
        }
        // Nor past an entry a lane still names (its delivery waits there).
        if let Some(floor) = self.lane_floor(p).await?.and_then(|f| stream_id(&f)) {
            cut = cut.min(floor);
        }
        let _: i64 = redis::cmd("XTRIM")
            .arg(&p.stream)
            .arg("MINID")
            .arg("~")
            .arg(format!("{}-{}", cut.0, cut.1))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}

/// The fields of `group` in an `XINFO GROUPS` reply (`None`: no such group).
pub(crate) fn group_info<'a>(
    groups: &'a Value,
    group: &str,
) -> Result<Option<HashMap<String, &'a Value>>> {
    for g in items(groups).unwrap_or_default() {
        let fields: HashMap<String, &Value> = pairs(g)?.into_iter().collect();
        if fields.get("name").and_then(|n| string(n).ok()).as_deref() == Some(group) {
            return Ok(Some(fields));
        }
    }
    Ok(None)
}

/// An entry's fields as Redis holds them (names, and values as bytes).
pub(crate) type RawFields = Vec<(String, Vec<u8>)>;

/// `[[id, [field, value, ...]], ...]` (entries deleted meanwhile, with nil
/// fields, skipped).
pub(crate) fn raw_entries(v: &Value) -> Result<Vec<(String, RawFields)>> {
    let mut out = Vec::new();
    for entry in items(v)? {
        let Ok([id, fields]) = items(entry) else {
            continue;
        };
        let Ok(fields) = items(fields) else { continue };
        let fields = fields
            .chunks_exact(2)
            .filter_map(|kv| Some((string(&kv[0]).ok()?, bytes(&kv[1])?.to_vec())))
            .collect();
        out.push((string(id)?, fields));
    }
    Ok(out)
}

/// A stream entry id `<ms>-<seq>` as numbers, in stream order.
pub(crate) fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

impl Store {
    /// Puts an event on its workspace's stream unless (workspace, `event_id`)
    /// was published before within the retention: then nothing is written,
    /// and the answer says what the first one was.
    pub async fn publish(
        &self,
        workspace: &str,
        event_id: &str,
        fields: &[(String, String)],
    ) -> Result<Publication> {
        let p = self.keys.partition_of(workspace);
        let fingerprint = hookd_core::event::fingerprint(fields);
        let mut call = self.scripts.publish.key(&p.stream);
        call.key(p.published(workspace, event_id))
            .key(p.event(workspace, event_id))
            .arg(&fingerprint)
            .arg(self.retention_secs());
        for (k, v) in fields {
            call.arg(k).arg(v);
        }
        let mut conn = self.conn.clone();
        let reply: Value = call.invoke_async(&mut conn).await?;
        match items(&reply)? {
            [kind, entry] if string(kind)? == "new" => Ok(Publication::New {
                entry_id: string(entry)?,
            }),
            [_, entry, first] => {
                let first = string(first)?;
                Ok(Publication::Repeat {
                    entry_id: string(entry)?,
                    same: (!first.is_empty()).then(|| first == fingerprint),
                })
            }
            _ => Err(StoreError::Reply(format!("publish: {reply:?}"))),
        }
    }
}

impl Store {
    /// Whether `me` runs housekeeping now: one daemon at a time does (the
    /// first to ask, for `lease`; it keeps it by asking again within it).
    pub async fn lead_housekeeping(&self, me: &str, lease: Duration) -> Result<bool> {
        let key = self.keys.housekeeper();
        let ms = lease.as_millis().max(1) as u64;
        let mut conn = self.conn.clone();
        let took: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(me)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .query_async(&mut conn)
            .await?;
        if took.is_some() {
            return Ok(true);
        }
        let holder: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        if holder.as_deref() != Some(me) {
            return Ok(false);
        }
        let _: i64 = redis::cmd("PEXPIRE")
            .arg(&key)
            .arg(ms)
            .query_async(&mut conn)
            .await?;
        Ok(true)
    }

    /// Removes consumers of the group other than `keep` that have nothing
    /// pending and have been idle longer than `idle` (daemons that stopped;
    /// their pending entries were reclaimed before). Returns how many went.
    /// Removing a live but quiet consumer is harmless: it has nothing pending,
    /// and Redis registers it again on its next read.
    pub async fn prune_consumers(
        &self,
        p: &PartitionKeys,
        group: &str,
        keep: &str,
        idle: Duration,
    ) -> Result<usize> {
        let mut conn = self.conn.clone();
        let reply: redis::RedisResult<Value> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&p.stream)
            .arg(group)
            .query_async(&mut conn)
            .await;
        let reply = match reply {
            Ok(v) => v,
            Err(e) if is_nogroup(&e) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut removed = 0;
        for consumer in items(&reply)? {
            let fields = pairs(consumer)?;
            let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
            let (Some(name), Some(pending), Some(idle_ms)) =
                (field("name"), field("pending"), field("idle"))
            else {
                continue;
            };
            let name = string(name)?;
            if name != keep && int(pending)? == 0 && int(idle_ms)? as u128 > idle.as_millis() {
                // Removed only if still nothing pending (it may have read since XINFO).
                let gone: i64 = self
                    .scripts
                    .prune
                    .key(&p.stream)
                    .arg(group)
                    .arg(&name)
                    .invoke_async(&mut conn)
                    .await?;
                removed += gone as usize;
            }
        }
        Ok(removed)
    }
}
