//! hookd-bench: runs one benchmark scenario end to end and prints one JSON document.
//!
//! It starts its own `redis-server` (free loopback port), HTTP receivers that
//! answer 204 (or slowly) and record each event id with its arrival time,
//! registers endpoints through the `hookd` CLI, starts `hookd serve`, publishes
//! events with pipelined XADD (a burst, or a fixed rate), and waits until every
//! expected delivery arrived or the time limit passed. It reports deliveries/s,
//! publish-to-receive latency percentiles, missing and duplicate deliveries,
//! hookd's peak RSS and CPU time, and Redis memory per retained delivery.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;

mod noisy;

#[derive(Parser, Debug)]
#[command(about = "Run one hookd benchmark scenario; prints a JSON result.")]
pub(crate) struct Args {
    /// Scenario name, copied into the result.
    #[arg(long, default_value = "burst")]
    scenario: String,
    /// The hookd binary to run (a release build).
    #[arg(long, default_value = "target/release/hookd")]
    hookd: PathBuf,
    /// Events to publish.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Fast endpoints each event fans out to.
    #[arg(long, default_value_t = 1)]
    endpoints: usize,
    /// Extra endpoints that answer after `--slow-ms` (fairness scenario).
    #[arg(long, default_value_t = 0)]
    slow_endpoints: usize,
    #[arg(long, default_value_t = 2000)]
    slow_ms: u64,
    /// Publish at this many events/s (0 = all at once, pipelined).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Fraction of requests the fast receivers answer with 500 (0..1); hookd retries them.
    #[arg(long, default_value_t = 0.0)]
    fail_fraction: f64,
    /// Size of each event's `data` in bytes (approximate).
    #[arg(long, default_value_t = 256)]
    payload_bytes: usize,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Extra `HOOKD__...=value` settings for the daemon.
    #[arg(long = "set")]
    settings: Vec<String>,
    /// Run on a Redis Cluster of this many masters (no replicas) instead of
    /// one redis-server; 0: one node.
    #[arg(long, default_value_t = 0)]
    cluster_masters: usize,
    /// Stream partitions (`[ingest] partitions`); with a cluster, spread
    /// over its masters.
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    /// Workspaces the events are spread over (round robin), each with its
    /// endpoints; with partitions, they spread over the partitions.
    #[arg(long, default_value_t = 1)]
    workspaces: usize,
    /// noisy-neighbour and noisy-backlog: the quiet workspaces' events/s, in all.
    #[arg(long, default_value_t = 200)]
    quiet_rate: u64,
    /// Give each event an `ordering_key`, one of this many (round robin); 0: none.
    #[arg(long, default_value_t = 0)]
    ordering_keys: usize,
    /// Create the endpoints with `--ordering key` (each key's events one at
    /// a time, in order).
    #[arg(long)]
    ordered: bool,
    /// noisy-neighbour: seconds of quiet traffic alone before the burst.
    #[arg(long, default_value_t = 2.0)]
    quiet_lead_secs: f64,
}

/// The workspaces of a run: `bench`, or `bench-0` .. `bench-<n-1>`.
fn workspace_names(n: usize) -> Vec<String> {
    if n <= 1 {
        vec!["bench".to_string()]
    } else {
        (0..n).map(|i| format!("bench-{i}")).collect()
    }
}

/// The stream a workspace's events go to: FNV-1a (32-bit) of its id modulo
/// the partition count, as every producer computes it (docs/producers).
fn stream_of(workspace: &str, partitions: u32) -> String {
    if partitions <= 1 {
        return "hookd:events".to_string();
    }
    let mut hash: u32 = 0x811c_9dc5;
    for b in workspace.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("hookd:events:p{}", hash % partitions)
}

/// The Redis the run uses: one node, or a cluster of masters.
pub(crate) struct Redis {
    _nodes: Vec<Killed>,
    ports: Vec<u16>,
    dirs: Vec<PathBuf>,
    url: String,
    cluster: bool,
}

