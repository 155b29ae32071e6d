//! The cluster metadata as an immutable value, and the commands that change it.
//!
//! A [`MetadataImage`] is never mutated: [`MetadataImage::apply`] returns the next image, so a
//! reader holding an `Arc<MetadataImage>` sees one consistent state for a whole request. `apply`
//! is pure and checks every invariant, which makes it equally suitable for validating a client's
//! change, replaying a log at startup and (later) a replicated state machine.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::topic_rules;
use crate::config::DynamicBrokerConfigs;

/// One endpoint a broker advertises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    /// Listener name.
    pub listener: String,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    /// Node id.
    pub node_id: i32,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// Advertised endpoints, one per client listener.
    pub endpoints: Vec<BrokerEndpoint>,
    /// Fenced brokers lead nothing and are reported as offline replicas.
    pub fenced: bool,
}

impl BrokerRegistration {
    /// The endpoint for `listener`.
    pub fn endpoint(&self, listener: &str) -> Option<&BrokerEndpoint> {
        self.endpoints.iter().find(|e| e.listener == listener)
    }
}

/// Leadership and replicas of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Replica node ids, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Leader node id, -1 when none.
    pub leader: i32,
    /// Leader epoch: grows with every leader change.
    pub leader_epoch: i32,
    /// Partition epoch: grows with every change of this state.
    pub partition_epoch: i32,
}

/// A topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    /// Topic id (never the zero UUID).
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Partitions by index.
    pub partitions: Vec<PartitionState>,
    /// Config overrides (canonical values).
    pub configs: BTreeMap<String, String>,
}

/// A whole image as plain data (the controller group's snapshots).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSnapshot {
    /// The cluster id.
    pub cluster_id: String,
    /// Commands applied.
    pub offset: u64,
    /// Registered brokers.
    pub brokers: Vec<BrokerRegistration>,
    /// Topics.
    pub topics: Vec<TopicImage>,
    /// Dynamic broker configs.
    pub dynamic_configs: DynamicBrokerConfigs,
    /// The next unused producer id.
    pub next_producer_id: i64,
}

/// A change to the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataCommand {
    /// A broker (re)registers with its current endpoints.
    RegisterBroker(BrokerRegistration),
    /// A new topic with one replica list per partition.
    CreateTopic {
        /// New topic id.
        id: Uuid,
        /// Name.
        name: String,
        /// Replica lists, by partition index.
        assignments: Vec<Vec<i32>>,
        /// Config overrides.
        configs: BTreeMap<String, String>,
    },
    /// Removes a topic.
    DeleteTopic {
        /// The topic.
        id: Uuid,
    },
    /// Adds partitions to a topic.
    CreatePartitions {
        /// The topic.
        id: Uuid,
        /// Replica lists of the new partitions, in index order.
        assignments: Vec<Vec<i32>>,
    },
    /// Replaces a topic's config overrides.
    SetTopicConfigs {
        /// The topic.
        id: Uuid,
        /// The complete new set of overrides.
        configs: BTreeMap<String, String>,
    },
    /// Hands the producer ids `[first_producer_id, next_producer_id)` to a broker (KRaft's
    /// `ProducerIdsRecord`). Applies only if `first_producer_id` is the cluster's next unused id,
    /// so two brokers racing for a block cannot both get it, and ids are never handed out twice,
    /// also across restarts.
    AllocateProducerIds {
        /// The broker the block is for (-1 when compaction rewrites the history).
        node_id: i32,
        /// First id of the block: must equal the image's next producer id.
        first_producer_id: i64,
        /// First id after the block.
        next_producer_id: i64,
    },
    /// Replaces the dynamic broker configs of one broker, or the cluster-wide ones.
    SetBrokerConfigs {
        /// The broker, or `None` for the cluster-wide defaults.
        node_id: Option<i32>,
        /// The complete new set.
        configs: BTreeMap<String, String>,
    },
    /// Cluster mode: names a new cluster (the first such command wins; later ones with another
    /// id are rejected).
    InitCluster {
        /// The cluster id.
        cluster_id: String,
    },
    /// Cluster mode: a broker is alive (unfences it if it was fenced).
    BrokerHeartbeat {
        /// The broker.
        node_id: i32,
    },
    /// Cluster mode: a broker missed its heartbeats: it is reported offline and leaves every
    /// ISR it is not the last member of; partitions it led show no leader until a new one
    /// reports.
    FenceBroker {
        /// The broker.
        node_id: i32,
    },
    /// Cluster mode: the leader of a partition's Raft group reports itself (a new term, or a
    /// new ISR in its term). Applies only if `leader_epoch` is newer than the recorded one, or
    /// equal with the same leader (or no leader recorded): a deposed leader's late report
    /// changes nothing.
    SetPartitionLeader {
        /// The topic.
        topic_id: Uuid,
        /// Partition index.
        partition: i32,
        /// The reporting leader.
        leader: i32,
        /// Its Raft term.
        leader_epoch: i32,
        /// Its in-sync replicas (itself included).
        isr: Vec<i32>,
    },
}

