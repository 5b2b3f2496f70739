//! Store-level tests of the Lua scripts and the stream housekeeping, against
//! a real redis-server: what each step guarantees when called directly,
//! without a daemon in between.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod harness;

use std::time::Duration;

use harness::*;
use hookd_core::{DeliveryStatus, Endpoint, Event, EventLimits, SignatureScheme, time};
use hookd_store::ingest::{SettleBatch, Settled};
use hookd_store::log::LogRecord;
use hookd_store::schedule::{Breaker, ConcurrencyLimits};
use hookd_store::{Store, StoreSettings};

async fn store(redis: &Redis) -> Store {
    Store::connect(StoreSettings {
        url: redis.url(),
        ..StoreSettings::default()
    })
    .await
    .unwrap()
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

/// Accepts `n` events of `ws` as if read from the stream, and settles each
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
    let events: Vec<(String, Event)> = (0..n)
        .map(|i| {
            let fields = [
                ("type", "card.created".to_string()),
                ("workspace", ws.to_string()),
                ("data", "{}".to_string()),
                ("id", format!("e{i}")),
            ];
            let entry = format!("{now}-{i}");
            let event = Event::from_entry(&entry, &fields, EventLimits::default()).unwrap();
            (entry, event)
        })
        .collect();
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
                })
            })
            .collect();
        total += settled.len() as u64;
        let batch = SettleBatch {
            deliveries: settled,
            ..SettleBatch::default()
        };
        store
            .settle(&p, "hookd", &batch, Breaker::default(), now)
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
    let limits = ConcurrencyLimits::default();
    let lease = Duration::from_secs(30);
    let first = store.claim_due(&p, lease, 10, &limits).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].endpoint.id, ep.id);
    // The claim takes no time from the daemon (whose clock may run ahead):
    // Redis's clock sees the lease as live.
    let second = store.claim_due(&p, lease, 10, &limits).await.unwrap();
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
    let limits = ConcurrencyLimits::default();
    let mut calls = 0;
    loop {
        calls += 1;
        let claimed = store
            .claim_due(&p, Duration::from_secs(30), 100, &limits)
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
        let _: String = redis::cmd("XADD")
            .arg(&p.stream)
            .arg(format!("1000-{seq}"))
            .arg("type")
            .arg("x")
            .query_async(&mut conn)
            .await
            .unwrap();
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

#[tokio::test]
async fn the_lua_prelude_names_keys_as_the_rust_layout_does() {
    let redis = Redis::start();
    let keys = hookd_store::Keys::new("hookd:events", "hookd", 4);
    let p = keys.partition(2);
    let script = format!(
        "{}return {{ key_endpoint(ARGV[1], 'ep_1'), key_log(ARGV[1], 'ep_1'), \
         key_delivery(ARGV[1], 'd1'), key_attempts(ARGV[1], 'd1'), key_due(ARGV[1], 'ep_1'), \
         key_leases(ARGV[1], 'ep_1'), key_held(ARGV[1], 'ep_1'), key_job(ARGV[1], 'j1'), \
         key_ready(ARGV[1]), key_logs(ARGV[1]), key_config(ARGV[1]), \
         key_workspace_leases(ARGV[1], 'wsé'), key_types_seen(ARGV[1], 'wsé'), \
         key_workspace_endpoints(ARGV[1], 'wsé'), key_catalog(ARGV[1], 'wsé'), \
         key_endpoint_rate(ARGV[1], 'ep_1' .. ':' .. 17), STATUS_RETRYING }}",
        hookd_store::keys::lua_prelude()
    );
    let from_lua: Vec<String> = redis::cmd("EVAL")
        .arg(script)
        .arg(0)
        .arg(&p.tag)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let from_rust = vec![
        p.endpoint("ep_1"),
        p.log("ep_1"),
        p.delivery("d1"),
        p.attempts("d1"),
        p.due("ep_1"),
        p.leases("ep_1"),
        p.held("ep_1"),
        p.job("j1"),
        p.ready(),
        p.logs(),
        p.config(),
        p.workspace_leases("wsé"),
        p.types_seen("wsé"),
        p.workspace_endpoints("wsé"),
        p.catalog("wsé"),
        p.endpoint_rate("ep_1", 17),
        hookd_core::DeliveryStatus::Retrying.as_str().to_string(),
    ];
    assert_eq!(from_lua, from_rust);
}
