//! One Shoal node: the pieces handlers need, opened in order at startup and flushed at shutdown.
//!
//! Startup: lock every log directory, read or write `meta.properties` (cluster id, node id),
//! replay the metadata log and register this broker with its advertised endpoints, then remove
//! directories of deleted topics and open (recover) every hosted partition. Only then does the
//! server accept connections.
//!
//! In cluster mode ([`crate::cluster`]) the metadata comes from the controller quorum instead:
//! the node binds its controller listener, opens (or on the first start of a new cluster, with
//! the lowest voter, forms) the controller group, waits for the quorum to name the cluster,
//! checks or writes `meta.properties` with that id, registers, opens its partition replicas as
//! Raft groups and starts the cluster duties.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shoal_storage::{DirLock, FileSystem, RealFs};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::admin::TopicAdmin;
use crate::clock::Clock;
use crate::cluster::{ClusterRuntime, duties};
use crate::config::BrokerConfig;
use crate::config::ClusterConfig;
use crate::follower_fetching::FollowerFetching;
use crate::group::GroupCoordinator;
use crate::metadata::meta_properties::{self, MetaPropertiesError};
use crate::metadata::store::LocalMetadataStore;
use crate::metadata::{
    BrokerEndpoint, BrokerRegistration, MetadataCommand, MetadataError, MetadataStore,
};
use crate::partition::PartitionManager;
use crate::partition::manager::METADATA_DIR;
use crate::partition::manager::Replication;
use crate::producer_ids::ProducerIdManager;

/// Why the node cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A log directory cannot be created or locked.
    #[error("log directory {}: {source}", dir.display())]
    LogDir {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `meta.properties` is unreadable or belongs elsewhere.
    #[error(transparent)]
    MetaProperties(#[from] MetaPropertiesError),
    /// The metadata log cannot be replayed.
    #[error("metadata: {0}")]
    Metadata(#[from] MetadataError),
    /// A startup task panicked.
    #[error("startup task failed: {0}")]
    Task(String),
    /// The log directories belong to a cluster node, but no other voters are configured.
    #[error(
        "{} holds a cluster node's metadata: start this node with its cluster's controller.quorum.voters",
        .0.display()
    )]
    ClusterData(PathBuf),
    /// Cluster mode could not start.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// The log directories belong to another cluster than the quorum's.
    #[error(
        "the log directories belong to cluster {on_disk}, but the controller quorum is cluster {quorum}"
    )]
    WrongCluster {
        /// From meta.properties.
        on_disk: String,
        /// From the metadata.
        quorum: String,
    },
}

/// Everything a request handler may reach, owned by the node.
#[derive(Debug)]
pub struct Node {
    /// Static configuration.
    pub config: Arc<BrokerConfig>,
    /// Cluster metadata.
    pub metadata: Arc<dyn MetadataStore>,
    /// Hosted partitions.
    pub partitions: Arc<PartitionManager>,
    /// Topic and config administration.
    pub admin: TopicAdmin,
    /// Group coordination and committed offsets.
    pub groups: Arc<GroupCoordinator>,
    /// Producer ids for InitProducerId.
    pub producer_ids: ProducerIdManager,
    /// Broker time.
    pub clock: Arc<dyn Clock>,
    /// Fires when the node shuts down (parked fetches answer at once).
    pub shutdown: CancellationToken,
    /// KIP-392: replica selection, client racks, consumer-fetch metrics.
    pub follower_fetching: Arc<FollowerFetching>,
    /// Cluster mode: the Raft groups, transport and replicated metadata; `None` on a single node.
    pub cluster: Option<Arc<ClusterRuntime>>,
    _locks: Vec<Box<dyn DirLock>>,
}

