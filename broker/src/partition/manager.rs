//! The partitions this node hosts: opened at startup, created and deleted as the metadata image
//! changes, flushed at shutdown, trimmed by retention.
//!
//! A partition lives in `{log dir}/{topic}-{partition}` (Kafka's layout) with a
//! `partition.metadata` file naming the topic id, so that a directory left behind by a deleted
//! topic is never mistaken for a new topic of the same name. Deletion renames the directory to
//! `...-delete` first (atomic), then removes it; leftovers are removed at startup.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;
use shoal_storage::{Clock, FileSystem, FlushPolicy, LogConfig};
use tracing::{error, info, warn};
use uuid::Uuid;

use super::handle::{PartitionError, PartitionHandle, PartitionLookup, TopicPartition};
use super::local::LocalPartition;
use crate::admin::PartitionSync;
use crate::cluster::raft_partition::RaftPartition;
use crate::config::{BrokerConfig, ConfigView, FlushMode, TopicLogConfig};
use crate::metadata::meta_properties::base64_url;
use crate::metadata::{MetadataImage, TopicImage};
use shoal_replication::{PartitionId, PartitionSpec, ReplicaManager};

impl PartitionLookup for PartitionManager {
    fn get(
        &self,
        topic_id: &Uuid,
        partition: i32,
    ) -> Result<Arc<dyn PartitionHandle>, PartitionError> {
        PartitionManager::get(self, topic_id, partition)
    }
}

/// Directory of the metadata log inside the first log directory (Kafka's name).
pub const METADATA_DIR: &str = "__cluster_metadata-0";
const PARTITION_METADATA: &str = "partition.metadata";
const DELETE_SUFFIX: &str = "-delete";

type Key = (Uuid, i32);

/// A hosted partition: on local storage (single node) or a Raft group (cluster).
#[derive(Debug, Clone)]
enum HostedPartition {
    Local(Arc<LocalPartition>),
    Raft(Arc<RaftPartition>),
}

impl HostedPartition {
    fn handle(&self) -> Arc<dyn PartitionHandle> {
        match self {
            HostedPartition::Local(p) => p.clone(),
            HostedPartition::Raft(p) => p.clone(),
        }
    }

    fn topic_partition(&self) -> &TopicPartition {
        match self {
            HostedPartition::Local(p) => p.topic_partition(),
            HostedPartition::Raft(p) => p.topic_partition(),
        }
    }

    /// Applies a changed topic configuration to the open log (Kafka's
    /// `LogManager.updateTopicConfig`): a quick in-memory change under the log's lock.
    fn set_log_config(&self, config: LogConfig) -> Result<(), PartitionError> {
        match self {
            HostedPartition::Local(p) => p.set_log_config(config),
            HostedPartition::Raft(p) => p
                .replica()
                .set_log_config(config)
                .map_err(super::local::storage_error),
        }
    }

    /// One compaction pass if one is due. Blocking.
    fn clean(
        &self,
        now_ms: i64,
        limits: shoal_storage::CleanerLimits,
    ) -> Result<Option<shoal_storage::CleanStats>, PartitionError> {
        match self {
            HostedPartition::Local(p) => p.clean(now_ms, limits),
            HostedPartition::Raft(p) => p
                .replica()
                .clean(now_ms, limits)
                .map_err(super::local::storage_error),
        }
    }

    /// Forgets producers idle for `expiration_ms` (`producer.id.expiration.ms`). Blocking.
    fn remove_expired_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        match self {
            HostedPartition::Local(p) => p.remove_expired_producers(now_ms, expiration_ms),
            HostedPartition::Raft(p) => p.replica().remove_expired_producers(now_ms, expiration_ms),
        }
    }

    /// Where the log lives and how large it is (DescribeLogDirs). Blocking.
    fn summary(&self) -> HostedLog {
        let (dir, size_bytes, log_end, high_watermark) = match self {
            HostedPartition::Local(p) => {
                let offsets = p.offsets();
                (
                    p.dir().to_path_buf(),
                    p.size_bytes(),
                    offsets.log_end,
                    offsets.high_watermark,
                )
            }
            HostedPartition::Raft(p) => {
                let replica = p.replica();
                let high_watermark = replica.high_watermark();
                let log = replica.log();
                (
                    log.dir().to_path_buf(),
                    log.size_bytes(),
                    log.log_end_offset(),
                    high_watermark,
                )
            }
        };
        HostedLog {
            topic_partition: self.topic_partition().clone(),
            dir,
            size_bytes,
            log_end,
            high_watermark,
        }
    }
}

