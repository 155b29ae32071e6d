//! The crate's error types. None of them carries an openraft type.

use shoal_storage::BatchError;

use crate::types::{GroupId, NodeId};

/// A configuration value is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid replication configuration: {0}")]
pub struct ConfigError(pub String);

/// Opening, removing or running groups failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("storage: {0}")]
    Storage(#[from] shoal_storage::Error),
    #[error("I/O error on {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("group {0} is already open on this node")]
    GroupExists(GroupId),
    #[error("group {0} is not open on this node")]
    GroupNotFound(GroupId),
    #[error("invalid replica set: {0}")]
    InvalidReplicas(String),
    #[error("the replica manager is shutting down")]
    ShuttingDown,
    /// openraft refused to start or stopped with a fatal error (a storage failure).
    #[error("raft group {group} failed: {message}")]
    Raft { group: GroupId, message: String },
}

/// Why a replica that is not (or no longer) an accepting leader refused a request. All of them
/// are retriable: Kafka's `NOT_LEADER_OR_FOLLOWER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotLeaderReason {
    /// Another node leads (or no leader is known yet).
    NotLeader,
    /// This leader is handing leadership to another node.
    LeadershipTransfer,
    /// A new or isolated leader has not yet heard from a quorum within its lease.
    LeaseExpired,
    /// The proposal was appended but then lost to a leader change before it committed.
    LeaderChanged,
}

/// A proposal (append) was not accepted or did not commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("not the leader ({reason:?}); leader hint: {leader:?}")]
    NotLeader {
        leader: Option<NodeId>,
        reason: NotLeaderReason,
    },
    #[error("invalid record batch at byte {position}: {source}")]
    InvalidRecords {
        position: usize,
        #[source]
        source: BatchError,
    },
    #[error("entry of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: u64 },
    #[error("entry carries no record batch")]
    Empty,
    /// Control batches of the types Raft itself writes (leader change, membership) cannot be
    /// proposed; transaction markers can.
    #[error("control batch of reserved type {0} cannot be proposed")]
    ReservedControlType(i16),
    #[error("the group is closed")]
    Closed,
    /// The group's storage failed (a failed fsync, a full disk); it accepts nothing more.
    #[error("replication failed: {0}")]
    Fatal(String),
}

impl ProposeError {
    /// Whether a client should retry (after refreshing metadata).
    pub fn is_retriable(&self) -> bool {
        matches!(self, ProposeError::NotLeader { .. })
    }
}

/// A leadership transfer or membership change failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("not the leader ({reason:?}); leader hint: {leader:?}")]
    NotLeader {
        leader: Option<NodeId>,
        reason: NotLeaderReason,
    },
    #[error("rejected: {0}")]
    Rejected(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("the group is closed")]
    Closed,
    #[error("replication failed: {0}")]
    Fatal(String),
}
