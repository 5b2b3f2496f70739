//! Tenant isolation end to end (issue 27): a workspace's backlog waits in
//! its endpoint's lane, not in front of other workspaces' events; what
//! waits there survives a killed daemon, is held by a pause, and fails
//! (unsent) with a deleted endpoint. Real hookd processes, a real Redis,
//! real receivers on loopback. No assertion here is on a time: the
//! figures are `hookd-bench`'s (noisy-neighbour, noisy-backlog).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod harness;

use std::collections::HashMap;
use std::time::Duration;

use harness::*;

const WAIT: Duration = Duration::from_secs(60);

fn event_ids(r: &Receiver) -> Vec<String> {
    r.received()
        .iter()
        .filter_map(|r| r.header("X-Hookd-Event-Id").map(str::to_string))
        .collect()
}

async fn publish(redis: &Redis, ws: &str, prefix: &str, n: usize) {
    let events = (0..n).map(|i| (format!("{prefix}{i}"), "{}".to_string()));
    redis.xadd_events(ws, "card.created", events).await;
}

/// Deliveries waiting in `endpoint`'s lane (or taken from it, in flight).
async fn lane_len(redis: &Redis, endpoint: &str) -> u64 {
    let (waiting, taken): (u64, u64) = redis::pipe()
        .llen(format!("{{hookd:events}}:lane:{endpoint}"))
        .zcard(format!("{{hookd:events}}:taken:{endpoint}"))
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    waiting + taken
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quiet_workspace_is_not_held_up_behind_another_workspaces_backlog() {
    let redis = Redis::start();
    let env = test_env(&redis);
    // 3,000 events to a receiver that takes 200 ms each, 32 at a time:
    // about 19 s of work, all written before the quiet workspace's event.
    let slow = Receiver::slow(Duration::from_millis(200)).await;
    let quiet = Receiver::ok().await;
    let (noisy_ep, _) = create_endpoint(&env, "ws_noisy", &slow.url(), &[]);
    create_endpoint(&env, "ws_quiet", &quiet.url(), &[]);
    let _daemon = Daemon::ready(&env).await;
    publish(&redis, "ws_noisy", "n", 3000).await;
    publish(&redis, "ws_quiet", "q", 1).await;
    quiet.wait_for(1, WAIT).await;
    let noisy_done = slow.count();
    assert!(
        noisy_done < 1000,
        "the quiet event waited behind {noisy_done} of the noisy workspace's deliveries"
    );
    // What waits is visible: in the endpoint view and in the metrics.
    let api = Api::new(&_daemon.admin, &api_key(&env, "ws_noisy", "read"));
    let waiting = eventually(WAIT, "the endpoint view shows what waits", || async {
        let ep = api
            .call(
                "GET",
                &format!("/api/v1/workspaces/ws_noisy/endpoints/{noisy_ep}"),
                None,
            )
            .await;
        let n = ep.body["waiting"]["deliveries"].as_u64()?;
        (n > 0).then_some(ep.body["waiting"].clone())
    })
    .await;
    assert!(waiting["oldest"].is_string(), "{waiting}");
    let metrics = Api::new(&_daemon.admin, "")
        .raw("GET", "/metrics", None, &[])
        .await;
    let text = metrics.body.as_str().unwrap_or_default().to_string();
    assert!(
        text.lines()
            .any(|l| l.starts_with("hookd_waiting_deliveries{")
                && l.contains("workspace=\"ws_noisy\"")
                && !l.ends_with(" 0")),
        "no waiting series for ws_noisy"
    );
    // The backlog drains, each event once, and every delivery is in the history.
    let got = eventually(Duration::from_secs(120), "the backlog drained", || async {
        let ids = event_ids(&slow);
        (ids.len() >= 3000).then_some(ids)
    })
    .await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for id in got {
        *seen.entry(id).or_default() += 1;
    }
    assert_eq!(seen.len(), 3000);
    assert!(seen.values().all(|n| *n == 1), "a delivery was sent twice");
    eventually(WAIT, "the lane empty", || async {
        (lane_len(&redis, &noisy_ep).await == 0).then_some(())
    })
    .await;
    let history = walk_deliveries(&api, "ws_noisy", 500).await;
    assert_eq!(history.len(), 3000);
    assert!(history.iter().all(|d| d["status"] == "succeeded"));
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_waiting_in_a_lane_survive_a_killed_daemon() {
    let Setup(redis, env, slow, ..) =
        Setup::new(Receiver::slow(Duration::from_millis(50)).await).await;
    let mut first = Daemon::ready(&env).await;
    publish(&redis, "ws", "e", 2000).await;
    slow.wait_for(100, WAIT).await;
    first.kill9();
    let _second = Daemon::ready(&env).await;
    let got = eventually(
        Duration::from_secs(120),
        "every event delivered",
        || async {
            let ids: std::collections::HashSet<String> = event_ids(&slow).into_iter().collect();
            (ids.len() == 2000).then_some(ids)
        },
    )
    .await;
    assert_eq!(got.len(), 2000);
    // At least once: only what was in flight at the kill may come twice.
    let extra = slow.count() - 2000;
    assert!(extra <= 64, "{extra} deliveries sent twice");
}

/// An event fanned out to several endpoints whose lanes are busy is sent to
/// each once, and a producer's repeat of it (same event id) to none: its
/// idempotency marker is checked once for all its deliveries waiting here.
#[tokio::test(flavor = "multi_thread")]
async fn a_fanned_out_event_waiting_in_lanes_goes_once_to_each_endpoint() {
    let redis = Redis::start();
    let env = test_env(&redis);
    let receivers = [
        Receiver::slow(Duration::from_millis(20)).await,
        Receiver::slow(Duration::from_millis(20)).await,
        Receiver::slow(Duration::from_millis(20)).await,
    ];
    for r in &receivers {
        create_endpoint(&env, "ws", &r.url(), &[]);
    }
    let _daemon = Daemon::ready(&env).await;
    publish(&redis, "ws", "e", 1500).await;
    // The producer publishes the same events again while most still wait.
    publish(&redis, "ws", "e", 1500).await;
    for r in &receivers {
        eventually(WAIT, "every event at every endpoint", || async {
            let ids: std::collections::HashSet<String> = event_ids(r).into_iter().collect();
            (ids.len() == 1500).then_some(())
        })
        .await;
    }
    // Nothing more comes: the repeats were dropped.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for r in &receivers {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for id in event_ids(r) {
            *seen.entry(id).or_default() += 1;
        }
        let twice = seen.values().filter(|n| **n > 1).count();
        assert_eq!(twice, 0, "{twice} events sent twice to one endpoint");
    }
}

