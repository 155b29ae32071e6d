//! DescribeTopicPartitions (key 75): topics and their partitions, paginated by a cursor (KIP-966;
//! Java 4.x `Admin.describeTopics` and `kafka-topics --describe` prefer it to Metadata).
//!
//! Kafka's `DescribeTopicPartitionsRequestHandler` and `getTopicMetadataForDescribeTopicResponse`:
//! no topics means every topic; topics sort by name and start at the cursor's topic (whose
//! partitions start at the cursor's index); at most `min(response_partition_limit, 2000)`
//! partitions are returned, and the cursor of the next page points to the first partition left
//! out. Named topics that do not exist answer `UNKNOWN_TOPIC_OR_PARTITION` (or
//! `INVALID_TOPIC_EXCEPTION` for an illegal name); a cursor whose topic is not among the named
//! ones is an invalid request. Shoal has no eligible leader replicas (ELR), so both ELR lists are
//! empty, as Kafka reports them when ELR is not in use.

use std::collections::BTreeSet;

use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use shoal_protocol::registry::ApiSupport;
use uuid::Uuid;

use super::{s, topic_authorized_operations};
use crate::metadata::{MetadataImage, TopicImage, topic_rules};

/// The only version.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::DescribeTopicPartitions, 0, 0);

/// Kafka's `max.request.partition.size.limit` default: the most partitions one response holds.
pub const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

/// Answers with the topics the request names (or every topic) visible on `listener`.
pub fn handle(
    image: &MetadataImage,
    listener: &str,
    request: &DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let all = request.topics.is_empty();
    let cursor_topic = request
        .cursor
        .as_ref()
        .map(|c| c.topic_name.0.to_string())
        .unwrap_or_default();
    let names: BTreeSet<String> = if all {
        image
            .topics()
            .map(|t| t.name.clone())
            .filter(|n| *n >= cursor_topic)
            .collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .filter(|n| *n >= cursor_topic)
            .collect()
    };
    if !all && request.cursor.is_some() && !names.contains(&cursor_topic) {
        // Kafka's `DescribeTopicPartitionsRequest.getErrorResponse` for the thrown
        // InvalidRequestException: every named topic carries the error.
        let topics = request
            .topics
            .iter()
            .map(|t| {
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_name(Some(t.name.clone()))
            })
            .collect();
        return DescribeTopicPartitionsResponse::default().with_topics(topics);
    }

    let mut response = DescribeTopicPartitionsResponse::default();
    let mut remaining = request
        .response_partition_limit
        .min(MAX_PARTITIONS_PER_RESPONSE);
    for name in &names {
        if remaining <= 0 {
            if remaining == 0 {
                response.next_cursor = Some(cursor(name, 0));
            }
            break;
        }
        match image.topic_by_name(name) {
            Some(topic) => {
                let start = match &request.cursor {
                    Some(c) if *name == cursor_topic => c.partition_index.max(0),
                    _ => 0,
                };
                let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
                let upper = count.min(start.saturating_add(remaining));
                response
                    .topics
                    .push(describe_topic(image, topic, listener, start, upper));
                if upper < count {
                    response.next_cursor = Some(cursor(name, upper));
                    break;
                }
                remaining -= (upper - start).max(0);
            }
            None if !all => {
                let error = if topic_rules::validate_topic_name(name).is_err() {
                    ResponseError::InvalidTopicException
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                response.topics.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_error_code(error.code())
                        .with_name(Some(TopicName(s(name.clone()))))
                        .with_topic_id(Uuid::nil())
                        .with_is_internal(topic_rules::is_internal(name)),
                );
            }
            None => {}
        }
    }
    for topic in &mut response.topics {
        topic.topic_authorized_operations = topic_authorized_operations();
    }
    response
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(s(topic)))
        .with_partition_index(partition)
}

fn describe_topic(
    image: &MetadataImage,
    topic: &TopicImage,
    listener: &str,
    start: i32,
    upper: i32,
) -> DescribeTopicPartitionsResponseTopic {
    let partitions = (start..upper)
        .filter_map(|index| {
            let p = topic.partitions.get(usize::try_from(index).ok()?)?;
            // Kafka's `getAliveEndpoint`: a registered broker with an endpoint on this listener.
            let leader = image
                .brokers()
                .get(&p.leader)
                .filter(|b| b.endpoint(listener).is_some())
                .map_or(-1, |b| b.node_id);
            let ids = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect::<Vec<_>>();
            Some(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(index)
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(ids(&p.replicas))
                    .with_isr_nodes(ids(&p.isr))
                    .with_offline_replicas(ids(&image.offline_replicas(p)))
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new())),
            )
        })
        .collect();
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(s(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic_rules::is_internal(&topic.name))
        .with_partitions(partitions)
}

#[cfg(test)]
mod tests {
    use shoal_protocol::kafka_protocol::messages::describe_topic_partitions_request::{
        Cursor as RequestCursor, TopicRequest,
    };

    use super::*;
    use crate::metadata::{BrokerEndpoint, BrokerRegistration, MetadataCommand};

