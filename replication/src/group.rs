//! One running Raft group on this node: its openraft instance, its storage, the leadership
//! watch, and the operations the public handles (`PartitionReplica`, `Controller`) share:
//! proposing, leadership transfer, membership changes. openraft errors are mapped here to the
//! crate's errors; `LeaseExpired` and `LeadershipTransfer` refusals become a retriable
//! not-leader error.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, Fatal, ForwardReason, ForwardToLeader, RaftError};
use openraft::impls::ProgressResponder;
use openraft::raft::ClientWriteResult;
use openraft::{EmptyNode, ServerState};
use shoal_storage::AppendInfo;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::ReplicationConfig;
use crate::control_batch;
use crate::error::{ControlError, NotLeaderReason, ProposeError, ReplicationError};
use crate::faults::ReplicationFaults;
use crate::log_store::{GroupStorage, LogStore};
use crate::network::NetworkFactory;
use crate::state_machine::ReplicaStateMachine;
use crate::transport::Transport;
use crate::types::{AppendNotifier, ApplyOutcome, C, GroupId, NodeId, Raft, RaftLogId, Records};

/// How long a leadership transfer waits for the target to take over before it announces the
/// transfer again.
const TRANSFER_RECHECK: Duration = Duration::from_millis(500);

/// A replica's role in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    /// Campaigning: no leader known.
    Candidate,
    /// Replicates without voting (a replica being added, or a controller observer).
    Learner,
    /// The group is stopped.
    Shutdown,
}

/// Who leads a group, as this replica sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    pub role: Role,
    pub leader: Option<NodeId>,
    /// The Raft term: the Kafka leader epoch (stamped into every batch the term appends).
    pub epoch: u64,
}

/// The voters and learners of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicas {
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
    /// A joint configuration (a replica change in progress).
    pub changing: bool,
}

/// Where an append landed in the leader's log (the acks=1 point).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Offsets, per-batch producer fields and timestamps, as the storage crate reports them.
    pub info: AppendInfo,
    /// The leader epoch the batches were stamped with.
    pub leader_epoch: u64,
}

/// An appended proposal, waiting for its commit (the acks=all point).
#[derive(Debug)]
pub struct PendingCommit {
    commit: oneshot::Receiver<RaftLogId>,
    complete: oneshot::Receiver<ClientWriteResult<C>>,
    hw: watch::Receiver<i64>,
    last_offset: i64,
    _permit: OwnedSemaphorePermit,
}

impl PendingCommit {
    /// Resolves once the entry is committed (on a majority's disk, per the flush policy)
    /// and the high watermark covers it; fails if it was lost to a leader change.
    pub async fn committed(mut self) -> Result<(), ProposeError> {
        if (&mut self.commit).await.is_err() {
            // No commit: the completion says why.
            return match self.complete.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(write_error(e)),
                Err(_) => Err(ProposeError::Closed),
            };
        }
        let last = self.last_offset;
        // `save_committed` publishes the high watermark before openraft reports the commit.
        if self.hw.wait_for(|hw| *hw > last).await.is_err() {
            return Err(ProposeError::Closed);
        }
        Ok(())
    }
}

fn reason(r: ForwardReason) -> NotLeaderReason {
    match r {
        ForwardReason::NotLeader => NotLeaderReason::NotLeader,
        ForwardReason::LeadershipTransfer => NotLeaderReason::LeadershipTransfer,
        ForwardReason::LeaseExpired => NotLeaderReason::LeaseExpired,
    }
}

fn fatal_propose(e: Fatal<C>) -> ProposeError {
    match e {
        Fatal::Stopped => ProposeError::Closed,
        other => ProposeError::Fatal(other.to_string()),
    }
}

