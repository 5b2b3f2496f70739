//! An endpoint's activity over the last hour or day, for its charts:
//! attempts per interval by outcome, and their latency (p50, p99), read from
//! the delivery history in Redis.

use hookd_core::{Attempt, ErrorKind, time};
use hookd_store::Store;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ActionResult;

/// Most deliveries read for one view: past it, the view covers the newest
/// of them and says `partial`.
pub const MAX_DELIVERIES: usize = 100_000;

/// The windows shown: the last hour by minute, the last day by 15 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// 60 one-minute intervals.
    Hour,
    /// 96 fifteen-minute intervals.
    Day,
}

impl Window {
    /// `1h` or `1d`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1h" => Some(Window::Hour),
            "1d" | "24h" => Some(Window::Day),
            _ => None,
        }
    }

    fn interval_ms(self) -> i64 {
        match self {
            Window::Hour => 60_000,
            Window::Day => 15 * 60_000,
        }
    }

    fn intervals(self) -> usize {
        match self {
            Window::Hour => 60,
            Window::Day => 96,
        }
    }
}

/// Attempts made in one interval.
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct Interval {
    /// When it starts (its end is the next one's start).
    pub start: String,
    /// Answered 2xx.
    pub succeeded: u64,
    /// Answered with another status.
    pub failed_status: u64,
    /// No answer (timeout, connection, DNS, TLS, refused by the network policy).
    pub failed_other: u64,
    /// Median duration of its attempts.
    pub p50_ms: Option<u64>,
    /// 99th percentile duration.
    pub p99_ms: Option<u64>,
}

/// An endpoint's activity over a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct Activity {
    /// `1h` or `1d`.
    pub window: String,
    /// Length of each interval.
    pub interval_seconds: u64,
    /// Oldest first; attempts are counted where they started.
    pub intervals: Vec<Interval>,
    /// The whole window.
    pub total: Interval,
    /// More deliveries than are read at once were created in the window:
    /// the figures cover the newest of them.
    pub partial: bool,
}

/// The `q` quantile of sorted `v`, nearest rank.
fn quantile(v: &[u64], q: f64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

fn count(into: &mut Interval, a: &Attempt) {
    if a.succeeded {
        into.succeeded += 1;
    } else if a.error_kind == Some(ErrorKind::Status) || a.status_code.is_some() {
        into.failed_status += 1;
    } else {
        into.failed_other += 1;
    }
}

fn latencies(into: &mut Interval, mut durations: Vec<u64>) {
    durations.sort_unstable();
    into.p50_ms = quantile(&durations, 0.5);
    into.p99_ms = quantile(&durations, 0.99);
}

/// Sorts `attempts` into `window`'s intervals ending at `now_ms`.
pub fn tally(attempts: &[Attempt], window: Window, now_ms: i64) -> (Vec<Interval>, Interval) {
    let step = window.interval_ms();
    let n = window.intervals();
    // Intervals end on a whole step: the last one holds now.
    let end = (now_ms / step + 1) * step;
    let start = end - step * n as i64;
    let mut intervals: Vec<Interval> = (0..n)
        .map(|i| Interval {
            start: time::format_rfc3339_ms(start + step * i as i64),
            ..Interval::default()
        })
        .collect();
    let mut durations: Vec<Vec<u64>> = vec![Vec::new(); n];
    let mut total = Interval {
        start: time::format_rfc3339_ms(start),
        ..Interval::default()
    };
    let mut all = Vec::new();
    for a in attempts {
        if a.started_at_ms < start || a.started_at_ms >= end {
            continue;
        }
        let i = ((a.started_at_ms - start) / step) as usize;
        count(&mut intervals[i], a);
        count(&mut total, a);
        durations[i].push(a.duration_ms);
        all.push(a.duration_ms);
    }
    for (interval, d) in intervals.iter_mut().zip(durations) {
        latencies(interval, d);
    }
    latencies(&mut total, all);
    (intervals, total)
}

/// Endpoint `endpoint_id`'s activity over `window`, up to now.
pub async fn of_endpoint(
    store: &Store,
    endpoint_id: &str,
    window: Window,
) -> ActionResult<Activity> {
    let now = time::now_ms();
    let step = window.interval_ms();
    let since = (now / step + 1) * step - step * window.intervals() as i64;
    // Attempts start after their delivery is created: a delivery created
    // before the window whose retries fall in it is counted when it is one
    // of those read (a retry's backoff is far shorter than a day).
    let (attempts, partial) = store
        .attempts_of(endpoint_id, since - step, now, MAX_DELIVERIES)
        .await?;
    let (intervals, total) = tally(&attempts, window, now);
    Ok(Activity {
        window: match window {
            Window::Hour => "1h",
            Window::Day => "1d",
        }
        .to_string(),
        interval_seconds: (step / 1000) as u64,
        intervals,
        total,
        partial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookd_core::AttemptTrigger;

    fn attempt(at: i64, ms: u64, status: Option<u16>, kind: Option<ErrorKind>) -> Attempt {
        Attempt {
            number: 1,
            started_at_ms: at,
            duration_ms: ms,
            succeeded: status.is_some_and(|s| (200..300).contains(&s)),
            status_code: status,
            error_kind: kind,
            error: None,
            response_excerpt: None,
            response_headers: Vec::new(),
            trigger: AttemptTrigger::Scheduled,
        }
    }

    #[test]
    fn attempts_fall_in_their_minute_by_outcome() {
        let now = 1_700_000_010_000; // 30 s into a minute
        let this_minute = now - 30_000;
        let attempts = [
            attempt(this_minute + 1, 10, Some(204), None),
            attempt(this_minute + 2, 30, Some(500), Some(ErrorKind::Status)),
            attempt(this_minute - 1, 2000, None, Some(ErrorKind::Timeout)),
            attempt(now - 3_600_000 - 60_000, 1, Some(204), None), // before the window
        ];
        let (intervals, total) = tally(&attempts, Window::Hour, now);
        assert_eq!(intervals.len(), 60);
        let last = &intervals[59];
        assert_eq!(
            (last.succeeded, last.failed_status, last.failed_other),
            (1, 1, 0)
        );
        assert_eq!((last.p50_ms, last.p99_ms), (Some(10), Some(30)));
        let before = &intervals[58];
        assert_eq!((before.failed_other, before.p99_ms), (1, Some(2000)));
        assert_eq!(
            total.succeeded + total.failed_status + total.failed_other,
            3
        );
        assert_eq!(total.p50_ms, Some(30));
        assert!(intervals[0].p50_ms.is_none());
    }

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&[7], 0.99), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
