//! Observability end to end: spans exported over OTLP/HTTP to a real
//! receiver on loopback (a Python server decoding the protobuf export
//! requests with opentelemetry-proto, `tests/otlp/receiver.py`), trace
//! context from a stream entry's `traceparent` and from `POST .../events`
//! carried to the receiver's `traceparent` header, failed attempts' spans
//! and log lines, and the admin request log with its request id.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod harness;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use harness::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// The OTLP receiver process; killed on drop.
struct Collector {
    child: Child,
    port: u16,
}

impl Collector {
    fn start() -> Self {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/otlp/receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect(
                "python3 tests/otlp/receiver.py (make check-tools installs opentelemetry-proto)",
            );
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the OTLP receiver did not start");
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn spans(&self) -> Vec<Value> {
        let body = reqwest::get(format!("{}/spans", self.url()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PRODUCER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PRODUCER_SPAN: &str = "00f067aa0ba902b7";
const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";
const FAILING_TRACE: &str = "11111111111111111111111111111111";

fn attempt_spans<'a>(spans: &'a [Value], trace: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["name"] == "hookd.attempt" && s["trace_id"] == trace)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_runs_from_producer_to_receiver_and_failures_carry_their_error() {
    let collector = Collector::start();
    let redis = Redis::start();
    let mut env = test_env(&redis);
    env.push(("HOOKD__TELEMETRY__OTLP_ENDPOINT".into(), collector.url()));
    env.push(("HOOKD__LOG__FORMAT".into(), "json".into()));
    env.push(("HOOKD__LOG__LEVEL".into(), "info".into()));
    // Two attempts: the retry continues the producer's trace too.
    env.push(("HOOKD__RETRY__MAX_ATTEMPTS".into(), "2".into()));
    // Export every 100 ms instead of every 5 s.
    env.push(("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()));
    let ok = Receiver::ok().await;
    let failing = Receiver::sequence(&[500; 100]).await;
    let (ok_ep, _) = create_endpoint(&env, "ws", &ok.url(), &["order.created"]);
    let (failing_ep, _) = create_endpoint(&env, "ws", &failing.url(), &["order.failed"]);
    let log = std::env::temp_dir().join(format!("hookd-observability-{}.log", free_port()));
    let daemon = Daemon::ready_logging_to(&env, &log).await;

    // 1. A producer's XADD with trace context.
    redis
        .xadd(&[
            ("type", "order.created"),
            ("workspace", "ws"),
            ("data", r#"{"n":1}"#),
            ("id", "traced"),
            (
                "traceparent",
                &format!("00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01"),
            ),
            ("tracestate", "vendor=abc"),
        ])
        .await;
    // 2. One without: a trace of its own.
    redis
        .xadd(&[
            ("type", "order.created"),
            ("workspace", "ws"),
            ("data", r#"{"n":2}"#),
            ("id", "untraced"),
        ])
        .await;
    // 3. Through the API, with the caller's traceparent and a request id.
    let api = Api::new(&daemon.admin, &api_key(&env, "ws", "write"));
    let r = api
        .raw(
            "POST",
            "/api/v1/workspaces/ws/events",
            Some(
                json!({"id": "via-api", "type": "order.created", "data": {"n": 3}})
                    .to_string()
                    .into_bytes(),
            ),
            &[
                ("content-type", "application/json"),
                (
                    "traceparent",
                    &format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"),
                ),
                ("x-request-id", "req-from-caller-1"),
            ],
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.header("x-request-id"), Some("req-from-caller-1"));
    let r = api
        .call("GET", "/api/v1/workspaces/ws/endpoints", None)
        .await;
    let made = r.header("x-request-id").unwrap().to_string();
    assert!(made.starts_with("req_"), "a request id is made: {made}");
    // 4. A failing endpoint, traced.
    redis
        .xadd(&[
            ("type", "order.failed"),
            ("workspace", "ws"),
            ("data", "{}"),
            ("id", "fails"),
            (
                "traceparent",
                &format!("00-{FAILING_TRACE}-{PRODUCER_SPAN}-01"),
            ),
        ])
        .await;

    let got = ok.wait_for(3, WAIT).await;
    failing.wait_for(2, WAIT).await;
    let header_of = |id: &str| -> String {
        got.iter()
            .find(|r| r.header("x-hookd-event-id") == Some(id))
            .and_then(|r| r.header("traceparent"))
            .unwrap_or_else(|| panic!("no traceparent on the request of {id}"))
            .to_string()
    };
    for r in &got {
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains("traceparent") && !body.contains("vendor=abc"),
            "trace context is not payload: {body}"
        );
    }

    let spans = eventually(WAIT, "the attempt spans exported", || async {
        let spans = collector.spans().await;
        let done = [PRODUCER_TRACE, CALLER_TRACE, FAILING_TRACE]
            .iter()
            .all(|t| !attempt_spans(&spans, t).is_empty())
            && attempt_spans(&spans, FAILING_TRACE).len() == 2
            && spans
                .iter()
                .filter(|s| s["name"] == "hookd.attempt")
                .count()
                >= 5;
        done.then_some(spans)
    })
    .await;

    // The producer's trace: the attempt span is its child, and the receiver
    // got that span's traceparent (so it can continue the same trace).
    let attempt = attempt_spans(&spans, PRODUCER_TRACE)[0];
    assert_eq!(attempt["parent_span_id"], PRODUCER_SPAN);
    assert_eq!(attempt["kind"], 3, "a client span");
    assert_eq!(attempt["service"], "hookd");
    let sent = header_of("traced");
    assert_eq!(
        sent,
        format!(
            "00-{PRODUCER_TRACE}-{}-01",
            attempt["span_id"].as_str().unwrap()
        )
    );
    let a = &attempt["attributes"];
    assert_eq!(a["hookd.endpoint.id"], ok_ep.as_str());
    assert_eq!(a["hookd.workspace"], "ws");
    assert_eq!(a["hookd.event.id"], "traced");
    assert_eq!(a["hookd.event.type"], "order.created");
    assert_eq!(a["hookd.attempt.number"], 1);
    assert_eq!(a["hookd.outcome"], "succeeded");
    assert_eq!(a["http.response.status_code"], 200);
    assert!(a["hookd.delivery.id"].as_str().unwrap().starts_with("dlv_"));
    assert!(
        a["server.address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let tracestate = got
        .iter()
        .find(|r| r.header("x-hookd-event-id") == Some("traced"))
        .and_then(|r| r.header("tracestate"));
    assert_eq!(tracestate, Some("vendor=abc"));

    // Without trace context: a trace of its own, and the header names it.
    let own = header_of("untraced");
    let own_trace = own.split('-').nth(1).unwrap();
    assert!(![PRODUCER_TRACE, CALLER_TRACE, FAILING_TRACE].contains(&own_trace));
    let root = attempt_spans(&spans, own_trace);
    assert_eq!(root.len(), 1);
    assert_eq!(root[0]["parent_span_id"], "");

    // Through the API: caller -> the request's server span -> the attempt.
    let request = spans
        .iter()
        .find(|s| s["trace_id"] == CALLER_TRACE && s["kind"] == 2)
        .expect("the request span");
    assert_eq!(request["name"], "POST /api/v1/workspaces/{ws}/events");
    assert_eq!(request["parent_span_id"], CALLER_SPAN);
    assert_eq!(
        request["attributes"]["http.route"],
        "/api/v1/workspaces/{ws}/events"
    );
    assert_eq!(request["attributes"]["http.response.status_code"], 202);
    assert_eq!(request["attributes"]["hookd.workspace"], "ws");
    assert_eq!(
        request["attributes"]["hookd.request_id"],
        "req-from-caller-1"
    );
    assert!(
        request["attributes"]["hookd.key.id"]
            .as_str()
            .unwrap()
            .starts_with("key_")
    );
    let via_api = attempt_spans(&spans, CALLER_TRACE);
    assert_eq!(via_api[0]["parent_span_id"], request["span_id"]);
    assert!(header_of("via-api").starts_with(&format!("00-{CALLER_TRACE}-")));

    // A failed attempt's span carries the error; the retry (from durable
    // state) is in the producer's trace as well, and says so on its request.
    let failing_spans = attempt_spans(&spans, FAILING_TRACE);
    for s in &failing_spans {
        assert_eq!(s["parent_span_id"], PRODUCER_SPAN, "{s}");
    }
    let retry = failing.received()[1]
        .header("traceparent")
        .unwrap()
        .to_string();
    assert!(
        retry.starts_with(&format!("00-{FAILING_TRACE}-")),
        "{retry}"
    );
    let failed = failing_spans
        .iter()
        .find(|s| s["attributes"]["hookd.attempt.number"] == 2)
        .unwrap_or_else(|| panic!("no second attempt's span: {failing_spans:#?}"));
    assert_eq!(failed["status"]["code"], 2, "status ERROR: {failed}");
    assert!(
        failed["status"]["message"]
            .as_str()
            .unwrap()
            .contains("500")
    );
    assert_eq!(failed["attributes"]["error.type"], "status");
    assert_eq!(failed["attributes"]["http.response.status_code"], 500);
    assert_eq!(failed["attributes"]["hookd.outcome"], "failed");
    assert_eq!(
        failed["attributes"]["hookd.endpoint.id"],
        failing_ep.as_str()
    );
    // Ingest batches have spans too.
    assert!(spans.iter().any(|s| s["name"] == "hookd.ingest"));

    // The log: the failure line has values (not Rust debug text) and the
    // trace it belongs to; every API request is logged with its route
    // template, key and request id.
    let lines: Vec<Value> = eventually(WAIT, "the log lines", || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "attempt failed; no attempt left, delivery failed")
            .then_some(lines)
    })
    .await;
    let failure = lines
        .iter()
        .find(|l| l["fields"]["message"] == "attempt failed; no attempt left, delivery failed")
        .unwrap();
    assert_eq!(failure["level"], "WARN");
    let f = &failure["fields"];
    assert_eq!(f["error_kind"], "status", "{failure}");
    assert_eq!(f["status"], 500);
    assert_eq!(f["error"], "receiver answered 500");
    assert_eq!(f["endpoint"], failing_ep.as_str());
    assert_eq!(f["workspace"], "ws");
    assert_eq!(f["event"], "fails");
    assert_eq!(f["trace_id"], FAILING_TRACE);
    assert_eq!(f["span_id"], failed["span_id"]);
    assert!(f["host"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(f["delivery"].as_str().unwrap().starts_with("dlv_"));
    let request_line = lines
        .iter()
        .find(|l| {
            l["fields"]["message"] == "admin request"
                && l["fields"]["request_id"] == "req-from-caller-1"
        })
        .expect("the request's log line");
    let f = &request_line["fields"];
    assert_eq!(f["method"], "POST");
    assert_eq!(f["route"], "/api/v1/workspaces/{ws}/events");
    assert_eq!(f["status"], 202);
    assert_eq!(f["workspace"], "ws");
    assert_eq!(f["trace_id"], CALLER_TRACE);
    assert!(f["key_id"].as_str().unwrap().starts_with("key_"));
    assert!(f["duration_ms"].as_f64().is_some());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("Some("), "no Rust debug text in the log");
    drop(daemon);
    let _ = std::fs::remove_file(&log);
}

/// The metric names a PromQL text uses (`hookd_...`).
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("hookd_") {
        let start = i + at;
        let before = start.checked_sub(1).map(|b| bytes[b]);
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        // Not part of a longer word (a file or job name).
        if !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/' || b == b'.')
        {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_and_alerts_use_only_metrics_hookd_exports() {
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
    // The rules are valid and their unit tests pass.
    for args in [
        &["check", "rules", "alerts.yml"][..],
        &["test", "rules", "alerts_test.yml"][..],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(format!("{deploy}/prometheus"))
            .output()
            .expect("promtool (make check-tools installs Debian's prometheus)");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let Setup(redis, env, ok, ..) = Setup::new(Receiver::ok().await).await;
    let daemon = Daemon::ready(&env).await;
    let scrape = || async {
        reqwest::get(format!("{}/metrics", daemon.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // Counters an alert reads exist at 0 before anything happened.
    let fresh = scrape().await;
    for series in [
        r#"hookd_attempts_total{outcome="failed"} 0"#,
        r#"hookd_dead_letters_total{reason="invalid_json"} 0"#,
        "hookd_circuit_breaker_trips_total 0",
        "hookd_events_ingested_total 0",
    ] {
        assert!(
            fresh.contains(series),
            "{series} missing at start-up:\n{fresh}"
        );
    }
    assert!(fresh.contains(&format!(
        "hookd_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    // One delivery, so the per-endpoint series exist.
    redis
        .xadd(&[
            ("type", "order.created"),
            ("workspace", "ws"),
            ("data", "{}"),
        ])
        .await;
    ok.wait_for(1, WAIT).await;
    let text = eventually(WAIT, "the queue figures and attempt series", || async {
        let t = scrape().await;
        (t.contains("hookd_attempt_results_total{") && t.contains("hookd_stream_lag ")).then_some(t)
    })
    .await;
    let mut exported = std::collections::BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            exported.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    exported.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("hookd_attempt_results_total{")
                && l.contains(r#"result="success""#)
                && l.contains(r#"workspace="ws""#)
                && l.contains("endpoint=\"ep_")),
        "the dashboard's workspace and endpoint variables read these labels:\n{text}"
    );

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{deploy}/grafana/hookd.json")).unwrap(),
    )
    .unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queries.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["definition"].as_str() {
            queries.push(q.to_string());
        }
    }
    assert!(queries.len() >= 12, "{queries:?}");
    let alerts = std::fs::read_to_string(format!("{deploy}/prometheus/alerts.yml")).unwrap();
    let mut used = metric_names(&queries.join("\n"));
    let in_alerts = metric_names(&alerts);
    assert!(in_alerts.len() >= 7, "{in_alerts:?}");
    used.extend(in_alerts);
    let missing: Vec<&String> = used.iter().filter(|m| !exported.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard or alerts query metrics hookd does not export: {missing:?}\nexported: {exported:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_change_is_in_the_workspace_audit_log_and_no_secret_is_logged() {
    let redis = Redis::start();
    let mut env = test_env(&redis);
    env.push(("HOOKD__LOG__FORMAT".into(), "json".into()));
    env.push(("HOOKD__LOG__LEVEL".into(), "debug".into()));
    env.push(("HOOKD__RETRY__MAX_ATTEMPTS".into(), "1".into()));
    let log = std::env::temp_dir().join(format!("hookd-audit-{}.log", free_port()));
    let daemon = Daemon::ready_logging_to(&env, &log).await;
    let admin_key = api_key(&env, "ws", "admin");
    let api = Api::new(&daemon.admin, &admin_key);
    let ok = Receiver::ok().await;
    let gone = Receiver::sequence(&[410]).await;
    let base = "/api/v1/workspaces/ws/endpoints";

    // Changes through the API, one with the caller's request id.
    let r = api
        .raw(
            "POST",
            base,
            Some(
                json!({
                    "url": format!("{}?token=url-secret-value", ok.url()),
                    "headers": {"Authorization": "Bearer header-secret-value"},
                    "event_types": ["order.created"]
                })
                .to_string()
                .into_bytes(),
            ),
            &[
                ("content-type", "application/json"),
                ("x-request-id", "req-audit-1"),
            ],
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let ep = r.body["id"].as_str().unwrap().to_string();
    let first_secret = r.body["secret"].as_str().unwrap().to_string();
    let one = format!("{base}/{ep}");
    let r = api
        .call(
            "PATCH",
            &one,
            Some(json!({"headers": {"Authorization": "Bearer header-secret-2"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    api.call(
        "POST",
        &format!("{one}/pause"),
        Some(json!({"reason": "receiver maintenance"})),
    )
    .await;
    api.call("POST", &format!("{one}/resume"), None).await;
    let r = api
        .call(
            "POST",
            &format!("{one}/secret/rotate"),
            Some(json!({"grace_seconds": 60})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let second_secret = r.body["secret"].as_str().unwrap().to_string();
    let r = api
        .call(
            "POST",
            "/api/v1/workspaces/ws/events",
            Some(json!({"id": "e1", "type": "order.created", "data": {}})),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    ok.wait_for(1, WAIT).await;
    let delivery = eventually(WAIT, "the delivery in history", || async {
        let page = api
            .call("GET", "/api/v1/workspaces/ws/deliveries", None)
            .await;
        page.body["data"][0]["id"].as_str().map(str::to_string)
    })
    .await;
    let r = api
        .call(
            "POST",
            &format!("/api/v1/workspaces/ws/deliveries/{delivery}/redeliver"),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let r = api
        .call(
            "POST",
            &format!("{one}/recover"),
            Some(json!({"since": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let job = r.body["id"].as_str().unwrap().to_string();
    let r = api
        .call(
            "PUT",
            "/api/v1/event-types/order.created",
            Some(json!({"description": "An order"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api
        .call(
            "POST",
            "/api/v1/workspaces/ws/keys",
            Some(json!({"scope": "read", "name": "dashboards"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let read_key = r.body["key"].as_str().unwrap().to_string();
    let read_id = r.body["id"].as_str().unwrap().to_string();
    // The command line, and hookd itself (a receiver's 410 pauses its endpoint).
    cli(
        &env,
        &["endpoints", "pause", &ep, "--reason", "from the cli"],
    );
    let (gone_ep, _) = create_endpoint(&env, "ws", &gone.url(), &["order.gone"]);
    redis
        .xadd(&[("type", "order.gone"), ("workspace", "ws"), ("data", "{}")])
        .await;
    gone.wait_for(1, WAIT).await;
    let r = api
        .call(
            "DELETE",
            &format!("/api/v1/workspaces/ws/keys/{read_id}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api.call("DELETE", &one, None).await;
    assert_eq!(r.status, 204, "{:?}", r.body);

    let audit = eventually(WAIT, "the automatic pause in the audit log", || async {
        let page = api
            .call("GET", "/api/v1/workspaces/ws/audit?limit=500", None)
            .await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        page.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "hookd")
            .then_some(page.body)
    })
    .await;
    let entries = audit["data"].as_array().unwrap();
    let seen: Vec<(String, String, String)> = entries
        .iter()
        .rev()
        .map(|e| {
            let actor = if e["actor"].as_str().unwrap().starts_with("key_") {
                "key".to_string()
            } else {
                e["actor"].as_str().unwrap().to_string()
            };
            (
                actor,
                e["action"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    let expected = vec![
        s(
            "cli",
            "key.created",
            entries.last().unwrap()["target"].as_str().unwrap(),
        ),
        s("key", "endpoint.created", &ep),
        s("key", "endpoint.updated", &ep),
        s("key", "endpoint.paused", &ep),
        s("key", "endpoint.resumed", &ep),
        s("key", "endpoint.secret_rotated", &ep),
        s("key", "delivery.redelivered", &delivery),
        s("key", "recovery.started", &job),
        s("key", "catalog.changed", "order.created"),
        s("key", "key.created", &read_id),
        s("cli", "endpoint.paused", &ep),
        s("cli", "endpoint.created", &gone_ep),
        s("hookd", "endpoint.paused", &gone_ep),
        s("key", "key.revoked", &read_id),
        s("key", "endpoint.deleted", &ep),
    ];
    assert_eq!(seen, expected, "{audit:#}");
    let created = entries
        .iter()
        .find(|e| e["action"] == "endpoint.created" && e["target"] == ep.as_str())
        .unwrap();
    assert_eq!(created["request_id"], "req-audit-1");
    assert!(created["at"].as_str().unwrap().ends_with('Z'));
    let paused = entries
        .iter()
        .find(|e| {
            e["action"] == "endpoint.paused" && e["actor"] != "cli" && e["target"] == ep.as_str()
        })
        .unwrap();
    assert_eq!(paused["detail"], "receiver maintenance");
    let updated = entries
        .iter()
        .find(|e| e["action"] == "endpoint.updated")
        .unwrap();
    assert_eq!(
        updated["detail"], "headers",
        "names of settings, never their values"
    );
    let auto = entries.iter().find(|e| e["actor"] == "hookd").unwrap();
    assert!(auto["detail"].as_str().unwrap().contains("410"), "{auto}");

    // Pages of 4 walk the same entries; the CLI shows the same page.
    let mut walked = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut path = "/api/v1/workspaces/ws/audit?limit=4".to_string();
        if let Some(b) = &before {
            path.push_str(&format!("&before={b}"));
        }
        let page = api.call("GET", &path, None).await.body;
        walked.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(n) => before = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(&walked, entries);
    let from_cli = cli_json(&env, &["audit", "--workspace", "ws", "--limit", "500"]);
    assert_eq!(from_cli, audit);
    // Admin scope only, own workspace only.
    let r = api
        .with_key(&read_key)
        .call("GET", "/api/v1/workspaces/ws/audit", None)
        .await;
    assert_eq!(r.status, 401, "the revoked key");
    let reader = Api::new(&daemon.admin, &api_key(&env, "ws", "read"));
    assert_eq!(
        reader
            .call("GET", "/api/v1/workspaces/ws/audit", None)
            .await
            .status,
        403
    );
    let other = Api::new(&daemon.admin, &api_key(&env, "other", "admin"));
    assert_eq!(
        other
            .call("GET", "/api/v1/workspaces/ws/audit", None)
            .await
            .status,
        403
    );

    // No secret or header value in the audit log or in any log line
    // (the daemon ran at debug level).
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("admin request"), "the log was captured");
    // Tracing is off here: no empty trace ids on the request lines, and
    // their durations are rounded to hundredths of a millisecond.
    for line in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let f = &line["fields"];
        if f["message"] == "admin request" {
            assert!(
                f.get("trace_id").is_none() && f.get("span_id").is_none(),
                "{line}"
            );
            let ms = f["duration_ms"].as_f64().unwrap();
            assert_eq!((ms * 100.0).round() / 100.0, ms, "{line}");
        }
    }
    let audit_text = audit.to_string();
    for secret in [
        first_secret.as_str(),
        second_secret.as_str(),
        "header-secret-value",
        "header-secret-2",
        "url-secret-value",
        admin_key.as_str(),
        read_key.as_str(),
    ] {
        assert!(!audit_text.contains(secret), "{secret} in the audit log");
        assert!(!text.contains(secret), "{secret} in the daemon's log");
    }
    drop(daemon);
    let _ = std::fs::remove_file(&log);
}
