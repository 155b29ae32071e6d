//! Topic and config administration: the decisions behind CreateTopics, DeleteTopics,
//! CreatePartitions, AlterConfigs and IncrementalAlterConfigs.
//!
//! Each operation is planned by a plain function against the current [`MetadataImage`] (Kafka's
//! `ReplicationControlManager` and `ConfigurationControlManager` rules and messages), applied
//! through the [`MetadataStore`], and then handed to the partition layer ([`PartitionSync`]) so
//! that a topic's partitions exist before the request is answered.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use shoal_protocol::error_code::ResponseError;
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::config::catalog::{self, ConfigType};
use crate::config::topic::{ConfigView, validate_topic_config};
use crate::kafka_error::{ApiError, BrokerError, kafka_error};
use crate::metadata::placement::{self, Candidate};
use crate::metadata::topic_rules::{self, CLUSTER_METADATA_TOPIC};
use crate::metadata::{MetadataCommand, MetadataImage, MetadataStore};

/// Kafka's controller refuses operations that would write more records than this at once.
pub const MAX_PARTITIONS_PER_REQUEST: usize = 10_000;

/// Brings the partition layer in line with a new image.
pub trait PartitionSync: Send + Sync + std::fmt::Debug {
    /// Opens, reconfigures and deletes partitions as `image` requires.
    fn sync(&self, image: Arc<MetadataImage>) -> BoxFuture<'_, ()>;
}

/// A topic to create, as CreateTopics (or auto-creation) asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partitions, -1 for `num.partitions`.
    pub num_partitions: i32,
    /// Replication factor, -1 for `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual assignment (partition index, replicas); then both counts must be -1.
    pub assignments: Vec<(i32, Vec<i32>)>,
    /// Config overrides; a `None` value is an error, as in Kafka.
    pub configs: Vec<(String, Option<String>)>,
}

/// Cluster defaults for new topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicDefaults {
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub replication_factor: i16,
}

/// A planned topic creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPlan {
    /// The command that creates it.
    pub command: MetadataCommand,
    /// Partitions.
    pub num_partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Warnings about configs without effect.
    pub warnings: Vec<String>,
}

