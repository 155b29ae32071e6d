//! Partitions as handlers see them ([`PartitionHandle`]) and as the node hosts them.

pub mod handle;

pub use handle::{
    AppendOutcome, AppendRequest, Isolation, LogOffsets, PartitionError, PartitionFuture,
    PartitionHandle, ReadRequest, ReadResult, Role, TimestampOffset, TopicPartition,
    check_leader_epoch,
};
