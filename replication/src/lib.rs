//! (overview written with the crate)

mod binary_codec;
mod config;
mod control_batch;
mod controller;
mod error;
mod flusher;
mod group;
mod group_files;
mod log_store;
#[cfg(test)]
mod log_store_suite;
mod manager;
mod network;
mod partition;
mod replica_progress;
mod sim_transport;
mod state_machine;
mod tcp_transport;
mod transport;
mod types;
mod wire;

pub use config::ReplicationConfig;
pub use controller::{Controller, ControllerStateMachine, RestoreError};
pub use error::{ConfigError, ControlError, NotLeaderReason, ProposeError, ReplicationError};
pub use group::{Appended, Leadership, PendingCommit, Replicas, Role};
pub use manager::{ControllerSpec, PartitionSpec, ReplicaManager};
pub use partition::{FollowerProgress, PartitionReplica, ReadBound};
pub use sim_transport::{SimFaults, SimNetwork, SimRng, SimStats, SimTransport};
pub use tcp_transport::{TcpTransport, TcpTransportConfig, TransportStats};
pub use transport::{RpcHandler, RpcMessage, Transport, TransportError};
pub use types::{GroupId, NodeId, PartitionId};