fn write_error(e: ClientWriteError<C>) -> ProposeError {
    match e {
        ClientWriteError::ForwardToLeader(ForwardToLeader {
            leader_id,
            reason: r,
            ..
        }) => ProposeError::NotLeader {
            leader: leader_id,
            reason: reason(r),
        },
        ClientWriteError::LogEntryDiscarded(f) => ProposeError::NotLeader {
            leader: f.leader_id,
            reason: NotLeaderReason::LeaderChanged,
        },
        other => ProposeError::Fatal(other.to_string()),
    }
}

fn control_error(e: RaftError<C, ClientWriteError<C>>) -> ControlError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f))
        | RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => ControlError::NotLeader {
            leader: f.leader_id,
            reason: reason(f.reason),
        },
        RaftError::APIError(other) => ControlError::Rejected(other.to_string()),
        RaftError::Fatal(Fatal::Stopped) => ControlError::Closed,
        RaftError::Fatal(f) => ControlError::Fatal(f.to_string()),
    }
}

/// Runs a membership change, retrying while another one is in progress, until `deadline`.
async fn retry_in_progress<F, Fut>(
    deadline: tokio::time::Instant,
    mut f: F,
) -> Result<(), ControlError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<
            Output = Result<
                openraft::raft::ClientWriteResponse<C>,
                RaftError<C, ClientWriteError<C>>,
            >,
        >,
{
    loop {
        match f().await {
            Ok(_) => return Ok(()),
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                openraft::error::ChangeMembershipError::InProgress(p),
            ))) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(ControlError::Timeout(p.to_string()));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(control_error(e)),
        }
    }
}

fn leadership_of(m: &openraft::metrics::RaftServerMetrics<C>) -> Leadership {
    let role = match m.state {
        ServerState::Leader => Role::Leader,
        ServerState::Follower => Role::Follower,
        ServerState::Candidate => Role::Candidate,
        ServerState::Learner => Role::Learner,
        ServerState::Shutdown => Role::Shutdown,
    };
    Leadership {
        role,
        leader: m.current_leader,
        epoch: m.vote.leader_id.term,
    }
}

/// The [`AppendInfo`] of a stored entry (its batches' headers as stamped).
fn append_info(
    entry: &shoal_storage::StoredEntry,
) -> Result<AppendInfo, shoal_storage::BatchError> {
    let mut batches = Vec::new();
    let (mut max_timestamp, mut offset_of_max) = (-1, entry.meta.base_offset);
    for b in shoal_storage::split_batches(&entry.bytes) {
        let b = b?;
        let h = shoal_storage::BatchHeader::parse(&b)?;
        if h.max_timestamp > max_timestamp {
            max_timestamp = h.max_timestamp;
            offset_of_max = h.last_offset();
        }
        batches.push(shoal_storage::AppendedBatch {
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            record_count: h.record_count,
            max_timestamp: h.max_timestamp,
            is_transactional: h.is_transactional(),
            is_control: h.is_control(),
        });
    }
    Ok(AppendInfo {
        index: entry.meta.index,
        term: entry.meta.term,
        base_offset: entry.meta.base_offset,
        last_offset: entry.meta.next_offset - 1,
        next_offset: entry.meta.next_offset,
        max_timestamp,
        offset_of_max_timestamp: offset_of_max,
        size_bytes: entry.bytes.len(),
        batches,
    })
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) id: GroupId,
    pub(crate) node: NodeId,
    pub(crate) raft: Raft,
    pub(crate) storage: Arc<GroupStorage>,
    leadership: watch::Receiver<Leadership>,
    leadership_tx: Arc<watch::Sender<Leadership>>,
    proposals: Arc<Semaphore>,
    max_entry_bytes: u64,
    /// How long membership changes wait for one in progress.
    control_timeout: Duration,
    watcher: JoinHandle<()>,
}

/// How to start a group.
pub(crate) struct GroupStart {
    pub(crate) node: NodeId,
    pub(crate) id: GroupId,
    pub(crate) storage: Arc<GroupStorage>,
    pub(crate) state_machine: ReplicaStateMachine,
    pub(crate) config: ReplicationConfig,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) faults: Arc<ReplicationFaults>,
    /// Initialize the group with these voters if it never was (the designated member).
    pub(crate) bootstrap: Option<BTreeSet<NodeId>>,
}