/// One hosted partition's log, as DescribeLogDirs reports it.
#[derive(Debug, Clone)]
pub struct HostedLog {
    pub topic_partition: TopicPartition,
    /// The partition's directory (inside one of `log.dirs`).
    pub dir: PathBuf,
    pub size_bytes: u64,
    pub log_end: i64,
    pub high_watermark: i64,
}

#[derive(Debug)]
struct Hosted {
    partition: HostedPartition,
    /// The configuration most recently asked for (the log keeps the one it was opened with).
    wanted: LogConfig,
}

/// Hosts this node's partitions.
#[derive(Debug)]
pub struct PartitionManager {
    config: Arc<BrokerConfig>,
    fs: Arc<dyn FileSystem>,
    clock: Arc<dyn Clock>,
    hosted: RwLock<HashMap<Key, Hosted>>,
    failed: RwLock<HashMap<Key, String>>,
    /// Partitions the cleaner failed on: skipped until the broker restarts (Kafka marks them
    /// uncleanable), so one bad segment does not fail every pass.
    uncleanable: RwLock<std::collections::HashSet<Key>>,
    reconcile_lock: tokio::sync::Mutex<()>,
    /// Cluster mode: partitions are Raft groups of this node's replica manager.
    replication: Option<Replication>,
}

/// What cluster mode needs to host replicated partitions.
#[derive(Debug, Clone)]
pub struct Replication {
    /// This node's Raft groups.
    pub replicas: Arc<ReplicaManager>,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: i64,
}

