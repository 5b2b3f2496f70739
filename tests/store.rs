//! Store-level tests of the Lua scripts and the stream housekeeping, against
//! a real redis-server: what each step guarantees when called directly,
//! without a daemon in between.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod harness;

use std::time::Duration;

use harness::*;
use hookd_core::{DeliveryStatus, Endpoint, Event, EventLimits, SignatureScheme, time};
use hookd_store::ingest::{Lane, SettleBatch, Settled};
use hookd_store::log::LogRecord;
use hookd_store::schedule::{Breaker, ConcurrencyLimits};
use hookd_store::{Store, StoreSettings};

/// The store's settings as the built-in configuration gives them, on `redis`.
fn settings(redis: &Redis) -> StoreSettings {
    StoreSettings {
        url: redis.url(),
        ..hookd::settings::Config::default().store()
    }
}

/// The concurrency limits of the built-in configuration.
fn limits() -> ConcurrencyLimits {
    hookd::settings::Config::default()
        .daemon(String::new())
        .schedule
        .limits
}

async fn store(redis: &Redis) -> Store {
    Store::connect(settings(redis)).await.unwrap()
}

async fn endpoint(store: &Store, ws: &str) -> Endpoint {
    let ep = Endpoint::new(
        ws.into(),
        "http://127.0.0.1:9/x".into(),
        SignatureScheme::Sha256,
        time::now_ms(),
    )
    .unwrap();
    store.create_endpoint(&ep).await.unwrap();
    ep
}

/// Writes `n` events of `ws` to the stream and reads them as consumer
/// `me` of the group (so they are pending, `me`'s to settle); returns
/// (entry id, event) pairs.
async fn read_events(store: &Store, ws: &str, n: usize) -> Vec<(String, Event)> {
    let p = store.keys().partition_of(ws);
    store.ensure_group(&p, "hookd").await.unwrap();
    let mut conn = store_conn(store).await;
    let mut events = Vec::new();
    for i in 0..n {
        let id = format!("e{i}");
        let fields = [
            ("type", "card.created"),
            ("workspace", ws),
            ("data", "{}"),
            ("id", &id),
        ];
        let entry = xadd(&mut conn, &p.stream, "*", &fields).await;
        let event = Event::from_entry(&entry, &fields, EventLimits::default()).unwrap();
        events.push((entry, event));
    }
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("hookd")
        .arg("me")
        .arg("COUNT")
        .arg(n)
        .arg("STREAMS")
        .arg(&p.stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    events
}

/// What "me" takes over from the start of the pending list: entries idle
/// over a minute, ten at most, dead-lettered past ten reads.
async fn reclaim_idle(store: &Store, p: &hookd_store::PartitionKeys) -> hookd_store::stream::Taken {
    store
        .reclaim(
            p,
            "hookd",
            "me",
            Duration::from_secs(60),
            "0-0",
            10,
            &EventLimits::default(),
            10,
        )
        .await
        .unwrap()
}

/// XADDs one entry of `fields` to `stream` under `id` (`*`: Redis picks).
async fn xadd(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    id: &str,
    fields: &[(&str, &str)],
) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg(id);
    for (k, v) in fields {
        cmd.arg(*k).arg(*v);
    }
    cmd.query_async(conn).await.unwrap()
}

