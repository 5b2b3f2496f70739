//! The core pipeline, end to end: stream in, signed HTTP deliveries out,
//! retries, history, pause, crashes and Redis restarts.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use hookd_signature::Verifier;

mod harness;
use harness::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// Every delivery the CLI lists for `args`, page after page (500 at most each).
fn delivery_list(env: &[(String, String)], args: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut all = vec!["deliveries", "list", "--limit", "500"];
        all.extend(args);
        if let Some(cursor) = &next {
            all.extend(["--before", cursor.as_str()]);
        }
        let page = cli_json(env, &all);
        out.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_string()),
            None => return out,
        }
    }
}

fn verify(secret: &str, r: &Received, prefix: &str) {
    Verifier::new(secret)
        .header_prefix(prefix)
        .verify(&r.headers, &r.body)
        .unwrap_or_else(|e| panic!("signature does not verify: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn event_reaches_its_subscriber_signed_and_others_get_nothing() {
    let redis = Redis::start();
    let env = test_env(&redis);
    let wanted = Receiver::ok().await;
    let other = Receiver::ok().await;
    let (_, secret) = create_endpoint(&env, "ws_1", &wanted.url(), &["card.created"]);
    create_endpoint(&env, "ws_1", &other.url(), &["card.deleted"]);
    let elsewhere = Receiver::ok().await;
    create_endpoint(&env, "ws_2", &elsewhere.url(), &[]);
    let mut daemon = Daemon::start(&env);

    redis
        .xadd(&[
            ("type", "card.created"),
            ("workspace", "ws_1"),
            ("data", r#"{"title":"x"}"#),
            ("id", "evt_42"),
            ("boardId", "b_7"),
        ])
        .await;

    let got = wanted.wait_for(1, WAIT).await;
    let r = &got[0];
    verify(&secret, r, "X-Hookd");
    assert_eq!(r.header("X-Hookd-Event-Id"), Some("evt_42"));
    assert_eq!(r.header("X-Hookd-Attempt"), Some("1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        r.header("user-agent")
            .is_some_and(|ua| ua.starts_with("hookd/"))
    );
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["id"], "evt_42");
    assert_eq!(body["type"], "card.created");
    assert_eq!(body["workspaceId"], "ws_1");
    assert_eq!(body["data"]["title"], "x");
    assert_eq!(body["boardId"], "b_7");
    assert!(body["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    let delivery_id = r.header("X-Hookd-Delivery-Id").unwrap().to_string();

    // The history says succeeded, and no delivery was made for the other endpoints.
    let shown = eventually(WAIT, "delivery recorded as succeeded", || async {
        let d = cli_json(&env, &["deliveries", "show", &delivery_id]);
        (d["status"] == "succeeded").then_some(d)
    })
    .await;
    assert_eq!(shown["attempts"][0]["status_code"], 200);
    assert_eq!(delivery_list(&env, &[]).len(), 1);
    assert_eq!(other.count() + elsewhere.count(), 0);

    assert!(daemon.terminate(), "hookd exits 0 on SIGTERM");
}

#[tokio::test(flavor = "multi_thread")]
async fn fan_out_signs_each_endpoint_with_its_own_secret_and_custom_prefix() {
    let redis = Redis::start();
    let mut env = test_env(&redis);
    env.push(("HOOKD__SIGNING__HEADER_PREFIX".into(), "X-Kanera".into()));
    let receivers = [
        Receiver::ok().await,
        Receiver::ok().await,
        Receiver::ok().await,
    ];
    let secrets: Vec<String> = receivers
        .iter()
        .map(|r| create_endpoint(&env, "ws", &r.url(), &[]).1)
        .collect();
    let _daemon = Daemon::start(&env);
    cli(
        &env,
        &[
            "publish",
            "--workspace",
            "ws",
            "--type",
            "board.renamed",
            "--data",
            r#"{"name":"b"}"#,
        ],
    );

    let mut bodies = HashSet::new();
    let mut signatures = HashSet::new();
    for (receiver, secret) in receivers.iter().zip(&secrets) {
        let got = receiver.wait_for(1, WAIT).await;
        verify(secret, &got[0], "X-Kanera");
        assert!(got[0].header("X-Hookd-Signature").is_none());
        bodies.insert(got[0].body.clone());
        signatures.insert(got[0].header("X-Kanera-Signature").unwrap().to_string());
    }
    assert_eq!(bodies.len(), 1, "every endpoint gets identical bytes");
    assert_eq!(signatures.len(), 3, "each endpoint has its own signature");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_attempts_are_retried_and_recorded() {
    let Setup(redis, env, receiver, endpoint, ..) =
        Setup::new(Receiver::sequence(&[500, 500, 200]).await).await;
    let _daemon = Daemon::start(&env);
    redis.publish("{}", Some("evt_r")).await;

    let got = receiver.wait_for(3, WAIT).await;
    assert_eq!(got.len(), 3);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.header("X-Hookd-Event-Id"), Some("evt_r"));
        assert_eq!(
            r.header("X-Hookd-Attempt"),
            Some((i + 1).to_string().as_str())
        );
    }
    let id = got[0].header("X-Hookd-Delivery-Id").unwrap().to_string();
    let d = eventually(WAIT, "three attempts in history", || async {
        let d = cli_json(&env, &["deliveries", "show", &id]);
        (d["status"] == "succeeded").then_some(d)
    })
    .await;
    let codes: Vec<i64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 500, 200]);
    assert_eq!(d["attempts"][0]["error_kind"], "status");
    assert_eq!(d["attempts"][0]["response_excerpt"], "received");
    // The CLI lists it under its endpoint and status.
    let listed = delivery_list(&env, &["--endpoint", &endpoint, "--status", "succeeded"]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"].as_str(), Some(id.as_str()));
    // And shows a human-readable history.
    let text = cli(&env, &["deliveries", "show", &id]);
    assert!(
        text.contains("status 500") && text.contains("ok 200"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_is_down_gives_connect_failures_and_a_scheduled_retry() {
    let redis = Redis::start();
    let mut env = test_env(&redis);
    env.push(("HOOKD__LOG__FORMAT".into(), "json".into()));
    env.push(("HOOKD__LOG__LEVEL".into(), "info".into()));
    let closed = format!("http://127.0.0.1:{}/hook", free_port());
    let (endpoint, _) = create_endpoint(&env, "ws", &closed, &[]);
    let log = std::env::temp_dir().join(format!("hookd-connect-{}.log", free_port()));
    let _daemon = Daemon::ready_logging_to(&env, &log).await;
    redis.publish("1", None).await;

    let d = eventually(WAIT, "a recorded connect failure", || async {
        let list = delivery_list(&env, &["--endpoint", &endpoint]);
        let id = list.first()?["id"].as_str()?.to_string();
        let d = cli_json(&env, &["deliveries", "show", &id]);
        (!d["attempts"].as_array()?.is_empty() && d["status"] == "retrying").then_some(d)
    })
    .await;
    assert_eq!(d["attempts"][0]["error_kind"], "connect");
    assert!(d["attempts"][0]["status_code"].is_null());
    // RFC 3339 in UTC with milliseconds: the strings order as the times do.
    assert!(
        d["next_attempt_at"].as_str().unwrap() > d["attempts"][0]["started_at"].as_str().unwrap()
    );
    // Its log line names the kind and leaves out what there is not: no
    // `status` (nothing answered), no trace ids (tracing is off).
    let text = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|l: &serde_json::Value| l["fields"]["message"] == "attempt failed; retry scheduled")
        .expect("the failure's log line");
    let f = &line["fields"];
    assert_eq!(f["error_kind"], "connect", "{line}");
    for absent in ["status", "trace_id", "span_id"] {
        assert!(f.get(absent).is_none(), "{absent} in {line}");
    }
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_on_429_delays_the_next_attempt() {
    let Setup(redis, env, receiver, ..) = Setup::new(
        Receiver::with_plan(Arc::new(|n| {
            if n == 0 {
                (429, vec![("Retry-After".into(), "2".into())])
            } else {
                (200, vec![])
            }
        }))
        .await,
    )
    .await;
    let _daemon = Daemon::start(&env);
    redis.publish("1", None).await;
    let got = receiver.wait_for(2, WAIT).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_secs(2),
        "second attempt came after {gap:?}, before Retry-After: 2"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_entries_are_dead_lettered_and_do_not_block_the_stream() {
    let redis = Redis::start();
    let mut env = test_env(&redis);
    env.push(("HOOKD__INGEST__MAX_PAYLOAD_BYTES".into(), "1024".into()));
    let receiver = Receiver::ok().await;
    create_endpoint(&env, "ws", &receiver.url(), &[]);
    let _daemon = Daemon::start(&env);
    let big = format!("\"{}\"", "x".repeat(2000));
    redis.xadd(&[("workspace", "ws"), ("data", "1")]).await;
    redis.publish("{not json", None).await;
    redis.publish(&big, None).await;
    redis.publish("1", Some("evt_good")).await;

    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("X-Hookd-Event-Id"), Some("evt_good"));
    let conn = redis.conn().await;
    let dead: Vec<(String, HashMap<String, String>)> =
        eventually(WAIT, "three dead letters", || {
            let mut conn = conn.clone();
            async move {
                let v: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                    .arg("hookd:events:dead")
                    .arg("-")
                    .arg("+")
                    .query_async(&mut conn)
                    .await
                    .ok()?;
                (v.ids.len() == 3).then(|| {
                    v.ids
                        .into_iter()
                        .map(|e| {
                            let fields = e.map.iter().map(|(k, v)| (k.clone(), text(v))).collect();
                            (e.id, fields)
                        })
                        .collect()
                })
            }
        })
        .await;
    let reasons: Vec<&str> = dead.iter().map(|(_, f)| f["reason"].as_str()).collect();
    assert_eq!(reasons, ["missing_field", "invalid_json", "too_large"]);
    assert!(dead[0].1["message"].contains("type"));
    assert_eq!(dead[1].1["field.data"], "{not json");
    // Every entry, bad ones included, is acknowledged (the good one once its
    // attempt is recorded, a moment after the receiver got it).
    eventually(WAIT, "nothing pending", || async {
        (pending(&redis).await == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_endpoint_holds_deliveries_until_resumed() {
    let Setup(redis, env, receiver, endpoint, ..) = Setup::new(Receiver::ok().await).await;
    let paused = cli_json(
        &env,
        &["endpoints", "pause", &endpoint, "--reason", "maintenance"],
    );
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["paused_reason"], "maintenance");
    let _daemon = Daemon::start(&env);
    for i in 0..5 {
        redis
            .xadd(&[
                ("type", "a.b"),
                ("workspace", "ws"),
                ("data", &i.to_string()),
            ])
            .await;
    }
    eventually(WAIT, "five held deliveries", || async {
        (delivery_list(&env, &["--status", "held"]).len() == 5).then_some(())
    })
    .await;
    assert_eq!(receiver.count(), 0, "nothing is attempted while paused");
    assert!(
        delivery_list(&env, &["--status", "failed"]).is_empty(),
        "held is not failed"
    );

    let resumed = cli_json(&env, &["endpoints", "resume", &endpoint]);
    assert_eq!(resumed["released"], 5);
    assert_eq!(resumed["endpoint"]["paused"], false);
    let got = receiver.wait_for(5, WAIT).await;
    let ids: HashSet<_> = got
        .iter()
        .map(|r| r.header("X-Hookd-Event-Id").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 5);
}

async fn publish_many(redis: &Redis, n: usize) {
    let events = (0..n).map(|i| (format!("evt_{i}"), format!("{{\"n\":{i}}}")));
    redis.xadd_events("ws", "load.test", events).await;
}

fn distinct_events(r: &Receiver) -> HashSet<String> {
    r.received()
        .iter()
        .filter_map(|r| r.header("X-Hookd-Event-Id").map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_killed_mid_stream_loses_no_event() {
    let Setup(redis, env, receiver, ..) = Setup::new(Receiver::ok().await).await;
    let mut first = Daemon::start(&env);
    publish_many(&redis, 2000).await;
    receiver.wait_for(200, WAIT).await;
    first.kill9();
    let before_restart = distinct_events(&receiver).len();
    let _second = Daemon::start(&env);
    eventually(
        Duration::from_secs(90),
        "all 2000 events delivered after SIGKILL and restart",
        || async { (distinct_events(&receiver).len() == 2000).then_some(()) },
    )
    .await;
    eprintln!(
        "kill -9 test: {before_restart} distinct events before the kill, {} requests in all for 2000 events",
        receiver.count()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_restarted_empty_does_not_wedge_the_daemon() {
    let Setup(mut redis, env, receiver, ..) = Setup::new(Receiver::ok().await).await;
    let _daemon = Daemon::start(&env);
    redis.publish("1", Some("before")).await;
    receiver.wait_for(1, WAIT).await;

    redis.restart_empty();
    // Everything is gone, endpoints too: register again, then publish.
    create_endpoint(&env, "ws", &receiver.url(), &[]);
    eventually(WAIT, "the event after the restart delivered", || async {
        // Keep publishing until the daemon has recreated its group and reads again.
        redis.publish("2", Some("after")).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        distinct_events(&receiver).contains("after").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_share_the_stream_without_duplicates() {
    let Setup(redis, env, receiver, ..) = Setup::new(Receiver::ok().await).await;
    let _a = Daemon::start(&env);
    let _b = Daemon::start(&env);
    publish_many(&redis, 1000).await;
    eventually(Duration::from_secs(60), "1000 events delivered", || async {
        (distinct_events(&receiver).len() == 1000).then_some(())
    })
    .await;
    // Let any stray second attempt arrive before counting: wait until every delivery is recorded.
    eventually(WAIT, "every delivery recorded as succeeded", || async {
        (delivery_list(&env, &["--status", "succeeded"]).len() == 1000).then_some(())
    })
    .await;
    assert_eq!(receiver.count(), 1000, "no event delivered twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_event_id_is_delivered_once() {
    let Setup(redis, env, receiver, ..) = Setup::new(Receiver::ok().await).await;
    let _daemon = Daemon::start(&env);
    for _ in 0..3 {
        redis.publish("1", Some("evt_once")).await;
    }
    redis
        .xadd(&[
            ("type", "a.b"),
            ("workspace", "other"),
            ("data", "1"),
            ("id", "evt_once"),
        ])
        .await;
    redis.publish("1", Some("evt_next")).await;
    // Entries are persisted in stream order: once evt_next is in, the repeats were seen.
    receiver.wait_for(2, WAIT).await;
    let deliveries = delivery_list(&env, &[]);
    assert_eq!(
        deliveries.len(),
        2,
        "one delivery per distinct (workspace, id): {deliveries:?}"
    );
    assert_eq!(pending(&redis).await, 0);
    let events: HashSet<String> = receiver
        .received()
        .iter()
        .map(|r| r.header("X-Hookd-Event-Id").unwrap().to_string())
        .collect();
    assert_eq!(
        events,
        HashSet::from(["evt_once".to_string(), "evt_next".to_string()])
    );
    assert_eq!(receiver.count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_left_pending_by_a_dead_consumer_are_reclaimed() {
    let Setup(redis, env, receiver, ..) = Setup::new(Receiver::ok().await).await;
    // A consumer reads an entry and dies before acknowledging it.
    let mut conn = redis.conn().await;
    redis.create_group().await;
    redis.publish("1", Some("evt_orphan")).await;
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("hookd")
        .arg("ghost")
        .arg("STREAMS")
        .arg("hookd:events")
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pending(&redis).await, 1);

    let _daemon = Daemon::start(&env);
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("X-Hookd-Event-Id"), Some("evt_orphan"));
    eventually(WAIT, "the reclaimed entry acknowledged", || async {
        (pending(&redis).await == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_fails_after_its_last_attempt() {
    let redis = Redis::start();
    let mut env = test_env(&redis);
    env.push(("HOOKD__RETRY__MAX_ATTEMPTS".into(), "3".into()));
    let receiver = Receiver::with_plan(Arc::new(|_| (500, vec![]))).await;
    let (endpoint, _) = create_endpoint(&env, "ws", &receiver.url(), &[]);
    let _daemon = Daemon::start(&env);
    redis.publish("1", None).await;
    let failed = eventually(WAIT, "the delivery marked failed", || async {
        let list = delivery_list(&env, &["--endpoint", &endpoint, "--status", "failed"]);
        list.first().cloned()
    })
    .await;
    let d = cli_json(
        &env,
        &["deliveries", "show", failed["id"].as_str().unwrap()],
    );
    assert_eq!(d["attempts"].as_array().unwrap().len(), 3);
    assert!(
        d.get("next_attempt_at_ms").is_none(),
        "no attempt is scheduled after the last: {d}"
    );
    assert_eq!(receiver.count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_never_has_more_than_its_max_concurrency_in_flight() {
    let redis = Redis::start();
    let env = test_env(&redis);
    let receiver = Receiver::slow(Duration::from_millis(100)).await;
    let v = create_endpoint_with(&env, "ws", &receiver.url(), &["--max-concurrency", "2"]);
    assert_eq!(v["max_concurrency"], 2);
    // Two daemons: the limit holds across them.
    let _a = Daemon::start(&env);
    let _b = Daemon::start(&env);
    publish_many(&redis, 20).await;
    receiver.wait_for(20, WAIT).await;
    assert!(
        receiver.max_in_flight() <= 2,
        "{} in flight at once",
        receiver.max_in_flight()
    );
    assert_eq!(
        receiver.max_in_flight(),
        2,
        "the limit is used, not undershot"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_endpoint_does_not_hold_up_a_fast_one() {
    let redis = Redis::start();
    let mut env = test_env(&redis);
    // A small pool makes starvation certain if fairness fails.
    env.push(("HOOKD__DELIVERY__CONCURRENCY".into(), "8".into()));
    env.push(("HOOKD__DELIVERY__ENDPOINT_CONCURRENCY".into(), "4".into()));
    let slow = Receiver::slow(Duration::from_secs(2)).await;
    let fast = Receiver::ok().await;
    create_endpoint(&env, "ws", &slow.url(), &[]);
    create_endpoint(&env, "ws", &fast.url(), &[]);
    let _daemon = Daemon::start(&env);
    publish_many(&redis, 200).await;
    fast.wait_for(200, WAIT).await;
    // The slow endpoint has had at most 4 in flight at a time the whole while.
    assert!(slow.count() < 200, "the slow endpoint was not served first");
    assert!(slow.max_in_flight() <= 4);
}

async fn consumer_names(redis: &Redis) -> Vec<String> {
    let mut conn = redis.conn().await;
    let reply: redis::RedisResult<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg("hookd:events")
        .arg("hookd")
        .query_async(&mut conn)
        .await;
    let Ok(redis::Value::Array(consumers)) = reply else {
        return Vec::new();
    };
    consumers
        .iter()
        .filter_map(|c| match c {
            redis::Value::Array(kv) => kv
                .chunks_exact(2)
                .find(|p| text(&p[0]) == "name")
                .map(|p| text(&p[1])),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn consumers_of_stopped_daemons_are_forgotten() {
    let redis = Redis::start();
    let mut env = test_env(&redis);
    env.push((
        "HOOKD__INGEST__HOUSEKEEPING_INTERVAL".into(),
        "500ms".into(),
    ));
    let mut first = Daemon::start(&env);
    // Redis registers a consumer when it first reads an entry.
    redis.publish("1", None).await;
    let gone = eventually(WAIT, "the first daemon's consumer", || async {
        let names = consumer_names(&redis).await;
        (names.len() == 1).then(|| names[0].clone())
    })
    .await;
    first.kill9();
    let _second = Daemon::start(&env);
    redis.publish("2", None).await;
    eventually(
        WAIT,
        "the second daemon's consumer beside the first",
        || async {
            let names = consumer_names(&redis).await;
            (names.len() == 2 && names.contains(&gone)).then_some(())
        },
    )
    .await;
    // Idle past 2 x reclaim_idle (2 s in tests) with nothing pending: removed.
    let left = eventually(WAIT, "only the running daemon's consumer", || async {
        let names = consumer_names(&redis).await;
        (names.len() == 1).then_some(names)
    })
    .await;
    assert_ne!(left[0], gone);
}

/// Publishes `n` events `<prefix><i>` of workspace ws_1.
async fn publish_batch(redis: &Redis, prefix: &str, n: usize) {
    let events = (0..n).map(|i| (format!("{prefix}{i}"), "{}".to_string()));
    redis.xadd_events("ws_1", "card.created", events).await;
}

async fn readyz(admin: &str) -> Option<u16> {
    let r = reqwest::get(format!("{admin}/readyz")).await.ok()?;
    Some(r.status().as_u16())
}

#[tokio::test]
async fn redis_down_for_30s_under_load_then_back_loses_nothing() {
    let mut redis = Redis::start_durable();
    let env = test_env(&redis);
    let daemon = Daemon::ready(&env).await;
    // A slow receiver keeps attempts in flight when Redis goes away.
    let receiver = Receiver::slow(Duration::from_millis(20)).await;
    create_endpoint(&env, "ws_1", &receiver.url(), &[]);
    publish_batch(&redis, "before-", 500).await;
    receiver.wait_for(20, Duration::from_secs(20)).await;

    // Redis dies (SIGKILL) in the middle of it, for 30 s.
    redis.kill();
    let down = std::time::Instant::now();
    eventually(
        Duration::from_secs(25),
        "/readyz reports not ready",
        || async { (readyz(&daemon.admin).await == Some(503)).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down.elapsed())).await;
    assert_eq!(
        readyz(&daemon.admin).await,
        Some(503),
        "still alive, still not ready"
    );

    // Back with its append-only file: the daemon resumes by itself.
    redis.start_again();
    eventually(Duration::from_secs(30), "/readyz ready again", || async {
        (readyz(&daemon.admin).await == Some(200)).then_some(())
    })
    .await;
    publish_batch(&redis, "after-", 100).await;
    let ids = eventually(Duration::from_secs(60), "every event delivered", || async {
        let ids: HashSet<String> = receiver
            .received()
            .iter()
            .filter_map(|r| r.header("X-Hookd-Event-Id").map(str::to_string))
            .collect();
        (ids.len() >= 600).then_some(ids)
    })
    .await;
    for i in 0..500 {
        assert!(ids.contains(&format!("before-{i}")), "before-{i} lost");
    }
    for i in 0..100 {
        assert!(ids.contains(&format!("after-{i}")), "after-{i} lost");
    }
}

#[tokio::test]
async fn a_history_retention_shorter_than_the_retry_window_is_refused_at_start() {
    let redis = Redis::start();
    let mut env = test_env(&redis);
    env.push(("HOOKD__HISTORY__RETENTION".into(), "1h".into()));
    env.push(("HOOKD__RETRY__MAX_AGE".into(), "2h".into()));
    let out = hookd_command(&env).arg("serve").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[history] retention") && err.contains("max_age"),
        "{err}"
    );
}

/// Deleting a paused endpoint never resumes it: what it held ends failed
/// (`endpoint_deleted`) without an attempt, even with daemons running that
/// would send anything released.
#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_paused_endpoint_sends_nothing_it_held() {
    let Setup(redis, env, receiver, endpoint, ..) = Setup::new(Receiver::ok().await).await;
    cli_json(
        &env,
        &["endpoints", "pause", &endpoint, "--reason", "gone soon"],
    );
    let _first = Daemon::ready(&env).await;
    let _second = Daemon::ready(&env).await;
    publish_many(&redis, 5000).await;
    let held_key = format!("{{hookd:events}}:held:{endpoint}");
    let scard = |key: String| {
        let redis = &redis;
        async move {
            let n: u64 = redis::cmd("SCARD")
                .arg(key)
                .query_async(&mut redis.conn().await)
                .await
                .expect("SCARD");
            n
        }
    };
    eventually(WAIT, "5,000 held deliveries", || async {
        (scard(held_key.clone()).await == 5000).then_some(())
    })
    .await;
    cli_json(&env, &["endpoints", "delete", &endpoint]);
    assert_eq!(scard(held_key.clone()).await, 0, "nothing is held any more");
    // Give the daemons time to send anything that had been released.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        receiver.count(),
        0,
        "deliveries held for a deleted endpoint were sent to it"
    );
    let mut conn = redis.conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("{hookd:events}:dlv:*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    let states: Vec<String> = keys
        .iter()
        .filter(|k| !k.ends_with(":attempts"))
        .cloned()
        .collect();
    assert_eq!(states.len(), 5000);
    for key in states.iter().step_by(97) {
        let (status, reason): (String, String) = redis::cmd("HMGET")
            .arg(key)
            .arg("status")
            .arg("reason")
            .query_async(&mut conn)
            .await
            .expect("HMGET");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("failed", "endpoint_deleted"),
            "{key}"
        );
    }
}

/// One delivery that cannot be recorded (another program wrote a string
/// where its endpoint's history log goes) never stalls the partition: it is
/// set aside to the dead-letter stream, and everything else is recorded and
/// acknowledged.
#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_that_cannot_be_recorded_does_not_stall_the_stream() {
    let redis = Redis::start();
    let env = test_env(&redis);
    let receiver = Receiver::ok().await;
    let other = Receiver::ok().await;
    let (good, _) = create_endpoint(&env, "ws", &receiver.url(), &[]);
    let (bad, _) = create_endpoint(&env, "ws", &other.url(), &[]);
    let _: () = redis::cmd("SET")
        .arg(format!("{{hookd:events}}:ep:{bad}:log"))
        .arg("not a log")
        .query_async(&mut redis.conn().await)
        .await
        .expect("SET");
    let _daemon = Daemon::ready(&env).await;
    publish_many(&redis, 200).await;
    receiver.wait_for(200, WAIT).await;
    eventually(WAIT, "every entry acknowledged", || async {
        (pending(&redis).await == 0).then_some(())
    })
    .await;
    let dead: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg("hookd:events:dead")
        .arg("-")
        .arg("+")
        .query_async(&mut redis.conn().await)
        .await
        .expect("XRANGE");
    assert_eq!(
        dead.len(),
        200,
        "each unrecordable delivery is dead-lettered"
    );
    assert!(format!("{dead:?}").contains("unrecordable"));
    let recorded: u64 = redis::cmd("ZCARD")
        .arg(format!("{{hookd:events}}:ep:{good}:log"))
        .query_async(&mut redis.conn().await)
        .await
        .expect("ZCARD");
    assert_eq!(
        recorded, 200,
        "the other endpoint's deliveries are all recorded"
    );
}
