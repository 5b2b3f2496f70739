//! The daemon's own counters and histograms (Prometheus): events ingested,
//! dead letters, duplicates, attempts by outcome and their latency, attempt
//! results by error kind per workspace and endpoint (bounded), the delay
//! from publish to first attempt, and the build. `/metrics` renders them
//! with the queue figures read from Redis.
//!
//! Counters an alert reads exist at 0 from start-up (every outcome, every
//! dead-letter reason), so the alert reads 0, not "no data".
//!
//! Per-endpoint series are bounded: the first `endpoint_series` endpoints
//! this process attempts get their own `workspace` and `endpoint` labels;
//! attempts to any other are counted under `workspace="_other",
//! endpoint="_other"`.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Every outcome label of `hookd_attempts_total`.
pub const OUTCOMES: [&str; 3] = ["succeeded", "retrying", "failed"];
/// Every reason label of `hookd_dead_letters_total` (the entry checks'
/// codes; the stream reader's `other` appears when it is first used).
pub const DEAD_LETTER_REASONS: [&str; 14] = [
    "missing_field",
    "invalid_type",
    "invalid_workspace",
    "invalid_json",
    "invalid_id",
    "invalid_occurred_at",
    "invalid_utf8",
    "reserved_field",
    "too_large",
    "too_many_fields",
    "duplicate_field",
    "invalid_field_name",
    "unrecordable",
    "redelivered_too_often",
];
/// The label for series past the cap.
const OTHER: &str = "_other";

/// What waits in lanes for one workspace.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Waiting {
    /// Deliveries waiting here, in the daemon's memory.
    pub here: u64,
    /// Deliveries waiting in Redis lanes.
    pub in_redis: u64,
    /// Age of the oldest waiting delivery, in seconds.
    pub oldest_seconds: f64,
}

impl Waiting {
    pub(crate) fn add(&mut self, other: &Waiting) {
        self.here += other.here;
        self.in_redis += other.in_redis;
        self.oldest_seconds = self.oldest_seconds.max(other.oldest_seconds);
    }
}

/// Cheap to share behind an `Arc`; every metric lives in `registry`.
pub struct Metrics {
    /// Every series, rendered by `/metrics`.
    pub registry: Registry,
    events: IntCounter,
    duplicates: IntCounter,
    dead_letters: IntCounterVec,
    attempts: IntCounterVec,
    attempt_seconds: Histogram,
    breaker_trips: IntCounter,
    forwarded: IntCounter,
    fenced: IntCounterVec,
    pending_trimmed: IntCounter,
    waiting: IntGaugeVec,
    waiting_oldest: prometheus::GaugeVec,
    /// Each partition's last report of what waits in its lanes.
    waiting_by_partition: Mutex<std::collections::HashMap<u32, Vec<(String, Waiting)>>>,
    results: IntCounterVec,
    first_attempt_delay: Histogram,
    /// Endpoints with series of their own, at most `endpoint_series`.
    labelled: Mutex<HashSet<String>>,
    endpoint_series: usize,
}

impl Metrics {
    /// Metrics with at most 100 endpoints labelled.
    pub fn new() -> Result<Self, prometheus::Error> {
        Self::with_endpoint_series(100)
    }

