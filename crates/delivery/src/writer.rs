//! Writing to Redis in batches, with one failure policy for every batched
//! writer (the settler's first attempts, the recorder's later ones):
//!
//! - an error where Redis was not reached, not ready, busy or moving
//!   ([`StoreError::is_transient`]) is retried without end, with backoff:
//!   what was sent must be recorded, and Redis comes back;
//! - a refusal (Redis answered, and the same call fails the same way: a key
//!   of the wrong type, a corrupt record) is tried [`REFUSALS`] times, then
//!   the batch is split in halves, and each half written the same way, so
//!   one bad item costs only itself: alone, it is set aside
//!   ([`Sink::quarantine`]) and the rest goes on;
//! - between tries, [`Sink::waiting`] runs (the settler keeps its in-flight
//!   entries claimed), so a long wait does not hand them to another daemon.
//!
//! The scripts behind the writes check key types before they write
//! anything, so a refused call left nothing half written and may be retried
//! or split safely.

use std::future::Future;

use hookd_store::StoreError;

use crate::backoff::Backoff;

/// How many times a refused write is tried before its batch is split.
pub(crate) const REFUSALS: u32 = 3;

/// Where a batched writer's items go.
pub(crate) trait Sink: Send {
    type Item: Send;

    /// Writes `items` in one call. May take what it needs out of them on
    /// success (a reply to send).
    fn write(
        &mut self,
        items: &mut [Self::Item],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// An item whose write Redis keeps refusing, alone: set it aside.
    fn quarantine(
        &mut self,
        item: Self::Item,
        error: &StoreError,
    ) -> impl Future<Output = ()> + Send;

    /// Runs between tries while a write waits.
    fn waiting(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Writes every item, under the policy above. Returns once each item is
/// written or set aside.
pub(crate) async fn write_all<S: Sink>(sink: &mut S, items: Vec<S::Item>, what: &str) {
    // Halves still to write, the next on top (so the order is kept).
    let mut parts = vec![items];
    while let Some(mut part) = parts.pop() {
        if part.is_empty() {
            continue;
        }
        let Err(e) = write_one(sink, &mut part, what).await else {
            continue;
        };
        if part.len() == 1 {
            if let Some(item) = part.pop() {
                tracing::error!(error = %e, "{what}: Redis keeps refusing one item; it is set aside");
                sink.quarantine(item, &e).await;
            }
            continue;
        }
        tracing::warn!(error = %e, items = part.len(), "{what}: Redis keeps refusing the batch; writing it in halves to find the bad item");
        let second = part.split_off(part.len() / 2);
        parts.push(second);
        parts.push(part);
    }
}

/// One batch: transient errors retried until they pass, refusals
/// [`REFUSALS`] times. Returns the last refusal.
async fn write_one<S: Sink>(
    sink: &mut S,
    items: &mut [S::Item],
    what: &str,
) -> Result<(), StoreError> {
    let mut backoff = Backoff::new();
    let mut refused = 0;
    loop {
        let e = match sink.write(items).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if !e.is_transient() {
            refused += 1;
            if refused >= REFUSALS {
                return Err(e);
            }
        }
        let wait = backoff.next_delay();
        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "{what} failed; trying again");
        tokio::time::sleep(wait).await;
        sink.waiting().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refuses any batch holding a "bad" item; fails transiently `flaky` times first.
    struct Picky {
        flaky: u32,
        written: Vec<&'static str>,
        quarantined: Vec<&'static str>,
        calls: u32,
        waits: u32,
    }

    impl Sink for Picky {
        type Item = &'static str;

        async fn write(&mut self, items: &mut [&'static str]) -> Result<(), StoreError> {
            self.calls += 1;
            if self.flaky > 0 {
                self.flaky -= 1;
                return Err(StoreError::Redis(redis::RedisError::from(
                    std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                )));
            }
            if items.contains(&"bad") {
                return Err(StoreError::Corrupt("bad item".into()));
            }
            self.written.extend(items.iter());
            Ok(())
        }

        async fn quarantine(&mut self, item: &'static str, _: &StoreError) {
            self.quarantined.push(item);
        }

        async fn waiting(&mut self) {
            self.waits += 1;
        }
    }

    fn picky(flaky: u32) -> Picky {
        Picky {
            flaky,
            written: vec![],
            quarantined: vec![],
            calls: 0,
            waits: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_refused_item_is_set_aside_and_the_rest_written_in_order() {
        let mut sink = picky(0);
        let items = vec!["a", "b", "c", "bad", "d", "e", "f"];
        write_all(&mut sink, items, "test").await;
        assert_eq!(sink.written, ["a", "b", "c", "d", "e", "f"]);
        assert_eq!(sink.quarantined, ["bad"]);
        // Each refused part was tried REFUSALS times before it was split.
        assert!(sink.calls > REFUSALS);
        assert!(sink.waits > 0, "waiting runs between tries");
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_they_pass_never_set_aside() {
        let mut sink = picky(20);
        write_all(&mut sink, vec!["a", "b"], "test").await;
        assert_eq!(sink.written, ["a", "b"]);
        assert!(sink.quarantined.is_empty());
        assert_eq!(sink.calls, 21);
        assert_eq!(sink.waits, 20);
    }
}
