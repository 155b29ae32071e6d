//! The partition seam: everything a request handler may do to one partition.
//!
//! Handlers never see a log, a lock or a Raft group. On a single node the implementation sits on
//! the storage crate ([`super::local::LocalPartition`]); a replicated implementation puts a Raft
//! group behind the same trait. The contract:
//! - `append` returns once the batches hold offsets in the log (appends on one partition are
//!   ordered in call order), not once they are committed; `wait_committed` waits for that. A
//!   client append is checked against the partition's producer state (the storage crate's
//!   `ProducerStateMap`) atomically with the append: a retry of a batch already in the log is
//!   answered with the original offsets and writes nothing.
//! - The high watermark is the commit point: reads never return data above it, and it only grows
//!   (except through truncation on a new leader, which a later implementation reports by epoch).
//! - `current_leader_epoch` arguments are the client's view (`-1` or `None`: no check).

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use shoal_storage::ProducerStateError;
use tokio::sync::watch;
use uuid::Uuid;

pub use crate::replica_selector::{ReplicaState, ReplicaStates};

/// A partition of a topic, by id and by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic id.
    pub topic_id: Uuid,
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// This replica's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts appends and answers leader-only requests.
    Leader,
    /// Serves reads up to its high watermark only.
    Follower,
}

/// Offsets that bound the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOffsets {
    /// First offset still in the log.
    pub log_start: i64,
    /// Offsets below this are committed and visible.
    pub high_watermark: i64,
    /// Offsets below this are visible to read_committed consumers (no transactions yet: the
    /// high watermark).
    pub last_stable: i64,
    /// The next offset to be assigned.
    pub log_end: i64,
}

/// Consumer isolation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Up to the high watermark.
    ReadUncommitted,
    /// Up to the last stable offset.
    ReadCommitted,
}

impl Isolation {
    /// From the wire value (0 or 1; anything else reads uncommitted, as Kafka does).
    pub fn from_wire(level: i8) -> Self {
        if level == 1 {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        }
    }
}

/// Who is appending (Kafka's `AppendOrigin`): it decides how much is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer: idempotent batches are checked against the partition's producer state
    /// (duplicates, epochs, sequences) under the same lock as the append.
    Client,
    /// The broker itself (the group coordinator writing `__consumer_offsets`): no producer
    /// state checks.
    Coordinator,
}

/// Batches ready for the log: validated, LogAppendTime stamped if the topic wants it.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// One or more RecordBatch v2, back to back.
    pub batches: Bytes,
    /// Time of the append (ms since the epoch).
    pub now_ms: i64,
    /// Who appends.
    pub origin: AppendOrigin,
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// `Some(timestamp)` when the batch was a producer's retry of a batch already in the log:
    /// nothing was written, the offsets are the original batch's, and Kafka reports that batch's
    /// timestamp as the log append time.
    pub duplicate_timestamp: Option<i64>,
}

/// A fetch from one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRequest {
    /// First offset wanted.
    pub offset: i64,
    /// Byte limit.
    pub max_bytes: usize,
    /// Return the first batch even if it alone exceeds `max_bytes` (KIP-74).
    pub min_one: bool,
    /// Visibility bound.
    pub isolation: Isolation,
    /// The client's leader epoch, if it sent one.
    pub current_leader_epoch: Option<i32>,
}

/// Data read, with the offsets as they stood at the read.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches (possibly empty).
    pub records: Bytes,
    /// Offsets at the time of the read.
    pub offsets: LogOffsets,
}

/// A record found by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// Its offset.
    pub offset: i64,
    /// Its timestamp.
    pub timestamp: i64,
    /// Leader epoch of its batch.
    pub leader_epoch: i32,
}