/// A connection to the store's Redis (the tests' own, one node).
async fn store_conn(store: &Store) -> redis::aio::MultiplexedConnection {
    redis::Client::open(store.settings().url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Accepts `n` events of `ws` read from the stream, and settles each
/// delivery without an attempt with `status` (as dispatch does for an
/// endpoint that is paused, or without a free slot); returns how many.
async fn settle(store: &Store, ws: &str, n: usize, status: DeliveryStatus) -> u64 {
    let p = store.keys().partition_of(ws);
    let now = time::now_ms();
    let subscribers = store
        .subscribers(&p, &[(ws.to_string(), "card.created".to_string())])
        .await
        .unwrap()
        .remove(0);
    let mut total = 0;
    let events = read_events(store, ws, n).await;
    for chunk in events.chunks(200) {
        let refs: Vec<(&str, &Event)> = chunk.iter().map(|(id, e)| (id.as_str(), e)).collect();
        let accepted = store
            .accept(&p, "me", &refs, &[], Duration::from_secs(30))
            .await
            .unwrap();
        assert!(accepted.accepted.iter().all(|a| *a));
        let settled: Vec<Settled> = chunk
            .iter()
            .flat_map(|(entry, e)| {
                subscribers.iter().map(move |ep| Settled {
                    entry_id: entry.clone(),
                    endpoint: ep.clone(),
                    workspace: e.workspace.clone(),
                    event_id: e.id.clone(),
                    event_type: e.event_type.clone(),
                    status,
                    attempt: None,
                    next_at_ms: Some(now),
                    pause_reason: None,
                    envelope: Some(e.envelope.clone().into()),
                    trace: None,
                    lane: Lane::Direct,
                    epoch: 0,
                    ordering_key: None,
                })
            })
            .collect();
        total += settled.len() as u64;
        let batch = SettleBatch {
            deliveries: settled.iter().collect(),
            ..SettleBatch::default()
        };
        store
            .settle(&p, "hookd", "me", &batch, Breaker::default())
            .await
            .unwrap();
    }
    total
}

#[tokio::test]
async fn a_lease_is_judged_by_redis_clock_not_the_daemons() {
    let redis = Redis::start();
    let store = store(&redis).await;
    let ep = endpoint(&store, "ws").await;
    assert_eq!(settle(&store, "ws", 1, DeliveryStatus::Pending).await, 1);
    let p = store.keys().partition_of("ws");
    let limits = limits();
    let lease = Duration::from_secs(30);
    let first = store
        .claim_due(&p, lease, 10, &limits, "t1", "hookd")
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].endpoint.id, ep.id);
    // The claim takes no time from the daemon (whose clock may run ahead):
    // Redis's clock sees the lease as live.
    let second = store
        .claim_due(&p, lease, 10, &limits, "t2", "hookd")
        .await
        .unwrap();
    assert!(second.is_empty(), "a live lease was taken over: {second:?}");
}

#[tokio::test]
async fn resuming_releases_a_large_held_set_in_chunks() {
    let redis = Redis::start();
    let store = store(&redis).await;
    let ep = endpoint(&store, "ws").await;
    store
        .pause_endpoint(&ep.id, "test", time::now_ms())
        .await
        .unwrap();
    assert_eq!(settle(&store, "ws", 2500, DeliveryStatus::Held).await, 2500);
    let paused = store.endpoint(&ep.id).await.unwrap();
    assert_eq!(store.held_count(&paused).await.unwrap(), 2500);
    let released = store.resume_endpoint(&ep.id, time::now_ms()).await.unwrap();
    assert_eq!(
        released, 2500,
        "every held delivery released, over several calls"
    );
    let due: u64 = redis::cmd("ZCARD")
        .arg(store.keys().partition_of("ws").due(&ep.id))
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    assert_eq!(due, 2500);
}

#[tokio::test]
async fn a_deleted_endpoints_queue_is_failed_in_chunks() {
    let redis = Redis::start();
    let store = store(&redis).await;
    let ep = endpoint(&store, "ws").await;
    assert_eq!(
        settle(&store, "ws", 1200, DeliveryStatus::Pending).await,
        1200
    );
    // Deleted behind the daemon's back (the hash alone), with 1,200 due.
    let p = store.keys().partition_of("ws");
    let _: i64 = redis::cmd("DEL")
        .arg(p.endpoint(&ep.id))
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let limits = limits();
    let mut calls = 0;
    loop {
        calls += 1;
        let claimed = store
            .claim_due(&p, Duration::from_secs(30), 100, &limits, "t", "hookd")
            .await
            .unwrap();
        assert!(claimed.is_empty());
        let due: u64 = redis::cmd("ZCARD")
            .arg(p.due(&ep.id))
            .query_async(&mut redis.conn().await)
            .await
            .unwrap();
        if due == 0 {
            break;
        }
        assert!(calls < 10, "the queue did not drain");
    }
    assert!(
        calls >= 3,
        "1,200 deliveries took {calls} calls of at most 500"
    );
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(p.log(&ep.id))
        .arg(0)
        .arg(-1)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let ids: Vec<String> = members
        .iter()
        .map(|m| {
            let r = LogRecord::decode(m).unwrap();
            hookd_core::delivery::delivery_id(&r.entry_id, &ep.id)
        })
        .collect();
    assert_eq!(ids.len(), 1200);
    for id in ids.iter().step_by(97) {
        let d = store.delivery(id).await.unwrap();
        assert_eq!(d.status.as_str(), "failed", "{id}");
    }
}

