//! The node's group coordinator: which `__consumer_offsets` partitions this broker serves, and
//! the routing of group requests to them.
//!
//! Leadership is the seam to replication: [`GroupCoordinator::elect`] starts serving a partition
//! this broker now leads (the shard loads the partition through its `PartitionHandle`, then
//! takes requests) and [`GroupCoordinator::resign`] stops (parked requests get
//! `NOT_COORDINATOR`). On a single node, [`GroupCoordinator::run_leadership`] elects every
//! partition of the topic that the node leads, at startup and whenever the topic appears, and
//! reloads a shard that stopped after a failure; a replicated broker calls `elect`/`resign`
//! from its leadership changes instead.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use shoal_protocol::error_code::ResponseError;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::config::GroupConfig;
use super::runtime::{Command, ShardHandle, ShardTask};
use super::shard::GroupShard;
use crate::admin::{NewTopic, TopicAdmin};
use crate::clock::Clock;
use crate::metadata::MetadataImage;
use crate::partition::{PartitionHandle, PartitionManager, Role};

/// Kafka's `Topic.GROUP_METADATA_TOPIC_NAME`.
pub const GROUP_METADATA_TOPIC: &str = "__consumer_offsets";

/// How often the single-node leadership loop looks again while a partition it should serve is
/// not open yet (or a shard stopped after a failure).
const LEADERSHIP_RETRY: Duration = Duration::from_millis(50);

/// Java's `String.hashCode` (over UTF-16 code units).
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// Kafka's `partitionFor`: `Utils.abs(groupId.hashCode()) % partitions` (where
/// `Utils.abs(Integer.MIN_VALUE)` is 0).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// Where a FindCoordinator key's coordinator is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorLocation {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// See the module documentation.
#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    node_id: i32,
    admin: TopicAdmin,
    partitions: Arc<PartitionManager>,
    clock: Arc<dyn Clock>,
    shards: RwLock<HashMap<i32, Arc<ShardHandle>>>,
    creating_topic: AtomicBool,
    shutdown: CancellationToken,
}

impl GroupCoordinator {
    pub fn new(
        config: GroupConfig,
        node_id: i32,
        admin: TopicAdmin,
        partitions: Arc<PartitionManager>,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> Self {
        GroupCoordinator {
            config,
            node_id,
            admin,
            partitions,
            clock,
            shards: RwLock::new(HashMap::new()),
            creating_topic: AtomicBool::new(false),
            shutdown,
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.admin.metadata().image()
    }

    /// Partitions of `__consumer_offsets`: the existing topic's count, else the configured one.
    pub fn num_partitions(&self, image: &MetadataImage) -> i32 {
        image
            .topic_by_name(GROUP_METADATA_TOPIC)
            .map_or(self.config.offsets_topic_partitions, |t| {
                t.partitions.len() as i32
            })
    }

    /// The partition that holds `group_id`.
    pub fn partition_of(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.num_partitions(&self.image()))
    }

    // ------------------------------------------------------------------------------------
    // Leadership

    /// Starts serving partition `index` of `__consumer_offsets`, which this broker now leads
    /// through `partition` (Kafka's `onElection`). Replaces a shard of an older epoch.
    pub fn elect(&self, index: i32, partition: Arc<dyn PartitionHandle>) {
        let shard = GroupShard::with_random_ids(self.config.clone());
        let (task, handle) = ShardTask::new(shard, partition, self.clock.clone(), index);
        let previous = write(&self.shards).insert(index, handle);
        if let Some(previous) = previous {
            previous.stop.cancel();
        }
        info!(partition = index, "loading __consumer_offsets partition");
        tokio::spawn(task.run());
    }

    /// Stops serving partition `index` (Kafka's `onResignation`).
    pub fn resign(&self, index: i32) {
        if let Some(handle) = write(&self.shards).remove(&index) {
            handle.stop.cancel();
        }
    }

    /// Stops every shard and waits (bounded) for their last answers to go out.
    pub async fn shutdown(&self) {
        let handles: Vec<Arc<ShardHandle>> = write(&self.shards).drain().map(|(_, h)| h).collect();
        for h in &handles {
            h.stop.cancel();
        }
        for h in handles {
            let _ = tokio::time::timeout(Duration::from_secs(5), h.stopped.cancelled()).await;
        }
    }

    /// Single node: serves every partition of the topic this node leads and hosts, from startup
    /// until shutdown; tombstones the offsets of deleted topics.
    pub async fn run_leadership(self: Arc<Self>, mut images: watch::Receiver<Arc<MetadataImage>>) {
        let mut previous_topics: BTreeMap<String, i32> = BTreeMap::new();
        let mut first = true;
        loop {
            let image = images.borrow_and_update().clone();
            let settled = self.reconcile_leadership(&image);
            let topics: BTreeMap<String, i32> = image
                .topics()
                .map(|t| (t.name.clone(), t.partitions.len() as i32))
                .collect();
            if !first {
                self.on_topics_changed(&previous_topics, &topics).await;
            }
            first = false;
            previous_topics = topics;
            let retry = async {
                if settled {
                    std::future::pending::<()>().await
                } else {
                    tokio::time::sleep(LEADERSHIP_RETRY).await
                }
            };
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                changed = images.changed() => if changed.is_err() { return },
                () = retry => {}
            }
        }
    }

