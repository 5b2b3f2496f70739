//! The first hour with hookd, as a newcomer lives it: the README's
//! walkthrough run as written (its receiver, its commands, the repository's
//! `config/default.toml`), and the CLI run from a folder without a
//! configuration file. A real redis-server and real hookd processes.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod harness;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use harness::*;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the repository")
        .to_path_buf()
}

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).expect("README.md")
}

/// The first line of a README shell block that starts with `prefix`.
fn readme_command(readme: &str, prefix: &str) -> String {
    readme
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("the README has no command starting {prefix:?}"))
        .to_string()
}

/// A child process killed when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A folder whose `hookd` is the binary under test, to put first on PATH.
fn hookd_on_path() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hookd-path-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("hookd");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_hookd-e2e"), &link).unwrap();
    dir
}

#[tokio::test]
async fn the_readme_walkthrough_works_as_written() {
    let redis = Redis::start();
    let readme = readme();
    let port = free_port();
    // The receiver, as the README gives it, on a free port instead of 9000.
    let start = readme
        .find("python3 - <<'PY'\n")
        .expect("the walkthrough's receiver");
    let body = &readme[start + "python3 - <<'PY'\n".len()..];
    let receiver_code = body[..body.find("\nPY\n").expect("end of the receiver")]
        .replace("9000", &port.to_string());
    let mut receiver = Killed(
        Command::new("python3")
            .arg("-c")
            .arg(&receiver_code)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3"),
    );
    let (lines_tx, lines) = mpsc::channel();
    let stdout = receiver.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    // `make run`'s daemon: config/default.toml, from the repository's folder.
    let bind = format!("127.0.0.1:{}", free_port());
    let shell = |line: &str| {
        let path = format!(
            "{}:{}",
            hookd_on_path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let line = line.replace("9000", &port.to_string()).replacen(
            "redis-cli ",
            &format!("redis-cli -u {} ", redis.url()),
            1,
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .current_dir(repo_root())
            .env("PATH", path)
            .env("HOOKD__REDIS__URL", redis.url())
            .env("HOOKD__ADMIN__BIND", &bind)
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let _daemon = Killed(
        Command::new(env!("CARGO_BIN_EXE_hookd-e2e"))
            .arg("serve")
            .current_dir(repo_root())
            .env("HOOKD__REDIS__URL", redis.url())
            .env("HOOKD__ADMIN__BIND", &bind)
            .env("HOOKD__LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("hookd serve"),
    );
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(20), "hookd ready", || async {
        let r = http.get(format!("http://{bind}/readyz")).send().await;
        r.is_ok_and(|r| r.status() == 200).then_some(())
    })
    .await;

    let created = shell(&readme_command(&readme, "hookd endpoints create"));
    assert!(created.contains("ep_"), "{created}");
    shell(&readme_command(&readme, "redis-cli XADD"));

    let line = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("the receiver printed a delivery");
    for header in [
        "x-hookd-event-id",
        "x-hookd-delivery-id",
        "x-hookd-attempt",
        "x-hookd-timestamp",
        "x-hookd-signature': 'sha256=",
    ] {
        assert!(line.contains(header), "{header} not in: {line}");
    }
    assert!(
        line.contains(r#""type":"card.created","workspaceId":"ws_1""#)
            && line.contains(r#""boardId":"b_1""#),
        "{line}"
    );
    let history = shell("hookd deliveries list");
    assert!(
        history.contains("dlv_") && history.contains("succeeded"),
        "{history}"
    );
}

/// A folder with no configuration file in it.
fn elsewhere() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hookd-elsewhere-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn outside_the_repository_the_cli_says_what_it_read_and_lists_without_the_sealing_key() {
    let redis = Redis::start();
    let env = test_env(&redis);
    let (id, _) = create_endpoint(&env, "ws_a", "http://127.0.0.1:9/hook", &[]);
    // The same Redis, without the sealing key the secret was sealed with.
    let bare: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| !k.starts_with("HOOKD__SECRETS"))
        .cloned()
        .collect();
    let run = |args: &[&str]| {
        hookd_command(&bare)
            .args(args)
            .current_dir(elsewhere())
            .output()
            .expect("hookd")
    };
    let listed = run(&["endpoints", "list"]);
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(listed.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));
    assert!(stderr.contains("no configuration file"), "{stderr}");
    let shown = run(&["endpoints", "show", &id]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );

    // A command that needs the secret says which key, once.
    let secret = run(&["endpoints", "secret", &id]);
    assert!(!secret.status.success());
    let stderr = String::from_utf8_lossy(&secret.stderr);
    assert!(stderr.contains(r#"sealed with key "t1""#), "{stderr}");
    assert_eq!(stderr.matches("sealed with key").count(), 1, "{stderr}");
}

#[test]
fn hookd_config_prints_each_value_with_its_source_and_secrets_redacted() {
    let dir = elsewhere();
    let file = dir.join("hookd.toml");
    std::fs::write(&file, "[retry]\nmax_attempts = 7\n").unwrap();
    let env = vec![
        (
            "HOOKD_CONFIG".to_string(),
            file.to_string_lossy().into_owned(),
        ),
        (
            "HOOKD__REDIS__URL".to_string(),
            "redis://app:s3cret@10.0.0.5:6379".to_string(),
        ),
        (
            "HOOKD__SECRETS__KEYS".to_string(),
            TEST_SEALING_KEY.to_string(),
        ),
        ("HOOKD__SECRETS__CURRENT".to_string(), "t1".to_string()),
    ];
    let out = hookd_command(&env)
        .args(["config", "--json"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains("s3cret") && !text.contains("AAECAwQF"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["file"], file.to_string_lossy().as_ref());
    let setting = |key: &str| {
        v["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .unwrap_or_else(|| panic!("{key} not in {v}"))
            .clone()
    };
    let attempts = setting("retry.max_attempts");
    assert_eq!(attempts["value"], 7);
    assert_eq!(
        attempts["source"],
        format!("file {}", file.to_string_lossy())
    );
    let url = setting("redis.url");
    assert_eq!(url["value"], "redis://app:***@10.0.0.5:6379");
    assert_eq!(url["source"], "env HOOKD__REDIS__URL");
    assert_eq!(
        setting("secrets.keys")["value"],
        serde_json::json!(["t1:***"])
    );
    let networks = setting("delivery.allow_networks");
    assert_eq!(networks["value"], serde_json::json!([]));
    assert_eq!(networks["source"], "default");
    assert_eq!(setting("retry.initial_delay")["value"], "5s");
}

/// The OpenAPI document the server serves is valid (openapi-spec-validator),
/// and a client generated from it (openapi-python-client) drives the API:
/// endpoints, publishing, history, pause and resume, rotation, keys, errors.
/// (Two worker threads: the receiver answers while the client's process runs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_generated_from_the_openapi_document_drives_the_api() {
    let redis = Redis::start();
    let env = test_env(&redis);
    let receiver = Receiver::ok().await;
    let daemon = Daemon::ready(&env).await;
    let key = api_key(&env, "ws_sdk", "admin");
    let dir = elsewhere();
    let doc = reqwest::get(format!("{}/openapi.json", daemon.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let spec = dir.join("openapi.json");
    std::fs::write(&spec, doc).unwrap();
    let tool = |program: &str, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e} (make check-tools installs it)"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    tool("python3", &["-m", "openapi_spec_validator", "openapi.json"]);
    tool(
        "openapi-python-client",
        &["generate", "--path", "openapi.json", "--meta", "none"],
    );
    let script = repo_root().join("tests/sdk/use_client.py");
    let out = tool(
        "python3",
        &[
            &script.to_string_lossy(),
            &dir.to_string_lossy(),
            &daemon.admin,
            &key,
            &receiver.url(),
        ],
    );
    let seen: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        seen["delivery"].as_str().unwrap().starts_with("dlv_"),
        "{seen}"
    );
    assert_eq!(receiver.count(), 1);
}

async fn stream_length(redis: &Redis) -> u64 {
    redis::cmd("XLEN")
        .arg("hookd:events")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap()
}

/// A repeated Idempotency-Key is answered as a repeat (the first entry, no
/// second one written), a different body under it is a conflict, through
/// the API and the CLI alike; the CLI refuses reserved field names as the
/// API does.
#[tokio::test]
async fn a_repeated_event_id_is_a_repeat_or_a_conflict_never_a_silent_drop() {
    let redis = Redis::start();
    let env = test_env(&redis);
    let daemon = Daemon::ready(&env).await;
    let api = Api::new(&daemon.admin, &api_key(&env, "ws_a", "write"));
    let body = |title: &str| {
        Some(
            serde_json::json!({"type": "card.created", "data": {"title": title}})
                .to_string()
                .into_bytes(),
        )
    };
    let path = "/api/v1/workspaces/ws_a/events";
    let key = [("idempotency-key", "order-42")];
    let first = api.raw("POST", path, body("x"), &key).await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    assert_eq!(first.body["repeat"], false);
    let again = api.raw("POST", path, body("x"), &key).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["repeat"], true);
    assert_eq!(again.body["event_id"], "order-42");
    assert_eq!(again.body["entry_id"], first.body["entry_id"]);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let changed = api.raw("POST", path, body("y"), &key).await;
    assert_eq!(changed.status, 409, "{:?}", changed.body);
    assert_eq!(changed.body["code"], "conflict");
    assert_eq!(
        stream_length(&redis).await,
        1,
        "one entry for three publishes"
    );

    // The CLI answers the same way.
    let args = [
        "publish",
        "--workspace",
        "ws_a",
        "--type",
        "card.created",
        "--data",
        r#"{"title":"x"}"#,
        "--id",
        "order-42",
        "--json",
    ];
    let repeat: serde_json::Value = serde_json::from_str(&cli(&env, &args)).unwrap();
    assert_eq!(repeat["repeat"], true);
    assert_eq!(repeat["entry_id"], first.body["entry_id"]);
    let mut changed_args = args;
    changed_args[6] = r#"{"title":"z"}"#;
    let out = hookd_command(&env).args(changed_args).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("conflict"));
    let out = hookd_command(&env)
        .args([
            "publish",
            "--workspace",
            "ws_a",
            "--type",
            "card.created",
            "--data",
            "{}",
            "--field",
            "id=x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "--field id=x must be refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("reserved"));
    assert_eq!(stream_length(&redis).await, 1);
}

/// The CLI's `--json` is the API's JSON: the same members, names, times and
/// list shape, for endpoints, deliveries and keys; and the CLI refuses what
/// the API refuses (a missing endpoint's history, a grace over 30 days).
/// (Two worker threads: the receiver answers the CLI's test event while the
/// test waits for the CLI.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_json_is_the_api_json() {
    let redis = Redis::start();
    let env = test_env(&redis);
    let receiver = Receiver::ok().await;
    let daemon = Daemon::ready(&env).await;
    let api = Api::new(&daemon.admin, &api_key(&env, "ws_a", "admin"));
    let created = create_endpoint_with(
        &env,
        "ws_a",
        &receiver.url(),
        &[
            "--metadata",
            "owner=ana",
            "--header",
            "X-Team: boards",
            "--rate-limit",
            "50",
        ],
    );
    let id = created["id"].as_str().unwrap().to_string();
    cli_json(
        &env,
        &[
            "endpoints",
            "update",
            &id,
            "--metadata",
            "tier=gold",
            "--header",
            "X-Extra: 1",
        ],
    );
    let published = api
        .call(
            "POST",
            "/api/v1/workspaces/ws_a/events",
            Some(serde_json::json!({"type": "card.created", "data": {}})),
        )
        .await;
    assert_eq!(published.status, 202);
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let same = |cli: serde_json::Value, api: serde_json::Value, what: &str| {
        assert_eq!(cli, api, "{what}: the CLI's JSON differs from the API's");
    };
    let one = format!("/api/v1/workspaces/ws_a/endpoints/{id}");
    let shown = cli_json(&env, &["endpoints", "show", &id]);
    assert_eq!(
        shown["metadata"],
        serde_json::json!({"owner": "ana", "tier": "gold"})
    );
    assert_eq!(shown["headers"]["X-Extra"], "1");
    same(
        shown,
        api.call("GET", &one, None).await.body,
        "endpoints show",
    );
    same(
        cli_json(&env, &["endpoints", "list", "--workspace", "ws_a"]),
        api.call("GET", "/api/v1/workspaces/ws_a/endpoints", None)
            .await
            .body,
        "endpoints list",
    );
    let page = eventually(Duration::from_secs(20), "a succeeded delivery", || async {
        let page = api
            .call("GET", "/api/v1/workspaces/ws_a/deliveries", None)
            .await
            .body;
        (page["data"][0]["status"] == "succeeded").then_some(page)
    })
    .await;
    same(
        cli_json(&env, &["deliveries", "list", "--workspace", "ws_a"]),
        page.clone(),
        "deliveries list",
    );
    let delivery = page["data"][0]["id"].as_str().unwrap();
    same(
        cli_json(&env, &["deliveries", "show", delivery]),
        api.call(
            "GET",
            &format!("/api/v1/workspaces/ws_a/deliveries/{delivery}"),
            None,
        )
        .await
        .body,
        "deliveries show",
    );
    // A test event from the CLI: the API's answer, and readable as text.
    let tested = cli_json(
        &env,
        &[
            "endpoints",
            "test",
            &id,
            "--type",
            "card.created",
            "--data",
            r#"{"n":1}"#,
        ],
    );
    assert_eq!(tested["succeeded"], true, "{tested}");
    assert_eq!(
        tested["request"]["body"]["data"],
        serde_json::json!({"n": 1})
    );
    assert_eq!(tested["response"]["status_code"], 200);
    let out = hookd_command(&env)
        .args(["endpoints", "test", &id])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("succeeded:   200"), "{text}");
    assert!(text.contains("> x-hookd-signature: sha256="), "{text}");
    assert!(text.contains(r#""type": "hookd.test""#), "{text}");
    same(
        cli_json(&env, &["keys", "list", "--workspace", "ws_a"]),
        api.call("GET", "/api/v1/workspaces/ws_a/keys", None)
            .await
            .body,
        "keys list",
    );

    // Refused by both.
    let missing = api
        .call(
            "GET",
            "/api/v1/workspaces/ws_a/deliveries?endpoint_id=ep_missing",
            None,
        )
        .await;
    assert_eq!(missing.status, 404);
    let out = hookd_command(&env)
        .args(["deliveries", "list", "--endpoint", "ep_missing"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let out = hookd_command(&env)
        .args(["endpoints", "rotate-secret", &id, "--grace", "90d"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--grace") && err.contains("30 days"), "{err}");
    // The CLI names the flag where the API names the member.
    let out = hookd_command(&env)
        .args([
            "endpoints",
            "update",
            &id,
            "--header",
            "Content-Type: text/plain",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--header Content-Type"), "{err}");
    assert!(!err.contains("/headers/"), "{err}");
    let r = api
        .call(
            "POST",
            &format!("{one}/secret/rotate"),
            Some(serde_json::json!({"grace_seconds": 90 * 86_400})),
        )
        .await;
    assert_eq!(r.status, 422);

    // An oversized event names the configuration key that limits it.
    let big = "x".repeat(300 * 1024);
    let r = api
        .call(
            "POST",
            "/api/v1/workspaces/ws_a/events",
            Some(serde_json::json!({"type": "card.created", "data": {"text": big}})),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(r.body["issues"][0]["path"], "/data");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("[ingest] max_payload_bytes"),
        "{:?}",
        r.body
    );
}

/// The smaller things a newcomer trips on: the API reference page has a
/// title and loads nothing from outside; configuration and connection
/// errors say what is wrong once; tables are aligned and name their keys;
/// a Redis without AOF is warned about.
#[tokio::test]
async fn small_things_a_newcomer_trips_on() {
    let redis = Redis::start();
    let env = test_env(&redis);

    // A URL that does not parse is said to be one.
    let out = hookd_command(&env)
        .env("HOOKD__REDIS__URL", "localhost:6379")
        .args(["endpoints", "list"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("is not a Redis URL"), "{stderr}");
    assert!(stderr.contains("redis://localhost:6379"), "{stderr}");
    // Redis down: the cause once, not three times.
    let out = hookd_command(&env)
        .env(
            "HOOKD__REDIS__URL",
            format!("redis://127.0.0.1:{}", free_port()),
        )
        .args(["endpoints", "list"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot reach Redis"), "{stderr}");
    assert_eq!(stderr.matches("Connection refused").count(), 1, "{stderr}");

    // keys list names each key.
    cli(
        &env,
        &[
            "keys",
            "create",
            "--workspace",
            "ws_a",
            "--scope",
            "read",
            "--name",
            "dashboard",
        ],
    );
    let keys = cli(&env, &["keys", "list"]);
    assert!(keys.lines().next().unwrap().contains("NAME"), "{keys}");
    assert!(keys.contains("dashboard"), "{keys}");

    // The daemon warns when Redis keeps no append-only file (the test
    // Redis has none), and serves /docs with a title and nothing from outside.
    let bind = format!("127.0.0.1:{}", free_port());
    let daemon = Killed(
        hookd_command(&env)
            .env("HOOKD__ADMIN__BIND", &bind)
            .env("HOOKD__LOG__LEVEL", "warn")
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let page = eventually(Duration::from_secs(20), "/docs", || async {
        let r = http.get(format!("http://{bind}/docs")).send().await.ok()?;
        (r.status() == 200).then_some(r.text().await.ok()?)
    })
    .await;
    assert!(page.contains("<title>hookd admin API</title>"), "{page}");
    assert!(
        !page.contains("https://"),
        "the page loads nothing from outside: {page}"
    );
    let script = http
        .get(format!("http://{bind}/docs/scalar.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(script.headers()["content-encoding"], "gzip");
    assert!(
        script.bytes().await.unwrap().len() > 100_000,
        "the vendored script"
    );
    // Publish a type with a long name and read the types table.
    cli(
        &env,
        &[
            "publish",
            "--workspace",
            "ws_a",
            "--type",
            "board.archived.by.an.admin",
            "--data",
            "{}",
        ],
    );
    let table = eventually(Duration::from_secs(20), "the type seen", || async {
        let t = cli(&env, &["event-types", "--workspace", "ws_a"]);
        t.contains("board.archived.by.an.admin").then_some(t)
    })
    .await;
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    let row = lines.next().unwrap();
    let count_end = header.find("COUNT").unwrap() + "COUNT".len();
    assert_eq!(&row[count_end - 1..count_end], "1", "aligned:\n{table}");
    let mut daemon = daemon;
    let _ = daemon.0.kill();
    let mut stderr = String::new();
    use std::io::Read;
    daemon
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("append-only file"), "{stderr}");
}
