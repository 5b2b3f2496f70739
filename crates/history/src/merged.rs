//! The history API's answers when history is also in PostgreSQL: Redis
//! holds the hot window and what is not shipped yet, PostgreSQL what was
//! shipped (for `long_retention`). A page asks both and merges them in the
//! history order (newest first: creation time, then id), Redis's copy
//! winning where both have a delivery (it is the newer state); one
//! delivery is Redis's if it has it, else PostgreSQL's.

use hookd_core::Delivery;
use hookd_store::history::{Cursor, DeliveryFilter, Page};
use hookd_store::{Store, StoreError};

use crate::{Archive, HistoryError};

/// Where history is read from: Redis alone, or Redis and PostgreSQL.
#[derive(Clone)]
pub struct HistoryReader {
    pub store: Store,
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

    /// A page of deliveries, newest first, without their attempts.
    pub async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Page, StoreError> {
        let hot = self.store.deliveries(filter).await?;
        let Some(archive) = &self.archive else {
            return Ok(hot);
        };
        let (shipped, shipped_next) = archive.page(filter).await.map_err(unavailable)?;
        Ok(merge(hot, shipped, shipped_next, filter.limit))
    }
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