/// A daemon stopped gracefully (a rolling deploy) hands what waits in its
/// lanes to the next at once: not after `reclaim_idle` (a minute here), and
/// without counting as a failed read (`max_deliveries = 1` here: one more
/// count would dead-letter them).
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_daemon_hands_what_waits_to_the_next_at_once() {
    let redis = Redis::start();
    let mut env = test_env(&redis);
    env.retain(|(k, _)| k != "HOOKD__INGEST__RECLAIM_IDLE");
    env.push(("HOOKD__INGEST__RECLAIM_IDLE".into(), "60s".into()));
    env.push(("HOOKD__INGEST__MAX_DELIVERIES".into(), "1".into()));
    let slow = Receiver::slow(Duration::from_millis(100)).await;
    create_endpoint(&env, "ws", &slow.url(), &[]);
    let mut first = Daemon::ready(&env).await;
    publish(&redis, "ws", "e", 3000).await;
    slow.wait_for(100, WAIT).await;
    assert!(first.terminate(), "the first daemon stops cleanly");
    let handed_over = slow.count();
    assert!(handed_over < 2500, "{handed_over} sent before the stop");
    let _second = Daemon::ready(&env).await;
    // The rest takes about 9 s at 32 × 100 ms; without the hand-back
    // nothing would move for a minute.
    eventually(Duration::from_secs(40), "every event delivered", || async {
        let ids: std::collections::HashSet<String> = event_ids(&slow).into_iter().collect();
        (ids.len() == 3000).then_some(())
    })
    .await;
    let dead: u64 = redis::cmd("XLEN")
        .arg("hookd:events:dead")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    assert_eq!(dead, 0, "entries handed back were dead-lettered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_endpoint_holds_its_lane_and_resume_sends_it() {
    let Setup(redis, env, slow, endpoint, ..) =
        Setup::new(Receiver::slow(Duration::from_millis(100)).await).await;
    let _daemon = Daemon::ready(&env).await;
    publish(&redis, "ws", "e", 1000).await;
    slow.wait_for(32, WAIT).await;
    let paused = cli_json(&env, &["endpoints", "pause", &endpoint, "--reason", "hold"]);
    assert_eq!(paused["paused"], true);
    // What was in flight finishes; nothing more is taken from the lane.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = slow.count();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(slow.count(), before, "deliveries went out while paused");
    let shown = cli_json(&env, &["endpoints", "show", &endpoint]);
    assert!(
        shown["held"].as_u64().unwrap() + before as u64 >= 1000,
        "what waits is counted as held: {shown}"
    );
    cli_json(&env, &["endpoints", "resume", &endpoint]);
    let ids = eventually(WAIT, "everything after the resume", || async {
        let ids: std::collections::HashSet<String> = event_ids(&slow).into_iter().collect();
        (ids.len() == 1000).then_some(ids)
    })
    .await;
    assert_eq!(ids.len(), 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_an_endpoint_fails_its_lane_unsent() {
    let Setup(redis, env, slow, endpoint, ..) =
        Setup::new(Receiver::slow(Duration::from_millis(200)).await).await;
    let daemon = Daemon::ready(&env).await;
    let api = Api::new(&daemon.admin, &api_key(&env, "ws", "read"));
    publish(&redis, "ws", "e", 1000).await;
    slow.wait_for(32, WAIT).await;
    cli_json(&env, &["endpoints", "delete", &endpoint]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = slow.count();
    assert!(
        sent < 200,
        "{sent} deliveries sent to an endpoint being deleted"
    );
    let history = walk_deliveries(&api, "ws", 500).await;
    let failed = history.iter().filter(|d| d["status"] == "failed").count();
    assert!(
        failed + sent >= 1000,
        "{failed} failed and {sent} sent of 1,000"
    );
}
