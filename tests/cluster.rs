//! hookd on Redis Cluster: three masters with a replica each, six
//! partitions spread over the masters, two daemons, events from a Python
//! producer following the guide (plain XADD) and from `hookd publish`, and
//! the admin API and CLI on the cluster. Real redis-server processes in
//! cluster mode, real hookd processes and HTTP receivers.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod cluster_harness;
mod harness;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cluster_harness::{Cluster, cluster_env, kept_events, start_safe_producer};
use harness::*;
use hookd_signature::Verifier;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);
use cluster_harness::PARTITIONS;

/// Every request the receiver got, once each of `kept` has arrived.
async fn all_received(receiver: &Receiver, kept: &HashSet<String>) -> Vec<Received> {
    eventually(
        Duration::from_secs(90),
        "every kept event delivered",
        || async {
            let got = receiver.received();
            let ids: HashSet<String> = got
                .iter()
                .filter_map(|r| r.header("X-Hookd-Event-Id").map(str::to_string))
                .collect();
            kept.is_subset(&ids).then_some(got)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_delivered_over_a_cluster_with_two_daemons() {
    let cluster = Cluster::start(3);
    let env = cluster_env(&cluster);
    // The six partition streams are served by at least two masters.
    let masters: HashSet<u16> = (0..PARTITIONS)
        .map(|i| cluster.master_of(&format!("hookd:events:p{i}")))
        .collect();
    assert!(masters.len() >= 2, "partitions on {masters:?}");

    // 50 workspaces, one endpoint each; every tenth has a second one.
    let receiver = Receiver::ok().await;
    let mut secrets: HashMap<String, String> = HashMap::new();
    let mut subscribed = 0;
    for w in 0..50 {
        let ws = format!("ws_{w}");
        let copies = if w % 10 == 0 { 2 } else { 1 };
        for _ in 0..copies {
            let (id, secret) = create_endpoint(&env, &ws, &receiver.url(), &["card.created"]);
            secrets.insert(id, secret);
        }
        subscribed += copies;
    }
    let _a = Daemon::ready(&env).await;
    let _b = Daemon::ready(&env).await;

    // A Python producer following the guide, and hookd publish.
    let seed = cluster
        .url()
        .split(',')
        .next()
        .unwrap()
        .replace("redis://", "");
    let out = std::process::Command::new("python3")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster/producer.py"))
        .args([&seed, &PARTITIONS.to_string(), "50", "4", "py"])
        .output()
        .expect("python3 with redis-py (make check-tools installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "200");
    for w in 0..50 {
        cli(
            &env,
            &[
                "publish",
                "--workspace",
                &format!("ws_{w}"),
                "--type",
                "card.created",
                "--data",
                "{}",
                "--id",
                &format!("cli-ws_{w}"),
            ],
        );
    }
    // Per workspace: 4 + 1 events, to each of its endpoints.
    let expected = (subscribed * 5) as usize;
    let got = receiver.wait_for(expected, WAIT).await;
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    for r in &got {
        let event = r.header("X-Hookd-Event-Id").unwrap().to_string();
        let delivery = r.header("X-Hookd-Delivery-Id").unwrap().to_string();
        let endpoint = delivery
            .rsplit('_')
            .next()
            .map(|s| format!("ep_{s}"))
            .unwrap();
        let secret = &secrets[&endpoint];
        assert!(
            Verifier::new(secret).verify(&r.headers, &r.body).is_ok(),
            "signature of {event} to {endpoint}"
        );
        if !seen.insert((event, endpoint)) {
            duplicates += 1;
        }
    }
    println!("cluster: {} deliveries, {duplicates} duplicates", got.len());
    assert_eq!(
        seen.len(),
        expected,
        "every event to every subscribed endpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_and_cli_work_on_a_cluster() {
    let cluster = Cluster::start(3);
    let env = cluster_env(&cluster);
    let receiver = Receiver::sequence(&[500]).await;
    let daemon = Daemon::ready(&env).await;
    let api = Api::new(&daemon.admin, &api_key(&env, "ws_c", "admin"));
    let base = "/api/v1/workspaces/ws_c";
    let ep = api
        .call(
            "POST",
            &format!("{base}/endpoints"),
            Some(json!({"url": receiver.url(), "event_types": ["card.created"]})),
        )
        .await;
    assert_eq!(ep.status, 201, "{:?}", ep.body);
    let id = ep.body["id"].as_str().unwrap().to_string();
    let published = api
        .call(
            "POST",
            &format!("{base}/events"),
            Some(json!({"type": "card.created", "data": {"n": 1}})),
        )
        .await;
    assert_eq!(published.status, 202, "{:?}", published.body);
    // The first attempt fails (500), the retry succeeds.
    receiver.wait_for(2, WAIT).await;
    let page = eventually(WAIT, "a succeeded delivery", || async {
        let r = api
            .call("GET", &format!("{base}/deliveries?endpoint_id={id}"), None)
            .await;
        (r.body["data"][0]["status"] == "succeeded").then_some(r.body)
    })
    .await;
    let delivery = page["data"][0]["id"].as_str().unwrap().to_string();
    let one = api
        .call("GET", &format!("{base}/deliveries/{delivery}"), None)
        .await;
    assert_eq!(one.body["attempts"].as_array().unwrap().len(), 2);
    // History by workspace, through the CLI too.
    let listed = cli_json(&env, &["deliveries", "list", "--workspace", "ws_c"]);
    assert_eq!(listed["data"][0]["id"], delivery.as_str());
    // Redeliver, recover, rotate, pause and resume, event types, keys.
    let r = api
        .call(
            "POST",
            &format!("{base}/deliveries/{delivery}/redeliver"),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    receiver.wait_for(3, WAIT).await;
    let job = api
        .call(
            "POST",
            &format!("{base}/endpoints/{id}/recover"),
            Some(json!({"since": "2020-01-01T00:00:00Z", "status": "succeeded"})),
        )
        .await;
    assert_eq!(job.status, 202, "{:?}", job.body);
    let job_id = job.body["id"].as_str().unwrap().to_string();
    eventually(WAIT, "the recovery job completes", || async {
        let j = api
            .call("GET", &format!("{base}/jobs/{job_id}"), None)
            .await;
        (j.body["state"] == "completed").then_some(())
    })
    .await;
    let rotated = cli_json(&env, &["endpoints", "rotate-secret", &id, "--grace", "1h"]);
    assert!(rotated["secret"].is_string());
    cli_json(&env, &["endpoints", "pause", &id]);
    let resumed = cli_json(&env, &["endpoints", "resume", &id]);
    assert_eq!(resumed["endpoint"]["paused"], false);
    // (Types seen are counted within half a second of being settled.)
    eventually(WAIT, "the event type is listed", || async {
        let types = api.call("GET", "/api/v1/event-types", None).await;
        (types.body["data"][0]["name"] == "card.created").then_some(())
    })
    .await;
    let keys = cli_json(&env, &["keys", "list", "--workspace", "ws_c"]);
    assert_eq!(keys["data"].as_array().unwrap().len(), 1);
    let jobs = cli_json(&env, &["jobs", "list", "--workspace", "ws_c"]);
    assert_eq!(jobs["data"][0]["id"], job_id.as_str());
}

/// A master is SIGKILLed while events flow and deliveries are in flight; its
/// replica is promoted, the daemons follow by themselves, and every event
/// the producer saw replicated (XADD then WAIT 1) is delivered at least once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_failover_mid_run_loses_no_replicated_event() {
    let mut cluster = Cluster::start(3);
    let env = cluster_env(&cluster);
    let receiver = Receiver::ok().await;
    for w in 0..20 {
        create_endpoint(&env, &format!("ws_{w}"), &receiver.url(), &[]);
    }
    let _a = Daemon::ready(&env).await;
    let _b = Daemon::ready(&env).await;
    let seed_port = cluster.ports[0];
    let victim = cluster.master_of("hookd:events:p0");
    // Seed the producer with a node that survives.
    let seed = if victim == seed_port {
        cluster.ports[1]
    } else {
        seed_port
    };
    let producer = start_safe_producer(seed, 20, 15, 5);
    // Mid-run: some delivered, more to come.
    receiver.wait_for(60, WAIT).await;
    cluster.kill(victim);
    let killed_at = receiver.count();
    // Its replica takes over (cluster-node-timeout 2 s). The killed node is
    // then started again, as an orchestrator would: it rejoins as the new
    // master's replica, so the producer's WAIT 1 can be answered again (a
    // master with no replica cannot confirm a write is kept).
    std::thread::sleep(Duration::from_secs(5));
    cluster.restart(victim);
    let (kept, producer_log) = kept_events(producer);
    assert_eq!(kept.len(), 300);
    cluster.wait_ok();
    let got = all_received(&receiver, &kept).await;
    let duplicates = got.len() - kept.len();
    println!(
        "failover: 300 events kept, master {victim} killed after {killed_at} deliveries, {} deliveries, 0 lost, {duplicates} duplicates; producer {}",
        got.len(),
        producer_log
    );
}

/// A partition's slot is migrated to another master while events flow: the
/// daemons follow it without a restart and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_moves_to_another_master_mid_run_and_nothing_is_lost() {
    let cluster = Cluster::start(3);
    let env = cluster_env(&cluster);
    let receiver = Receiver::ok().await;
    for w in 0..20 {
        create_endpoint(&env, &format!("ws_{w}"), &receiver.url(), &[]);
    }
    let _a = Daemon::ready(&env).await;
    let _b = Daemon::ready(&env).await;
    let stream = "hookd:events:p0";
    let from = cluster.master_of(stream);
    let to = cluster.other_masters(from)[0];
    let producer = start_safe_producer(cluster.ports[0], 20, 15, 5);
    receiver.wait_for(60, WAIT).await;
    let moved_at = receiver.count();
    cluster.migrate_slot_of(stream, from, to);
    assert_eq!(cluster.master_of(stream), to, "the partition moved");
    let (kept, _) = kept_events(producer);
    assert_eq!(kept.len(), 300);
    let got = all_received(&receiver, &kept).await;
    println!(
        "resharding: 300 events, partition p0 moved {from} -> {to} after {moved_at} deliveries, {} deliveries, 0 lost, {} duplicates",
        got.len(),
        got.len() - kept.len()
    );
}

/// `hookd publish` of one event per workspace in `workspaces`; returns the ids.
fn publish_batch(env: &[(String, String)], workspaces: &[String], batch: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for ws in workspaces {
        let id = format!("{batch}-{ws}");
        cli(
            env,
            &[
                "publish",
                "--workspace",
                ws,
                "--type",
                "card.created",
                "--data",
                "{}",
                "--id",
                &id,
            ],
        );
        ids.push(id);
    }
    ids
}

/// The partition-count procedure of deploy/README.md on the cluster: 6 -> 4
/// partitions (two streams retire, workspaces move between masters, keys
/// found by SCAN on the primary serving each partition).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_partition_count_changes_on_a_cluster_without_losing_events() {
    let cluster = Cluster::start(3);
    let env6 = cluster_env(&cluster);
    let mut env4 = env6.clone();
    env4.push(("HOOKD__INGEST__PARTITIONS".into(), "4".into()));
    let receiver = Receiver::ok().await;
    let workspaces: Vec<String> = (0..20).map(|w| format!("ws_{w}")).collect();
    let mut endpoints = Vec::new();
    for ws in &workspaces {
        endpoints.push(create_endpoint(&env6, ws, &receiver.url(), &[]).0);
    }
    let mut daemon = Daemon::ready(&env6).await;
    let a = publish_batch(&env6, &workspaces, "a");
    all_received(&receiver, &a.iter().cloned().collect()).await;
    assert!(daemon.terminate());
    // Waiting while the daemons are stopped, some on streams that retire.
    let b = publish_batch(&env6, &workspaces, "b");

    let report = cli_json(&env6, &["repartition", "--to", "4"]);
    println!("cluster 6 -> 4: {report}");
    assert_eq!(
        report["retired_streams"],
        json!(["hookd:events:p4", "hookd:events:p5"])
    );
    assert!(report["workspaces_moved"].as_u64().unwrap() > 0, "{report}");
    assert!(report["envelopes_copied"].as_u64().unwrap() > 0, "{report}");

    let _daemon = Daemon::ready(&env4).await;
    let c = publish_batch(&env4, &workspaces, "c");
    let all: HashSet<String> = [a, b, c].into_iter().flatten().collect();
    let got = all_received(&receiver, &all).await;
    println!(
        "cluster 6 -> 4: {} events, 0 lost, {} duplicates",
        all.len(),
        got.len() - all.len()
    );
    // Every endpoint's history still holds its three deliveries.
    for ep in &endpoints {
        let listed = cli_json(&env4, &["deliveries", "list", "--endpoint", ep]);
        assert_eq!(
            listed["data"].as_array().unwrap().len(),
            3,
            "{ep}: {listed}"
        );
    }
}
