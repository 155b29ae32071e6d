//! Cluster mode: a node that is one of several (`controller.quorum.voters` naming other nodes).
//!
//! What changes against a single node, and where:
//! - Metadata: [`metadata_store::ReplicatedMetadataStore`] over the controller Raft group of
//!   `shoal-replication` (every node is a voter; a new cluster forms on first start, the lowest
//!   voter bootstrapping the group). Every broker applies the same commands to its own
//!   [`crate::metadata::MetadataImage`]; commands proposed on any node are forwarded to the
//!   controller leader.
//! - Partitions: each partition is a Raft group of its replicas
//!   ([`raft_partition::RaftPartition`], hosted by [`crate::partition::PartitionManager`] in
//!   replicated mode), opened and removed on the hosting brokers as the image changes.
//! - Background duties ([`duties`]): broker heartbeats, fencing of silent brokers (controller
//!   leader), reports of partition leaders, epochs and ISRs to the metadata, preferred-leader
//!   rebalance, controlled shutdown.
//! - Preferred-leader elections asked for by clients ([`leader_election`], ElectLeaders).
//! - For tests only, with `testing.faults.enabled`: [`test_faults`], HTTP endpoints that cut
//!   one partition's replication to one follower.
//!
//! All traffic between nodes (controller and partitions) runs over one TCP connection per
//! node pair on the controller listener.

pub mod duties;
pub mod leader_election;
pub mod metadata_store;
pub mod raft_partition;
pub mod test_faults;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_replication::{
    ControllerSpec, ReplicaManager, ReplicationConfig, TcpTransport, TcpTransportConfig,
};
use shoal_storage::{Clock, FileSystem, LogConfig};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{BrokerConfig, ClusterConfig};
use crate::metadata::{MetadataCommand, MetadataError, MetadataImage, MetadataStore};
use crate::partition::manager::METADATA_DIR;
use metadata_store::{Liveness, MetadataStateMachine, ReplicatedMetadataStore};

/// Why cluster mode cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The controller listener cannot be bound or a voter's address resolved.
    #[error("{0}")]
    Network(String),
    /// The replication layer refused to start.
    #[error("replication: {0}")]
    Replication(#[from] shoal_replication::ReplicationError),
    /// A metadata command failed.
    #[error("metadata: {0}")]
    Metadata(#[from] MetadataError),
    /// The data directories cannot be used in cluster mode.
    #[error("{0}")]
    Data(String),
    /// The node was stopped while waiting for the quorum.
    #[error("stopped while waiting for the controller quorum")]
    Stopped,
}

/// The replication side of a cluster node.
#[derive(Debug)]
pub struct ClusterRuntime {
    /// This node's Raft groups.
    pub replicas: Arc<ReplicaManager>,
    /// The inter-node transport (controller listener).
    pub transport: Arc<TcpTransport>,
    /// The replicated metadata.
    pub store: Arc<ReplicatedMetadataStore>,
    /// When brokers were last heard from (for fencing on the controller leader).
    pub liveness: Liveness,
    /// The cluster settings.
    pub config: ClusterConfig,
    /// This node.
    pub node_id: i32,
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, ClusterError> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ClusterError::Network(format!("cannot resolve {host}:{port}: {e}")))?
        .next()
        .ok_or_else(|| ClusterError::Network(format!("{host}:{port} resolves to no address")))
}

/// The replication settings of a broker: Raft entries as large as a produce request.
fn replication_config(config: &BrokerConfig) -> ReplicationConfig {
    let max_entry = (config.socket_request_max_bytes as u64).clamp(1 << 20, i32::MAX as u64 / 2);
    ReplicationConfig {
        max_entry_bytes: max_entry,
        ..ReplicationConfig::default()
    }
}

