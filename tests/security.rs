//! Security and robustness end to end (issue 11): internal addresses in every
//! spelling, racing endpoint writes, tenant limits, bounded structures,
//! hostile stream entries, secrets kept out of views and logs. A real hookd,
//! a real Redis, real receivers on loopback.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod harness;

use std::time::Duration;

use harness::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// Spellings of 127.0.0.1 that the URL parser behind the HTTP client accepts.
fn loopback_spellings(port: u16) -> Vec<String> {
    [
        "127.1",
        "0177.0.0.1",
        "127.0.0.1.",
        "0x7f.1",
        "0x7f000001",
        "2130706433",
        "017700000001",
        "%31%32%37.0.0.1",
        "127.000.000.001",
    ]
    .iter()
    .map(|h| format!("http://{h}:{port}/hook"))
    .collect()
}

fn env_with(redis: &Redis, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = test_env(redis);
    env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// Publishes one `card.created` event through the API.
async fn publish(api: &Api, ws: &str) {
    let r = api
        .call(
            "POST",
            &format!("/api/v1/workspaces/{ws}/events"),
            Some(json!({ "type": "card.created", "data": {} })),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
}

async fn attempts_of(api: &Api, ws: &str, delivery: &str) -> Vec<Value> {
    let d = api
        .call(
            "GET",
            &format!("/api/v1/workspaces/{ws}/deliveries/{delivery}"),
            None,
        )
        .await;
    d.body["attempts"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn internal_addresses_in_any_spelling_are_refused_and_blocked_at_send() {
    let redis = Redis::start();
    let receiver = Receiver::ok().await;
    let mut urls = loopback_spellings(receiver.port);
    // IPv6 forms of internal addresses.
    let v6 = [
        format!("http://[::1]:{}/hook", receiver.port),
        format!("http://[0:0:0:0:0:0:0:1]:{}/hook", receiver.port),
        format!("http://[::ffff:127.0.0.1]:{}/hook", receiver.port),
        format!("http://[::ffff:7f00:1]:{}/hook", receiver.port),
        "http://[fd00::1]/hook".to_string(),
        "http://[fe80::1]/hook".to_string(),
        "http://[64:ff9b::a9fe:a9fe]/hook".to_string(),
    ];

    // Refused at registration, by the API and by the CLI, under the built-in policy.
    let strict = env_with(&redis, &[("HOOKD__DELIVERY__ALLOW_NETWORKS", "")]);
    let daemon = Daemon::ready(&strict).await;
    let api = Api::new(&daemon.admin, &api_key(&strict, "ws_a", "admin"));
    for url in urls.iter().chain(&v6) {
        let r = api
            .call(
                "POST",
                "/api/v1/workspaces/ws_a/endpoints",
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!(r.status, 422, "{url} must be refused: {:?}", r.body);
        let out = hookd_command(&strict)
            .args(["endpoints", "create", "--workspace", "ws_a", "--url", url])
            .output()
            .unwrap();
        assert!(!out.status.success(), "the CLI must refuse {url}");
    }
    drop(daemon);

    // Registered while loopback was allowed (or written some other way), they
    // are blocked at send once the policy no longer allows it.
    let lax = test_env(&redis);
    urls.push(format!("http://localhost:{}/hook", receiver.port));
    for url in &urls {
        create_endpoint(&lax, "ws_a", url, &[]);
    }
    let daemon = Daemon::ready(&strict).await;
    let api = Api::new(&daemon.admin, &api_key(&strict, "ws_a", "admin"));
    publish(&api, "ws_a").await;
    let deliveries = eventually(WAIT, "a blocked attempt for every endpoint", || async {
        let page = api
            .call("GET", "/api/v1/workspaces/ws_a/deliveries?limit=100", None)
            .await;
        let data = page.body["data"].as_array()?.clone();
        (data.len() == urls.len()
            && data
                .iter()
                .all(|d| d["attempts_made"].as_u64().unwrap_or(0) >= 1))
        .then_some(data)
    })
    .await;
    for d in deliveries {
        let id = d["id"].as_str().unwrap();
        let attempts = attempts_of(&api, "ws_a", id).await;
        let first = &attempts[0];
        assert_eq!(first["error_kind"], "blocked", "{first}");
        let error = first["error"].as_str().unwrap();
        assert!(error.contains("internal"), "{error}");
        // The error names no address a host resolved to (no DNS mapping for tenants).
        assert!(
            !error.contains("::1") && !error.contains("127.0.0.1, "),
            "{error}"
        );
    }
    assert_eq!(receiver.count(), 0, "nothing reached loopback");
}

#[tokio::test]
async fn endpoint_writes_racing_each_other_lose_nothing_and_leave_no_ghost() {
    let redis = Redis::start();
    let env = test_env(&redis);
    let daemon = Daemon::ready(&env).await;
    let api = Api::new(&daemon.admin, &api_key(&env, "ws_a", "admin"));
    let base = "/api/v1/workspaces/ws_a/endpoints";
    let mut conn = redis.conn().await;

    // An update racing a delete never brings the endpoint back.
    for round in 0..25 {
        let r = api
            .call("POST", base, Some(json!({ "url": "http://127.0.0.1:9/x" })))
            .await;
        let id = r.body["id"].as_str().unwrap().to_string();
        let path = format!("{base}/{id}");
        let desc = json!({ "description": format!("round {round}"), "event_types": ["a.b"] });
        let (updated, deleted) = tokio::join!(
            api.call("PATCH", &path, Some(desc)),
            api.call("DELETE", &path, None)
        );
        assert!([200, 404].contains(&updated.status), "{:?}", updated.body);
        assert_eq!(deleted.status, 204, "{:?}", deleted.body);
        let key = format!("{{hookd:events}}:ep:{id}");
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(exists, 0, "round {round}: a ghost of {id} was left");
        let subscribed: i64 = redis::cmd("SISMEMBER")
            .arg("{hookd:events}:ws:4:ws_a:type:a.b")
            .arg(&id)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(subscribed, 0, "round {round}: a ghost subscription");
        assert_eq!(api.call("GET", &path, None).await.status, 404);
    }

    // An update racing a rotation keeps the rotated secret; an emergency
    // rotation (grace 0) leaves the old secret signing nothing.
    let receiver = Receiver::ok().await;
    let r = api
        .call("POST", base, Some(json!({ "url": receiver.url() })))
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let path = format!("{base}/{id}");
    let mut last_secret = String::new();
    let rotate = format!("{path}/secret/rotate");
    for round in 0..25 {
        let (updated, rotated) = tokio::join!(
            api.call(
                "PATCH",
                &path,
                Some(json!({ "description": format!("round {round}") }))
            ),
            api.call("POST", &rotate, Some(json!({ "grace_seconds": 0 })))
        );
        assert_eq!(updated.status, 200, "{:?}", updated.body);
        assert_eq!(rotated.status, 200, "{:?}", rotated.body);
        last_secret = rotated.body["secret"].as_str().unwrap().to_string();
    }
    publish(&api, "ws_a").await;
    let got = receiver.wait_for(1, WAIT).await;
    let signature = got[0].header("x-hookd-signature").unwrap().to_string();
    let timestamp: i64 = got[0].header("x-hookd-timestamp").unwrap().parse().unwrap();
    let expected =
        hookd_signature::signature_header(&[last_secret.as_str()], timestamp, &got[0].body);
    assert_eq!(
        signature, expected,
        "signed with the last rotated secret only"
    );
}

#[tokio::test]
async fn a_slow_greedy_tenant_leaves_other_tenants_their_workers() {
    let redis = Redis::start();
    let env = env_with(
        &redis,
        &[
            ("HOOKD__DELIVERY__CONCURRENCY", "16"),
            ("HOOKD__DELIVERY__MAX_ENDPOINT_CONCURRENCY", "64"),
            ("HOOKD__DELIVERY__WORKSPACE_CONCURRENCY", "4"),
            ("HOOKD__ADMIN__MAX_ENDPOINTS_PER_WORKSPACE", "3"),
        ],
    );
    let daemon = Daemon::ready(&env).await;
    let greedy = Api::new(&daemon.admin, &api_key(&env, "ws_greedy", "admin"));
    let other = Api::new(&daemon.admin, &api_key(&env, "ws_other", "admin"));
    let slow = Receiver::slow(Duration::from_millis(1500)).await;
    let fast = Receiver::ok().await;
    let eps = |ws: &str| format!("/api/v1/workspaces/{ws}/endpoints");

    // The operator's bound on max_concurrency holds.
    let r = greedy
        .call(
            "POST",
            &eps("ws_greedy"),
            Some(json!({ "url": slow.url(), "max_concurrency": 100000 })),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(
        r.body["issues"][0]["path"], "/max_concurrency",
        "{:?}",
        r.body
    );
    let r = greedy
        .call(
            "POST",
            &eps("ws_greedy"),
            Some(json!({ "url": slow.url(), "max_concurrency": 64 })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // And the number of endpoints per workspace.
    for _ in 0..2 {
        let r = greedy
            .call(
                "POST",
                &eps("ws_greedy"),
                Some(json!({ "url": "http://127.0.0.1:9/x", "event_types": ["never.sent"] })),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let r = greedy
        .call(
            "POST",
            &eps("ws_greedy"),
            Some(json!({ "url": slow.url() })),
        )
        .await;
    assert_eq!(
        r.status, 422,
        "a fourth endpoint is over the limit: {:?}",
        r.body
    );
    let r = other
        .call("POST", &eps("ws_other"), Some(json!({ "url": fast.url() })))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    let events = |p: &'static str| (0..40).map(move |i| (format!("{p}{i}"), "{}".to_string()));
    redis
        .xadd_events("ws_greedy", "card.created", events("g"))
        .await;
    slow.wait_for(1, WAIT).await;
    redis
        .xadd_events("ws_other", "card.created", events("o"))
        .await;
    fast.wait_for(40, WAIT).await;
    assert!(
        slow.count() < 40,
        "the other tenant was served while the greedy one still had a backlog"
    );
    assert!(
        slow.max_in_flight() <= 4,
        "the greedy workspace had {} attempts in flight, over its limit of 4",
        slow.max_in_flight()
    );
}

/// `XADD hookd:events * type t workspace ws data {} f0 v f1 v ...` with `n` extra fields.
async fn xadd_many_fields(redis: &Redis, n: usize) {
    let mut cmd = redis::cmd("XADD");
    cmd.arg("hookd:events")
        .arg("*")
        .arg("type")
        .arg("card.created")
        .arg("workspace")
        .arg("ws_a")
        .arg("data")
        .arg("{}");
    for i in 0..n {
        cmd.arg(format!("f{i}")).arg("v");
    }
    let _: String = cmd.query_async(&mut redis.conn().await).await.unwrap();
}

async fn xadd_huge(redis: &Redis, bytes: usize) {
    let data = format!("\"{}\"", "x".repeat(bytes));
    let _: String = redis::cmd("XADD")
        .arg("hookd:events")
        .arg("*")
        .arg("type")
        .arg("card.created")
        .arg("workspace")
        .arg("ws_a")
        .arg("data")
        .arg(data)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
}

#[tokio::test]
async fn hostile_entries_are_dead_lettered_without_stalling_or_exhausting_memory() {
    let Setup(redis, env, receiver, ..) = Setup::for_types(Receiver::ok().await, "ws_a", &[]).await;
    redis.create_group().await;
    // A daemon that died holding a 50 MB entry and one with 300,000 fields:
    // every daemon that reclaims them would read them again.
    xadd_huge(&redis, 50 << 20).await;
    xadd_many_fields(&redis, 300_000).await;
    // (Read inside Redis, so this test does not carry 50 MB either.)
    let out = std::process::Command::new("redis-cli")
        .args(["-u", &redis.url(), "EVAL"])
        .arg("redis.call('XREADGROUP', 'GROUP', 'hookd', 'ghost', 'COUNT', 10, 'STREAMS', KEYS[1], '>') return 1")
        .args(["1", "hookd:events"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "{out:?}");
    // New ones, between good events.
    redis
        .xadd_events(
            "ws_a",
            "card.created",
            [("good-1".to_string(), "{}".to_string())],
        )
        .await;
    xadd_huge(&redis, 50 << 20).await;
    redis
        .xadd_events(
            "ws_a",
            "card.created",
            [("good-2".to_string(), "{}".to_string())],
        )
        .await;
    xadd_many_fields(&redis, 300_000).await;
    redis
        .xadd_events(
            "ws_a",
            "card.created",
            [("good-3".to_string(), "{}".to_string())],
        )
        .await;

    let daemon = Daemon::ready(&env).await;
    receiver.wait_for(3, WAIT).await;
    let dead: Vec<redis::Value> = eventually(WAIT, "four dead letters", || async {
        let mut conn = redis.conn().await;
        let dead: Vec<redis::Value> = redis::cmd("XRANGE")
            .arg("hookd:events:dead")
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        (dead.len() == 4).then_some(dead)
    })
    .await;
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|e| {
            let redis::Value::Array(parts) = e else {
                panic!("{e:?}")
            };
            let redis::Value::Array(fields) = &parts[1] else {
                panic!("{e:?}")
            };
            let text: Vec<String> = fields.iter().map(text).collect();
            let at = |name: &str| {
                let i = text.iter().position(|f| f == name).unwrap();
                text[i + 1].clone()
            };
            assert_eq!(at("truncated"), "1");
            assert!(
                text.len() < 100,
                "kept cut short: {} fields",
                text.len() / 2
            );
            assert!(text.iter().all(|f| f.len() <= 1024));
            at("reason")
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "too_large",
            "too_large",
            "too_many_fields",
            "too_many_fields"
        ]
    );
    eventually(WAIT, "nothing pending", || async {
        (pending(&redis).await == 0).then_some(())
    })
    .await;
    // One more while the daemon is idle, blocked in its read.
    xadd_huge(&redis, 50 << 20).await;
    eventually(WAIT, "a fifth dead letter", || async {
        let mut conn = redis.conn().await;
        let n: usize = redis::cmd("XLEN")
            .arg("hookd:events:dead")
            .query_async(&mut conn)
            .await
            .unwrap();
        (n == 5 && pending(&redis).await == 0).then_some(())
    })
    .await;
    // The reader drains an entry over the limits without holding it: the
    // daemon never has one 50 MB entry in memory, let alone several.
    let peak = daemon.peak_rss_kib().unwrap();
    println!("hostile entries: daemon peak RSS {peak} KiB");
    assert!(
        peak < 48 << 10,
        "the daemon peaked at {peak} KiB reading 150 MB of hostile entries"
    );
    assert_eq!(receiver.count(), 3, "only the good events were delivered");
}

#[tokio::test]
async fn secrets_stay_out_of_logs_views_and_redis() {
    let redis = Redis::start();
    let env = test_env(&redis);

    // A Redis password never appears in a log line or an error.
    let port = free_port();
    let with_password = env_with(
        &redis,
        &[(
            "HOOKD__REDIS__URL",
            &format!("redis://:pw-s3cret@127.0.0.1:{port}"),
        )],
    );
    let mut serve = hookd_command(&with_password)
        .env("HOOKD__ADMIN__BIND", format!("127.0.0.1:{}", free_port()))
        .env("HOOKD__LOG__LEVEL", "info")
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    serve.kill().unwrap();
    let out = serve.wait_with_output().unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(logs.contains("Redis not reachable"), "{logs}");
    assert!(!logs.contains("pw-s3cret"), "{logs}");
    let cli_out = hookd_command(&with_password)
        .args(["endpoints", "list"])
        .output()
        .unwrap();
    assert!(!cli_out.status.success());
    assert!(!String::from_utf8_lossy(&cli_out.stderr).contains("pw-s3cret"));

    // Custom header values are sealed at rest and shown only to writers.
    let daemon = Daemon::ready(&env).await;
    let admin = Api::new(&daemon.admin, &api_key(&env, "ws_a", "admin"));
    let reader = admin.with_key(&api_key(&env, "ws_a", "read"));
    let receiver = Receiver::ok().await;
    let r = admin
        .call(
            "POST",
            "/api/v1/workspaces/ws_a/endpoints",
            Some(json!({ "url": receiver.url(), "headers": { "Authorization": "Bearer hdr-s3cret" } })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let path = format!("/api/v1/workspaces/ws_a/endpoints/{id}");
    let doc: String = redis::cmd("HGET")
        .arg(format!("{{hookd:events}}:ep:{id}"))
        .arg("doc")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    assert!(
        !doc.contains("hdr-s3cret") && !doc.contains(&secret),
        "{doc}"
    );
    let seen = reader.call("GET", &path, None).await;
    assert_eq!(
        seen.body["headers"]["Authorization"], "***",
        "{:?}",
        seen.body
    );
    let listed = reader
        .call("GET", "/api/v1/workspaces/ws_a/endpoints", None)
        .await;
    assert!(!listed.body.to_string().contains("hdr-s3cret"));
    let seen = admin.call("GET", &path, None).await;
    assert_eq!(seen.body["headers"]["Authorization"], "Bearer hdr-s3cret");
    publish(&admin, "ws_a").await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("authorization"), Some("Bearer hdr-s3cret"));

    // The CLI shows a secret where the API does (create, rotate), and on
    // `endpoints secret` when asked; nowhere else.
    let rotated = cli_json(&env, &["endpoints", "rotate-secret", &id, "--grace", "1h"]);
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new, secret);
    for args in [
        vec!["endpoints", "show", &id],
        vec!["endpoints", "list"],
        vec!["endpoints", "pause", &id],
        vec!["endpoints", "resume", &id],
    ] {
        for json in [false, true] {
            let mut args = args.clone();
            if json {
                args.push("--json");
            }
            let out = cli(&env, &args);
            assert!(
                !out.contains(&secret) && !out.contains(&new),
                "hookd {args:?} printed a secret: {out}"
            );
        }
    }
    let shown = cli_json(&env, &["endpoints", "secret", &id]);
    assert_eq!(shown["secret"], new.as_str());
    assert_eq!(shown["previous_secrets"][0]["secret"], secret.as_str());
    let deleted = cli(&env, &["endpoints", "delete", &id, "--json"]);
    assert!(
        !deleted.contains(&secret) && !deleted.contains(&new),
        "{deleted}"
    );
}

#[tokio::test]
async fn a_nameserver_that_never_answers_holds_no_thread_and_no_other_delivery() {
    // A DNS server that takes every query (UDP and TCP) and never answers.
    // (The same port for both: taken first for TCP, retried if UDP has it.)
    let mut sockets = None;
    for _ in 0..50 {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        if let Ok(udp) = tokio::net::UdpSocket::bind(tcp.local_addr().unwrap()).await {
            sockets = Some((tcp, udp));
            break;
        }
    }
    let (tcp, udp) = sockets.expect("a port free for both TCP and UDP");
    let dns = udp.local_addr().unwrap();
    let sink = tokio::spawn(async move {
        let mut held = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            tokio::select! {
                _ = udp.recv_from(&mut buf) => {}
                Ok((conn, _)) = tcp.accept() => held.push(conn),
            }
        }
    });
    let redis = Redis::start();
    let env = env_with(
        &redis,
        &[
            ("HOOKD__DELIVERY__NAMESERVERS", &dns.to_string()),
            ("HOOKD__DELIVERY__CONNECT_TIMEOUT", "1s"),
        ],
    );
    let daemon = Daemon::ready(&env).await;
    let api = Api::new(&daemon.admin, &api_key(&env, "ws_dns", "admin"));
    let r = api
        .call(
            "POST",
            "/api/v1/workspaces/ws_dns/endpoints",
            Some(json!({ "url": "http://receiver.hangs.test:9/hook", "max_concurrency": 64 })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let receiver = Receiver::ok().await;
    create_endpoint(&env, "ws_ok", &receiver.url(), &[]);
    let events = (0..60).map(|i| (format!("dns-{i}"), "{}".to_string()));
    redis.xadd_events("ws_dns", "card.created", events).await;
    redis
        .xadd_events(
            "ws_ok",
            "card.created",
            [("ok-1".to_string(), "{}".to_string())],
        )
        .await;
    // The other tenant's delivery goes out while 60 lookups hang.
    receiver.wait_for(1, WAIT).await;
    let threads = daemon.threads().unwrap();
    assert!(
        threads < 40,
        "{threads} threads: lookups must not each hold one"
    );
    let attempt = eventually(WAIT, "a failed lookup recorded", || async {
        let page = api
            .call("GET", "/api/v1/workspaces/ws_dns/deliveries?limit=1", None)
            .await;
        let id = page.body["data"][0]["id"].as_str()?.to_string();
        attempts_of(&api, "ws_dns", &id).await.first().cloned()
    })
    .await;
    assert!(
        ["dns", "timeout"].contains(&attempt["error_kind"].as_str().unwrap()),
        "{attempt}"
    );
    assert!(
        attempt["duration_ms"].as_u64().unwrap() < 2000,
        "the lookup was cut at the connect timeout: {attempt}"
    );
    sink.abort();
}

/// Calls of one Redis command so far (`INFO commandstats`).
async fn calls(redis: &Redis, command: &str) -> u64 {
    redis
        .info("commandstats")
        .await
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn metrics_scrapes_cost_redis_nothing() {
    let redis = Redis::start();
    let env = env_with(&redis, &[("HOOKD__ADMIN__STATS_INTERVAL", "1h")]);
    for i in 0..20 {
        create_endpoint(&env, "ws_a", &format!("http://127.0.0.1:9/{i}"), &[]);
    }
    let daemon = Daemon::ready(&env).await;
    let api = Api::new(&daemon.admin, "");
    let first = api.call("GET", "/metrics", None).await;
    let text = first.body.as_str().unwrap().to_string();
    assert!(text.contains("hookd_endpoints 20"), "{text}");
    assert!(text.contains("hookd_queue_figures_age_seconds"), "{text}");
    let before = (
        calls(&redis, "zcard").await,
        calls(&redis, "xinfo|groups").await,
    );
    for _ in 0..50 {
        assert_eq!(api.call("GET", "/metrics", None).await.status, 200);
    }
    let after = (
        calls(&redis, "zcard").await,
        calls(&redis, "xinfo|groups").await,
    );
    assert_eq!(before, after, "50 scrapes ran no queue-figure command");
}

/// Idle connections to the admin port cannot take the descriptors delivery
/// needs: under `ulimit -n 200`, 250 idle unauthenticated connections are
/// held off (at most a quarter of the limit are taken, the rest wait in the
/// backlog), every delivery still goes out, and the admin API answers again
/// once the idle ones time out.
#[tokio::test(flavor = "multi_thread")]
async fn idle_admin_connections_never_starve_delivery_of_descriptors() {
    let redis = Redis::start();
    let mut env = test_env(&redis);
    env.push(("HOOKD__ADMIN__HEADER_READ_TIMEOUT".into(), "1s".into()));
    env.push(("HOOKD__ADMIN__IDLE_TIMEOUT".into(), "2s".into()));
    let receiver = Receiver::ok().await;
    create_endpoint(&env, "ws", &receiver.url(), &[]);
    let daemon = Daemon::ready_with_open_files(&env, 200).await;
    let addr = daemon.admin.trim_start_matches("http://").to_string();
    let mut idle = Vec::new();
    for _ in 0..250 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(&addr),
        )
        .await
        {
            Ok(Ok(s)) => idle.push(s),
            _ => break,
        }
    }
    assert!(idle.len() >= 150, "only {} connections opened", idle.len());
    let events = (0..200).map(|i| (format!("evt_{i}"), "{}".to_string()));
    redis.xadd_events("ws", "a.b", events).await;
    receiver.wait_for(200, WAIT).await;
    let api = Api::new(&daemon.admin, "");
    let ready = eventually(WAIT, "/readyz answering again", || async {
        let r = api.raw("GET", "/readyz", None, &[]).await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(ready.status, 200);
    drop(idle);
    let failed: Vec<redis::Value> = redis::cmd("KEYS")
        .arg("{hookd:events}:dlv:*")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    assert!(
        failed.is_empty(),
        "deliveries outlived their first attempt (failed to connect?): {failed:?}"
    );
}

/// The smaller hardening of issue 26, each as a user meets it.
#[tokio::test(flavor = "multi_thread")]
async fn small_holes_are_closed() {
    let redis = Redis::start();
    let env = env_with(
        &redis,
        &[("HOOKD__ADMIN__MAX_ENDPOINTS_PER_WORKSPACE", "5")],
    );
    let daemon = Daemon::ready(&env).await;
    let key = api_key(&env, "ws_a", "admin");
    let api = Api::new(&daemon.admin, &key);
    let receiver = Receiver::ok().await;

    // 50 creates at once under a limit of 5 make 5 endpoints, not 50.
    let creates = (0..50).map(|_| {
        let api = api.clone();
        let url = receiver.url();
        tokio::spawn(async move {
            api.call(
                "POST",
                "/api/v1/workspaces/ws_a/endpoints",
                Some(json!({ "url": url })),
            )
            .await
            .status
        })
    });
    let mut created = 0;
    for c in creates {
        match c.await.unwrap() {
            201 => created += 1,
            422 => {}
            other => panic!("create answered {other}"),
        }
    }
    assert_eq!(created, 5);

    // Custom headers: bounded in number and size; hop-by-hop and framing refused.
    let other = Api::new(&daemon.admin, &api_key(&env, "ws_b", "admin"));
    let create = |body: Value| {
        let other = other.clone();
        async move {
            other
                .call("POST", "/api/v1/workspaces/ws_b/endpoints", Some(body))
                .await
        }
    };
    let many: serde_json::Map<String, Value> = (0..33)
        .map(|i| (format!("X-H{i}"), Value::from("v")))
        .collect();
    let r = create(json!({ "url": receiver.url(), "headers": many })).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    let r =
        create(json!({ "url": receiver.url(), "headers": { "X-Big": "v".repeat(9000) } })).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    for name in [
        "Upgrade",
        "TE",
        "Trailer",
        "Keep-Alive",
        "Expect",
        "Proxy-Authorization",
        "Content-Encoding",
        "traceparent",
    ] {
        let r = create(json!({ "url": receiver.url(), "headers": { name: "x" } })).await;
        assert_eq!(r.status, 422, "{name} accepted: {:?}", r.body);
    }

    // Pause reasons and key names are bounded.
    let r = create(json!({ "url": receiver.url() })).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let ep = r.body["id"].as_str().unwrap().to_string();
    let r = other
        .call(
            "POST",
            &format!("/api/v1/workspaces/ws_b/endpoints/{ep}/pause"),
            Some(json!({ "reason": "x".repeat(100_000) })),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    let r = other
        .call(
            "POST",
            "/api/v1/workspaces/ws_b/keys",
            Some(json!({ "scope": "read", "name": "n".repeat(100_000) })),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);

    // The auth scheme and the media type are case-insensitive.
    let r = Api::new(&daemon.admin, "")
        .raw(
            "GET",
            "/api/v1/workspaces/ws_b/endpoints",
            None,
            &[("authorization", &format!("bearer {key}"))],
        )
        .await;
    assert_eq!(
        r.status, 403,
        "a lower-case bearer is a bearer: {:?}",
        r.body
    );
    let r = other
        .raw(
            "POST",
            "/api/v1/workspaces/ws_b/events",
            Some(
                json!({ "type": "card.created", "data": {} })
                    .to_string()
                    .into_bytes(),
            ),
            &[("content-type", "APPLICATION/JSON")],
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);

    // A cursor that is no entry is the caller's mistake, not Redis being down.
    let r = other
        .call("GET", "/api/v1/workspaces/ws_b/audit?before=0-0", None)
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);

    // The reference pages may not be framed, nor run inline scripts.
    for page in ["/docs", "/swagger"] {
        let r = other.raw("GET", page, None, &[]).await;
        assert_eq!(r.status, 200);
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{page}: {csp}");
        assert!(
            !csp.contains("script-src 'self' 'unsafe-inline'"),
            "{page}: {csp}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{page}");
    }
}

/// A destination the network policy refuses is refused on every attempt:
/// the delivery fails after one, instead of retrying on the full schedule.
#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_destination_fails_after_one_attempt() {
    let redis = Redis::start();
    let receiver = Receiver::ok().await;
    let lax = test_env(&redis);
    create_endpoint(&lax, "ws_a", &receiver.url(), &[]);
    let strict = env_with(&redis, &[("HOOKD__DELIVERY__ALLOW_NETWORKS", "")]);
    let daemon = Daemon::ready(&strict).await;
    let api = Api::new(&daemon.admin, &api_key(&strict, "ws_a", "admin"));
    publish(&api, "ws_a").await;
    let d = eventually(WAIT, "the blocked delivery failed", || async {
        let page = api
            .call("GET", "/api/v1/workspaces/ws_a/deliveries", None)
            .await;
        let d = page.body["data"].as_array()?.first()?.clone();
        (d["status"] == "failed").then_some(d)
    })
    .await;
    assert_eq!(d["attempts_made"], 1, "{d}");
}

/// A receiver whose answer is not readable HTTP (a response head too
/// large) fails with kind `response`, not `connect`.
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_response_head_is_a_response_failure() {
    let redis = Redis::start();
    let env = test_env(&redis);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0; 65536];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
                    "x".repeat(1 << 20)
                );
                let _ = s.write_all(head.as_bytes()).await;
            });
        }
    });
    create_endpoint(&env, "ws_a", &format!("http://127.0.0.1:{port}/hook"), &[]);
    let daemon = Daemon::ready(&env).await;
    let api = Api::new(&daemon.admin, &api_key(&env, "ws_a", "admin"));
    publish(&api, "ws_a").await;
    let d = eventually(WAIT, "the first attempt recorded", || async {
        let page = api
            .call("GET", "/api/v1/workspaces/ws_a/deliveries", None)
            .await;
        let d = page.body["data"].as_array()?.first()?.clone();
        (d["attempts_made"].as_u64()? >= 1).then_some(d)
    })
    .await;
    let attempts = attempts_of(&api, "ws_a", d["id"].as_str().unwrap()).await;
    assert_eq!(attempts[0]["error_kind"], "response", "{}", attempts[0]);
}
