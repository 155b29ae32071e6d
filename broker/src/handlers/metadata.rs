//! Metadata (key 3): brokers, controller, topics with partitions, leaders, epochs, replicas;
//! creates requested topics when auto-creation is allowed.

use std::collections::BTreeSet;

use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName,
};
use shoal_protocol::registry::ApiSupport;
use uuid::Uuid;

use super::{
    AUTHORIZED_OPERATIONS_OMITTED, cluster_authorized_operations, s, topic_authorized_operations,
};
use crate::admin::{NewTopic, TopicAdmin};
use crate::metadata::topic_rules;
use crate::metadata::{MetadataImage, TopicImage};

/// v1+ (the Java client refuses v0); v13 (top-level error code) is not implemented.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::Metadata, 1, 12);

/// What the handler needs from the node.
#[derive(Debug, Clone, Copy)]
pub struct MetadataContext<'a> {
    /// Listener the request arrived on.
    pub listener: &'a str,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// This node (reported as the controller: every node of a Shoal cluster accepts admin
    /// requests).
    pub node_id: i32,
}

/// Answers a Metadata request, creating missing topics first when allowed.
pub async fn handle(
    admin: &TopicAdmin,
    ctx: MetadataContext<'_>,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let mut image = admin.metadata().image();
    let mut topics = Vec::new();

    match &request.topics {
        None => {
            for topic in image.topics() {
                topics.push(describe_topic(&image, topic, ctx.listener, version));
            }
        }
        Some(requested) => {
            // Kafka (`handleTopicMetadataRequest`): once any non-zero topic id is present the
            // request is answered by id and names are ignored (the Java client sends an empty
            // name next to each id); otherwise by name.
            let ids: Vec<Uuid> = requested
                .iter()
                .map(|t| t.topic_id)
                .filter(|id| !id.is_nil())
                .collect();
            let mut by_name: Vec<String> = Vec::new();
            if !ids.is_empty() {
                let unique_ids: BTreeSet<Uuid> = ids.into_iter().collect();
                for id in unique_ids {
                    match image.topic_by_id(&id) {
                        Some(t) => topics.push(describe_topic(&image, t, ctx.listener, version)),
                        None => topics.push(error_topic(ResponseError::UnknownTopicId, None, id)),
                    }
                }
            } else {
                for topic in requested {
                    match &topic.name {
                        Some(name) => by_name.push(name.to_string()),
                        None => topics.push(error_topic(
                            ResponseError::InvalidRequest,
                            None,
                            Uuid::nil(),
                        )),
                    }
                }
            }
            let unique: BTreeSet<String> = by_name.into_iter().collect();
            let missing: Vec<String> = unique
                .iter()
                .filter(|n| image.topic_by_name(n).is_none())
                .cloned()
                .collect();
            let auto_create = request.allow_auto_topic_creation && ctx.auto_create_topics;
            if auto_create && !missing.is_empty() {
                let creatable: Vec<NewTopic> = missing
                    .iter()
                    .filter(|n| {
                        topic_rules::validate_topic_name(n).is_ok() && !topic_rules::is_internal(n)
                    })
                    .map(|name| NewTopic {
                        name: name.clone(),
                        num_partitions: -1,
                        replication_factor: -1,
                        assignments: vec![],
                        configs: vec![],
                    })
                    .collect();
                for (topic, result) in creatable
                    .iter()
                    .zip(admin.create_topics(&creatable, false).await)
                {
                    // A concurrent request may have created it first; that is not a failure.
                    if let Err(e) = result
                        && e.error != ResponseError::TopicAlreadyExists
                    {
                        tracing::warn!(topic = %topic.name, "auto-creation failed: {:?}", e);
                    }
                }
                image = admin.metadata().image();
            }
            for name in &unique {
                match image.topic_by_name(name) {
                    Some(topic) => {
                        topics.push(describe_topic(&image, topic, ctx.listener, version))
                    }
                    None => {
                        let error = if topic_rules::validate_topic_name(name).is_err() {
                            ResponseError::InvalidTopicException
                        } else if auto_create && !topic_rules::is_internal(name) {
                            // Creation was attempted and failed (e.g. a name collision).
                            ResponseError::LeaderNotAvailable
                        } else {
                            ResponseError::UnknownTopicOrPartition
                        };
                        topics.push(error_topic(error, Some(name.clone()), Uuid::nil()));
                    }
                }
            }
        }
    }

    if version >= 8 && request.include_topic_authorized_operations {
        for topic in topics.iter_mut().filter(|t| t.error_code == 0) {
            topic.topic_authorized_operations = topic_authorized_operations();
        }
    }
    if version < 10 {
        // Topic ids exist on the wire from v10 only.
        for topic in &mut topics {
            topic.topic_id = Uuid::nil();
        }
    }

    let brokers = image
        .brokers()
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let endpoint = b.endpoint(ctx.listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.node_id))
                    .with_host(s(endpoint.host.clone()))
                    .with_port(i32::from(endpoint.port))
                    .with_rack(b.rack.clone().map(s)),
            )
        })
        .collect();

    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_controller_id(BrokerId(ctx.node_id))
        .with_topics(topics);
    if version >= 2 {
        response.cluster_id = Some(s(image.cluster_id()));
    }
    if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = cluster_authorized_operations();
    }
    response
}

fn error_topic(error: ResponseError, name: Option<String>, id: Uuid) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error.code())
        .with_name(name.map(|n| TopicName(s(n))))
        .with_topic_id(id)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

fn describe_topic(
    image: &MetadataImage,
    topic: &TopicImage,
    listener: &str,
    version: i16,
) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let leader = image.brokers().get(&p.leader).filter(|b| !b.fenced);
            let (error, leader_id) = match leader {
                None => (ResponseError::LeaderNotAvailable.code(), -1),
                Some(b) if b.endpoint(listener).is_none() => {
                    (ResponseError::ListenerNotFound.code(), -1)
                }
                Some(_) => (0, p.leader),
            };
            let mut partition = MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(index as i32)
                .with_leader_id(BrokerId(leader_id))
                .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect());
            // Fields a version lacks must keep their defaults, or encoding fails.
            if version >= 5 {
                partition.offline_replicas = image
                    .offline_replicas(p)
                    .into_iter()
                    .map(BrokerId)
                    .collect();
            }
            if version >= 7 {
                partition.leader_epoch = p.leader_epoch;
            }
            partition
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(0)
        .with_name(Some(TopicName(s(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic_rules::is_internal(&topic.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