impl PartitionManager {
    /// A manager with nothing open yet.
    pub fn new(config: Arc<BrokerConfig>, fs: Arc<dyn FileSystem>, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            fs,
            clock,
            hosted: RwLock::new(HashMap::new()),
            failed: RwLock::new(HashMap::new()),
            uncleanable: RwLock::new(std::collections::HashSet::new()),
            reconcile_lock: tokio::sync::Mutex::new(()),
            replication: None,
        }
    }

    /// A manager whose partitions are Raft groups of `replication` (cluster mode).
    pub fn replicated(
        config: Arc<BrokerConfig>,
        fs: Arc<dyn FileSystem>,
        clock: Arc<dyn Clock>,
        replication: Replication,
    ) -> Self {
        Self {
            replication: Some(replication),
            ..Self::new(config, fs, clock)
        }
    }

    /// The replicated partitions this node hosts (cluster mode), by topic id and index.
    pub fn raft_partitions(&self) -> Vec<Arc<RaftPartition>> {
        read(&self.hosted)
            .values()
            .filter_map(|h| match &h.partition {
                HostedPartition::Raft(p) => Some(p.clone()),
                HostedPartition::Local(_) => None,
            })
            .collect()
    }

    /// The partition, if this node hosts it. A partition whose log could not be opened is a
    /// storage error.
    pub fn get(
        &self,
        topic_id: &Uuid,
        partition: i32,
    ) -> Result<Arc<dyn PartitionHandle>, PartitionError> {
        let key = (*topic_id, partition);
        if let Some(hosted) = read(&self.hosted).get(&key) {
            return Ok(hosted.partition.handle());
        }
        match read(&self.failed).get(&key) {
            Some(reason) => Err(PartitionError::Storage(reason.clone())),
            None => Err(PartitionError::NotLeaderOrFollower),
        }
    }

    /// Every open partition's log: where it is, its size and offsets. Blocking (takes each
    /// log's lock briefly).
    pub fn hosted_logs(&self) -> Vec<HostedLog> {
        let hosted: Vec<HostedPartition> = read(&self.hosted)
            .values()
            .map(|h| h.partition.clone())
            .collect();
        hosted.iter().map(HostedPartition::summary).collect()
    }

    /// How many partitions are open.
    pub fn len(&self) -> usize {
        read(&self.hosted).len()
    }

    /// Whether no partition is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn log_config(&self, image: &MetadataImage, topic: &TopicImage) -> LogConfig {
        let view = ConfigView {
            statics: &self.config.statics,
            dynamic: image.dynamic_configs(),
            node_id: self.config.node_id,
        };
        to_log_config(
            &view.topic_log_config(&topic.configs),
            self.config.flush,
            self.config.socket_request_max_bytes,
        )
    }

    /// Removes directories of deleted topics and interrupted deletions, then opens every hosted
    /// partition of `image`.
    pub async fn startup(&self, image: Arc<MetadataImage>) {
        for dir in self.config.log_dirs.clone() {
            let image = image.clone();
            let result = tokio::task::spawn_blocking(move || clean_log_dir(&dir, &image)).await;
            if let Ok(Err(e)) | Err(e) = result.map_err(|e| e.to_string()) {
                error!("cleaning log directory: {e}");
            }
        }
        self.reconcile(image).await;
    }

    /// Opens partitions the image assigns to this node and deletes those it no longer has.
    pub async fn reconcile(&self, image: Arc<MetadataImage>) {
        let _guard = self.reconcile_lock.lock().await;
        let node = self.config.node_id;
        let mut wanted: HashMap<Key, (TopicPartition, LogConfig, i32, Vec<i32>)> = HashMap::new();
        for topic in image.topics() {
            let config = self.log_config(&image, topic);
            for (index, state) in topic.partitions.iter().enumerate() {
                if state.replicas.contains(&node) {
                    let tp = TopicPartition {
                        topic_id: topic.id,
                        topic: topic.name.clone(),
                        partition: index as i32,
                    };
                    wanted.insert(
                        (topic.id, index as i32),
                        (
                            tp,
                            config.clone(),
                            state.leader_epoch,
                            state.replicas.clone(),
                        ),
                    );
                }
            }
        }

        let stale: Vec<(Key, HostedPartition)> = {
            let mut hosted = write(&self.hosted);
            let keys: Vec<Key> = hosted
                .keys()
                .filter(|k| !wanted.contains_key(k))
                .copied()
                .collect();
            keys.into_iter()
                .filter_map(|k| hosted.remove(&k).map(|h| (k, h.partition)))
                .collect()
        };
        write(&self.failed).retain(|k, _| wanted.contains_key(k));
        write(&self.uncleanable).retain(|k| wanted.contains_key(k));
        for (_, partition) in stale {
            let tp = partition.handle().topic_partition().clone();
            let result = match partition {
                HostedPartition::Local(partition) => {
                    tokio::task::spawn_blocking(move || delete_partition(&partition)).await
                }
                HostedPartition::Raft(partition) => {
                    self.delete_raft_partition(&tp, &partition).await;
                    continue;
                }
            };
            match result {
                Ok(Ok(())) => info!(partition = %tp, "deleted partition"),
                Ok(Err(e)) => error!(partition = %tp, "deleting partition: {e}"),
                Err(e) => error!(partition = %tp, "deleting partition: {e}"),
            }
        }

        for (key, (tp, config, epoch, replicas)) in wanted {
            if let Some(hosted) = write(&self.hosted).get_mut(&key) {
                if hosted.wanted != config {
                    // Applied live (Kafka's `LogManager.updateTopicConfig`): a quick in-memory
                    // change under the log's lock.
                    match hosted.partition.set_log_config(config.clone()) {
                        Ok(()) => info!(partition = %tp, "applied the changed topic configuration"),
                        Err(e) => {
                            warn!(partition = %tp, "cannot apply the changed topic configuration: {e}")
                        }
                    }
                    hosted.wanted = config;
                }
                continue;
            }
            if read(&self.failed).contains_key(&key) {
                continue;
            }
            let dir = match self.find_or_place(&tp) {
                Ok(dir) => dir,
                Err(e) => {
                    error!(partition = %tp, "{e}");
                    write(&self.failed).insert(key, e.to_string());
                    continue;
                }
            };
            if let Some(replication) = &self.replication {
                let created = !dir.exists();
                // Exactly one replica of a new partition forms its group: the preferred one,
                // and only while no leader was ever reported (a replica whose disk was lost
                // later must not form a second, diverging group).
                let bootstrap = created && epoch == 0 && replicas.first() == Some(&node);
                let opened = self
                    .open_raft_partition(
                        replication,
                        &tp,
                        &dir,
                        config.clone(),
                        &replicas,
                        bootstrap,
                    )
                    .await;
                match opened {
                    Ok(partition) => {
                        write(&self.hosted).insert(
                            key,
                            Hosted {
                                partition: HostedPartition::Raft(partition),
                                wanted: config,
                            },
                        );
                    }
                    Err(e) => {
                        error!(partition = %tp, "cannot open replicated partition: {e}");
                        write(&self.failed).insert(key, e.to_string());
                    }
                }
                continue;
            }
            let (fs, clock, mode) = (self.fs.clone(), self.clock.clone(), self.config.flush);
            let (tp2, config2) = (tp.clone(), config.clone());
            let opened = tokio::task::spawn_blocking(move || {
                write_partition_metadata(&dir, tp2.topic_id)?;
                LocalPartition::open(tp2, &dir, config2, mode, epoch, fs, clock)
            })
            .await
            .unwrap_or_else(|e| Err(PartitionError::Storage(e.to_string())));
            match opened {
                Ok(partition) => {
                    write(&self.hosted).insert(
                        key,
                        Hosted {
                            partition: HostedPartition::Local(partition),
                            wanted: config,
                        },
                    );
                }
                Err(e) => {
                    error!(partition = %tp, "cannot open partition log: {e}");
                    write(&self.failed).insert(key, e.to_string());
                }
            }
        }
    }

    async fn open_raft_partition(
        &self,
        replication: &Replication,
        tp: &TopicPartition,
        dir: &Path,
        config: LogConfig,
        replicas: &[i32],
        bootstrap: bool,
    ) -> Result<Arc<RaftPartition>, String> {
        let id = PartitionId {
            topic_id: tp.topic_id,
            partition: tp.partition,
        };
        if let Some(replica) = replication.replicas.partition(&id) {
            return Ok(Arc::new(RaftPartition::new(
                tp.clone(),
                replica,
                replication.replica_lag_time_max_ms,
            )));
        }
        let (dir2, topic_id) = (dir.to_path_buf(), tp.topic_id);
        tokio::task::spawn_blocking(move || write_partition_metadata(&dir2, topic_id))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let spec = PartitionSpec {
            observer: None,
            id,
            dir: dir.to_path_buf(),
            log_config: config,
            replicas: replicas
                .iter()
                .filter_map(|r| u64::try_from(*r).ok())
                .collect(),
            bootstrap,
        };
        let replica = replication
            .replicas
            .open_partition(spec)
            .await
            .map_err(|e| e.to_string())?;
        info!(partition = %tp, bootstrap, "opened replicated partition");
        Ok(Arc::new(RaftPartition::new(
            tp.clone(),
            replica,
            replication.replica_lag_time_max_ms,
        )))
    }

    /// Stops this node's replica of a deleted partition and removes its directory.
    async fn delete_raft_partition(&self, tp: &TopicPartition, partition: &RaftPartition) {
        let Some(replication) = &self.replication else {
            return;
        };
        if let Err(e) = replication
            .replicas
            .close_partition(&partition.replica().id())
            .await
        {
            warn!(partition = %tp, "closing replicated partition: {e}");
        }
        let Ok(dir) = self.find_or_place(tp) else {
            return;
        };
        let result = tokio::task::spawn_blocking(move || remove_partition_dir(&dir)).await;
        match result {
            Ok(Ok(())) => info!(partition = %tp, "deleted partition"),
            Ok(Err(e)) => error!(partition = %tp, "deleting partition: {e}"),
            Err(e) => error!(partition = %tp, "deleting partition: {e}"),
        }
    }

    /// The partition's existing directory, or a new one in the log directory with the fewest
    /// partitions.
    fn find_or_place(&self, tp: &TopicPartition) -> Result<PathBuf, PartitionError> {
        let name = format!("{}-{}", tp.topic, tp.partition);
        let mut best: Option<(usize, &PathBuf)> = None;
        for dir in &self.config.log_dirs {
            let candidate = dir.join(&name);
            if candidate.is_dir() {
                return Ok(candidate);
            }
            let count = std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter(|e| e.path().is_dir())
                        .count()
                })
                .unwrap_or(usize::MAX);
            if best.is_none_or(|(c, _)| count < c) {
                best = Some((count, dir));
            }
        }
        best.map(|(_, dir)| dir.join(&name))
            .ok_or_else(|| PartitionError::Storage("no log directory configured".into()))
    }

    /// Runs retention on every partition.
    pub async fn retention_pass(&self) {
        let hosted: Vec<HostedPartition> = read(&self.hosted)
            .values()
            .map(|h| h.partition.clone())
            .collect();
        let now = self.clock.now_ms();
        let mut partitions = Vec::new();
        for partition in hosted {
            match partition {
                HostedPartition::Local(p) => partitions.push(p),
                HostedPartition::Raft(p) => match p.replica().enforce_retention(now).await {
                    Ok(Some(point)) => {
                        info!(partition = %p.topic_partition(), log_start_offset = point.next_offset, "retention released old segments");
                    }
                    Ok(None) => {}
                    Err(e) => warn!(partition = %p.topic_partition(), "retention failed: {e}"),
                },
            }
        }
        for partition in partitions {
            let p = partition.clone();
            match tokio::task::spawn_blocking(move || p.apply_retention(now)).await {
                Ok(Ok(Some(start))) => {
                    info!(partition = %partition.topic_partition(), log_start_offset = start, "retention deleted old segments");
                }
                Ok(Ok(None)) | Ok(Err(PartitionError::Closed)) => {}
                Ok(Err(e)) => {
                    warn!(partition = %partition.topic_partition(), "retention failed: {e}")
                }
                Err(e) => warn!("retention task failed: {e}"),
            }
        }
    }

    /// One cleaner pass: every compacted partition that is due is cleaned, at most `threads`
    /// at a time on the blocking pool, each with its share of the key-map memory. Returns how
    /// many partitions were cleaned.
    pub async fn cleaner_pass(&self, threads: usize, dedupe_buffer_bytes: usize) -> usize {
        let partitions: Vec<(Key, HostedPartition)> = {
            let uncleanable = read(&self.uncleanable);
            read(&self.hosted)
                .iter()
                .filter(|(k, h)| h.wanted.cleanup_policy.compact && !uncleanable.contains(k))
                .map(|(k, h)| (*k, h.partition.clone()))
                .collect()
        };
        let threads = threads.max(1);
        let limits = shoal_storage::CleanerLimits {
            max_map_bytes: (dedupe_buffer_bytes / threads).max(1 << 20),
        };
        let mut cleaned = 0;
        for chunk in partitions.chunks(threads) {
            let tasks: Vec<_> = chunk
                .iter()
                .map(|(_, p)| {
                    let p = p.clone();
                    let now = self.clock.now_ms();
                    tokio::task::spawn_blocking(move || p.clean(now, limits))
                })
                .collect();
            for (task, (key, partition)) in tasks.into_iter().zip(chunk) {
                match task.await {
                    Ok(Ok(Some(stats))) if stats.applied => {
                        cleaned += 1;
                        info!(
                            partition = %partition.topic_partition(),
                            segments = stats.segments_cleaned,
                            bytes_read = stats.bytes_read,
                            bytes_written = stats.bytes_written,
                            records_removed = stats.records_removed,
                            first_dirty_offset = stats.first_dirty_offset,
                            "log cleaner compacted segments"
                        );
                    }
                    Ok(Ok(_)) | Ok(Err(PartitionError::Closed)) => {}
                    Ok(Err(e)) => {
                        error!(partition = %partition.topic_partition(), "log cleaning failed; the partition is not cleaned again until the broker restarts: {e}");
                        write(&self.uncleanable).insert(*key);
                    }
                    Err(e) => warn!("log cleaner task failed: {e}"),
                }
            }
        }
        cleaned
    }

    /// Forgets idle idempotent producers on every partition (`producer.id.expiration.ms`).
    pub async fn remove_expired_producers(&self, now_ms: i64, expiration_ms: i64) {
        // Every replica of a replicated partition expires its own producers, as in Kafka.
        let partitions: Vec<HostedPartition> = read(&self.hosted)
            .values()
            .map(|h| h.partition.clone())
            .collect();
        let result = tokio::task::spawn_blocking(move || {
            partitions
                .iter()
                .map(|p| p.remove_expired_producers(now_ms, expiration_ms))
                .sum::<usize>()
        })
        .await;
        match result {
            Ok(0) => {}
            Ok(n) => info!(producers = n, "forgot idle producers"),
            Err(e) => warn!("producer expiration task failed: {e}"),
        }
    }

    /// Flushes and closes every partition (graceful shutdown).
    pub async fn shutdown(&self) {
        // Replicated partitions close with the replica manager.
        let partitions: Vec<Arc<LocalPartition>> = write(&self.hosted)
            .drain()
            .filter_map(|(_, h)| match h.partition {
                HostedPartition::Local(p) => Some(p),
                HostedPartition::Raft(_) => None,
            })
            .collect();
        let count = partitions.len();
        let result = tokio::task::spawn_blocking(move || {
            for partition in partitions {
                if let Err(e) = partition.close(true) {
                    error!(partition = %partition.topic_partition(), "final flush failed: {e}");
                }
            }
        })
        .await;
        if let Err(e) = result {
            error!("shutdown flush task failed: {e}");
        }
        info!(partitions = count, "flushed and closed every partition");
    }
}

