//! `hookd serve`: logging, the Redis connection, signals, and the daemon.

use std::time::Duration;

use anyhow::Context;
use hookd_store::Store;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::settings::Config;

fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if config.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A consumer name unique to this process: host, pid and a random suffix.
fn consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "hookd".into());
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}

async fn shutdown_signal(tx: watch::Sender<bool>) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: no new claims; finishing in-flight deliveries");
    let _ = tx.send(true);
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    init_logging(&config);
    let (tx, rx) = watch::channel(false);
    tokio::spawn(shutdown_signal(tx));
    let mut waited = Duration::ZERO;
    let store = loop {
        match Store::connect(config.store()).await {
            Ok(store) => break store,
            Err(e) if waited < Duration::from_secs(30) && !*rx.borrow() => {
                tracing::warn!(error = %e, url = %config.redis.url, "Redis not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                waited += Duration::from_secs(1);
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot reach Redis at {} (set [redis] url or HOOKD__REDIS__URL)",
                        config.redis.url
                    )
                });
            }
        }
    };
    hookd_delivery::run(store, config.daemon(consumer_name()), rx).await?;
    Ok(())
}
