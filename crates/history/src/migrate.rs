//! Schema migrations: the files in `migrations/`, applied in order, each in
//! its own transaction, and recorded in `hookd_schema_migrations`. Daemons
//! starting together take an advisory lock, so one applies and the others
//! find it done.

use tokio_postgres::Client;

use crate::{HistoryError, Result};

/// Every migration: (version, name, SQL), in order. A released one is never
/// edited; a change is a new file.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "history", include_str!("../migrations/0001_history.sql")),
    (
        2,
        "history_indexes",
        include_str!("../migrations/0002_history_indexes.sql"),
    ),
    (
        3,
        "stored_at",
        include_str!("../migrations/0003_stored_at.sql"),
    ),
    (
        4,
        "envelopes",
        include_str!("../migrations/0004_envelopes.sql"),
    ),
];

/// Any number that is hookd's alone, for `pg_advisory_xact_lock`.
const LOCK: i64 = 0x686f_6f6b_6421;

/// Applies the migrations after version `up_to` (all of them: `None`) that
/// are not applied yet. Returns the versions applied now.
pub async fn migrate(client: &mut Client, up_to: Option<i32>) -> Result<Vec<i32>> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS hookd_schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if up_to.is_some_and(|v| *version > v) {
            break;
        }
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
            .await?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM hookd_schema_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if !done {
            tx.batch_execute(sql).await.map_err(|e| {
                HistoryError::Migration(format!("migration {version} ({name}): {e}"))
            })?;
            tx.execute(
                "INSERT INTO hookd_schema_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await?;
            applied.push(*version);
        }
        tx.commit().await?;
    }
    Ok(applied)
}

/// The newest version applied (0: none).
pub async fn current_version(client: &Client) -> Result<i32> {
    let row = client
        .query_opt("SELECT max(version) FROM hookd_schema_migrations", &[])
        .await;
    match row {
        Ok(Some(row)) => Ok(row.get::<_, Option<i32>>(0).unwrap_or(0)),
        Ok(None) => Ok(0),
        // No table yet.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// The version this build needs.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}
