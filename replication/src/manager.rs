//! [`ReplicaManager`]: the Raft groups one node hosts (one per partition replica, plus the
//! controller group), the shared flusher, the recovery checkpoints, and the dispatch of
//! requests received from other nodes to their group.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use shoal_storage::{Clock, FileSystem, LogConfig};
use tokio::task::JoinHandle;

use crate::config::ReplicationConfig;
use crate::controller::{Controller, ControllerStateMachine};
use crate::error::{ControlError, ReplicationError};
use crate::faults::ReplicationFaults;
use crate::flusher::FlushPool;
use crate::group::{Group, GroupStart};
use crate::log_store::{GroupStorage, LogObserver, StorageOptions};
use crate::partition::PartitionReplica;
use crate::state_machine::ReplicaStateMachine;
use crate::transport::{RpcHandler, Transport};
use crate::types::{GroupId, NodeId, PartitionId};
use crate::wire::{self, RemoteFailure, RpcKind, RpcMessage};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The longest a leadership move requested by another node may take.
const MAX_MOVE_TIMEOUT_MS: u64 = 60_000;

/// How to open one partition replica.
#[derive(Debug, Clone)]
pub struct PartitionSpec {
    /// Told of every append, truncation and reset of this replica's log.
    pub observer: Option<Arc<dyn LogObserver>>,
    pub id: PartitionId,
    /// The partition's log directory (the broker's layout).
    pub dir: PathBuf,
    pub log_config: LogConfig,
    /// The replica set when the partition is created (voters of its group).
    pub replicas: BTreeSet<NodeId>,
    /// Whether this node initializes the group: exactly one replica of a new partition does
    /// (e.g. the first of its assignment, which then becomes the first leader), and only when
    /// the partition is created. A replica reopened after a restart never bootstraps; one
    /// whose disk was lost must not either, or its fresh first entry could disagree with the
    /// group's. Ignored once the group has any state.
    pub bootstrap: bool,
}

/// How to open the controller group on this node.
#[derive(Debug, Clone)]
pub struct ControllerSpec {
    /// The metadata log directory (Kafka's `__cluster_metadata-0`).
    pub dir: PathBuf,
    pub log_config: LogConfig,
    /// `controller.quorum.voters`.
    pub voters: BTreeSet<NodeId>,
    /// Whether this node forms the group (one voter, e.g. the lowest id, when the cluster is
    /// new: its metadata directory was just created). Never set when the directory existed
    /// before or when a node's disk was lost. Ignored once the group has any state.
    pub bootstrap: bool,
}

/// The groups of one node. See the module documentation.
pub struct ReplicaManager {
    node: NodeId,
    config: ReplicationConfig,
    transport: Arc<dyn Transport>,
    fs: Arc<dyn FileSystem>,
    clock: Arc<dyn Clock>,
    pool: Arc<FlushPool>,
    groups: RwLock<HashMap<GroupId, Arc<Group>>>,
    /// Groups being opened or removed (one operation per group at a time).
    busy: Mutex<HashSet<GroupId>>,
    closed: AtomicBool,
    checkpointer: Mutex<Option<JoinHandle<()>>>,
    faults: Arc<ReplicationFaults>,
}

impl std::fmt::Debug for ReplicaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaManager")
            .field("node", &self.node)
            .field("groups", &self.groups.read().map(|g| g.len()).unwrap_or(0))
            .finish()
    }
}

/// Marks a group busy for the lifetime of the guard.
struct BusyGuard<'a> {
    busy: &'a Mutex<HashSet<GroupId>>,
    id: GroupId,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        lock(self.busy).remove(&self.id);
    }
}

