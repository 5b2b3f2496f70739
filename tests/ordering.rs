//! Ordered delivery per key end to end: an endpoint with `ordering: key`
//! gets the events of one `ordering_key` one at a time, in publish order,
//! each numbered (`X-Hookd-Sequence`), while other keys, keyless events
//! and other endpoints go on in parallel. Real hookd processes, a real
//! Redis, real receivers on loopback. No assertion here is on a time.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod cluster_harness;
mod harness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use harness::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

/// One request as an ordering receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    key: String,
    n: u64,
    sequence: Option<u64>,
    attempt: u64,
    succeeded: bool,
}

/// A receiver that answers 500 to about `fail_percent` % of first
/// attempts (chosen by the delivery id, so the same ones on every run of
/// it) and takes 300 ms over about one request in 15, and logs each.
struct OrderReceiver {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    })
}

/// Whether a request fails: (key, event number, attempt, a fixed roll of its delivery id).
type FailRule = Arc<dyn Fn(&str, u64, u64, u64) -> bool + Send + Sync>;

impl OrderReceiver {
    async fn start(fail_percent: u64) -> Self {
        Self::failing(Arc::new(move |_, _, attempt, roll| {
            attempt == 1 && (roll / 15) % 100 < fail_percent
        }))
        .await
    }

    async fn failing(rule: FailRule) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Seen>>> = Default::default();
        let log = seen.clone();
        let app =
            axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (log, rule) = (log.clone(), rule.clone());
                async move {
                    let h = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    let delivery = h("x-hookd-delivery-id");
                    let attempt: u64 = h("x-hookd-attempt").parse().unwrap_or(0);
                    let envelope: Value = serde_json::from_slice(&body).unwrap();
                    let roll = hash(&delivery);
                    if roll.is_multiple_of(15) {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    let key = envelope["data"]["key"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let n = envelope["data"]["n"].as_u64().unwrap_or(0);
                    let succeeded = !rule(&key, n, attempt, roll);
                    log.lock().unwrap().push(Seen {
                        key,
                        n,
                        sequence: h("x-hookd-sequence").parse().ok(),
                        attempt,
                        succeeded,
                    });
                    if succeeded {
                        StatusCode::OK
                    } else {
                        StatusCode::INTERNAL_SERVER_ERROR
                    }
                }
            });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { port, seen, task }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn successes(&self) -> usize {
        self.seen().iter().filter(|s| s.succeeded).count()
    }

    /// Events that succeeded at least once.
    fn events_done(&self) -> usize {
        let done: std::collections::HashSet<(String, u64)> = self
            .seen()
            .into_iter()
            .filter(|s| s.succeeded)
            .map(|s| (s.key, s.n))
            .collect();
        done.len()
    }
}

