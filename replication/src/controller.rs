//! The controller group: cluster metadata replicated like KRaft's metadata log. Its entries
//! are opaque command bytes (the broker's metadata commands: brokers, topics, assignments,
//! leaders, ISR, producer-id blocks, configs), each stored as a one-record batch in the
//! group's partition log. Every node hosting the group (the voters of
//! `controller.quorum.voters`, and observers the leader added) applies every committed command
//! to the caller's [`ControllerStateMachine`] in log order, so each keeps its own copy of the
//! metadata. The log is compacted into snapshots of the caller's state every
//! `controller_snapshot_entries` entries; a node that fell behind installs the snapshot.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use crate::error::{ControlError, ProposeError};
use crate::group::{Group, Leadership, Replicas};
use crate::types::NodeId;

/// Error a caller's state machine reports when it cannot restore a snapshot.
pub type RestoreError = Box<dyn std::error::Error + Send + Sync>;

/// The caller's metadata state machine, fed every committed command in log order on every
/// node that hosts the controller group (voters and observers).
pub trait ControllerStateMachine: Send + 'static {
    /// Applies the command committed at `offset`; the reply goes back to its proposer.
    /// Must be deterministic: every node applies the same commands in the same order.
    fn apply(&mut self, offset: i64, command: &[u8]) -> Bytes;
    /// The whole state, serialized (a snapshot compacts the log up to the last applied
    /// command).
    fn snapshot(&self) -> Bytes;
    /// Replaces the state with a snapshot taken by [`ControllerStateMachine::snapshot`].
    fn restore(&mut self, snapshot: Bytes) -> Result<(), RestoreError>;
}

/// This node's member of the controller group. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Controller {
    pub(crate) group: Arc<Group>,
}

impl Controller {
    /// Proposes a command (on the leader) and waits until it is committed and applied here:
    /// returns its offset and the state machine's reply.
    pub async fn propose(&self, command: &[u8]) -> Result<(i64, Bytes), ProposeError> {
        self.group.propose_command(command).await
    }

    pub fn leadership(&self) -> Leadership {
        self.group.leadership()
    }

    pub fn watch_leadership(&self) -> watch::Receiver<Leadership> {
        self.group.watch_leadership()
    }

    /// The offset after the last command applied on this node.
    pub fn applied_offset(&self) -> i64 {
        *self.group.storage.applied_offset.borrow()
    }

    /// Changes of [`Self::applied_offset`]: follow the committed stream.
    pub fn watch_applied(&self) -> watch::Receiver<i64> {
        self.group.storage.applied_offset.subscribe()
    }

    pub fn replicas(&self) -> Replicas {
        self.group.replicas()
    }

    /// Adds a node that follows the metadata without voting (a broker that is not a
    /// controller). Call on the leader; the node must have opened the controller group.
    pub async fn add_observer(&self, node: NodeId) -> Result<(), ControlError> {
        self.group.add_learner(node).await
    }

    /// Replaces the voters (call on the leader).
    pub async fn change_voters(&self, voters: BTreeSet<NodeId>) -> Result<(), ControlError> {
        self.group.change_voters(voters).await
    }

    /// Hands leadership to another voter and waits until it leads.
    pub async fn transfer_leadership(
        &self,
        to: NodeId,
        timeout: Duration,
    ) -> Result<(), ControlError> {
        self.group.transfer_leadership(to, timeout).await
    }
}
