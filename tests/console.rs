//! The SRE console at /console in a real browser: headless Chromium
//! (Debian's), driven by Playwright for Python (`tests/browser/console.py`),
//! against a real hookd, Redis and receivers, with every other host
//! blocked. Screenshots of each step go to target/console/.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod harness;

use std::process::Command;
use std::time::Duration;

use harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn an_sre_finds_the_failures_replays_them_pauses_and_rotates_in_the_console() {
    let redis = Redis::start();
    let mut env = test_env(&redis);
    env.push(("HOOKD__RETRY__MAX_ATTEMPTS".into(), "1".into()));
    // Broken for the first three requests, then fixed.
    let receiver = Receiver::sequence(&[500, 500, 500]).await;
    let (endpoint, _) = create_endpoint(&env, "ws", &receiver.url(), &["order.created"]);
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
        "screenshots": screenshots,
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/console.py");
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
    // The receiver got the redelivery and the two recovered deliveries.
    assert_eq!(receiver.count(), 6);
}
