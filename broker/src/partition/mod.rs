//! Partitions as handlers see them ([`PartitionHandle`]) and as this node hosts them
//! ([`LocalPartition`] on the storage crate, managed by [`PartitionManager`]).

pub mod handle;
pub mod local;
pub mod manager;
#[cfg(test)]
pub mod scripted;

pub use handle::{
    AppendOrigin, AppendOutcome, AppendRequest, Isolation, LogOffsets, PartitionError,
    PartitionFuture, PartitionHandle, PartitionLookup, ReadRequest, ReadResult, ReplicaState,
    ReplicaStates, Role, TimestampOffset, TopicPartition, check_leader_epoch, check_leader_only,
    producer_state_error,
};
pub use local::LocalPartition;
pub use manager::PartitionManager;
