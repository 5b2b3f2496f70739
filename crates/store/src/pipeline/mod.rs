//! The hot path: what every event and every attempt goes through, from the
//! stream read to the settled delivery and its history record.

pub mod ingest;
pub mod lanes;
pub mod log;
pub(crate) mod reader;
pub mod schedule;
pub mod ship;
pub mod stream;