/// Plans the creation of `topic` with id `id` (Kafka's `createTopics`/`createTopic` checks, in
/// Kafka's order).
pub fn plan_create_topic(
    image: &MetadataImage,
    defaults: TopicDefaults,
    topic: &NewTopic,
    id: Uuid,
) -> Result<TopicPlan, ApiError> {
    use ResponseError as E;
    if topic.name == CLUSTER_METADATA_TOPIC {
        return Err(ApiError::new(
            E::InvalidRequest,
            format!("Creation of internal topic {CLUSTER_METADATA_TOPIC} is prohibited."),
        ));
    }
    topic_rules::validate_topic_name(&topic.name)
        .map_err(|m| ApiError::new(E::InvalidTopicException, m))?;
    if let Some(existing) = image.colliding_topic(&topic.name) {
        return Err(ApiError::new(
            E::InvalidTopicException,
            format!(
                "Topic '{}' collides with existing topic: {existing}",
                topic.name
            ),
        ));
    }
    if image.topic_by_name(&topic.name).is_some() {
        return Err(ApiError::new(
            E::TopicAlreadyExists,
            format!("Topic '{}' already exists.", topic.name),
        ));
    }
    let nulls: Vec<&str> = topic
        .configs
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| n.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err(ApiError::new(
            E::InvalidConfig,
            format!(
                "Null value not supported for topic configs: {}",
                nulls.join(",")
            ),
        ));
    }
    let mut configs = BTreeMap::new();
    let mut warnings = Vec::new();
    for (name, value) in &topic.configs {
        let (canonical, warning) =
            validate_topic_config(name, value.as_deref().unwrap_or_default())
                .map_err(|e| kafka_error(BrokerError::TopicConfig(&e)))?;
        warnings.extend(warning);
        configs.insert(name.clone(), canonical);
    }

    let assignments: Vec<Vec<i32>> = if !topic.assignments.is_empty() {
        if topic.replication_factor != -1 {
            return Err(ApiError::new(
                E::InvalidRequest,
                "A manual partition assignment was specified, but replication factor was not set to -1.",
            ));
        }
        if topic.num_partitions != -1 {
            return Err(ApiError::new(
                E::InvalidRequest,
                "A manual partition assignment was specified, but numPartitions was not set to -1.",
            ));
        }
        let mut by_index: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for (index, replicas) in &topic.assignments {
            if by_index.insert(*index, replicas.clone()).is_some() {
                return Err(ApiError::new(
                    E::InvalidReplicaAssignment,
                    format!("Found multiple manual partition assignments for partition {index}"),
                ));
            }
        }
        let mut rf = None;
        for replicas in by_index.values() {
            crate::metadata::image::check_assignment(replicas, rf, |id| {
                image.brokers().contains_key(&id)
            })
            .map_err(|e| kafka_error(BrokerError::Apply(&e)))?;
            rf = Some(replicas.len());
            if replicas
                .iter()
                .all(|id| image.brokers().get(id).is_none_or(|b| b.fenced))
            {
                return Err(ApiError::new(
                    E::InvalidReplicaAssignment,
                    "All brokers specified in the manual partition assignment are fenced or in controlled shutdown.",
                ));
            }
        }
        if by_index.keys().copied().ne(0..by_index.len() as i32) {
            return Err(ApiError::new(
                E::InvalidReplicaAssignment,
                "partitions should be a consecutive 0-based integer sequence",
            ));
        }
        by_index.into_values().collect()
    } else if topic.replication_factor < -1 || topic.replication_factor == 0 {
        return Err(ApiError::new(
            E::InvalidReplicationFactor,
            "Replication factor must be larger than 0, or -1 to use the default value.",
        ));
    } else if topic.num_partitions < -1 || topic.num_partitions == 0 {
        return Err(ApiError::new(
            E::InvalidPartitions,
            "Number of partitions was set to an invalid non-positive value.",
        ));
    } else {
        let partitions = if topic.num_partitions == -1 {
            defaults.num_partitions
        } else {
            topic.num_partitions
        };
        let rf = if topic.replication_factor == -1 {
            defaults.replication_factor
        } else {
            topic.replication_factor
        };
        if partitions as usize > MAX_PARTITIONS_PER_REQUEST {
            return Err(excessive());
        }
        // Kafka starts each topic's layout at a random broker so that leaders of different
        // topics spread; a hash of the name does the same, reproducibly.
        placement::place(
            &candidates(image),
            partitions as usize,
            rf,
            layout_start(&topic.name),
        )
        .map_err(|e| kafka_error(BrokerError::Placement(&e)))?
    };
    let num_partitions = assignments.len() as i32;
    let replication_factor = assignments.first().map_or(0, |r| r.len() as i16);
    Ok(TopicPlan {
        command: MetadataCommand::CreateTopic {
            id,
            name: topic.name.clone(),
            assignments,
            configs,
        },
        num_partitions,
        replication_factor,
        warnings,
    })
}

fn excessive() -> ApiError {
    ApiError::new(
        ResponseError::PolicyViolation,
        "Unable to perform excessively large batch operation.",
    )
}

/// Where a new topic's placement starts (FNV-1a of its name).
fn layout_start(name: &str) -> usize {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % 1_000_003) as usize
}

fn candidates(image: &MetadataImage) -> Vec<Candidate> {
    image
        .brokers()
        .values()
        .filter(|b| !b.fenced)
        .map(|b| Candidate {
            node_id: b.node_id,
            rack: b.rack.clone(),
        })
        .collect()
}

/// Plans CreatePartitions for `name` up to `count` partitions.
pub fn plan_create_partitions(
    image: &MetadataImage,
    name: &str,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
) -> Result<MetadataCommand, ApiError> {
    use ResponseError as E;
    let topic = image.topic_by_name(name).ok_or_else(|| {
        ApiError::new(
            E::UnknownTopicOrPartition,
            "This server does not host this topic-partition.",
        )
    })?;
    let current = topic.partitions.len() as i32;
    if count == current {
        return Err(ApiError::new(
            E::InvalidPartitions,
            format!("Topic already has {current} partition(s)."),
        ));
    }
    if count < current {
        return Err(ApiError::new(
            E::InvalidPartitions,
            format!(
                "The topic {name} currently has {current} partition(s); {count} would not be an increase."
            ),
        ));
    }
    let additional = (count - current) as usize;
    if additional > MAX_PARTITIONS_PER_REQUEST {
        return Err(excessive());
    }
    let rf = topic.partitions.first().map_or(1, |p| p.replicas.len());
    let new = match assignments {
        Some(assignments) => {
            if assignments.len() != additional {
                return Err(ApiError::new(
                    E::InvalidReplicaAssignment,
                    format!(
                        "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
                        assignments.len()
                    ),
                ));
            }
            for replicas in assignments {
                crate::metadata::image::check_assignment(replicas, Some(rf), |id| {
                    image.brokers().contains_key(&id)
                })
                .map_err(|e| kafka_error(BrokerError::Apply(&e)))?;
            }
            assignments.to_vec()
        }
        None => placement::place(&candidates(image), additional, rf as i16, current as usize)
            .map_err(|e| kafka_error(BrokerError::Placement(&e)))?,
    };
    Ok(MetadataCommand::CreatePartitions {
        id: topic.id,
        assignments: new,
    })
}

