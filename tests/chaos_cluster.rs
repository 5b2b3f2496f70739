//! The chaos suite on Redis Cluster: three masters with a replica each, six
//! partitions, three daemons and a producer that counts an event once a
//! replica has it (XADD, WAIT 1). While it publishes, daemons are killed
//! with SIGKILL and restarted, a master is killed (its replica takes over)
//! and brought back as a replica, and the receiver answers 500 or 429 now
//! and then. At the end every kept event has been answered 2xx at least
//! once; duplicates are counted and printed.
//!
//! `make test` runs it for 15 s; `make chaos-cluster` for CHAOS_SECONDS (300).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod cluster_harness;
mod harness;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_harness::{Cluster, PARTITIONS, cluster_env, kept_events, start_safe_producer};
use harness::*;

/// The receiver's answer to its `n`th request: mostly 200, some 500s, some 429s.
fn answer(n: usize) -> (u16, Vec<(String, String)>) {
    match n % 13 {
        3 => (500, vec![]),
        7 => (429, vec![("retry-after".into(), "1".into())]),
        _ => (200, vec![]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_a_cluster_every_replicated_event_reaches_its_endpoint() {
    let seconds: u64 = std::env::var("CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let mut cluster = Cluster::start(3);
    let env = cluster_env(&cluster);
    let receiver = Receiver::with_plan(Arc::new(answer)).await;
    let workspaces = 20;
    for w in 0..workspaces {
        create_endpoint(&env, &format!("ws_{w}"), &receiver.url(), &[]);
    }
    let mut daemons: Vec<Daemon> = Vec::new();
    for _ in 0..3 {
        daemons.push(Daemon::ready(&env).await);
    }
    // About 50 events/s for the run's length.
    let per_workspace = (seconds * 50 / workspaces).max(5);
    let producer = start_safe_producer(cluster.ports[0], workspaces, per_workspace, 15);

    let start = Instant::now();
    let (mut daemon_kills, mut master_kills) = (0, 0);
    let mut victim: Option<(u16, Instant)> = None;
    let mut next_master_kill = start + Duration::from_secs(seconds / 3);
    while start.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        // A daemon dies without warning and comes back.
        let i = fastrand::usize(..daemons.len());
        daemons[i].kill9();
        daemons[i] = Daemon::start(&env);
        daemon_kills += 1;
        // A master dies; its replica takes over; the node comes back 5 s
        // later as a replica (so the producer's WAIT 1 can be answered).
        match victim {
            None if Instant::now() >= next_master_kill => {
                let partition = fastrand::u32(..PARTITIONS);
                let port = cluster.master_of(&format!("hookd:events:p{partition}"));
                cluster.kill(port);
                master_kills += 1;
                victim = Some((port, Instant::now()));
            }
            Some((port, at)) if at.elapsed() >= Duration::from_secs(5) => {
                cluster.restart(port);
                cluster.wait_ok();
                victim = None;
                next_master_kill = Instant::now() + Duration::from_secs(seconds / 3);
            }
            _ => {}
        }
    }
    if let Some((port, _)) = victim {
        tokio::time::sleep(Duration::from_secs(5)).await;
        cluster.restart(port);
        cluster.wait_ok();
    }
    let (kept, producer_log) = kept_events(producer);
    assert_eq!(kept.len() as u64, workspaces * per_workspace);

    // Every kept event answered 2xx at least once.
    let delivered = eventually(
        Duration::from_secs(180),
        "every kept event delivered",
        || async {
            let mut ok: HashMap<String, usize> = HashMap::new();
            for (n, r) in receiver.received().iter().enumerate() {
                if answer(n).0 == 200
                    && let Some(id) = r.header("X-Hookd-Event-Id")
                {
                    *ok.entry(id.to_string()).or_default() += 1;
                }
            }
            kept.iter().all(|id| ok.contains_key(id)).then_some(ok)
        },
    )
    .await;
    let duplicates: usize = delivered.values().map(|n| n - 1).sum();
    println!(
        "chaos-cluster: {seconds} s, {} events kept, {daemon_kills} daemon kills, {master_kills} master kills, {} requests, 0 lost, {duplicates} duplicates; producer {}",
        kept.len(),
        receiver.count(),
        producer_log
    );
}