impl Group {
    pub(crate) async fn start(start: GroupStart) -> Result<Arc<Group>, ReplicationError> {
        let controller = start.id == GroupId::Controller;
        let raft_config = Arc::new(start.config.raft_config(controller)?);
        let network = NetworkFactory {
            node: start.node,
            group: start.id,
            transport: start.transport,
            faults: start.faults,
        };
        let raft_err = |e: &dyn std::fmt::Display| ReplicationError::Raft {
            group: start.id,
            message: e.to_string(),
        };
        let raft = Raft::new(
            start.node,
            raft_config,
            network,
            LogStore::new(Arc::clone(&start.storage)),
            start.state_machine,
        )
        .await
        .map_err(|e| raft_err(&e))?;
        if let Some(voters) = start.bootstrap
            && !raft.is_initialized().await.map_err(|e| raft_err(&e))?
        {
            let members: BTreeMap<NodeId, EmptyNode> =
                voters.into_iter().map(|n| (n, EmptyNode::new())).collect();
            if let Err(e) = raft.initialize(members).await {
                // Another start of this node may have initialized it meanwhile; anything else
                // is a real failure.
                match e {
                    RaftError::APIError(openraft::error::InitializeError::NotAllowed(_)) => {}
                    e => return Err(raft_err(&e)),
                }
            }
        }
        let mut metrics = raft.server_metrics();
        let (tx, rx) = watch::channel(leadership_of(&metrics.borrow_watched()));
        let tx = Arc::new(tx);
        let leadership_tx = Arc::clone(&tx);
        let group_id = start.id;
        let watcher = tokio::spawn(async move {
            loop {
                if metrics.changed().await.is_err() {
                    break;
                }
                let l = leadership_of(&metrics.borrow_watched());
                tx.send_if_modified(|cur| {
                    let changed = *cur != l;
                    *cur = l;
                    changed
                });
            }
            tx.send_modify(|l| l.role = Role::Shutdown);
            tracing::debug!(group = %group_id, "leadership watcher stopped");
        });
        Ok(Arc::new(Group {
            id: start.id,
            node: start.node,
            raft,
            storage: start.storage,
            leadership: rx,
            leadership_tx,
            proposals: Arc::new(Semaphore::new(start.config.max_inflight_proposals as usize)),
            max_entry_bytes: start.config.max_entry_bytes,
            control_timeout: Duration::from_millis(start.config.rpc_timeout_ms.saturating_mul(4)),
            watcher,
        }))
    }

    pub(crate) fn leadership(&self) -> Leadership {
        *self.leadership.borrow()
    }

    pub(crate) fn watch_leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    fn not_leader(&self) -> ProposeError {
        let l = self.leadership();
        ProposeError::NotLeader {
            leader: l.leader.filter(|n| *n != self.node),
            reason: NotLeaderReason::NotLeader,
        }
    }

    /// Submits `batches` and waits until the leader appended them.
    pub(crate) async fn append(
        &self,
        batches: Bytes,
    ) -> Result<(Appended, PendingCommit), ProposeError> {
        control_batch::check_proposal(&batches, self.max_entry_bytes)?;
        let (appended, pending) = self.submit(batches).await?;
        Ok((appended, pending))
    }