/// One IncrementalAlterConfigs operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterOp {
    /// Set the value.
    Set,
    /// Remove the override.
    Delete,
    /// Add list elements.
    Append,
    /// Remove list elements.
    Subtract,
}

impl AlterOp {
    /// From the wire value.
    pub fn from_wire(op: i8) -> Option<Self> {
        match op {
            0 => Some(AlterOp::Set),
            1 => Some(AlterOp::Delete),
            2 => Some(AlterOp::Append),
            3 => Some(AlterOp::Subtract),
            _ => None,
        }
    }
}

/// Whether operations apply to topic or broker configs (Kafka words some errors differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// Topic configs.
    Topic,
    /// Broker configs.
    Broker,
}

/// Which config set an alteration targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigTarget {
    /// A topic.
    Topic(Uuid),
    /// A broker's dynamic configs, or the cluster-wide ones (`None`).
    Broker(Option<i32>),
}

/// Applies incremental operations to `current` overrides. `list_default` gives the value an APPEND
/// or SUBTRACT starts from when there is no override. Kafka's messages.
pub fn apply_incremental(
    current: &BTreeMap<String, String>,
    ops: &[(String, AlterOp, Option<String>)],
    kind: ConfigKind,
    ty_of: impl Fn(&str) -> Option<ConfigType>,
    list_default: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    use ResponseError as E;
    let mut next = current.clone();
    for (i, (name, _, _)) in ops.iter().enumerate() {
        if ops[..i].iter().any(|(n, _, _)| n == name) {
            return Err(ApiError::new(
                E::InvalidRequest,
                format!("Error due to duplicate config keys: {name}"),
            ));
        }
    }
    for (name, op, value) in ops {
        match op {
            AlterOp::Set => {
                let value = value.clone().ok_or_else(|| {
                    ApiError::new(
                        E::InvalidRequest,
                        format!("Null value not supported for : {name}"),
                    )
                })?;
                next.insert(name.clone(), value);
            }
            AlterOp::Delete => {
                next.remove(name);
            }
            AlterOp::Append | AlterOp::Subtract => {
                let verb = if *op == AlterOp::Append {
                    "APPEND"
                } else {
                    "SUBTRACT"
                };
                // The broker side (ConfigAdminManager) and the controller
                // (ConfigurationControlManager) word these errors differently.
                let message = match (ty_of(name), kind) {
                    (Some(ConfigType::List), _) => None,
                    (None, ConfigKind::Broker) => Some(format!("Unknown config name: {name}")),
                    (_, ConfigKind::Broker) => Some(format!(
                        "Config value {} is not allowed for config key: {name}",
                        verb.to_lowercase()
                    )),
                    (_, ConfigKind::Topic) => Some(format!(
                        "Can't {verb} to key {name} because its type is not LIST."
                    )),
                };
                if let Some(message) = message {
                    return Err(ApiError::new(E::InvalidConfig, message));
                }
                let base = next
                    .get(name)
                    .cloned()
                    .or_else(|| list_default(name))
                    .unwrap_or_default();
                let mut items: Vec<String> = base
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                let given: Vec<String> = value
                    .as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if *op == AlterOp::Append {
                    for item in given {
                        if !items.contains(&item) {
                            items.push(item);
                        }
                    }
                } else {
                    items.retain(|i| !given.contains(i));
                }
                next.insert(name.clone(), items.join(","));
            }
        }
    }
    Ok(next)
}

