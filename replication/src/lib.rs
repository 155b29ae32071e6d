//! (overview written with the crate)

mod binary_codec;
mod config;
mod control_batch;
mod controller;
mod error;
mod flusher;
mod group_files;
mod log_store;
#[cfg(test)]
mod log_store_suite;
mod replica_progress;
mod state_machine;
mod types;

pub use config::ReplicationConfig;
pub use controller::{ControllerStateMachine, RestoreError};
pub use error::{ConfigError, ControlError, NotLeaderReason, ProposeError, ReplicationError};
pub use types::{GroupId, NodeId, PartitionId};
