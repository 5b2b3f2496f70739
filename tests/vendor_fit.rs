//! hookd as a product's own webhooks, the way Kanera's API docs describe
//! them: the receiver from those docs (`tests/node/kanera-express.mjs`, as
//! customers copy it) through a secret rotation, key prefixes and expiry,
//! the API reference pages offline, `before` as a time, the workspaces a key
//! sees, rate-limit headers on refusals, typed extra members. Real
//! redis-server, hookd, Node and Chromium processes.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod harness;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use harness::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// The Kanera receiver from the vendor docs, unchanged, on a free port with
/// `secret`. Killed on drop.
struct KaneraReceiver {
    child: Child,
    port: u16,
}

impl KaneraReceiver {
    fn start(secret: &str, port: u16) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("node");
        let mut child = Command::new("node")
            .arg("kanera-express.mjs")
            .current_dir(&dir)
            .env("KANERA_WEBHOOK_SECRET", secret)
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("node (make check-tools installs it and express)");
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { child, port };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the Kanera receiver did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/kanera/webhook", self.port)
    }

    /// The same receiver restarted with another secret, as a customer does
    /// when they paste the new one.
    fn restart_with(mut self, secret: &str) -> Self {
        let port = self.port;
        let _ = self.child.kill();
        let _ = self.child.wait();
        Self::start(secret, port)
    }
}

impl Drop for KaneraReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The only delivery of `event_id` to endpoint `ep`, once it has `attempts` attempts.
async fn delivery_of(env: &[(String, String)], ep: &str, event_id: &str, attempts: usize) -> Value {
    eventually(WAIT, "the delivery's attempts", || async {
        let page = cli_json(
            env,
            &[
                "deliveries",
                "list",
                "--endpoint",
                ep,
                "--event-id",
                event_id,
            ],
        );
        let id = page["data"][0]["id"].as_str()?.to_string();
        let d = cli_json(env, &["deliveries", "show", &id]);
        (d["attempts"].as_array()?.len() >= attempts).then_some(d)
    })
    .await
}

fn publish(env: &[(String, String)], event_id: &str) {
    cli(
        env,
        &[
            "publish",
            "--workspace",
            "ws_k",
            "--type",
            "card.created",
            "--data",
            r#"{"title":"x"}"#,
            "--id",
            event_id,
            "--field",
            "boardId=b_1",
        ],
    );
}

/// The receiver in Kanera's docs compares the whole signature header with one
/// `sha256=<hex>`. With `rotation_signatures = "newest"` it keeps working
/// through a rotation once it has the new secret, and a delivery it refused
/// while still on the old secret goes through on a retry once it has the new
/// one; with `"all"` it fails every delivery of the grace window (500: its
/// `timingSafeEqual` throws on the longer header).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kanera_receiver_survives_a_rotation_with_newest_signatures() {
    let redis = Redis::start();
    let mut env = test_env(&redis);
    env.push(("HOOKD__SIGNING__HEADER_PREFIX".into(), "X-Kanera".into()));
    let _daemon = Daemon::ready(&env).await;

    let mut outcomes = Vec::new();
    for mode in ["newest", "all"] {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}/kanera/webhook");
        let ep = create_endpoint_with(
            &env,
            "ws_k",
            &url,
            &[
                "--event-type",
                "card.created",
                "--rotation-signatures",
                mode,
            ],
        );
        assert_eq!(ep["rotation_signatures"], mode);
        let id = ep["id"].as_str().unwrap().to_string();
        let receiver = KaneraReceiver::start(ep["secret"].as_str().unwrap(), port);
        assert_eq!(receiver.url(), url);
        publish(&env, &format!("before-{mode}"));
        let d = delivery_of(&env, &id, &format!("before-{mode}"), 1).await;
        assert_eq!(d["attempts"][0]["status_code"], 204, "{d}");

        // Rotate with a day of grace; the customer pastes the new secret.
        let rotated = cli_json(&env, &["endpoints", "rotate-secret", &id, "--grace", "24h"]);
        let new_secret = rotated["secret"].as_str().unwrap().to_string();
        let receiver = receiver.restart_with(&new_secret);
        publish(&env, &format!("after-{mode}"));
        let d = delivery_of(&env, &id, &format!("after-{mode}"), 1).await;
        outcomes.push((mode, d["attempts"][0]["status_code"].clone()));

        if mode == "newest" {
            // Rotated again, but the customer is slow to paste the secret:
            // refused first, delivered by a retry once they have.
            let rotated = cli_json(&env, &["endpoints", "rotate-secret", &id, "--grace", "24h"]);
            publish(&env, "slow-customer");
            let d = delivery_of(&env, &id, "slow-customer", 1).await;
            assert_eq!(d["attempts"][0]["status_code"], 401, "{d}");
            let _receiver = receiver.restart_with(rotated["secret"].as_str().unwrap());
            let d = eventually(WAIT, "the retry goes through", || async {
                let d = delivery_of(&env, &id, "slow-customer", 1).await;
                (d["status"] == "succeeded").then_some(d)
            })
            .await;
            let last = d["attempts"].as_array().unwrap().last().unwrap().clone();
            assert_eq!(last["status_code"], 204, "{d}");
        }
    }
    // With the list, that receiver's `timingSafeEqual` throws on buffers of
    // different lengths, so Express answers 500 on every delivery of the grace.
    assert_eq!(
        outcomes,
        [("newest", json!(204)), ("all", json!(500))],
        "newest: one signature the receiver accepts; all: a list it cannot take"
    );
}

