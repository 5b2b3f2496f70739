//! `hookd serve`: logging, the Redis connection, signals, and the daemon.

use std::time::Duration;

use anyhow::Context;
use hookd_store::Store;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::settings::Config;

fn init_logging(config: &Config) {
    // redis-rs's cluster client logs every reconnection attempt at warn
    // (hundreds a second during a failover); hookd's own warnings say what
    // matters, so the client's go to error unless RUST_LOG asks otherwise.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},redis=error", config.log.level)));
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

/// With `[history] postgres_url`: migrations when asked, and the shipping
/// loops. Returns how history is read, shipping's health, and the loops.
async fn ship_history(
    config: &Config,
    store: &Store,
    telemetry: &hookd_delivery::Telemetry,
    consumer: &str,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<(
    hookd_history::merged::HistoryReader,
    Option<std::sync::Arc<hookd_history::shipper::ShipHealth>>,
    Vec<tokio::task::JoinHandle<()>>,
)> {
    use hookd_history::shipper::{ShipHealth, ShipMetrics, Shipper, ShipperSettings};
    let Some(settings) = config.archive() else {
        let reader = hookd_history::merged::HistoryReader {
            store: store.clone(),
            archive: None,
        };
        return Ok((reader, None, Vec::new()));
    };
    let archive = hookd_history::Archive::new(settings);
    if config.history.migrate {
        // PostgreSQL away at start-up: delivery goes on; shipping reports it.
        match archive.dedicated().await {
            Ok(mut client) => match hookd_history::migrate::migrate(&mut client, None).await {
                Ok(applied) => tracing::info!(?applied, "history schema migrated"),
                Err(e) => tracing::error!(error = %e, "history schema migration failed"),
            },
            Err(e) => {
                tracing::warn!(error = %e, "PostgreSQL not reachable for migrations; run `hookd migrate` once it is")
            }
        }
    }
    let health = std::sync::Arc::new(ShipHealth::default());
    let shipper = Shipper {
        store: store.clone(),
        archive: archive.clone(),
        settings: ShipperSettings {
            group: "hookd-ship".into(),
            consumer: consumer.to_string(),
            batch: config.history.ship_batch.max(1),
            reclaim_idle: config.ingest.reclaim_idle,
        },
        metrics: std::sync::Arc::new(ShipMetrics::new(&telemetry.metrics.registry)?),
        health: health.clone(),
    };
    let tasks = shipper.spawn(shutdown.clone());
    let reader = hookd_history::merged::HistoryReader {
        store: store.clone(),
        archive: Some(archive),
    };
    Ok((reader, Some(health), tasks))
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
                tracing::warn!(error = %e, url = %config.redis_url_redacted(), "Redis not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                waited += Duration::from_secs(1);
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot reach Redis at {} (set [redis] url or HOOKD__REDIS__URL)",
                        config.redis_url_redacted()
                    )
                });
            }
        }
    };
    store.check_partitions().await?;
    if let Ok(Some(false)) = store.aof_enabled().await {
        tracing::warn!(
            "Redis runs without its append-only file (appendonly no): if Redis stops, events published since its last snapshot and delivery state are lost. Run it with appendonly yes and appendfsync everysec (docs/operations.md, Reliability); `make run` does when it starts Redis itself"
        );
    }
    if config.secrets.keys.is_empty() {
        tracing::warn!(
            "no [secrets] keys configured: endpoint signing secrets are stored in Redis in clear (set HOOKD__SECRETS__KEYS and HOOKD__SECRETS__CURRENT)"
        );
    }
    let tracing = crate::telemetry::Tracing::start(&config)?;
    let telemetry = hookd_delivery::Telemetry {
        metrics: std::sync::Arc::new(hookd_delivery::Metrics::with_endpoint_series(
            config.telemetry.endpoint_series,
        )?),
        heartbeat: Default::default(),
        spans: tracing.as_ref().map(|t| t.tracer.clone()),
    };
    let consumer = consumer_name();
    let (history, shipping, shipper) =
        ship_history(&config, &store, &telemetry, &consumer, &rx).await?;
    let admin = if config.admin.enabled {
        let settings = config.admin()?;
        let listener = tokio::net::TcpListener::bind(settings.bind)
            .await
            .with_context(|| format!("cannot listen on [admin] bind {}", settings.bind))?;
        tracing::info!(address = %settings.bind, "admin API listening");
        let state = hookd_admin::AppState {
            store: store.clone(),
            history,
            shipping,
            settings: std::sync::Arc::new(settings),
            heartbeat: telemetry.heartbeat.clone(),
            registry: telemetry.metrics.registry.clone(),
            figures: Default::default(),
            key_use: Default::default(),
            spans: telemetry.spans.clone(),
            prober: config.prober()?,
        };
        Some(tokio::spawn(hookd_admin::serve(
            listener,
            state,
            rx.clone(),
        )))
    } else {
        None
    };
    hookd_delivery::run(store, config.daemon(consumer), telemetry, rx).await?;
    for task in shipper {
        let _ = task.await;
    }
    if let Some(admin) = admin {
        match admin.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "admin API stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "admin API task failed"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(tracing) = tracing {
        tracing.shutdown();
    }
    Ok(())
}
