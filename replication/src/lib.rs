//! `shoal-replication`: every partition a Raft group, on openraft `=0.10.0-alpha.37` with
//! standard Raft leader ids (one leader per term, so the term is the Kafka leader epoch), plus
//! the controller group that replicates cluster metadata. No openraft type appears in the
//! public API.
//!
//! # Main types
//! - [`ReplicaManager`]: the groups of one node: opens a partition replica
//!   ([`PartitionSpec`]; exactly one replica of a new partition bootstraps its group), closes
//!   and lists them, opens the controller group ([`ControllerSpec`]), answers requests from
//!   other nodes, and owns the flush threads shared by every log of the node.
//! - [`PartitionReplica`]: what the broker's partition handle needs: [`PartitionReplica::append`]
//!   (returns at the local append with the assigned offsets, the acks=1 point, and a
//!   [`PendingCommit`] for acks=all), reads from the local log bounded by the high watermark,
//!   watches of the high watermark and of [`Leadership`] (role, leader, epoch), follower
//!   progress for the ISR and KIP-392, leadership transfer, replica changes, retention.
//! - [`Controller`]: the metadata group; commands are opaque bytes applied by the caller's
//!   [`ControllerStateMachine`] on every node that hosts the group. Any node may propose:
//!   [`Controller::propose_forwarded`] sends the command to the leader (a `ForwardCommand`
//!   RPC on the same connection as the Raft traffic), as KRaft brokers forward to the active
//!   controller.
//! - [`Transport`]: the network seam. [`TcpTransport`] (one multiplexed connection per node
//!   pair) between brokers; [`SimNetwork`] (drops, delays, partitions, seeded) in tests.
//! - [`ReplicationFaults`]: test faults ([`ReplicaManager::faults`]) that cut one partition's
//!   Raft traffic between this node and one other, leaving the connection and every other
//!   group working.
//! - [`LogObserver`]: sees every append, truncation and reset of a replica's log (state the
//!   broker derives from the log, such as producer state).
//!
//! # One log
//! The Raft log *is* the Kafka partition log (`shoal_storage::PartitionLog`); nothing is
//! written twice (`log_store.rs`). A Normal entry is the RecordBatches of one append, stored
//! as they came (the storage crate stamps `baseOffset`, a prefix sum, and
//! `partitionLeaderEpoch = term`, both outside the CRC). The entries Raft writes itself are
//! Kafka control batches every consumer skips (`control_batch.rs`): a blank entry is a
//! LeaderChange record (type 2, as KRaft writes), a membership change a private control type.
//! Offsets are a function of the log prefix, so every replica assigns the same ones and holds
//! the same bytes. The high watermark is the end of the committed entry, published from
//! openraft's `save_committed` on leaders and followers alike.
//!
//! # Data flow of an append
//! `PartitionReplica::append` checks the batches (CRC, reserved control types, size) so that
//! a bad batch can never fail a log append (openraft treats that as fatal), then submits them
//! to openraft. The leader's log store writes them into the segment (page cache) and notifies
//! the caller with the assigned offsets; the flush callback goes to the shared flusher
//! (`flusher.rs`), which fsyncs each log without its lock and completes callbacks strictly in
//! submission order, one fsync for every append that arrived meanwhile (group commit).
//! Replication reads entries back from the segments (`Bytes` over the mapping) and the TCP
//! transport writes them with vectored IO; followers slice them out of the received frame and
//! append them through the same code. Once a majority has them on disk, openraft commits:
//! `save_committed` raises the high watermark, and the pending commit resolves.
//!
//! # Durability and recovery
//! With `FlushPolicy::GroupCommit` (the default) an acknowledged append is fsynced on a
//! majority; `Never` and `IntervalMs` acknowledge from the page cache (Kafka's default, which
//! relies on replication). The vote is always fsynced (`group_files.rs`), after flushing the
//! log, since openraft counts a saved vote as flushing every earlier write. A periodic
//! checkpoint of the applied and committed positions keeps restarts from rescanning logs. A
//! restarted leader never resumes its old term: it may have lost unflushed entries that
//! followers hold, and reusing their (term, index) would break Raft's log matching.
//!
//! # Snapshots and retention
//! Partition snapshots are metadata only (last log id, membership, the next offset), taken
//! where retention releases whole segments ([`PartitionReplica::enforce_retention`]);
//! openraft then purges the log up to them. A replica that needs purged entries installs the
//! small snapshot and restarts its log at the snapshot's next offset, as a Kafka follower
//! restarts at the leader's log start. The controller snapshots the caller's state every
//! `controller_snapshot_entries` entries.

mod binary_codec;
mod config;
mod control_batch;
mod controller;
mod error;
mod faults;
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
pub use faults::ReplicationFaults;
pub use group::{Appended, Leadership, PendingCommit, Replicas, Role};
pub use log_store::LogObserver;
pub use manager::{ControllerSpec, PartitionSpec, ReplicaManager};
pub use partition::{FollowerProgress, PartitionReplica, ReadBound};
pub use sim_transport::{SimFaults, SimNetwork, SimRng, SimStats, SimTransport};
pub use tcp_transport::{TcpTransport, TcpTransportConfig, TransportStats};
pub use transport::{RpcHandler, RpcMessage, Transport, TransportError};
pub use types::{GroupId, NodeId, PartitionId};