/// A command that does not apply to the image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ApplyError {
    /// A topic of that name exists.
    #[error("Topic '{0}' already exists.")]
    TopicExists(String),
    /// The topic id is taken (or reserved).
    #[error("topic id {0} is already in use or reserved")]
    TopicIdTaken(Uuid),
    /// No topic has this id.
    #[error("no topic has id {0}")]
    UnknownTopicId(Uuid),
    /// The name breaks Kafka's rules.
    #[error("{0}")]
    InvalidTopicName(String),
    /// A producer-id block that does not start at the next unused id (another broker got it).
    #[error(
        "producer id block [{first}, {next}) does not start at the next unused producer id {expected}"
    )]
    StaleProducerIdBlock {
        /// The block's first id.
        first: i64,
        /// The block's end.
        next: i64,
        /// The next unused id.
        expected: i64,
    },
    /// The name collides with another one that differs only in '.' versus '_'.
    #[error("Topic '{name}' collides with existing topic: {existing}")]
    Collision {
        /// The new name.
        name: String,
        /// The existing topic.
        existing: String,
    },
    /// A replica assignment is empty, repeats a broker, names an unknown broker or has a different
    /// length from the others.
    #[error("{0}")]
    InvalidAssignment(String),
    /// The cluster already has another id.
    #[error("the cluster already has id {existing}, not {requested}")]
    ClusterIdMismatch {
        /// The id the cluster has.
        existing: String,
        /// The id asked for.
        requested: String,
    },
    /// No such broker is registered.
    #[error("broker {0} is not registered")]
    UnknownBroker(i32),
    /// No such partition.
    #[error("topic {0} has no partition {1}")]
    UnknownPartition(Uuid, i32),
    /// A leader report older than what the metadata holds (or otherwise inconsistent).
    #[error("{0}")]
    StaleLeader(String),
}

/// The cluster metadata at one point of its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataImage {
    cluster_id: String,
    offset: u64,
    brokers: BTreeMap<i32, BrokerRegistration>,
    topics: BTreeMap<Uuid, Arc<TopicImage>>,
    names: BTreeMap<String, Uuid>,
    dynamic_configs: DynamicBrokerConfigs,
    next_producer_id: i64,
}

impl MetadataImage {
    /// An empty cluster.
    pub fn empty(cluster_id: impl Into<String>) -> Self {
        Self {
            cluster_id: cluster_id.into(),
            offset: 0,
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            names: BTreeMap::new(),
            dynamic_configs: DynamicBrokerConfigs::default(),
            next_producer_id: 0,
        }
    }

    /// Test support: this image with brokers `ids` registered (no rack, no endpoints, live).
    #[cfg(test)]
    pub(crate) fn with_test_brokers(self, ids: impl IntoIterator<Item = i32>) -> Self {
        ids.into_iter().fold(self, |image, node_id| {
            image
                .apply(&MetadataCommand::RegisterBroker(BrokerRegistration {
                    node_id,
                    rack: None,
                    endpoints: vec![],
                    fenced: false,
                }))
                .expect("registering a test broker")
        })
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// How many commands led to this image.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Registered brokers by id.
    pub fn brokers(&self) -> &BTreeMap<i32, BrokerRegistration> {
        &self.brokers
    }

    /// Topics by id.
    pub fn topics_by_id(&self) -> &BTreeMap<Uuid, Arc<TopicImage>> {
        &self.topics
    }

    /// Topics in name order.
    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        self.names.values().filter_map(|id| self.topics.get(id))
    }