/// What a partition operation failed with. [`crate::kafka_error`] maps these to Kafka codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// The topic or partition does not exist.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// This replica may not serve the request (not the leader, or not hosted).
    #[error("not the leader or follower for this partition")]
    NotLeaderOrFollower,
    /// The client's leader epoch is older than ours.
    #[error("leader epoch {request} is older than the current epoch {current}")]
    FencedLeaderEpoch {
        /// Client's epoch.
        request: i32,
        /// Ours.
        current: i32,
    },
    /// The client's leader epoch is newer than ours.
    #[error("leader epoch {request} is newer than the current epoch {current}")]
    UnknownLeaderEpoch {
        /// Client's epoch.
        request: i32,
        /// Ours.
        current: i32,
    },
    /// The offset lies outside `[log_start, log_end]`.
    #[error("offset {offset} is outside the log range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: i64,
        /// First offset in the log.
        log_start: i64,
        /// Next offset to be assigned.
        log_end: i64,
    },
    /// A batch failed validation in the log (its header or CRC).
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
    /// An append is larger than the log accepts in one entry.
    #[error("record batches too large: {0}")]
    TooLarge(String),
    /// The partition is being deleted or the broker is shutting down.
    #[error("partition is closed")]
    Closed,
    /// The log failed on disk (IO error, full disk, failed fsync).
    #[error("storage error: {0}")]
    Storage(String),
    /// An idempotent batch's producer epoch is older than the producer's current one.
    #[error("{0}")]
    InvalidProducerEpoch(String),
    /// An idempotent batch does not follow its producer's last sequence.
    #[error("{0}")]
    OutOfOrderSequence(String),
}

/// Kafka's exception for a refused idempotent batch, with Kafka's message (which names the
/// partition).
pub fn producer_state_error(e: &ProducerStateError, tp: &TopicPartition) -> PartitionError {
    match *e {
        ProducerStateError::InvalidProducerEpoch {
            producer_id,
            offset,
            epoch,
            current_epoch,
        } => PartitionError::InvalidProducerEpoch(format!(
            "Epoch of producer {producer_id} at offset {offset} in {tp} is {epoch}, which is smaller than the last seen epoch {current_epoch}"
        )),
        ProducerStateError::NewEpochNotAtZero {
            producer_id,
            offset,
            epoch,
            sequence,
            current_epoch,
        } => PartitionError::OutOfOrderSequence(format!(
            // Kafka's message lacks the space after the producer id.
            "Invalid sequence number for new epoch of producer {producer_id}at offset {offset} in partition {tp}: {epoch} (request epoch), {sequence} (seq. number), {current_epoch} (current producer epoch)"
        )),
        ProducerStateError::OutOfOrderSequence {
            producer_id,
            offset,
            sequence,
            last_sequence,
        } => PartitionError::OutOfOrderSequence(format!(
            "Out of order sequence number for producer {producer_id} at offset {offset} in partition {tp}: {sequence} (incoming seq. number), {last_sequence} (current end sequence number)"
        )),
    }
}

/// Decision logic shared by implementations: Kafka's leader epoch check
/// (`Partition.checkCurrentLeaderEpoch`).
pub fn check_leader_epoch(requested: Option<i32>, current: i32) -> Result<(), PartitionError> {
    match requested {
        None | Some(-1) => Ok(()),
        Some(request) if request < current => {
            Err(PartitionError::FencedLeaderEpoch { request, current })
        }
        Some(request) if request > current => {
            Err(PartitionError::UnknownLeaderEpoch { request, current })
        }
        Some(_) => Ok(()),
    }
}

/// A boxed future returning a partition result.
pub type PartitionFuture<'a, T> = BoxFuture<'a, Result<T, PartitionError>>;

/// One partition replica, as handlers see it.
pub trait PartitionHandle: Send + Sync + std::fmt::Debug {
    /// Which partition this is.
    fn topic_partition(&self) -> &TopicPartition;

    /// Leader or follower.
    fn role(&self) -> Role;

    /// The current leader epoch.
    fn leader_epoch(&self) -> i32;

    /// The log bounds now.
    fn offsets(&self) -> LogOffsets;

    /// Watches the high watermark (parked fetches wake on it). The value only grows; the channel
    /// closes when the partition does.
    fn high_watermark(&self) -> watch::Receiver<i64>;

    /// Appends validated batches; ordered with every other append on this partition.
    fn append(&self, request: AppendRequest) -> PartitionFuture<'_, AppendOutcome>;

    /// Resolves once every offset below `next_offset` is committed (high watermark reached).
    fn wait_committed(&self, next_offset: i64) -> PartitionFuture<'static, ()>;

