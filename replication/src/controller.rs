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
use crate::transport::Transport;
use crate::types::NodeId;
use crate::wire::{self, ForwardReply};

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
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) rpc_timeout: Duration,
}

impl Controller {
    /// Proposes a command (on the leader) and waits until it is committed and applied here:
    /// returns its offset and the state machine's reply.
    pub async fn propose(&self, command: &[u8]) -> Result<(i64, Bytes), ProposeError> {
        self.group.propose_command(command).await
    }

    /// Proposes a command from any node that hosts the group (KRaft brokers forward to the
    /// active controller): on the leader as [`Self::propose`], elsewhere sent to the leader
    /// this node knows of, following leader hints and waiting for an election, until
    /// `timeout` has passed. Returns the command's offset and the state machine's reply.
    /// A forwarded command that timed out may still commit later: make commands idempotent
    /// or checked against the state they apply to.
    pub async fn propose_forwarded(
        &self,
        command: &[u8],
        timeout: Duration,
    ) -> Result<(i64, Bytes), ProposeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut hint: Option<NodeId> = None;
        let mut backoff = Duration::from_millis(20);
        let mut last_error = ProposeError::NotLeader {
            leader: None,
            reason: crate::error::NotLeaderReason::NotLeader,
        };
        loop {
            let leadership = self.group.leadership();
            let target = hint.or(leadership.leader);
            let attempt = match target {
                Some(node) if node == self.group.node => self.group.propose_command(command).await,
                Some(node) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let sent = self
                        .transport
                        .send(
                            node,
                            wire::encode_forward_request(command),
                            left.min(self.rpc_timeout.max(Duration::from_millis(1))),
                        )
                        .await;
                    match sent.map(|m| wire::decode_forward_response(&m)) {
                        Ok(Ok(ForwardReply::Applied { offset, reply })) => Ok((offset, reply)),
                        Ok(Ok(ForwardReply::NotLeader { leader })) => {
                            Err(ProposeError::NotLeader {
                                leader: leader.filter(|l| *l != node),
                                reason: crate::error::NotLeaderReason::NotLeader,
                            })
                        }
                        Ok(Ok(ForwardReply::Failed(text))) => Err(ProposeError::Fatal(text)),
                        Ok(Err(e)) => Err(ProposeError::Fatal(e.to_string())),
                        Err(e) => Err(ProposeError::NotLeader {
                            leader: None,
                            reason: crate::error::NotLeaderReason::NotLeader,
                        })
                        .inspect_err(|_| tracing::debug!(node, error = %e, "forwarding failed")),
                    }
                }
                None => Err(last_error.clone()),
            };
            match attempt {
                Ok(done) => return Ok(done),
                Err(ProposeError::NotLeader { leader, reason }) => {
                    hint = leader;
                    last_error = ProposeError::NotLeader { leader, reason };
                }
                Err(e) => return Err(e),
            }
            if tokio::time::Instant::now() + backoff >= deadline {
                return Err(last_error);
            }
            if hint.is_none() {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
        }
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