    fn image() -> MetadataImage {
        let topic = |id: u128, name: &str, partitions: usize| MetadataCommand::CreateTopic {
            id: Uuid::from_u128(id),
            name: name.into(),
            assignments: vec![vec![1]; partitions],
            configs: Default::default(),
        };
        MetadataImage::empty("c")
            .apply(&MetadataCommand::RegisterBroker(BrokerRegistration {
                node_id: 1,
                rack: None,
                endpoints: vec![BrokerEndpoint {
                    listener: "PLAINTEXT".into(),
                    host: "h".into(),
                    port: 9092,
                }],
                fenced: false,
            }))
            .unwrap()
            .apply(&topic(101, "b", 3))
            .unwrap()
            .apply(&topic(102, "a", 2))
            .unwrap()
            .apply(&topic(103, "c", 1))
            .unwrap()
    }

    fn request(
        names: &[&str],
        limit: i32,
        cursor: Option<(&str, i32)>,
    ) -> DescribeTopicPartitionsRequest {
        DescribeTopicPartitionsRequest::default()
            .with_topics(
                names
                    .iter()
                    .map(|n| TopicRequest::default().with_name(TopicName(s(*n))))
                    .collect(),
            )
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(t, p)| {
                RequestCursor::default()
                    .with_topic_name(TopicName(s(t)))
                    .with_partition_index(p)
            }))
    }

    /// (name, error, partition indexes) per topic, and the next cursor.
    type Summary = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

    fn summary(response: &DescribeTopicPartitionsResponse) -> Summary {
        (
            response
                .topics
                .iter()
                .map(|t| {
                    (
                        t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                        t.error_code,
                        t.partitions.iter().map(|p| p.partition_index).collect(),
                    )
                })
                .collect(),
            response
                .next_cursor
                .as_ref()
                .map(|c| (c.topic_name.0.to_string(), c.partition_index)),
        )
    }

    #[test]
    fn every_topic_sorted_with_partition_details() {
        let response = handle(&image(), "PLAINTEXT", &request(&[], 2000, None));
        assert_eq!(
            summary(&response),
            (
                vec![
                    ("a".into(), 0, vec![0, 1]),
                    ("b".into(), 0, vec![0, 1, 2]),
                    ("c".into(), 0, vec![0]),
                ],
                None
            )
        );
        let p = &response.topics[0].partitions[1];
        assert_eq!(p.leader_id, BrokerId(1));
        assert_eq!(p.replica_nodes, vec![BrokerId(1)]);
        assert_eq!(p.isr_nodes, vec![BrokerId(1)]);
        assert_eq!(p.eligible_leader_replicas, Some(vec![]));
        assert_eq!(response.topics[0].topic_id, Uuid::from_u128(102));
        assert_eq!(
            response.topics[0].topic_authorized_operations,
            topic_authorized_operations()
        );
        // A listener the broker does not have: no leader endpoint.
        let other = handle(&image(), "OTHER", &request(&["a"], 2000, None));
        assert_eq!(other.topics[0].partitions[0].leader_id, BrokerId(-1));
    }

    #[test]
    fn pages_follow_the_cursor() {
        let image = image();
        let first = handle(&image, "PLAINTEXT", &request(&[], 3, None));
        assert_eq!(
            summary(&first),
            (
                vec![("a".into(), 0, vec![0, 1]), ("b".into(), 0, vec![0])],
                Some(("b".into(), 1))
            )
        );
        let second = handle(&image, "PLAINTEXT", &request(&[], 3, Some(("b", 1))));
        assert_eq!(
            summary(&second),
            (
                vec![("b".into(), 0, vec![1, 2]), ("c".into(), 0, vec![0])],
                None
            )
        );
        // The limit reached exactly at a topic boundary: the next topic starts the next page.
        let exact = handle(&image, "PLAINTEXT", &request(&[], 2, None));
        assert_eq!(
            summary(&exact),
            (vec![("a".into(), 0, vec![0, 1])], Some(("b".into(), 0)))
        );
    }

    #[test]
    fn named_topics_report_unknown_and_invalid_names() {
        let response = handle(
            &image(),
            "PLAINTEXT",
            &request(&["c", "missing", "bad/name", "c"], 2000, None),
        );
        assert_eq!(
            summary(&response),
            (
                vec![
                    (
                        "bad/name".into(),
                        ResponseError::InvalidTopicException.code(),
                        vec![]
                    ),
                    ("c".into(), 0, vec![0]),
                    (
                        "missing".into(),
                        ResponseError::UnknownTopicOrPartition.code(),
                        vec![]
                    ),
                ],
                None
            )
        );
    }

    #[test]
    fn a_cursor_outside_the_named_topics_is_invalid() {
        let response = handle(
            &image(),
            "PLAINTEXT",
            &request(&["a"], 2000, Some(("b", 0))),
        );
        assert_eq!(
            summary(&response),
            (
                vec![("a".into(), ResponseError::InvalidRequest.code(), vec![])],
                None
            )
        );
    }
}