/// Validates a complete set of dynamic broker configs; returns them canonical. Kafka reports every
/// validation failure of broker configs as `INVALID_REQUEST` (KAFKA-13609).
pub fn validate_broker_configs(
    configs: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    use ResponseError as E;
    let mut out = BTreeMap::new();
    let mut not_dynamic = Vec::new();
    for (name, value) in configs {
        let Some(def) = catalog::broker_def(name) else {
            return Err(ApiError::new(
                E::InvalidRequest,
                format!("Unknown broker config: {name}"),
            ));
        };
        if !def.dynamic {
            not_dynamic.push(name.as_str());
            continue;
        }
        let canonical = catalog::canonicalize(def.ty, def.bound, value).map_err(|r| {
            ApiError::new(
                E::InvalidRequest,
                format!("Invalid value {value} for configuration {name}: {r}"),
            )
        })?;
        let only: Option<(&[&str], &str)> = match name.as_str() {
            "compression.type" => Some((&["producer"], "Shoal stores batches as produced")),
            _ => None,
        };
        if let Some((allowed, reason)) = only
            && !allowed.contains(&canonical.as_str())
        {
            return Err(ApiError::new(
                E::InvalidRequest,
                format!("Invalid value {value} for configuration {name}: {reason}"),
            ));
        }
        out.insert(name.clone(), canonical);
    }
    if !not_dynamic.is_empty() {
        return Err(ApiError::new(
            E::InvalidRequest,
            format!(
                "Cannot update these configs dynamically: Set({})",
                not_dynamic.join(", ")
            ),
        ));
    }
    Ok(out)
}

/// A created topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    /// Topic id.
    pub id: Uuid,
    /// Partitions.
    pub num_partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
}

/// The longest CreateTopics waits for the new partitions' leaders to report their epochs.
pub const MAX_LEADER_REPORT_WAIT: Duration = Duration::from_secs(5);

