//! hookd-history: delivery history kept in PostgreSQL for long retention,
//! while Redis keeps the hot window (`[history] retention`).
//!
//! - [`migrate`]: the schema, created and migrated by hookd itself from the
//!   SQL files in `migrations/`;
//! - [`archive`]: the tables (one partition per UTC day, dropped whole at
//!   `long_retention`), storing shipped records idempotently, and queries;
//! - [`shipper`]: the loop that moves records from Redis's shipping backlog
//!   (`hookd_store::ship`) into PostgreSQL, at least once, stored once;
//! - [`merged`]: the history API's answers from both stores, so an operator
//!   never sees a gap between what is shipped and what is not yet.

#![warn(missing_docs)]

pub mod archive;
pub mod merged;
pub mod migrate;
pub mod shipper;

pub use archive::{Archive, ArchiveSettings};

/// What went wrong with PostgreSQL (or the Redis side of shipping).
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// PostgreSQL refused or did not answer.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// Redis refused or did not answer.
    #[error("{0}")]
    Store(#[from] hookd_store::StoreError),
    /// A row that does not read back as what was written.
    #[error("stored history is corrupt: {0}")]
    Corrupt(String),
    /// A schema migration failed.
    #[error("{0}")]
    Migration(String),
}

/// What the history's functions return.
pub type Result<T> = std::result::Result<T, HistoryError>;
