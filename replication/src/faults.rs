//! [`ReplicationFaults`]: test faults that cut one partition's Raft traffic between this node
//! and one other node, while every other group (and the shared connection) keeps working.
//!
//! A cut `(partition, peer)` drops, on this node, every message of that partition's group to
//! and from `peer`: outgoing requests fail at once as unreachable (openraft backs off and
//! retries, as for a dead follower) and incoming requests are refused as if the group were not
//! hosted here. Installed on a partition's leader with a follower as `peer`, it makes that
//! follower behave like a Kafka follower whose fetcher is stuck: it receives nothing, its high
//! watermark stops, the leader sees it fall behind (and out of the ISR) and keeps leading with
//! the other replicas. The follower's election timer fires, but it only runs pre-votes (the
//! default, `ReplicationConfig::pre_vote`), which the remaining replicas refuse while they
//! hear from the leader (leader lease); its term therefore stays the leader's, and when the
//! cut heals it accepts the leader's next AppendEntries and catches up without deposing it.
//!
//! The controller group is never cut. The set is empty unless a caller adds to it; checking an
//! empty set is one relaxed atomic load per message.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::types::{GroupId, NodeId, PartitionId};

/// Cut links of this node. See the module documentation.
#[derive(Debug, Default)]
pub struct ReplicationFaults {
    /// Fast path: whether `cuts` is non-empty.
    any: AtomicBool,
    cuts: Mutex<BTreeSet<(PartitionId, NodeId)>>,
}

impl ReplicationFaults {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<(PartitionId, NodeId)>> {
        self.cuts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops every message of `partition`'s group between this node and `peer` from now on.
    /// Returns false if that link was already cut.
    pub fn cut(&self, partition: PartitionId, peer: NodeId) -> bool {
        let mut cuts = self.lock();
        let added = cuts.insert((partition, peer));
        self.any.store(!cuts.is_empty(), Ordering::SeqCst);
        if added {
            tracing::warn!(partition = %partition, peer, "test fault: replication link cut");
        }
        added
    }

    /// Restores the link. Returns false if it was not cut.
    pub fn heal(&self, partition: PartitionId, peer: NodeId) -> bool {
        let mut cuts = self.lock();
        let removed = cuts.remove(&(partition, peer));
        self.any.store(!cuts.is_empty(), Ordering::SeqCst);
        if removed {
            tracing::warn!(partition = %partition, peer, "test fault: replication link healed");
        }
        removed
    }

    /// Restores every link.
    pub fn heal_all(&self) {
        let mut cuts = self.lock();
        cuts.clear();
        self.any.store(false, Ordering::SeqCst);
    }

    /// The cut links, in order.
    pub fn cuts(&self) -> Vec<(PartitionId, NodeId)> {
        self.lock().iter().copied().collect()
    }

    /// Whether messages of `group` to or from `peer` are dropped.
    pub(crate) fn is_cut(&self, group: &GroupId, peer: NodeId) -> bool {
        if !self.any.load(Ordering::Relaxed) {
            return false;
        }
        match group {
            GroupId::Controller => false,
            GroupId::Partition(p) => self.lock().contains(&(*p, peer)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> PartitionId {
        PartitionId {
            topic_id: uuid::Uuid::from_u128(7),
            partition: n,
        }
    }

    #[test]
    fn cuts_are_per_partition_and_peer() {
        let f = ReplicationFaults::default();
        assert!(!f.is_cut(&GroupId::Partition(p(0)), 2));
        assert!(f.cut(p(0), 2));
        assert!(!f.cut(p(0), 2), "already cut");
        assert!(f.is_cut(&GroupId::Partition(p(0)), 2));
        assert!(!f.is_cut(&GroupId::Partition(p(0)), 3));
        assert!(!f.is_cut(&GroupId::Partition(p(1)), 2));
        assert!(
            !f.is_cut(&GroupId::Controller, 2),
            "the controller is never cut"
        );
        assert_eq!(f.cuts(), vec![(p(0), 2)]);
        assert!(f.heal(p(0), 2));
        assert!(!f.heal(p(0), 2), "not cut any more");
        assert!(!f.is_cut(&GroupId::Partition(p(0)), 2));
        f.cut(p(0), 2);
        f.cut(p(1), 3);
        f.heal_all();
        assert!(f.cuts().is_empty());
        assert!(!f.is_cut(&GroupId::Partition(p(1)), 3));
    }
}
