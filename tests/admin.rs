//! The admin HTTP API end to end: a real hookd serving it, a real Redis,
//! real receivers. Keys and scopes, endpoint CRUD and validation, rotation
//! with grace, pause/resume, recovery jobs, redeliver, pagination, and the
//! OpenAPI document against the routes actually served.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod harness;
mod postgres_harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::*;
use hookd_signature::Verifier;
use postgres_harness::Postgres;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

async fn setup(extra: &[(&str, &str)]) -> (Redis, Vec<(String, String)>, Daemon, Api) {
    let redis = Redis::start();
    let mut env = test_env(&redis);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let daemon = Daemon::ready(&env).await;
    let key = api_key(&env, "ws_a", "admin");
    let api = Api::new(&daemon.admin, &key);
    (redis, env, daemon, api)
}

fn code(r: &Reply) -> &str {
    r.body["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn unauthenticated_is_401_and_unauthorized_is_403() {
    let (_redis, env, _daemon, admin) = setup(&[]).await;
    let path = "/api/v1/workspaces/ws_a/endpoints";
    let body = json!({ "url": "http://127.0.0.1:9/x" });

    let anonymous = admin.with_key("");
    assert_eq!(anonymous.call("GET", path, None).await.status, 401);
    let malformed = admin.with_key("not-a-key");
    let r = malformed.call("GET", path, None).await;
    assert_eq!((r.status, code(&r)), (401, "unauthorized"));
    // The scheme it wants, as RFC 9110 asks of a 401.
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"hookd\""));
    let unknown = admin.with_key(&format!("hookd_live_{}", "ab".repeat(24)));
    assert_eq!(unknown.call("GET", path, None).await.status, 401);

    // A read key reads but cannot write.
    let reader = admin.with_key(&api_key(&env, "ws_a", "read"));
    assert_eq!(reader.call("GET", path, None).await.status, 200);
    let r = reader.call("POST", path, Some(body.clone())).await;
    assert_eq!((r.status, code(&r)), (403, "forbidden"));
    // Nor manage keys (admin scope).
    let r = reader
        .call("GET", "/api/v1/workspaces/ws_a/keys", None)
        .await;
    assert_eq!(r.status, 403);

    // A key of workspace B cannot reach workspace A, even by id.
    let other = admin.with_key(&api_key(&env, "ws_b", "admin"));
    assert_eq!(other.call("GET", path, None).await.status, 403);
    let created = admin.call("POST", path, Some(body.clone())).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let r = other.call("GET", &format!("{path}/{id}"), None).await;
    assert_eq!(r.status, 403);
    let r = other
        .call(
            "GET",
            &format!("/api/v1/workspaces/ws_b/endpoints/{id}"),
            None,
        )
        .await;
    assert_eq!(
        r.status, 404,
        "another workspace's endpoint reads as absent"
    );

    // Revoked: 401 from then on; still listed, as revoked.
    let doomed = api_key(&env, "ws_a", "write");
    let doomed_api = admin.with_key(&doomed);
    assert_eq!(doomed_api.call("GET", path, None).await.status, 200);
    let keys = admin
        .call("GET", "/api/v1/workspaces/ws_a/keys", None)
        .await;
    let listed = keys.body["data"].as_array().unwrap();
    assert!(
        listed.iter().all(|k| k.get("key").is_none()),
        "keys are never shown again"
    );
    let doomed_id = listed
        .iter()
        .find(|k| doomed.starts_with(k["prefix"].as_str().unwrap()) && k["scope"] == "write")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Workspace B's admin cannot revoke A's key through its own path either.
    let path_b = format!("/api/v1/workspaces/ws_b/keys/{doomed_id}");
    assert_eq!(other.call("DELETE", &path_b, None).await.status, 404);
    assert_eq!(doomed_api.call("GET", path, None).await.status, 200);
    let r = admin
        .call(
            "DELETE",
            &format!("/api/v1/workspaces/ws_a/keys/{doomed_id}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body["revoked_at"].is_string());
    let r = doomed_api.call("GET", path, None).await;
    assert_eq!((r.status, code(&r)), (401, "unauthorized"));
}

#[tokio::test]
async fn rate_limit_headers_and_429() {
    let (_redis, _env, _daemon, api) = setup(&[("HOOKD__ADMIN__RATE_LIMIT", "3")]).await;
    let path = "/api/v1/workspaces/ws_a/endpoints";
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = api.call("GET", path, None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
        assert!(r.header("x-ratelimit-reset").is_some());
        remaining.push(r.header("x-ratelimit-remaining").unwrap().to_string());
    }
    // A window boundary may fall between the requests; within one, the count goes down.
    let r = api.call("GET", path, None).await;
    if remaining == ["2", "1", "0"] {
        assert_eq!((r.status, code(&r)), (429, "rate_limited"));
        assert!(r.header("retry-after").is_some());
        assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    }
}

#[tokio::test]
async fn endpoint_crud_and_validation() {
    let (_redis, env, _daemon, api) = setup(&[("HOOKD__ADMIN__MAX_BODY_BYTES", "4096")]).await;
    let base = "/api/v1/workspaces/ws_a/endpoints";
    let r = api
        .call(
            "POST",
            base,
            Some(json!({
                "url": "https://example.com/hook",
                "description": "orders",
                "event_types": ["order.created"],
                "headers": { "X-Team": "billing" },
                "max_concurrency": 4,
                "rate_limit": 50,
                "metadata": { "owner": "ana" }
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert!(r.body["secret"].as_str().unwrap().starts_with("hks_"));
    let id = r.body["id"].as_str().unwrap().to_string();
    let one = format!("{base}/{id}");

    let got = api.call("GET", &one, None).await;
    assert_eq!(got.status, 200);
    assert!(got.body.get("secret").is_none(), "the secret is shown once");
    assert_eq!(got.body["event_types"], json!(["order.created"]));
    assert_eq!(got.body["rate_limit"], 50);
    assert_eq!(got.body["metadata"]["owner"], "ana");
    let list = api.call("GET", base, None).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);

    let r = api
        .call(
            "PATCH",
            &one,
            Some(json!({ "event_types": null, "description": "all orders", "rate_limit": null })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["event_types"],
        Value::Null,
        "null subscribes to every type"
    );
    assert_eq!(r.body["description"], "all orders");
    assert_eq!(r.body["rate_limit"], Value::Null);
    assert_eq!(r.body["max_concurrency"], 4, "absent fields stay");

    // 422 with issues: invalid url, unknown field, wrong types.
    for (body, path) in [
        (json!({ "url": "ftp://example.com" }), "/url"),
        (
            json!({ "url": "https://example.com", "colour": "red" }),
            "/colour",
        ),
        (json!({ "url": 42 }), "/url"),
        (
            json!({ "url": "https://example.com", "max_concurrency": "many" }),
            "/max_concurrency",
        ),
        (
            json!({ "url": "https://example.com", "event_types": ["Not A Type"] }),
            "/event_types/0",
        ),
    ] {
        let r = api.call("POST", base, Some(body.clone())).await;
        assert_eq!(
            (r.status, code(&r)),
            (422, "validation_failed"),
            "{body}: {:?}",
            r.body
        );
        let issues = r.body["issues"].as_array().unwrap();
        assert!(
            issues.iter().any(|i| i["path"] == path),
            "{body}: {:?}",
            r.body
        );
        assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
        // An issue's message does not name again the member its path names.
        for i in issues {
            let name = i["path"].as_str().unwrap().rsplit('/').next().unwrap();
            let message = i["message"].as_str().unwrap();
            assert!(!message.contains(&format!("`{name}`")), "{i}");
        }
    }
    let r = api
        .call("PATCH", &one, Some(json!({ "url": "nope" })))
        .await;
    assert_eq!(r.status, 422);
    let r = api
        .raw("POST", base, Some(b"{not json".to_vec()), &[])
        .await;
    assert_eq!((r.status, code(&r)), (400, "invalid_json"));
    // Trailing data after the object is not a body either.
    let r = api
        .raw(
            "POST",
            base,
            Some(br#"{"url":"https://example.com"} garbage"#.to_vec()),
            &[],
        )
        .await;
    assert_eq!((r.status, code(&r)), (400, "invalid_json"), "{:?}", r.body);
    // Every member of the wrong type, unknown or missing is its own issue.
    let r = api
        .call(
            "POST",
            base,
            Some(json!({ "max_concurrency": "many", "rate_limit": -1, "colour": "red", "headers": {"X-A": 5} })),
        )
        .await;
    assert_eq!((r.status, code(&r)), (422, "validation_failed"));
    let paths = issue_paths(&r);
    assert_eq!(
        paths,
        [
            "/colour",
            "/headers/X-A",
            "/max_concurrency",
            "/rate_limit",
            "/url"
        ],
        "{:?}",
        r.body
    );
    // Query parameters are /query/<name>, all of them.
    let r = api
        .call(
            "GET",
            &base.replace("/endpoints", "/deliveries?status=nope&limit=x&colour=1"),
            None,
        )
        .await;
    assert_eq!((r.status, code(&r)), (422, "validation_failed"));
    let paths = issue_paths(&r);
    assert_eq!(
        paths,
        ["/query/colour", "/query/limit", "/query/status"],
        "{:?}",
        r.body
    );
    let big = json!({ "url": "https://example.com", "description": "x".repeat(8000) });
    let r = api.call("POST", base, Some(big)).await;
    assert_eq!((r.status, code(&r)), (413, "payload_too_large"));
    let r = api.call("GET", "/api/v1/no/such/route", None).await;
    assert_eq!((r.status, code(&r)), (404, "route_not_found"));
    assert!(r.body["issues"].is_array());

    // The CLI changes the same record.
    let args = [
        "endpoints",
        "update",
        &id,
        "--rate-limit",
        "7",
        "--event-type",
        "order.paid",
    ];
    cli_json(&env, &args);
    let got = api.call("GET", &one, None).await;
    assert_eq!(got.body["rate_limit"], 7);
    assert_eq!(got.body["event_types"], json!(["order.paid"]));

    assert_eq!(api.call("DELETE", &one, None).await.status, 204);
    let r = api.call("GET", &one, None).await;
    assert_eq!((r.status, code(&r)), (404, "not_found"));
}

/// Publishes through the API; returns the event id.
async fn publish(api: &Api, ws: &str, event_type: &str) -> String {
    let r = api
        .call(
            "POST",
            &format!("/api/v1/workspaces/{ws}/events"),
            Some(json!({ "type": event_type, "data": { "n": 1 } })),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    r.body["event_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_during_grace_only() {
    let (_redis, _env, _daemon, api) = setup(&[]).await;
    let receiver = Receiver::ok().await;
    let base = "/api/v1/workspaces/ws_a/endpoints";
    let r = api.create_endpoint("ws_a", &receiver.url()).await;
    let (id, old) = (
        r.body["id"].as_str().unwrap().to_string(),
        r.body["secret"].as_str().unwrap().to_string(),
    );
    let r = api
        .call(
            "POST",
            &format!("{base}/{id}/secret/rotate"),
            Some(json!({ "grace_seconds": 3 })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let new = r.body["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);

    publish(&api, "ws_a", "card.created").await;
    let during = receiver.wait_for(1, WAIT).await.remove(0);
    let header = during.header("X-Hookd-Signature").unwrap();
    assert_eq!(header.matches("sha256=").count(), 2, "{header}");
    let timestamp = during.header("X-Hookd-Timestamp").unwrap().parse().unwrap();
    assert!(
        header.starts_with(&hookd_signature::sign(
            new.as_bytes(),
            timestamp,
            &during.body
        )),
        "newest first: {header}"
    );
    let verify = |secret: &str, r: &Received| Verifier::new(secret).verify(&r.headers, &r.body);
    assert!(
        verify(&old, &during).is_ok(),
        "a receiver holding only the old secret verifies"
    );
    assert!(
        verify(&new, &during).is_ok(),
        "a receiver holding only the new secret verifies"
    );

    // After the grace window (3 s of wall time) only the new secret signs.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    publish(&api, "ws_a", "card.created").await;
    let after = receiver.wait_for(2, WAIT).await.remove(1);
    assert_eq!(
        after
            .header("X-Hookd-Signature")
            .unwrap()
            .matches("sha256=")
            .count(),
        1
    );
    assert!(verify(&new, &after).is_ok());
    assert!(
        verify(&old, &after).is_err(),
        "the old secret no longer verifies"
    );
}

#[tokio::test]
async fn pause_holds_and_resume_releases() {
    let (_redis, _env, _daemon, api) = setup(&[]).await;
    let receiver = Receiver::ok().await;
    let base = "/api/v1/workspaces/ws_a/endpoints";
    let r = api.create_endpoint("ws_a", &receiver.url()).await;
    let one = format!("{base}/{}", r.body["id"].as_str().unwrap());
    let r = api
        .call(
            "POST",
            &format!("{one}/pause"),
            Some(json!({ "reason": "maintenance" })),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.body["paused"].clone(), r.body["paused_reason"].clone()),
        (json!(true), json!("maintenance"))
    );
    assert!(r.body["paused_at"].is_string());

    for _ in 0..5 {
        publish(&api, "ws_a", "card.created").await;
    }
    eventually(WAIT, "5 held deliveries", || async {
        (api.call("GET", &one, None).await.body["held"] == 5).then_some(())
    })
    .await;
    let held = api
        .call(
            "GET",
            "/api/v1/workspaces/ws_a/deliveries?status=held",
            None,
        )
        .await;
    assert_eq!(held.body["data"].as_array().unwrap().len(), 5);
    assert_eq!(receiver.count(), 0, "nothing goes out while paused");
    // /metrics counts the paused endpoint and its held deliveries (read on an interval).
    eventually(
        WAIT,
        "/metrics shows the paused endpoint and 5 held",
        || async {
            let metrics = api.call("GET", "/metrics", None).await;
            let text = metrics.body.as_str()?.to_string();
            ["hookd_paused_endpoints 1", "hookd_held_deliveries 5"]
                .iter()
                .all(|line| text.lines().any(|l| l == *line))
                .then_some(())
        },
    )
    .await;

    let r = api.call("POST", &format!("{one}/resume"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["released"], 5);
    assert_eq!(r.body["endpoint"]["paused"], false);
    receiver.wait_for(5, WAIT).await;
}

#[tokio::test]
async fn recover_resends_exactly_the_failed_deliveries_in_the_window() {
    recover_and_redeliver(None).await;
}

/// The same with history shipped to PostgreSQL, and Redis made to forget
/// it (payloads included) before the recovery: every answer, the recovery
/// job and the redelivery come from PostgreSQL.
#[tokio::test(flavor = "multi_thread")]
async fn recover_resends_exactly_the_failed_deliveries_from_postgresql() {
    recover_and_redeliver(Some(Postgres::start())).await;
}

async fn recover_and_redeliver(pg: Option<Postgres>) {
    let mut extra = vec![("HOOKD__RETRY__MAX_ATTEMPTS", "2".to_string())];
    if let Some(pg) = &pg {
        extra.push(("HOOKD__HISTORY__POSTGRES_URL", pg.url()));
        extra.push(("HOOKD__HISTORY__MIGRATE", "true".into()));
    }
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (redis, env, _daemon, api) = setup(&extra).await;
    // The first 6 requests fail (3 events x 2 attempts), then everything succeeds.
    let receiver = Receiver::sequence(&[500; 6]).await;
    let r = api.create_endpoint("ws_a", &receiver.url()).await;
    let ep = r.body["id"].as_str().unwrap().to_string();
    let deliveries = |status: &'static str| {
        let api = api.clone();
        async move {
            api.call(
                "GET",
                &format!("/api/v1/workspaces/ws_a/deliveries?status={status}"),
                None,
            )
            .await
            .body["data"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    for _ in 0..3 {
        publish(&api, "ws_a", "card.created").await;
    }
    eventually(WAIT, "3 failed deliveries", || async {
        (deliveries("failed").await.len() == 3).then_some(())
    })
    .await;
    for _ in 0..2 {
        publish(&api, "ws_a", "card.created").await;
    }
    eventually(WAIT, "2 succeeded deliveries", || async {
        (deliveries("succeeded").await.len() == 2).then_some(())
    })
    .await;
    assert_eq!(receiver.count(), 8);
    if let Some(pg) = &pg {
        let shipped =
            "SELECT count(*) FROM hookd_deliveries WHERE status IN ('failed', 'succeeded')";
        eventually(
            WAIT,
            "5 settled deliveries and their payloads shipped",
            || async {
                (pg.count(shipped).await == 5
                    && pg.count("SELECT count(*) FROM hookd_envelopes").await == 5)
                    .then_some(())
            },
        )
        .await;
        redis.forget_history_and_payloads().await;
        assert_eq!(
            deliveries("failed").await.len(),
            3,
            "listed from PostgreSQL"
        );
    }

    let job = start_recovery(&api, &ep).await;
    let done = eventually(WAIT, "the recovery job completes", || async {
        let j = api.call("GET", &job, None).await.body;
        (j["state"] == "completed").then_some(j)
    })
    .await;
    assert_eq!(
        (
            done["matched"].clone(),
            done["queued"].clone(),
            done["done"].clone(),
            done["succeeded"].clone()
        ),
        (json!(3), json!(3), json!(3), json!(3)),
        "{done}"
    );
    assert_eq!(
        receiver.count(),
        11,
        "exactly the 3 failed deliveries went again"
    );
    // (From PostgreSQL: once the new attempts are shipped, in milliseconds.)
    eventually(WAIT, "5 succeeded deliveries", || async {
        (deliveries("succeeded").await.len() == 5).then_some(())
    })
    .await;
    let failed_again: Vec<Value> = deliveries("failed").await;
    assert!(failed_again.is_empty());

    // Redeliver one: a manual attempt in the same delivery's history.
    let d = deliveries("succeeded").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let one = format!("/api/v1/workspaces/ws_a/deliveries/{d}");
    let r = api.call("POST", &format!("{one}/redeliver"), None).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    receiver.wait_for(12, WAIT).await;
    let history = eventually(WAIT, "the manual attempt is recorded", || async {
        let v = api.call("GET", &one, None).await.body;
        let attempts = v["attempts"].as_array().cloned().unwrap_or_default();
        (attempts.last().is_some_and(|a| a["trigger"] == "manual") && v["status"] == "succeeded")
            .then_some(attempts)
    })
    .await;
    assert!(history.len() >= 2);

    // The CLI starts the same kind of job and waits for it.
    let out = cli_json(&env, &["recover", "--endpoint", &ep, "--since", "1h"]);
    assert_eq!(
        (out["matched"].clone(), out["state"].clone()),
        (json!(0), json!("completed")),
        "{out}"
    );
    let shown = cli_json(&env, &["jobs", "show", out["id"].as_str().unwrap()]);
    assert_eq!(shown, out);
    // The CLI's job is the API's, and both list it.
    let api_job = api
        .call(
            "GET",
            &format!(
                "/api/v1/workspaces/ws_a/jobs/{}",
                out["id"].as_str().unwrap()
            ),
            None,
        )
        .await
        .body;
    assert_eq!(shown, api_job);
    let listed = cli_json(&env, &["jobs", "list", "--workspace", "ws_a"]);
    assert_eq!(
        listed,
        api.call("GET", "/api/v1/workspaces/ws_a/jobs", None)
            .await
            .body
    );
    assert_eq!(listed["data"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed["data"][0]["id"], out["id"], "newest first");
    // Progress into a file or pipe: the job id first, plain lines, no `\r`.
    let plain = hookd_command(&env)
        .args(["recover", "--endpoint", &ep, "--since", "1h"])
        .output()
        .unwrap();
    assert!(plain.status.success());
    let stderr = String::from_utf8_lossy(&plain.stderr);
    let first = stderr
        .lines()
        .find(|l| !l.starts_with("hookd: no configuration"));
    assert!(
        first.is_some_and(|l| l.starts_with("recovery job job_")),
        "{stderr}"
    );
    assert!(!stderr.contains('\r'), "{stderr:?}");
    assert!(stderr.contains("/s, ETA"), "{stderr}");
    // (Types seen are counted within half a second of being settled.)
    let types = eventually(WAIT, "the type seen 5 times", || async {
        let types = cli_json(&env, &["event-types", "--workspace", "ws_a"]);
        (types["data"][0]["count"] == 5).then_some(types)
    })
    .await;
    assert_eq!(types["data"][0]["name"], "card.created");
}

/// Starts a recovery job over the last hour of `ep` (of ws_a); returns the job's path.
async fn start_recovery(api: &Api, ep: &str) -> String {
    let since = hookd_core_time_minus(Duration::from_secs(3600));
    let r = api
        .call(
            "POST",
            &format!("/api/v1/workspaces/ws_a/endpoints/{ep}/recover"),
            Some(json!({ "since": since })),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    format!(
        "/api/v1/workspaces/ws_a/jobs/{}",
        r.body["id"].as_str().unwrap()
    )
}

/// RFC 3339 of now minus `d` (via `date`, to avoid a date crate in tests).
fn hookd_core_time_minus(d: Duration) -> String {
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("{} seconds ago", d.as_secs()),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn pagination_walks_1200_deliveries_without_gap_or_repeat() {
    let (redis, _env, _daemon, api) = setup(&[]).await;
    let base = "/api/v1/workspaces/ws_a/endpoints";
    let r = api
        .call(
            "POST",
            base,
            Some(json!({ "url": "http://127.0.0.1:9/never" })),
        )
        .await;
    let one = format!("{base}/{}", r.body["id"].as_str().unwrap());
    api.call("POST", &format!("{one}/pause"), None).await;
    let events = (0..1200).map(|i| (format!("e{i}"), "{}".to_string()));
    redis.xadd_events("ws_a", "card.created", events).await;
    eventually(WAIT, "1200 held deliveries", || async {
        (api.call("GET", &one, None).await.body["held"] == 1200).then_some(())
    })
    .await;

    for page_size in [500, 7] {
        let seen: Vec<(String, String)> = walk_deliveries(&api, "ws_a", page_size)
            .await
            .iter()
            .map(|d| {
                (
                    d["created_at"].as_str().unwrap().to_string(),
                    d["id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let unique: BTreeSet<_> = seen.iter().map(|(_, id)| id.clone()).collect();
        assert_eq!(seen.len(), 1200, "page size {page_size}: no repeat, no gap");
        assert_eq!(unique.len(), 1200);
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(seen, sorted, "newest first, across pages");
    }
    let r = api
        .call("GET", "/api/v1/workspaces/ws_a/deliveries?limit=501", None)
        .await;
    assert_eq!(r.status, 422);
}

/// Every route the issue asks for, as (method, path).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/event-types"),
    ("put", "/api/v1/event-types/{name}"),
    ("get", "/api/v1/workspaces/{ws}/event-types"),
    ("post", "/api/v1/workspaces/{ws}/endpoints"),
    ("get", "/api/v1/workspaces/{ws}/endpoints"),
    ("get", "/api/v1/workspaces/{ws}/endpoints/{id}"),
    ("patch", "/api/v1/workspaces/{ws}/endpoints/{id}"),
    ("delete", "/api/v1/workspaces/{ws}/endpoints/{id}"),
    ("post", "/api/v1/workspaces/{ws}/endpoints/{id}/pause"),
    ("post", "/api/v1/workspaces/{ws}/endpoints/{id}/resume"),
    (
        "post",
        "/api/v1/workspaces/{ws}/endpoints/{id}/secret/rotate",
    ),
    ("post", "/api/v1/workspaces/{ws}/endpoints/{id}/recover"),
    ("post", "/api/v1/workspaces/{ws}/endpoints/{id}/test"),
    ("get", "/api/v1/workspaces/{ws}/endpoints/{id}/activity"),
    ("get", "/api/v1/workspaces/{ws}/deliveries"),
    ("get", "/api/v1/workspaces/{ws}/deliveries/{id}"),
    ("post", "/api/v1/workspaces/{ws}/deliveries/{id}/redeliver"),
    ("post", "/api/v1/workspaces/{ws}/deliveries/{id}/skip"),
    ("get", "/api/v1/workspaces/{ws}/deliveries/{id}/request"),
    ("get", "/api/v1/workspaces"),
    ("get", "/api/v1/workspaces/{ws}/jobs"),
    ("get", "/api/v1/workspaces/{ws}/jobs/{id}"),
    ("get", "/api/v1/workspaces/{ws}/audit"),
    ("post", "/api/v1/workspaces/{ws}/events"),
    ("post", "/api/v1/workspaces/{ws}/keys"),
    ("get", "/api/v1/workspaces/{ws}/keys"),
    ("delete", "/api/v1/workspaces/{ws}/keys/{id}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

#[tokio::test]
async fn openapi_documents_exactly_the_routes_served() {
    let (_redis, _env, _daemon, api) = setup(&[]).await;
    let doc = api.call("GET", "/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    let doc = doc.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "patch", "delete"] {
            if let Some(op) = item.get(method) {
                documented.insert((method.to_string(), path.clone()));
                assert!(
                    op["responses"].is_object(),
                    "{method} {path} documents its responses"
                );
            }
        }
    }
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, expected,
        "the document names exactly the routes hookd serves"
    );

    // And the router serves every documented route: none answers as an unknown
    // route or a wrong method.
    for (method, path) in &documented {
        let concrete = path
            .replace("{ws}", "ws_a")
            .replace("{id}", "x1")
            .replace("{name}", "card.created");
        let body = matches!(method.as_str(), "post" | "put" | "patch").then(|| json!({}));
        let r = api.call(&method.to_uppercase(), &concrete, body).await;
        assert!(
            !matches!(code(&r), "route_not_found" | "method_not_allowed") && r.status != 405,
            "{method} {path} is documented but not served: {} {:?}",
            r.status,
            r.body
        );
    }
    // The pages, with or without a trailing slash, and the icon.
    for page in [
        "/docs",
        "/docs/",
        "/swagger",
        "/swagger/",
        "/console",
        "/console/",
    ] {
        let r = api.call("GET", page, None).await;
        assert_eq!(r.status, 200, "{page}");
    }
    let icon = api.call("GET", "/favicon.ico", None).await;
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));
    let metrics = api.call("GET", "/metrics", None).await;
    let text = metrics.body.as_str().unwrap().to_string();
    for name in [
        "hookd_events_ingested_total",
        "hookd_stream_lag",
        "hookd_due_deliveries",
        "hookd_held_deliveries",
        "hookd_paused_endpoints",
    ] {
        assert!(text.contains(name), "/metrics has {name}");
    }
}

#[tokio::test]
async fn internal_addresses_are_refused_unless_allowed() {
    // No network allowed: loopback is internal, so the receiver is out of reach.
    let (_redis, env, _daemon, api) = setup(&[("HOOKD__DELIVERY__ALLOW_NETWORKS", "")]).await;
    let receiver = Receiver::ok().await;
    let base = "/api/v1/workspaces/ws_a/endpoints";
    for url in [
        receiver.url(),
        "http://169.254.169.254/latest/meta-data".to_string(),
        "http://[::1]:9/x".to_string(),
        "http://2130706433/x".to_string(),
    ] {
        let r = api.call("POST", base, Some(json!({ "url": url }))).await;
        assert_eq!(r.status, 422, "{url}: {:?}", r.body);
        assert_eq!(r.body["issues"][0]["path"], "/url");
    }
    // A name that resolves to loopback passes registration, and is refused by the resolver.
    let url = format!("http://localhost:{}/hook", receiver.port);
    let r = api.call("POST", base, Some(json!({ "url": url }))).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    publish(&api, "ws_a", "card.created").await;
    let attempt = eventually(WAIT, "a blocked attempt", || async {
        let page = api
            .call("GET", "/api/v1/workspaces/ws_a/deliveries", None)
            .await;
        let id = page.body["data"][0]["id"].as_str()?.to_string();
        let d = api
            .call(
                "GET",
                &format!("/api/v1/workspaces/ws_a/deliveries/{id}"),
                None,
            )
            .await;
        d.body["attempts"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(attempt["error_kind"], "blocked", "{attempt}");
    assert!(
        attempt["error"].as_str().unwrap().contains("internal"),
        "{attempt}"
    );
    assert_eq!(receiver.count(), 0, "nothing reached the internal address");
    // The CLI refuses literal internal IPs the same way.
    let out = hookd_command(&env)
        .args([
            "endpoints",
            "create",
            "--workspace",
            "ws_a",
            "--url",
            "http://10.0.0.1/x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("internal address"));
}

#[tokio::test]
async fn the_circuit_breaker_pauses_an_endpoint_that_keeps_failing() {
    let (redis, _env, _daemon, api) = setup(&[
        ("HOOKD__DELIVERY__BREAKER_FAILURES", "3"),
        ("HOOKD__DELIVERY__BREAKER_WINDOW", "0s"),
    ])
    .await;
    let receiver = Receiver::with_plan(std::sync::Arc::new(|_| (500, vec![]))).await;
    let base = "/api/v1/workspaces/ws_a/endpoints";
    let r = api.create_endpoint("ws_a", &receiver.url()).await;
    let one = format!("{base}/{}", r.body["id"].as_str().unwrap());
    publish(&api, "ws_a", "card.created").await;
    let ep = eventually(WAIT, "the breaker pauses the endpoint", || async {
        let ep = api.call("GET", &one, None).await.body;
        (ep["paused"] == true).then_some(ep)
    })
    .await;
    let reason = ep["paused_reason"].as_str().unwrap();
    assert!(
        reason.contains("circuit breaker") && reason.contains("500"),
        "{reason}"
    );
    assert_eq!(receiver.count(), 3, "no attempt after the breaker tripped");
    // Nothing is dropped: the delivery waits, held, for resume.
    eventually(WAIT, "the delivery is held", || async {
        (api.call("GET", &one, None).await.body["held"] == 1).then_some(())
    })
    .await;
    let mut conn = redis.conn().await;
    let events: redis::Value = redis::cmd("XRANGE")
        .arg("hookd:operational")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let text = format!("{events:?}");
    assert!(
        text.contains("endpoint.paused") && text.contains("circuit_breaker"),
        "{text}"
    );
    let metrics = api.call("GET", "/metrics", None).await;
    assert!(
        metrics
            .body
            .as_str()
            .unwrap()
            .contains("hookd_circuit_breaker_trips_total 1")
    );
}

#[tokio::test]
async fn endpoint_secrets_are_sealed_at_rest_and_the_key_rotates() {
    let (redis, env, _daemon, api) = setup(&[]).await;
    let receiver = Receiver::ok().await;
    let r = api
        .call(
            "POST",
            "/api/v1/workspaces/ws_a/endpoints",
            Some(json!({ "url": receiver.url() })),
        )
        .await;
    let (id, secret) = (
        r.body["id"].as_str().unwrap().to_string(),
        r.body["secret"].as_str().unwrap().to_string(),
    );
    let mut conn = redis.conn().await;
    let stored = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        let key = format!("{{hookd:events}}:ep:{id}");
        async move {
            redis::cmd("HGET")
                .arg(key)
                .arg("doc")
                .query_async::<String>(&mut conn)
                .await
                .unwrap()
        }
    };
    let doc = stored(&mut conn).await;
    assert!(
        !doc.contains(&secret[4..]),
        "the secret is not in Redis in clear: {doc}"
    );
    assert!(doc.contains("enc:t1:"), "{doc}");

    // Deliveries are signed with the real secret.
    publish(&api, "ws_a", "card.created").await;
    let got = receiver.wait_for(1, WAIT).await;
    assert!(
        Verifier::new(&secret)
            .verify(&got[0].headers, &got[0].body)
            .is_ok()
    );

    // Rotate the sealing key: add t2, make it current, re-encrypt.
    let t2 = "t2:HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";
    let with = |keys: &str, current: &str| {
        let mut e = env.clone();
        e.push(("HOOKD__SECRETS__KEYS".into(), keys.into()));
        e.push(("HOOKD__SECRETS__CURRENT".into(), current.into()));
        e
    };
    let both = with(&format!("{TEST_SEALING_KEY},{t2}"), "t2");
    let out = cli_json(&both, &["secrets", "reencrypt"]);
    assert_eq!(
        (out["endpoints"].clone(), out["resealed"].clone()),
        (json!(1), json!(1)),
        "{out}"
    );
    assert!(stored(&mut conn).await.contains("enc:t2:"));
    let again = cli_json(&both, &["secrets", "reencrypt"]);
    assert_eq!(again["resealed"], 0, "already under the current key");

    // Now t2 alone opens it, and t1 alone no longer does.
    let shown = cli_json(&with(t2, "t2"), &["endpoints", "secret", &id]);
    assert_eq!(shown["secret"], secret.as_str());
    let old_only = hookd_command(&with(TEST_SEALING_KEY, "t1"))
        .args(["endpoints", "secret", &id])
        .output()
        .unwrap();
    assert!(!old_only.status.success());
    assert!(String::from_utf8_lossy(&old_only.stderr).contains("t2"));
    // Showing it needs no secret, so no key either.
    cli_json(&with(TEST_SEALING_KEY, "t1"), &["endpoints", "show", &id]);
}

/// The paths of a 422's issues, sorted.
fn issue_paths(r: &Reply) -> Vec<&str> {
    let mut paths: Vec<&str> = r.body["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    paths.sort();
    paths
}

#[tokio::test]
async fn an_endpoint_rate_limit_spreads_attempts_over_seconds() {
    let (_redis, _env, _daemon, api) = setup(&[]).await;
    let receiver = Receiver::ok().await;
    let r = api
        .call(
            "POST",
            "/api/v1/workspaces/ws_a/endpoints",
            Some(json!({ "url": receiver.url(), "rate_limit": 4 })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    for _ in 0..12 {
        publish(&api, "ws_a", "card.created").await;
    }
    let got = receiver.wait_for(12, WAIT).await;
    // 12 attempts at 4 a second take at least three one-second windows.
    let span = got.last().unwrap().at - got.first().unwrap().at;
    assert!(span >= Duration::from_secs(1), "12 attempts in {span:?}");
    let mut per_second = std::collections::BTreeMap::new();
    for r in &got {
        let s = r
            .wall
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        *per_second.entry(s).or_insert(0) += 1;
    }
    // One of slack: an attempt claimed at the end of a second can arrive in the next.
    assert!(per_second.values().all(|n| *n <= 5), "{per_second:?}");
    assert!(per_second.len() >= 3, "{per_second:?}");
}

/// A recovery job whose scan meets an error ends `failed` with the reason,
/// never left `scanning` (here the endpoint's history log holds another
/// type, as a damaged or hand-edited Redis would).
#[tokio::test(flavor = "multi_thread")]
async fn a_recovery_job_that_meets_an_error_ends_failed_with_the_reason() {
    let (redis, _env, _daemon, api) = setup(&[]).await;
    let receiver = Receiver::ok().await;
    let r = api.create_endpoint("ws_a", &receiver.url()).await;
    let ep = r.body["id"].as_str().unwrap().to_string();
    let _: () = redis::cmd("SET")
        .arg(format!("{{hookd:events}}:ep:{ep}:log"))
        .arg("not a sorted set")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let job = start_recovery(&api, &ep).await;
    let failed = eventually(WAIT, "the recovery job ends failed", || async {
        let j = api.call("GET", &job, None).await.body;
        (j["state"] == "failed").then_some(j)
    })
    .await;
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
}

/// What a delivery sent, as the API shows it: the endpoint's own headers
/// (their values only to keys that may write the endpoint), the
/// `User-Agent` and content type the receiver got, and hookd's headers.
#[tokio::test]
async fn a_delivery_s_request_shows_every_header_it_sent() {
    let (redis, env, _daemon, api) = setup(&[]).await;
    let receiver = Receiver::ok().await;
    let r = api
        .call(
            "POST",
            "/api/v1/workspaces/ws_a/endpoints",
            Some(json!({ "url": receiver.url(), "headers": { "X-Team": "t-123" } })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    redis
        .xadd(&[("type", "a.b"), ("workspace", "ws_a"), ("data", "{}")])
        .await;
    let got = receiver.wait_for(1, WAIT).await.remove(0);
    let id = got.header("X-Hookd-Delivery-Id").unwrap().to_string();
    let path = format!("/api/v1/workspaces/ws_a/deliveries/{id}/request");
    let sent = eventually(WAIT, "the attempt recorded", || async {
        let r = api.call("GET", &path, None).await;
        (r.body["attempt"] == 1).then_some(r.body)
    })
    .await;
    let value = |body: &Value, name: &str| {
        body["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .map(|h| h["value"].clone())
    };
    assert_eq!(value(&sent, "X-Team"), Some(json!("t-123")), "{sent}");
    for name in ["User-Agent", "Content-Type", "X-Team"] {
        assert_eq!(
            value(&sent, name).as_ref().and_then(Value::as_str),
            got.header(name),
            "{name}: what the API shows is what the receiver got"
        );
    }
    let reader = api.with_key(&api_key(&env, "ws_a", "read"));
    let masked = reader.call("GET", &path, None).await.body;
    assert_eq!(value(&masked, "X-Team"), Some(json!("***")), "{masked}");
}

/// `since`, `until` and `before` read the same forms in the API and the CLI
/// (RFC 3339, Unix seconds, a duration ago); milliseconds given for seconds,
/// or a zero, are refused with the range instead of matching everything.
#[tokio::test]
async fn times_read_the_same_everywhere_and_mistakes_are_refused() {
    let (_redis, env, _daemon, api) = setup(&[]).await;
    let list = |q: &str| format!("/api/v1/workspaces/ws_a/deliveries?{q}");
    for q in [
        "since=2h",
        "until=1763826733",
        "since=2025-11-22T15:52:13Z",
        "before=30m",
    ] {
        let r = api.call("GET", &list(q), None).await;
        assert_eq!(r.status, 200, "{q}: {:?}", r.body);
    }
    for q in ["since=0", "until=1763826733000", "before=0"] {
        let r = api.call("GET", &list(q), None).await;
        assert_eq!(r.status, 422, "{q}: {:?}", r.body);
        let message = r.body["issues"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("between 2000-01-01"), "{q}: {message}");
    }
    let seconds = cli_json(
        &env,
        &[
            "deliveries",
            "list",
            "--workspace",
            "ws_a",
            "--since",
            "1763826733",
        ],
    );
    assert!(seconds["data"].is_array(), "{seconds}");
    let out = hookd_command(&env)
        .args(["deliveries", "list", "--since", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--since") && err.contains("between 2000-01-01"),
        "{err}"
    );
}

/// A test event is signed and sent now as a delivery is, answers what was
/// sent and what came back, and leaves no delivery behind.
#[tokio::test]
async fn a_test_event_is_signed_sent_now_and_kept_nowhere_but_the_audit_log() {
    let (_redis, env, _daemon, api) = setup(&[]).await;
    let receiver = Receiver::ok().await;
    let r = api
        .call(
            "POST",
            "/api/v1/workspaces/ws_a/endpoints",
            Some(json!({ "url": receiver.url(), "headers": { "X-Team": "t-123" }, "event_types": ["x.y"] })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let (ep, secret) = (
        r.body["id"].as_str().unwrap().to_string(),
        r.body["secret"].as_str().unwrap().to_string(),
    );
    let test = format!("/api/v1/workspaces/ws_a/endpoints/{ep}/test");
    // A type the endpoint does not subscribe to is sent all the same.
    let r = api
        .call(
            "POST",
            &test,
            Some(json!({ "event_type": "card.created", "data": { "n": 7 } })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let got = receiver.wait_for(1, WAIT).await.remove(0);
    assert!(
        Verifier::new(&secret)
            .verify(&got.headers, &got.body)
            .is_ok()
    );
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(
        body, r.body["request"]["body"],
        "the body shown is the body sent"
    );
    assert_eq!(body["data"], json!({ "n": 7 }));
    assert_eq!(body["type"], "card.created");
    assert_eq!(r.body["succeeded"], true);
    assert_eq!(r.body["response"]["status_code"], 200);
    let sent = |name: &str| {
        r.body["request"]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .map(|h| h["value"].as_str().unwrap().to_string())
    };
    for name in [
        "x-hookd-signature",
        "x-hookd-timestamp",
        "x-team",
        "user-agent",
    ] {
        assert_eq!(sent(name).as_deref(), got.header(name), "{name} as sent");
    }
    let answered: Vec<&str> = r.body["response"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert!(answered.contains(&"content-length"), "{answered:?}");
    // Nothing queued or kept as a delivery; the audit log has it.
    let list = api
        .call(
            "GET",
            &format!("/api/v1/workspaces/ws_a/deliveries?endpoint_id={ep}"),
            None,
        )
        .await;
    assert_eq!(list.body["data"], json!([]), "{:?}", list.body);
    let audit = api.call("GET", "/api/v1/workspaces/ws_a/audit", None).await;
    assert!(
        audit.body.to_string().contains("endpoint.tested"),
        "{:?}",
        audit.body
    );
    // Refusals: a bad type (at the request's member), a read key, no answer.
    let r = api
        .call("POST", &test, Some(json!({ "event_type": "Not A Type" })))
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(issue_paths(&r), ["/event_type"]);
    let reader = api.with_key(&api_key(&env, "ws_a", "read"));
    let r = reader
        .call("POST", &test, Some(json!({ "event_type": "a.b" })))
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let nobody = api
        .create_endpoint("ws_a", &format!("http://{closed}/"))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let test = format!("/api/v1/workspaces/ws_a/endpoints/{nobody}/test");
    let r = api
        .call("POST", &test, Some(json!({ "event_type": "a.b" })))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["succeeded"], false);
    assert_eq!(r.body["response"], Value::Null);
    assert_eq!(r.body["error_kind"], "connect", "{:?}", r.body);
}

/// An endpoint's activity counts its attempts by outcome with their
/// latency, and a delivery list says how each delivery's last attempt ended.
#[tokio::test]
async fn activity_and_lists_show_how_attempts_ended() {
    let (redis, _env, _daemon, api) = setup(&[("HOOKD__RETRY__MAX_ATTEMPTS", "1")]).await;
    let receiver = Receiver::with_plan(std::sync::Arc::new(|n| match n {
        0 => (
            503,
            vec![
                ("Retry-After".into(), "120".into()),
                ("X-Request-Id".into(), "req-7".into()),
            ],
        ),
        _ => (200, vec![]),
    }))
    .await;
    let ep = api.create_endpoint("ws_a", &receiver.url()).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..2 {
        redis
            .xadd(&[("type", "a.b"), ("workspace", "ws_a"), ("data", "{}")])
            .await;
    }
    receiver.wait_for(2, WAIT).await;
    let list = format!("/api/v1/workspaces/ws_a/deliveries?endpoint_id={ep}");
    let page = eventually(WAIT, "both settled", || async {
        let r = api.call("GET", &list, None).await;
        let data = r.body["data"].as_array().unwrap().clone();
        (data.len() == 2 && data.iter().all(|d| d["status"] != "pending")).then_some(data)
    })
    .await;
    let mut ended: Vec<(Value, Value)> = page
        .iter()
        .map(|d| (d["last_status_code"].clone(), d["last_error_kind"].clone()))
        .collect();
    ended.sort_by_key(|e| e.0.to_string());
    assert_eq!(
        ended,
        [(json!(200), Value::Null), (json!(503), json!("status"))]
    );
    // A failed attempt keeps the response's headers (a success does not).
    for d in &page {
        let one = api
            .call(
                "GET",
                &format!(
                    "/api/v1/workspaces/ws_a/deliveries/{}",
                    d["id"].as_str().unwrap()
                ),
                None,
            )
            .await
            .body;
        let headers: Vec<(String, String)> = one["attempts"][0]["response_headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["name"].as_str().unwrap().into(),
                    h["value"].as_str().unwrap().into(),
                )
            })
            .collect();
        if d["last_status_code"] == 503 {
            assert!(
                headers.contains(&("retry-after".into(), "120".into())),
                "{one}"
            );
            assert!(
                headers.contains(&("x-request-id".into(), "req-7".into())),
                "{one}"
            );
        } else {
            assert!(headers.is_empty(), "{one}");
        }
    }
    let activity = format!("/api/v1/workspaces/ws_a/endpoints/{ep}/activity");
    for window in ["", "?window=1h", "?window=1d"] {
        let r = api.call("GET", &format!("{activity}{window}"), None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let total = &r.body["total"];
        assert_eq!(
            (
                &total["succeeded"],
                &total["failed_status"],
                &total["failed_other"]
            ),
            (&json!(1), &json!(1), &json!(0)),
            "{window}: {total}"
        );
        assert!(total["p99_ms"].is_u64(), "{total}");
        let n = r.body["intervals"].as_array().unwrap().len();
        assert_eq!(n, if window.contains("1d") { 96 } else { 60 });
    }
    let r = api
        .call("GET", &format!("{activity}?window=2h"), None)
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(issue_paths(&r), ["/query/window"]);
}

/// A recovery job of selected deliveries re-sends those and no others, and
/// refuses ids that are not the endpoint's deliveries.
#[tokio::test]
async fn a_recovery_job_of_selected_deliveries_re_sends_only_those() {
    let (redis, _env, _daemon, api) = setup(&[("HOOKD__RETRY__MAX_ATTEMPTS", "1")]).await;
    let receiver = Receiver::sequence(&[500, 500, 500]).await;
    let ep = api.create_endpoint("ws_a", &receiver.url()).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..3 {
        redis
            .xadd(&[("type", "a.b"), ("workspace", "ws_a"), ("data", "{}")])
            .await;
    }
    receiver.wait_for(3, WAIT).await;
    let failed = format!("/api/v1/workspaces/ws_a/deliveries?endpoint_id={ep}&status=failed");
    let ids: Vec<String> = eventually(WAIT, "three failed", || async {
        let data = api.call("GET", &failed, None).await.body["data"].clone();
        let ids: Vec<String> = data
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect();
        (ids.len() == 3).then_some(ids)
    })
    .await;
    let recover = format!("/api/v1/workspaces/ws_a/endpoints/{ep}/recover");
    let r = api
        .call("POST", &recover, Some(json!({ "delivery_ids": [ids[1]] })))
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let job = format!(
        "/api/v1/workspaces/ws_a/jobs/{}",
        r.body["id"].as_str().unwrap()
    );
    let done = eventually(WAIT, "the job completed", || async {
        let j = api.call("GET", &job, None).await.body;
        (j["state"] == "completed").then_some(j)
    })
    .await;
    assert_eq!(
        (&done["matched"], &done["succeeded"]),
        (&json!(1), &json!(1)),
        "{done}"
    );
    assert_eq!(receiver.count(), 4, "only the selected one was sent again");
    let still: Vec<Value> = api.call("GET", &failed, None).await.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(still, [json!(ids[0]), json!(ids[2])]);
    // Another endpoint's delivery, a made-up id, and neither window nor ids.
    let other = api.create_endpoint("ws_a", &receiver.url()).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api
        .call(
            "POST",
            &format!("/api/v1/workspaces/ws_a/endpoints/{other}/recover"),
            Some(json!({ "delivery_ids": [ids[0], "dlv_nope"] })),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(issue_paths(&r), ["/delivery_ids/0", "/delivery_ids/1"]);
    let r = api.call("POST", &recover, Some(json!({}))).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(issue_paths(&r), ["/since"]);
}
