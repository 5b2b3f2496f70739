//! The SRE console at /console in a real browser: headless Chromium
//! (Debian's), driven by Playwright for Python (`tests/browser/console.py`),
//! against a real hookd, Redis and receivers, with every other host
//! blocked. Screenshots of each step go to target/console/.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod harness;

use std::process::Command;
use std::time::Duration;

use harness::*;

/// Runs a browser script of `tests/browser/` with `cfg`; its output.
async fn browse(script: &str, cfg: serde_json::Value) -> String {
    let script = format!("{}/browser/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(cfg.to_string())
            .output()
            .expect("python3 with playwright (make check-tools installs it)")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "the console's browser run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sre_finds_the_failures_replays_them_pauses_and_rotates_in_the_console() {
    let redis = Redis::start();
    let mut env = test_env(&redis);
    env.push(("HOOKD__RETRY__MAX_ATTEMPTS".into(), "1".into()));
    // Broken for the first three requests, then fixed.
    let receiver = Receiver::sequence(&[500, 500, 500]).await;
    let (endpoint, _) = create_endpoint(&env, "ws", &receiver.url(), &["order.created"]);
    cli_json(
        &env,
        &[
            "endpoints",
            "update",
            &endpoint,
            "--description",
            "Orders sync",
        ],
    );
    let daemon = Daemon::ready(&env).await;
    redis
        .xadd_events(
            "ws",
            "order.created",
            (0..3).map(|i| (format!("o-{i}"), format!(r#"{{"n":{i}}}"#))),
        )
        .await;
    receiver.wait_for(3, Duration::from_secs(20)).await;
    eventually(Duration::from_secs(20), "3 failed deliveries", || async {
        let page = cli_json(
            &env,
            &[
                "deliveries",
                "list",
                "--workspace",
                "ws",
                "--status",
                "failed",
            ],
        );
        (page["data"].as_array().unwrap().len() == 3).then_some(())
    })
    .await;
    let screenshots = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/console");
    let cfg = serde_json::json!({
        "base": daemon.admin,
        "admin_key": api_key(&env, "ws", "admin"),
        "read_key": api_key(&env, "ws", "read"),
        "other_key": api_key(&env, "other", "admin"),
        "endpoint": endpoint,
        "name": "Orders sync",
        "screenshots": screenshots,
    });
    browse("console.py", cfg).await;
    // The receiver got the redelivery, the one retried from the list, the
    // one the recovery job re-sent, and the test event.
    assert_eq!(receiver.count(), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sre_skips_the_given_up_head_of_an_ordered_key_in_the_console() {
    let redis = Redis::start();
    let mut env = test_env(&redis);
    env.push(("HOOKD__RETRY__MAX_ATTEMPTS".into(), "2".into()));
    // The key's first event fails both its attempts; everything after succeeds.
    let receiver = Receiver::sequence(&[500, 500]).await;
    let ep = create_endpoint_with(
        &env,
        "ws",
        &receiver.url(),
        &["--ordering", "key", "--ordering-on-give-up", "hold"],
    );
    let endpoint = ep["id"].as_str().unwrap().to_string();
    let daemon = Daemon::ready(&env).await;
    for n in 1..=2 {
        redis
            .xadd(&[
                ("type", "card.moved"),
                ("workspace", "ws"),
                ("data", &format!(r#"{{"n":{n}}}"#)),
                ("ordering_key", "k0"),
            ])
            .await;
    }
    let (head, waiting) = eventually(Duration::from_secs(30), "a held key", || async {
        let page = cli_json(&env, &["deliveries", "list", "--workspace", "ws"]);
        let list = page["data"].as_array().unwrap().clone();
        let id = |status: &str| {
            list.iter()
                .find(|d| d["status"] == status)
                .and_then(|d| d["id"].as_str().map(str::to_string))
        };
        Some((id("failed")?, id("waiting")?))
    })
    .await;
    let cfg = serde_json::json!({
        "base": daemon.admin,
        "admin_key": api_key(&env, "ws", "admin"),
        "endpoint": endpoint,
        "head": head,
        "waiting": waiting,
        "screenshots": concat!(env!("CARGO_MANIFEST_DIR"), "/../target/console"),
    });
    browse("ordering.py", cfg).await;
    assert_eq!(
        receiver.count(),
        3,
        "the head's two attempts, then the next event"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_pages_a_workspace_of_1000_endpoints_and_100000_deliveries() {
    const ENDPOINTS: usize = 1000;
    const DELIVERIES: usize = 100_000;
    let redis = Redis::start();
    let env = test_env(&redis);
    let receiver = Receiver::ok().await;
    let daemon = Daemon::ready(&env).await;
    let key = api_key(&env, "ws", "admin");
    let api = Api::new(&daemon.admin, &key);
    // One endpoint takes every delivery; the rest are subscribed to a type
    // nobody publishes.
    let busy = api
        .call(
            "POST",
            "/api/v1/workspaces/ws/endpoints",
            Some(serde_json::json!({"url": receiver.url(), "event_types": ["order.created"]})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    for chunk in 0..(ENDPOINTS - 1).div_ceil(50) {
        let calls = (0..50).filter(|i| chunk * 50 + i < ENDPOINTS - 1).map(|_| {
            api.call(
                "POST",
                "/api/v1/workspaces/ws/endpoints",
                Some(
                    serde_json::json!({"url": receiver.url(), "event_types": ["never.published"]}),
                ),
            )
        });
        for r in futures_util::future::join_all(calls).await {
            assert_eq!(r.status, 201, "{:?}", r.body);
        }
    }
    redis
        .xadd_events(
            "ws",
            "order.created",
            (0..DELIVERIES).map(|i| (format!("e{i}"), "{}".to_string())),
        )
        .await;
    receiver
        .wait_for(DELIVERIES, Duration::from_secs(240))
        .await;
    let cfg = serde_json::json!({
        "base": daemon.admin,
        "key": key,
        "busy_endpoint": busy,
        "endpoints": ENDPOINTS,
        "deliveries": DELIVERIES,
    });
    println!("{}", browse("console_scale.py", cfg).await);
}