#[tokio::test]
async fn the_stream_is_never_trimmed_past_unread_or_pending_entries() {
    let redis = Redis::start();
    let store = store(&redis).await;
    let p = store.keys().partition(0);
    store.ensure_group(&p, "hookd").await.unwrap();
    let mut conn = redis.conn().await;
    // 250 old entries (ids from 1970, several stream nodes, so even the
    // approximate trim could drop whole nodes): one read and left pending,
    // the rest never read.
    for seq in 1..=250 {
        xadd(
            &mut conn,
            &p.stream,
            &format!("1000-{seq}"),
            &[("type", "x")],
        )
        .await;
    }
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("hookd")
        .arg("ghost")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&p.stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    // A retention of one second makes every entry "old".
    store
        .trim_stream(&p, "hookd", Duration::from_secs(1), time::now_ms())
        .await
        .unwrap();
    let len: u64 = redis::cmd("XLEN")
        .arg(&p.stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 250, "nothing unread or pending was trimmed");
}

/// Entries waiting in lanes are read again by id, in one range read on
/// the filler's own connection: the ids asked for come back in their
/// order with their fields, others' entries between them are dropped, an
/// id past the range's count is read on its own, and a deleted one is `None`.
#[tokio::test]
async fn entries_are_read_again_by_id_in_one_range() {
    let redis = Redis::start();
    let store = store(&redis).await;
    let p = store.keys().partition(0);
    let mut conn = redis.conn().await;
    for seq in 1..=300 {
        let n = seq.to_string();
        xadd(
            &mut conn,
            &p.stream,
            &format!("1000-{seq}"),
            &[("type", "x"), ("n", &n)],
        )
        .await;
    }
    let _: u64 = redis::cmd("XDEL")
        .arg(&p.stream)
        .arg("1000-5")
        .query_async(&mut conn)
        .await
        .unwrap();
    // (The count read in range is twice the ids asked for and 64 more:
    // 1000-300 lies past it.)
    let ids: Vec<String> = ["1000-2", "1000-5", "1000-9", "1000-300"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let limits = hookd_core::EventLimits::default();
    for _ in 0..2 {
        let read = store.entries(&p, &ids, &limits).await.unwrap();
        let got: Vec<Option<(String, Vec<u8>)>> = read
            .into_iter()
            .map(|e| e.map(|e| (e.id, e.fields[1].1.clone())))
            .collect();
        assert_eq!(
            got,
            vec![
                Some(("1000-2".to_string(), b"2".to_vec())),
                None,
                Some(("1000-9".to_string(), b"9".to_vec())),
                Some(("1000-300".to_string(), b"300".to_vec())),
            ]
        );
    }
    assert!(store.entries(&p, &[], &limits).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_lua_prelude_runs_and_names_statuses_and_shapes() {
    let redis = Redis::start();
    let script = format!(
        "{}return {{ STATUS_RETRYING, SETTLE_FIELDS, RECORD_FIELDS, CLAIM_FIELDS, clock_ms() > 0 and 1 or 0 }}",
        hookd_store::keys::lua_prelude()
    );
    let v: Vec<redis::Value> = redis::cmd("EVAL")
        .arg(script)
        .arg(0)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let text: Vec<String> = v.iter().map(text).collect();
    assert_eq!(text, ["retrying", "18", "12", "13", "1"]);
}

/// A delivery of `entry` to `ep`, settled after a first attempt with `status`.
fn settled_delivery(
    ws: &str,
    ep: &str,
    (entry, event): &(String, Event),
    status: DeliveryStatus,
) -> Settled {
    Settled {
        entry_id: entry.clone(),
        endpoint: ep.to_string(),
        workspace: ws.to_string(),
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        status,
        attempt: Some(attempt(1, status == DeliveryStatus::Succeeded)),
        next_at_ms: Some(time::now_ms()),
        pause_reason: None,
        envelope: Some(event.envelope.clone().into()),
        trace: None,
        lane: Lane::Direct,
        epoch: 0,
        ordering_key: None,
    }
}

fn attempt(number: u32, succeeded: bool) -> hookd_core::Attempt {
    hookd_core::Attempt {
        number,
        started_at_ms: time::now_ms(),
        duration_ms: 1,
        succeeded,
        status_code: Some(if succeeded { 200 } else { 500 }),
        error_kind: (!succeeded).then_some(hookd_core::ErrorKind::Status),
        error: (!succeeded).then(|| "receiver answered 500".to_string()),
        response_excerpt: None,
        response_headers: Vec::new(),
        trigger: hookd_core::AttemptTrigger::Scheduled,
    }
}

/// (entry id, owner) of every entry pending in the group.
async fn pending_owners(store: &Store, ws: &str) -> Vec<(String, String)> {
    let p = store.keys().partition_of(ws);
    let v: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(&p.stream)
        .arg("hookd")
        .arg("-")
        .arg("+")
        .arg(100)
        .query_async(&mut store_conn(store).await)
        .await
        .unwrap();
    v.into_iter().map(|(id, owner, _, _)| (id, owner)).collect()
}

/// Another daemon takes an entry over, as its reclaim would: the
/// partition's reclaim count first (see `Store::reclaim`), then the claim.
async fn take_over(store: &Store, ws: &str, entry: &str) {
    let p = store.keys().partition_of(ws);
    let _: i64 = redis::cmd("INCR")
        .arg(p.reclaims())
        .query_async(&mut store_conn(store).await)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(&p.stream)
        .arg("hookd")
        .arg("other")
        .arg(0)
        .arg(entry)
        .arg("JUSTID")
        .query_async(&mut store_conn(store).await)
        .await
        .unwrap();
}

async fn log_len(store: &Store, ws: &str, ep: &str) -> u64 {
    let p = store.keys().partition_of(ws);
    redis::cmd("ZCARD")
        .arg(p.log(ep))
        .query_async(&mut store_conn(store).await)
        .await
        .unwrap()
}

#[tokio::test]
async fn only_the_consumer_owning_an_entry_settles_it() {
    let redis = Redis::start();
    let store = store(&redis).await;
    let ep = endpoint(&store, "ws").await;
    let p = store.keys().partition_of("ws");
    let events = read_events(&store, "ws", 2).await;
    // A slow daemon's first entry was taken over by another daemon meanwhile.
    take_over(&store, "ws", &events[0].0).await;
    let done: Vec<Settled> = events
        .iter()
        .map(|e| settled_delivery("ws", &ep.id, e, DeliveryStatus::Succeeded))
        .collect();
    let batch = SettleBatch {
        deliveries: done.iter().collect(),
        acks: events.iter().map(|(id, _)| id.as_str()).collect(),
    };
    let reply = store
        .settle(&p, "hookd", "me", &batch, Breaker::default())
        .await
        .unwrap();
    assert_eq!(reply.skipped, 1, "the entry taken over is not settled here");
    assert_eq!(log_len(&store, "ws", &ep.id).await, 1);
    assert_eq!(
        pending_owners(&store, "ws").await,
        [(events[0].0.clone(), "other".to_string())],
        "the entry taken over stays pending, its new owner's"
    );
    // Its new owner settles it; a second record for one delivery never appears.
    let batch = SettleBatch {
        deliveries: vec![&done[0]],
        acks: vec![events[0].0.as_str()],
    };
    let reply = store
        .settle(&p, "hookd", "other", &batch, Breaker::default())
        .await
        .unwrap();
    assert_eq!(reply.skipped, 0);
    assert_eq!(log_len(&store, "ws", &ep.id).await, 2);
    assert!(pending_owners(&store, "ws").await.is_empty());
    // The slow daemon settling again (a retry) writes nothing more.
    let batch = SettleBatch {
        deliveries: vec![&done[0]],
        acks: vec![events[0].0.as_str()],
    };
    let reply = store
        .settle(&p, "hookd", "me", &batch, Breaker::default())
        .await
        .unwrap();
    assert_eq!(reply.skipped, 1);
    assert_eq!(log_len(&store, "ws", &ep.id).await, 2);
}

#[tokio::test]
async fn a_touch_keeps_only_entries_still_owned() {
    let redis = Redis::start();
    let store = store(&redis).await;
    let p = store.keys().partition_of("ws");
    let events = read_events(&store, "ws", 2).await;
    take_over(&store, "ws", &events[0].0).await;
    let ids: Vec<&String> = events.iter().map(|(id, _)| id).collect();
    let (lost, count) = store.touch(&p, "hookd", "me", &ids, Some(0)).await.unwrap();
    assert_eq!(lost, [events[0].0.clone()]);
    assert_eq!(count, 1, "the takeover was counted");
    assert_eq!(
        pending_owners(&store, "ws").await,
        [
            (events[0].0.clone(), "other".to_string()),
            (events[1].0.clone(), "me".to_string())
        ],
        "the touch took nothing back from the daemon that took it over"
    );
}

#[tokio::test]
async fn an_attempt_whose_claim_was_taken_over_records_nothing() {
    use hookd_store::schedule::{Outcome, Record, Recorded};
    let redis = Redis::start();
    let store = store(&redis).await;
    let ep = endpoint(&store, "ws").await;
    let p = store.keys().partition_of("ws");
    assert_eq!(settle(&store, "ws", 1, DeliveryStatus::Pending).await, 1);
    let limits = limits();
    // A claim whose lease runs out while its request is slow...
    let slow = store
        .claim_due(&p, Duration::from_millis(1), 10, &limits, "slow", "hookd")
        .await
        .unwrap();
    assert_eq!(slow.len(), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // ... so another daemon claims the delivery again.
    let fresh = store
        .claim_due(&p, Duration::from_secs(30), 10, &limits, "fresh", "hookd")
        .await
        .unwrap();
    assert_eq!(fresh.len(), 1);
    let record = |c: &hookd_store::schedule::Claimed, succeeded: bool| Record {
        delivery_id: c.delivery_id.clone(),
        endpoint: ep.id.clone(),
        workspace: "ws".into(),
        lease: c.lease.clone(),
        job: None,
        ordering_key: None,
        delivery_created_ms: c.created_at_ms,
        attempt: attempt(1, succeeded),
        outcome: if succeeded {
            Outcome::Succeeded
        } else {
            Outcome::RetryAt(time::now_ms() + 60_000)
        },
        pause_reason: None,
    };
    let (results, _) = store
        .record_attempts(&p, &[record(&slow[0], false)], Breaker::default())
        .await
        .unwrap();
    assert_eq!(results, [Recorded::Superseded]);
    let d = store.delivery(&slow[0].delivery_id).await.unwrap();
    assert!(d.attempts.is_empty(), "the slow claim wrote: {d:?}");
    let (results, _) = store
        .record_attempts(&p, &[record(&fresh[0], true)], Breaker::default())
        .await
        .unwrap();
    assert_eq!(results, [Recorded::Stored]);
    let d = store.delivery(&fresh[0].delivery_id).await.unwrap();
    assert_eq!(d.attempts.len(), 1);
    assert_eq!(d.status, DeliveryStatus::Succeeded);
}

#[tokio::test]
async fn a_delivery_whose_key_holds_another_type_is_set_aside_and_the_rest_recorded() {
    let redis = Redis::start();
    let store = store(&redis).await;
    let good = endpoint(&store, "ws").await;
    let bad = endpoint(&store, "ws").await;
    let p = store.keys().partition_of("ws");
    let events = read_events(&store, "ws", 2).await;
    // Something else wrote a string where one endpoint's history log goes.
    let _: () = redis::cmd("SET")
        .arg(p.log(&bad.id))
        .arg("not a log")
        .query_async(&mut store_conn(&store).await)
        .await
        .unwrap();
    let done: Vec<Settled> = events
        .iter()
        .flat_map(|e| {
            [
                settled_delivery("ws", &good.id, e, DeliveryStatus::Retrying),
                settled_delivery("ws", &bad.id, e, DeliveryStatus::Retrying),
            ]
        })
        .collect();
    let batch = SettleBatch {
        deliveries: done.iter().collect(),
        acks: events.iter().map(|(id, _)| id.as_str()).collect(),
    };
    let reply = store
        .settle(&p, "hookd", "me", &batch, Breaker::default())
        .await
        .unwrap();
    assert_eq!(reply.set_aside, 2);
    for d in &done {
        let stored = store.delivery(&d.delivery_id()).await;
        assert_eq!(stored.is_ok(), d.endpoint == good.id, "{}", d.endpoint);
    }
    assert_eq!(log_len(&store, "ws", &good.id).await, 2);
    let dead: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg(store.keys().dead_letter(&p))
        .arg("-")
        .arg("+")
        .query_async(&mut store_conn(&store).await)
        .await
        .unwrap();
    assert_eq!(dead.len(), 2, "each delivery set aside is dead-lettered");
    assert!(format!("{dead:?}").contains("unrecordable"));
    assert!(
        pending_owners(&store, "ws").await.is_empty(),
        "not acknowledged"
    );
}

#[tokio::test]
async fn a_shared_key_of_the_wrong_type_fails_a_settle_with_nothing_written() {
    let redis = Redis::start();
    let store = store(&redis).await;
    let ep = endpoint(&store, "ws").await;
    let p = store.keys().partition_of("ws");
    let events = read_events(&store, "ws", 2).await;
    let _: () = redis::cmd("SET")
        .arg(store.keys().dead_letter(&p))
        .arg("not a stream")
        .query_async(&mut store_conn(&store).await)
        .await
        .unwrap();
    let done: Vec<Settled> = events
        .iter()
        .map(|e| settled_delivery("ws", &ep.id, e, DeliveryStatus::Retrying))
        .collect();
    let batch = SettleBatch {
        deliveries: done.iter().collect(),
        acks: events.iter().map(|(id, _)| id.as_str()).collect(),
    };
    let err = store
        .settle(&p, "hookd", "me", &batch, Breaker::default())
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    for d in &done {
        assert!(store.delivery(&d.delivery_id()).await.is_err(), "written");
    }
    assert_eq!(log_len(&store, "ws", &ep.id).await, 0);
    assert_eq!(pending_owners(&store, "ws").await.len(), 2, "acknowledged");
}

/// Makes `consumer` own pending entry `id` as if it had been idle for `idle_ms`.
async fn own_idle(
    store: &Store,
    ws: &str,
    consumer: &str,
    ids: &[String],
    idle_ms: u64,
    reads: u64,
) {
    let p = store.keys().partition_of(ws);
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(&p.stream)
        .arg("hookd")
        .arg(consumer)
        .arg(0)
        .arg(ids)
        .arg("IDLE")
        .arg(idle_ms)
        .arg("RETRYCOUNT")
        .arg(reads)
        .arg("JUSTID")
        .query_async(&mut store_conn(store).await)
        .await
        .unwrap();
}

#[tokio::test]
async fn reclaims_go_round_the_pending_list_past_entries_still_in_use() {
    let redis = Redis::start();
    let store = store(&redis).await;
    let p = store.keys().partition_of("ws");
    // 2,000 entries a live daemon works on (idle 0), then 5 a dead one left.
    let events = read_events(&store, "ws", 2005).await;
    let ids: Vec<String> = events.iter().map(|(id, _)| id.clone()).collect();
    own_idle(&store, "ws", "live", &ids[..2000], 0, 1).await;
    own_idle(&store, "ws", "dead", &ids[2000..], 120_000, 1).await;
    let limits = EventLimits::default();
    let mut cursor = "0-0".to_string();
    let mut found = Vec::new();
    for _ in 0..100 {
        let taken = store
            .reclaim(
                &p,
                "hookd",
                "me",
                Duration::from_secs(60),
                &cursor,
                5,
                &limits,
                10,
            )
            .await
            .unwrap();
        found.extend(taken.entries.into_iter().map(|e| e.id));
        cursor = taken.cursor.unwrap();
        if found.len() == 5 {
            break;
        }
    }
    assert_eq!(
        found,
        ids[2000..],
        "the dead daemon's entries were never reached"
    );
}

#[tokio::test]
async fn an_entry_read_too_many_times_is_dead_lettered_not_read_again() {
    let redis = Redis::start();
    let store = store(&redis).await;
    let p = store.keys().partition_of("ws");
    let events = read_events(&store, "ws", 2).await;
    let ids: Vec<String> = events.iter().map(|(id, _)| id.clone()).collect();
    own_idle(&store, "ws", "dead", &ids[..1], 120_000, 10).await;
    own_idle(&store, "ws", "dead", &ids[1..], 120_000, 2).await;
    let taken = reclaim_idle(&store, &p).await;
    // XAUTOCLAIM counts this read too: 11 reads for the first, 3 for the second.
    assert_eq!(taken.dead_lettered, ["redelivered_too_often"]);
    assert_eq!(
        taken
            .entries
            .iter()
            .map(|e| e.id.clone())
            .collect::<Vec<_>>(),
        ids[1..]
    );
    assert_eq!(
        pending_owners(&store, "ws").await,
        [(ids[1].clone(), "me".to_string())],
        "the dead-lettered entry is acknowledged"
    );
}

#[tokio::test]
async fn pending_entries_trimmed_away_are_reported() {
    let redis = Redis::start();
    let store = store(&redis).await;
    let p = store.keys().partition_of("ws");
    let events = read_events(&store, "ws", 3).await;
    let ids: Vec<String> = events.iter().map(|(id, _)| id.clone()).collect();
    own_idle(&store, "ws", "dead", &ids, 120_000, 1).await;
    let _: i64 = redis::cmd("XDEL")
        .arg(&p.stream)
        .arg(&ids[0])
        .query_async(&mut store_conn(&store).await)
        .await
        .unwrap();
    let taken = reclaim_idle(&store, &p).await;
    assert_eq!(taken.trimmed, ids[..1]);
    assert_eq!(taken.entries.len(), 2);
}

#[tokio::test]
async fn an_entry_with_a_field_name_that_is_not_utf8_is_dead_lettered_at_read() {
    let redis = Redis::start();
    let store = store(&redis).await;
    let p = store.keys().partition_of("ws");
    store.ensure_group(&p, "hookd").await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&p.stream)
        .arg("*")
        .arg("type")
        .arg("a.b")
        .arg("workspace")
        .arg("ws")
        .arg("data")
        .arg("{}")
        .arg(&b"n\xffame"[..])
        .arg("v")
        .query_async(&mut store_conn(&store).await)
        .await
        .unwrap();
    let taken = store
        .take_new(&p, "hookd", "me", 10, &EventLimits::default())
        .await
        .unwrap();
    assert!(taken.entries.is_empty(), "{:?}", taken.entries);
    assert_eq!(taken.dead_lettered, ["invalid_field_name"]);
    assert!(pending_owners(&store, "ws").await.is_empty());
}

#[tokio::test]
async fn racing_creates_never_pass_the_workspace_limit() {
    let redis = Redis::start();
    let store = Store::connect(StoreSettings {
        max_endpoints_per_workspace: 5,
        ..settings(&redis)
    })
    .await
    .unwrap();
    let creates = (0..50).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let ep = Endpoint::new(
                "ws".into(),
                "http://127.0.0.1:9/x".into(),
                SignatureScheme::Sha256,
                time::now_ms(),
            )
            .unwrap();
            store.create_endpoint(&ep).await.is_ok()
        })
    });
    let mut created = 0;
    for c in creates {
        created += usize::from(c.await.unwrap());
    }
    assert_eq!(created, 5);
    assert_eq!(store.endpoint_count("ws").await.unwrap(), 5);
}

