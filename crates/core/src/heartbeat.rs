//! A liveness signal one task beats and another reads (the ingest loop
//! beats it; `/readyz` checks it is recent).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Cheap to clone; every clone shares one last-beat time.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat(Arc<AtomicI64>);

impl Heartbeat {
    /// Records that the loop ran at `now_ms`.
    pub fn beat(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::Relaxed);
    }

    /// When it last beat (ms), or `None` if never.
    pub fn last_ms(&self) -> Option<i64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(ms),
        }
    }
}
