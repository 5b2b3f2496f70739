//! History shipped to PostgreSQL: a real PostgreSQL cluster (initdb, its
//! own port, stopped and started by the test), a real redis-server, hookd
//! processes and HTTP receivers. Every attempt is stored once (also when a
//! batch is shipped twice, or a daemon is killed holding one), the history
//! API and CLI answer the same from both stores, PostgreSQL away delays
//! history but not delivery, migrations run from empty and from the
//! previous version, and day partitions past retention are dropped whole.
#![allow(clippy::unwrap_used)]

mod harness;
mod postgres_harness;

use std::collections::HashSet;
use std::time::Duration;

use harness::*;
use postgres_harness::Postgres;

const DELIVERIES: &str = "SELECT count(*) FROM hookd_deliveries";
const ATTEMPTS: &str = "SELECT count(*) FROM hookd_attempts";

fn env_with(redis: &Redis, pg: &Postgres) -> Vec<(String, String)> {
    let mut env = test_env(redis);
    env.push(("HOOKD__HISTORY__POSTGRES_URL".into(), pg.url()));
    env.push(("HOOKD__HISTORY__MIGRATE".into(), "true".into()));
    env
}

async fn publish(redis: &Redis, prefix: &str, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    redis
        .xadd_events(
            "ws",
            "order.created",
            ids.iter().map(|id| (id.clone(), "{}".into())),
        )
        .await;
    ids
}

async fn wait_count(pg: &Postgres, sql: &str, want: i64, what: &str) {
    eventually(Duration::from_secs(60), what, || async {
        (pg.count(sql).await == want).then_some(())
    })
    .await;
}