impl Node {
    /// Opens the node's data and registers it with `endpoints` (advertised, with real ports).
    pub async fn open(
        config: Arc<BrokerConfig>,
        endpoints: Vec<BrokerEndpoint>,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Node>, StartupError> {
        let fs: Arc<dyn FileSystem> = RealFs::shared();
        let dirs = config.log_dirs.clone();
        let node_id = config.node_id;
        if let Some(cluster) = config.cluster.clone() {
            return Self::open_cluster(config, cluster, endpoints, clock, shutdown, fs).await;
        }
        let fs2 = fs.clone();
        let (locks, cluster_id) =
            tokio::task::spawn_blocking(move || -> Result<_, StartupError> {
                let locks = lock_dirs(&dirs, fs2.as_ref())?;
                let cluster_id =
                    meta_properties::ensure(&dirs, node_id, meta_properties::random_cluster_id)?;
                Ok((locks, cluster_id))
            })
            .await
            .map_err(|e| StartupError::Task(e.to_string()))??;

        let registration = MetadataCommand::RegisterBroker(BrokerRegistration {
            node_id,
            rack: config.rack.clone(),
            endpoints,
            fenced: false,
        });
        let metadata_dir = config.log_dirs[0].join(METADATA_DIR);
        // A cluster node's controller group lives here; opened as a single node, its partition
        // directories would look deleted and be removed.
        if metadata_dir.join("raft-vote").exists() {
            return Err(StartupError::ClusterData(metadata_dir));
        }
        let cluster = cluster_id.clone();
        let (store, report) = tokio::task::spawn_blocking(move || {
            LocalMetadataStore::open(&metadata_dir, &cluster, registration)
        })
        .await
        .map_err(|e| StartupError::Task(e.to_string()))??;
        info!(
            cluster_id = %cluster_id,
            node_id,
            replayed = report.replayed,
            truncated_bytes = report.truncated_bytes,
            compacted = report.compacted,
            "metadata loaded"
        );
        let metadata: Arc<dyn MetadataStore> = Arc::new(store);
        let partitions = Arc::new(PartitionManager::new(config.clone(), fs, clock.clone()));
        partitions.startup(metadata.image()).await;
        info!(
            topics = metadata.image().topics().count(),
            partitions = partitions.len(),
            "partitions opened"
        );
        // Single node: this broker leads every partition it hosts, so it coordinates the groups
        // of every __consumer_offsets partition, loaded before they are served.
        let node = Self::assemble(config, metadata, partitions, clock, shutdown, None, locks);
        tokio::spawn(producer_expiration_loop(node.clone()));
        Ok(node)
    }

    /// Cluster mode: joins (or forms) the cluster through the controller quorum, registers,
    /// and hosts this node's replicas as Raft groups.
    async fn open_cluster(
        config: Arc<BrokerConfig>,
        cluster_config: ClusterConfig,
        endpoints: Vec<BrokerEndpoint>,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
        fs: Arc<dyn FileSystem>,
    ) -> Result<Arc<Node>, StartupError> {
        let dirs = config.log_dirs.clone();
        let node_id = config.node_id;
        let fs2 = fs.clone();
        let dirs2 = dirs.clone();
        let (locks, on_disk) = tokio::task::spawn_blocking(move || -> Result<_, StartupError> {
            let locks = lock_dirs(&dirs2, fs2.as_ref())?;
            // The cluster id this node already belongs to, if any (without writing one).
            let mut on_disk = None;
            for dir in &dirs2 {
                if dir.join("meta.properties").exists() {
                    on_disk = Some(meta_properties::ensure(
                        std::slice::from_ref(dir),
                        node_id,
                        String::new,
                    )?);
                    break;
                }
            }
            Ok((locks, on_disk))
        })
        .await
        .map_err(|e| StartupError::Task(e.to_string()))??;

        let candidate = on_disk
            .clone()
            .unwrap_or_else(meta_properties::random_cluster_id);
        let runtime = ClusterRuntime::start(
            &config,
            &cluster_config,
            fs.clone(),
            clock.clone(),
            candidate,
            &shutdown,
        )
        .await?;
        let quorum_id = runtime.store.image().cluster_id().to_string();
        if let Some(on_disk) = on_disk
            && on_disk != quorum_id
        {
            return Err(StartupError::WrongCluster {
                on_disk,
                quorum: quorum_id,
            });
        }
        let quorum_id2 = quorum_id.clone();
        tokio::task::spawn_blocking(move || meta_properties::ensure(&dirs, node_id, || quorum_id2))
            .await
            .map_err(|e| StartupError::Task(e.to_string()))??;

        runtime
            .apply_retrying(
                MetadataCommand::RegisterBroker(BrokerRegistration {
                    node_id,
                    rack: config.rack.clone(),
                    endpoints,
                    fenced: false,
                }),
                &shutdown,
            )
            .await?;
        let metadata: Arc<dyn MetadataStore> = runtime.store.clone();
        info!(
            cluster_id = %quorum_id,
            node_id,
            brokers = metadata.image().brokers().len(),
            "joined the cluster"
        );
        let partitions = Arc::new(PartitionManager::replicated(
            config.clone(),
            fs,
            clock.clone(),
            Replication {
                replicas: runtime.replicas.clone(),
                replica_lag_time_max_ms: cluster_config.replica_lag_time_max_ms,
            },
        ));
        partitions.startup(metadata.image()).await;
        info!(
            topics = metadata.image().topics().count(),
            partitions = partitions.len(),
            "partitions opened"
        );
        // Coordinators follow the metadata's leaders of __consumer_offsets partitions.
        let node = Self::assemble(
            config,
            metadata,
            partitions,
            clock,
            shutdown,
            Some(runtime.clone()),
            locks,
        );
        tokio::spawn(duties::reconcile_partitions(node.clone()));
        tokio::spawn(duties::heartbeats(node.clone(), runtime.clone()));
        tokio::spawn(duties::fence_silent_brokers(node.clone(), runtime.clone()));
        tokio::spawn(duties::report_leadership(node.clone(), runtime.clone()));
        if cluster_config.auto_leader_rebalance {
            tokio::spawn(duties::rebalance_leaders(node.clone(), runtime.clone()));
        }
        Ok(node)
    }

    /// Before connections close: in cluster mode with `controlled.shutdown.enable`, hands this
    /// node's leaderships to other replicas (bounded by `deadline`) so that clients move on.
    pub async fn prepare_shutdown(&self, deadline: Duration) {
        if let Some(cluster) = &self.cluster
            && cluster.config.controlled_shutdown
        {
            duties::controlled_shutdown(self, cluster, deadline).await;
        }
    }

    /// Stops the group coordinator (its last answers go out), then flushes and closes every
    /// partition.
    pub async fn close(&self) {
        self.groups.shutdown().await;
        self.partitions.shutdown().await;
        if let Some(cluster) = &self.cluster {
            cluster.close().await;
        }
    }
}

impl Node {
    /// What both modes build on their metadata store and partition manager: the topic admin,
    /// the group coordinator (following the leaders of `__consumer_offsets` partitions in the
    /// metadata), producer ids, follower fetching; and the background retention and cleaner.
    fn assemble(
        config: Arc<BrokerConfig>,
        metadata: Arc<dyn MetadataStore>,
        partitions: Arc<PartitionManager>,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
        cluster: Option<Arc<ClusterRuntime>>,
        locks: Vec<Box<dyn DirLock>>,
    ) -> Arc<Node> {
        let node_id = config.node_id;
        let admin = TopicAdmin::new(metadata.clone(), partitions.clone(), config.clone());
        let groups = Arc::new(GroupCoordinator::new(
            config.groups.clone(),
            node_id,
            admin.clone(),
            partitions.clone(),
            clock.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(groups.clone().run_leadership(metadata.subscribe()));
        let producer_ids = ProducerIdManager::new(node_id, metadata.clone());
        let follower_fetching = Arc::new(FollowerFetching::new(&config));
        let node = Arc::new(Node {
            config,
            metadata,
            partitions,
            admin,
            groups,
            producer_ids,
            clock,
            shutdown,
            follower_fetching,
            cluster,
            _locks: locks,
        });
        tokio::spawn(retention_loop(node.clone()));
        if node.config.cleaner.enabled && node.config.cleaner.threads > 0 {
            tokio::spawn(cleaner_loop(node.clone()));
        }
        node
    }
}

fn lock_dirs(dirs: &[PathBuf], fs: &dyn FileSystem) -> Result<Vec<Box<dyn DirLock>>, StartupError> {
    let mut locks = Vec::new();
    for dir in dirs {
        let err = |source| StartupError::LogDir {
            dir: dir.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let lock = fs.lock_dir(dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                err(std::io::Error::new(e.kind(), "in use by another process"))
            } else {
                err(e)
            }
        })?;
        locks.push(lock);
    }
    Ok(locks)
}

async fn producer_expiration_loop(node: Arc<Node>) {
    let period = Duration::from_millis(node.config.producer_id_expiration_check_interval_ms.max(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            () = node.shutdown.cancelled() => return,
            _ = ticks.tick() => {
                let now = node.clock.now_ms();
                node.partitions
                    .remove_expired_producers(now, node.config.producer_id_expiration_ms)
                    .await;
            }
        }
    }
}

/// The log cleaner: passes over the compacted partitions, pausing `log.cleaner.backoff.ms`
/// after a pass that found nothing to do (Kafka's `CleanerThread`).
async fn cleaner_loop(node: Arc<Node>) {
    let settings = node.config.cleaner;
    let backoff = Duration::from_millis(settings.backoff_ms.max(1));
    loop {
        let cleaned = node
            .partitions
            .cleaner_pass(settings.threads, settings.dedupe_buffer_bytes)
            .await;
        let pause = if cleaned > 0 {
            Duration::from_millis(1)
        } else {
            backoff
        };
        tokio::select! {
            () = node.shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

async fn retention_loop(node: Arc<Node>) {
    let period = Duration::from_millis(node.config.retention_check_interval_ms.max(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            () = node.shutdown.cancelled() => return,
            _ = ticks.tick() => node.partitions.retention_pass().await,
        }
    }
}