#[tokio::test]
async fn first_attempt_slots_leave_a_quarter_to_retries_that_are_due() {
    use hookd_store::ingest::SlotRequest;
    let redis = Redis::start();
    let store = store(&redis).await;
    let mut ep = Endpoint::new(
        "ws".into(),
        "http://127.0.0.1:9/x".into(),
        SignatureScheme::Sha256,
        time::now_ms(),
    )
    .unwrap();
    ep.max_concurrency = Some(4);
    store.create_endpoint(&ep).await.unwrap();
    let p = store.keys().partition_of("ws");
    let ask = |held: u32, wanted: u32| SlotRequest {
        endpoint: ep.id.clone(),
        workspace: "ws".into(),
        cap: 4,
        workspace_cap: 128,
        held,
        wanted,
    };
    let lease = Duration::from_secs(30);
    // A lane's filler holds every slot while nothing else waits.
    let granted = store
        .hold_slots(&p, "filler", &[ask(0, 4)], lease)
        .await
        .unwrap();
    assert_eq!(granted, [4]);
    // A retry comes due: the next renewal gives a quarter back...
    assert_eq!(settle(&store, "ws", 1, DeliveryStatus::Pending).await, 1);
    let granted = store
        .hold_slots(&p, "filler", &[ask(4, 4)], lease)
        .await
        .unwrap();
    assert_eq!(granted, [3]);
    // ... and the retry is claimed in it.
    let claimed = store
        .claim_due(&p, lease, 10, &limits(), "t", "hookd")
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
}