    /// Submits already checked batches.
    async fn submit(&self, batches: Bytes) -> Result<(Appended, PendingCommit), ProposeError> {
        if self.leadership().role != Role::Leader {
            return Err(self.not_leader());
        }
        let permit = Arc::clone(&self.proposals)
            .acquire_owned()
            .await
            .map_err(|_| ProposeError::Closed)?;
        let (notifier, appended) = AppendNotifier::new();
        let (responder, commit, mut complete) = ProgressResponder::new();
        let records = Records {
            batches,
            on_append: Some(notifier),
        };
        self.raft
            .client_write_ff(records, Some(responder))
            .await
            .map_err(fatal_propose)?;
        // Wait for the local append only: completion may be observed first (the task's poll
        // order is not the order of the two events), yet the append always happens before.
        // If the entry never reaches the log, openraft drops it with the notifier, and the
        // completion says why.
        let info = match appended.await {
            Ok(info) => info,
            Err(_) => match (&mut complete).await {
                Ok(Err(e)) => return Err(write_error(e)),
                Ok(Ok(resp)) => self.appended_from_log(resp.log_id.index)?,
                Err(_) => return Err(ProposeError::Closed),
            },
        };
        let last_offset = info.last_offset;
        let leader_epoch = info.term;
        Ok((
            Appended { info, leader_epoch },
            PendingCommit {
                commit,
                complete,
                hw: self.storage.watch_hw(),
                last_offset,
                _permit: permit,
            },
        ))
    }

    /// What `append` reported for an entry, rebuilt from the stored entry.
    fn appended_from_log(&self, index: u64) -> Result<AppendInfo, ProposeError> {
        let log = self.storage.read_log();
        let stored = log
            .read_entries(index, index + 1, usize::MAX)
            .map_err(|e| ProposeError::Fatal(e.to_string()))?;
        let entry = stored.first().ok_or_else(|| {
            ProposeError::Fatal(format!("committed entry {index} not in the log"))
        })?;
        append_info(entry).map_err(|e| ProposeError::Fatal(e.to_string()))
    }

    /// Proposes one command (the controller): wraps it in a batch, waits for it to be applied
    /// and returns its offset and the state machine's reply.
    pub(crate) async fn propose_command(
        &self,
        command: &[u8],
    ) -> Result<(i64, Bytes), ProposeError> {
        let batch = control_batch::value_batch(command, self.storage.clock.now_ms());
        control_batch::check_proposal(&batch, self.max_entry_bytes)?;
        if self.leadership().role != Role::Leader {
            return Err(self.not_leader());
        }
        let permit = Arc::clone(&self.proposals)
            .acquire_owned()
            .await
            .map_err(|_| ProposeError::Closed)?;
        let (responder, complete) = ProgressResponder::complete_only();
        self.raft
            .client_write_ff(Records::new(batch), Some(responder))
            .await
            .map_err(fatal_propose)?;
        let result = complete.await.map_err(|_| ProposeError::Closed)?;
        drop(permit);
        match result {
            Ok(resp) => {
                let ApplyOutcome {
                    base_offset, reply, ..
                } = resp.data;
                Ok((base_offset, reply.unwrap_or_default()))
            }
            Err(e) => Err(write_error(e)),
        }
    }

    pub(crate) fn replicas(&self) -> Replicas {
        let m = self
            .raft
            .server_metrics()
            .borrow_watched()
            .membership_config
            .clone();
        let configs = m.membership().get_joint_config();
        let voters: BTreeSet<NodeId> = configs.iter().flatten().copied().collect();
        let learners = m.membership().learner_ids().collect();
        Replicas {
            voters,
            learners,
            changing: configs.len() > 1,
        }
    }

