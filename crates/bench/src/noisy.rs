//! The tenant-isolation scenarios: quiet workspaces publishing at a steady
//! rate while another workspace bursts.
//!
//! - `noisy-neighbour`: four quiet workspaces at `--quiet-rate` events/s in
//!   all (50/s each by default); after `--quiet-lead-secs`, another
//!   workspace writes `--events` events as fast as one pipelined
//!   connection can. The quiet workspaces' publish-to-receive latency is
//!   reported before the burst (nothing else running) and while the burst
//!   is written and drained, in the same run.
//! - `noisy-backlog`: the same, but the burst is already waiting in the
//!   stream when hookd starts (recovery after an outage).
//!
//! Each quiet workspace has its own endpoint (one receiver serves all four;
//! event ids are unique across them); the noisy workspace's endpoint has
//! its own receiver.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::{Args, Killed, Log, hookd, percentile, proc_stat, receiver, redis_usage, start_redis};

const QUIET: [&str; 4] = ["quiet-0", "quiet-1", "quiet-2", "quiet-3"];
const NOISY: &str = "noisy";

/// Registers one endpoint of `workspace` at `port`.
fn endpoint(
    args: &Args,
    env: &[(String, String)],
    workspace: &str,
    port: u16,
) -> anyhow::Result<()> {
    let out = hookd(args, env)
        .args(["endpoints", "create", "--workspace", workspace, "--url"])
        .arg(format!("http://127.0.0.1:{port}/hook"))
        .arg("--json")
        .output()?;
    if !out.status.success() {
        bail!(
            "creating an endpoint failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Writes `n` events of the noisy workspace, pipelined 1,000 at a time on
/// one connection; returns when the last is written.
async fn burst(
    conn: &mut redis::aio::MultiplexedConnection,
    n: usize,
    data: &str,
) -> anyhow::Result<()> {
    let mut sent = 0;
    while sent < n {
        let end = (sent + 1000).min(n);
        let mut pipe = redis::pipe();
        for i in sent..end {
            pipe.cmd("XADD")
                .arg("hookd:events")
                .arg("*")
                .arg("type")
                .arg("bench.event")
                .arg("workspace")
                .arg(NOISY)
                .arg("id")
                .arg(i.to_string())
                .arg("data")
                .arg(data)
                .ignore();
        }
        pipe.query_async::<()>(conn).await?;
        sent = end;
    }
    Ok(())
}

/// Latency percentiles (ms) of the quiet events published in [from, to).
fn window(published: &[Duration], log: &Log, from: Duration, to: Duration) -> serde_json::Value {
    let mut lat = Vec::new();
    let mut missing = 0;
    for (i, at) in published.iter().enumerate() {
        if *at < from || *at >= to {
            continue;
        }
        match log.first[i].load(Ordering::Relaxed) {
            0 => missing += 1,
            ns => lat.push(
                Duration::from_nanos(ns - 1)
                    .saturating_sub(*at)
                    .as_secs_f64()
                    * 1000.0,
            ),
        }
    }
    lat.sort_by(f64::total_cmp);
    json!({
        "events": lat.len() + missing,
        "missing": missing,
        "p50": percentile(&lat, 0.50),
        "p99": percentile(&lat, 0.99),
        "max": lat.last().copied().unwrap_or(0.0),
    })
}

pub(crate) async fn run(args: &Args, backlog: bool) -> anyhow::Result<serde_json::Value> {
    let epoch = Instant::now();
    let redis = start_redis(0)?;
    let client = redis::Client::open(redis.url.as_str())?;
    let mut nodes = vec![client.get_multiplexed_async_connection().await?];
    let mut env: Vec<(String, String)> = vec![
        ("HOOKD__REDIS__URL".into(), redis.url.clone()),
        ("HOOKD__LOG__LEVEL".into(), "warn".into()),
        (
            "HOOKD__DELIVERY__ALLOW_NETWORKS".into(),
            "127.0.0.0/8".into(),
        ),
        ("HOOKD__ADMIN__ENABLED".into(), "false".into()),
    ];
    for s in &args.settings {
        let (k, v) = s
            .split_once('=')
            .context("--set takes HOOKD__SECTION__KEY=value")?;
        env.push((k.into(), v.into()));
    }
    // Quiet events: at most rate x (lead + timeout + tail) of them.
    let quiet_max =
        (args.quiet_rate as f64 * (args.quiet_lead_secs + args.timeout_secs as f64 + 5.0)) as usize;
    let unused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (quiet_port, quiet_log) =
        receiver(epoch, quiet_max, Duration::ZERO, 0.0, unused.clone()).await?;
    let (noisy_port, noisy_log) = receiver(epoch, args.events, Duration::ZERO, 0.0, unused).await?;
    for ws in QUIET {
        endpoint(args, &env, ws, quiet_port)?;
    }
    endpoint(args, &env, NOISY, noisy_port)?;

    let data = json!({ "pad": "x".repeat(args.payload_bytes.saturating_sub(10)) }).to_string();
    let mut burst_conn = client.get_multiplexed_async_connection().await?;
    if backlog {
        // Waiting before hookd starts: an outage's backlog.
        burst(&mut burst_conn, args.events, &data).await?;
    }
    // (In noisy-backlog the burst is all there is from the start: no quiet
    // event is "alone".)
    let backlog_start = epoch.elapsed();
    let (used_before, redis_cpu_before, _) = redis_usage(&mut nodes).await?;
    let (_, bench_cpu_before) = proc_stat(std::process::id());
    let daemon = Killed(
        hookd(args, &env)
            .arg("serve")
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting hookd serve")?,
    );
    let pid = daemon.0.id();
    if !backlog {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The quiet publisher: its own connection, one event per tick, round robin.
    let stop = Arc::new(AtomicBool::new(false));
    let quiet = {
        let (stop, data) = (stop.clone(), data.clone());
        let mut conn = client.get_multiplexed_async_connection().await?;
        let rate = args.quiet_rate.max(1);
        tokio::spawn(async move {
            let mut published = Vec::with_capacity(quiet_max);
            let tick = Duration::from_secs_f64(1.0 / rate as f64);
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) && published.len() < quiet_max {
                let i = published.len();
                let at = epoch.elapsed();
                let sent: redis::RedisResult<String> = redis::cmd("XADD")
                    .arg("hookd:events")
                    .arg("*")
                    .arg("type")
                    .arg("bench.event")
                    .arg("workspace")
                    .arg(QUIET[i % QUIET.len()])
                    .arg("id")
                    .arg(i.to_string())
                    .arg("data")
                    .arg(&data)
                    .query_async(&mut conn)
                    .await;
                if sent.is_err() {
                    break;
                }
                published.push(at);
                next += tick;
                tokio::time::sleep_until(next.into()).await;
            }
            published
        })
    };

    let (burst_start, burst_written) = if backlog {
        (backlog_start, backlog_start)
    } else {
        tokio::time::sleep(Duration::from_secs_f64(args.quiet_lead_secs)).await;
        let start = epoch.elapsed();
        burst(&mut burst_conn, args.events, &data).await?;
        (start, epoch.elapsed())
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    while noisy_log.received.load(Ordering::Relaxed) < args.events && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = epoch.elapsed();
    // A little after, so the last quiet events of the window arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let published = quiet.await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_kb, cpu_secs) = proc_stat(pid);
    let (_, bench_cpu_after) = proc_stat(std::process::id());
    let (used_after, redis_cpu_after, _) = redis_usage(&mut nodes).await?;
    let redis_commands = crate::redis_top_commands(&mut nodes[0]).await?;
    drop(daemon);

    let noisy_received = noisy_log.received.load(Ordering::Relaxed);
    let quiet_received = quiet_log.received.load(Ordering::Relaxed);
    let deliveries = (noisy_received + quiet_received).max(1) as f64;
    let noisy_secs =
        Duration::from_nanos(noisy_log.last_ns.load(Ordering::Relaxed).saturating_sub(1))
            .saturating_sub(burst_start)
            .as_secs_f64();
    for dir in &redis.dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(json!({
        "scenario": args.scenario,
        "events": args.events,
        "quiet_rate": args.quiet_rate,
        "noisy_received": noisy_received,
        "noisy_deliveries_per_sec": if noisy_secs > 0.0 { noisy_received as f64 / noisy_secs } else { 0.0 },
        "burst_write_seconds": (burst_written - burst_start).as_secs_f64(),
        "burst_drain_seconds": (drained - burst_start).as_secs_f64(),
        "quiet_published": published.len(),
        "quiet_received": quiet_received,
        // Nothing else running (noisy-neighbour only: the first seconds).
        "quiet_alone_ms": window(&published, &quiet_log, Duration::ZERO, burst_start),
        // Published while the burst was written or drained.
        "quiet_during_burst_ms": window(&published, &quiet_log, burst_start, drained),
        "hookd_peak_rss_mb": rss_kb as f64 / 1024.0,
        "hookd_cpu_us_per_delivery": cpu_secs * 1e6 / deliveries,
        "redis_cpu_us_per_delivery": (redis_cpu_after - redis_cpu_before) * 1e6 / deliveries,
        "bench_cpu_us_per_delivery": (bench_cpu_after - bench_cpu_before) * 1e6 / deliveries,
        "redis_bytes_per_delivery": (used_after - used_before) / deliveries,
        "redis_top_commands": redis_commands,
    }))
}