impl PartitionSync for PartitionManager {
    fn sync(&self, image: Arc<MetadataImage>) -> BoxFuture<'_, ()> {
        Box::pin(self.reconcile(image))
    }
}

/// The storage configuration for a topic's effective configuration.
pub fn to_log_config(
    topic: &TopicLogConfig,
    mode: FlushMode,
    max_request_bytes: usize,
) -> LogConfig {
    let defaults = LogConfig::default();
    LogConfig {
        segment_bytes: u64::try_from(topic.segment_bytes).unwrap_or(defaults.segment_bytes),
        segment_ms: topic.segment_ms,
        retention_ms: topic.retention_ms,
        retention_bytes: topic.retention_bytes.max(-1),
        cleanup_policy: topic.cleanup_policy,
        delete_retention_ms: topic.delete_retention_ms.max(0),
        min_cleanable_dirty_ratio: topic.min_cleanable_dirty_ratio,
        min_compaction_lag_ms: topic
            .min_compaction_lag_ms
            .clamp(0, topic.max_compaction_lag_ms.max(1)),
        max_compaction_lag_ms: topic.max_compaction_lag_ms.max(1),
        // One produce request's batches for a partition form one entry; the frame limit bounds it.
        max_entry_bytes: (max_request_bytes as u64)
            .clamp(shoal_storage::BATCH_HEADER_LEN as u64, i32::MAX as u64),
        flush_policy: match mode {
            FlushMode::GroupCommit => FlushPolicy::GroupCommit,
            FlushMode::Interval { interval_ms } => FlushPolicy::IntervalMs(interval_ms.max(1)),
            FlushMode::Never => FlushPolicy::Never,
        },
        ..defaults
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_partition_metadata(dir: &Path, topic_id: Uuid) -> Result<(), PartitionError> {
    let io = |e: std::io::Error| PartitionError::Storage(format!("{}: {e}", dir.display()));
    let path = dir.join(PARTITION_METADATA);
    let expected = format!(
        "version: 0\ntopic_id: {}\n",
        base64_url(topic_id.as_bytes())
    );
    if std::fs::read_to_string(&path).is_ok_and(|text| text == expected) {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!("{PARTITION_METADATA}.tmp"));
    std::fs::write(&tmp, &expected).map_err(io)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    sync_dir(dir).map_err(io)?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent).map_err(io)?;
    }
    Ok(())
}

