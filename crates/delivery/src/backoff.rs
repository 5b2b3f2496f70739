//! Waiting after a Redis error: 100 ms doubling to 5 s, with jitter.

use std::time::Duration;

pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    pub fn new() -> Self {
        Self { failures: 0 }
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn next_delay(&mut self) -> Duration {
        let base = 100u64.saturating_mul(1 << self.failures.min(6)).min(5000);
        self.failures = self.failures.saturating_add(1);
        Duration::from_millis(base / 2 + fastrand::u64(0..=base / 2))
    }
}