    /// The daemon's metrics, with per-endpoint series for at most `endpoint_series` endpoints (the rest are counted under `_other`).
    pub fn with_endpoint_series(endpoint_series: usize) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let events = IntCounter::new(
            "hookd_events_ingested_total",
            "Events persisted from the stream.",
        )?;
        let duplicates = IntCounter::new(
            "hookd_events_duplicate_total",
            "Events skipped because their (workspace, id) was already ingested.",
        )?;
        let dead_letters = IntCounterVec::new(
            Opts::new(
                "hookd_dead_letters_total",
                "Stream entries refused, by reason.",
            ),
            &["reason"],
        )?;
        let attempts = IntCounterVec::new(
            Opts::new(
                "hookd_attempts_total",
                "Delivery attempts, by what they left the delivery as: succeeded, retrying, failed.",
            ),
            &["outcome"],
        )?;
        let attempt_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "hookd_attempt_duration_seconds",
                "Time from request start to response or failure.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        )?;
        let breaker_trips = IntCounter::new(
            "hookd_circuit_breaker_trips_total",
            "Endpoints paused by the circuit breaker.",
        )?;
        let forwarded = IntCounter::new(
            "hookd_entries_forwarded_total",
            "Stream entries moved to their workspace's partition (written with an earlier partition count).",
        )?;
        let fenced = IntCounterVec::new(
            Opts::new(
                "hookd_fenced_writes_total",
                "Records not written because another daemon had taken the work over (this one was too slow), by step: settle (first attempts), record (later attempts).",
            ),
            &["step"],
        )?;
        for step in ["settle", "record"] {
            fenced.with_label_values(&[step]);
        }
        let pending_trimmed = IntCounter::new(
            "hookd_pending_entries_trimmed_total",
            "Entries pending in the consumer group (read, not yet settled) whose stream entry was trimmed away before anyone settled it: nothing was left to deliver.",
        )?;
        let waiting = IntGaugeVec::new(
            Opts::new(
                "hookd_waiting_deliveries",
                "First attempts waiting in lanes for a slot, by workspace (the 50 with the most; the rest under _other) and part: here (in this daemon, entries pending in the group; sum over daemons) or redis (in Redis lanes; the same on every daemon, take the max).",
            ),
            &["workspace", "part"],
        )?;
        let waiting_oldest = prometheus::GaugeVec::new(
            Opts::new(
                "hookd_waiting_oldest_seconds",
                "How long the oldest first attempt waiting in a lane has waited (since its event was published), by workspace (as hookd_waiting_deliveries).",
            ),
            &["workspace"],
        )?;
        let results = IntCounterVec::new(
            Opts::new(
                "hookd_attempt_results_total",
                "Delivery attempts by result (success, 3xx, 4xx, 5xx, timeout, connect, dns, tls, blocked), workspace and endpoint (the first [telemetry] endpoint_series endpoints; the rest under _other).",
            ),
            &["result", "workspace", "endpoint"],
        )?;
        let first_attempt_delay = Histogram::with_opts(
            HistogramOpts::new(
                "hookd_first_attempt_delay_seconds",
                "From an event's publication (its stream entry) to the start of a delivery's first attempt.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
        )?;
        let build = IntGaugeVec::new(
            Opts::new(
                "hookd_build_info",
                "Always 1; the labels say which hookd this is.",
            ),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for outcome in OUTCOMES {
            attempts.with_label_values(&[outcome]);
        }
        for reason in DEAD_LETTER_REASONS {
            dead_letters.with_label_values(&[reason]);
        }
        registry.register(Box::new(results.clone()))?;
        registry.register(Box::new(first_attempt_delay.clone()))?;
        registry.register(Box::new(build))?;
        registry.register(Box::new(forwarded.clone()))?;
        registry.register(Box::new(fenced.clone()))?;
        registry.register(Box::new(pending_trimmed.clone()))?;
        registry.register(Box::new(waiting.clone()))?;
        registry.register(Box::new(waiting_oldest.clone()))?;
        registry.register(Box::new(breaker_trips.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(duplicates.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(attempts.clone()))?;
        registry.register(Box::new(attempt_seconds.clone()))?;
        Ok(Self {
            registry,
            events,
            duplicates,
            dead_letters,
            attempts,
            attempt_seconds,
            breaker_trips,
            forwarded,
            fenced,
            pending_trimmed,
            waiting,
            waiting_oldest,
            waiting_by_partition: Mutex::new(Default::default()),
            results,
            first_attempt_delay,
            labelled: Mutex::new(HashSet::new()),
            endpoint_series,
        })
    }

    pub(crate) fn ingested(&self, events: u64, duplicates: u64) {
        self.events.inc_by(events);
        self.duplicates.inc_by(duplicates);
    }

    pub(crate) fn forwarded(&self, entries: usize) {
        self.forwarded.inc_by(entries as u64);
    }

    /// Records not written because the work was taken over by another daemon.
    pub(crate) fn fenced(&self, step: &str, count: usize) {
        self.fenced.with_label_values(&[step]).inc_by(count as u64);
    }

    /// What waits in one partition's lanes now, per workspace. Only the 50
    /// workspaces with the most (over all partitions) get series of their own.
    pub(crate) fn waiting(&self, partition: u32, report: Vec<(String, Waiting)>) {
        const SERIES: usize = 50;
        let Ok(mut reports) = self.waiting_by_partition.lock() else {
            return;
        };
        reports.insert(partition, report);
        let mut merged: std::collections::HashMap<String, Waiting> = Default::default();
        for (ws, w) in reports.values().flatten() {
            merged.entry(ws.clone()).or_default().add(w);
        }
        drop(reports);
        let mut by_workspace: Vec<(String, Waiting)> = merged.into_iter().collect();
        by_workspace.sort_by_key(|(_, w)| std::cmp::Reverse(w.here + w.in_redis));
        self.waiting.reset();
        self.waiting_oldest.reset();
        let (mut rest_here, mut rest_redis, mut rest_oldest) = (0u64, 0u64, 0f64);
        for (
            i,
            (
                ws,
                Waiting {
                    here,
                    in_redis: redis,
                    oldest_seconds: oldest,
                },
            ),
        ) in by_workspace.into_iter().enumerate()
        {
            if i < SERIES {
                self.waiting
                    .with_label_values(&[&ws, "here"])
                    .set(here as i64);
                self.waiting
                    .with_label_values(&[&ws, "redis"])
                    .set(redis as i64);
                self.waiting_oldest.with_label_values(&[&ws]).set(oldest);
            } else {
                rest_here += here;
                rest_redis += redis;
                rest_oldest = rest_oldest.max(oldest);
            }
        }
        if rest_here + rest_redis > 0 {
            self.waiting
                .with_label_values(&[OTHER, "here"])
                .set(rest_here as i64);
            self.waiting
                .with_label_values(&[OTHER, "redis"])
                .set(rest_redis as i64);
            self.waiting_oldest
                .with_label_values(&[OTHER])
                .set(rest_oldest);
        }
    }

    pub(crate) fn pending_trimmed(&self, count: usize) {
        self.pending_trimmed.inc_by(count as u64);
    }

    pub(crate) fn dead_letter(&self, reason: &str) {
        self.dead_letters.with_label_values(&[reason]).inc();
    }

    pub(crate) fn breaker_tripped(&self) {
        self.breaker_trips.inc();
    }

    pub(crate) fn attempt(&self, outcome: &str, seconds: f64) {
        self.attempts.with_label_values(&[outcome]).inc();
        self.attempt_seconds.observe(seconds);
    }

    /// An attempt's result for `workspace`'s `endpoint` (see the module
    /// comment for the cap).
    pub(crate) fn result(&self, result: &str, workspace: &str, endpoint: &str) {
        let own = match self.labelled.lock() {
            Ok(mut labelled) => {
                labelled.contains(endpoint)
                    || (labelled.len() < self.endpoint_series
                        && labelled.insert(endpoint.to_string()))
            }
            Err(_) => false,
        };
        let (workspace, endpoint) = if own {
            (workspace, endpoint)
        } else {
            (OTHER, OTHER)
        };
        self.results
            .with_label_values(&[result, workspace, endpoint])
            .inc();
    }

    /// A first attempt started `seconds` after its event was published.
    pub(crate) fn first_attempt(&self, seconds: f64) {
        self.first_attempt_delay.observe(seconds.max(0.0));
    }
}
