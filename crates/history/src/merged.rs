//! The history API's answers when history is also in PostgreSQL: Redis
//! holds the hot window and what is not shipped yet, PostgreSQL what was
//! shipped (for `long_retention`). A page asks both and merges them in the
//! history order (newest first: creation time, then id), Redis's copy
//! winning where both have a delivery (it is the newer state); one
//! delivery is Redis's if it has it, else PostgreSQL's.
//!
//! Redelivery and recovery jobs reach shipped deliveries too: one that
//! Redis has forgotten gets durable state again from its shipped copy and
//! payload (`Store::restore`) before it is queued.

use hookd_core::Delivery;
use hookd_store::history::{Cursor, DeliveryFilter, Page};
use hookd_store::recovery::{Job, LogScan, RecoveryRequest};
use hookd_store::{Store, StoreError};

use crate::{Archive, HistoryError};

/// Where history is read from: Redis alone, or Redis and PostgreSQL.
#[derive(Clone)]
pub struct HistoryReader {
    /// The hot window, in Redis.
    pub store: Store,
    /// The long history in PostgreSQL, when `[history] postgres_url` is set.
    pub archive: Option<Archive>,
}

impl HistoryReader {
    /// One delivery with every attempt.
    pub async fn delivery(&self, id: &str) -> Result<Delivery, StoreError> {
        match self.store.delivery(id).await {
            Err(StoreError::NotFound(what)) => match &self.archive {
                Some(archive) => archive
                    .delivery(id)
                    .await
                    .map_err(unavailable)?
                    .ok_or(StoreError::NotFound(what)),
                None => Err(StoreError::NotFound(what)),
            },
            other => other,
        }
    }

    /// The body delivery `d` sends: from Redis while it holds it, else the
    /// payload shipped to PostgreSQL.
    pub async fn envelope(&self, d: &Delivery) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(envelope) = self.store.delivery_envelope(d).await? {
            return Ok(Some(envelope));
        }
        match &self.archive {
            Some(archive) => shipped_envelope(archive, d).await,
            None => Ok(None),
        }
    }

    /// A page of deliveries, newest first, each with its last attempt only.
    pub async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Page, StoreError> {
        let hot = self.store.deliveries(filter).await?;
        let Some(archive) = &self.archive else {
            return Ok(hot);
        };
        let (mut shipped, shipped_next) = archive.page(filter).await.map_err(unavailable)?;
        self.overlay_state(&mut shipped, filter).await?;
        Ok(merge(hot, shipped, shipped_next, filter.limit))
    }

    /// Shipped deliveries that Redis holds durable state for again (given
    /// back for a redelivery or a recovery) take its status, which is newer;
    /// those no longer matching the filter's status leave the page.
    async fn overlay_state(
        &self,
        shipped: &mut Vec<Delivery>,
        filter: &DeliveryFilter,
    ) -> Result<(), StoreError> {
        let mut workspaces: Vec<&str> = shipped.iter().map(|d| d.workspace.as_str()).collect();
        workspaces.sort_unstable();
        workspaces.dedup();
        let mut now = std::collections::HashMap::new();
        for ws in workspaces {
            let ids: Vec<String> = shipped
                .iter()
                .filter(|d| d.workspace == ws)
                .map(|d| d.id.clone())
                .collect();
            for (id, status) in ids.iter().zip(self.store.statuses(ws, &ids).await?) {
                if let Some(status) = status {
                    now.insert(id.clone(), status);
                }
            }
        }
        for d in shipped.iter_mut() {
            if let Some(status) = now.get(&d.id) {
                d.status = *status;
            }
        }
        shipped.retain(|d| filter.status.is_none_or(|s| s == d.status));
        Ok(())
    }

    /// Queues a delivery for a manual attempt now (see `Store::redeliver`).
    /// One that Redis has forgotten is first given durable state again from
    /// its shipped copy and payload.
    pub async fn redeliver(
        &self,
        workspace: &str,
        id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        if let Some(archive) = &self.archive
            && !self.store.holds_delivery(workspace, id).await?
            && let Some(d) = archive.delivery(id).await.map_err(unavailable)?
            && d.workspace == workspace
            && let Some(envelope) = shipped_envelope(archive, &d).await?
        {
            self.store.restore(&d, &envelope).await?;
        }
        self.store.redeliver(workspace, id, now_ms).await
    }

    /// Runs a recovery job's scan: the history in Redis, then (with
    /// PostgreSQL) the shipped history older than anything Redis still
    /// holds in the window, whose deliveries are given durable state again
    /// from their shipped copies before they are queued. Marks the scan
    /// finished.
    pub async fn run_recovery(
        &self,
        job: &Job,
        req: &RecoveryRequest,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let scan = self.store.run_recovery(&job.id, req, now_ms).await?;
        if let Some(archive) = &self.archive {
            self.recover_shipped(archive, job, req, scan, now_ms)
                .await?;
        }
        self.store.finish_scan(job).await
    }

    async fn recover_shipped(
        &self,
        archive: &Archive,
        job: &Job,
        req: &RecoveryRequest,
        scan: LogScan,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const PAGE: usize = 500;
        let ep = &req.endpoint;
        let until = match (scan.oldest_ms, req.until_ms) {
            (Some(oldest), Some(until)) => Some(until.min(oldest - 1)),
            (Some(oldest), None) => Some(oldest - 1),
            (None, until) => until,
        };
        let mut filter = DeliveryFilter {
            workspace: Some(ep.workspace.clone()),
            endpoint: Some(ep.id.clone()),
            status: Some(req.status),
            since_ms: Some(req.since_ms),
            until_ms: until,
            limit: PAGE,
            ..Default::default()
        };
        let mut matched = scan.matched;
        loop {
            let (mut page, next) = archive.page(&filter).await.map_err(unavailable)?;
            if let Some(only) = &req.only {
                page.retain(|d| only.contains(&d.id));
            }
            let ids: Vec<String> = page.iter().map(|d| d.id.clone()).collect();
            let held = self.store.statuses(&ep.workspace, &ids).await?;
            // Redis's state, where it has some, is newer than the shipped copy.
            let (forgotten, held): (Vec<_>, Vec<_>) =
                page.iter().zip(held).partition(|(_, s)| s.is_none());
            let mut due: Vec<String> = held
                .into_iter()
                .filter(|(_, s)| *s == Some(req.status))
                .map(|(d, _)| d.id.clone())
                .collect();
            let keys: Vec<(i64, &str)> = forgotten
                .iter()
                .map(|(d, _)| (d.created_at_ms, d.event_id.as_str()))
                .collect();
            let envelopes = archive
                .envelopes(&ep.workspace, &keys)
                .await
                .map_err(unavailable)?;
            let pairs: Vec<(i64, &str)> = forgotten
                .iter()
                .map(|(d, _)| (d.created_at_ms, d.id.as_str()))
                .collect();
            let mut attempts = archive.attempts(&pairs).await.map_err(unavailable)?;
            for (d, _) in forgotten {
                let Some(envelope) = envelopes.get(&(d.created_at_ms, d.event_id.clone())) else {
                    continue;
                };
                let mut full = d.clone();
                full.attempts = attempts.remove(&d.id).unwrap_or_default();
                self.store.restore(&full, envelope).await?;
                due.push(d.id.clone());
            }
            matched += self
                .store
                .queue_for_job(&job.id, req, &due, matched, now_ms)
                .await?;
            match next {
                Some(cursor) => filter.before = Some(cursor),
                None => return Ok(()),
            }
        }
    }
}

