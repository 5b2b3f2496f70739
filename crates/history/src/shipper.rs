//! Shipping: one loop per partition moves records from Redis's shipping
//! backlog (`P:ship`, see `hookd_store::ship`) into PostgreSQL. It reads a
//! batch with the shippers' consumer group, stores it (idempotently), then
//! acknowledges and deletes it. While PostgreSQL is down it keeps retrying
//! the batch it holds; the backlog grows in Redis (bounded by `[history]
//! ship_backlog` per partition) and delivery goes on. A daemon killed
//! mid-batch leaves the batch pending; another daemon's shipper takes it
//! over after `reclaim_idle` and stores it again, once.
//!
//! One more loop drops the day partitions older than `long_retention`, at
//! start-up and every hour.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use hookd_core::time;
use hookd_store::ship::ShipRecord;
use hookd_store::{PartitionKeys, Store};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};
use tokio::sync::watch;

use crate::Archive;

/// How long an idle shipper waits before looking at the backlog again.
const POLL: Duration = Duration::from_millis(100);

/// Typed shipping settings.
#[derive(Debug, Clone)]
pub struct ShipperSettings {
    /// The shippers' consumer group on each backlog.
    pub group: String,
    /// This process's consumer name.
    pub consumer: String,
    /// Backlog entries per batch (each holds the records of one step).
    pub batch: usize,
    /// A batch pending this long in another shipper is taken over.
    pub reclaim_idle: Duration,
}

/// Whether shipping works, for `/readyz` (history degraded, delivery not).
#[derive(Debug, Default)]
pub struct ShipHealth {
    failing: AtomicBool,
    last_error: std::sync::Mutex<String>,
    last_shipped_ms: AtomicI64,
}

impl ShipHealth {
    /// `Some(why)` while the last attempt to store a batch failed.
    pub fn problem(&self) -> Option<String> {
        if !self.failing.load(Ordering::Relaxed) {
            return None;
        }
        let why = self
            .last_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        Some(format!("history: not shipping to PostgreSQL ({why})"))
    }

    fn failed(&self, e: &crate::HistoryError) {
        self.failing.store(true, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = e.to_string();
        }
    }

    fn shipped(&self, now_ms: i64) {
        self.failing.store(false, Ordering::Relaxed);
        self.last_shipped_ms.store(now_ms, Ordering::Relaxed);
    }
}

/// Shipping's metrics, registered in the daemon's registry.
pub struct ShipMetrics {
    shipped: IntCounter,
    errors: IntCounter,
    lag: Histogram,
    backlog: IntGauge,
    backlog_by_partition: std::sync::Mutex<std::collections::HashMap<u32, i64>>,
    dropped_partitions: IntCounter,
}

impl ShipMetrics {
    /// The shipping metrics, registered in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let shipped = IntCounter::new(
            "hookd_history_shipped_records_total",
            "History records stored in PostgreSQL.",
        )?;
        let errors = IntCounter::new(
            "hookd_history_ship_errors_total",
            "Batches PostgreSQL refused or could not take (retried).",
        )?;
        let lag = Histogram::with_opts(
            HistogramOpts::new(
                "hookd_history_ship_lag_seconds",
                "From a record's write in Redis to its storage in PostgreSQL.",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
        )?;
        let backlog = IntGauge::new(
            "hookd_history_ship_backlog",
            "Backlog entries in Redis not yet shipped, over every partition (each holds the records of one step).",
        )?;
        let dropped_partitions = IntCounter::new(
            "hookd_history_partitions_dropped_total",
            "Day partitions dropped at long_retention.",
        )?;
        registry.register(Box::new(shipped.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(lag.clone()))?;
        registry.register(Box::new(backlog.clone()))?;
        registry.register(Box::new(dropped_partitions.clone()))?;
        Ok(Self {
            shipped,
            errors,
            lag,
            backlog,
            backlog_by_partition: Default::default(),
            dropped_partitions,
        })
    }
}

/// The shipping loops of one daemon.
#[derive(Clone)]
pub struct Shipper {
    /// Where the backlogs are.
    pub store: Store,
    /// Where the records go.
    pub archive: Archive,
    /// The consumer group, batch size and take-over time.
    pub settings: ShipperSettings,
    /// Shipped records, errors and lag.
    pub metrics: Arc<ShipMetrics>,
    /// Whether shipping works, for `/readyz`.
    pub health: Arc<ShipHealth>,
}