impl ReplicaManager {
    /// A manager for node `node`, receiving requests through `transport`. Needs a tokio
    /// runtime.
    pub fn new(
        node: NodeId,
        config: ReplicationConfig,
        transport: Arc<dyn Transport>,
        fs: Arc<dyn FileSystem>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<ReplicaManager>, ReplicationError> {
        config.validate()?;
        let pool = FlushPool::new(config.flush_threads).map_err(|source| ReplicationError::Io {
            what: "flush threads".into(),
            source,
        })?;
        let interval = Duration::from_millis(config.checkpoint_interval_ms);
        let manager = Arc::new(ReplicaManager {
            node,
            config,
            transport: Arc::clone(&transport),
            fs,
            clock,
            pool,
            groups: RwLock::new(HashMap::new()),
            busy: Mutex::new(HashSet::new()),
            closed: AtomicBool::new(false),
            checkpointer: Mutex::new(None),
            faults: Arc::new(ReplicationFaults::default()),
        });
        let weak: Weak<ReplicaManager> = Arc::downgrade(&manager);
        transport.attach(weak.clone() as Weak<dyn RpcHandler>);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(m) = weak.upgrade() else { return };
                let groups = m.all_groups();
                drop(m);
                let r = tokio::task::spawn_blocking(move || {
                    for g in groups {
                        if let Err(e) = g.storage.write_checkpoint() {
                            tracing::warn!(group = %g.id, error = %e, "checkpoint not written");
                        }
                    }
                })
                .await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "checkpoint task failed");
                }
            }
        });
        *lock(&manager.checkpointer) = Some(task);
        Ok(manager)
    }

    pub fn node_id(&self) -> NodeId {
        self.node
    }

    pub fn config(&self) -> &ReplicationConfig {
        &self.config
    }

    /// The test faults of this node (cut partition links); empty unless a test adds some.
    pub fn faults(&self) -> &Arc<ReplicationFaults> {
        &self.faults
    }

    fn all_groups(&self) -> Vec<Arc<Group>> {
        self.groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn group(&self, id: &GroupId) -> Option<Arc<Group>> {
        self.groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    fn claim(&self, id: GroupId) -> Result<BusyGuard<'_>, ReplicationError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(ReplicationError::ShuttingDown);
        }
        if !lock(&self.busy).insert(id) {
            return Err(ReplicationError::GroupExists(id));
        }
        Ok(BusyGuard {
            busy: &self.busy,
            id,
        })
    }

    async fn open_group(
        &self,
        id: GroupId,
        dir: PathBuf,
        log_config: LogConfig,
        bootstrap: Option<BTreeSet<NodeId>>,
        app: Option<Box<dyn ControllerStateMachine>>,
        observer: Option<Arc<dyn LogObserver>>,
    ) -> Result<Arc<Group>, ReplicationError> {
        let _busy = self.claim(id)?;
        if self.group(&id).is_some() {
            return Err(ReplicationError::GroupExists(id));
        }
        if log_config.max_entry_bytes < self.config.max_entry_bytes {
            return Err(ReplicationError::Config(crate::ConfigError(format!(
                "the log of {id} accepts entries of {} bytes, below the replication limit of {}",
                log_config.max_entry_bytes, self.config.max_entry_bytes
            ))));
        }
        let (fs, clock, pool) = (
            Arc::clone(&self.fs),
            Arc::clone(&self.clock),
            Arc::clone(&self.pool),
        );
        let max_read = self.config.max_append_bytes as usize;
        let loaded = tokio::task::spawn_blocking(move || {
            let options = StorageOptions {
                group: id,
                dir,
                log_config,
                fs,
                clock,
                max_read_bytes: max_read,
                observer,
            };
            GroupStorage::open(options, &pool)
        })
        .await
        .map_err(|e| ReplicationError::Raft {
            group: id,
            message: format!("open task failed: {e}"),
        })??;
        let sm = ReplicaStateMachine::new(Arc::clone(&loaded.storage), loaded.checkpoint, app)
            .map_err(|source| ReplicationError::Io {
                what: format!("state of group {id}"),
                source,
            })?;
        let group = Group::start(GroupStart {
            node: self.node,
            id,
            storage: loaded.storage,
            state_machine: sm,
            config: self.config.clone(),
            transport: Arc::clone(&self.transport),
            faults: Arc::clone(&self.faults),
            bootstrap,
        })
        .await?;
        self.groups
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::clone(&group));
        tracing::info!(group = %id, node = self.node, "group open");
        Ok(group)
    }

    /// Opens (creating if needed) this node's replica of a partition.
    pub async fn open_partition(
        &self,
        spec: PartitionSpec,
    ) -> Result<PartitionReplica, ReplicationError> {
        if spec.replicas.is_empty() {
            return Err(ReplicationError::InvalidReplicas(
                "empty replica set".into(),
            ));
        }
        if spec.bootstrap && !spec.replicas.contains(&self.node) {
            return Err(ReplicationError::InvalidReplicas(format!(
                "node {} bootstraps a group it is not a replica of",
                self.node
            )));
        }
        let id = GroupId::Partition(spec.id);
        let bootstrap = spec.bootstrap.then_some(spec.replicas);
        let group = self
            .open_group(
                id,
                spec.dir,
                spec.log_config,
                bootstrap,
                None,
                spec.observer,
            )
            .await?;
        Ok(PartitionReplica { id: spec.id, group })
    }

    /// This node's replica of a partition, if open.
    pub fn partition(&self, id: &PartitionId) -> Option<PartitionReplica> {
        self.group(&GroupId::Partition(*id))
            .map(|group| PartitionReplica { id: *id, group })
    }

    /// The partitions open on this node.
    pub fn partitions(&self) -> Vec<PartitionId> {
        let mut ids: Vec<PartitionId> = self
            .groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .filter_map(|g| match g {
                GroupId::Partition(p) => Some(*p),
                GroupId::Controller => None,
            })
            .collect();
        ids.sort();
        ids
    }

    /// Hands the leadership of partition `id` to `to` and waits until `to` leads (a
    /// preferred-leader election). `leader` is the node believed to lead: this node moves it
    /// itself, any other is asked to over the transport (a node does not need to host the
    /// partition to ask). Fails with [`ControlError::NotLeader`] if `leader` does not lead.
    pub async fn move_partition_leader(
        &self,
        id: PartitionId,
        leader: NodeId,
        to: NodeId,
        timeout: Duration,
    ) -> Result<(), ControlError> {
        let group = GroupId::Partition(id);
        if leader == self.node {
            let g = self
                .group(&group)
                .ok_or_else(|| ControlError::Rejected(format!("{id} is not hosted here")))?;
            return g.transfer_leadership(to, timeout).await;
        }
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let request = wire::encode_move_request(group, to, timeout_ms);
        // The remote waits up to `timeout` for the move; allow for the round trip.
        let wait = timeout + Duration::from_millis(self.config.rpc_timeout_ms);
        let response = self
            .transport
            .send(leader, request, wait)
            .await
            .map_err(|e| ControlError::Timeout(format!("asking node {leader}: {e}")))?;
        match wire::decode_move_response(&response) {
            Ok(wire::MoveReply::Moved) => Ok(()),
            Ok(wire::MoveReply::NotLeader { leader: hint }) => Err(ControlError::NotLeader {
                leader: hint,
                reason: crate::error::NotLeaderReason::NotLeader,
            }),
            Ok(wire::MoveReply::Failed(text)) => Err(ControlError::Rejected(text)),
            Err(e) => Err(ControlError::Fatal(format!(
                "undecodable answer from node {leader}: {e}"
            ))),
        }
    }

    /// Stops this node's replica of a partition (its files stay; the caller deletes the
    /// directory when the topic is gone).
    pub async fn close_partition(&self, id: &PartitionId) -> Result<(), ReplicationError> {
        self.close_group(GroupId::Partition(*id)).await
    }

    async fn close_group(&self, id: GroupId) -> Result<(), ReplicationError> {
        let _busy = self.claim(id)?;
        let group = self
            .groups
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
            .ok_or(ReplicationError::GroupNotFound(id))?;
        group.shutdown().await;
        tracing::info!(group = %id, node = self.node, "group closed");
        Ok(())
    }

    /// Opens the controller group (the bootstrapping voter forms it with `voters`); a node
    /// outside `voters` follows it as an observer once the leader adds it
    /// ([`Controller::add_observer`]). `state_machine` receives every committed command.
    pub async fn open_controller(
        &self,
        spec: ControllerSpec,
        state_machine: Box<dyn ControllerStateMachine>,
    ) -> Result<Controller, ReplicationError> {
        if spec.voters.is_empty() {
            return Err(ReplicationError::InvalidReplicas(
                "no controller voters".into(),
            ));
        }
        if spec.bootstrap && !spec.voters.contains(&self.node) {
            return Err(ReplicationError::InvalidReplicas(format!(
                "node {} bootstraps the controller group without being a voter",
                self.node
            )));
        }
        let bootstrap = spec.bootstrap.then_some(spec.voters);
        let group = self
            .open_group(
                GroupId::Controller,
                spec.dir,
                spec.log_config,
                bootstrap,
                Some(state_machine),
                None,
            )
            .await?;
        Ok(Controller {
            group,
            transport: Arc::clone(&self.transport),
            rpc_timeout: Duration::from_millis(self.config.rpc_timeout_ms),
        })
    }

    /// The controller group, if open.
    pub fn controller(&self) -> Option<Controller> {
        self.group(&GroupId::Controller).map(|group| Controller {
            group,
            transport: Arc::clone(&self.transport),
            rpc_timeout: Duration::from_millis(self.config.rpc_timeout_ms),
        })
    }

    /// Stops the controller group.
    pub async fn close_controller(&self) -> Result<(), ReplicationError> {
        self.close_group(GroupId::Controller).await
    }

    /// Stops every group (flushing logs, writing checkpoints) and the flush threads.
    pub async fn shutdown(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(t) = lock(&self.checkpointer).take() {
            t.abort();
        }
        let groups: Vec<Arc<Group>> = self
            .groups
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, g)| g)
            .collect();
        futures::future::join_all(groups.iter().map(|g| g.shutdown())).await;
        let pool = Arc::clone(&self.pool);
        if let Err(e) = tokio::task::spawn_blocking(move || pool.shutdown()).await {
            tracing::warn!(error = %e, "flush threads did not stop cleanly");
        }
    }
}

