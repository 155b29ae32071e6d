//! Partitions as handlers see them ([`PartitionHandle`]) and as this node hosts them
//! ([`LocalPartition`] on the storage crate, managed by [`PartitionManager`]).

pub mod handle;
pub mod local;
pub mod manager;

pub use handle::{
    AppendOrigin, AppendOutcome, AppendRequest, Isolation, LogOffsets, PartitionError,
    PartitionFuture, PartitionHandle, ReadRequest, ReadResult, Role, TimestampOffset,
    TopicPartition, check_leader_epoch, producer_state_error,
};
pub use local::LocalPartition;
pub use manager::PartitionManager;
