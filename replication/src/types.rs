//! The openraft type configuration and the public identifiers of replication groups.
//!
//! Every openraft type stays inside this crate: the aliases below are `pub(crate)`, and the
//! public API speaks in node ids, group ids, offsets and `Bytes`.

use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use shoal_storage::AppendInfo;
use tokio::sync::oneshot;
use uuid::Uuid;

/// A broker (Raft node) id. Kafka node ids are non-negative `i32`s; they travel as `u64`.
pub type NodeId = u64;

/// One partition of a topic, by topic id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId {
    pub topic_id: Uuid,
    pub partition: i32,
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic_id, self.partition)
    }
}

/// A Raft group hosted by the replica manager: the cluster-metadata (controller) group, or one
/// partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupId {
    Controller,
    Partition(PartitionId),
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupId::Controller => write!(f, "controller"),
            GroupId::Partition(p) => write!(f, "{p}"),
        }
    }
}

/// Sender of the leader-local "appended" notification of one proposal. Shared so that clones
/// of the entry (openraft may clone payloads) still notify exactly once.
#[derive(Clone, Default)]
pub(crate) struct AppendNotifier(Arc<Mutex<Option<oneshot::Sender<AppendInfo>>>>);

impl AppendNotifier {
    pub(crate) fn new() -> (Self, oneshot::Receiver<AppendInfo>) {
        let (tx, rx) = oneshot::channel();
        (AppendNotifier(Arc::new(Mutex::new(Some(tx)))), rx)
    }

    pub(crate) fn notify(&self, info: &AppendInfo) {
        let sender = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(tx) = sender {
            // The proposer may have given up waiting; nothing to do then.
            let _ = tx.send(info.clone());
        }
    }
}

/// Payload of a Normal Raft entry: the RecordBatches of one produce request (or one controller
/// command wrapped in a batch), exactly as they go into the log.
#[derive(Clone)]
pub(crate) struct Records {
    pub(crate) batches: Bytes,
    /// Set only on the leader that proposed the entry; never replicated.
    pub(crate) on_append: Option<AppendNotifier>,
}

impl Records {
    pub(crate) fn new(batches: Bytes) -> Self {
        Records {
            batches,
            on_append: None,
        }
    }
}

impl PartialEq for Records {
    fn eq(&self, other: &Self) -> bool {
        self.batches == other.batches
    }
}

impl Eq for Records {}

impl fmt::Debug for Records {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Records({} bytes)", self.batches.len())
    }
}

impl fmt::Display for Records {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What applying one entry produced: the offsets `append` assigned to it (a Blank or Membership
/// entry is one control record), plus the controller state machine's reply to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApplyOutcome {
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) reply: Option<Bytes>,
}

openraft::declare_raft_types!(
    /// Shoal's Raft types: standard Raft leader ids (one leader per term, so term = Kafka
    /// leader epoch), u64 node ids without node data (addresses live in the transport).
    pub(crate) ShoalRaft:
        D = Records,
        R = ApplyOutcome,
        NodeId = NodeId,
        Node = openraft::EmptyNode,
        Term = u64,
        LeaderId = openraft::impls::leader_id_std::LeaderId<Self::Term, Self::NodeId>,
        AsyncRuntime = openraft_rt_tokio::TokioRuntime,
);

pub(crate) type C = ShoalRaft;
pub(crate) type RaftLogId = openraft::alias::LogIdOf<C>;
pub(crate) type Vote = openraft::alias::VoteOf<C>;
pub(crate) type Entry = openraft::alias::EntryOf<C>;
pub(crate) type Membership = openraft::Membership<NodeId, openraft::EmptyNode>;
pub(crate) type StoredMembership = openraft::alias::StoredMembershipOf<C>;
pub(crate) type SnapshotMeta = openraft::alias::SnapshotMetaOf<C>;
pub(crate) type Snapshot = openraft::alias::SnapshotOf<C, SnapshotData>;
pub(crate) type Raft = openraft::Raft<C, crate::state_machine::ReplicaStateMachine>;

/// A snapshot is metadata only: the Kafka offset right after its last entry, plus the opaque
/// state of a caller-supplied state machine (the controller's metadata image; empty for
/// partitions, whose data stays in the log).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SnapshotData {
    pub(crate) next_offset: i64,
    pub(crate) app_state: Bytes,
}

/// A Raft log id from its term and index.
pub(crate) fn log_id(term: u64, index: u64) -> RaftLogId {
    openraft::LogId::new(
        openraft::vote::leader_id_std::CommittedLeaderId::new(term),
        index,
    )
}

pub(crate) fn from_storage_id(id: shoal_storage::LogId) -> RaftLogId {
    log_id(id.term, id.index)
}
