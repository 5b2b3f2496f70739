//! Changing the partition count with `hookd repartition`, following the
//! procedure in deploy/README.md ("Changing the partition count"), against a
//! real redis-server, real daemons and receivers: grow 2 -> 3, then shrink
//! 3 -> 1, with producers writing throughout (on the old count while
//! daemons are stopped and after they restart, then on the new one). Every
//! event reaches every endpoint; retrying, held and succeeded deliveries of
//! moved workspaces keep their state, history and payload.
#![allow(clippy::unwrap_used)]

mod harness;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use harness::*;
use hookd_store::Keys;

const WORKSPACES: usize = 12;
const PER_BATCH: usize = 5;

fn env_with(redis: &Redis, partitions: u32) -> Vec<(String, String)> {
    let mut env = test_env(redis);
    env.push(("HOOKD__INGEST__PARTITIONS".into(), partitions.to_string()));
    env.push(("HOOKD__RETRY__MAX_ATTEMPTS".into(), "1000".into()));
    env.push(("HOOKD__DELIVERY__BREAKER_FAILURES".into(), "0".into()));
    env
}

fn workspace(i: usize) -> String {
    format!("ws-{i}")
}

/// A producer following the guide with `partitions` partitions: each event
/// goes to its workspace's stream. Returns the event ids.
async fn produce(redis: &Redis, partitions: u32, batch: &str) -> Vec<String> {
    let keys = Keys::new("hookd:events", "hookd", partitions);
    let mut conn = redis.conn().await;
    let mut ids = Vec::new();
    for w in 0..WORKSPACES {
        let ws = workspace(w);
        let stream = keys.partition_of(&ws).stream;
        for i in 0..PER_BATCH {
            let id = format!("{batch}-{ws}-{i}");
            let _: String = redis::cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("type")
                .arg("order.created")
                .arg("workspace")
                .arg(&ws)
                .arg("id")
                .arg(&id)
                .arg("data")
                .arg(format!("{{\"batch\":\"{batch}\",\"n\":{i}}}"))
                .query_async(&mut conn)
                .await
                .unwrap();
            ids.push(id);
        }
    }
    ids
}

fn received_ids(r: &Receiver) -> Vec<String> {
    r.received()
        .iter()
        .filter_map(|r| r.header("X-Hookd-Event-Id").map(str::to_string))
        .collect()
}

/// Waits until `receiver` got every id in `ids`; returns how many requests
/// it got beyond one per id (duplicates).
async fn all_received(receiver: &Receiver, ids: &[String], what: &str) -> usize {
    let want: HashSet<&String> = ids.iter().collect();
    eventually(Duration::from_secs(60), what, || async {
        let got = received_ids(receiver);
        let seen: HashSet<&String> = got.iter().filter(|id| want.contains(id)).collect();
        (seen.len() == want.len()).then(|| got.len() - seen.len())
    })
    .await
}

fn ids_of(ids: &[String], ws: &str) -> Vec<String> {
    ids.iter()
        .filter(|id| id.contains(&format!("-{ws}-")))
        .cloned()
        .collect()
}

fn repartition(env: &[(String, String)], to: u32) -> serde_json::Value {
    cli_json(env, &["repartition", "--to", &to.to_string()])
}