impl Drop for OrderReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Publishes `per_key` events on each of `keys` keys, interleaved (event
/// n of every key, then n + 1), data `{"key": "k<k>", "n": <n>}` (from 1).
async fn publish_keyed(redis: &Redis, ws: &str, keys: usize, per_key: usize) {
    let mut conn = redis.conn().await;
    for n in 1..=per_key {
        let mut pipe = redis::pipe();
        for k in 0..keys {
            pipe.cmd("XADD")
                .arg("hookd:events")
                .arg("*")
                .arg("type")
                .arg("card.moved")
                .arg("workspace")
                .arg(ws)
                .arg("data")
                .arg(format!(r#"{{"key":"k{k}","n":{n}}}"#))
                .arg("ordering_key")
                .arg(format!("k{k}"))
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await.unwrap();
    }
}

/// Every key's requests: no event is sent before the one before it
/// succeeded, and the successes are 1..=n with sequence numbers 1..=n. A
/// delivery sent again after it succeeded (its daemon was killed before it
/// recorded the answer: at least once, same delivery id and sequence) is
/// allowed; an event overtaking an earlier one is not.
fn assert_in_order(seen: &[Seen], keys: usize, per_key: usize) {
    let mut by_key: HashMap<&str, Vec<&Seen>> = HashMap::new();
    for s in seen {
        by_key.entry(&s.key).or_default().push(s);
    }
    assert_eq!(by_key.len(), keys, "every key arrived");
    for (key, requests) in by_key {
        let mut done = 0;
        for r in &requests {
            assert!(
                r.n <= done + 1,
                "key {key}: event {} was sent before {} succeeded: {requests:?}",
                r.n,
                done + 1
            );
            if r.succeeded {
                assert_eq!(
                    r.sequence,
                    Some(r.n),
                    "key {key}: sequence of event {}",
                    r.n
                );
                done = done.max(r.n);
            }
        }
        assert_eq!(done as usize, per_key, "key {key}: every event succeeded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_arrives_in_publish_order_through_failures_and_slow_answers() {
    let receiver = OrderReceiver::start(30).await;
    let redis = Redis::start();
    let env = test_env(&redis);
    create_endpoint_with(&env, "ws", &receiver.url(), &["--ordering", "key"]);
    let _a = Daemon::ready(&env).await;
    let _b = Daemon::ready(&env).await;
    publish_keyed(&redis, "ws", 50, 40).await;
    eventually(WAIT, "2,000 ordered deliveries succeeded", || async {
        (receiver.successes() >= 2000).then_some(())
    })
    .await;
    let seen = receiver.seen();
    assert_eq!(receiver.successes(), 2000, "no delivery succeeded twice");
    assert!(
        seen.iter().any(|s| s.attempt > 1),
        "some first attempts failed and were retried"
    );
    assert_in_order(&seen, 50, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_holds_while_daemons_are_killed_and_redis_restarts() {
    let receiver = OrderReceiver::start(30).await;
    let mut redis = Redis::start_durable();
    // (Killed and started again on its files: appendfsync always.)
    let env = test_env(&redis);
    create_endpoint_with(&env, "ws", &receiver.url(), &["--ordering", "key"]);
    let mut daemons = [Daemon::ready(&env).await, Daemon::ready(&env).await];
    publish_keyed(&redis, "ws", 20, 30).await;
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if round == 3 {
            redis.kill();
            tokio::time::sleep(Duration::from_millis(500)).await;
            redis.start_again();
        } else {
            let i = round % 2;
            daemons[i].kill9();
            daemons[i] = Daemon::start(&env);
        }
    }
    eventually(WAIT, "600 ordered deliveries succeeded", || async {
        (receiver.events_done() >= 600).then_some(())
    })
    .await;
    assert_in_order(&receiver.seen(), 20, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unordered_endpoint_is_not_slowed_by_an_ordered_one_whose_keys_are_stuck() {
    let redis = Redis::start();
    let env = test_env(&redis);
    // The ordered endpoint's receiver fails every attempt: each key's head
    // retries and everything behind it waits.
    let stuck = Receiver::with_plan(Arc::new(|_| (500, vec![]))).await;
    let fast = Receiver::ok().await;
    create_endpoint_with(&env, "ws", &stuck.url(), &["--ordering", "key"]);
    create_endpoint(&env, "ws", &fast.url(), &[]);
    let _d = Daemon::ready(&env).await;
    publish_keyed(&redis, "ws", 50, 40).await;
    fast.wait_for(2000, WAIT).await;
    // Only heads were attempted at the ordered one: one event per key.
    let heads: std::collections::HashSet<String> = stuck
        .received()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        heads.len() <= 50,
        "only each key's head was sent: {}",
        heads.len()
    );
    assert!(
        stuck
            .received()
            .iter()
            .all(|r| r.header("X-Hookd-Sequence") == Some("1"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_ordered_endpoint_releases_its_keys_in_order_on_resume() {
    let receiver = OrderReceiver::start(0).await;
    let redis = Redis::start();
    let env = test_env(&redis);
    let ep = create_endpoint_with(&env, "ws", &receiver.url(), &["--ordering", "key"]);
    let id = ep["id"].as_str().unwrap().to_string();
    cli(
        &env,
        &["endpoints", "pause", &id, "--reason", "maintenance"],
    );
    let _d = Daemon::ready(&env).await;
    publish_keyed(&redis, "ws", 20, 50).await;
    eventually(WAIT, "1,000 deliveries held or waiting", || async {
        let v = cli_json(&env, &["endpoints", "show", &id]);
        let held = v["held"].as_u64().unwrap_or(0);
        let logged: u64 = redis::cmd("ZCARD")
            .arg(format!("{{hookd:events}}:ep:{id}:log"))
            .query_async(&mut redis.conn().await)
            .await
            .unwrap();
        (held == 20 && logged == 1000).then_some(())
    })
    .await;
    assert_eq!(receiver.seen().len(), 0, "nothing sent while paused");
    cli(&env, &["endpoints", "resume", &id]);
    eventually(WAIT, "1,000 deliveries after resume", || async {
        (receiver.successes() >= 1000).then_some(())
    })
    .await;
    assert_in_order(&receiver.seen(), 20, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_up_head_holds_its_key_until_skipped_or_lets_it_go_on() {
    // Event 1 of every key always fails: it is given up after 2 attempts.
    let receiver = OrderReceiver::failing(Arc::new(|_, n, _, _| n == 1)).await;
    let redis = Redis::start();
    let mut env = test_env(&redis);
    env.push(("HOOKD__RETRY__MAX_ATTEMPTS".into(), "2".into()));
    let held = create_endpoint_with(
        &env,
        "held",
        &receiver.url(),
        &["--ordering", "key", "--ordering-on-give-up", "hold"],
    );
    create_endpoint_with(&env, "goes-on", &receiver.url(), &["--ordering", "key"]);
    let _d = Daemon::ready(&env).await;
    publish_keyed(&redis, "held", 1, 3).await;
    publish_keyed(&redis, "goes-on", 1, 3).await;
    // `continue` (the default): events 2 and 3 follow the given-up event 1.
    // (Both workspaces' events carry key k0 and the same data: told apart by count.)
    eventually(WAIT, "the goes-on key's events 2 and 3", || async {
        (receiver.successes() >= 2).then_some(())
    })
    .await;
    // `hold`: event 2 waits behind the given-up event 1, in the history too
    // (once its second attempt is recorded: the other key may finish first).
    let ep = held["id"].as_str().unwrap();
    let list = eventually(WAIT, "the held key's head given up", || async {
        let list = cli_json(
            &env,
            &[
                "deliveries",
                "list",
                "--workspace",
                "held",
                "--endpoint",
                ep,
            ],
        );
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["status"] == "failed")
            .then_some(list)
    })
    .await;
    let deliveries = list["data"].as_array().unwrap();
    let head = deliveries
        .iter()
        .find(|d| d["status"] == "failed")
        .expect("the given-up head")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let waiting: Vec<&Value> = deliveries
        .iter()
        .filter(|d| d["status"] == "waiting")
        .collect();
    assert_eq!(waiting.len(), 2, "{deliveries:?}");
    let second = waiting
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .min()
        .unwrap()
        .to_string();
    let shown = cli_json(&env, &["deliveries", "show", &second]);
    assert_eq!(shown["waiting_for"], head.as_str(), "{shown}");
    assert_eq!(shown["ordering_key"], "k0");
    assert_eq!(receiver.successes(), 2, "nothing of the held key went");
    // Skipping the head lets the key go on, in order.
    cli(&env, &["deliveries", "skip", &head]);
    eventually(WAIT, "the held key's events 2 and 3", || async {
        (receiver.successes() >= 4).then_some(())
    })
    .await;
    let skipped = cli_json(&env, &["deliveries", "show", &head]);
    assert_eq!(skipped["status"], "failed");
    let seen = receiver.seen();
    let after: Vec<u64> = seen.iter().filter(|s| s.succeeded).map(|s| s.n).collect();
    assert_eq!(after, [2, 3, 2, 3], "each key's events 2 and 3, in order");
    // Sequences go on from the given-up head's (1): 2 and 3, no gap hidden.
    let sequences: Vec<Option<u64>> = seen
        .iter()
        .filter(|s| s.succeeded)
        .map(|s| s.sequence)
        .collect();
    assert_eq!(sequences, [Some(2), Some(3), Some(2), Some(3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_holds_on_a_cluster() {
    let cluster = cluster_harness::Cluster::start(3);
    let env = cluster_harness::cluster_env(&cluster);
    let receiver = OrderReceiver::start(30).await;
    create_endpoint_with(&env, "ws", &receiver.url(), &["--ordering", "key"]);
    let _a = Daemon::ready(&env).await;
    let _b = Daemon::ready(&env).await;
    let (keys, per_key) = (10, 20);
    let publish_env = env.clone();
    let producer = std::thread::spawn(move || {
        // Each event under its own id, published again until it is
        // acknowledged (a repeat of a publish that did land is answered
        // with the first).
        for n in 1..=per_key {
            for k in 0..keys {
                let (id, data) = (
                    format!("e-k{k}-{n}"),
                    format!(r#"{{"key":"k{k}","n":{n}}}"#),
                );
                let key = format!("k{k}");
                let args = [
                    "publish",
                    "--workspace",
                    "ws",
                    "--type",
                    "card.moved",
                    "--id",
                    &id,
                    "--data",
                    &data,
                    "--ordering-key",
                    &key,
                ];
                while !hookd_command(&publish_env)
                    .args(args)
                    .output()
                    .unwrap()
                    .status
                    .success()
                {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    });
    producer.join().unwrap();
    eventually(WAIT, "every event's first success", || async {
        (receiver.events_done() >= keys * per_key as usize).then_some(())
    })
    .await;
    assert_in_order(&receiver.seen(), keys, per_key as usize);
}