/// The payload of delivery `d`'s event as shipped to PostgreSQL.
async fn shipped_envelope(archive: &Archive, d: &Delivery) -> Result<Option<Vec<u8>>, StoreError> {
    let mut found = archive
        .envelopes(&d.workspace, &[(d.created_at_ms, d.event_id.as_str())])
        .await
        .map_err(unavailable)?;
    Ok(found.remove(&(d.created_at_ms, d.event_id.clone())))
}

/// Both pages in one: each source's `next` marks how far it is complete, so
/// nothing past the shallower of the two is kept (the next page starts there).
fn merge(hot: Page, shipped: Vec<Delivery>, shipped_next: Option<Cursor>, limit: usize) -> Page {
    let position = |d: &Delivery| Cursor {
        created_ms: d.created_at_ms,
        id: d.id.clone(),
    };
    let mut all = hot.deliveries;
    let seen: std::collections::HashSet<String> = all.iter().map(|d| d.id.clone()).collect();
    all.extend(shipped.into_iter().filter(|d| !seen.contains(&d.id)));
    all.sort_by_key(|d| std::cmp::Reverse(position(d)));
    let frontier = match (hot.next, shipped_next) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    if let Some(f) = &frontier {
        all.retain(|d| position(d) >= *f);
    }
    let next = if all.len() > limit {
        all.truncate(limit);
        all.last().map(position)
    } else {
        frontier
    };
    Page {
        deliveries: all,
        next,
    }
}

/// PostgreSQL failing a read: the caller sees the store as unavailable.
fn unavailable(e: HistoryError) -> StoreError {
    StoreError::Reply(format!("history database: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookd_core::DeliveryStatus;

    fn d(ms: i64, id: &str, status: DeliveryStatus) -> Delivery {
        Delivery {
            id: id.into(),
            endpoint_id: "ep".into(),
            workspace: "ws".into(),
            event_id: id.into(),
            event_type: "t".into(),
            status,
            attempts_made: 1,
            created_at_ms: ms,
            next_attempt_at_ms: None,
            attempts: Vec::new(),
            ordering_key: None,
            sequence: None,
            waiting_for: None,
        }
    }

    #[test]
    fn redis_wins_and_the_shallower_source_bounds_the_page() {
        use DeliveryStatus::*;
        let hot = Page {
            deliveries: vec![d(9, "c", Retrying), d(5, "b", Succeeded)],
            next: None,
        };
        let shipped = vec![d(5, "b", Failed), d(3, "a", Failed), d(2, "z", Failed)];
        // PostgreSQL has more past (2, z): nothing beyond it is kept.
        let page = merge(
            hot,
            shipped,
            Some(Cursor {
                created_ms: 2,
                id: "z".into(),
            }),
            10,
        );
        let ids: Vec<(&str, DeliveryStatus)> = page
            .deliveries
            .iter()
            .map(|d| (d.id.as_str(), d.status))
            .collect();
        assert_eq!(
            ids,
            [
                ("c", Retrying),
                ("b", Succeeded),
                ("a", Failed),
                ("z", Failed)
            ]
        );
        assert_eq!(
            page.next,
            Some(Cursor {
                created_ms: 2,
                id: "z".into()
            })
        );
        // The limit cuts, and the next page starts after the last shown.
        let hot = Page {
            deliveries: vec![d(9, "c", Retrying)],
            next: None,
        };
        let page = merge(hot, vec![d(3, "a", Failed), d(2, "z", Failed)], None, 2);
        assert_eq!(page.deliveries.len(), 2);
        assert_eq!(
            page.next,
            Some(Cursor {
                created_ms: 3,
                id: "a".into()
            })
        );
    }
}
