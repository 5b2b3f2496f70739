//! The end-to-end harness (a module of each test target): real `redis-server` processes on free loopback
//! ports, real `hookd` processes (the `hookd-e2e` binary of this package, so
//! they can be killed with SIGKILL), and real HTTP receivers.
//!
//! Everything a test starts is stopped when its handle drops, and each test
//! has a Redis of its own, so tests never see each other's data.
#![allow(dead_code)] // each test target uses a different part of the harness

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::Value;

/// A free TCP port on loopback (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A `redis-server` of the test's own. Killed on drop.
pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// AOF with fsync on every write (`start_durable`).
    durable: bool,
}

impl Redis {
    pub fn start() -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("hookd-test-redis-{port}-{}", std::process::id()));
        let mut redis = Redis {
            port,
            dir,
            child: None,
            durable: false,
        };
        redis.spawn(true);
        redis
    }

    /// A server with AOF on (`appendfsync always`): a restart keeps every write.
    pub fn start_durable() -> Self {
        let mut redis = Self::start();
        redis.kill();
        redis.durable = true;
        redis.spawn(true);
        redis
    }

    /// Kills the server (SIGKILL) and starts it again on the same port and files.
    pub fn restart_keeping_data(&mut self) {
        self.kill();
        self.spawn(false);
    }

    /// Starts the killed server again on the same port and files.
    pub fn start_again(&mut self) {
        self.spawn(false);
    }

    fn spawn(&mut self, wipe: bool) {
        if wipe {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        std::fs::create_dir_all(&self.dir).expect("redis dir");
        let aof = if self.durable { "yes" } else { "no" };
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                aof,
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (make test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server and starts a new, empty one on the same port.
    pub fn restart_empty(&mut self) {
        self.kill();
        self.spawn(true);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        // No response timeout: a test may send or read tens of megabytes.
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection_with_config(
                &redis::AsyncConnectionConfig::new().set_response_timeout(None),
            )
            .await
            .expect("connect to test redis")
    }

    /// Publishes events `(id, data)` of one workspace and type, as pipelines
    /// of 200 `XADD`s.
    pub async fn xadd_events(
        &self,
        workspace: &str,
        event_type: &str,
        events: impl IntoIterator<Item = (String, String)>,
    ) {
        let events: Vec<(String, String)> = events.into_iter().collect();
        let mut conn = self.conn().await;
        for chunk in events.chunks(200) {
            let mut pipe = redis::pipe();
            for (id, data) in chunk {
                pipe.cmd("XADD")
                    .arg("hookd:events")
                    .arg("*")
                    .arg("type")
                    .arg(event_type)
                    .arg("workspace")
                    .arg(workspace)
                    .arg("data")
                    .arg(data)
                    .arg("id")
                    .arg(id)
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .expect("XADD pipeline");
        }
    }

    /// Forgets the deliveries' history (durable state and logs), as the end
    /// of the hot window would (one-partition key layout).
    pub async fn forget_history(&self) {
        self.del_matching("{hookd:events}:*", |k| {
            k.contains(":dlv:") || k.ends_with(":log")
        })
        .await;
    }

    /// Forgets the history and the payloads too: kept envelopes and the
    /// stream's entries.
    pub async fn forget_history_and_payloads(&self) {
        self.forget_history().await;
        self.del_matching("{hookd:events}:env:*", |_| true).await;
        let _: i64 = redis::cmd("XTRIM")
            .arg("hookd:events")
            .arg("MAXLEN")
            .arg(0)
            .query_async(&mut self.conn().await)
            .await
            .expect("XTRIM");
    }

    async fn del_matching(&self, pattern: &str, keep: impl Fn(&str) -> bool) {
        let mut conn = self.conn().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        for key in keys.iter().filter(|k| keep(k)) {
            let _: i64 = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .expect("DEL");
        }
    }

    /// One section of `INFO` (`memory`, `commandstats`, ...).
    pub async fn info(&self, section: &str) -> String {
        redis::cmd("INFO")
            .arg(section)
            .query_async(&mut self.conn().await)
            .await
            .expect("INFO")
    }

    /// Creates hookd's consumer group (and the stream), as a daemon would.
    pub async fn create_group(&self) {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg("hookd:events")
            .arg("hookd")
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn().await)
            .await
            .expect("XGROUP CREATE");
    }

    /// `XADD hookd:events * field value ...`; returns the entry id.
    pub async fn xadd(&self, fields: &[(&str, &str)]) -> String {
        let mut cmd = redis::cmd("XADD");
        cmd.arg("hookd:events").arg("*");
        for (k, v) in fields {
            cmd.arg(k).arg(v);
        }
        cmd.query_async(&mut self.conn().await).await.expect("XADD")
    }

    /// Publishes an `a.b` event of workspace `ws` with `data` (and the
    /// event id `id`, when given), as a producer would; returns the entry id.
    pub async fn publish(&self, data: &str, id: Option<&str>) -> String {
        let mut fields = vec![("type", "a.b"), ("workspace", "ws"), ("data", data)];
        fields.extend(id.map(|id| ("id", id)));
        self.xadd(&fields).await
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The sealing key of the test environment (`<id>:<base64 of 32 bytes>`).
pub const TEST_SEALING_KEY: &str = "t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Environment for a hookd process talking to `redis`, with fast test timings.
pub fn test_env(redis: &Redis) -> Vec<(String, String)> {
    test_env_for(redis.url())
}

/// The test environment for a Redis at `url` (one node, or a cluster's seeds).
pub fn test_env_for(url: String) -> Vec<(String, String)> {
    [
        ("HOOKD__REDIS__URL", url),
        ("HOOKD__RETRY__INITIAL_DELAY", "200ms".into()),
        ("HOOKD__RETRY__MAX_DELAY", "1s".into()),
        ("HOOKD__RETRY__JITTER", "0".into()),
        ("HOOKD__INGEST__RECLAIM_IDLE", "2s".into()),
        ("HOOKD__DELIVERY__POLL_INTERVAL", "20ms".into()),
        ("HOOKD__DELIVERY__REQUEST_TIMEOUT", "3s".into()),
        ("HOOKD__DELIVERY__SHUTDOWN_GRACE", "3s".into()),
        (
            "HOOKD__LOG__LEVEL",
            std::env::var("TEST_LOG").unwrap_or("warn".into()),
        ),
        ("HOOKD__ADMIN__STATS_INTERVAL", "200ms".into()),
        // The test receivers are on loopback, which the default policy refuses.
        ("HOOKD__DELIVERY__ALLOW_NETWORKS", "127.0.0.0/8".into()),
        // Every end-to-end test runs with endpoint secrets sealed at rest.
        ("HOOKD__SECRETS__KEYS", TEST_SEALING_KEY.into()),
        ("HOOKD__SECRETS__CURRENT", "t1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub fn hookd_command(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookd-e2e"));
    cmd.env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs a `hookd` CLI command; panics unless it succeeds. Returns stdout.
pub fn cli(env: &[(String, String)], args: &[&str]) -> String {
    let out = hookd_command(env).args(args).output().expect("run hookd");
    assert!(
        out.status.success(),
        "hookd {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a `hookd ... --json` command and parses its output.
pub fn cli_json(env: &[(String, String)], args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = cli(env, &args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("hookd {args:?} printed no JSON ({e}): {out}"))
}

/// Creates an endpoint through the CLI with extra `endpoints create` flags;
/// returns the printed endpoint.
pub fn create_endpoint_with(
    env: &[(String, String)],
    workspace: &str,
    url: &str,
    extra: &[&str],
) -> Value {
    let mut args = vec![
        "endpoints",
        "create",
        "--workspace",
        workspace,
        "--url",
        url,
    ];
    args.extend(extra);
    cli_json(env, &args)
}

/// Creates an endpoint through the CLI; returns (id, secret).
pub fn create_endpoint(
    env: &[(String, String)],
    workspace: &str,
    url: &str,
    types: &[&str],
) -> (String, String) {
    let extra: Vec<&str> = types.iter().flat_map(|t| ["--event-type", t]).collect();
    let v = create_endpoint_with(env, workspace, url, &extra);
    (
        v["id"].as_str().expect("id").to_string(),
        v["secret"].as_str().expect("secret").to_string(),
    )
}

/// Where most end-to-end tests start: a Redis of their own, the
/// environment that points `hookd` at it, and one receiver with an
/// endpoint (made through the CLI) of one workspace; the test starts its
/// daemons when it is ready for them. In order: the Redis, the
/// environment, the receiver, the endpoint's id and its signing secret, so
/// a test names what it uses: `let Setup(redis, env, receiver, ..) = ...`.
pub struct Setup(
    pub Redis,
    pub Vec<(String, String)>,
    pub Receiver,
    pub String,
    pub String,
);

impl Setup {
    /// `receiver` as an endpoint of workspace `ws` for every event type.
    pub async fn new(receiver: Receiver) -> Self {
        Self::for_types(receiver, "ws", &[]).await
    }

    /// `receiver` as an endpoint of `workspace` for `types` (all when empty).
    pub async fn for_types(receiver: Receiver, workspace: &str, types: &[&str]) -> Self {
        let redis = Redis::start();
        let env = test_env(&redis);
        let (endpoint, secret) = create_endpoint(&env, workspace, &receiver.url(), types);
        Self(redis, env, receiver, endpoint, secret)
    }
}

/// A `hookd serve` process, its admin API on a free port. Killed on drop.
pub struct Daemon {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`
    pub admin: String,
}

impl Daemon {
    pub fn start(env: &[(String, String)]) -> Self {
        Self::start_with_stderr(env, Stdio::inherit())
    }

    /// Starts with its log (stderr) written to `log`.
    pub async fn ready_logging_to(env: &[(String, String)], log: &std::path::Path) -> Self {
        let file = std::fs::File::create(log).expect("log file");
        let d = Self::start_with_stderr(env, Stdio::from(file));
        d.wait_ready().await;
        d
    }

    /// Starts under an open-file limit of `files` (`ulimit -n`), and waits
    /// until it is ready.
    pub async fn ready_with_open_files(env: &[(String, String)], files: u32) -> Self {
        let bind = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {files} && exec \"$0\" serve"))
            .arg(env!("CARGO_BIN_EXE_hookd-e2e"))
            .env_remove("RUST_LOG")
            .env("HOOKD__ADMIN__BIND", &bind);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(Stdio::null())
            .spawn()
            .expect("start hookd serve under ulimit");
        let d = Daemon {
            child: Some(child),
            admin: format!("http://{bind}"),
        };
        d.wait_ready().await;
        d
    }

    fn start_with_stderr(env: &[(String, String)], stderr: Stdio) -> Self {
        let bind = format!("127.0.0.1:{}", free_port());
        let child = hookd_command(env)
            .env("HOOKD__ADMIN__BIND", &bind)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start hookd serve");
        Daemon {
            child: Some(child),
            admin: format!("http://{bind}"),
        }
    }

    /// Starts and waits until `/readyz` answers 200.
    pub async fn ready(env: &[(String, String)]) -> Self {
        let d = Self::start(env);
        d.wait_ready().await;
        d
    }

    async fn wait_ready(&self) {
        let d = self;
        let api = Api::new(&d.admin, "");
        eventually(Duration::from_secs(20), "hookd ready", || async {
            let ready = api.http.get(format!("{}/readyz", api.base)).send().await;
            ready.is_ok_and(|r| r.status() == 200).then_some(())
        })
        .await;
    }

    /// The process's peak resident memory (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status("VmHWM")
    }

    /// How many threads the process has now.
    pub fn threads(&self) -> Option<u64> {
        self.status("Threads")
    }

    /// A number from `/proc/<pid>/status`.
    fn status(&self, field: &str) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One request a receiver got.
/// A Redis reply value as text.
pub fn text(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

/// Entries read by the group `hookd` but not acknowledged.
pub async fn pending(redis: &Redis) -> i64 {
    let v: redis::Value = redis::cmd("XPENDING")
        .arg("hookd:events")
        .arg("hookd")
        .query_async(&mut redis.conn().await)
        .await
        .expect("XPENDING");
    match v {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(n)) => *n,
            other => panic!("XPENDING count: {other:?}"),
        },
        other => panic!("XPENDING: {other:?}"),
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// Wall-clock time of arrival.
    pub wall: std::time::SystemTime,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// What a receiver answers to its n-th request (0-based): status and headers.
pub type Plan = Arc<dyn Fn(usize) -> (u16, Vec<(String, String)>) + Send + Sync>;

/// An HTTP receiver on loopback that records every request.
pub struct Receiver {
    pub port: u16,
    log: Arc<Mutex<Vec<Received>>>,
    /// Requests being answered now, and the most there ever were at once.
    concurrency: Arc<(AtomicUsize, AtomicUsize)>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Answers 200 to everything.
    pub async fn ok() -> Self {
        Self::with_plan(Arc::new(|_| (200, vec![]))).await
    }

    /// Answers with `statuses` in turn, then 200.
    pub async fn sequence(statuses: &[u16]) -> Self {
        let statuses = statuses.to_vec();
        Self::with_plan(Arc::new(move |n| {
            (statuses.get(n).copied().unwrap_or(200), vec![])
        }))
        .await
    }

    pub async fn with_plan(plan: Plan) -> Self {
        Self::with_plan_and_delay(plan, Duration::ZERO).await
    }

    /// Answers 200 after `delay`.
    pub async fn slow(delay: Duration) -> Self {
        Self::with_plan_and_delay(Arc::new(|_| (200, vec![])), delay).await
    }

    pub async fn with_plan_and_delay(plan: Plan, delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let port = listener.local_addr().expect("addr").port();
        let log: Arc<Mutex<Vec<Received>>> = Default::default();
        let concurrency: Arc<(AtomicUsize, AtomicUsize)> = Default::default();
        let state = (log.clone(), plan, concurrency.clone());
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let (log, plan, concurrency) = state.clone();
            async move {
                let now = concurrency.0.fetch_add(1, Ordering::SeqCst) + 1;
                concurrency.1.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                concurrency.0.fetch_sub(1, Ordering::SeqCst);
                let n = {
                    let mut log = log.lock().expect("log");
                    log.push(Received {
                        headers: headers
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.as_str().to_string(),
                                    v.to_str().unwrap_or_default().to_string(),
                                )
                            })
                            .collect(),
                        body: body.to_vec(),
                        at: Instant::now(),
                        wall: std::time::SystemTime::now(),
                    });
                    log.len() - 1
                };
                let (status, extra) = plan(n);
                let mut h = HeaderMap::new();
                for (k, v) in extra {
                    h.insert(
                        axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                        v.parse().expect("value"),
                    );
                }
                (StatusCode::from_u16(status).expect("status"), h, "received").into_response()
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            port,
            log,
            concurrency,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().expect("log").clone()
    }

    /// The most requests this receiver was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.concurrency.1.load(Ordering::SeqCst)
    }

    pub fn count(&self) -> usize {
        self.log.lock().expect("log").len()
    }

    /// Waits until at least `n` requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        eventually(
            timeout,
            &format!("{n} requests at the receiver on {}", self.port),
            || async {
                let got = self.received();
                (got.len() >= n).then_some(got)
            },
        )
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Makes an API key through the CLI; returns the key text.
pub fn api_key(env: &[(String, String)], workspace: &str, scope: &str) -> String {
    let v = cli_json(
        env,
        &["keys", "create", "--workspace", workspace, "--scope", scope],
    );
    v["key"].as_str().expect("key").to_string()
}

/// An admin API response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client of one daemon's admin API with one key.
#[derive(Clone)]
pub struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, key: &str) -> Self {
        Self {
            base: base.to_string(),
            key: key.to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub fn with_key(&self, key: &str) -> Self {
        Self::new(&self.base, key)
    }

    /// Registers `url` as an endpoint of `ws` for every event type (201
    /// asserted); the reply carries its id and secret.
    pub async fn create_endpoint(&self, ws: &str, url: &str) -> Reply {
        let path = format!("/api/v1/workspaces/{ws}/endpoints");
        let r = self
            .call("POST", &path, Some(serde_json::json!({ "url": url })))
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.raw(method, path, body.map(|b| b.to_string().into_bytes()), &[])
            .await
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if !self.key.is_empty() {
            req = req.header("authorization", format!("Bearer {}", self.key));
        }
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("admin API request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("admin API body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// Every delivery of workspace `ws` through the admin API, walking pages of
/// `page_size` with the `next` cursor (each page checked to be no longer).
pub async fn walk_deliveries(api: &Api, ws: &str, page_size: usize) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/workspaces/{ws}/deliveries?limit={page_size}");
        if let Some(b) = &before {
            path.push_str(&format!("&before={b}"));
        }
        let r = api.call("GET", &path, None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let data = r.body["data"].as_array().expect("data");
        assert!(data.len() <= page_size);
        seen.extend(data.iter().cloned());
        match r.body["next"].as_str() {
            Some(next) => before = Some(next.to_string()),
            None => return seen,
        }
    }
}