    /// The topic called `name`.
    pub fn topic_by_name(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.names.get(name).and_then(|id| self.topics.get(id))
    }

    /// The topic with id `id`.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topics.get(id)
    }

    /// Dynamic broker configs.
    pub fn dynamic_configs(&self) -> &DynamicBrokerConfigs {
        &self.dynamic_configs
    }

    /// The first producer id no broker has been given yet.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// An existing topic whose name differs from `name` only in '.' versus '_'.
    pub fn colliding_topic(&self, name: &str) -> Option<&str> {
        if !topic_rules::has_collision_chars(name) {
            return None;
        }
        let unified = topic_rules::unify_collision_chars(name);
        self.names
            .keys()
            .find(|existing| {
                existing.as_str() != name && topic_rules::unify_collision_chars(existing) == unified
            })
            .map(String::as_str)
    }

    /// Replicas of a partition whose broker is unknown or fenced.
    pub fn offline_replicas(&self, partition: &PartitionState) -> Vec<i32> {
        partition
            .replicas
            .iter()
            .copied()
            .filter(|id| self.brokers.get(id).is_none_or(|b| b.fenced))
            .collect()
    }

    /// The parts of the image, for a snapshot ([`Self::from_snapshot`] restores it).
    pub fn to_snapshot(&self) -> ImageSnapshot {
        ImageSnapshot {
            cluster_id: self.cluster_id.clone(),
            offset: self.offset,
            brokers: self.brokers.values().cloned().collect(),
            topics: self.topics.values().map(|t| TopicImage::clone(t)).collect(),
            dynamic_configs: self.dynamic_configs.clone(),
            next_producer_id: self.next_producer_id,
        }
    }

    /// The image a snapshot describes.
    pub fn from_snapshot(snapshot: ImageSnapshot) -> MetadataImage {
        let mut image = MetadataImage::empty(snapshot.cluster_id);
        image.offset = snapshot.offset;
        image.brokers = snapshot
            .brokers
            .into_iter()
            .map(|b| (b.node_id, b))
            .collect();
        for topic in snapshot.topics {
            image.names.insert(topic.name.clone(), topic.id);
            image.topics.insert(topic.id, Arc::new(topic));
        }
        image.dynamic_configs = snapshot.dynamic_configs;
        image.next_producer_id = snapshot.next_producer_id;
        image
    }

    /// Whether `command` would change nothing but the offset (a heartbeat of a live broker), so
    /// that watchers need not see a new image.
    pub fn is_noop(&self, command: &MetadataCommand) -> bool {
        match command {
            MetadataCommand::BrokerHeartbeat { node_id } => {
                self.brokers.get(node_id).is_some_and(|b| !b.fenced)
            }
            MetadataCommand::FenceBroker { node_id } => {
                self.brokers.get(node_id).is_none_or(|b| b.fenced)
            }
            _ => false,
        }
    }

    /// The image after `command`, or why it does not apply.
    pub fn apply(&self, command: &MetadataCommand) -> Result<MetadataImage, ApplyError> {
        let mut next = self.clone();
        next.offset += 1;
        match command {
            MetadataCommand::RegisterBroker(registration) => {
                next.brokers
                    .insert(registration.node_id, registration.clone());
            }
            MetadataCommand::CreateTopic {
                id,
                name,
                assignments,
                configs,
            } => {
                topic_rules::validate_topic_name(name).map_err(ApplyError::InvalidTopicName)?;
                if self.names.contains_key(name) {
                    return Err(ApplyError::TopicExists(name.clone()));
                }
                if let Some(existing) = self.colliding_topic(name) {
                    return Err(ApplyError::Collision {
                        name: name.clone(),
                        existing: existing.to_string(),
                    });
                }
                if id.is_nil() || id.as_u128() == 1 || self.topics.contains_key(id) {
                    return Err(ApplyError::TopicIdTaken(*id));
                }
                if assignments.is_empty() {
                    return Err(ApplyError::InvalidAssignment(
                        "a topic needs at least one partition".into(),
                    ));
                }
                let partitions = self.new_partitions(assignments, None)?;
                next.names.insert(name.clone(), *id);
                next.topics.insert(
                    *id,
                    Arc::new(TopicImage {
                        id: *id,
                        name: name.clone(),
                        partitions,
                        configs: configs.clone(),
                    }),
                );
            }
            MetadataCommand::DeleteTopic { id } => {
                let topic = next
                    .topics
                    .remove(id)
                    .ok_or(ApplyError::UnknownTopicId(*id))?;
                next.names.remove(&topic.name);
            }
            MetadataCommand::CreatePartitions { id, assignments } => {
                let topic = self.topics.get(id).ok_or(ApplyError::UnknownTopicId(*id))?;
                let replication_factor = topic.partitions.first().map(|p| p.replicas.len());
                let mut updated = TopicImage::clone(topic);
                updated
                    .partitions
                    .extend(self.new_partitions(assignments, replication_factor)?);
                next.topics.insert(*id, Arc::new(updated));
            }
            MetadataCommand::SetTopicConfigs { id, configs } => {
                let topic = self.topics.get(id).ok_or(ApplyError::UnknownTopicId(*id))?;
                let mut updated = TopicImage::clone(topic);
                updated.configs = configs.clone();
                next.topics.insert(*id, Arc::new(updated));
            }
            MetadataCommand::AllocateProducerIds {
                first_producer_id,
                next_producer_id,
                ..
            } => {
                if *first_producer_id != self.next_producer_id
                    || *next_producer_id <= *first_producer_id
                {
                    return Err(ApplyError::StaleProducerIdBlock {
                        first: *first_producer_id,
                        next: *next_producer_id,
                        expected: self.next_producer_id,
                    });
                }
                next.next_producer_id = *next_producer_id;
            }
            MetadataCommand::InitCluster { cluster_id } => {
                if self.cluster_id.is_empty() {
                    next.cluster_id = cluster_id.clone();
                } else if self.cluster_id != *cluster_id {
                    return Err(ApplyError::ClusterIdMismatch {
                        existing: self.cluster_id.clone(),
                        requested: cluster_id.clone(),
                    });
                }
            }
            MetadataCommand::BrokerHeartbeat { node_id } => {
                let broker = next
                    .brokers
                    .get_mut(node_id)
                    .ok_or(ApplyError::UnknownBroker(*node_id))?;
                broker.fenced = false;
            }
            MetadataCommand::FenceBroker { node_id } => {
                let broker = next
                    .brokers
                    .get_mut(node_id)
                    .ok_or(ApplyError::UnknownBroker(*node_id))?;
                broker.fenced = true;
                let fenced = *node_id;
                for topic in next.topics.values_mut() {
                    if !topic
                        .partitions
                        .iter()
                        .any(|p| p.leader == fenced || (p.isr.contains(&fenced) && p.isr.len() > 1))
                    {
                        continue;
                    }
                    let t = Arc::make_mut(topic);
                    for p in &mut t.partitions {
                        let mut changed = false;
                        if p.leader == fenced {
                            p.leader = -1;
                            changed = true;
                        }
                        if p.isr.contains(&fenced) && p.isr.len() > 1 {
                            p.isr.retain(|r| *r != fenced);
                            changed = true;
                        }
                        if changed {
                            p.partition_epoch += 1;
                        }
                    }
                }
            }
            MetadataCommand::SetPartitionLeader {
                topic_id,
                partition,
                leader,
                leader_epoch,
                isr,
            } => {
                let topic = next
                    .topics
                    .get_mut(topic_id)
                    .ok_or(ApplyError::UnknownTopicId(*topic_id))?;
                let t = Arc::make_mut(topic);
                let p = usize::try_from(*partition)
                    .ok()
                    .and_then(|i| t.partitions.get_mut(i))
                    .ok_or(ApplyError::UnknownPartition(*topic_id, *partition))?;
                let current = (p.leader, p.leader_epoch);
                let newer = *leader_epoch > p.leader_epoch
                    || (*leader_epoch == p.leader_epoch && (p.leader == *leader || p.leader == -1));
                if !newer {
                    return Err(ApplyError::StaleLeader(format!(
                        "leader {leader} at epoch {leader_epoch} is not newer than leader {} at epoch {}",
                        current.0, current.1
                    )));
                }
                if !p.replicas.contains(leader)
                    || !isr.contains(leader)
                    || isr.iter().any(|r| !p.replicas.contains(r))
                {
                    return Err(ApplyError::StaleLeader(format!(
                        "leader {leader} with ISR {isr:?} does not fit replicas {:?}",
                        p.replicas
                    )));
                }
                p.leader = *leader;
                p.leader_epoch = *leader_epoch;
                let mut sorted = isr.clone();
                sorted.sort_unstable();
                sorted.dedup();
                // Replica order (preferred first), as Kafka reports it.
                p.isr = p
                    .replicas
                    .iter()
                    .copied()
                    .filter(|r| sorted.contains(r))
                    .collect();
                p.partition_epoch += 1;
            }
            MetadataCommand::SetBrokerConfigs { node_id, configs } => match node_id {
                None => next.dynamic_configs.cluster = configs.clone(),
                Some(node) if configs.is_empty() => {
                    next.dynamic_configs.per_broker.remove(node);
                }
                Some(node) => {
                    next.dynamic_configs
                        .per_broker
                        .insert(*node, configs.clone());
                }
            },
        }
        Ok(next)
    }

    /// Partition states for new replica lists: leader is the first live replica, epochs start at 0.
    fn new_partitions(
        &self,
        assignments: &[Vec<i32>],
        replication_factor: Option<usize>,
    ) -> Result<Vec<PartitionState>, ApplyError> {
        let mut expected = replication_factor;
        let mut out = Vec::with_capacity(assignments.len());
        for replicas in assignments {
            check_assignment(replicas, expected, |id| self.brokers.contains_key(&id))?;
            expected = Some(replicas.len());
            let isr: Vec<i32> = replicas
                .iter()
                .copied()
                .filter(|id| self.brokers.get(id).is_some_and(|b| !b.fenced))
                .collect();
            out.push(PartitionState {
                replicas: replicas.clone(),
                leader: isr.first().copied().unwrap_or(-1),
                isr,
                leader_epoch: 0,
                partition_epoch: 0,
            });
        }
        Ok(out)
    }
}