#[tokio::test(flavor = "multi_thread")]
async fn growing_and_shrinking_the_partition_count_loses_nothing() {
    let redis = Redis::start();
    let (env1, env2, env3) = (
        env_with(&redis, 1),
        env_with(&redis, 2),
        env_with(&redis, 3),
    );
    let two = Keys::new("hookd:events", "hookd", 2);
    let three = Keys::new("hookd:events", "hookd", 3);
    let moves = |w: usize| {
        two.partition_of(&workspace(w)).stream != three.partition_of(&workspace(w)).stream
    };
    // The workspaces that move 2 -> 3: one with a failing receiver, one paused.
    let moving: Vec<usize> = (0..WORKSPACES).filter(|w| moves(*w)).collect();
    assert!(moving.len() >= 3, "{moving:?}");
    let (failing_ws, paused_ws) = (workspace(moving[0]), workspace(moving[1]));

    let ok = Receiver::ok().await;
    let broken = Arc::new(AtomicBool::new(true));
    let flag = broken.clone();
    let failing = Receiver::with_plan(Arc::new(move |_| {
        (
            if flag.load(Ordering::SeqCst) {
                500
            } else {
                200
            },
            vec![],
        )
    }))
    .await;
    let paused_recv = Receiver::ok().await;

    let mut endpoints = Vec::new();
    for w in 0..WORKSPACES {
        endpoints.push(create_endpoint(&env2, &workspace(w), &ok.url(), &[]).0);
    }
    create_endpoint(&env2, &failing_ws, &failing.url(), &[]);
    let paused_ep = create_endpoint(&env2, &paused_ws, &paused_recv.url(), &[]).0;
    cli(
        &env2,
        &["endpoints", "pause", &paused_ep, "--reason", "maintenance"],
    );

    // 2 partitions: deliver a first batch.
    let mut daemon = Daemon::ready(&env2).await;
    let a = produce(&redis, 2, "a").await;
    all_received(&ok, &a, "batch a delivered on 2 partitions").await;
    eventually(
        Duration::from_secs(20),
        "failing endpoint retrying batch a",
        || async {
            let got: HashSet<String> = received_ids(&failing).into_iter().collect();
            (got.len() == PER_BATCH).then_some(())
        },
    )
    .await;
    let moved_ep = &endpoints[moving[2]];
    let before: Vec<String> =
        cli_json(&env2, &["deliveries", "list", "--endpoint", moved_ep])["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect();
    assert_eq!(before.len(), PER_BATCH);

    // Stop the daemons; producers go on with the old count.
    assert!(daemon.terminate());
    let b = produce(&redis, 2, "b").await;
    let report = repartition(&env2, 3);
    println!("2 -> 3: {report}");
    assert_eq!(report["from"], 2);
    assert_eq!(report["to"], 3);
    assert!(report["workspaces_moved"].as_u64().unwrap() >= moving.len() as u64);
    assert!(report["envelopes_copied"].as_u64().unwrap() >= PER_BATCH as u64);
    assert_eq!(report["retired_streams"], serde_json::json!([]));

    // The old count is refused from now on, by the daemon and the CLI.
    let refused = hookd_command(&env2)
        .args(["endpoints", "list", "--workspace", "ws-0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("hookd repartition --to 2"), "{stderr}");

    // Old producers still write with 2 partitions: the daemons forward.
    let c = produce(&redis, 2, "c").await;
    daemon = Daemon::ready(&env3).await;
    let d = produce(&redis, 3, "d").await;
    let everything: Vec<String> = [&a, &b, &c, &d].into_iter().flatten().cloned().collect();
    let dup = all_received(&ok, &everything, "every event after growing to 3").await;
    println!(
        "grow 2 -> 3: {} events to {WORKSPACES} endpoints, 0 lost, {dup} duplicates",
        everything.len()
    );

    // The moved workspaces' retrying and held deliveries carried over.
    broken.store(false, Ordering::SeqCst);
    all_received(
        &failing,
        &ids_of(&everything, &failing_ws),
        "retries of a moved workspace",
    )
    .await;
    let resumed = cli_json(&env3, &["endpoints", "resume", &paused_ep]);
    assert_eq!(resumed["released"], 4 * PER_BATCH as u64, "{resumed}");
    all_received(
        &paused_recv,
        &ids_of(&everything, &paused_ws),
        "held deliveries of a moved workspace",
    )
    .await;

    // History from before the move, and a redelivery of a delivery that
    // succeeded before it (its payload was only in the old stream entry).
    let listed = cli_json(
        &env3,
        &[
            "deliveries",
            "list",
            "--endpoint",
            moved_ep,
            "--limit",
            "100",
        ],
    );
    let after: HashSet<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(after.len(), 4 * PER_BATCH);
    for id in &before {
        assert!(
            after.contains(id.as_str()),
            "{id} missing from history after the move"
        );
    }
    let old_event = cli_json(&env3, &["deliveries", "show", &before[0]])["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let count_before = received_ids(&ok)
        .iter()
        .filter(|id| **id == old_event)
        .count();
    cli_json(&env3, &["deliveries", "redeliver", &before[0]]);
    eventually(
        Duration::from_secs(20),
        "redelivery after the move",
        || async {
            let n = received_ids(&ok)
                .iter()
                .filter(|id| **id == old_event)
                .count();
            (n > count_before).then_some(())
        },
    )
    .await;
    let resent = ok
        .received()
        .into_iter()
        .rev()
        .find(|r| r.header("X-Hookd-Event-Id") == Some(old_event.as_str()))
        .unwrap();
    assert!(String::from_utf8_lossy(&resent.body).contains("\"batch\":\"a\""));

    // Shrink 3 -> 1: its stream `hookd:events` has no `:p<i>`, so all three
    // streams retire.
    assert!(daemon.terminate());
    let e = produce(&redis, 3, "e").await;
    // A history record still waiting to ship from a retiring partition.
    let _: String = redis::cmd("XADD")
        .arg("{hookd:events:p2}:ship")
        .arg("*")
        .arg("lep_x ws-x")
        .arg("1700000000000-0_[\"evt\",\"t\",\"succeeded\"]")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let report = repartition(&env3, 1);
    println!("3 -> 1: {report}");
    assert_eq!(
        report["retired_streams"].as_array().unwrap().len(),
        3,
        "{report}"
    );
    assert!(report["entries_forwarded"].as_u64().unwrap() >= e.len() as u64);
    let mut conn = redis.conn().await;
    let backlog: Vec<i64> = redis::pipe()
        .cmd("XLEN")
        .arg("{hookd:events:p2}:ship")
        .cmd("XLEN")
        .arg("{hookd:events}:ship")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        backlog,
        [0, 1],
        "the shipping backlog moved with its partition"
    );
    daemon = Daemon::ready(&env1).await;
    // A producer not yet switched writes to a retired stream; after every
    // producer has switched, a second run (daemons running) forwards it.
    let f = produce(&redis, 3, "f").await;
    let g = produce(&redis, 1, "g").await;
    let again = repartition(&env1, 1);
    assert_eq!(again["entries_forwarded"], f.len() as u64, "{again}");
    let everything: Vec<String> = [&everything, &e, &f, &g]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let dup = all_received(&ok, &everything, "every event after shrinking to 1").await;
    println!(
        "shrink 3 -> 1: {} events in all, 0 lost, {dup} duplicates (1 is the redelivery)",
        everything.len()
    );
    all_received(
        &failing,
        &ids_of(&everything, &failing_ws),
        "the failing workspace after shrinking",
    )
    .await;
    let listed = cli_json(
        &env1,
        &[
            "deliveries",
            "list",
            "--endpoint",
            moved_ep,
            "--limit",
            "100",
        ],
    );
    assert_eq!(listed["data"].as_array().unwrap().len(), 7 * PER_BATCH);
    drop(daemon);
}

/// An entry written to the wrong partition's stream, without an `id`, is
/// forwarded with the event id it had there (`evt_<its entry id>`) and its
/// time: forwarding it again (a retried step) is a duplicate the target
/// skips, not a second delivery under a new id.
#[tokio::test(flavor = "multi_thread")]
async fn a_forwarded_entry_keeps_its_event_id() {
    let redis = Redis::start();
    let env = env_with(&redis, 2);
    let keys = Keys::new("hookd:events", "hookd", 2);
    let ws = (0..)
        .map(workspace)
        .find(|ws| keys.partition_of(ws).index == 1)
        .unwrap();
    let receiver = Receiver::ok().await;
    create_endpoint(&env, &ws, &receiver.url(), &[]);
    let _daemon = Daemon::ready(&env).await;
    let mut conn = redis.conn().await;
    let mut entries = Vec::new();
    for _ in 0..2 {
        // The same entry written twice to partition 0 (a producer on the old
        // count, retried): each copy has an entry id, and so an event id, of its own.
        let entry: String = redis::cmd("XADD")
            .arg(&keys.partition(0).stream)
            .arg("*")
            .arg("type")
            .arg("order.created")
            .arg("workspace")
            .arg(&ws)
            .arg("data")
            .arg("{}")
            .query_async(&mut conn)
            .await
            .unwrap();
        entries.push(entry);
    }
    let got = receiver.wait_for(2, Duration::from_secs(30)).await;
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.header("X-Hookd-Event-Id").unwrap().to_string())
        .collect();
    ids.sort();
    let mut want: Vec<String> = entries.iter().map(|e| format!("evt_{e}")).collect();
    want.sort();
    assert_eq!(ids, want, "forwarding changed the event ids");
    // A second forward of the first entry (as a retried step would make)
    // reaches the target as a duplicate of the same event.
    let _: String = redis::cmd("XADD")
        .arg(&keys.partition(1).stream)
        .arg("*")
        .arg("type")
        .arg("order.created")
        .arg("workspace")
        .arg(&ws)
        .arg("data")
        .arg("{}")
        .arg("id")
        .arg(format!("evt_{}", entries[0]))
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        receiver.count(),
        2,
        "a repeated forward was delivered again"
    );
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    let created = body["createdAt"].as_str().unwrap().to_string();
    let first_ms = hookd_core::delivery::entry_time_ms(&entries[0]).unwrap();
    let second_ms = hookd_core::delivery::entry_time_ms(&entries[1]).unwrap();
    assert!(
        [first_ms, second_ms]
            .iter()
            .any(|ms| hookd_core::time::format_rfc3339_ms(*ms) == created),
        "createdAt {created} is not the original entry's time"
    );
}
