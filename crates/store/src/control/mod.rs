//! The control plane: what operators, the admin API and the CLI read and
//! change. Nothing here runs per event.

pub mod api_keys;
pub mod audit;
pub mod endpoints;
pub mod event_types;
pub mod history;
pub mod recovery;
pub mod repartition;
pub mod stats;