impl ClusterRuntime {
    /// Binds the controller listener, opens the controller group (forming the cluster on its
    /// first start) and waits until the quorum answers; then the image holds a cluster id.
    pub async fn start(
        config: &BrokerConfig,
        cluster: &ClusterConfig,
        fs: Arc<dyn FileSystem>,
        clock: Arc<dyn Clock>,
        candidate_cluster_id: String,
        shutdown: &CancellationToken,
    ) -> Result<Arc<ClusterRuntime>, ClusterError> {
        let node_id = config.node_id;
        let listener = &cluster.controller_listener;
        let bind = resolve(&listener.host, listener.port).await?;
        let replication = replication_config(config);
        let transport_config = TcpTransportConfig {
            max_frame_bytes: replication.largest_frame_bytes(),
            ..TcpTransportConfig::default()
        };
        let transport = TcpTransport::bind(node_id as u64, bind, transport_config)
            .await
            .map_err(|e| {
                ClusterError::Network(format!(
                    "cannot listen on {listener} (controller listener): {e}"
                ))
            })?;
        for voter in cluster.voters.values() {
            if voter.node_id == node_id {
                continue;
            }
            let addr = resolve(&voter.host, voter.port).await?;
            transport.set_peer(voter.node_id as u64, addr);
        }
        let replicas =
            ReplicaManager::new(node_id as u64, replication, transport.clone(), fs, clock)?;

        let dir: PathBuf = config.log_dirs[0].join(METADATA_DIR);
        if dir.join(crate::metadata::log::LOG_FILE).exists() {
            return Err(ClusterError::Data(format!(
                "{} holds a single-node broker's metadata: a single-node data directory cannot join a cluster; start cluster nodes on new log.dirs",
                dir.display()
            )));
        }
        let lowest = cluster.voters.keys().next().copied();
        let bootstrap = !dir.exists() && lowest == Some(node_id);
        let (images, _) = watch::channel(Arc::new(MetadataImage::empty("")));
        let liveness: Liveness = Arc::new(Mutex::new(HashMap::new()));
        let state_machine = MetadataStateMachine::new(images.clone(), liveness.clone());
        let controller = replicas
            .open_controller(
                ControllerSpec {
                    dir,
                    log_config: LogConfig {
                        segment_bytes: 16 << 20,
                        ..LogConfig::default()
                    },
                    voters: cluster
                        .voters
                        .keys()
                        .map(|v| *v as u64)
                        .collect::<BTreeSet<_>>(),
                    bootstrap,
                },
                Box::new(state_machine),
            )
            .await?;
        info!(
            node_id,
            bootstrap,
            controller = %listener,
            voters = cluster.voters.len(),
            "controller group open"
        );
        let store = Arc::new(ReplicatedMetadataStore::new(
            controller,
            images,
            Duration::from_millis(10_000),
        ));
        let runtime = Arc::new(ClusterRuntime {
            replicas,
            transport,
            store,
            liveness,
            config: cluster.clone(),
            node_id,
        });
        // The first node to get through names the cluster; every later attempt is a no-op or
        // (another id) rejected, and the image then holds the winner.
        let wanted = cluster.cluster_id.clone().unwrap_or(candidate_cluster_id);
        loop {
            if !runtime.store.image().cluster_id().is_empty() {
                break;
            }
            let attempt = runtime
                .store
                .apply(MetadataCommand::InitCluster {
                    cluster_id: wanted.clone(),
                })
                .await;
            match attempt {
                Ok(_) | Err(MetadataError::Rejected(_)) => break,
                Err(e) => {
                    info!("waiting for the controller quorum: {e}");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return Err(ClusterError::Stopped),
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        Ok(runtime)
    }

    /// Applies a command, retrying while the quorum is unavailable, until `shutdown`.
    pub async fn apply_retrying(
        &self,
        command: MetadataCommand,
        shutdown: &CancellationToken,
    ) -> Result<Arc<MetadataImage>, ClusterError> {
        loop {
            match self.store.apply(command.clone()).await {
                Ok(image) => return Ok(image),
                Err(MetadataError::Unavailable(e)) => warn!("retrying {command:?}: {e}"),
                Err(e) => return Err(e.into()),
            }
            tokio::select! {
                () = shutdown.cancelled() => return Err(ClusterError::Stopped),
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Stops every Raft group and the transport.
    pub async fn close(&self) {
        self.replicas.shutdown().await;
        self.transport.shutdown();
    }
}