    /// Elects and resigns partitions to match `image`; false while something could not be
    /// settled yet (a partition not open, a shard that stopped).
    fn reconcile_leadership(&self, image: &MetadataImage) -> bool {
        let mut settled = true;
        let mut wanted: HashMap<i32, Arc<dyn PartitionHandle>> = HashMap::new();
        if let Some(topic) = image.topic_by_name(GROUP_METADATA_TOPIC) {
            for (index, state) in topic.partitions.iter().enumerate() {
                if state.leader != self.node_id {
                    continue;
                }
                match self.partitions.get(&topic.id, index as i32) {
                    Ok(p) if p.role() == Role::Leader => {
                        wanted.insert(index as i32, p);
                    }
                    _ => settled = false,
                }
            }
        }
        let current: Vec<(i32, Arc<ShardHandle>)> = read(&self.shards)
            .iter()
            .map(|(i, h)| (*i, h.clone()))
            .collect();
        for (index, handle) in &current {
            match wanted.get(index) {
                None => self.resign(*index),
                Some(p) if p.leader_epoch() != handle.leader_epoch => self.resign(*index),
                Some(_) if handle.stopped.is_cancelled() => {
                    // Stopped after a failure: load it again from the log.
                    self.resign(*index);
                    settled = false;
                }
                Some(_) => {}
            }
        }
        for (index, partition) in wanted {
            if !read(&self.shards).contains_key(&index) {
                self.elect(index, partition);
            }
        }
        settled
    }

