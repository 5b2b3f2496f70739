//! The chaos suite: three daemons on one Redis under a steady stream of
//! events, while daemons are killed with SIGKILL and restarted, Redis is
//! killed and restarted from its append-only file, and receivers fail, hang
//! past the timeout, answer 429 with Retry-After, redirect, and send huge
//! bodies. At the end every event has reached every endpoint at least once,
//! no delivery is stuck, the duplicates are counted and printed, and once the
//! history retention has passed Redis holds nothing of the run any more.
//!
//! `make test` runs it for 20 s; `make chaos` for CHAOS_SECONDS (300).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod harness;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use harness::*;

/// What a chaos receiver saw: event ids it answered 2xx, and how often.
#[derive(Default)]
struct Seen {
    accepted: HashMap<String, u32>,
    requests: u64,
}

/// A receiver that misbehaves on purpose, `fault_rate` of the time.
async fn chaos_receiver(fault_rate: f64) -> (u16, Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen: Arc<Mutex<Seen>> = Default::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let log = log.clone();
        async move {
            let id = headers
                .get("x-hookd-event-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            log.lock().unwrap().requests += 1;
            if fastrand::f64() < fault_rate {
                match fastrand::u8(0..6) {
                    0 => return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
                    1 => {
                        return (
                            StatusCode::TOO_MANY_REQUESTS,
                            [("retry-after", "1")],
                            "slow down",
                        )
                            .into_response();
                    }
                    2 => {
                        // Past hookd's request timeout (3 s in tests).
                        tokio::time::sleep(Duration::from_secs(4)).await;
                    }
                    3 => {
                        return (
                            StatusCode::FOUND,
                            [("location", "http://169.254.169.254/")],
                            "",
                        )
                            .into_response();
                    }
                    4 => {
                        // A huge body with an error status: hookd reads 4 KiB of it.
                        return (StatusCode::BAD_GATEWAY, vec![b'x'; 8 << 20]).into_response();
                    }
                    _ => {
                        // The connection closes in the middle of the response body.
                        let chunks: Vec<Result<&'static [u8], std::io::Error>> = vec![
                            Ok(b"partial"),
                            Err(std::io::Error::other("receiver hung up")),
                        ];
                        let body =
                            axum::body::Body::from_stream(futures_util::stream::iter(chunks));
                        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
                    }
                }
            }
            *log.lock().unwrap().accepted.entry(id).or_default() += 1;
            (StatusCode::OK, "ok").into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_every_event_reaches_every_endpoint() {
    let seconds: u64 = std::env::var("CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut redis = Redis::start_durable();
    let mut env = test_env(&redis);
    env.push(("HOOKD__RETRY__MAX_ATTEMPTS".into(), "40".into()));
    env.push(("HOOKD__DELIVERY__BREAKER_FAILURES".into(), "0".into()));
    // Short retention (longer than the run and its drain, so every delivery is
    // still there for the final check), so the test sees memory come back.
    let retention = Duration::from_secs(seconds + 40);
    for key in [
        "HOOKD__HISTORY__RETENTION",
        "HOOKD__INGEST__STREAM_RETENTION",
        // Retries may not outlive the history that holds them.
        "HOOKD__RETRY__MAX_AGE",
    ] {
        env.push((key.into(), format!("{}s", retention.as_secs())));
    }
    env.push(("HOOKD__INGEST__HOUSEKEEPING_INTERVAL".into(), "2s".into()));
    env.push(("HOOKD__INGEST__DEAD_LETTER_MAX_LEN".into(), "20".into()));
    let mut daemons: Vec<Daemon> = (0..3).map(|_| Daemon::start(&env)).collect();

    let mut receivers = Vec::new();
    for fault_rate in [0.0, 0.2, 0.4] {
        let (port, seen, task) = chaos_receiver(fault_rate).await;
        create_endpoint(&env, "ws_1", &format!("http://127.0.0.1:{port}/hook"), &[]);
        receivers.push((seen, task));
    }

    let ws1_endpoints: HashSet<String> =
        cli_json(&env, &["endpoints", "list", "--workspace", "ws_1"])["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();

    let baseline = used_memory(&redis).await;
    // Structures that must stay bounded too: a paused endpoint holding
    // deliveries all run (ws_2), a workspace whose only endpoint is deleted
    // after its deliveries (ws_3), a recovery job, and dead letters.
    let sink = Receiver::ok().await;
    let (paused, _) = create_endpoint(&env, "ws_2", &sink.url(), &[]);
    cli(&env, &["endpoints", "pause", &paused]);
    let (doomed, _) = create_endpoint(&env, "ws_3", &sink.url(), &[]);
    redis
        .xadd_events(
            "ws_3",
            "card.created",
            (0..5).map(|i| (format!("ws3-{i}"), "{}".into())),
        )
        .await;
    sink.wait_for(5, Duration::from_secs(20)).await;
    cli(&env, &["endpoints", "delete", &doomed]);
    let first = ws1_endpoints.iter().next().unwrap().clone();
    cli(
        &env,
        &[
            "recover",
            "--endpoint",
            &first,
            "--since",
            "1h",
            "--no-wait",
        ],
    );
    // A steady producer: about 25 events a second, reconnecting when Redis is down.
    let url = redis.url();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let producer = tokio::spawn(async move {
        let mut published = 0u64;
        let client = redis::Client::open(url).unwrap();
        while Instant::now() < deadline {
            let id = format!("chaos-{published}");
            let sent: redis::RedisResult<String> = async {
                let mut conn = client.get_multiplexed_async_connection().await?;
                redis::cmd("XADD")
                    .arg("hookd:events")
                    .arg("*")
                    .arg("type")
                    .arg("card.created")
                    .arg("workspace")
                    .arg("ws_1")
                    .arg("id")
                    .arg(&id)
                    .arg("data")
                    .arg("{}")
                    .query_async(&mut conn)
                    .await
            }
            .await;
            if sent.is_ok() {
                published += 1;
                if published.is_multiple_of(5) {
                    // Held by the paused endpoint, and a dead letter.
                    let _: redis::RedisResult<()> = async {
                        let mut conn = client.get_multiplexed_async_connection().await?;
                        redis::pipe()
                            .cmd("XADD")
                            .arg("hookd:events")
                            .arg("*")
                            .arg("type")
                            .arg("card.created")
                            .arg("workspace")
                            .arg("ws_2")
                            .arg("data")
                            .arg("{}")
                            .ignore()
                            .cmd("XADD")
                            .arg("hookd:events")
                            .arg("*")
                            .arg("type")
                            .arg("card.created")
                            .arg("workspace")
                            .arg("ws_1")
                            .ignore()
                            .query_async(&mut conn)
                            .await
                    }
                    .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        published
    });

    // The faults: every 2-4 s, kill and restart a daemon, or Redis.
    let (mut daemon_kills, mut redis_restarts) = (0, 0);
    while Instant::now() + Duration::from_secs(2) < deadline {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(2000..4000))).await;
        if fastrand::u8(0..4) == 0 {
            redis.kill();
            tokio::time::sleep(Duration::from_millis(500)).await;
            redis.start_again();
            redis_restarts += 1;
        } else {
            let i = fastrand::usize(0..daemons.len());
            daemons[i].kill9();
            daemons[i] = Daemon::start(&env);
            daemon_kills += 1;
        }
    }
    let published = producer.await.unwrap();
    assert!(
        published > seconds * 10,
        "the producer published only {published} events"
    );

    // Everything arrives, at every endpoint, at least once.
    let ids: HashSet<String> = (0..published).map(|i| format!("chaos-{i}")).collect();
    eventually(
        Duration::from_secs(120),
        "every event at every endpoint",
        || async {
            receivers
                .iter()
                .all(|(seen, _)| {
                    let seen = seen.lock().unwrap();
                    ids.iter().all(|id| seen.accepted.contains_key(id))
                })
                .then_some(())
        },
    )
    .await;
    // No delivery stuck: every one ends succeeded.
    let settled = eventually(
        Duration::from_secs(60),
        "every delivery succeeded",
        || async {
            // Every delivery has a member in its endpoint's history log; one
            // that outlived its first attempt has durable state, which is newer.
            let mut conn = redis.conn().await;
            let mut ids = HashSet::new();
            let mut fast_succeeded = HashSet::new();
            for ep in &ws1_endpoints {
                let members: Vec<String> = redis::cmd("ZRANGE")
                    .arg(format!("{{hookd:events}}:ep:{ep}:log"))
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                for m in members {
                    let r = hookd_store::log::LogRecord::decode(&m).unwrap();
                    let id = hookd_core::delivery::delivery_id(&r.entry_id, ep);
                    if r.status.as_str() == "succeeded" {
                        fast_succeeded.insert(id.clone());
                    }
                    ids.insert(id);
                }
            }
            let ids: Vec<String> = ids.into_iter().collect();
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.hget(format!("{{hookd:events}}:dlv:{id}"), "status");
            }
            let statuses: Vec<Option<String>> = pipe.query_async(&mut conn).await.unwrap();
            let ws1: Vec<_> = ids.iter().zip(&statuses).collect();
            let done = ws1
                .iter()
                .filter(|(id, s)| match s {
                    Some(s) => s == "succeeded",
                    None => fast_succeeded.contains(*id),
                })
                .count();
            (done == ws1.len()).then_some(done)
        },
    )
    .await;
    assert_eq!(
        settled as u64,
        published * 3,
        "one delivery per event and endpoint"
    );

    let mut duplicates = 0u64;
    let mut requests = 0u64;
    for (seen, task) in &receivers {
        let seen = seen.lock().unwrap();
        duplicates += seen
            .accepted
            .values()
            .map(|n| u64::from(n - 1))
            .sum::<u64>();
        requests += seen.requests;
        task.abort();
    }
    println!(
        "chaos: {seconds}s, {published} events x 3 endpoints, {daemon_kills} daemon kills, \
         {redis_restarts} Redis restarts, {requests} requests, lost 0, duplicates {duplicates}"
    );

    // Once the retention has passed for the last event, what the run stored is gone again.
    let peak = used_memory(&redis).await;
    tokio::time::sleep((deadline + retention).saturating_duration_since(Instant::now())).await;
    let after = eventually(
        Duration::from_secs(60),
        "memory back after retention",
        || async {
            let mut conn = redis.conn().await;
            let left: Vec<String> = redis::cmd("KEYS")
                .arg("{hookd:events}:*")
                .query_async(&mut conn)
                .await
                .unwrap();
            let per_event = left
                .iter()
                .filter(|k| {
                    k.contains(":dlv:")
                        || k.contains(":evt:")
                        || k.contains(":env:")
                        || k.ends_with(":log")
                })
                .count();
            let (history, stream, held, jobs, dead, ws3): (u64, u64, u64, u64, u64, u64) =
                redis::pipe()
                    .hlen("{hookd:events}:logs")
                    .xlen("hookd:events")
                    .scard(format!("{{hookd:events}}:held:{paused}"))
                    .hlen("hookd:jobs")
                    .xlen("hookd:events:dead")
                    .exists(format!("{{hookd:events}}:ep:{doomed}:log"))
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            assert!(dead <= 20, "the dead-letter stream is capped: {dead}");
            let now = used_memory(&redis).await;
            (per_event == 0
                && history == 0
                && stream <= 200
                && held == 0
                && jobs == 0
                && ws3 == 0
                && now <= baseline + (2 << 20))
                .then_some(now)
        },
    )
    .await;
    println!(
        "chaos: Redis used_memory {} KiB before, {} KiB at the end of the run, {} KiB after retention",
        baseline >> 10,
        peak >> 10,
        after >> 10
    );
}

async fn used_memory(redis: &Redis) -> u64 {
    redis
        .info("memory")
        .await
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}
