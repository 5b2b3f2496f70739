//! The daemon's own counters and histograms (Prometheus): events ingested,
//! dead letters, duplicates, attempts by outcome and their latency.
//! `/metrics` renders them with the queue figures read from Redis.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

/// Cheap to share behind an `Arc`; every metric lives in `registry`.
pub struct Metrics {
    pub registry: Registry,
    events: IntCounter,
    duplicates: IntCounter,
    dead_letters: IntCounterVec,
    attempts: IntCounterVec,
    attempt_seconds: Histogram,
    breaker_trips: IntCounter,
    forwarded: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
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
        registry.register(Box::new(forwarded.clone()))?;
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
        })
    }

    pub(crate) fn ingested(&self, events: u64, duplicates: u64) {
        self.events.inc_by(events);
        self.duplicates.inc_by(duplicates);
    }

    pub(crate) fn forwarded(&self, entries: usize) {
        self.forwarded.inc_by(entries as u64);
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
}
