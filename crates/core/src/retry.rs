//! When to try again: exponential backoff with jitter, bounded by attempts and age.
//!
//! The schedule is durable because only its result, a due time, is stored;
//! this module is the pure function from "attempts so far" to that time.

use std::time::Duration;

/// Retry settings for deliveries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the second attempt.
    pub initial_delay: Duration,
    /// Each further delay is this many times the previous one.
    pub factor: f64,
    /// No delay is longer than this.
    pub max_delay: Duration,
    /// Total attempts, the first included.
    pub max_attempts: u32,
    /// No attempt is made later than this after the delivery was created.
    pub max_age: Duration,
    /// Each delay is spread by up to this fraction either way (0.2 = ±20%).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_secs(5),
            factor: 2.0,
            max_delay: Duration::from_secs(3600),
            max_attempts: 12,
            max_age: Duration::from_secs(3 * 86_400),
            jitter: 0.2,
        }
    }
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again at this time (unix ms).
    RetryAt(i64),
    /// No attempt left: the delivery has failed.
    GiveUp,
}

impl RetryPolicy {
    /// The delay after `attempts_made` failed attempts, before jitter.
    pub fn base_delay(&self, attempts_made: u32) -> Duration {
        let exp = attempts_made.saturating_sub(1).min(64) as i32;
        let secs = self.initial_delay.as_secs_f64() * self.factor.max(1.0).powi(exp);
        Duration::from_secs_f64(secs.min(self.max_delay.as_secs_f64()))
    }

    /// Decides the next attempt after a failure.
    ///
    /// `unit` is a uniform random number in [0, 1) for the jitter;
    /// `retry_after` is the receiver's `Retry-After`, which sets a floor.
    pub fn after_failure(
        &self,
        attempts_made: u32,
        created_at_ms: i64,
        now_ms: i64,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> RetryDecision {
        if attempts_made >= self.max_attempts {
            return RetryDecision::GiveUp;
        }
        let base = self.base_delay(attempts_made).as_secs_f64();
        let spread = self.jitter.clamp(0.0, 1.0) * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let mut delay = (base * (1.0 + spread)).min(self.max_delay.as_secs_f64());
        if let Some(floor) = retry_after {
            delay = delay.max(floor.as_secs_f64());
        }
        let at = now_ms + (delay * 1000.0) as i64;
        if at - created_at_ms > self.max_age.as_millis() as i64 {
            return RetryDecision::GiveUp;
        }
        RetryDecision::RetryAt(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_delay: Duration::from_secs(1),
            factor: 2.0,
            max_delay: Duration::from_secs(10),
            max_attempts: 5,
            max_age: Duration::from_secs(3600),
            jitter: 0.0,
        }
    }

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let p = policy();
        let delays: Vec<u64> = (1..=6).map(|n| p.base_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = RetryPolicy {
            jitter: 0.2,
            ..policy()
        };
        for unit in [0.0, 0.25, 0.5, 0.999] {
            let RetryDecision::RetryAt(at) = p.after_failure(3, 0, 0, None, unit) else {
                panic!()
            };
            assert!((3200..=4800).contains(&at), "{at}");
        }
    }

    #[test]
    fn gives_up_after_max_attempts_and_max_age() {
        let p = policy();
        assert_eq!(
            p.after_failure(4, 0, 0, None, 0.5),
            RetryDecision::RetryAt(8000)
        );
        assert_eq!(p.after_failure(5, 0, 0, None, 0.5), RetryDecision::GiveUp);
        assert_eq!(
            p.after_failure(1, 0, 3_599_500, None, 0.5),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = policy();
        assert_eq!(
            p.after_failure(1, 0, 0, Some(Duration::from_secs(30)), 0.5),
            RetryDecision::RetryAt(30_000)
        );
        assert_eq!(
            p.after_failure(4, 0, 0, Some(Duration::from_millis(10)), 0.5),
            RetryDecision::RetryAt(8000)
        );
    }
}