    /// Reads whole batches from `request.offset`, up to the isolation bound.
    fn read(&self, request: ReadRequest) -> PartitionFuture<'_, ReadResult>;

    /// The first record with a timestamp at or after `timestamp`, among visible records.
    fn offset_for_timestamp(
        &self,
        timestamp: i64,
        isolation: Isolation,
        current_leader_epoch: Option<i32>,
    ) -> PartitionFuture<'_, Option<TimestampOffset>>;

    /// The record with the largest timestamp (the earliest such record), among visible records.
    fn max_timestamp(
        &self,
        isolation: Isolation,
        current_leader_epoch: Option<i32>,
    ) -> PartitionFuture<'_, Option<TimestampOffset>>;

    /// The leader epoch of the batch holding `offset` (Kafka's `epochForOffset`).
    fn epoch_for_offset(&self, offset: i64) -> Option<i32>;

    /// Kafka's `endOffsetForEpoch`: the largest epoch ≤ `epoch` and the offset where the next
    /// epoch starts (or the log end), or `None` when `epoch` precedes every epoch in the log.
    fn end_offset_for_epoch(
        &self,
        epoch: i32,
        current_leader_epoch: Option<i32>,
    ) -> Result<Option<(i32, i64)>, PartitionError>;

    /// KIP-392 input: the replication state of every replica of this partition as this replica
    /// knows it, `Some` only while this replica leads (followers never select a read replica).
    /// `local_broker` is this broker's id, `now_ms` the broker clock. A replicated partition
    /// reports its followers' log end and log start offsets, ISR membership and last caught-up
    /// times; the default is a partition without followers (a single node): the leader alone.
    fn replica_states(&self, local_broker: i32, now_ms: i64) -> Option<ReplicaStates> {
        (self.role() == Role::Leader).then(|| {
            let offsets = self.offsets();
            ReplicaStates {
                leader: ReplicaState {
                    broker_id: local_broker,
                    log_end_offset: offsets.log_end,
                    log_start_offset: offsets.log_start,
                    in_sync: true,
                    last_caught_up_ms: Some(now_ms),
                },
                followers: Vec::new(),
            }
        })
    }
}

/// Finds hosted partitions (the [`super::PartitionManager`], or a test double).
pub trait PartitionLookup: Send + Sync + std::fmt::Debug {
    /// The partition, if this node hosts it.
    fn get(
        &self,
        topic_id: &Uuid,
        partition: i32,
    ) -> Result<Arc<dyn PartitionHandle>, PartitionError>;
}

impl<T: PartitionLookup + ?Sized> PartitionLookup for Arc<T> {
    fn get(
        &self,
        topic_id: &Uuid,
        partition: i32,
    ) -> Result<Arc<dyn PartitionHandle>, PartitionError> {
        (**self).get(topic_id, partition)
    }
}

/// Kafka's rule for requests only a leader answers (ListOffsets from consumers,
/// OffsetsForLeaderEpoch, Fetch up to v10 from consumers): the client's epoch is checked first
/// (`FENCED_LEADER_EPOCH` / `UNKNOWN_LEADER_EPOCH`), then a replica that does not lead refuses
/// with `NOT_LEADER_OR_FOLLOWER`.
pub fn check_leader_only(
    partition: &dyn PartitionHandle,
    current_leader_epoch: Option<i32>,
) -> Result<(), PartitionError> {
    check_leader_epoch(current_leader_epoch, partition.leader_epoch())?;
    match partition.role() {
        Role::Leader => Ok(()),
        Role::Follower => Err(PartitionError::NotLeaderOrFollower),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_epoch_checks() {
        assert_eq!(check_leader_epoch(None, 3), Ok(()));
        assert_eq!(check_leader_epoch(Some(-1), 3), Ok(()));
        assert_eq!(check_leader_epoch(Some(3), 3), Ok(()));
        assert_eq!(
            check_leader_epoch(Some(2), 3),
            Err(PartitionError::FencedLeaderEpoch {
                request: 2,
                current: 3
            })
        );
        assert_eq!(
            check_leader_epoch(Some(4), 3),
            Err(PartitionError::UnknownLeaderEpoch {
                request: 4,
                current: 3
            })
        );
    }
}