fn read_partition_metadata(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(PARTITION_METADATA)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .map(|id| id.trim().to_string())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Closes the partition, renames its directory aside and removes it.
fn delete_partition(partition: &LocalPartition) -> Result<(), PartitionError> {
    partition.close(false)?;
    remove_partition_dir(partition.dir())
}

/// Renames a partition directory aside and removes it.
fn remove_partition_dir(dir: &Path) -> Result<(), PartitionError> {
    let io = |e: std::io::Error| PartitionError::Storage(format!("{}: {e}", dir.display()));
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = parent.join(format!("{name}.{}{DELETE_SUFFIX}", Uuid::new_v4().simple()));
    std::fs::rename(dir, &aside).map_err(io)?;
    sync_dir(parent).map_err(io)?;
    std::fs::remove_dir_all(&aside).map_err(io)
}

/// Startup cleanup of one log directory: finishes interrupted deletions and removes partition
/// directories that the metadata no longer (or never) assigns.
fn clean_log_dir(dir: &Path, image: &MetadataImage) -> Result<(), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == METADATA_DIR {
            continue;
        }
        let remove = |why: &str| {
            warn!(dir = %path.display(), "removing partition directory: {why}");
            if let Err(e) = std::fs::remove_dir_all(&path) {
                error!(dir = %path.display(), "cannot remove: {e}");
            }
        };
        if name.ends_with(DELETE_SUFFIX) {
            remove("left over from an interrupted deletion");
            continue;
        }
        let Some((topic, partition)) = name.rsplit_once('-') else {
            warn!(dir = %path.display(), "ignoring a directory that is not a partition");
            continue;
        };
        let Ok(partition) = partition.parse::<usize>() else {
            warn!(dir = %path.display(), "ignoring a directory that is not a partition");
            continue;
        };
        let current = image
            .topic_by_name(topic)
            .filter(|t| partition < t.partitions.len())
            .map(|t| base64_url(t.id.as_bytes()));
        match (current, read_partition_metadata(&path)) {
            (Some(id), Some(on_disk)) if id == on_disk => {}
            (Some(_), Some(_)) => remove("it belongs to an earlier topic of the same name"),
            (Some(_), None) => remove("it was never initialised (no partition.metadata)"),
            (None, _) => remove("its topic was deleted"),
        }
    }
    Ok(())
}