    /// Asks the leader (this node) to hand leadership to `to`, and waits until `to` leads.
    pub(crate) async fn transfer_leadership(
        &self,
        to: NodeId,
        timeout: Duration,
    ) -> Result<(), ControlError> {
        let l = self.leadership();
        if l.role != Role::Leader {
            return Err(ControlError::NotLeader {
                leader: l.leader,
                reason: NotLeaderReason::NotLeader,
            });
        }
        if to == self.node {
            return Ok(());
        }
        if !self.replicas().voters.contains(&to) {
            return Err(ControlError::Rejected(format!("node {to} is not a voter")));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        // openraft's target ignores a transfer when its log is behind the leader's last entry
        // at that moment, and the leader, which refuses proposals from the moment it starts a
        // transfer, would refuse them until its next election. So: wait for the target to
        // catch up first, and while it has not taken over, announce the transfer again (by
        // then it holds the leader's log, which stops growing during a transfer).
        let mut leadership = self.watch_leadership();
        let taken_over = |l: &Leadership| l.leader == Some(to);
        let _ = tokio::time::timeout_at(deadline, self.target_caught_up(to)).await;
        loop {
            self.raft
                .trigger()
                .transfer_leader(to)
                .await
                .map_err(|e| ControlError::Fatal(e.to_string()))?;
            let recheck = tokio::time::Instant::now() + TRANSFER_RECHECK;
            match tokio::time::timeout_at(recheck.min(deadline), leadership.wait_for(taken_over))
                .await
            {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(_)) => return Err(ControlError::Closed),
                Err(_) if tokio::time::Instant::now() < deadline => {}
                Err(_) => break,
            }
        }
        if self.leadership().role == Role::Leader {
            // Still leading but refusing proposals for a transfer that did not happen: an
            // election restores a leader that takes writes (this node or another).
            if let Err(e) = self.raft.trigger().elect(false).await {
                tracing::warn!(group = %self.id, "could not end a failed leadership transfer: {e}");
            }
        }
        Err(ControlError::Timeout(format!(
            "node {to} did not take over within {timeout:?}"
        )))
    }

    /// Waits until `node` holds this leader's last entry (returns at once when not leading).
    async fn target_caught_up(&self, node: NodeId) {
        let mut metrics = self.raft.metrics();
        loop {
            {
                let m = metrics.borrow_watched();
                let Some(replication) = m.replication.as_ref() else {
                    return;
                };
                let matched = replication.get(&node).cloned().flatten().map(|id| id.index);
                if matched >= m.last_log_index {
                    return;
                }
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    /// Makes `voters` the group's voters (on the leader): missing nodes join as learners and
    /// catch up first, then a joint-consensus change switches the voters. Nodes left out are
    /// removed. Waits for a change already in progress (e.g. a new leader's first membership
    /// not yet committed) to finish first.
    pub(crate) async fn change_voters(&self, voters: BTreeSet<NodeId>) -> Result<(), ControlError> {
        if voters.is_empty() {
            return Err(ControlError::Rejected(
                "a group needs at least one voter".into(),
            ));
        }
        let deadline = tokio::time::Instant::now() + self.control_timeout;
        let current = self.replicas();
        for n in voters.difference(&current.voters) {
            if !current.learners.contains(n) {
                retry_in_progress(deadline, || {
                    self.raft.add_learner(*n, EmptyNode::new(), true)
                })
                .await?;
            }
        }
        retry_in_progress(deadline, || {
            self.raft.change_membership(voters.clone(), false)
        })
        .await?;
        Ok(())
    }

    /// Adds `node` as a learner (a non-voting replica), without waiting for it to catch up.
    pub(crate) async fn add_learner(&self, node: NodeId) -> Result<(), ControlError> {
        let r = self.replicas();
        if r.voters.contains(&node) || r.learners.contains(&node) {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.control_timeout;
        retry_in_progress(deadline, || {
            self.raft.add_learner(node, EmptyNode::new(), false)
        })
        .await
    }

    /// Stops the group: openraft's tasks end, the log is flushed and the checkpoint written.
    pub(crate) async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(group = %self.id, error = %e, "raft shutdown failed");
        }
        self.watcher.abort();
        self.leadership_tx.send_modify(|l| {
            l.role = Role::Shutdown;
            l.leader = None;
        });
        let s = Arc::clone(&self.storage);
        let r = tokio::task::spawn_blocking(move || {
            s.flush.flush_all_blocking()?;
            s.write_checkpoint()
        })
        .await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(group = %self.id, error = %e, "final flush failed"),
            Err(e) => tracing::warn!(group = %self.id, error = %e, "final flush task failed"),
        }
    }
}