    async fn on_topics_changed(
        &self,
        before: &BTreeMap<String, i32>,
        after: &BTreeMap<String, i32>,
    ) {
        let mut deleted: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        for (name, count) in before {
            let remaining = after.get(name).copied().unwrap_or(0);
            if remaining < *count {
                deleted.insert(name.clone(), (remaining..*count).collect());
            }
        }
        if deleted.is_empty() {
            return;
        }
        let handles: Vec<Arc<ShardHandle>> = read(&self.shards).values().cloned().collect();
        for h in handles {
            if h.loaded.load(Ordering::SeqCst) {
                let _ = h
                    .commands
                    .send(Command::PartitionsDeleted {
                        deleted: deleted.clone(),
                    })
                    .await;
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // FindCoordinator

    /// The coordinator of `group_id` as clients reach it on `listener` (Kafka's
    /// `getCoordinator` for the GROUP key type). A missing topic is created in the background
    /// and the answer is `COORDINATOR_NOT_AVAILABLE` meanwhile, as Kafka does.
    pub fn find_coordinator(
        self: &Arc<Self>,
        group_id: &str,
        listener: &str,
    ) -> Result<CoordinatorLocation, ResponseError> {
        let image = self.image();
        let Some(topic) = image.topic_by_name(GROUP_METADATA_TOPIC) else {
            self.create_topic_in_background(&image);
            return Err(ResponseError::CoordinatorNotAvailable);
        };
        let index = partition_for(group_id, topic.partitions.len() as i32);
        let leader = topic
            .partitions
            .get(index as usize)
            .map(|p| p.leader)
            .filter(|l| *l >= 0)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        let broker = image
            .brokers()
            .get(&leader)
            .filter(|b| !b.fenced)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        let endpoint = broker
            .endpoint(listener)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        Ok(CoordinatorLocation {
            node_id: leader,
            host: endpoint.host.clone(),
            port: i32::from(endpoint.port),
        })
    }

    fn create_topic_in_background(self: &Arc<Self>, image: &MetadataImage) {
        if self.creating_topic.swap(true, Ordering::SeqCst) {
            return;
        }
        let live = image
            .brokers()
            .values()
            .filter(|b| !b.fenced)
            .count()
            .max(1);
        let wanted_rf = self.config.offsets_topic_replication_factor;
        let rf = i16::try_from(live)
            .unwrap_or(i16::MAX)
            .min(wanted_rf)
            .max(1);
        if rf < wanted_rf {
            warn!(
                "creating {GROUP_METADATA_TOPIC} with replication factor {rf}: offsets.topic.replication.factor={wanted_rf} but only {live} broker(s) are live"
            );
        }
        let topic = NewTopic {
            name: GROUP_METADATA_TOPIC.to_string(),
            num_partitions: self.config.offsets_topic_partitions,
            replication_factor: rf,
            assignments: vec![],
            configs: vec![
                (
                    "segment.bytes".to_string(),
                    Some(self.config.offsets_topic_segment_bytes.to_string()),
                ),
                // As Kafka creates it: compacted (only the latest record of every group and
                // committed offset is kept, nothing is deleted by age or size).
                ("cleanup.policy".to_string(), Some("compact".to_string())),
                ("compression.type".to_string(), Some("producer".to_string())),
            ],
        };
        let this = self.clone();
        tokio::spawn(async move {
            let result = this.admin.create_topics(&[topic], false).await;
            match result.into_iter().next() {
                Some(Ok(created)) => info!(
                    partitions = created.num_partitions,
                    replication_factor = created.replication_factor,
                    "created {GROUP_METADATA_TOPIC}"
                ),
                Some(Err(e)) if e.error == ResponseError::TopicAlreadyExists => {}
                Some(Err(e)) => warn!(
                    "cannot create {GROUP_METADATA_TOPIC}: {:?} {:?}",
                    e.error, e.message
                ),
                None => {}
            }
            this.creating_topic.store(false, Ordering::SeqCst);
        });
    }

    // ------------------------------------------------------------------------------------
    // Routing

    /// The shard serving partition `index`, or why there is none.
    fn shard(&self, index: i32) -> Result<Arc<ShardHandle>, ResponseError> {
        let handle = read(&self.shards)
            .get(&index)
            .cloned()
            .ok_or(ResponseError::NotCoordinator)?;
        if handle.stopped.is_cancelled() {
            return Err(ResponseError::NotCoordinator);
        }
        if !handle.loaded.load(Ordering::SeqCst) {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        Ok(handle)
    }

    /// The shard of `group_id`. A partition this broker leads but has not started loading yet
    /// (it was just created or elected) answers `COORDINATOR_LOAD_IN_PROGRESS`, so clients wait
    /// instead of looking for another coordinator.
    pub fn shard_for(&self, group_id: &str) -> Result<Arc<ShardHandle>, ResponseError> {
        let image = self.image();
        let Some(topic) = image.topic_by_name(GROUP_METADATA_TOPIC) else {
            return Err(ResponseError::NotCoordinator);
        };
        let index = partition_for(group_id, topic.partitions.len() as i32);
        match self.shard(index) {
            Err(ResponseError::NotCoordinator)
                if topic
                    .partitions
                    .get(index as usize)
                    .is_some_and(|p| p.leader == self.node_id)
                    && !self.shutdown.is_cancelled() =>
            {
                Err(ResponseError::CoordinatorLoadInProgress)
            }
            other => other,
        }
    }

    /// Every shard this broker serves (ListGroups), or the first reason one cannot answer.
    pub fn all_shards(&self) -> Result<Vec<Arc<ShardHandle>>, ResponseError> {
        let handles: Vec<Arc<ShardHandle>> = read(&self.shards).values().cloned().collect();
        let mut ready = Vec::with_capacity(handles.len());
        for h in handles {
            if h.stopped.is_cancelled() {
                continue;
            }
            if !h.loaded.load(Ordering::SeqCst) {
                return Err(ResponseError::CoordinatorLoadInProgress);
            }
            ready.push(h);
        }
        Ok(ready)
    }

    /// Sends a command to `shard` (waiting for queue space) and returns where its answer
    /// comes; a shard that is gone answers `NOT_COORDINATOR`.
    pub async fn submit<T>(
        shard: &ShardHandle,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<oneshot::Receiver<T>, ResponseError> {
        let (tx, rx) = oneshot::channel();
        shard
            .commands
            .send(make(tx))
            .await
            .map_err(|_| ResponseError::NotCoordinator)?;
        Ok(rx)
    }

    /// The node's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_partitions_match_kafkas_hash() {
        // Expected values computed with Java's String.hashCode and Kafka's Utils.abs.
        let cases = [
            ("my-group", -1_906_497_762, 12),
            ("console-consumer-1", 35_782_224, 24),
            // Hashes to Integer.MIN_VALUE, which Utils.abs maps to 0.
            ("polygenelubricants", i32::MIN, 0),
            ("é", 233, 33),
            // UTF-16 code units: a surrogate pair counts twice.
            ("😀", 1_772_899, 49),
            ("ŧ€st", 18_736_454, 4),
        ];
        for (group, hash, partition) in cases {
            assert_eq!(java_string_hash(group), hash, "{group}");
            assert_eq!(partition_for(group, 50), partition, "{group}");
        }
    }
}
