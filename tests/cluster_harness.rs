//! A Redis Cluster for the tests: real `redis-server` processes in cluster
//! mode on free loopback ports (masters with one replica each), made into a
//! cluster with `redis-cli --cluster create`, killed on drop. A test may kill
//! one node (SIGKILL) to force a failover.

#![allow(dead_code)] // shared by several test binaries, each using a part

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::test_env_for;

/// The partitions the cluster tests spread the stream over.
pub const PARTITIONS: u32 = 6;

/// Environment for a hookd process on `cluster`: the tests' own, in cluster
/// mode, over [`PARTITIONS`] partitions.
pub fn cluster_env(cluster: &Cluster) -> Vec<(String, String)> {
    let mut env = test_env_for(cluster.url());
    env.push(("HOOKD__REDIS__CLUSTER".into(), "true".into()));
    env.push(("HOOKD__INGEST__PARTITIONS".into(), PARTITIONS.to_string()));
    env
}

/// Starts `tests/cluster/safe_producer.py` (XADD, then WAIT 1) against the
/// node on `seed`: `per_workspace` events to each of `workspaces`.
pub fn start_safe_producer(seed: u16, workspaces: u64, per_workspace: u64, pause_ms: u64) -> Child {
    Command::new("python3")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster/safe_producer.py"))
        .args([
            format!("127.0.0.1:{seed}"),
            PARTITIONS.to_string(),
            workspaces.to_string(),
            per_workspace.to_string(),
            pause_ms.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with redis-py (make check-tools installs it)")
}

/// Waits for the producer; the ids of the events it saw kept, and its stderr.
pub fn kept_events(producer: Child) -> (std::collections::HashSet<String>, String) {
    let out = producer.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(out.status.success(), "{stderr}");
    let kept = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (kept, stderr)
}

pub struct Cluster {
    pub ports: Vec<u16>,
    nodes: Vec<Option<Child>>,
    dir: PathBuf,
}

impl Cluster {
    /// `masters` masters with one replica each.
    pub fn start(masters: usize) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "hookd-test-cluster-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Made first, so a node that cannot start leaves none running.
        let mut cluster = Cluster {
            ports: Vec::new(),
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..masters * 2 {
            let (port, node) = start_node(&cluster.dir);
            cluster.ports.push(port);
            cluster.nodes.push(Some(node));
        }
        let addrs: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_ok();
        cluster
    }

    /// Waits until every live node says the cluster is ok.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let all_ok = self.live_ports().iter().all(|p| {
                self.cli(*p, &["cluster", "info"])
                    .contains("cluster_state:ok")
            });
            if all_ok {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn live_ports(&self) -> Vec<u16> {
        self.ports
            .iter()
            .zip(&self.nodes)
            .filter(|(_, n)| n.is_some())
            .map(|(p, _)| *p)
            .collect()
    }

    /// `redis-cli -p <port> <args>`'s output.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The seed URLs, comma-separated, as `[redis] url` takes them.
    pub fn url(&self) -> String {
        self.ports
            .iter()
            .take(3)
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The port of the master serving `key` now.
    pub fn master_of(&self, key: &str) -> u16 {
        let port = self.live_ports()[0];
        let slot: u16 = self
            .cli(port, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .unwrap();
        let nodes = self.cli(port, &["cluster", "nodes"]);
        for line in nodes.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                continue;
            }
            for range in &f[8..] {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>())
                    && (a..=b).contains(&slot)
                {
                    let addr = f[1].split('@').next().unwrap();
                    return addr.rsplit(':').next().unwrap().parse().unwrap();
                }
            }
        }
        panic!("no master serves slot {slot}:\n{nodes}");
    }

    /// Starts the node on `port` again, on its files: it rejoins the cluster
    /// (a killed master comes back as a replica of the one that replaced it).
    pub fn restart(&mut self, port: u16) {
        let i = self.ports.iter().position(|p| *p == port).unwrap();
        assert!(self.nodes[i].is_none(), "node {port} is running");
        self.nodes[i] = Some(spawn(&self.dir, port));
    }

    /// The node id of the node on `port`.
    pub fn node_id(&self, port: u16) -> String {
        self.cli(port, &["cluster", "myid"]).trim().to_string()
    }

    /// The masters serving slots, other than `port`.
    pub fn other_masters(&self, port: u16) -> Vec<u16> {
        let nodes = self.cli(self.live_ports()[0], &["cluster", "nodes"]);
        nodes
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                // A master that serves slots (a node just made a replica may
                // still read as a slot-less master for a moment).
                (f.len() > 8 && f[2].contains("master") && !f[2].contains("fail"))
                    .then(|| f[1].split('@').next()?.rsplit(':').next()?.parse().ok())?
            })
            .filter(|p| *p != port)
            .collect()
    }

    /// Moves the slot of `key` from the master on `from` to the one on `to`
    /// while clients keep using it (the protocol `redis-cli --cluster
    /// reshard` follows: IMPORTING/MIGRATING, MIGRATE in batches, SETSLOT NODE).
    pub fn migrate_slot_of(&self, key: &str, from: u16, to: u16) {
        let slot = self
            .cli(from, &["cluster", "keyslot", key])
            .trim()
            .to_string();
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        for (port, args) in [
            (to, ["cluster", "setslot", &slot, "importing", &from_id]),
            (from, ["cluster", "setslot", &slot, "migrating", &to_id]),
        ] {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let out = self.cli(port, &args);
                if out.contains("OK") {
                    break;
                }
                assert!(Instant::now() < deadline, "{args:?} on {port}: {out}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        loop {
            let keys = self.cli(from, &["cluster", "getkeysinslot", &slot, "100"]);
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let mut args = vec!["migrate", "127.0.0.1"];
            let to_port = to.to_string();
            args.extend([to_port.as_str(), "", "0", "5000", "KEYS"]);
            args.extend(keys.iter().copied());
            let out = self.cli(from, &args);
            assert!(
                out.contains("OK") || out.contains("NOKEY"),
                "MIGRATE: {out}"
            );
        }
        for port in self.live_ports() {
            self.cli(port, &["cluster", "setslot", &slot, "node", &to_id]);
        }
    }

    /// SIGKILLs the node on `port`.
    pub fn kill(&mut self, port: u16) {
        let i = self.ports.iter().position(|p| *p == port).unwrap();
        if let Some(mut c) = self.nodes[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A port for a cluster node whose cluster bus port (+10000) is free too.
/// Node ports are taken from 20000..22768, below the kernel's ephemeral
/// range (32768..60999), so bus ports (30000..32768) are too: the kernel
/// hands neither to another test's node or socket, and no node's port is
/// another node's bus port (two clusters starting at once collided so).
fn cluster_port() -> u16 {
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    loop {
        let port = fastrand::u16(20_000..22_768);
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
}

/// A new node on a port found free; another port when it cannot start
/// there (taken between the check and the start).
fn start_node(dir: &std::path::Path) -> (u16, Child) {
    for _ in 0..10 {
        let port = cluster_port();
        if let Some(node) = try_spawn(dir, port) {
            return (port, node);
        }
    }
    panic!("no cluster node could start on ten free ports");
}

/// A cluster-mode redis-server on `port`, its files under `dir/<port>`.
fn spawn(dir: &std::path::Path, port: u16) -> Child {
    try_spawn(dir, port).unwrap_or_else(|| panic!("redis-server did not start on {port}"))
}

/// [`spawn`], or `None` (the process stopped) when it exits or does not
/// answer within 10 s.
fn try_spawn(dir: &std::path::Path, port: u16) -> Option<Child> {
    let node_dir = dir.join(port.to_string());
    std::fs::create_dir_all(&node_dir).unwrap();
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&node_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (make test installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let exited = matches!(child.try_wait(), Ok(Some(_)));
        if exited || Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(child)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in self.nodes.iter_mut().flatten() {
            let _ = n.kill();
            let _ = n.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