/// The workspace's history through the CLI: (id, status, attempts made).
fn history(env: &[(String, String)]) -> Vec<(String, String, u64)> {
    let page = cli_json(
        env,
        &["deliveries", "list", "--workspace", "ws", "--limit", "500"],
    );
    assert!(page["next"].is_null(), "{page}");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
                d["attempts_made"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_attempt_is_stored_once_and_history_reads_the_same_from_both_stores() {
    let redis = Redis::start();
    let pg = Postgres::start();
    let env = env_with(&redis, &pg);
    let ok = Receiver::ok().await;
    let flaky = Receiver::sequence(&[500; 60]).await; // every delivery fails at first
    create_endpoint(&env, "ws", &ok.url(), &[]);
    create_endpoint(&env, "ws", &flaky.url(), &[]);
    let _daemon = Daemon::ready(&env).await;
    let ids = publish(&redis, "a", 30).await;
    ok.wait_for(30, Duration::from_secs(30)).await;
    // 60 failures spread over the 30 flaky deliveries, then each succeeds.
    eventually(
        Duration::from_secs(60),
        "flaky deliveries succeed",
        || async {
            let h = history(&env);
            (h.len() == 60 && h.iter().all(|(_, s, _)| s == "succeeded")).then_some(())
        },
    )
    .await;
    let attempts: u64 = history(&env).iter().map(|(_, _, n)| n).sum();
    assert!(attempts > 60, "{attempts}");
    wait_count(&pg, DELIVERIES, 60, "60 deliveries in PostgreSQL").await;
    wait_count(
        &pg,
        ATTEMPTS,
        attempts as i64,
        "every attempt in PostgreSQL",
    )
    .await;

    // A backlog entry shipped a second time is stored once: copy every
    // shipped record back into the backlog (as a shipper that died after
    // storing but before acknowledging would leave it).
    let mut conn = redis.conn().await;
    let pending_before = pg.count(ATTEMPTS).await;
    let copy = redis::Script::new(
        "local n = 0 for _, d in ipairs(redis.call('KEYS', '{hookd:events}:dlv:*:attempts')) do
           local id = string.sub(d, string.len('{hookd:events}:dlv:') + 1, -10)
           local h = redis.call('HMGET', '{hookd:events}:dlv:' .. id, 'endpoint', 'workspace', 'event_id', 'type', 'created', 'status', 'attempts')
           local list = redis.call('LRANGE', d, 0, -1)
           local n_attempts = #list
           for i, a in ipairs(list) do
             redis.call('XADD', '{hookd:events}:ship', '*', 'r', cjson.encode({id, h[1], h[2], h[3], h[4], tonumber(h[5]), i == n_attempts and h[6] or 'retrying', i, a}))
             n = n + 1
           end
         end return n",
    );
    let copied: i64 = copy.invoke_async(&mut conn).await.unwrap();
    assert!(copied >= 60, "{copied}");
    eventually(Duration::from_secs(30), "the copies shipped", || async {
        let left: i64 = redis::cmd("XLEN")
            .arg("{hookd:events}:ship")
            .query_async(&mut redis.conn().await)
            .await
            .unwrap();
        (left == 0).then_some(())
    })
    .await;
    assert_eq!(
        pg.count(ATTEMPTS).await,
        pending_before,
        "a re-shipped attempt stored twice"
    );
    // ... and an older record (fewer attempts) does not overwrite the newer state.
    assert_eq!(
        pg.count("SELECT count(*) FROM hookd_deliveries WHERE status <> 'succeeded'")
            .await,
        0
    );

    // The same answers once Redis no longer has them.
    let from_redis = history(&env);
    let flaky_delivery = from_redis
        .iter()
        .max_by_key(|(_, _, n)| *n)
        .map(|(id, _, n)| (id.clone(), *n))
        .unwrap();
    let (flaky_delivery, flaky_attempts) = flaky_delivery;
    assert!(flaky_attempts >= 2);
    let shown_redis = cli_json(&env, &["deliveries", "show", &flaky_delivery]);
    redis.forget_history().await;
    assert_eq!(history(&env), from_redis);
    let shown_pg = cli_json(&env, &["deliveries", "show", &flaky_delivery]);
    assert_eq!(shown_pg, shown_redis);
    assert_eq!(
        shown_pg["attempts"].as_array().unwrap().len() as u64,
        flaky_attempts
    );
    // Pages through PostgreSQL alone: 60 in pages of 7, newest first, no repeats.
    let mut seen = HashSet::new();
    let mut before: Option<String> = None;
    loop {
        let mut args = vec!["deliveries", "list", "--workspace", "ws", "--limit", "7"];
        if let Some(b) = &before {
            args.extend(["--before", b.as_str()]);
        }
        let page = cli_json(&env, &args);
        for d in page["data"].as_array().unwrap() {
            assert!(seen.insert(d["id"].as_str().unwrap().to_string()));
        }
        match page["next"].as_str() {
            Some(next) => before = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 60);
    // The admin API answers from PostgreSQL too.
    let daemon_api = Api::new(&_daemon.admin, &api_key(&env, "ws", "read"));
    let r = daemon_api
        .call(
            "GET",
            &format!("/api/v1/workspaces/ws/deliveries/{flaky_delivery}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["attempts"].as_array().unwrap().len() as u64,
        flaky_attempts
    );
    let _ = ids;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_away_delays_history_not_delivery_and_nothing_is_lost() {
    let redis = Redis::start();
    let mut pg = Postgres::start();
    let env = env_with(&redis, &pg);
    let ok = Receiver::ok().await;
    create_endpoint(&env, "ws", &ok.url(), &[]);
    let mut first = Daemon::ready(&env).await;
    let api = Api::new(&first.admin, "");
    publish(&redis, "before", 100).await;
    wait_count(&pg, DELIVERIES, 100, "shipped before the outage").await;

    let outage = std::env::var("HISTORY_OUTAGE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8u64);
    pg.stop();
    let started = std::time::Instant::now();
    let mut published = 100;
    while started.elapsed() < Duration::from_secs(outage) {
        publish(&redis, &format!("during-{published}"), 50).await;
        published += 50;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Delivery went on.
    ok.wait_for(published, Duration::from_secs(30)).await;
    let ready = api.call("GET", "/readyz", None).await;
    assert_eq!(ready.status, 200);
    let body = ready.body;
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(
        body["problems"][0].as_str().unwrap().contains("history"),
        "{body}"
    );
    // The daemon holding a batch is killed: another takes the batch over.
    first.kill9();
    let backlog: i64 = redis::cmd("XLEN")
        .arg("{hookd:events}:ship")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    assert!(backlog > 0);
    pg.start_again();
    let second = Daemon::ready(&env).await;
    wait_count(
        &pg,
        DELIVERIES,
        published as i64,
        "everything shipped after the outage",
    )
    .await;
    wait_count(
        &pg,
        ATTEMPTS,
        published as i64,
        "every attempt shipped after the outage",
    )
    .await;
    println!(
        "history outage: {outage} s, {published} deliveries, {backlog} backlog entries held in Redis, 0 lost"
    );
    let api = Api::new(&second.admin, "");
    eventually(Duration::from_secs(10), "ready again", || async {
        let body = api.call("GET", "/readyz", None).await.body;
        (body["status"] == "ready").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_run_from_empty_and_from_the_previous_version() {
    let redis = Redis::start();
    let pg = Postgres::start();
    let mut env = test_env(&redis);
    env.push(("HOOKD__HISTORY__POSTGRES_URL".into(), pg.url()));
    // The previous version (3: before payloads were shipped), with a row in it.
    let v3 = cli_json(&env, &["migrate", "--to", "3"]);
    assert_eq!(v3["version"], 3, "{v3}");
    let client = pg.client().await;
    client
        .batch_execute(
            "CREATE TABLE hookd_deliveries_old PARTITION OF hookd_deliveries FOR VALUES FROM (0) TO (1000);
             INSERT INTO hookd_deliveries VALUES (5, 'dlv_5-0_ep_1', 'ws', 'ep_1', 'e', 't', 'failed', 1, 5)",
        )
        .await
        .unwrap();
    let latest = cli_json(&env, &["migrate"]);
    assert_eq!(latest["applied"], serde_json::json!([4]), "{latest}");
    assert_eq!(latest["version"], latest["latest"]);
    assert_eq!(
        pg.count("SELECT count(*) FROM hookd_deliveries WHERE id = 'dlv_5-0_ep_1'")
            .await,
        1
    );
    assert_eq!(
        pg.count("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'hookd_deliveries_workspace%' AND tablename = 'hookd_deliveries'").await,
        2
    );
    // Again: nothing to do.
    assert_eq!(
        cli_json(&env, &["migrate"])["applied"],
        serde_json::json!([])
    );
    // From empty, at start-up (`migrate = true`), two daemons at once.
    let pg2 = Postgres::start();
    let env2 = env_with(&redis, &pg2);
    let a = Daemon::start(&env2);
    let b = Daemon::start(&env2);
    eventually(
        Duration::from_secs(30),
        "schema made at start-up",
        || async {
            let client = pg2.client().await;
            let v = client
                .query_opt("SELECT max(version) FROM hookd_schema_migrations", &[])
                .await
                .ok()??;
            (v.get::<_, Option<i32>>(0) == Some(4)).then_some(())
        },
    )
    .await;
    assert_eq!(
        pg2.count("SELECT count(*) FROM hookd_schema_migrations")
            .await,
        4
    );
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread")]
async fn day_partitions_past_long_retention_are_dropped_whole() {
    let redis = Redis::start();
    let pg = Postgres::start();
    let mut env = env_with(&redis, &pg);
    env.push(("HOOKD__HISTORY__LONG_RETENTION".into(), "30d".into()));
    let ok = Receiver::ok().await;
    let (ep, _) = create_endpoint(&env, "ws", &ok.url(), &[]);
    let mut daemon = Daemon::ready(&env).await;
    publish(&redis, "now", 5).await;
    wait_count(&pg, DELIVERIES, 5, "today's deliveries").await;
    // Records of a delivery made 40 days ago, as a backlog entry.
    let old_ms = hookd_core::time::now_ms() - 40 * 86_400_000;
    let member = format!("{old_ms}-0_[\"old\",\"order.created\",\"succeeded\",{old_ms},3,200]");
    let _: String = redis::cmd("XADD")
        .arg("{hookd:events}:ship")
        .arg("*")
        .arg(format!("l{ep} ws"))
        .arg(member)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    wait_count(&pg, DELIVERIES, 6, "the old delivery stored").await;
    let old_day = hookd_core::time::format_rfc3339_ms(old_ms)[..10].replace('-', "");
    let table = format!("hookd_deliveries_{old_day}");
    let exists = format!("SELECT count(*) FROM pg_class WHERE relname = '{table}'");
    assert_eq!(pg.count(&exists).await, 1);
    // Retention runs at start-up (and hourly).
    assert!(daemon.terminate());
    daemon = Daemon::ready(&env).await;
    wait_count(&pg, &exists, 0, "the old day's partition dropped").await;
    assert_eq!(pg.count(DELIVERIES).await, 5, "today's rows stay");
    drop(daemon);
}

/// The admin API's pagination walk (as in tests/admin.rs) with history in
/// both stores: all in Redis and PostgreSQL, then with the older half gone
/// from Redis (the hot window's end), then PostgreSQL alone. The same 1,200
/// deliveries, newest first, no gap, no repeat, at page sizes 500 and 7.
#[tokio::test(flavor = "multi_thread")]
async fn pagination_walks_the_same_history_across_both_stores() {
    let redis = Redis::start();
    let pg = Postgres::start();
    let env = env_with(&redis, &pg);
    let daemon = Daemon::ready(&env).await;
    let api = Api::new(&daemon.admin, &api_key(&env, "ws", "admin"));
    let base = "/api/v1/workspaces/ws/endpoints";
    let r = api
        .call(
            "POST",
            base,
            Some(serde_json::json!({ "url": "http://127.0.0.1:9/never" })),
        )
        .await;
    let ep = r.body["id"].as_str().unwrap().to_string();
    api.call("POST", &format!("{base}/{ep}/pause"), None).await;
    publish(&redis, "e", 1200).await;
    wait_count(&pg, DELIVERIES, 1200, "1200 held deliveries shipped").await;

    let walk = |page_size: usize| {
        let api = &api;
        async move {
            walk_deliveries(api, "ws", page_size)
                .await
                .iter()
                .map(|d| {
                    (
                        d["created_at"].as_str().unwrap().to_string(),
                        d["id"].as_str().unwrap().to_string(),
                        d["status"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let check = |seen: &Vec<(String, String, String)>, what: &str| {
        let unique: HashSet<&String> = seen.iter().map(|(_, id, _)| id).collect();
        assert_eq!(seen.len(), 1200, "{what}: no repeat, no gap");
        assert_eq!(unique.len(), 1200, "{what}");
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(*seen, sorted, "{what}: newest first across pages");
        assert!(seen.iter().all(|(.., s)| s == "held"), "{what}");
    };
    let both = walk(500).await;
    check(&both, "both stores");
    check(&walk(7).await, "both stores, pages of 7");
    // The older half leaves Redis: pages join the two stores mid-way.
    let removed: i64 = redis::cmd("ZREMRANGEBYRANK")
        .arg(format!("{{hookd:events}}:ep:{ep}:log"))
        .arg(0)
        .arg(599)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    assert_eq!(removed, 600);
    for size in [500, 7] {
        let seen = walk(size).await;
        check(&seen, "half in Redis");
        assert_eq!(seen, both);
    }
    redis.forget_history().await;
    let seen = walk(7).await;
    check(&seen, "PostgreSQL alone");
    assert_eq!(seen, both);
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_redis_has_forgotten_are_redelivered_and_recovered_from_postgresql() {
    let redis = Redis::start();
    let pg = Postgres::start();
    let mut env = env_with(&redis, &pg);
    env.push(("HOOKD__RETRY__MAX_ATTEMPTS".into(), "2".into()));
    // 20 events, 2 attempts each, all refused; then the receiver is fixed.
    let receiver = Receiver::sequence(&[500; 40]).await;
    let (ep, secret) = create_endpoint(&env, "ws", &receiver.url(), &[]);
    let daemon = Daemon::ready(&env).await;
    let events: Vec<(String, String)> = (0..20)
        .map(|i| (format!("f-{i}"), format!(r#"{{"n":{i}}}"#)))
        .collect();
    redis
        .xadd_events("ws", "order.created", events.iter().cloned())
        .await;
    eventually(Duration::from_secs(60), "20 failed deliveries", || async {
        let h = history(&env);
        (h.len() == 20 && h.iter().all(|(_, s, _)| s == "failed")).then_some(())
    })
    .await;
    wait_count(
        &pg,
        "SELECT count(*) FROM hookd_deliveries WHERE status = 'failed'",
        20,
        "20 failed deliveries shipped",
    )
    .await;
    wait_count(
        &pg,
        "SELECT count(*) FROM hookd_envelopes",
        20,
        "20 payloads shipped",
    )
    .await;
    assert_eq!(receiver.count(), 40);
    let first_bodies: Vec<Vec<u8>> = receiver.received().iter().map(|r| r.body.clone()).collect();
    redis.forget_history_and_payloads().await;
    let failed = history(&env);
    assert_eq!(failed.len(), 20, "PostgreSQL still lists them");

    // One redelivered through the API: its payload comes back from PostgreSQL.
    let api = Api::new(&daemon.admin, &api_key(&env, "ws", "write"));
    let one = &failed[0].0;
    // What it sent, read from PostgreSQL too.
    let sent = api
        .call(
            "GET",
            &format!("/api/v1/workspaces/ws/deliveries/{one}/request"),
            None,
        )
        .await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    let sent_body = serde_json::to_vec(&sent.body["body"]).unwrap();
    assert!(
        first_bodies
            .iter()
            .any(|b| serde_json::from_slice::<serde_json::Value>(b).unwrap() == sent.body["body"]),
        "the envelope from PostgreSQL: {}",
        String::from_utf8_lossy(&sent_body)
    );
    assert_eq!(sent.body["attempt"], 2);
    let r = api
        .call(
            "POST",
            &format!("/api/v1/workspaces/ws/deliveries/{one}/redeliver"),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let got = receiver.wait_for(41, Duration::from_secs(30)).await;
    let resent = &got[40];
    assert!(
        first_bodies.contains(&resent.body),
        "the original payload was resent: {}",
        String::from_utf8_lossy(&resent.body)
    );
    assert!(
        hookd_signature::Verifier::new(&secret)
            .verify_parts(
                resent.header("x-hookd-timestamp"),
                resent.header("x-hookd-signature"),
                &resent.body,
            )
            .is_ok(),
        "the resent payload is signed with the endpoint's secret"
    );
    let shown = eventually(
        Duration::from_secs(30),
        "the manual attempt recorded",
        || async {
            let d = cli_json(&env, &["deliveries", "show", one]);
            (d["status"] == "succeeded").then_some(d)
        },
    )
    .await;
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.len(),
        3,
        "both shipped attempts and the new one: {shown}"
    );
    assert_eq!(attempts[2]["trigger"], "manual");

    // The other 19 through a recovery job (the CLI's, which waits for it).
    let out = cli_json(&env, &["recover", "--endpoint", &ep, "--since", "1h"]);
    assert_eq!(
        (
            out["matched"].clone(),
            out["queued"].clone(),
            out["succeeded"].clone(),
            out["state"].clone()
        ),
        (
            serde_json::json!(19),
            serde_json::json!(19),
            serde_json::json!(19),
            serde_json::json!("completed")
        ),
        "{out}"
    );
    let got = receiver.wait_for(60, Duration::from_secs(30)).await;
    let mut bodies: Vec<Vec<u8>> = got[40..].iter().map(|r| r.body.clone()).collect();
    let mut originals: Vec<Vec<u8>> = first_bodies;
    originals.sort();
    originals.dedup();
    bodies.sort();
    assert_eq!(bodies, originals, "each event's own payload, once each");
    eventually(Duration::from_secs(30), "all 20 succeeded", || async {
        let h = history(&env);
        (h.len() == 20 && h.iter().all(|(_, s, n)| s == "succeeded" && *n == 3)).then_some(())
    })
    .await;
    wait_count(
        &pg,
        "SELECT count(*) FROM hookd_deliveries WHERE status = 'succeeded' AND attempts_made = 3",
        20,
        "the new state shipped",
    )
    .await;
}