/// Carries out administrative changes.
#[derive(Debug, Clone)]
pub struct TopicAdmin {
    metadata: Arc<dyn MetadataStore>,
    partitions: Arc<dyn PartitionSync>,
    config: Arc<BrokerConfig>,
    /// Serialises planning and applying, so that two requests cannot both plan against the same
    /// image (e.g. both create the same topic and one fails with an internal error).
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl TopicAdmin {
    /// An admin over `metadata` that keeps `partitions` in sync.
    pub fn new(
        metadata: Arc<dyn MetadataStore>,
        partitions: Arc<dyn PartitionSync>,
        config: Arc<BrokerConfig>,
    ) -> Self {
        Self {
            metadata,
            partitions,
            config,
            lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The metadata store.
    pub fn metadata(&self) -> &Arc<dyn MetadataStore> {
        &self.metadata
    }

    /// Topic defaults from the configuration.
    pub fn defaults(&self) -> TopicDefaults {
        TopicDefaults {
            num_partitions: self.config.num_partitions,
            replication_factor: self.config.default_replication_factor,
        }
    }

    /// A config view over `image`.
    pub fn config_view<'a>(&'a self, image: &'a MetadataImage) -> ConfigView<'a> {
        ConfigView {
            statics: &self.config.statics,
            dynamic: image.dynamic_configs(),
            node_id: self.config.node_id,
        }
    }

    /// Runs `f` with a config view over `image`.
    pub fn with_view<T>(&self, image: &MetadataImage, f: impl FnOnce(&ConfigView<'_>) -> T) -> T {
        f(&ConfigView {
            statics: &self.config.statics,
            dynamic: image.dynamic_configs(),
            node_id: self.config.node_id,
        })
    }

    async fn apply(&self, command: MetadataCommand) -> Result<Arc<MetadataImage>, ApiError> {
        let image = self
            .metadata
            .apply(command)
            .await
            .map_err(|e| kafka_error(BrokerError::Metadata(&e)))?;
        self.partitions.sync(image.clone()).await;
        Ok(image)
    }

    /// Creates topics one after the other (each sees the ones before it).
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Vec<Result<CreatedTopic, ApiError>> {
        let _guard = self.lock.lock().await;
        let total: i64 = topics
            .iter()
            .map(|t| i64::from(t.num_partitions.max(1)) + t.assignments.len() as i64)
            .sum();
        if total > MAX_PARTITIONS_PER_REQUEST as i64 {
            return topics.iter().map(|_| Err(excessive())).collect();
        }
        let mut results = Vec::with_capacity(topics.len());
        for topic in topics {
            let image = self.metadata.image();
            let plan = match plan_create_topic(&image, self.defaults(), topic, new_topic_id()) {
                Ok(plan) => plan,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            let MetadataCommand::CreateTopic { id, configs, .. } = &plan.command else {
                results.push(Err(ApiError::bare(ResponseError::UnknownServerError)));
                continue;
            };
            let created = CreatedTopic {
                id: *id,
                num_partitions: plan.num_partitions,
                replication_factor: plan.replication_factor,
                configs: configs.clone(),
            };
            if validate_only {
                results.push(Ok(created));
                continue;
            }
            for warning in &plan.warnings {
                warn!(topic = %topic.name, "{warning}");
            }
            match self.apply(plan.command).await {
                Ok(_) => {
                    info!(topic = %topic.name, id = %created.id, partitions = created.num_partitions, "created topic");
                    results.push(Ok(created));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        results
    }

    /// In a cluster, waits (at most `timeout`, capped at [`MAX_LEADER_REPORT_WAIT`]) until the
    /// leader of every partition of `topics` has reported its Raft term to the metadata.
    ///
    /// A new partition's metadata names its preferred replica with the placeholder epoch 0,
    /// while that replica leads at term 1 (a Raft term is never 0) as soon as it is elected;
    /// until its report is applied, a consumer fetching with the epoch the metadata gave it is
    /// fenced (FENCED_LEADER_EPOCH, which librdkafka answers with a 500 ms fetch backoff).
    /// CreateTopics waits here, as Kafka once waited for the new partitions' leaders
    /// (`DelayedCreatePartitions`), so that the metadata its caller reads next is the one
    /// consumers can fetch with. A topic whose leaders are still unreported at the deadline
    /// is still created. Outside a cluster this returns at once: epochs are the partitions'
    /// own.
    pub async fn wait_for_reported_leaders(&self, topics: &[Uuid], timeout: Duration) {
        if self.config.cluster.is_none() || topics.is_empty() {
            return;
        }
        let mut images = self.metadata.subscribe();
        let timeout = timeout.min(MAX_LEADER_REPORT_WAIT);
        if !until_leaders_reported(&mut images, topics, timeout).await {
            warn!(
                ?topics,
                "created topics whose leaders have not reported their epochs yet"
            );
        }
    }

    /// Deletes a topic.
    pub async fn delete_topic(&self, id: Uuid) -> Result<(), ApiError> {
        let _guard = self.lock.lock().await;
        if !self.config.delete_topic_enable {
            return Err(ApiError::new(
                ResponseError::TopicDeletionDisabled,
                "Topic deletion is disabled.",
            ));
        }
        let name = self
            .metadata
            .image()
            .topic_by_id(&id)
            .map(|t| t.name.clone());
        self.apply(MetadataCommand::DeleteTopic { id }).await?;
        info!(topic = name.as_deref().unwrap_or("?"), %id, "deleted topic");
        Ok(())
    }

    /// Grows a topic to `count` partitions.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<&[Vec<i32>]>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let _guard = self.lock.lock().await;
        let command = plan_create_partitions(&self.metadata.image(), name, count, assignments)?;
        if !validate_only {
            self.apply(command).await?;
            info!(topic = name, partitions = count, "added partitions");
        }
        Ok(())
    }

    /// Replaces a config set (legacy AlterConfigs) or applies operations to it
    /// (IncrementalAlterConfigs).
    pub async fn alter_configs(
        &self,
        target: ConfigTarget,
        change: ConfigChange,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let _guard = self.lock.lock().await;
        let image = self.metadata.image();
        let current = match &target {
            ConfigTarget::Topic(id) => image
                .topic_by_id(id)
                .map(|t| t.configs.clone())
                .ok_or_else(|| ApiError::bare(ResponseError::UnknownTopicOrPartition))?,
            ConfigTarget::Broker(None) => image.dynamic_configs().cluster.clone(),
            ConfigTarget::Broker(Some(node)) => image
                .dynamic_configs()
                .per_broker
                .get(node)
                .cloned()
                .unwrap_or_default(),
        };
        let next = match change {
            ConfigChange::Replace(configs) => configs,
            ConfigChange::Incremental(ops) => match &target {
                ConfigTarget::Topic(_) => apply_incremental(
                    &current,
                    &ops,
                    ConfigKind::Topic,
                    |n| catalog::topic_def(n).map(|d| d.ty),
                    |n| {
                        self.with_view(&image, |v| {
                            catalog::topic_def(n).map(|d| v.topic_value(d, &BTreeMap::new()).0)
                        })
                    },
                )?,
                ConfigTarget::Broker(_) => apply_incremental(
                    &current,
                    &ops,
                    ConfigKind::Broker,
                    |n| catalog::broker_def(n).map(|d| d.ty),
                    |n| self.with_view(&image, |v| v.broker_value(n)),
                )?,
            },
        };
        let command = match target {
            ConfigTarget::Topic(id) => {
                let mut canonical = BTreeMap::new();
                for (name, value) in &next {
                    let (value, warning) = validate_topic_config(name, value)
                        .map_err(|e| kafka_error(BrokerError::TopicConfig(&e)))?;
                    if let Some(warning) = warning
                        && !validate_only
                    {
                        warn!("{warning}");
                    }
                    canonical.insert(name.clone(), value);
                }
                MetadataCommand::SetTopicConfigs {
                    id,
                    configs: canonical,
                }
            }
            ConfigTarget::Broker(node_id) => MetadataCommand::SetBrokerConfigs {
                node_id,
                configs: validate_broker_configs(&next)?,
            },
        };
        if !validate_only {
            self.apply(command).await?;
        }
        Ok(())
    }
}

/// A change to one config set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// Replace everything (AlterConfigs).
    Replace(BTreeMap<String, String>),
    /// Apply operations (IncrementalAlterConfigs).
    Incremental(Vec<(String, AlterOp, Option<String>)>),
}

/// A fresh topic id: random, never the zero or metadata-topic UUID.
pub fn new_topic_id() -> Uuid {
    loop {
        let id = Uuid::new_v4();
        if id.as_u128() > 1 {
            return id;
        }
    }
}

/// Whether the leader of every partition of `topics` has reported its term to `image` (a
/// Raft term is at least 1; 0 is a new partition's placeholder). Deleted topics count as
/// reported.
fn leaders_reported(image: &MetadataImage, topics: &[Uuid]) -> bool {
    topics.iter().all(|id| {
        image
            .topic_by_id(id)
            .is_none_or(|t| t.partitions.iter().all(|p| p.leader_epoch > 0))
    })
}

/// Waits, woken by each new image, until [`leaders_reported`] or `timeout`; returns whether
/// they reported.
async fn until_leaders_reported(
    images: &mut watch::Receiver<Arc<MetadataImage>>,
    topics: &[Uuid],
    timeout: Duration,
) -> bool {
    let reported = images.wait_for(|image| leaders_reported(image, topics));
    matches!(tokio::time::timeout(timeout, reported).await, Ok(Ok(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::BrokerRegistration;

    fn image() -> MetadataImage {
        MetadataImage::empty("c")
            .apply(&MetadataCommand::RegisterBroker(BrokerRegistration {
                node_id: 1,
                rack: None,
                endpoints: vec![],
                fenced: false,
            }))
            .unwrap()
    }

    const DEFAULTS: TopicDefaults = TopicDefaults {
        num_partitions: 3,
        replication_factor: 1,
    };

    fn topic(name: &str, partitions: i32, rf: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: rf,
            assignments: vec![],
            configs: vec![],
        }
    }

    fn code(r: Result<TopicPlan, ApiError>) -> ResponseError {
        r.unwrap_err().error
    }

    #[test]
    fn defaults_apply_for_minus_one() {
        let plan =
            plan_create_topic(&image(), DEFAULTS, &topic("t", -1, -1), Uuid::from_u128(9)).unwrap();
        assert_eq!((plan.num_partitions, plan.replication_factor), (3, 1));
    }

    #[test]
    fn kafka_error_codes_for_bad_topics() {
        let img = image();
        let id = Uuid::from_u128(9);
        assert_eq!(
            code(plan_create_topic(
                &img,
                DEFAULTS,
                &topic("bad name", 1, 1),
                id
            )),
            ResponseError::InvalidTopicException
        );
        assert_eq!(
            code(plan_create_topic(&img, DEFAULTS, &topic("t", 0, 1), id)),
            ResponseError::InvalidPartitions
        );
        assert_eq!(
            code(plan_create_topic(&img, DEFAULTS, &topic("t", -2, 1), id)),
            ResponseError::InvalidPartitions
        );
        assert_eq!(
            code(plan_create_topic(&img, DEFAULTS, &topic("t", 1, 0), id)),
            ResponseError::InvalidReplicationFactor
        );
        assert_eq!(
            code(plan_create_topic(&img, DEFAULTS, &topic("t", 1, 2), id)),
            ResponseError::InvalidReplicationFactor
        );
        assert_eq!(
            code(plan_create_topic(
                &img,
                DEFAULTS,
                &topic("__cluster_metadata", 1, 1),
                id
            )),
            ResponseError::InvalidRequest
        );
        let mut with_config = topic("t", 1, 1);
        with_config.configs = vec![("retention.ms".into(), None)];
        assert_eq!(
            code(plan_create_topic(&img, DEFAULTS, &with_config, id)),
            ResponseError::InvalidConfig
        );
        with_config.configs = vec![("no.such".into(), Some("1".into()))];
        assert_eq!(
            code(plan_create_topic(&img, DEFAULTS, &with_config, id)),
            ResponseError::InvalidConfig
        );
        let mut manual = topic("t", 1, -1);
        manual.assignments = vec![(0, vec![1])];
        assert_eq!(
            code(plan_create_topic(&img, DEFAULTS, &manual, id)),
            ResponseError::InvalidRequest
        );
        manual.num_partitions = -1;
        assert!(plan_create_topic(&img, DEFAULTS, &manual, id).is_ok());
        manual.assignments = vec![(1, vec![1])];
        assert_eq!(
            code(plan_create_topic(&img, DEFAULTS, &manual, id)),
            ResponseError::InvalidReplicaAssignment
        );
        manual.assignments = vec![(0, vec![2])];
        assert_eq!(
            code(plan_create_topic(&img, DEFAULTS, &manual, id)),
            ResponseError::InvalidReplicaAssignment
        );

        let img = img
            .apply(
                &plan_create_topic(&img, DEFAULTS, &topic("a.b", 1, 1), id)
                    .unwrap()
                    .command,
            )
            .unwrap();
        assert_eq!(
            code(plan_create_topic(&img, DEFAULTS, &topic("a.b", 1, 1), id)),
            ResponseError::TopicAlreadyExists
        );
        assert_eq!(
            code(plan_create_topic(&img, DEFAULTS, &topic("a_b", 1, 1), id)),
            ResponseError::InvalidTopicException
        );
    }

    #[test]
    fn create_partitions_rules() {
        let img = image();
        let img = img
            .apply(
                &plan_create_topic(&img, DEFAULTS, &topic("t", 2, 1), Uuid::from_u128(9))
                    .unwrap()
                    .command,
            )
            .unwrap();
        let err = |count, a: Option<&[Vec<i32>]>| {
            plan_create_partitions(&img, "t", count, a).unwrap_err()
        };
        assert_eq!(
            err(2, None).message.as_deref(),
            Some("Topic already has 2 partition(s).")
        );
        assert_eq!(err(1, None).error, ResponseError::InvalidPartitions);
        assert_eq!(
            plan_create_partitions(&img, "x", 3, None)
                .unwrap_err()
                .error,
            ResponseError::UnknownTopicOrPartition
        );
        assert_eq!(
            err(4, Some(&[vec![1]])).error,
            ResponseError::InvalidReplicaAssignment
        );
        let MetadataCommand::CreatePartitions { assignments, .. } =
            plan_create_partitions(&img, "t", 4, None).unwrap()
        else {
            panic!("not a CreatePartitions");
        };
        assert_eq!(assignments, vec![vec![1], vec![1]]);
    }

    #[test]
    fn incremental_operations() {
        let current = BTreeMap::from([("cleanup.policy".to_string(), "delete".to_string())]);
        let ty = |n: &str| catalog::topic_def(n).map(|d| d.ty);
        let next = apply_incremental(
            &current,
            &[
                ("retention.ms".into(), AlterOp::Set, Some("5".into())),
                ("cleanup.policy".into(), AlterOp::Delete, None),
                (
                    "follower.replication.throttled.replicas".into(),
                    AlterOp::Append,
                    Some("0:1".into()),
                ),
            ],
            ConfigKind::Topic,
            ty,
            |_| None,
        )
        .unwrap();
        assert_eq!(next.get("retention.ms").map(String::as_str), Some("5"));
        assert!(!next.contains_key("cleanup.policy"));
        assert_eq!(
            next.get("follower.replication.throttled.replicas")
                .map(String::as_str),
            Some("0:1")
        );
        let err = apply_incremental(
            &current,
            &[("retention.ms".into(), AlterOp::Append, Some("1".into()))],
            ConfigKind::Topic,
            ty,
            |_| None,
        )
        .unwrap_err();
        assert_eq!(err.error, ResponseError::InvalidConfig);
        let dup = apply_incremental(
            &current,
            &[
                ("a".into(), AlterOp::Delete, None),
                ("a".into(), AlterOp::Delete, None),
            ],
            ConfigKind::Topic,
            ty,
            |_| None,
        )
        .unwrap_err();
        assert_eq!(dup.error, ResponseError::InvalidRequest);
    }

    #[test]
    fn broker_config_validation() {
        let ok = BTreeMap::from([("log.retention.ms".to_string(), " 100 ".to_string())]);
        assert_eq!(
            validate_broker_configs(&ok).unwrap()["log.retention.ms"],
            "100"
        );
        let fixed = BTreeMap::from([("node.id".to_string(), "3".to_string())]);
        assert_eq!(
            validate_broker_configs(&fixed)
                .unwrap_err()
                .message
                .as_deref(),
            Some("Cannot update these configs dynamically: Set(node.id)")
        );
        let unknown = BTreeMap::from([("x.y".to_string(), "3".to_string())]);
        assert_eq!(
            validate_broker_configs(&unknown).unwrap_err().error,
            ResponseError::InvalidRequest
        );
    }

    /// A topic of two partitions (brokers 1-3, RF 3) created in `image()` plus brokers 2, 3.
    fn created() -> (Arc<MetadataImage>, Uuid) {
        let id = Uuid::from_u128(7);
        let img = image()
            .with_test_brokers(2..=3)
            .apply(&MetadataCommand::CreateTopic {
                id,
                name: "t".into(),
                assignments: vec![vec![1, 2, 3], vec![2, 3, 1]],
                configs: BTreeMap::new(),
            })
            .unwrap();
        (Arc::new(img), id)
    }

    fn report(img: &MetadataImage, id: Uuid, partition: i32, leader: i32) -> Arc<MetadataImage> {
        Arc::new(
            img.apply(&MetadataCommand::SetPartitionLeader {
                topic_id: id,
                partition,
                leader,
                leader_epoch: 1,
                isr: vec![1, 2, 3],
            })
            .unwrap(),
        )
    }

    /// The wait for new partitions' leaders ends when the image that holds the last report
    /// arrives, not on a timer: with the clock paused (it only moves when every task waits on
    /// a timer), no time passes.
    #[tokio::test(start_paused = true)]
    async fn the_leader_wait_ends_with_the_last_report_not_a_timer() {
        let (img, id) = created();
        assert!(!leaders_reported(&img, &[id]));
        let (tx, mut rx) = watch::channel(Arc::clone(&img));
        let start = tokio::time::Instant::now();
        let waiter = tokio::spawn(async move {
            until_leaders_reported(&mut rx, &[id], MAX_LEADER_REPORT_WAIT).await
        });
        tokio::task::yield_now().await;
        let half = report(&img, id, 0, 1);
        assert!(!leaders_reported(&half, &[id]));
        tx.send(Arc::clone(&half)).unwrap();
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one partition is still unreported");
        tx.send(report(&half, id, 1, 2)).unwrap();
        assert!(waiter.await.unwrap());
        assert_eq!(tokio::time::Instant::now(), start);
        // A deleted topic does not hold the wait up.
        assert!(leaders_reported(&img, &[Uuid::from_u128(8)]));
    }

    /// Leaders that never report end the wait at its timeout.
    #[tokio::test(start_paused = true)]
    async fn the_leader_wait_gives_up_at_its_timeout() {
        let (img, id) = created();
        let (_tx, mut rx) = watch::channel(img);
        let start = tokio::time::Instant::now();
        let timeout = Duration::from_millis(700);
        assert!(!until_leaders_reported(&mut rx, &[id], timeout).await);
        assert_eq!(tokio::time::Instant::now() - start, timeout);
    }
}
