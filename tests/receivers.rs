//! What receivers see and verify: the Standard Webhooks scheme, checked by
//! our crate and by the `standardwebhooks` package from PyPI (a verifier no
//! one on this team wrote).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod harness;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::*;
use hookd_signature::standard;

const WAIT: Duration = Duration::from_secs(30);

/// Verifies with Python's `standardwebhooks` package; returns its verdict.
fn python_verifies(secret: &str, r: &Received) -> Result<(), String> {
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
secret, headers = sys.argv[1], json.loads(sys.argv[2])
Webhook(secret).verify(sys.stdin.buffer.read(), headers)
"#;
    let headers = serde_json::json!({
        "webhook-id": r.header("webhook-id"),
        "webhook-timestamp": r.header("webhook-timestamp"),
        "webhook-signature": r.header("webhook-signature"),
    });
    let mut child = Command::new("python3")
        .args(["-c", script, secret, &headers.to_string()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (make test installs standardwebhooks)");
    child.stdin.take().unwrap().write_all(&r.body).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Producers in Python and Node compute a workspace's partition as hookd
/// does (the shared vectors; Rust checks them in crates/store/src/keys.rs).
#[test]
fn producers_in_python_and_node_pick_the_partitions_hookd_reads() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let vectors = root.join("docs/producers/partition-vectors.json");
    for (program, script) in [
        ("python3", "examples/producers/python/partition.py"),
        ("node", "examples/producers/node/partition.js"),
    ] {
        let out = std::process::Command::new(program)
            .arg(root.join(script))
            .arg("--check")
            .arg(&vectors)
            .output()
            .unwrap_or_else(|e| panic!("{program} must be installed: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{script}: {text}");
        assert!(text.contains("88 passed, 0 failed"), "{script}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standard_webhooks_endpoint_is_verified_by_off_the_shelf_code() {
    let redis = Redis::start();
    let env = test_env(&redis);
    let receiver = Receiver::ok().await;
    let v = create_endpoint_with(
        &env,
        "ws",
        &receiver.url(),
        &["--scheme", "standard-webhooks"],
    );
    let secret = v["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(v["scheme"], "standard-webhooks");
    let _daemon = Daemon::start(&env);
    redis
        .xadd(&[
            ("type", "card.created"),
            ("workspace", "ws"),
            ("data", r#"{"title":"é ✓"}"#),
            ("id", "evt_sw"),
        ])
        .await;

    let got = receiver.wait_for(1, WAIT).await;
    let r = &got[0];
    assert_eq!(r.header("webhook-id"), Some("evt_sw"));
    assert!(
        r.header("X-Hookd-Signature").is_none(),
        "one scheme per endpoint"
    );
    standard::Verifier::new([&secret])
        .unwrap()
        .verify(&r.headers, &r.body)
        .unwrap();
    python_verifies(&secret, r).unwrap();

    // The same check refuses a tampered body and a wrong secret.
    let mut tampered = r.clone();
    tampered.body.push(b' ');
    assert!(python_verifies(&secret, &tampered).is_err());
    let other = standard::encode_secret(b"some other key of enough length");
    assert!(python_verifies(&other, r).is_err());
}

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn vectors() -> String {
    repo("crates/signature/testdata/vectors.json")
        .display()
        .to_string()
}

fn run(program: &str, script: &str, args: &[&str], stdin: &[u8]) -> (bool, String) {
    let mut child = Command::new(program)
        .arg(repo(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} must be installed: {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_python_and_node_examples_pass_every_vector() {
    for (program, script) in [
        ("python3", "examples/receivers/python/check_vectors.py"),
        ("node", "examples/receivers/node/check-vectors.js"),
    ] {
        let (ok, out) = run(program, script, &[&vectors()], b"");
        assert!(ok, "{script}: {out}");
        assert!(out.contains("25 passed, 0 failed"), "{script}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_and_node_examples_verify_a_live_delivery() {
    let Setup(redis, env, receiver, _, secret) = Setup::new(Receiver::ok().await).await;
    let _daemon = Daemon::start(&env);
    redis
        .xadd(&[
            ("type", "card.created"),
            ("workspace", "ws"),
            ("data", r#"{"title":"naïve ✓"}"#),
        ])
        .await;
    let got = receiver.wait_for(1, WAIT).await;
    let r = &got[0];
    let headers = serde_json::json!({
        "X-Hookd-Timestamp": r.header("X-Hookd-Timestamp"),
        "X-Hookd-Signature": r.header("X-Hookd-Signature"),
    })
    .to_string();
    for (program, script) in [
        ("python3", "examples/receivers/python/receiver.py"),
        ("node", "examples/receivers/node/receiver.js"),
    ] {
        let (ok, out) = run(program, script, &["--check", &secret, &headers], &r.body);
        assert!(ok && out.trim() == "valid", "{script}: {out}");
        let (ok, out) = run(
            program,
            script,
            &["--check", "hks_wrong", &headers],
            &r.body,
        );
        assert!(
            !ok && out.contains("no_match"),
            "{script} accepted a wrong secret: {out}"
        );
    }
}

/// Runs `hookd` with `args`; returns (exited 0, stdout).
fn hookd_output(env: &[(String, String)], args: &[&str]) -> (bool, String) {
    let out = hookd_command(env).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn hookd_verify_explains_a_captured_request() {
    let Setup(redis, env, receiver, _, secret) = Setup::new(Receiver::ok().await).await;
    let _daemon = Daemon::start(&env);
    redis.publish(r#"{"n":1}"#, None).await;
    let r = receiver.wait_for(1, WAIT).await.remove(0);

    let dir = std::env::temp_dir().join(format!("hookd-verify-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let header_lines: String = r
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let (headers, body, request, tampered) = (
        dir.join("headers.txt"),
        dir.join("body.json"),
        dir.join("request.http"),
        dir.join("tampered.json"),
    );
    std::fs::write(&headers, &header_lines).unwrap();
    std::fs::write(&body, &r.body).unwrap();
    std::fs::write(
        &request,
        [
            format!("POST /hook HTTP/1.1\r\n{header_lines}\r\n").as_bytes(),
            &r.body,
        ]
        .concat(),
    )
    .unwrap();
    std::fs::write(&tampered, [&r.body[..], b" "].concat()).unwrap();
    let p = |path: &std::path::PathBuf| path.display().to_string();

    let (ok, out) = hookd_output(
        &env,
        &[
            "verify",
            "--secret",
            &secret,
            "--headers",
            &p(&headers),
            "--body",
            &p(&body),
        ],
    );
    assert!(ok && out.starts_with("valid"), "{out}");
    let (ok, out) = hookd_output(
        &env,
        &["verify", "--secret", &secret, "--request", &p(&request)],
    );
    assert!(ok && out.starts_with("valid"), "{out}");
    let (ok, out) = hookd_output(
        &env,
        &[
            "verify",
            "--secret",
            "hks_wrong",
            "--request",
            &p(&request),
            "--json",
        ],
    );
    let verdict: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        !ok && verdict["valid"] == false && verdict["code"] == "no_match",
        "{out}"
    );
    let (ok, out) = hookd_output(
        &env,
        &[
            "verify",
            "--secret",
            "hks_wrong",
            "--secret",
            &secret,
            "--request",
            &p(&request),
        ],
    );
    assert!(ok, "either secret of a rotation is enough: {out}");
    let (ok, out) = hookd_output(
        &env,
        &[
            "verify",
            "--secret",
            &secret,
            "--headers",
            &p(&headers),
            "--body",
            &p(&tampered),
        ],
    );
    assert!(!ok && out.contains("no_match"), "{out}");
    let (ok, out) = hookd_output(
        &env,
        &["verify", "--secret", "hks_wrong", "--request", &p(&request)],
    );
    assert!(!ok && out.contains("no signature matches"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn hookd_listen_prints_real_deliveries_and_rehearses_retries() {
    let redis = Redis::start();
    let env = test_env(&redis);
    let port = free_port();
    let (_, secret) = create_endpoint(&env, "ws", &format!("http://127.0.0.1:{port}/"), &[]);
    let mut listen = hookd_command(&env)
        .args([
            "listen",
            "--port",
            &port.to_string(),
            "--secret",
            &secret,
            "--fail-first",
            "1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = listen.stdout.take().unwrap();
    let printed = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = printed.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    eventually(WAIT, "listen to start", || async {
        printed.lock().unwrap().contains("listening").then_some(())
    })
    .await;
    let _daemon = Daemon::start(&env);
    redis
        .xadd(&[
            ("type", "card.created"),
            ("workspace", "ws"),
            ("data", r#"{"title":"x"}"#),
            ("id", "evt_listen"),
        ])
        .await;

    let out = eventually(WAIT, "the retried delivery printed", || async {
        let s = printed.lock().unwrap().clone();
        s.contains("answered 204").then_some(s)
    })
    .await;
    // A request whose signature does not verify gets 401, as a real
    // receiver would answer it (unless --accept-bad-signatures).
    let refused = raw_post(
        port,
        "X-Hookd-Timestamp: 1\r\nX-Hookd-Signature: sha256=00\r\n",
        "{}",
    )
    .await;
    assert!(refused.contains("401"), "{refused}");
    let _ = listen.kill();
    let _ = listen.wait();
    assert!(out.contains("event evt_listen  type card.created"), "{out}");
    assert!(
        out.contains("x-hookd-event-id: evt_listen"),
        "every header: {out}"
    );
    assert!(
        out.contains("attempt 1") && out.contains("attempt 2"),
        "{out}"
    );
    assert!(
        out.contains("answered 500"),
        "--fail-first 1 fails the first: {out}"
    );
    assert!(out.contains("signature ok (sha256)"), "{out}");
    assert!(
        out.contains(r#""data":{"title":"x"}"#),
        "the body byte for byte: {out}"
    );
}

/// POSTs a raw request to `port`; returns the response's status line.
async fn raw_post(port: u16, headers: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.lines().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_built_on_the_axum_extractor_takes_real_deliveries_and_refuses_forgeries() {
    use hookd_signature::Verifier;
    use hookd_signature::axum::VerifiedWebhook;

    let redis = Redis::start();
    let env = test_env(&redis);
    let port = free_port();
    let (_, secret) = create_endpoint(&env, "ws", &format!("http://127.0.0.1:{port}/hook"), &[]);
    let accepted: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let sink = accepted.clone();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(move |webhook: VerifiedWebhook| {
                let sink = sink.clone();
                async move {
                    sink.lock()
                        .unwrap()
                        .push(webhook.event_id.unwrap_or_default());
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        )
        .with_state(Verifier::new(&secret));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let _daemon = Daemon::start(&env);
    redis.publish("{}", Some("evt_axum")).await;
    eventually(WAIT, "the extractor to accept the delivery", || async {
        accepted
            .lock()
            .unwrap()
            .contains(&"evt_axum".to_string())
            .then_some(())
    })
    .await;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let forged = hookd_signature::sign(b"not the secret", now, b"{}");
    let status = raw_post(
        port,
        &format!("X-Hookd-Timestamp: {now}\r\nX-Hookd-Signature: {forged}\r\n"),
        "{}",
    )
    .await;
    assert!(status.contains("401"), "{status}");
    let status = raw_post(port, "", "{}").await;
    assert!(status.contains("401"), "unsigned request: {status}");
    assert_eq!(
        accepted.lock().unwrap().len(),
        1,
        "forgeries never reach the handler"
    );
}

/// Does `secret` alone verify `r`, in Rust, Python and Node? (All three must agree.)
fn verifies_everywhere(secret: &str, r: &Received) -> bool {
    let rust = hookd_signature::Verifier::new(secret)
        .verify(&r.headers, &r.body)
        .is_ok();
    let headers = serde_json::json!({
        "X-Hookd-Timestamp": r.header("X-Hookd-Timestamp"),
        "X-Hookd-Signature": r.header("X-Hookd-Signature"),
    })
    .to_string();
    let (python, _) = run(
        "python3",
        "examples/receivers/python/receiver.py",
        &["--check", secret, &headers],
        &r.body,
    );
    let (node, _) = run(
        "node",
        "examples/receivers/node/receiver.js",
        &["--check", secret, &headers],
        &r.body,
    );
    assert!(
        rust == python && python == node,
        "languages disagree: rust {rust}, python {python}, node {node}"
    );
    rust
}

#[tokio::test(flavor = "multi_thread")]
async fn during_a_rotation_either_secret_verifies_in_every_language_and_after_it_only_the_new() {
    let Setup(redis, env, receiver, id, old) = Setup::new(Receiver::ok().await).await;
    let rotated = cli_json(&env, &["endpoints", "rotate-secret", &id, "--grace", "1h"]);
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    // `endpoints secret` says which secrets sign: both now; under `newest`
    // the old one is kept for its grace but signs nothing.
    let shown = cli_json(&env, &["endpoints", "secret", &id]);
    assert_eq!(shown["previous_secrets"][0]["secret"], old.as_str());
    assert_eq!(shown["previous_secrets"][0]["signing"], true, "{shown}");
    cli(
        &env,
        &[
            "endpoints",
            "update",
            &id,
            "--rotation-signatures",
            "newest",
        ],
    );
    let shown = cli_json(&env, &["endpoints", "secret", &id]);
    assert_eq!(shown["rotation_signatures"], "newest");
    assert_eq!(shown["previous_secrets"][0]["signing"], false, "{shown}");
    cli(
        &env,
        &[
            "endpoints",
            "update",
            &id,
            "--rotation-signatures",
            "default",
        ],
    );
    let _daemon = Daemon::start(&env);

    redis.publish("1", Some("during")).await;
    let r = receiver.wait_for(1, WAIT).await.remove(0);
    let signature = r.header("X-Hookd-Signature").unwrap();
    assert_eq!(
        signature.split(',').count(),
        2,
        "both signatures during grace: {signature}"
    );
    assert!(
        signature.starts_with(&hookd_signature::sign(
            new.as_bytes(),
            r.header("X-Hookd-Timestamp").unwrap().parse().unwrap(),
            &r.body
        )),
        "newest first"
    );
    assert!(
        verifies_everywhere(&old, &r),
        "old secret alone, during grace"
    );
    assert!(
        verifies_everywhere(&new, &r),
        "new secret alone, during grace"
    );

    // A rotation with no grace: only the newest secret signs from now on.
    let newest = cli_json(&env, &["endpoints", "rotate-secret", &id, "--grace", "0s"])["secret"]
        .as_str()
        .unwrap()
        .to_string();
    redis.publish("2", Some("after")).await;
    let r = receiver.wait_for(2, WAIT).await.remove(1);
    assert_eq!(r.header("X-Hookd-Event-Id"), Some("after"));
    assert_eq!(r.header("X-Hookd-Signature").unwrap().split(',').count(), 1);
    assert!(verifies_everywhere(&newest, &r));
    assert!(
        !verifies_everywhere(&new, &r),
        "the replaced secret no longer verifies"
    );
    assert!(!verifies_everywhere(&old, &r));
}