#[tokio::test]
async fn a_reclaim_fences_the_old_owners_settle_even_on_its_fast_path() {
    let redis = Redis::start();
    let store = store(&redis).await;
    let ep = endpoint(&store, "ws").await;
    let p = store.keys().partition_of("ws");
    store.ensure_group(&p, "hookd").await.unwrap();
    let _ = read_events(&store, "ws", 0).await;
    let mut conn = store_conn(&store).await;
    for i in 0..2 {
        let id = format!("e{i}");
        let fields = [
            ("type", "card.created"),
            ("workspace", "ws"),
            ("data", "{}"),
            ("id", &id),
        ];
        xadd(&mut conn, &p.stream, "*", &fields).await;
    }
    // Read by "me" as a daemon reads (the reclaim count comes with them)...
    let limits = EventLimits::default();
    let mine = store
        .take_new(&p, "hookd", "me", 10, &limits)
        .await
        .unwrap();
    assert_eq!(mine.entries.len(), 2);
    // ... then "me" stalls, and another daemon takes them over.
    let theirs = store
        .reclaim(&p, "hookd", "other", Duration::ZERO, "0-0", 10, &limits, 10)
        .await
        .unwrap();
    assert_eq!(theirs.entries.len(), 2);
    let done: Vec<Settled> = mine
        .entries
        .iter()
        .map(|e| {
            let event = Event::from_entry(&e.id, &e.fields, limits).unwrap();
            let mut d = settled_delivery(
                "ws",
                &ep.id,
                &(e.id.clone(), event),
                DeliveryStatus::Succeeded,
            );
            d.epoch = mine.epoch;
            d
        })
        .collect();
    let batch = SettleBatch {
        deliveries: done.iter().collect(),
        acks: mine.entries.iter().map(|e| e.id.as_str()).collect(),
    };
    let reply = store
        .settle(&p, "hookd", "me", &batch, Breaker::default())
        .await
        .unwrap();
    assert_eq!(reply.skipped, 2, "the old owner settled entries taken over");
    assert_eq!(log_len(&store, "ws", &ep.id).await, 0);
    assert_eq!(pending_owners(&store, "ws").await.len(), 2);
}