impl Shipper {
    /// Starts a loop per partition and the retention loop; they end at `shutdown`.
    pub fn spawn(&self, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks: Vec<_> = self
            .store
            .keys()
            .all_partitions()
            .map(|p| {
                let (me, shutdown) = (self.clone(), shutdown.clone());
                tokio::spawn(async move { me.ship_partition(p, shutdown).await })
            })
            .collect();
        let (me, shutdown) = (self.clone(), shutdown);
        tasks.push(tokio::spawn(async move { me.retention(shutdown).await }));
        tasks
    }

    async fn ship_partition(self, p: PartitionKeys, mut shutdown: watch::Receiver<bool>) {
        let mut wait = Duration::from_millis(200);
        let mut batch = Vec::new();
        // The batch's payloads, read once while the batch is retried.
        let mut envelopes = None;
        while !*shutdown.borrow() {
            if batch.is_empty() {
                let taken = async {
                    self.store
                        .ensure_ship_group(&p, &self.settings.group)
                        .await?;
                    self.store
                        .take_shipments(
                            &p,
                            &self.settings.group,
                            &self.settings.consumer,
                            self.settings.batch,
                            self.settings.reclaim_idle,
                        )
                        .await
                }
                .await;
                match taken {
                    Ok(taken) => batch = taken,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the history backlog failed");
                        sleep_or_shutdown(Duration::from_secs(1), &mut shutdown).await;
                        continue;
                    }
                }
                if batch.is_empty() {
                    self.count_backlog(&p).await;
                    sleep_or_shutdown(POLL, &mut shutdown).await;
                    continue;
                }
            }
            let records: Vec<&ShipRecord> = batch.iter().flat_map(|s| &s.records).collect();
            if envelopes.is_none() {
                match self.store.shipment_envelopes(&p, &records).await {
                    Ok(found) => envelopes = Some(found),
                    Err(e) => {
                        tracing::warn!(error = %e, "reading shipped events' payloads failed");
                        sleep_or_shutdown(Duration::from_secs(1), &mut shutdown).await;
                        continue;
                    }
                }
            }
            let stored = self
                .archive
                .store(&records, envelopes.as_deref().unwrap_or_default())
                .await;
            match stored {
                Ok(()) => {
                    let ids: Vec<String> = batch.iter().map(|s| s.entry_id.clone()).collect();
                    if let Err(e) = self.store.shipped(&p, &self.settings.group, &ids).await {
                        // Stored but not acknowledged: stored again later, once.
                        tracing::warn!(error = %e, "acknowledging shipped history failed");
                    }
                    let now = time::now_ms();
                    self.metrics.shipped.inc_by(records.len() as u64);
                    for r in &records {
                        self.metrics
                            .lag
                            .observe((now - r.recorded_ms).max(0) as f64 / 1000.0);
                    }
                    self.health.shipped(now);
                    wait = Duration::from_millis(200);
                    batch.clear();
                    envelopes = None;
                }
                Err(e) => {
                    self.metrics.errors.inc();
                    if self.health.problem().is_none() {
                        tracing::warn!(error = %e, "shipping history to PostgreSQL failed; retrying (delivery goes on, history waits in Redis)");
                    }
                    self.health.failed(&e);
                    self.count_backlog(&p).await;
                    sleep_or_shutdown(wait, &mut shutdown).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// This partition's backlog into the gauge of all of them (each
    /// partition's loop counts only its own).
    async fn count_backlog(&self, p: &PartitionKeys) {
        let Ok(n) = self.store.ship_backlog(p).await else {
            return;
        };
        if let Ok(mut by_partition) = self.metrics.backlog_by_partition.lock() {
            by_partition.insert(p.index, n as i64);
            self.metrics.backlog.set(by_partition.values().sum());
        }
    }

    async fn retention(self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            match self.archive.drop_expired(time::now_ms()).await {
                Ok(dropped) => {
                    if !dropped.is_empty() {
                        tracing::info!(partitions = ?dropped, "history partitions past long_retention dropped");
                        self.metrics.dropped_partitions.inc_by(dropped.len() as u64);
                    }
                    sleep_or_shutdown(Duration::from_secs(3600), &mut shutdown).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dropping expired history partitions failed");
                    sleep_or_shutdown(Duration::from_secs(60), &mut shutdown).await;
                }
            }
        }
    }
}

async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.changed() => {}
    }
}