/// `[admin] key_prefix`: new keys carry it, keys made under the earlier
/// prefix keep working. Keys may expire (401 `key_expired`) and show when
/// they were last used. `GET /api/v1/workspaces` lists what a key sees, and
/// every refusal carries the rate-limit headers.
#[tokio::test]
async fn keys_carry_the_platforms_prefix_expire_and_say_when_they_were_used() {
    let redis = Redis::start();
    let env = test_env(&redis);
    let old_key = api_key(&env, "ws_k", "admin");
    assert!(old_key.starts_with("hookd_live_"));
    let mut kanera = env.clone();
    kanera.push(("HOOKD__ADMIN__KEY_PREFIX".into(), "kanera".into()));
    let daemon = Daemon::ready(&kanera).await;
    let new_key = api_key(&kanera, "ws_k", "read");
    assert!(new_key.starts_with("kanera_live_"), "{new_key}");

    for key in [&old_key, &new_key] {
        let api = Api::new(&daemon.admin, key);
        let r = api.call("GET", "/api/v1/workspaces", None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["data"][0]["id"], "ws_k");
        assert_eq!(r.body["data"][0]["endpoints"], 0);
    }
    // The 401 names the platform's key shape.
    let anonymous = Api::new(&daemon.admin, "");
    let r = anonymous.call("GET", "/api/v1/workspaces", None).await;
    assert_eq!(r.status, 401);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("kanera_<env>_"),
        "{:?}",
        r.body
    );

    // Rate-limit headers on every answer: 200, 401, 403.
    let read = Api::new(&daemon.admin, &new_key);
    let forbidden = read
        .call(
            "POST",
            "/api/v1/workspaces/ws_k/keys",
            Some(json!({"scope": "read"})),
        )
        .await;
    assert_eq!(forbidden.status, 403);
    for r in [&r, &forbidden] {
        for h in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
        ] {
            assert!(r.header(h).is_some(), "{} lacks {h}", r.status);
        }
    }

    // Expiry: a key made to expire in a second works, then gets key_expired.
    let admin = Api::new(&daemon.admin, &old_key);
    let soon = std::process::Command::new("date")
        .args(["-u", "-d", "2 seconds", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    let soon = String::from_utf8_lossy(&soon.stdout).trim().to_string();
    let made = admin
        .call(
            "POST",
            "/api/v1/workspaces/ws_k/keys",
            Some(json!({"scope": "read", "name": "short", "expires_at": soon})),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    assert!(
        made.body["key"]
            .as_str()
            .unwrap()
            .starts_with("kanera_live_")
    );
    assert_eq!(
        made.body["expires_at"],
        format!("{}.000Z", &soon[..soon.len() - 1])
    );
    let short = Api::new(&daemon.admin, made.body["key"].as_str().unwrap());
    assert_eq!(
        short.call("GET", "/api/v1/workspaces", None).await.status,
        200
    );
    let expired = eventually(WAIT, "the key expires", || async {
        let r = short.call("GET", "/api/v1/workspaces", None).await;
        (r.status == 401).then_some(r)
    })
    .await;
    assert_eq!(expired.body["code"], "key_expired", "{:?}", expired.body);
    let past = admin
        .call(
            "POST",
            "/api/v1/workspaces/ws_k/keys",
            Some(json!({"scope": "read", "expires_at": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(past.status, 422);
    assert_eq!(past.body["issues"][0]["path"], "/expires_at");

    // last_used_at: set by use, in the API's listing and the CLI's.
    let listed = eventually(WAIT, "last_used_at", || async {
        let r = admin
            .call("GET", "/api/v1/workspaces/ws_k/keys", None)
            .await;
        let used = r.body["data"]
            .as_array()?
            .iter()
            .filter(|k| k["last_used_at"].is_string())
            .count();
        (used >= 3).then_some(r.body)
    })
    .await;
    let short_listed = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "short")
        .unwrap()
        .clone();
    assert!(short_listed["expires_at"].is_string());
    let cli_keys = cli_json(&kanera, &["keys", "list", "--workspace", "ws_k"]);
    assert_eq!(cli_keys, listed, "the CLI lists what the API lists");
    let made = cli_json(
        &kanera,
        &[
            "keys",
            "create",
            "--workspace",
            "ws_k",
            "--scope",
            "read",
            "--expires",
            "90d",
        ],
    );
    assert!(made["expires_at"].is_string(), "{made}");
}

/// `/docs` (Scalar) and `/swagger` (Swagger UI) render the API in headless
/// Chromium with no request leaving the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reference_pages_work_offline() {
    let redis = Redis::start();
    let env = test_env(&redis);
    let daemon = Daemon::ready(&env).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/reference_pages.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&daemon.admin)
        .output()
        .expect("python3 with playwright (make check-tools installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pages: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(pages.len(), 2, "{stdout}");
    for p in &pages {
        assert_eq!(p["outside"], json!([]), "{p}");
        assert!(p["requests"].as_u64().unwrap() >= 2, "{p}");
    }
}

/// Typed extra members reach the receiver as JSON, from the API's `fields`
/// and from a producer's `json:<name>` stream field; `before` takes a time.
#[tokio::test]
async fn typed_extra_members_and_before_as_a_time() {
    let redis = Redis::start();
    let env = test_env(&redis);
    let receiver = Receiver::ok().await;
    let daemon = Daemon::ready(&env).await;
    create_endpoint(&env, "ws_k", &receiver.url(), &[]);
    let api = Api::new(&daemon.admin, &api_key(&env, "ws_k", "write"));
    let r = api
        .call(
            "POST",
            "/api/v1/workspaces/ws_k/events",
            Some(json!({
                "type": "card.moved",
                "data": {"cardId": "c_1"},
                "fields": {"boardId": "b_1", "labels": ["urgent"], "position": 3}
            })),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    redis
        .xadd(&[
            ("type", "card.moved"),
            ("workspace", "ws_k"),
            ("data", "{}"),
            ("json:labels", r#"["later"]"#),
        ])
        .await;
    let got = receiver.wait_for(2, WAIT).await;
    let envelopes: Vec<Value> = got
        .iter()
        .map(|g| serde_json::from_slice(&g.body).unwrap())
        .collect();
    let api_one = envelopes.iter().find(|e| e["boardId"] == "b_1").unwrap();
    assert_eq!(api_one["labels"], json!(["urgent"]));
    assert_eq!(api_one["position"], 3);
    assert!(envelopes.iter().any(|e| e["labels"] == json!(["later"])));
    let reserved = api
        .call(
            "POST",
            "/api/v1/workspaces/ws_k/events",
            Some(json!({"type": "a.b", "data": {}, "fields": {"json:x": "1"}})),
        )
        .await;
    assert_eq!(reserved.status, 422);

    // `before`: an RFC 3339 time or unix seconds, as the docs promise.
    let read = |q: String| {
        let api = api.clone();
        async move {
            api.call(
                "GET",
                &format!("/api/v1/workspaces/ws_k/deliveries{q}"),
                None,
            )
            .await
        }
    };
    let all = eventually(WAIT, "two deliveries listed", || async {
        let r = read(String::new()).await;
        (r.body["data"].as_array()?.len() == 2).then_some(r.body)
    })
    .await;
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let later = read(format!("?before={}", now_secs + 3600)).await;
    assert_eq!(later.body["data"], all["data"]);
    let earlier = read(format!("?before={}", now_secs - 3600)).await;
    assert_eq!(earlier.body["data"], json!([]));
    let rfc = read("?before=2020-01-01T00:00:00Z".to_string()).await;
    assert_eq!((rfc.status, rfc.body["data"].clone()), (200, json!([])));
    let paged = read("?limit=1".to_string()).await;
    let next = paged.body["next"].as_str().unwrap();
    let second = read(format!("?limit=1&before={next}")).await;
    assert_eq!(second.body["data"][0], all["data"][1], "next still pages");
    let bad = read("?before=yesterday".to_string()).await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["issues"][0]["path"], "/query/before");
}