impl Drop for ReplicaManager {
    fn drop(&mut self) {
        if let Some(t) = lock(&self.checkpointer).take() {
            t.abort();
        }
    }
}

impl RpcHandler for ReplicaManager {
    fn handle(&self, from: NodeId, request: RpcMessage) -> BoxFuture<'static, RpcMessage> {
        let cut = self.faults.is_cut(&request.group, from);
        let group = self.group(&request.group);
        Box::pin(async move {
            let id = request.group;
            let kind = request.kind().unwrap_or(RpcKind::Vote);
            if cut {
                return RpcMessage::error(
                    id,
                    kind,
                    &RemoteFailure::GroupStopped(format!("link to node {from} cut (test fault)")),
                );
            }
            match group {
                None => RpcMessage::error(id, kind, &RemoteFailure::GroupNotFound),
                Some(g) => dispatch(g, kind, request).await,
            }
        })
    }
}

/// Hands a request to its group's openraft instance and encodes the answer.
async fn dispatch(g: Arc<Group>, kind: RpcKind, request: RpcMessage) -> RpcMessage {
    let id = g.id;
    let malformed = |e: crate::binary_codec::DecodeError| {
        RpcMessage::error(id, kind, &RemoteFailure::Malformed(e.to_string()))
    };
    let stopped = |e: &dyn std::fmt::Display| {
        RpcMessage::error(id, kind, &RemoteFailure::GroupStopped(e.to_string()))
    };
    match kind {
        RpcKind::AppendEntries => match wire::decode_append_request(&request) {
            Err(e) => malformed(e),
            Ok(req) => match g.raft.append_entries(req).await {
                Ok(resp) => wire::encode_append_response(id, &resp),
                Err(e) => stopped(&e),
            },
        },
        RpcKind::Vote | RpcKind::PreVote => match wire::decode_vote_request(&request) {
            Err(e) => malformed(e),
            Ok(req) => {
                let resp = if kind == RpcKind::Vote {
                    g.raft.vote(req).await
                } else {
                    g.raft.pre_vote(req).await
                };
                match resp {
                    Ok(resp) => wire::encode_vote_response(id, kind, &resp),
                    Err(e) => stopped(&e),
                }
            }
        },
        RpcKind::Snapshot => match wire::decode_snapshot_request(&request) {
            Err(e) => malformed(e),
            Ok((vote, snapshot)) => match g.raft.install_full_snapshot(vote, snapshot).await {
                Ok(resp) => wire::encode_snapshot_response(id, &resp),
                Err(e) => stopped(&e),
            },
        },
        RpcKind::TransferLeader => match wire::decode_transfer_request(&request) {
            Err(e) => malformed(e),
            Ok(req) => match g.raft.handle_transfer_leader(req).await {
                Ok(resp) => wire::encode_transfer_response(id, &resp),
                Err(e) => stopped(&e),
            },
        },
        RpcKind::ForwardCommand if id == GroupId::Controller => {
            let command = wire::decode_forward_request(&request);
            let reply = match g.propose_command(&command).await {
                Ok((offset, reply)) => wire::ForwardReply::Applied { offset, reply },
                Err(crate::error::ProposeError::NotLeader { leader, .. }) => {
                    wire::ForwardReply::NotLeader { leader }
                }
                Err(e) => wire::ForwardReply::Failed(e.to_string()),
            };
            wire::encode_forward_response(&reply)
        }
        RpcKind::MoveLeader => match wire::decode_move_request(&request) {
            Err(e) => malformed(e),
            Ok((to, timeout_ms)) => {
                let timeout = Duration::from_millis(timeout_ms.min(MAX_MOVE_TIMEOUT_MS));
                let reply = match g.transfer_leadership(to, timeout).await {
                    Ok(()) => wire::MoveReply::Moved,
                    Err(crate::error::ControlError::NotLeader { leader, .. }) => {
                        wire::MoveReply::NotLeader { leader }
                    }
                    Err(e) => wire::MoveReply::Failed(e.to_string()),
                };
                wire::encode_move_response(id, &reply)
            }
        },
        RpcKind::ForwardCommand => RpcMessage::error(
            id,
            kind,
            &RemoteFailure::Malformed("commands are forwarded to the controller group only".into()),
        ),
    }
}