/// Kafka's `validateManualPartitionAssignment`, with its messages.
pub fn check_assignment(
    replicas: &[i32],
    replication_factor: Option<usize>,
    is_registered: impl Fn(i32) -> bool,
) -> Result<(), ApplyError> {
    if replicas.is_empty() {
        return Err(ApplyError::InvalidAssignment(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    for (i, id) in sorted.iter().enumerate() {
        if !is_registered(*id) {
            return Err(ApplyError::InvalidAssignment(format!(
                "The manual partition assignment includes broker {id}, but no such broker is registered."
            )));
        }
        if i > 0 && sorted[i - 1] == *id {
            return Err(ApplyError::InvalidAssignment(format!(
                "The manual partition assignment includes the broker {id} more than once."
            )));
        }
    }
    if let Some(rf) = replication_factor
        && rf != sorted.len()
    {
        return Err(ApplyError::InvalidAssignment(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s).",
            sorted.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: i32) -> MetadataCommand {
        MetadataCommand::RegisterBroker(BrokerRegistration {
            node_id: id,
            rack: None,
            endpoints: vec![],
            fenced: false,
        })
    }

    fn create(id: u128, name: &str, partitions: usize) -> MetadataCommand {
        MetadataCommand::CreateTopic {
            id: Uuid::from_u128(id),
            name: name.into(),
            assignments: vec![vec![1]; partitions],
            configs: BTreeMap::new(),
        }
    }

    fn image() -> MetadataImage {
        MetadataImage::empty("c").apply(&broker(1)).unwrap()
    }

    fn three_brokers_one_topic() -> MetadataImage {
        let mut img = MetadataImage::empty("");
        for id in 1..=3 {
            img = img.apply(&broker(id)).unwrap();
        }
        img.apply(&MetadataCommand::CreateTopic {
            id: Uuid::from_u128(7),
            name: "t".into(),
            assignments: vec![vec![1, 2, 3], vec![2, 3, 1]],
            configs: BTreeMap::new(),
        })
        .unwrap()
    }

    fn report(partition: i32, leader: i32, epoch: i32, isr: &[i32]) -> MetadataCommand {
        MetadataCommand::SetPartitionLeader {
            topic_id: Uuid::from_u128(7),
            partition,
            leader,
            leader_epoch: epoch,
            isr: isr.to_vec(),
        }
    }

    #[test]
    fn the_first_cluster_id_wins() {
        let img = MetadataImage::empty("");
        let named = img
            .apply(&MetadataCommand::InitCluster {
                cluster_id: "one".into(),
            })
            .unwrap();
        assert_eq!(named.cluster_id(), "one");
        assert!(
            named
                .apply(&MetadataCommand::InitCluster {
                    cluster_id: "one".into()
                })
                .is_ok()
        );
        assert!(matches!(
            named.apply(&MetadataCommand::InitCluster {
                cluster_id: "two".into()
            }),
            Err(ApplyError::ClusterIdMismatch { .. })
        ));
    }

    #[test]
    fn leader_reports_apply_only_when_newer() {
        let img = three_brokers_one_topic();
        let p = |img: &MetadataImage| {
            img.topic_by_id(&Uuid::from_u128(7)).unwrap().partitions[0].clone()
        };
        let img = img.apply(&report(0, 2, 3, &[3, 2])).unwrap();
        let state = p(&img);
        assert_eq!((state.leader, state.leader_epoch), (2, 3));
        assert_eq!(state.isr, vec![2, 3], "ISR in replica order");
        // The same leader shrinks its ISR in its term; a deposed leader's late report is refused.
        let img = img.apply(&report(0, 2, 3, &[2])).unwrap();
        assert_eq!(p(&img).isr, vec![2]);
        assert!(matches!(
            img.apply(&report(0, 1, 2, &[1])),
            Err(ApplyError::StaleLeader(_))
        ));
        assert!(matches!(
            img.apply(&report(0, 1, 3, &[1])),
            Err(ApplyError::StaleLeader(_))
        ));
        // A leader outside the ISR it reports, or a non-replica, is refused.
        assert!(img.apply(&report(0, 1, 4, &[2])).is_err());
        assert!(img.apply(&report(0, 9, 4, &[9])).is_err());
        assert!(matches!(
            img.apply(&report(5, 1, 4, &[1])),
            Err(ApplyError::UnknownPartition(..))
        ));
    }

    #[test]
    fn fencing_takes_a_broker_out_of_isrs_and_leadership() {
        let img = three_brokers_one_topic()
            .apply(&report(0, 1, 1, &[1, 2, 3]))
            .unwrap()
            .apply(&report(1, 2, 1, &[2]))
            .unwrap();
        assert!(img.is_noop(&MetadataCommand::BrokerHeartbeat { node_id: 2 }));
        let fenced = img
            .apply(&MetadataCommand::FenceBroker { node_id: 1 })
            .unwrap();
        let topic = fenced.topic_by_id(&Uuid::from_u128(7)).unwrap();
        assert_eq!(topic.partitions[0].leader, -1);
        assert_eq!(topic.partitions[0].isr, vec![2, 3]);
        assert_eq!(fenced.offline_replicas(&topic.partitions[0]), vec![1]);
        // The last ISR member stays.
        let fenced = fenced
            .apply(&MetadataCommand::FenceBroker { node_id: 2 })
            .unwrap();
        assert_eq!(
            fenced.topic_by_id(&Uuid::from_u128(7)).unwrap().partitions[1].isr,
            vec![2]
        );
        // A heartbeat unfences; the leader that comes back at the same epoch may report again.
        assert!(!fenced.is_noop(&MetadataCommand::BrokerHeartbeat { node_id: 1 }));
        let back = fenced
            .apply(&MetadataCommand::BrokerHeartbeat { node_id: 1 })
            .unwrap();
        assert!(!back.brokers()[&1].fenced);
        assert!(back.apply(&report(0, 1, 1, &[1, 3])).is_ok());
    }

    #[test]
    fn snapshots_restore_the_same_image() {
        let img = three_brokers_one_topic()
            .apply(&report(0, 3, 5, &[3, 1]))
            .unwrap()
            .apply(&MetadataCommand::AllocateProducerIds {
                node_id: 1,
                first_producer_id: 0,
                next_producer_id: 1000,
            })
            .unwrap();
        let json = serde_json::to_vec(&img.to_snapshot()).unwrap();
        let restored = MetadataImage::from_snapshot(serde_json::from_slice(&json).unwrap());
        assert_eq!(restored, img);
    }

    #[test]
    fn create_delete_and_grow_topics() {
        let img = image().apply(&create(10, "a", 2)).unwrap();
        let topic = img.topic_by_name("a").unwrap();
        assert_eq!(topic.partitions.len(), 2);
        assert_eq!(topic.partitions[0].leader, 1);
        assert_eq!(topic.partitions[0].isr, vec![1]);
        assert_eq!(img.offset(), 2);

        let img = img
            .apply(&MetadataCommand::CreatePartitions {
                id: Uuid::from_u128(10),
                assignments: vec![vec![1]],
            })
            .unwrap();
        assert_eq!(
            img.topic_by_id(&Uuid::from_u128(10))
                .unwrap()
                .partitions
                .len(),
            3
        );

        let img = img
            .apply(&MetadataCommand::DeleteTopic {
                id: Uuid::from_u128(10),
            })
            .unwrap();
        assert!(img.topic_by_name("a").is_none());
        assert_eq!(img.topics().count(), 0);
    }

    #[test]
    fn rejects_duplicates_collisions_bad_names_and_ids() {
        let img = image().apply(&create(10, "a.b", 1)).unwrap();
        assert_eq!(
            img.apply(&create(11, "a.b", 1)),
            Err(ApplyError::TopicExists("a.b".into()))
        );
        assert!(matches!(
            img.apply(&create(11, "a_b", 1)),
            Err(ApplyError::Collision { .. })
        ));
        assert!(matches!(
            img.apply(&create(11, "bad name", 1)),
            Err(ApplyError::InvalidTopicName(_))
        ));
        assert!(matches!(
            img.apply(&create(10, "c", 1)),
            Err(ApplyError::TopicIdTaken(_))
        ));
        assert!(matches!(
            img.apply(&create(0, "c", 1)),
            Err(ApplyError::TopicIdTaken(_))
        ));
        assert!(matches!(
            img.apply(&create(12, "c", 0)),
            Err(ApplyError::InvalidAssignment(_))
        ));
        assert_eq!(
            img.apply(&MetadataCommand::DeleteTopic {
                id: Uuid::from_u128(99)
            }),
            Err(ApplyError::UnknownTopicId(Uuid::from_u128(99)))
        );
    }

    #[test]
    fn assignments_follow_kafka_rules() {
        let registered = |id| id == 1 || id == 2;
        assert!(check_assignment(&[1, 2], None, registered).is_ok());
        assert!(check_assignment(&[], None, registered).is_err());
        assert!(check_assignment(&[1, 1], None, registered).is_err());
        assert!(check_assignment(&[3], None, registered).is_err());
        assert!(check_assignment(&[1], Some(2), registered).is_err());
    }

    #[test]
    fn producer_id_blocks_are_handed_out_once() {
        let block = |first, next| MetadataCommand::AllocateProducerIds {
            node_id: 1,
            first_producer_id: first,
            next_producer_id: next,
        };
        let img = image().apply(&block(0, 1000)).unwrap();
        assert_eq!(img.next_producer_id(), 1000);
        // A broker that read the image before this block was taken is refused.
        assert!(matches!(
            img.apply(&block(0, 1000)),
            Err(ApplyError::StaleProducerIdBlock { expected: 1000, .. })
        ));
        assert!(img.apply(&block(1000, 1000)).is_err());
        assert_eq!(
            img.apply(&block(1000, 2000)).unwrap().next_producer_id(),
            2000
        );
    }

    #[test]
    fn fenced_brokers_are_offline() {
        let img = image()
            .apply(&MetadataCommand::RegisterBroker(BrokerRegistration {
                node_id: 2,
                rack: None,
                endpoints: vec![],
                fenced: true,
            }))
            .unwrap()
            .apply(&MetadataCommand::CreateTopic {
                id: Uuid::from_u128(5),
                name: "t".into(),
                assignments: vec![vec![2, 1]],
                configs: BTreeMap::new(),
            })
            .unwrap();
        let p = &img.topic_by_name("t").unwrap().partitions[0];
        assert_eq!(p.leader, 1);
        assert_eq!(p.isr, vec![1]);
        assert_eq!(img.offline_replicas(p), vec![2]);
    }
}