pub(crate) fn start_redis(masters: usize) -> anyhow::Result<Redis> {
    let count = masters.max(1);
    let (mut nodes, mut ports, mut dirs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..count {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("hookd-bench-{port}"));
        std::fs::create_dir_all(&dir)?;
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null());
        if masters > 0 {
            cmd.args(["--cluster-enabled", "yes"]);
        }
        nodes.push(Killed(cmd.spawn().context("starting redis-server")?));
        ports.push(port);
        dirs.push(dir);
    }
    for port in &ports {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
            if Instant::now() > deadline {
                bail!("redis-server did not start on {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if masters > 0 {
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()?;
        if !out.status.success() {
            bail!(
                "redis-cli --cluster create: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = ports.iter().all(|p| {
                Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "cluster", "info"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
            });
            if ok {
                break;
            }
            if Instant::now() > deadline {
                bail!("the cluster did not become ok");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let url = ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    Ok(Redis {
        _nodes: nodes,
        ports,
        dirs,
        url,
        cluster: masters > 0,
    })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Arrivals at one receiver, recorded without a lock or an allocation per
/// request (the receiver must not be what limits the benchmark): for each
/// event id (the bench publishes ids `0..events`), when it first arrived
/// (ns since the run's epoch, plus one; 0: not yet) and how often.
pub(crate) struct Arrivals {
    first: Vec<AtomicU64>,
    times: Vec<AtomicU32>,
    /// 2xx answers given, and the latest (ns since the epoch).
    received: AtomicUsize,
    last_ns: AtomicU64,
    /// Requests whose event id was not one the bench published.
    unknown: AtomicUsize,
}

impl Arrivals {
    fn new(events: usize) -> Self {
        Self {
            first: (0..events).map(|_| AtomicU64::new(0)).collect(),
            times: (0..events).map(|_| AtomicU32::new(0)).collect(),
            received: AtomicUsize::new(0),
            last_ns: AtomicU64::new(0),
            unknown: AtomicUsize::new(0),
        }
    }

    fn record(&self, id: Option<usize>, at: Duration) {
        let ns = at.as_nanos() as u64 + 1;
        match id.filter(|i| *i < self.first.len()) {
            Some(i) => {
                let _ = self.first[i].compare_exchange(0, ns, Ordering::Relaxed, Ordering::Relaxed);
                self.times[i].fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.unknown.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.last_ns.fetch_max(ns, Ordering::Relaxed);
        self.received.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) type Log = Arc<Arrivals>;

/// A receiver answering 204 after `delay`, or 500 to `fail_fraction` of the
/// requests (spread evenly); only successful answers are logged, failed ones
/// are counted in `failed`.
pub(crate) async fn receiver(
    epoch: Instant,
    events: usize,
    delay: Duration,
    fail_fraction: f64,
    failed: Arc<AtomicUsize>,
) -> anyhow::Result<(u16, Log)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let log: Log = Arc::new(Arrivals::new(events));
    let sink = log.clone();
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let (sink, seen, failed) = (sink.clone(), seen.clone(), failed.clone());
        async move {
            let n = seen.fetch_add(1, Ordering::Relaxed) as f64;
            if ((n + 1.0) * fail_fraction).floor() > (n * fail_fraction).floor() {
                failed.fetch_add(1, Ordering::Relaxed);
                return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
            }
            let id = request
                .headers()
                .get("x-hookd-event-id")
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
                .and_then(|v| v.parse::<usize>().ok());
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            sink.record(id, epoch.elapsed());
            axum::http::StatusCode::NO_CONTENT
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((port, log))
}

pub(crate) fn hookd(args: &Args, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(&args.hookd);
    cmd.envs(env.iter().cloned());
    cmd
}

pub(crate) fn proc_stat(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kb = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_comm = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    (hwm_kb, ticks as f64 / 100.0)
}

/// The commands Redis spent the most time in: (command, calls, total ms, µs per call).
pub(crate) async fn redis_top_commands(
    conn: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    // cmdstat_evalsha:calls=12623,usec=7470000,usec_per_call=591.78,...
    let mut stats: Vec<(String, u64, u64)> = info
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            };
            Some((name.to_string(), field("calls")?, field("usec")?))
        })
        .collect();
    stats.sort_by_key(|s| std::cmp::Reverse(s.2));
    Ok(stats
        .into_iter()
        .take(16)
        .map(|(name, calls, usec)| {
            json!({ "command": name, "calls": calls, "ms": usec / 1000, "us_per_call": usec as f64 / calls.max(1) as f64 })
        })
        .collect())
}

/// Redis's memory in use (bytes) and the CPU time it has spent (seconds,
/// user + system), summed over its nodes, and each node's CPU time.
pub(crate) async fn redis_usage(
    nodes: &mut [redis::aio::MultiplexedConnection],
) -> anyhow::Result<(f64, f64, Vec<f64>)> {
    let (mut memory, mut cpu, mut by_node) = (0.0, 0.0, Vec::new());
    for conn in nodes {
        let info: String = redis::cmd("INFO").query_async(conn).await?;
        let field = |name: &str| -> anyhow::Result<f64> {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
                .with_context(|| format!("INFO has no {name}"))
        };
        memory += field("used_memory")?;
        let node = field("used_cpu_user")? + field("used_cpu_sys")?;
        cpu += node;
        by_node.push(node);
    }
    Ok((memory, cpu, by_node))
}

/// Where the bench publishes: one node, or the cluster (following its slots).
#[derive(Clone)]
enum Publisher {
    Node(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Publisher {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Publisher::Node(c) => c.req_packed_command(cmd),
            Publisher::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Publisher::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Publisher::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        0
    }
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.hookd.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p hookd`",
            args.hookd.display()
        );
    }
    if matches!(args.scenario.as_str(), "noisy-neighbour" | "noisy-backlog") {
        let result = noisy::run(&args, args.scenario == "noisy-backlog").await?;
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    let epoch = Instant::now();

    let redis = start_redis(args.cluster_masters)?;
    // One plain connection per node, for INFO; the publisher's connection
    // follows the cluster's slots.
    let mut nodes = Vec::new();
    for port in &redis.ports {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        nodes.push(loop {
            match client.get_multiplexed_async_connection().await {
                Ok(c) => break c,
                Err(_) if epoch.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => return Err(e.into()),
            }
        });
    }
    let mut conn = if redis.cluster {
        Publisher::Cluster(
            redis::cluster::ClusterClient::new(redis.url.split(',').collect::<Vec<_>>())?
                .get_async_connection()
                .await?,
        )
    } else {
        Publisher::Node(nodes[0].clone())
    };
    let url = redis.url.clone();

    let mut env: Vec<(String, String)> = vec![
        ("HOOKD__REDIS__URL".into(), url.clone()),
        ("HOOKD__LOG__LEVEL".into(), "warn".into()),
        // The benchmark's receivers are on loopback.
        (
            "HOOKD__DELIVERY__ALLOW_NETWORKS".into(),
            "127.0.0.0/8".into(),
        ),
        ("HOOKD__ADMIN__ENABLED".into(), "false".into()),
        (
            "HOOKD__INGEST__PARTITIONS".into(),
            args.partitions.to_string(),
        ),
        ("HOOKD__REDIS__CLUSTER".into(), redis.cluster.to_string()),
    ];
    let workspaces = workspace_names(args.workspaces);
    for s in &args.settings {
        let (k, v) = s
            .split_once('=')
            .context("--set takes HOOKD__SECTION__KEY=value")?;
        env.push((k.into(), v.into()));
    }

    let failed_answers = Arc::new(AtomicUsize::new(0));
    let mut fast = Vec::new();
    let mut slow = Vec::new();
    for i in 0..args.endpoints + args.slow_endpoints {
        let is_slow = i >= args.endpoints;
        let delay = if is_slow {
            Duration::from_millis(args.slow_ms)
        } else {
            Duration::ZERO
        };
        let fail = if is_slow {
            0.0
        } else {
            args.fail_fraction.clamp(0.0, 1.0)
        };
        let (port, log) = receiver(epoch, args.events, delay, fail, failed_answers.clone()).await?;
        // The receiver is an endpoint of every workspace: each event reaches it once.
        for ws in &workspaces {
            let mut create = hookd(&args, &env);
            create.args([
                "endpoints",
                "create",
                "--workspace",
                ws,
                "--url",
                &format!("http://127.0.0.1:{port}/hook"),
                "--json",
            ]);
            if args.ordered {
                create.args(["--ordering", "key"]);
            }
            let out = create.output()?;
            if !out.status.success() {
                bail!(
                    "creating an endpoint failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        if is_slow {
            slow.push(log)
        } else {
            fast.push(log)
        }
    }
    let (used_before, redis_cpu_before, nodes_before) = redis_usage(&mut nodes).await?;
    let (_, bench_cpu_before) = proc_stat(std::process::id());

    let daemon = Killed(
        hookd(&args, &env)
            .arg("serve")
            .stdout(Stdio::null())
            .spawn()
            .context("starting hookd serve")?,
    );
    let pid = daemon.0.id();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let data = json!({ "pad": "x".repeat(args.payload_bytes.saturating_sub(10)) }).to_string();
    let mut published = vec![Duration::ZERO; args.events];
    let publish_start = epoch.elapsed();
    let chunk = if args.rate == 0 {
        1000
    } else {
        (args.rate / 100).max(1) as usize
    };
    let mut next_tick = Instant::now();
    let mut sent = 0;
    while sent < args.events {
        let end = (sent + chunk).min(args.events);
        // One pipeline per stream (a cluster pipeline stays in one slot).
        let mut pipes: std::collections::BTreeMap<String, redis::Pipeline> = Default::default();
        for i in sent..end {
            let ws = &workspaces[i % workspaces.len()];
            let pipe = pipes
                .entry(stream_of(ws, args.partitions))
                .or_insert_with(redis::pipe);
            pipe.cmd("XADD")
                .arg(stream_of(ws, args.partitions))
                .arg("*")
                .arg("type")
                .arg("bench.event")
                .arg("workspace")
                .arg(ws)
                .arg("id")
                .arg(i.to_string())
                .arg("data")
                .arg(&data);
            if args.ordering_keys > 0 {
                pipe.arg("ordering_key")
                    .arg(format!("key-{}", i % args.ordering_keys));
            }
            pipe.ignore();
        }
        let at = epoch.elapsed();
        for pipe in pipes.values() {
            pipe.query_async::<()>(&mut conn).await?;
        }
        for p in &mut published[sent..end] {
            *p = at;
        }
        sent = end;
        if args.rate > 0 {
            next_tick += Duration::from_secs_f64(chunk as f64 / args.rate as f64);
            tokio::time::sleep_until(next_tick.into()).await;
        }
    }
    let publish_secs = (epoch.elapsed() - publish_start).as_secs_f64();

    let expected = args.events * fast.len();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let count = |logs: &[Log]| {
        logs.iter()
            .map(|l| l.received.load(Ordering::Relaxed))
            .sum::<usize>()
    };
    while count(&fast) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (rss_kb, cpu_secs) = proc_stat(pid);
    let (_, bench_cpu_after) = proc_stat(std::process::id());
    let (used_after, redis_cpu_after, nodes_after) = redis_usage(&mut nodes).await?;
    let redis_commands = redis_top_commands(&mut nodes[0]).await?;
    drop(daemon);

    let mut latencies = Vec::with_capacity(expected);
    let mut last = Duration::ZERO;
    let (mut missing, mut duplicates) = (0usize, 0usize);
    for log in &fast {
        for (i, published_at) in published.iter().enumerate() {
            match log.times[i].load(Ordering::Relaxed) {
                0 => missing += 1,
                n => {
                    duplicates += n as usize - 1;
                    let at = Duration::from_nanos(log.first[i].load(Ordering::Relaxed) - 1);
                    latencies.push(at.saturating_sub(*published_at).as_secs_f64() * 1000.0);
                }
            }
        }
        duplicates += log.unknown.load(Ordering::Relaxed);
        last = last.max(Duration::from_nanos(
            log.last_ns.load(Ordering::Relaxed).saturating_sub(1),
        ));
    }
    latencies.sort_by(f64::total_cmp);
    let received = latencies.len();
    let elapsed = (last.saturating_sub(publish_start)).as_secs_f64();
    let per_delivery = |total: f64| {
        if received > 0 {
            total / received as f64
        } else {
            0.0
        }
    };
    let result = json!({
        "scenario": args.scenario,
        "cluster_masters": args.cluster_masters,
        "partitions": args.partitions,
        "workspaces": workspaces.len(),
        "events": args.events,
        "endpoints": args.endpoints,
        "slow_endpoints": args.slow_endpoints,
        "rate": args.rate,
        "payload_bytes": args.payload_bytes,
        "expected_deliveries": expected,
        "received": received,
        "missing": missing,
        "duplicates": duplicates,
        "seconds": elapsed,
        "publish_seconds": publish_secs,
        "deliveries_per_sec": if elapsed > 0.0 { received as f64 / elapsed } else { 0.0 },
        "latency_ms": {
            "p50": percentile(&latencies, 0.50),
            "p90": percentile(&latencies, 0.90),
            "p99": percentile(&latencies, 0.99),
            "max": latencies.last().copied().unwrap_or(0.0),
        },
        "hookd_peak_rss_mb": rss_kb as f64 / 1024.0,
        "hookd_cpu_seconds": cpu_secs,
        "redis_bytes_per_delivery": per_delivery(used_after - used_before),
        "redis_cpu_seconds": redis_cpu_after - redis_cpu_before,
        // Steadier than deliveries/s on a shared machine: what each delivery cost.
        "hookd_cpu_us_per_delivery": per_delivery(cpu_secs * 1e6),
        "redis_cpu_us_per_delivery": per_delivery((redis_cpu_after - redis_cpu_before) * 1e6),
        // Each node's share (one entry on a single node; one per master on a cluster).
        "redis_cpu_us_per_delivery_by_node": nodes_after
            .iter()
            .zip(&nodes_before)
            .map(|(a, b)| per_delivery((a - b) * 1e6))
            .collect::<Vec<_>>(),
        // The load generator and receivers (this process) share the machine too.
        "bench_cpu_us_per_delivery": per_delivery((bench_cpu_after - bench_cpu_before) * 1e6),
        "redis_top_commands": redis_commands,
        "slow_received": count(&slow),
        "fail_fraction": args.fail_fraction,
        "ordering_keys": args.ordering_keys,
        "ordered": args.ordered,
        "failed_answers": failed_answers.load(Ordering::Relaxed),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    for dir in &redis.dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}
